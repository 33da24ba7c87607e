# tests/sys/churn_traffic.sh: sessions come, change and go while packets
# flow, on both paths: the daemon never crashes, every request gets a clear
# answer, a client that hangs up mid-request harms nothing, and the sessions
# left alone meanwhile count exactly what was sent to them.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

OPS=${CAPSTATS_CHURN_OPS:-320}		# at least this many new, modify and stop
SEED=${CAPSTATS_CHURN_SEED:-$RANDOM}
PROBE_PORT=9555				# only the kept sessions match it
# Rates of the background traffic, one second each, in a loop.
RATES="300 2000 20000 800 8000 30000 500 4000"
MIN_SECONDS=9				# and for this long: every rate at least once
echo "  seed $SEED (CAPSTATS_CHURN_SEED=$SEED reproduces the choices)"

udp_pcap "$TDIR/udp.pcap" 1000		# to udp port 9000: what the churned filters match
veth_up chtr || exit 1
daemon_start -i "$HOST_IF" || exit 1

# Left alone throughout, one on each path.
check "new keepk, kernel path" cs new keepk mode kernel filter "udp dst port $PROBE_PORT"
check "new keepp, pcap path" cs new keepp mode pcap filter "udp dst port $PROBE_PORT"

# wire_drops: what the veth pair itself dropped, both ends, both ways
wire_drops() {
	local f n=0 v
	for f in rx_dropped tx_dropped; do
		v=$(if_stat "$HOST_IF" "$f") && n=$((n + v))
		v=$(ip netns exec "$NETNS" cat "/sys/class/net/$PEER_IF/statistics/$f") &&
		    n=$((n + v))
	done
	echo "$n"
}
wd0=$(wire_drops)

# The background traffic: one tcpreplay at a time, each for a second at the
# next rate, until the stop file appears. A TERM ends the running one too.
traffic() {
	local pps tr=
	trap '[ -z "$tr" ] || kill -TERM "$tr" 2>/dev/null; exit 0' TERM
	while [ ! -e "$TDIR/traffic.stop" ]; do
		for pps in $RATES; do
			[ -e "$TDIR/traffic.stop" ] && break
			ip netns exec "$NETNS" tcpreplay -q --intf1="$PEER_IF" \
			    --pps="$pps" --loop=0 --duration=1 "$TDIR/udp.pcap" \
			    >>"$TDIR/traffic.log" 2>&1 &
			tr=$!
			if wait "$tr"; then
				echo "$pps" >>"$TDIR/traffic.done"
			else
				echo "tcpreplay at $pps/s: exit $?" >>"$TDIR/traffic.err"
			fi
			tr=
		done
	done
}
traffic &
gen=$!
bg_track "$gen"
nap 0.5

# The one client: sequential requests over the control socket, from inside
# the namespace, so that between requests it also sends the probes to
# PROBE_PORT on the peer end. Clients that hang up mid-request are mixed in.
cat >"$TDIR/driver.py" <<'EOF'
import json, random, socket, struct, sys, time

sock_path, ifname, nops, seed, port, secs, out = sys.argv[1:8]
nops, port, secs = int(nops), int(port), float(secs)
rng = random.Random(int(seed))

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
        frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
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
done = {"new": 0, "modify": 0, "stop": 0}
by_mode = {"kernel": 0, "pcap": 0, "auto": 0}
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
        if do("new", name, "new %s%s filter %s"
              % (name, " mode " + mode if mode else "", flt)):
            live[name] = flt
    elif live and r < 0.7:
        name = rng.choice(sorted(live))
        flt = rng.choice([f for f in FILTERS if f != live[name]])
        if do("modify", name, "modify %s %s" % (name, flt)):
            live[name] = flt
    elif live:
        name = rng.choice(sorted(live))
        do("stop", name, "stop %s" % name)
        del live[name]
for name in sorted(live):
    do("stop", name, "stop %s" % name)
probe(100)
c.close()
json.dump({"done": done, "by_mode": by_mode, "fails": fails, "probes": probes,
           "retried": retried,
           "vanished": vanished, "seconds": round(time.monotonic() - t0, 1)},
          open(out, "w"))
EOF
# jget EXPR: a value from the client's summary (d)
jget() { "$PY" -c "import json,sys; d = json.load(open(sys.argv[1])); print($1)" "$TDIR/driver.json"; }
t0=$(now_ms)
ip netns exec "$NETNS" timeout 75 "$PY" "$TDIR/driver.py" "$SOCK" "$PEER_IF" \
    "$OPS" "$SEED" "$PROBE_PORT" "$MIN_SECONDS" "$TDIR/driver.json" >"$TDIR/driver.out" 2>&1
rc=$?
touch "$TDIR/traffic.stop"
bg_reap "$gen" 5
if [ "$rc" -ne 0 ] || [ ! -s "$TDIR/driver.json" ]; then
	fail "the churn client ended with status $rc"
	indent <"$TDIR/driver.out"
	if ! daemon_alive; then
		fail "the daemon died during the churn"
		sed -n '/ERROR: AddressSanitizer\|runtime error:/,/SUMMARY/p' "$TDIR/daemon.log" |
		    head -60 | indent
	fi
	exit 1
fi
pass "the churn client ran $(jget 'sum(d["done"].values())') requests in $(($(now_ms) - t0)) ms"

echo "  $(jget '" ".join("%s=%d" % kv for kv in sorted(d["done"].items()))')," \
    "new by mode: $(jget '" ".join("%s=%d" % kv for kv in sorted(d["by_mode"].items()))')," \
    "$(jget 'd["vanished"]') clients gone mid-request"
nretry=$(jget 'len(d["retried"])')
if [ "$nretry" -gt 0 ]; then
	echo "  $nretry requests met the 500 ms compile deadline and were sent again:"
	jget '"\n".join(d["retried"][:10])' | indent
fi
check_eq "the background traffic ran at every rate, packets/s" \
    "$(printf '%s\n' $RATES | sort -n | tr '\n' ' ')" \
    "$(sort -nu "$TDIR/traffic.done" 2>/dev/null | tr '\n' ' ')"
check "and tcpreplay never failed" test ! -s "$TDIR/traffic.err"
[ ! -s "$TDIR/traffic.err" ] || indent <"$TDIR/traffic.err"
check "new, modify and stop were each done on both paths" test \
    "$(jget 'min(d["done"]["modify"], d["done"]["stop"], *d["by_mode"].values())')" -ge 20
nfail=$(jget 'len(d["fails"])')
if [ "$nfail" -eq 0 ]; then
	pass "every one of $(jget 'sum(d["done"].values())') requests succeeded"
else
	fail "$nfail of $(jget 'sum(d["done"].values())') valid requests failed"
	jget '"\n".join(d["fails"][:20])' | indent
fi
check_eq "every failure came with a message" 0 \
    "$(jget 'sum(f.endswith("(no message)") for f in d["fails"])')"

check "the daemon is alive after the churn" daemon_alive
check "list answers" cs list

# The sessions of the clients that hung up: some started, some did not;
# each still there must stop like any other. (A moment first, for the
# last of their requests to be read.)
nap 0.5
gone=$(cs -j list | "$PY" -c 'import json,sys; print(*sorted(s["session"] for s in json.load(sys.stdin) if s["session"].startswith("g")))')
bad=0
for g in $gone; do
	cs stop "$g" >"$TDIR/stop.out" 2>&1 || { bad=$((bad + 1)); indent <"$TDIR/stop.out"; }
done
check_eq "the $(echo $gone | wc -w) sessions left by vanished clients stop" 0 "$bad"
check_eq "only the kept sessions are left" "keepk keepp" \
    "$(cs -j list | "$PY" -c 'import json,sys; print(*sorted(s["session"] for s in json.load(sys.stdin)))')"

# The kept sessions counted every probe, exactly.
N=$(jget 'd["probes"]')
for s in keepk keepp; do
	wait_count "$s" "$N" 5
	nap 0.2		# anything beyond N would show by now
	got="$(poll_field "$s" packets) $(poll_field "$s" bytes)"
	if [ "$got" = "$N $((N * 60))" ]; then
		pass "$s counted exactly the $N probes sent during the churn ($((N * 60)) bytes)"
	else
		fail "$s: expected $N packets, $((N * 60)) bytes, got $got" \
		    "(the veth pair dropped $(($(wire_drops) - wd0)))"
	fi
	nap 0.2		# drops are refreshed every 100 ms
	check_eq "$s dropped nothing" 0 "$(poll_field "$s" drops)"
done

check "no sanitizer report in the daemon log" test -z \
    "$(tail -n "+$T_LOGLINE" "$TDIR/daemon.log" | grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:')"
daemon_stop && pass "the daemon stops cleanly: exit 0, nothing left behind, no sanitizer report"
