# tests/sys/slots.sh: the control socket's slots under attack. Silent
# connections, connections that drip a byte now and then, one uid's flood
# and clients that ask without reading never keep another client from an
# answer within a second, the daemon's memory stays bounded, no reply is
# lost, and the log says why each client was dropped. At the descriptor
# limit, the log stays short.
# alone: it times the answers while clients flood the daemon
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need python3 setpriv prlimit

# Any number does for -g; the other users' clients run with it as their group.
GID=47113
NOBODY=65534 OTHER=65533
chmod 755 "$TDIR"	# the other users must reach the socket

# mono_ms: a clock no one steps (another test may set the wall clock)
mono_ms() {
	local up
	read -r up _ </proc/uptime
	echo $((${up/./} * 10))
}

cat >"$TDIR/conns.py" <<'PY'
# conns.py hold PATH N SECONDS DRIP: N connections that send nothing, or,
#   with DRIP > 0, one byte each every DRIP seconds; prints how many the
#   daemon closed within SECONDS.
# conns.py pipe PATH N COUNT WAIT: N connections that each send COUNT list
#   requests, wait WAIT seconds without reading, then read; prints the ok
#   lines received in all and how many connections the daemon closed.
# Either prints "ready" first, once its connections are made.
import selectors, socket, sys, time

mode, path = sys.argv[1], sys.argv[2]
sel = selectors.DefaultSelector()

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ, [b"", 0])
    return s

def read(key, bufsize=65536):
    """What came on KEY's socket; None once the daemon closed it."""
    try:
        b = key.fileobj.recv(bufsize)
    except BlockingIOError:
        return b""
    except OSError:
        b = b""
    if not b:
        sel.unregister(key.fileobj)
        return None
    return b

if mode == "hold":
    n, secs, drip = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    for _ in range(n):
        connect()
    print("ready", flush=True)
    closed = 0
    now = time.monotonic()
    end, nextdrip = now + secs, now + drip
    while time.monotonic() < end:
        for key, _ in sel.select(0.05):
            if read(key) is None:
                closed += 1
        if drip > 0 and time.monotonic() >= nextdrip:
            nextdrip += drip
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.send(b"x")
                except OSError:
                    pass
    print(closed)
else:
    n, count, wait = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b"list\n" * count)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [b"", 0])
    print("ready", flush=True)
    time.sleep(wait)
    oks = closed = 0
    end = time.monotonic() + 40
    while sel.get_map() and time.monotonic() < end:
        for key, _ in sel.select(1):
            b = read(key, 1 << 20)
            if b is None:
                closed += 1
                continue
            lines = (key.data[0] + b).split(b"\n")
            key.data[0] = lines.pop()
            key.data[1] += lines.count(b"ok")
            oks += lines.count(b"ok")
            if key.data[1] == count:
                sel.unregister(key.fileobj)
    print(oks, closed)
PY

# as UID cmd...: run with that uid and the daemon's group
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$GID" --groups="$GID" "$@"
}

# conns [as UID] hold|pipe ARGS...: start conns.py in the background and
# wait (bounded) until its connections are made; CONNS is its pid
conns() {
	local pre=() n=100 first=
	if [ "$1" = as ]; then
		pre=(as "$2")
		shift 2
	fi
	"${pre[@]}" "$PY" "$TDIR/conns.py" "$1" "$SOCK" "${@:2}" \
	    >"$TDIR/conns.out" 2>&1 &
	CONNS=$!
	bg_track "$CONNS"
	while [ "$first" != ready ] && [ "$n" -gt 0 ] && pid_running "$CONNS"; do
		nap 0.05
		n=$((n - 1))
		read -r first <"$TDIR/conns.out"
	done
}

# conns_result: wait for conns.py to finish; what it printed after "ready"
conns_result() {
	bg_reap "$CONNS" 60
	sed 1d "$TDIR/conns.out"
}

# answers_fast WHAT [as UID]: `list` from another connection, within 1 s
answers_fast() {
	local what=$1 t0 ms pre=()
	[ "${2:-}" != as ] || pre=(as "$3")
	t0=$(mono_ms)
	if "${pre[@]}" timeout 5 "$CAPSTATS" -s "$SOCK" -m "$SHM" list >/dev/null 2>"$TDIR/list.err"; then
		ms=$(($(mono_ms) - t0))
		check "$what: list answers within 1 s ($ms ms)" test "$ms" -lt 1000
	else
		fail "$what: list fails: $(cat "$TDIR/list.err")"
	fi
}

# logged WHAT REGEX: the daemon's log has a line matching REGEX
logged() {
	if tail -n "+$T_LOGLINE" "$TDIR/daemon.log" | grep -Eq -- "$2"; then
		pass "$1"
	else
		fail "$1: no line matching /$2/ in the daemon's log"
		tail -n "+$T_LOGLINE" "$TDIR/daemon.log" | grep -v ' counting on ' |
		    tail -n 8 | indent
	fi
}

daemon_start -i lo -g "$GID" || exit 1

# Twenty sessions with long filters: a list is about 20 KB.
f=$(seq -s ' ' 1 62 | sed 's/\([0-9]*\)/or udp port \1/g; s/^or //')
for i in $(seq 1 20); do
	echo "new s$i interface lo filter $f or udp port $((1000 + i))"
done | "$PY" -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
" "$SOCK"
check_eq "20 sessions" 20 "$(cs -j list | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')"

# Silent flood: 300 of root's connections fill the table and the backlog.
# Once they had time to speak, the longest idle make way for newcomers.
conns hold 300 3 0
nap 0.6
answers_fast "300 silent connections"
n=$(conns_result)
check "... 45 or more of them made way ($n)" test "${n:-0}" -ge 45
logged "... and the log says why" "client uid 0: dropped: idle longest when all 256 connections are taken"

# One uid's flood: it keeps at most half the slots; root and other members
# get in at once.
conns as "$NOBODY" hold 300 2 0
answers_fast "300 connections of uid $NOBODY"
answers_fast "300 connections of uid $NOBODY, to uid $OTHER" as "$OTHER"
check_eq "... all but uid $NOBODY's 128 were turned away" 172 "$(conns_result)"
logged "... and the log says why" "client uid $NOBODY: (refused|dropped): .*uid $NOBODY has its 128 connections"

# Asking without reading: each client holds at most one reply past a small
# budget until it reads, and then gets every reply, in full.
pid_rss() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
echo 5 >"/proc/$T_DPID/clear_refs"	# VmHWM starts again from VmRSS
rss0=$(pid_rss "$T_DPID" VmRSS)
conns pipe 8 1000 2
nap 1
answers_fast "8 clients asking for 1000 lists each without reading"
read -r oks closed < <(conns_result)
check_eq "... then reading, they get every reply" "8000 0" "${oks:-?} ${closed:-?}"
hwm=$(pid_rss "$T_DPID" VmHWM)
if [ -n "$rss0" ] && [ -n "$hwm" ]; then
	check "... and the daemon grew by less than 60 MB at most ($((hwm - rss0)) kB)" \
	    test $((hwm - rss0)) -lt 61440
else
	fail "... the daemon's VmRSS and VmHWM cannot be read"
fi

# Slow drip: a byte every 3 s is no request, and does not keep a
# connection alive past 10 s.
conns as "$NOBODY" hold 256 11.5 3
answers_fast "256 connections dripping a byte every 3 s"
check_eq "... every one is closed within 11.5 s" 256 "$(conns_result)"
logged "... and the log says why" "client uid $NOBODY: dropped: no request for 10 s"

# At the descriptor limit accept fails every 100 ms: the log says so once,
# then how many times it repeated.
nfd=$(ls "/proc/$T_DPID/fd" | wc -l)
read -r soft hard < <(prlimit --pid "$T_DPID" --nofile --noheadings --output SOFT,HARD)
lines=$(wc -l <"$TDIR/daemon.log")
prlimit --pid "$T_DPID" --nofile=$((nfd + 2)):"$hard"
conns hold 20 3 0
conns_result >/dev/null
prlimit --pid "$T_DPID" --nofile="$soft":"$hard"
added=$(tail -n "+$((lines + 1))" "$TDIR/daemon.log")
n=$(printf '%s\n' "$added" | grep -c 'accept: Too many open files')
check "at the descriptor limit, accept's failure is logged once in 3 s ($n times)" test "$n" -eq 1
check "... and the log grows by a few lines at most ($(printf '%s\n' "$added" | wc -l))" \
    test "$(printf '%s\n' "$added" | wc -l)" -le 4
"$PY" -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'\x01\n')
while s.recv(4096): pass
" "$SOCK"
logged "... the next other message first says how often it repeated" \
    "last message repeated ([2-9]|[1-9][0-9]+) times"
answers_fast "after the descriptor limit is lifted"
daemon_stop
