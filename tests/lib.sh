# tests/lib.sh: sourced by every system test (tests/sys/*.sh). Result lines,
# private names for one test run, a foreground daemon on a private socket and
# segment, a veth pair with one end in a namespace, and a cleanup that removes
# exactly what this run created: never anything found by name, never pkill.
# Environment: TOP (repository), B (build dir), CAPSTATS (absolute path of the
# binary under test). Debian's unrelated `capstats` is never run: always "$CAPSTATS".

set -u

: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${B:=build}"
if [ -z "${CAPSTATS:-}" ]; then
	case $B in
	/*) CAPSTATS=$B/capstats ;;
	*) CAPSTATS=$TOP/$B/capstats ;;
	esac
fi
export TOP B CAPSTATS

# Test helpers need only python3's standard library; the system's is fastest
# to start (a version-manager shim can take 0.3 s a call).
if [ -z "${PY:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi

# Sanitizer reports must not look like "daemon refused" (exit 1).
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# ---------------------------------------------------------------- results

T_NFAIL=0

pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; T_NFAIL=$((T_NFAIL + 1)); }
skip() { printf 'SKIP: %s\n' "$*"; }
# indent: show context under a result line
indent() { sed 's/^/  | /'; }
# die "what": FAIL and end the test (cleanup still runs)
die() { fail "$*"; exit 1; }

# _run cmd...: a function or builtin runs as is, a program under timeout
_run() {
	case $(type -t "$1") in
	function | builtin) "$@" ;;
	*) timeout "$T_CMD_TIMEOUT" "$@" ;;
	esac
}

# check "what" cmd...: PASS if cmd exits 0, else FAIL with the command and its output
check() {
	local what=$1 out rc
	shift
	out=$(_run "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass "$what"
		return 0
	fi
	fail "$what"
	{
		printf 'command (exit %s):' "$rc"
		printf ' %q' "$@"
		printf '\n'
		[ -z "$out" ] || printf '%s\n' "$out"
	} | indent
	return 1
}

# check_eq "what" expected actual
check_eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
		return 0
	fi
	fail "$1: expected '$2', got '$3'"
	return 1
}

# check_match "what" regex string (bash ERE)
check_match() {
	if [[ $3 =~ $2 ]]; then
		pass "$1"
		return 0
	fi
	fail "$1: '$3' does not match /$2/"
	return 1
}

# check_fails "what" expected_exit cmd...: run cmd, check its exit status.
# Its stdout is left in $OUT and its stderr in $ERR for further checks.
OUT='' ERR=''
check_fails() {
	local what=$1 want=$2 rc
	shift 2
	_run "$@" >"$TDIR/check.out" 2>"$TDIR/check.err"
	rc=$?
	OUT=$(cat "$TDIR/check.out")
	ERR=$(cat "$TDIR/check.err")
	if [ "$rc" -eq "$want" ]; then
		pass "$what"
		return 0
	fi
	fail "$what: exit $rc, expected $want"
	{
		printf 'command:'
		printf ' %q' "$@"
		printf '\n'
		[ -z "$OUT" ] || printf 'stdout: %s\n' "$OUT"
		[ -z "$ERR" ] || printf 'stderr: %s\n' "$ERR"
	} | indent
	return 1
}

# require_root: system tests need root; in CI they must run, so this is a FAIL
require_root() {
	[ "$(id -u)" -eq 0 ] || die "${T_TAG}: must run as root (system tests are never skipped)"
}

# need CMD...: FAIL (not skip) for every missing tool, then end the test
need() {
	local c missing=0
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 && continue
		fail "${T_TAG}: needs '$c', which is not installed"
		missing=1
	done
	[ "$missing" -eq 0 ] || exit 1
}

# require_capstats: the binary under test must be an absolute, executable path
require_capstats() {
	case $CAPSTATS in
	/*) ;;
	*) die "${T_TAG}: CAPSTATS must be an absolute path, got '$CAPSTATS'" ;;
	esac
	[ -x "$CAPSTATS" ] || die "${T_TAG}: $CAPSTATS is not an executable (build it first)"
}

# build_tool VAR TARGET: make $B/TARGET as $B is built (build/asan: with the
# sanitizers) and set VAR to its absolute path; else FAIL with make's log
build_tool() {
	local san=0
	case $B in
	*/asan | */asan/* | asan | asan/*) san=1 ;;
	esac
	if ! make -C "$TOP" B="$B" SAN="$san" "$B/$2" >"$TDIR/make.log" 2>&1; then
		fail "${T_TAG}: cannot build $B/$2"
		indent <"$TDIR/make.log"
		exit 1
	fi
	case $B in
	/*) printf -v "$1" '%s' "$B/$2" ;;
	*) printf -v "$1" '%s' "$TOP/$B/$2" ;;
	esac
}

# ---------------------------------------------------------------- names

# The tag comes from the script name unless the test sets T_TAG first.
T_TAG=${T_TAG:-$(basename "$0" .sh)}
T_TAG=${T_TAG//[^A-Za-z0-9]/}
T_TAG=${T_TAG:-t}
T_CMD_TIMEOUT=${T_CMD_TIMEOUT:-30}	# seconds for any one program run by check/cs
T_START_TIMEOUT=${T_START_TIMEOUT:-5}	# seconds for the daemon to become ready
T_STOP_TIMEOUT=${T_STOP_TIMEOUT:-5}	# seconds for it to exit after SIGTERM
case $CAPSTATS in
*/asan/*) T_START_TIMEOUT=$((T_START_TIMEOUT * 2)) ;;
esac

# A short temp dir keeps the socket path far below sun_path's 108 bytes.
TDIR=$(mktemp -d "/tmp/cst-${T_TAG:0:8}-$$.XXXXXX") || {
	printf 'FAIL: %s: cannot create a temp dir\n' "$T_TAG"
	exit 1
}
SOCK=$TDIR/sock
SHM=capstats-t$$-${T_TAG:0:12}
STATE=$TDIR/state
PIDFILE=/var/run/$SHM.pid
# A bare "$CAPSTATS" must reach this test's daemon, never a real one.
export CAPSTATS_SOCKET=$SOCK CAPSTATS_SHM=$SHM

DAEMON_BUFFER_KB=${DAEMON_BUFFER_KB:-1024}
T_DPID=		# pid of the daemon this test started
T_DAEMON=0	# 1 once a daemon was started: it may have left a segment
T_LOGLINE=1	# where the last daemon's part of daemon.log starts
DAEMON_RC=	# exit status of the last daemon stopped
T_LINKS=()	# veth host ends created (deleting one deletes its peer)
T_NETNS=()	# namespaces created
T_BG=()		# other background processes started (bg_track)

# ---------------------------------------------------------------- processes

# pid_running PID: alive and not a zombie waiting to be reaped (no fork)
pid_running() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# nap SECONDS: sleep without starting a process (a read that times out on a
# FIFO nobody writes); wait loops run often and forks are slow on a busy box
nap() {
	if [ -p "$TDIR/nap" ] || mkfifo "$TDIR/nap" 2>/dev/null; then
		read -r -t "$1" <>"$TDIR/nap"
	else
		sleep "$1"
	fi
	return 0
}

# wait_exit PID SECONDS: wait (bounded) until PID is gone or a zombie
wait_exit() {
	local pid=$1 n=$(($2 * 20))
	while [ "$n" -gt 0 ] && pid_running "$pid"; do
		nap 0.05
		n=$((n - 1))
	done
	! pid_running "$pid"
}

# now_ms: wall clock in milliseconds, for durations
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# bg_track PID: cleanup will end this background process (by pid)
bg_track() { T_BG+=("$1"); }

# bg_stop PID: SIGTERM, bounded wait, SIGKILL; reaps it (it must be our
# child) and forgets it, so a reused pid is never signalled later
bg_stop() {
	kill -TERM "$1" 2>/dev/null
	wait_exit "$1" 5 || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	_bg_forget "$1"
	return 0
}

# bg_reap PID SECONDS: wait (bounded) for PID, a tracked child, to end by
# itself; REAPED is its exit status, or "timeout" once it had to be killed.
# PID is forgotten either way.
bg_reap() {
	REAPED=timeout
	if wait_exit "$1" "$2"; then
		wait "$1"
		REAPED=$?
	else
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
	fi
	_bg_forget "$1"
}

_bg_forget() {
	local x keep=()
	for x in "${T_BG[@]}"; do
		[ "$x" = "$1" ] || keep+=("$x")
	done
	T_BG=("${keep[@]}")
}

# ---------------------------------------------------------------- daemon

cs() { timeout "$T_CMD_TIMEOUT" "$CAPSTATS" -s "$SOCK" -m "$SHM" "$@"; }

daemon_log() { cat "$TDIR/daemon.log" 2>/dev/null; }

# daemon_alive: the daemon this test started is still running
daemon_alive() { [ -n "$T_DPID" ] && pid_running "$T_DPID"; }

# daemon_start [extra args]: start the daemon in the foreground on the private
# socket, segment and state file, with -B $DAEMON_BUFFER_KB (default 1024:
# small rings), and wait (bounded) until it answers `list`.
# On failure: FAIL with its log, return 1.
daemon_start() {
	local rc t=${EPOCHREALTIME/[.,]/}
	local deadline=$((t + T_START_TIMEOUT * 1000000))
	if [ -n "$T_DPID" ]; then
		fail "daemon_start: a daemon (pid $T_DPID) is already running"
		return 1
	fi
	T_LOGLINE=$(($(wc -l 2>/dev/null <"$TDIR/daemon.log" || echo 0) + 1))
	printf -- '--- %s -d -f -s %s -m %s -S %s -B %s %s\n' "$CAPSTATS" \
	    "$SOCK" "$SHM" "$STATE" "$DAEMON_BUFFER_KB" "$*" >>"$TDIR/daemon.log"
	"$CAPSTATS" -d -f -s "$SOCK" -m "$SHM" -S "$STATE" -B "$DAEMON_BUFFER_KB" "$@" \
	    </dev/null >>"$TDIR/daemon.log" 2>&1 &
	T_DPID=$!
	T_DAEMON=1
	while :; do
		if ! pid_running "$T_DPID"; then
			wait "$T_DPID" 2>/dev/null
			rc=$?
			fail "daemon_start: daemon exited $rc before it was ready"
			daemon_log | indent
			T_DPID=
			return 1
		fi
		# The socket exists before it accepts and costs no client run to
		# see; probes skip ASan's leak check at exit (2/3 of a client's cost).
		[ -S "$SOCK" ] && ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 \
		    timeout 5 "$CAPSTATS" -s "$SOCK" -m "$SHM" list >/dev/null 2>&1 && return 0
		t=${EPOCHREALTIME/[.,]/}
		[ "$t" -lt "$deadline" ] || break
		nap 0.02
	done
	fail "daemon_start: not ready (list on $SOCK) after ${T_START_TIMEOUT} s"
	daemon_log | indent
	daemon_stop >/dev/null
	return 1
}

# sanitizer_lines: the lines of a sanitizer report the daemon logged since
# it last started
sanitizer_lines() {
	tail -n "+$T_LOGLINE" "$TDIR/daemon.log" 2>/dev/null |
	    grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:'
}

# daemon_stop: SIGTERM by recorded pid, bounded wait, SIGKILL fallback. FAILs
# if it needed SIGKILL, exited non-zero, left its socket, segment or pidfile,
# or logged a sanitizer report (not when the test was interrupted). Sets DAEMON_RC.
daemon_stop() {
	local pid=$T_DPID ok=0 f
	[ -n "$pid" ] || return 0
	if ! pid_running "$pid"; then
		wait "$pid" 2>/dev/null
		DAEMON_RC=$?
		T_DPID=
		[ -z "$T_SIGNAL" ] || return 0
		fail "daemon_stop: the daemon had already exited (status $DAEMON_RC)"
		daemon_log | tail -60 | indent
		return 1
	fi
	kill -TERM "$pid" 2>/dev/null
	if ! wait_exit "$pid" "$T_STOP_TIMEOUT"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		DAEMON_RC=$?
		T_DPID=
		fail "daemon_stop: still running ${T_STOP_TIMEOUT} s after SIGTERM; killed"
		daemon_log | tail -40 | indent
		return 1
	fi
	wait "$pid" 2>/dev/null
	DAEMON_RC=$?
	T_DPID=
	# Interrupted: the signal to the process group reached the daemon too;
	# the test has failed already and only cleaning up is left.
	[ -z "$T_SIGNAL" ] || return 0
	if [ "$DAEMON_RC" -ne 0 ]; then
		fail "daemon_stop: daemon exited $DAEMON_RC after SIGTERM"
		ok=1
	fi
	for f in "$SOCK" "/dev/shm/$SHM" "$PIDFILE"; do
		[ -e "$f" ] || continue
		fail "daemon_stop: daemon left $f behind"
		ok=1
	done
	if [ -n "$(sanitizer_lines)" ]; then
		fail "daemon_stop: sanitizer report in the daemon log"
		ok=1
	fi
	[ "$ok" -eq 0 ] || daemon_log | tail -60 | indent
	return "$ok"
}

# ---------------------------------------------------------------- veth

# veth_up TAG: a netns and a veth pair, host end here, peer in the netns, set
# up as the corpus README says: IPv6 off and ARP off on both ends before
# link-up, GRO off, no addresses. Sets HOST_IF, PEER_IF, NETNS.
HOST_IF='' PEER_IF='' NETNS=''
veth_up() {
	local tag=${1:-v} h p ns n=100
	tag=${tag//[^A-Za-z0-9]/}
	tag=${tag:0:4}
	h=cs$tag$$h	# cs + 4 + pid (at most 7 digits) + 1 <= 15
	p=cs$tag$$p
	ns=cst-$tag-$$
	_vstep "ip netns add $ns" ip netns add "$ns" || return 1
	T_NETNS+=("$ns")
	_vstep "ip link add $h" ip link add "$h" type veth peer name "$p" netns "$ns" || return 1
	T_LINKS+=("$h")
	if [ -d /proc/sys/net/ipv6/conf ]; then
		_vstep "disable_ipv6 $h" sysctl -qw "net.ipv6.conf.$h.disable_ipv6=1" || return 1
		_vstep "disable_ipv6 $p" ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$p.disable_ipv6=1" || return 1
	fi
	_vstep "arp off $h" ip link set dev "$h" arp off || return 1
	_vstep "arp off $p" ip -n "$ns" link set dev "$p" arp off || return 1
	_vstep "gro off $h" ethtool -K "$h" gro off || return 1
	_vstep "gro off $p" ip netns exec "$ns" ethtool -K "$p" gro off || return 1
	_vstep "up $p" ip -n "$ns" link set dev "$p" up || return 1
	_vstep "up $h" ip link set dev "$h" up || return 1
	while [ "$(cat "/sys/class/net/$h/operstate" 2>/dev/null)" != up ]; do
		n=$((n - 1))
		if [ "$n" -le 0 ]; then
			fail "veth_up: $h not up after 5 s"
			return 1
		fi
		nap 0.05
	done
	HOST_IF=$h PEER_IF=$p NETNS=$ns
}

_vstep() { setup_step "veth_up: $1" "${@:2}"; }

# setup_step "what" cmd...: a set-up step, bounded (10 s); FAIL "what" with its
# output and return 1 if it fails
setup_step() {
	local what=$1 out
	shift
	out=$(timeout 10 "$@" 2>&1) && return 0
	fail "$what"
	printf '%s\n' "$out" | indent
	return 1
}

# if_stat IFACE COUNTER: a host-side interface counter
if_stat() {
	local v
	read -r v <"/sys/class/net/$1/statistics/$2" && echo "$v"
}

# pcap_count FILE...: "PACKETS BYTES" (sum of the records' wire length) of
# each pcap file, "-" for stdin
pcap_count() { "$PY" -c "$T_PCAP_PY" "$@"; }
T_PCAP_PY='
import struct, sys
def count(f):
    h = f.read(24)
    if h[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        rec = struct.Struct("<IIII")
    elif h[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        rec = struct.Struct(">IIII")
    else:
        sys.exit("not a pcap file")
    n = b = 0
    while True:
        r = f.read(16)
        if not r:
            return n, b
        if len(r) < 16:
            sys.exit("truncated record header")
        incl, orig = rec.unpack(r)[2:]
        if len(f.read(incl)) < incl:
            sys.exit("truncated record")
        n += 1
        b += orig
for a in sys.argv[1:]:
    if a == "-":
        print(*count(sys.stdin.buffer))
    else:
        with open(a, "rb") as f:
            print(*count(f))
'

# udp_pcap FILE N [PORT [VID]]: a capture of N Ethernet/IPv4/UDP frames of
# 60 bytes from 10.0.0.1 to 10.0.0.2 port PORT (default 9000), source ports
# 40000-40999 in turn; with VID, each with an 802.1Q tag of VID (64 bytes)
udp_pcap() {
	"$PY" - "$1" "$2" "${3:-9000}" "${4:-}" <<'EOF'
import struct, sys
path, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tag = struct.pack("!HH", 0x8100, int(sys.argv[4])) if sys.argv[4] else b""
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        udp = struct.pack("!HHHH", 40000 + i % 1000, port, 8 + 18, 0) + bytes(18)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff,
                         0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        frame = bytes.fromhex("020000000002020000000001") + tag + b"\x08\x00" + ip + udp
        f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(frame), len(frame)) + frame)
EOF
}

# replay FILE [PPS]: send FILE from the namespace end at PPS (default
# $REPLAY_PPS), wait (bounded) until the host end received all of it, then
# ~50 ms for the daemon to publish (exact checks: wait_count). FAILs and
# returns 1 if tcpreplay fails or the host end received or sent anything
# else. REPLAY_PACKETS = records sent.
REPLAY_PPS=${CAPSTATS_REPLAY_PPS:-5000}
REPLAY_PACKETS=0
replay() {
	local file=$1 pps=${2:-$REPLAY_PPS} n rx0 tx0 rx want wait
	n=$(pcap_count "$file") || {
		fail "replay: cannot read $file"
		return 1
	}
	n=${n%% *}
	REPLAY_PACKETS=$n
	rx0=$(if_stat "$HOST_IF" rx_packets)
	tx0=$(if_stat "$HOST_IF" tx_packets)
	want=$((rx0 + n))
	if ! timeout $((n / pps + 30)) ip netns exec "$NETNS" \
	    tcpreplay -q --intf1="$PEER_IF" --pps="$pps" "$file" >"$TDIR/tcpreplay.log" 2>&1; then
		fail "replay ${file##*/}: tcpreplay failed"
		indent <"$TDIR/tcpreplay.log"
		return 1
	fi
	wait=250
	read -r rx <"/sys/class/net/$HOST_IF/statistics/rx_packets"
	while [ "$rx" -lt "$want" ] && [ "$wait" -gt 0 ]; do
		nap 0.02
		wait=$((wait - 1))
		read -r rx <"/sys/class/net/$HOST_IF/statistics/rx_packets"
	done
	nap 0.05
	read -r rx <"/sys/class/net/$HOST_IF/statistics/rx_packets"
	if [ "$rx" -ne "$want" ]; then
		fail "replay ${file##*/}: $HOST_IF received $((rx - rx0)) packets, expected $n"
		indent <"$TDIR/tcpreplay.log"
		return 1
	fi
	if [ "$(if_stat "$HOST_IF" tx_packets)" -ne "$tx0" ]; then
		fail "replay ${file##*/}: $HOST_IF sent packets during the replay"
		return 1
	fi
	return 0
}

# new_many FILE PREFIX FIRST LAST [WORD...]: sessions PREFIX<i> on $HOST_IF
# for lines FIRST..LAST of FILE, a filter a line, WORDs (mode kernel, say)
# before the filter, pipelined over a few connections (tests/bench/ctl.py);
# prints the requests that failed, with why
new_many() {
	"$PY" - "$TOP/tests/bench" "$SOCK" "$HOST_IF" "$@" <<'EOF'
import sys
sys.dont_write_bytecode = True	# nothing written into the tree
sys.path.insert(0, sys.argv[1])
from ctl import pipelined
sock, iface, path, prefix, first, last = sys.argv[2:8]
words = "".join(w + " " for w in sys.argv[8:])
flt = open(path).read().splitlines()
print("\n".join(pipelined(sock, ["new %s%d interface %s %sfilter %s" % (
    prefix, i, iface, words, flt[i - 1]) for i in range(int(first), int(last) + 1)])))
EOF
}

# running_kernel: how many sessions run on the kernel path
running_kernel() {
	cs -j list | "$PY" -c 'import json, sys
print(sum(s["mode"] == "kernel" and s["state"] == "running" for s in json.load(sys.stdin)))'
}

# poll_field NAME KEY: one value of session NAME's counters (`poll -j`)
poll_field() {
	cs -j poll "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# wait_state NAME STATE: bounded wait (3 s) until the segment says STATE
wait_state() {
	local n=60
	while [ "$n" -gt 0 ]; do
		[ "$(poll_field "$1" state 2>/dev/null)" = "$2" ] && return 0
		nap 0.05
		n=$((n - 1))
	done
	return 1
}

# wait_count NAME PACKETS [SECONDS]: bounded wait (default 3 s) until session
# NAME's packet counter (`poll -j`, from the segment) reaches PACKETS; 1 if it
# did not. Counters trail the wire by the daemon's ring timeout and its turn
# on the CPU: on a busy machine that can exceed the 50 ms replay waits.
# WAIT_POLLS is the number of polls it took, WAIT_LAST the last count seen
# (-1: unreadable).
WAIT_POLLS=0 WAIT_LAST=-1
wait_count() {
	local t=${EPOCHREALTIME/[.,]/} j
	local deadline=$((t + ${3:-3} * 1000000))
	WAIT_POLLS=0
	while :; do
		WAIT_POLLS=$((WAIT_POLLS + 1))
		WAIT_LAST=-1
		j=$(ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 cs -j poll "$1" 2>/dev/null)
		[[ $j =~ \"packets\":\ *([0-9]+) ]] && WAIT_LAST=${BASH_REMATCH[1]}
		[ "$WAIT_LAST" -ge "$2" ] && return 0
		t=${EPOCHREALTIME/[.,]/}
		[ "$t" -lt "$deadline" ] || return 1
		nap 0.02
	done
}

# odd_iface NAME PEER: a veth NAME whose peer PEER waits, down, in $NETNS:
# an interface that carries nothing, for names that need escaping. FAILs and
# returns 1 when it cannot be made; cleanup deletes it by name.
odd_iface() {
	if ! ip link add name "$1" type veth peer name "$2" netns "$NETNS" \
	    2>"$TDIR/odd.err"; then
		fail "${T_TAG}: cannot create interface $1"
		indent <"$TDIR/odd.err"
		return 1
	fi
	T_LINKS+=("$1")
	echo 1 >"/proc/sys/net/ipv6/conf/$1/disable_ipv6"
	ip link set dev "$1" up
}

# http_get URL OUT: the body on stdout; the status and content type in
# OUT.status and OUT.type (an HTTP error is an answer too)
http_get() {
	"$PY" - "$1" "$2" <<-'EOF'
	import sys, urllib.request, urllib.error
	url, out = sys.argv[1:]
	try:
	    r = urllib.request.urlopen(url, timeout=10)
	except urllib.error.HTTPError as e:
	    r = e
	open(out + ".status", "w").write(str(r.status))
	open(out + ".type", "w").write(r.headers.get("Content-Type", ""))
	sys.stdout.buffer.write(r.read())
	EOF
}

# ---------------------------------------------------------------- namespaces

# ns_daemon_start NS [args]: daemon_start, with the daemon (and its readiness
# probes) in namespace NS; the socket and the segment are files, seen from
# every namespace.
ns_daemon_start() {
	local ns=$1
	shift
	printf '#!/bin/bash\nexec ip netns exec %q %q "$@"\n' "$ns" "$CAPSTATS" >"$TDIR/capstats-ns"
	chmod +x "$TDIR/capstats-ns"
	CAPSTATS=$TDIR/capstats-ns daemon_start "$@"
}

# state_wait FILE WORD SECONDS PID: bounded wait until the line in FILE (the
# state a helper program writes, by rename) starts with WORD, while PID
# runs; STATE_LINE is the last line read
STATE_LINE=
state_wait() {
	local n=$(($3 * 50))
	while [ "$n" -gt 0 ]; do
		read -r STATE_LINE 2>/dev/null <"$1"
		[ "${STATE_LINE%% *}" = "$2" ] && return 0
		pid_running "$4" || break
		nap 0.02
		n=$((n - 1))
	done
	return 1
}

# capture_start FILE IFACE DLT [EXPR]: tcpdump in namespace $CAPTURE_NS (if
# set) on IFACE, link type DLT, into FILE (its messages in FILE.err), with
# EXPR if given. Block mode, as a long capture runs: a block reaches the
# file when full or after 1 s (captures_drained); CAPTURE_OPTS=--immediate-mode
# for a capture of few packets, each written as it comes (a ring of frames
# of CAPTURE_SNAP bytes: make it short). CAPTURES are the pids and files of
# those started.
CAPTURES=()
CAPTURE_KB=16384
CAPTURE_SNAP=262144
CAPTURE_NS=
CAPTURE_OPTS=
capture_start() {
	local file=$1 iface=$2 dlt=$3 in=()
	shift 3
	[ -z "$CAPTURE_NS" ] || in=(ip netns exec "$CAPTURE_NS")
	: >"$file.err"	# emptied before tcpdump starts: see captures_listening
	"${in[@]}" tcpdump -Z root -n -i "$iface" -y "$dlt" -s "$CAPTURE_SNAP" $CAPTURE_OPTS \
	    -B "$CAPTURE_KB" -U -w "$file" "$@" >/dev/null 2>"$file.err" &
	bg_track $!
	CAPTURES+=("$! $file")
}

# captures_listening: bounded wait (10 s) until every capture is listening
captures_listening() {
	local c pid file n=500
	for c in "${CAPTURES[@]}"; do
		read -r pid file <<<"$c"
		while ! grep -q 'listening on' "$file.err"; do
			if ! pid_running "$pid" || [ "$n" -le 0 ]; then
				fail "${T_TAG}: tcpdump for ${file##*/} did not start listening"
				indent <"$file.err"
				return 1
			fi
			nap 0.02
			n=$((n - 1))
		done
	done
}

# captures_drained: bounded wait (10 s) until no capture has grown for 1.5 s,
# longer than tcpdump's ring keeps a block that is not full
captures_drained() {
	local c files=() n=100 same=0 now prev=''
	for c in "${CAPTURES[@]}"; do
		files+=("${c#* }")
	done
	while [ "$n" -gt 0 ] && [ "$same" -lt 15 ]; do
		now=$(stat -c %s "${files[@]}")
		if [ "$now" = "$prev" ]; then
			same=$((same + 1))
		else
			same=0
		fi
		prev=$now
		nap 0.1
		n=$((n - 1))
	done
	[ "$same" -ge 15 ]
}

# captures_stop: end every capture; FAIL for one that dropped packets
captures_stop() {
	local c pid file drop
	for c in "${CAPTURES[@]}"; do
		kill -TERM "${c%% *}" 2>/dev/null
	done
	for c in "${CAPTURES[@]}"; do
		read -r pid file <<<"$c"
		bg_stop "$pid"
		drop=$(sed -n 's/^\([0-9]*\) packets* dropped by kernel$/\1/p' "$file.err")
		[ "${drop:-x}" = 0 ] && continue
		fail "${T_TAG}: tcpdump for ${file##*/} dropped ${drop:-?} packets"
		indent <"$file.err"
	done
	CAPTURES=()
}

# ---------------------------------------------------------------- churn

# The churn tests (tests/sys/churn_*.sh) drive the daemon with tests/churn.py
# while churn_replay sends the background traffic.

# churn_replay NS IFACE FILE: in the background, tcpreplay FILE on IFACE in
# namespace NS, one at a time, each for a second at the next rate of
# $CHURN_RATES, until $TDIR/traffic.stop appears; the rates done go to
# $TDIR/traffic.done, failures to $TDIR/traffic.err. Sets CHURN_GEN (tracked).
CHURN_RATES="300 2000 20000 800 8000 30000 500 4000"
CHURN_GEN=
churn_replay() {
	_churn_replay "$@" &
	CHURN_GEN=$!
	bg_track "$CHURN_GEN"
}
_churn_replay() {
	local pps tr=
	trap '[ -z "$tr" ] || kill -TERM "$tr" 2>/dev/null; exit 0' TERM
	while [ ! -e "$TDIR/traffic.stop" ]; do
		for pps in $CHURN_RATES; do
			[ -e "$TDIR/traffic.stop" ] && break
			ip netns exec "$1" tcpreplay -q --intf1="$2" \
			    --pps="$pps" --loop=0 --duration=1 "$3" \
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

# churn_client NS SECONDS ARG...: tests/churn.py in namespace NS with the
# control socket and ARGs (PROBE_IF OPS SEED PORT SECONDS [IFACE...]),
# bounded by SECONDS; then the background traffic stops. PASS with the
# number of requests, or FAIL (with whether the daemon died, and its
# sanitizer report) and return 1. The summary is in $TDIR/driver.json.
churn_client() {
	local ns=$1 t=$2 rc t0
	shift 2
	t0=$(now_ms)
	ip netns exec "$ns" timeout "$t" "$PY" "$TOP/tests/churn.py" "$SOCK" "$1" "$2" \
	    "$3" "$4" "$5" "$TDIR/driver.json" "${@:6}" >"$TDIR/driver.out" 2>&1
	rc=$?
	touch "$TDIR/traffic.stop"
	[ -z "$CHURN_GEN" ] || bg_reap "$CHURN_GEN" 5
	if [ "$rc" -ne 0 ] || [ ! -s "$TDIR/driver.json" ]; then
		fail "the churn client ended with status $rc"
		indent <"$TDIR/driver.out"
		if ! daemon_alive; then
			fail "the daemon died during the churn"
			sed -n '/ERROR: AddressSanitizer\|runtime error:/,/SUMMARY/p' "$TDIR/daemon.log" |
			    head -60 | indent
		fi
		return 1
	fi
	pass "the churn client ran $(churn_get 'sum(d["done"].values())') requests in $(($(now_ms) - t0)) ms"
}

# churn_get EXPR: a value from the churn client's summary (d)
churn_get() { "$PY" -c "import json,sys; d = json.load(open(sys.argv[1])); print($1)" "$TDIR/driver.json"; }

# churn_checks: what every churn run must show: the requests by kind, the
# background traffic at every rate and tcpreplay never failing, every
# request answered ok (a compile deadline met on a busy machine is retried
# once, and said), a message with every failure
churn_checks() {
	local nretry nfail
	echo "  $(churn_get '" ".join("%s=%d" % kv for kv in sorted(d["done"].items()))')," \
	    "new by mode: $(churn_get '" ".join("%s=%d" % kv for kv in sorted(d["by_mode"].items()))')," \
	    "$(churn_get 'd["vanished"]') clients gone mid-request"
	nretry=$(churn_get 'len(d["retried"])')
	if [ "$nretry" -gt 0 ]; then
		echo "  $nretry requests met the 500 ms compile deadline and were sent again:"
		churn_get '"\n".join(d["retried"][:10])' | indent
	fi
	check_eq "the background traffic ran at every rate, packets/s" \
	    "$(printf '%s\n' $CHURN_RATES | sort -n | tr '\n' ' ')" \
	    "$(sort -nu "$TDIR/traffic.done" 2>/dev/null | tr '\n' ' ')"
	check "and tcpreplay never failed" test ! -s "$TDIR/traffic.err"
	[ ! -s "$TDIR/traffic.err" ] || indent <"$TDIR/traffic.err"
	nfail=$(churn_get 'len(d["fails"])')
	if [ "$nfail" -eq 0 ]; then
		pass "every one of $(churn_get 'sum(d["done"].values())') requests succeeded"
	else
		fail "$nfail of $(churn_get 'sum(d["done"].values())') valid requests failed"
		churn_get '"\n".join(d["fails"][:20])' | indent
	fi
	check_eq "every failure came with a message" 0 \
	    "$(churn_get 'sum(f.endswith("(no message)") for f in d["fails"])')"
}

# churn_leftovers KEPT...: after the churn, the daemon answers, each session
# a vanished client left stops like any other, and only KEPT are left
churn_leftovers() {
	local gone g bad=0
	check "the daemon is alive after the churn" daemon_alive
	check "list answers" cs list
	# A moment first, for the last requests of those clients to be read.
	nap 0.5
	gone=$(cs -j list | "$PY" -c 'import json,sys; print(*sorted(s["session"] for s in json.load(sys.stdin) if s["session"].startswith("g")))')
	for g in $gone; do
		cs stop "$g" >"$TDIR/stop.out" 2>&1 || { bad=$((bad + 1)); indent <"$TDIR/stop.out"; }
	done
	check_eq "the $(echo $gone | wc -w) sessions left by vanished clients stop" 0 "$bad"
	check_eq "only the kept sessions are left" "$*" \
	    "$(cs -j list | "$PY" -c 'import json,sys; print(*sorted(s["session"] for s in json.load(sys.stdin)))')"
}

# no_sanitizer_report: PASS when the running daemon's log has none
no_sanitizer_report() {
	check "no sanitizer report in the daemon log" test -z "$(sanitizer_lines)"
}

# ---------------------------------------------------------------- cleanup

# cleanup (EXIT trap): stop what this run started, by pid; delete the links
# and namespaces it created, by name; remove its temp dir, and the segment and
# pidfile its daemon may have left. Keeps the exit status.
cleanup() {
	local rc=$? x
	set +e
	# A group-wide signal arrives more than once (timeout(1) sends it to the
	# child and to the group): finish cleaning up; every wait here is bounded.
	trap - EXIT
	trap '' INT TERM HUP
	for x in "${T_BG[@]}"; do
		bg_stop "$x"
	done
	daemon_stop
	for x in "${T_LINKS[@]}"; do
		ip link del dev "$x" 2>/dev/null
	done
	for x in "${T_NETNS[@]}"; do
		ip netns del "$x" 2>/dev/null
	done
	if [ "$T_DAEMON" -eq 1 ]; then
		rm -f "/dev/shm/$SHM" "$PIDFILE"
	fi
	if [ -n "${CAPSTATS_KEEP:-}" ]; then
		printf 'kept %s\n' "$TDIR"
	else
		rm -rf "$TDIR"
	fi
	[ "$rc" -ne 0 ] || [ "$T_NFAIL" -eq 0 ] || rc=1
	exit "$rc"
}
T_SIGNAL=
trap cleanup EXIT
trap 'T_SIGNAL=INT; exit 130' INT
trap 'T_SIGNAL=TERM; exit 143' TERM HUP
