"""tests/bench/ctl.py: what many.sh asks of the daemon and of the kernel,
with python3's standard library only. Sessions made and ended in bulk by
requests pipelined over a few connections; whole `capstats new` processes
timed one by one; the wait until a restarted daemon runs every session;
and, for the kernel path, the eBPF run time and the kernel memory of one
daemon's programs and maps, found through the maps it holds. It changes
nothing but the sessions it is told to make or end; `stats` keeps the
kernel's eBPF run-time statistics on while it runs (they go off with it).

  ctl.py new SOCK IFACE PREFIX FILTERFILE [WORD...]  sessions PREFIX0.. ; prints ms
  ctl.py stop SOCK PREFIX N                           ends PREFIX0..PREFIX(N-1)
  ctl.py running SOCK N SECONDS T0_US                 ms from T0 until N run in mode kernel
  ctl.py news KEY PREFIX FILE IFACE MODE CAPSTATS ARG...
                                                      times each `CAPSTATS ARG... new NAME ...`
                                                      for the lines KIND<TAB>FILTER of FILE
  ctl.py stops KEY PREFIX N CAPSTATS ARG...           times `CAPSTATS ARG... stop NAME`
  ctl.py rtts KEY PREFIX FILE IFACE MODE SOCK         times each new, then each stop, as one
                                                      request on an open connection: the
                                                      daemon's share of a whole process
  ctl.py bpf PID                                      "RUN_TIME_NS RUN_CNT" of PID's programs
  ctl.py kmem PID                                     bytes the kernel charges for them (memlock)
  ctl.py stats                                        eBPF run-time statistics on until SIGTERM
"""
import ctypes
import os
import platform
import signal
import socket
import sys
import threading
import time

CONNS = 4	# connections that pipeline `new` and `stop`


# ---------------------------------------------------------------- sessions

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rb")
    hello = f.readline()
    if not hello.startswith(b"hello"):
        raise SystemExit("ctl: %s: no greeting: %r" % (path, hello))
    return s, f


def pipelined(path, requests):
    """Send REQUESTS over CONNS connections, each its share at once; the
    errors, one line per failed request."""
    bad = []

    def client(part):
        s, f = connect(path)
        s.sendall(b"".join(r.encode() + b"\n" for r in part))
        for r in part:
            while True:
                line = f.readline().decode()
                if line == "ok\n":
                    break
                if not line or line.startswith("error"):
                    bad.append("%s: %s" % (r, line.strip() or "connection closed"))
                    break
        s.close()

    threads = [threading.Thread(target=client, args=(requests[k::CONNS],))
               for k in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return bad


def read_filters(path):
    with open(path) as f:
        return [x for x in f.read().splitlines() if x and not x.startswith("#")]


def cmd_new(sock, iface, prefix, path, *words):
    flt = read_filters(path)
    extra = "".join(" " + w for w in words)
    t0 = time.monotonic()
    bad = pipelined(sock, ["new %s%d interface %s%s filter %s" % (prefix, i, iface, extra, x)
                           for i, x in enumerate(flt)])
    print("%.0f" % ((time.monotonic() - t0) * 1000))
    for b in bad[:5]:
        print("ctl: " + b, file=sys.stderr)
    return 1 if bad else 0


def cmd_stop(sock, prefix, n):
    bad = pipelined(sock, ["stop %s%d" % (prefix, i) for i in range(int(n))])
    for b in bad[:5]:
        print("ctl: " + b, file=sys.stderr)
    return 1 if bad else 0


def kernel_running(sock):
    """Sessions running in mode kernel, by one `list`; -1 if no answer."""
    try:
        s, f = connect(sock)
    except OSError:
        return -1
    s.sendall(b"list\n")
    n = 0
    for line in f:
        if line == b"ok\n" or line.startswith(b"error"):
            break
        fields = line.decode().rstrip("\n").split("\t")
        if "state=running" in fields and "mode=kernel" in fields:
            n += 1
    s.close()
    return n


def cmd_running(sock, n, seconds, t0_us):
    deadline = time.time() + float(seconds)
    got = -1
    while time.time() < deadline:
        got = kernel_running(sock)
        if got >= int(n):
            print("%.0f" % ((time.time() * 1e6 - int(t0_us)) / 1000))
            return 0
        time.sleep(0.01)
    print("ctl: %s of %s running after %s s" % (got, n, seconds), file=sys.stderr)
    return 1


def timed(argv):
    """Wall time of one whole process, fork to exit, in ns; it must exit 0."""
    with open(os.devnull, "wb") as null:
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1)])
        _, status = os.waitpid(pid, 0)
        ns = time.monotonic_ns() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("ctl: %s exited with status %d" % (" ".join(argv), status))
    return ns


def report(key, v):
    """readbench's line: KEY COUNT MEDIAN P99 MEAN, in ns."""
    v = sorted(v)
    print("%s\t%d\t%.1f\t%.1f\t%.1f" % (key, len(v), v[len(v) // 2],
                                         v[len(v) * 99 // 100], sum(v) / len(v)))


def cmd_news(key, prefix, path, iface, mode, *cmd):
    """Lines of PATH are KIND<TAB>FILTER: one report for all, one per KIND."""
    kinds = {}
    for i, line in enumerate(read_filters(path)):
        kind, x = line.split("\t", 1)
        kinds.setdefault(kind, []).append(timed(list(cmd) + [
            "new", "%s%d" % (prefix, i), "interface", iface, "mode", mode, "filter", x]))
    report(key, [v for vs in kinds.values() for v in vs])
    for kind, vs in kinds.items():
        report("%s-%s" % (key, kind), vs)
    return 0


def cmd_stops(key, prefix, n, *cmd):
    report(key, [timed(list(cmd) + ["stop", "%s%d" % (prefix, i)]) for i in range(int(n))])
    return 0


def request(s, f, line):
    """Wall time of one request on an open connection, in ns; it must succeed."""
    t0 = time.monotonic_ns()
    s.sendall(line.encode() + b"\n")
    while True:
        reply = f.readline()
        if reply == b"ok\n":
            return time.monotonic_ns() - t0
        if not reply or reply.startswith(b"error"):
            raise SystemExit("ctl: %s: %s" % (line, reply.decode().strip() or
                                              "connection closed"))


def cmd_rtts(key, prefix, path, iface, mode, sock):
    flt = [line.split("\t", 1)[1] for line in read_filters(path)]
    s, f = connect(sock)
    news = [request(s, f, "new %s%d interface %s mode %s filter %s" % (
        prefix, i, iface, mode, x)) for i, x in enumerate(flt)]
    stops = [request(s, f, "stop %s%d" % (prefix, i)) for i in range(len(flt))]
    s.close()
    report(key + "-new", news)
    report(key + "-stop", stops)
    return 0


# ---------------------------------------------------------------- kernel

BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
NR_BPF = {"x86_64": 321, "aarch64": 280}
INFO_LEN = 256			# struct bpf_prog_info, with room to spare
INFO_NR_MAP_IDS = 52		# its nr_map_ids (u32) ...
INFO_MAP_IDS = 56		# ... and map_ids (u64 pointer)
MAP_IDS_MAX = 64

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    nr = NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(0, "no bpf syscall number for " + platform.machine())
    rc = libc.syscall(nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def fdinfo(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def held_maps(pid):
    """{map id: memlock} of the maps process PID holds open."""
    out = {}
    d = "/proc/%s/fdinfo" % pid
    for fd in os.listdir(d):
        info = fdinfo(os.path.join(d, fd))
        if "map_id" in info:
            out[int(info["map_id"])] = int(info.get("memlock", 0))
    return out


def programs():
    """(id, fd) of every eBPF program; the caller closes the fds."""
    pid = 0
    while True:
        a = (ctypes.c_uint32 * 4)(pid, 0, 0, 0)
        try:
            bpf(BPF_PROG_GET_NEXT_ID, a)
        except OSError:
            return
        pid = a[1]
        b = (ctypes.c_uint32 * 4)(pid, 0, 0, 0)
        try:
            fd = bpf(BPF_PROG_GET_FD_BY_ID, b)
        except OSError:
            continue		# gone meanwhile
        yield pid, fd


def prog_maps(fd):
    ids = (ctypes.c_uint32 * MAP_IDS_MAX)()
    info = ctypes.create_string_buffer(INFO_LEN)
    ctypes.c_uint32.from_buffer(info, INFO_NR_MAP_IDS).value = MAP_IDS_MAX
    ctypes.c_uint64.from_buffer(info, INFO_MAP_IDS).value = ctypes.addressof(ids)
    attr = (ctypes.c_uint32 * 4)(fd, INFO_LEN, 0, 0)
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    n = min(ctypes.c_uint32.from_buffer(info, INFO_NR_MAP_IDS).value, MAP_IDS_MAX)
    return set(ids[:n])


def daemon_programs(pid):
    """fdinfo of every program that uses a map process PID holds: its
    chain's head (attached to its socket, so counted once per packet) and
    links (tail-called: the head's run time includes theirs)."""
    maps = held_maps(pid)
    out = []
    for _, fd in programs():
        try:
            if prog_maps(fd) & set(maps):
                out.append(fdinfo("/proc/self/fdinfo/%d" % fd))
        finally:
            os.close(fd)
    return maps, out


def cmd_bpf(pid):
    _, progs = daemon_programs(pid)
    print(sum(int(p.get("run_time_ns", 0)) for p in progs),
          sum(int(p.get("run_cnt", 0)) for p in progs))
    return 0


def cmd_kmem(pid):
    maps, progs = daemon_programs(pid)
    print(sum(maps.values()) + sum(int(p.get("memlock", 0)) for p in progs))
    return 0


def cmd_stats():
    a = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME, 0, 0, 0)
    fd = bpf(BPF_ENABLE_STATS, a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        while True:
            signal.pause()
    finally:
        os.close(fd)


COMMANDS = {"new": cmd_new, "stop": cmd_stop, "running": cmd_running,
            "news": cmd_news, "stops": cmd_stops, "rtts": cmd_rtts, "bpf": cmd_bpf,
            "kmem": cmd_kmem, "stats": cmd_stats}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
