"""tests/churn.py: the client of the churn tests (tests/sys/churn_*.sh).

Sessions come, change and go over one control connection, sequentially;
clients that hang up mid-request are mixed in; between requests, probes
(UDP to PORT, which only the sessions the test keeps match) go out of a
raw socket on PROBE_IF. Writes a JSON summary to OUT.

Usage: churn.py SOCKET PROBE_IF OPS SEED PORT SECONDS OUT [IFACE...]
With IFACEs, each new session counts on one of them, at random, and the
summary tells the requests by interface too; without, on the daemon's
default interface. Environment: CHURN_VLAN, a VLAN id to tag the probes
with (their frames are then 64 bytes, not 60).
"""
import json, os, random, socket, struct, sys, time

sock_path, ifname, nops, seed, port, secs, out = sys.argv[1:8]
ifaces = sys.argv[8:]
nops, port, secs = int(nops), int(port), float(secs)
rng = random.Random(int(seed))
vid = int(os.environ.get("CHURN_VLAN", "0"))
tag = struct.pack("!HH", 0x8100, vid) if vid else b""

# Each matches the background traffic (udp to port 9000 from 40000-40999).
FILTERS = [
    "udp dst port 9000",
    "udp and dst port 9000 and src net 10.0.0.0/8",
    "udp src portrange 40000-40999",
    "ip src 10.0.0.1 and udp port 9000",
    "udp[2:2] = 9000",
    "udp and not dst port %d" % port,
    "udp",
    "ip and len <= 128",
]
MODES = ["kernel", "pcap", None]

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((ifname, 0))
probes = 0

def probe(n):
    global probes
    for _ in range(n):
        udp = struct.pack("!HHHH", 41000 + probes % 1000, port, 26, 0) + bytes(18)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), probes & 0xffff,
                         0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        frame = bytes.fromhex("020000000002020000000001") + tag + b"\x08\x00" + ip + udp
        while True:
            try:
                raw.send(frame)
                break
            except OSError:
                time.sleep(0.001)
        probes += 1

class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(sock_path)
        self.f = self.s.makefile("rb")
        hello = self.f.readline()
        if not hello.startswith(b"hello"):
            raise RuntimeError("no greeting: %r" % hello)

    def req(self, line):
        """(status word, message) of the reply to one request"""
        try:
            self.s.sendall(line.encode() + b"\n")
            while True:
                r = self.f.readline()
                if not r:
                    return "eof", "the daemon closed the connection"
                r = r.decode().rstrip("\n")
                if r == "ok":
                    return "ok", ""
                if r.startswith("error"):
                    f = r.split("\t", 2)
                    return (f[1] if len(f) > 1 else ""), (f[2] if len(f) > 2 else "")
        except OSError as e:
            return "oserror", str(e)

    def close(self):
        self.f.close()
        self.s.close()

def vanish(k):
    """a client that sends a request and is gone before the answer"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    kind = k % 6
    if kind == 0:       # greeting unread: the daemon's writes meet a reset
        s.sendall(b"new g%d mode pcap filter udp dst port 9000\n" % k)
    elif kind == 1:     # greeting read, then gone while the filter compiles
        s.recv(4096)
        s.sendall(b"new g%d mode kernel filter udp\n" % k)
    elif kind == 2:     # several requests queued, gone after a moment
        s.sendall(b"new g%d filter udp dst port 9000\nmodify g%d udp\nstop g%d\nlist\n"
                  % (k, k, k))
        time.sleep(0.005)
    elif kind == 3:     # a stop of an earlier one, which may be there or not
        s.sendall(b"stop g%d\n" % (k - 3))
    elif kind == 4:     # half a request
        s.sendall(b"new g%d mode pc" % k)
    else:               # a modify, of a name that may be there or not
        s.sendall(b"modify g%d udp src portrange 40000-40999\n" % (k - 4))
    s.close()

names = ["c%d" % i for i in range(40)]
live = {}
where = {}
done = {"new": 0, "modify": 0, "stop": 0}
by_mode = {"kernel": 0, "pcap": 0, "auto": 0}
by_iface = {i: {"new": {"kernel": 0, "pcap": 0, "auto": 0}, "modify": 0, "stop": 0}
            for i in ifaces}
fails = []
vanished = 0

def lost(kind, e, tb):
    """a daemon gone is said in one line; a bug here with its traceback"""
    if issubclass(kind, OSError):
        print("after %d requests: %s: %s" % (sum(done.values()), kind.__name__, e))
    else:
        sys.__excepthook__(kind, e, tb)
sys.excepthook = lost
c = Client()

retried = []
def do(op, name, line):
    st, msg = c.req(line)
    done[op] += 1
    if st == "toolong" and "to compile" in msg:
        # The compile deadline, met by a loaded machine: once more, as a
        # client would; the summary tells how often.
        retried.append("%s -> %s" % (line, msg))
        st, msg = c.req(line)
    if st != "ok":
        fails.append("%s -> %s: %s" % (line, st, msg or "(no message)"))
    return st == "ok"

def tally(op, name, mode=None):
    if name not in where:
        return
    if op == "new":
        by_iface[where[name]]["new"][mode or "auto"] += 1
    else:
        by_iface[where[name]][op] += 1

t0 = time.monotonic()
i = 0
while i < nops or time.monotonic() - t0 < secs:
    i += 1
    if rng.random() < 0.4:
        probe(rng.randint(1, 6))
    if rng.random() < 0.03:
        probe(rng.randint(30, 80))
    if i % 10 == 7:
        vanish(vanished)
        vanished += 1
    if i % 60 == 59:    # now and then a new connection
        c.close()
        c = Client()
    free = [n for n in names if n not in live]
    r = rng.random()
    if free and (len(live) < 4 or (len(live) < 24 and r < 0.4)):
        name = rng.choice(free)
        mode = rng.choice(MODES)
        flt = rng.choice(FILTERS)
        by_mode[mode or "auto"] += 1
        iface = ""
        if ifaces:
            where[name] = rng.choice(ifaces)
            iface = " interface " + where[name]
        tally("new", name, mode)
        if do("new", name, "new %s%s%s filter %s"
              % (name, iface, " mode " + mode if mode else "", flt)):
            live[name] = flt
    elif live and r < 0.7:
        name = rng.choice(sorted(live))
        flt = rng.choice([f for f in FILTERS if f != live[name]])
        tally("modify", name)
        if do("modify", name, "modify %s %s" % (name, flt)):
            live[name] = flt
    elif live:
        name = rng.choice(sorted(live))
        tally("stop", name)
        do("stop", name, "stop %s" % name)
        del live[name]
for name in sorted(live):
    tally("stop", name)
    do("stop", name, "stop %s" % name)
probe(100)
c.close()
json.dump({"done": done, "by_mode": by_mode, "by_iface": by_iface, "fails": fails,
           "probes": probes, "retried": retried,
           "vanished": vanished, "seconds": round(time.monotonic() - t0, 1)},
          open(out, "w"))
