# tests/sys/compile.sh: a filter compiles in a child while the loop goes on.
# Three filters that take libpcap's optimizer longer than the deadline are
# in flight at once: the heartbeat never pauses over 100 ms, another
# client's list answers, and a session goes on counting. Sessions restored
# from the state file that cannot start (a filter libpcap refuses, an
# interface not there yet) try again after 1, 2, 4... s and log each
# failure once; the one whose interface appears starts counting.
# alone: it times the heartbeat and the answers while filters compile
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip "$PY"

slow=$(cat "$TOP/tests/fuzz/slow/slow-filter-portrange") ||
    die "compile: no slow filter in tests/fuzz/slow"
daemon_start -i lo || exit 1
check "a session to keep counting" cs new steady interface lo filter udp port 9631

# The heartbeat's age, sampled every 2 ms from the segment while the slow
# compiles run; prints the largest age seen, in ms, and how many samples.
"$PY" - "$SHM" "$TDIR/beat.out" <<'EOF' &
import mmap, os, struct, sys, time
name, out = sys.argv[1:]
fd = os.open("/dev/shm/" + name.lstrip("/"), os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
q = memoryview(mm).cast("B")[:4096].cast("Q")
worst, n, end = 0, 0, time.monotonic() + 2.5
while time.monotonic() < end:
    worst = max(worst, time.monotonic_ns() - q[136 // 8])
    n += 1
    time.sleep(0.002)
open(out, "w").write("%d %d\n" % (worst // 1000000, n))
EOF
beat=$!
bg_track "$beat"
nap 0.1
t0=$(now_ms)
for i in 1 2 3; do
	cs new "slow$i" interface lo filter "$slow" >"$TDIR/slow$i.out" 2>&1 &
	bg_track $!
	eval "slowpid$i=$!"
done
nap 0.1
t1=$(now_ms)
check "another client's list answers while three compiles run" cs list
# Each compile takes 500 ms of CPU; the list, a few. However busy the
# machine, a loop that waited for a compile would answer after it.
running=0
for i in 1 2 3; do
	eval "p=\$slowpid$i"
	pid_running "$p" && running=$((running + 1))
done
check_eq "... before any of them was answered ($(($(now_ms) - t1)) ms)" 3 "$running"
"$PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(7): s.sendto(b'x', ('127.0.0.1', 9631))
"
for i in 1 2 3; do
	eval "p=\$slowpid$i"
	wait "$p"
	check_eq "slow filter $i is refused (exit 1)" 1 "$?"
	check_match "... as too slow to compile" "takes more than 500 ms to compile" \
	    "$(cat "$TDIR/slow$i.out")"
done
check "the three were answered within 5 s" test $(($(now_ms) - t0)) -lt 5000
wait "$beat"
read -r worst samples <"$TDIR/beat.out"
echo "  heartbeat: at most $worst ms old over $samples samples"
check "the segment was sampled" test "${samples:-0}" -gt 100
check "the heartbeat never paused over 100 ms" test "${worst:-999}" -le 100
check "the session counted through the compiles" wait_count steady 7
check "no slow session was left behind" test -z "$(cs list | grep slow)"
daemon_stop

# ---- retries with back-off, from the state file

IF=cscomp$$d
printf '# capstats state 1\nsession\tbadf\tlo\tauto\tip[\nsession\tlater\t%s\tauto\tudp\n' \
    "$IF" >"$STATE"
daemon_start -i lo -D || exit 1
nap 2.5
check_eq "a filter libpcap refuses: in error" error "$(poll_field badf state)"
check_eq "an interface not there yet: in error" error "$(poll_field later state)"
ip link add "$IF" type veth peer name "${IF}p" && T_LINKS+=("$IF") &&
    ip link set "$IF" up ||
    die "compile: cannot add a veth pair"
nap 5
tries=$(grep -c 'session badf: trying again' "$TDIR/daemon.log")
# Tried at 0, 1, 3 and 7 s: at most 4 in 7.5 s (7 or 8 at one a second).
check "the failing session was tried at 1, 2, 4 s intervals ($tries tries)" \
    test "$tries" -ge 3 -a "$tries" -le 4
check_eq "its failure was logged once" 1 \
    "$(grep -c "session badf: filter 'ip\['" "$TDIR/daemon.log")"
check "the interface that appeared is counted" wait_state later running
daemon_stop

# Stopping while restored sessions still compile ends each compile once.
printf '# capstats state 1\nsession\tslowr\tlo\tauto\t%s\n' "$slow" >"$STATE"
daemon_start -i lo || exit 1
check_eq "a restored session is compiling" error "$(poll_field slowr state)"
daemon_stop
check_eq "the daemon stopped cleanly while it compiled" 0 "$DAEMON_RC"

# A session stopped while its filter compiles: nothing of it is left, the
# daemon goes on, and the next filter compiles.
printf '# capstats state 1\nsession\tslows\tlo\tauto\t%s\n' "$slow" >"$STATE"
daemon_start -i lo || exit 1
check_eq "a restored session is compiling" error "$(poll_field slows state)"
check "it is stopped while it compiles" cs stop slows
check "a filter compiles after it" cs new quick interface lo filter udp
nap 3		# longer than the slow filter would take to compile
check_eq "only that session is listed 3 s later" "quick" \
    "$(cs list | awk 'NR > 1 { print $1 }')"
daemon_stop
check_eq "the daemon stopped cleanly" 0 "$DAEMON_RC"

# ---- the compiler processes: one compiles each filter in turn, forked
# by the daemon; killed idle or in the middle of a filter, or stopped, it
# is replaced, and it never holds what the daemon opened.

compilers() { ps -o pid= --ppid "$T_DPID" | tr -d ' '; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# logged PATTERN: the daemon's log says so, within 3 s
logged() {
	local n=60
	until grep -q -e "$1" "$TDIR/daemon.log"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		nap 0.05
	done
}
# shared A B: the sockets, pipes, shared mappings and the loop's epoll,
# signal and timer descriptors both processes hold (libpcap's eventfds
# cannot be told apart by name)
shared() {
	comm -12 <(held "$1") <(held "$2")
}
held() {
	{ ls -l "/proc/$1/fd" | awk '$NF ~ /^(socket|pipe):|^anon_inode:\[(eventpoll|signalfd|timerfd)\]/ { print $NF }'
	  awk '$2 ~ /s$/ { print $NF }' "/proc/$1/maps"; } | sort -u
}

rm -f "$STATE"
daemon_start -i lo || exit 1
check "a libpcap session, with a ring" cs new ring interface lo mode pcap filter udp
w=$(compilers)
check_match "the filters compiled in one process, a child of the daemon" '^[0-9]+$' "$w"
kill -KILL "$w"
check "the daemon logs a compiler killed while idle" logged "filter compiler $w was killed by signal 9"
check "after it, a filter compiles" cs new after1 interface lo filter tcp
w2=$(compilers)
check "... in another process" test -n "$w2" -a "$w2" != "$w"
check_eq "which holds none of the daemon's sockets, its segment or its ring" "" \
    "$(shared "$T_DPID" "$w2")"

# Killed in the middle of a filter: that new fails and says so.
t0=$(cpu_ticks "$w2")
cs new slowk interface lo filter "$slow" >"$TDIR/slowk.out" 2>&1 &
k=$!
bg_track "$k"
n=200
while [ "$(cpu_ticks "$w2")" -lt $((t0 + 10)) ] && [ "$n" -gt 0 ]; do
	nap 0.02
	n=$((n - 1))
done
kill -KILL "$w2"
wait "$k"
check_eq "a filter whose compiler is killed is refused (exit 1)" 1 "$?"
check_match "... saying the compiler was killed" \
    "the compiler process was killed by signal 9; try again" "$(cat "$TDIR/slowk.out")"
check "after it, a filter compiles" cs new after2 interface lo filter udp port 53
check "no session of the killed compile" sh -c "! '$CAPSTATS' -s '$SOCK' -m '$SHM' list | grep -q slowk"

# Stopped: it gets no CPU; the wall clock refuses the filter and ends it.
w3=$(compilers)
kill -STOP "$w3"
t0=$(now_ms)
check_fails "a filter whose compiler is stopped is refused" 1 \
    cs new stopped interface lo filter udp
check_match "... as too slow to compile" "takes more than 500 ms to compile" "$ERR"
check "... after the wall clock's 5 s" test $(($(now_ms) - t0)) -ge 4900
check "the daemon logs it" logged "filter compiler $w3: no answer in 5000 ms; killed"
check "after it, a filter compiles" cs new after3 interface lo filter icmp
check "... in another process" test "$(compilers)" != "$w3"
check "the ring session counted on" cs poll ring

# An interface name that comes back as another kind: the filter is
# compiled for the new one (a raw IP tun takes no Ethernet address).
IF2=cscomp$$k
ip link add "$IF2" type veth peer name "${IF2}p" && T_LINKS+=("$IF2") &&
    ip link set "$IF2" up || die "compile: cannot add a veth pair"
check "an Ethernet filter compiles on a veth" \
    cs new eth1 interface "$IF2" filter ether host 02:00:00:00:00:01
ip link del "$IF2"
ip tuntap add dev "$IF2" mode tun && ip link set "$IF2" up ||
    die "compile: cannot add a tun"
check_fails "... and not on the tun that took its name" 1 \
    cs new eth2 interface "$IF2" filter ether host 02:00:00:00:00:01
check_match "... refused by libpcap" "filter 'ether host" "$ERR"
check "an IP filter compiles on the tun" cs new ip2 interface "$IF2" filter ip
daemon_stop
