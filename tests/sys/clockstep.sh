# tests/sys/clockstep.sh: counts stay exact when the wall clock steps. The
# system clock goes back an hour and forward again while sessions count on
# both paths, filters change before and after each step, and the packets
# sent after each step are all counted, once. The clock is put back however
# the test ends: the saved wall time plus the monotonic time elapsed.
#
# It steps the clock of the whole machine, for a few seconds at a time. A
# time daemon (chronyd, systemd-timesyncd, ntpd) may step it too meanwhile;
# the test says so when it sees one running, and carries on.
# alone: it steps the system clock, which every other test would see
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool python3

cat >"$TDIR/clock.py" <<'EOF'
import sys, time
R, M = time.CLOCK_REALTIME, time.CLOCK_MONOTONIC
cmd, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
if cmd == "save":		# the wall clock and the monotonic one, at one moment
    m0 = time.clock_gettime_ns(M)
    r = time.clock_gettime_ns(R)
    m1 = time.clock_gettime_ns(M)
    print(r, (m0 + m1) // 2)
elif cmd == "step":		# SECONDS, either way
    time.clock_settime_ns(R, time.clock_gettime_ns(R) + args[0] * 10**9)
elif cmd == "restore":		# SAVED_REALTIME SAVED_MONOTONIC
    time.clock_settime_ns(R, args[0] + time.clock_gettime_ns(M) - args[1])
elif cmd == "mono":		# the monotonic clock, in milliseconds
    print(time.clock_gettime_ns(M) // 10**6)
elif cmd == "offset":		# milliseconds the wall clock is off
    print((time.clock_gettime_ns(R) - (args[0] + time.clock_gettime_ns(M) - args[1])) // 10**6)
EOF
clock() { "$PY" "$TDIR/clock.py" "$@"; }

for p in /proc/[0-9]*/comm; do
	read -r c 2>/dev/null <"$p" || continue
	case $c in
	chronyd | systemd-timesyn | ntpd | openntpd | timed)
		echo "  note: $c is running and may step the clock during this test" ;;
	esac
done

read -r CLK_RT CLK_MONO <<<"$(clock save)" || die "cannot read the clocks"
STEPPED=0
# clock_restore: the wall clock back where it would be; FAIL if it cannot be
clock_restore() {
	[ "$STEPPED" -eq 1 ] || return 0
	if clock restore "$CLK_RT" "$CLK_MONO"; then
		STEPPED=0
	else
		fail "COULD NOT RESTORE THE WALL CLOCK: set it by hand"
	fi
}
# On any exit, before lib.sh's cleanup, which reads the exit status.
clock_guard() {
	local rc=$?
	trap '' INT TERM HUP
	clock_restore
	return "$rc"
}
trap 'clock_guard; cleanup' EXIT

# step_back: the wall clock an hour back
step_back() {
	STEPPED=1
	BACK_AT=$(clock mono)
	clock step -3600 || fail "clock_settime failed"
	echo "  the wall clock is now $(date -u '+%F %T') UTC (stepped back an hour)"
}
# step_forward: and forward again, to the right time
step_forward() {
	clock_restore
	echo "  the wall clock is now $(date -u '+%F %T') UTC (forward again," \
	    "after $(($(clock mono) - BACK_AT)) ms back)"
}

# ---- packets, sent from the namespace end, paced by the monotonic clock

cat >"$TDIR/send.py" <<'EOF'
import socket, struct, sys, time
ifname, pps = sys.argv[1], int(sys.argv[2])
plan = [(int(p), int(n)) for p, n in (a.split(":") for a in sys.argv[3:])]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
def frame(port, i):
    udp = struct.pack("!HHHH", 41000 + i % 1000, port, 26, 0) + bytes(18)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff,
                     0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
# The ports of the plan in turn, one packet each, until each has its count.
left = dict(plan)
t0, i = time.monotonic(), 0
while any(left.values()):
    for port, _ in plan:
        if left[port] == 0:
            continue
        if pps:
            d = t0 + i / pps - time.monotonic()
            if d > 0:
                time.sleep(d)
        s.send(frame(port, i))
        left[port] -= 1
        i += 1
EOF
# sender PPS PORT:N...: run send.py in the namespace (0: as fast as it can)
sender() { ip netns exec "$NETNS" timeout 60 "$PY" "$TDIR/send.py" "$PEER_IF" "$@"; }

# rx_wait WANT: bounded wait (5 s) for the host end to have received WANT
rx_wait() {
	local rx n=250
	while read -r rx <"/sys/class/net/$HOST_IF/statistics/rx_packets" &&
	    [ "$rx" -lt "$1" ] && [ "$n" -gt 0 ]; do
		nap 0.02
		n=$((n - 1))
	done
	[ "$rx" -eq "$1" ] || fail "$HOST_IF received $((rx - RX0)) packets, expected $(($1 - RX0))"
}

# send PPS PORT:N...: send, add to what each port expects, wait for arrival
declare -A SENT=([9101]=0 [9102]=0)
send() {
	local pps=$1 a total=0 rx0
	shift
	rx0=$(if_stat "$HOST_IF" rx_packets)
	sender "$pps" "$@" || fail "sending $* failed"
	for a in "$@"; do
		SENT[${a%:*}]=$((SENT[${a%:*}] + ${a#*:}))
		total=$((total + ${a#*:}))
	done
	RX0=$rx0 rx_wait $((rx0 + total))
}

# ---- the sessions and their checks

# port_of NAME: the port session NAME counts; path_of NAME: its path
port_of() { case $1 in ?m) echo 9102 ;; *) echo 9101 ;; esac; }
path_of() { case $1 in p?) echo pcap ;; *) echo kernel ;; esac; }

# read_counts: C[NAME.packets], C[NAME.bytes], C[NAME.drops], C[NAME.up]
# of every session, and C[age], the heartbeat's age; one read of the segment
declare -A C=()
read_counts() {
	local n k v
	C=()
	while read -r n k v; do
		C[$n.$k]=$v
	done < <(ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 cs metrics 2>&1 | sed -n \
	    -e 's/^capstats_\(packets\|bytes\|drops\)_total{session="\([^"]*\)".*} \([0-9]*\)$/\2 \1 \3/p' \
	    -e 's/^capstats_\(up\){session="\([^"]*\)".*} \([0-9]*\)$/\2 \1 \3/p' \
	    -e 's/^capstats_heartbeat_age_seconds \(.*\)/age - \1/p')
	C[age]=${C[age.-]:-unreadable}
}

# expected NAME: how many packets were sent to its port since it started
declare -A BASE=() SEEN=() SEENB=() DONE=()
expected() { echo $((SENT[$(port_of "$1")] - ${BASE[$1]:-0})); }

# uptime_cs: UPTIME, centiseconds of /proc/uptime, a clock no step moves
UPTIME=0
uptime_cs() {
	read -r UPTIME _ </proc/uptime
	UPTIME=${UPTIME/./}
	UPTIME=$((10#$UPTIME))
}

# verify WHEN: each session counted exactly what was sent to its port since
# the last verify; a loss fails where it happened, once. Waits at most 2 s
# of /proc/uptime (1 s while stepped), whatever the wall clock does.
SESSIONS="pk kk pm km"
verify() {
	local s short want end got
	uptime_cs
	end=$((UPTIME + 200 - 100 * STEPPED))
	while :; do
		read_counts
		short=0
		for s in $SESSIONS; do
			[ "${C[$s.packets]:-0}" -ge $((${SEEN[$s]:-0} + $(expected "$s") - ${DONE[$s]:-0})) ] ||
			    short=1
		done
		uptime_cs
		[ "$short" -eq 1 ] && [ "$UPTIME" -lt "$end" ] || break
		nap 0.05
	done
	nap 0.1		# more than was sent would show by now
	read_counts
	for s in $SESSIONS; do
		want=$(($(expected "$s") - ${DONE[$s]:-0}))
		got="session not in the segment"
		if [ -n "${C[$s.packets]:-}" ] && [ -n "${C[$s.bytes]:-}" ]; then
			got="$((C[$s.packets] - ${SEEN[$s]:-0})) $((C[$s.bytes] - ${SEENB[$s]:-0}))"
			SEEN[$s]=${C[$s.packets]} SEENB[$s]=${C[$s.bytes]}
			DONE[$s]=$(expected "$s")
		fi
		check_eq "$1: $s ($(path_of "$s") path) counted the $want packets sent since the last check" \
		    "$want $((want * 60))" "$got"
	done
}

# wait_running NAME SECONDS: bounded wait (/proc/uptime) for state running
wait_running() {
	local end
	uptime_cs
	end=$((UPTIME + $2 * 100))
	until read_counts && [ "${C[$1.up]:-0}" = 1 ]; do
		uptime_cs
		[ "$UPTIME" -lt "$end" ] || return 1
		nap 0.1
	done
}

# refilter WHEN: modify pm and km to the next of equivalent filters
FILTERS=("udp port 9102" "dst port 9102 and udp" "udp and dst port 9102" "udp dst port 9102")
NF=0
refilter() {
	local s f=${FILTERS[$((NF % ${#FILTERS[@]}))]}
	NF=$((NF + 1))
	for s in pm km; do
		check "$1: modify $s '$f'" cs modify "$s" "$f"
	done
}

veth_up clk || exit 1
daemon_start -i "$HOST_IF" || exit 1
check "new pk, pcap path" cs new pk mode pcap filter "udp dst port 9101"
check "new kk, kernel path" cs new kk mode kernel filter "udp dst port 9101"
check "new pm, pcap path" cs new pm mode pcap filter "udp dst port 9102"
check "new km, kernel path" cs new km mode kernel filter "udp dst port 9102"
send 2000 9101:100 9102:100
verify "before any step"
refilter "before any step"
send 2000 9101:100 9102:100
verify "after that modify"

# ---- back an hour, filters changed just before and after

# Sessions that start just before the step and see nothing until after it.
check "new pf, pcap path, just before the step back" cs new pf mode pcap filter "udp dst port 9101"
check "new kf, kernel path, just before the step back" cs new kf mode kernel filter "udp dst port 9101"
SESSIONS="$SESSIONS pf kf"
BASE[pf]=${SENT[9101]} BASE[kf]=${SENT[9101]}
# One whose interface is gone: it tries again 1 s later, then 2 s...
LATER=csclk$$l
odd_iface "$LATER" "csclk$$m" || exit 1
check "new later, pcap path" cs new later interface "$LATER" mode pcap filter "udp dst port 9101"
ip link del dev "$LATER"
check "its interface deleted, it is in error" wait_state later error
refilter "just before the step back"
step_back
read_counts
check "stepped back, the heartbeat is fresh (age ${C[age]} s)" \
    "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) < 1)" "${C[age]}"
# The interface is back: the retry 1 or 2 s after the last failure counts
# seconds of the monotonic clock, not an hour and a second of the wall one.
odd_iface "$LATER" "csclk$$m"
send 2000 9101:200 9102:200
verify "stepped back, the first packets after a modify"
refilter "stepped back"
# and sessions started while the clock is back
check "new pn, pcap path, while stepped back" cs new pn mode pcap filter "udp dst port 9101"
check "new kn, kernel path, while stepped back" cs new kn mode kernel filter "udp dst port 9101"
SESSIONS="$SESSIONS pn kn"
BASE[pn]=${SENT[9101]} BASE[kn]=${SENT[9101]}
send 0 9101:2000 9102:2000
verify "stepped back, after another modify, 4000 packets as fast as they go"
check "stepped back, its interface back: later runs again within 5 s" \
    wait_running later 5

# ---- forward again, filters changed just before and after

refilter "just before the step forward"
step_forward
send 2000 9101:200 9102:200
verify "stepped forward, the first packets after a modify"
refilter "stepped forward"
send 2000 9101:200 9102:200
verify "stepped forward, after another modify"

# ---- both steps while packets flow, filters changed in between

rx0=$(if_stat "$HOST_IF" rx_packets)
sender 4000 9101:4000 9102:4000 &
gen=$!
bg_track "$gen"
nap 0.3
step_back
nap 0.2
refilter "traffic flowing, stepped back"
nap 0.2
step_forward
nap 0.2
refilter "traffic flowing, stepped forward"
bg_reap "$gen" 10
check_eq "the sender sent everything" 0 "$REAPED"
SENT[9101]=$((SENT[9101] + 4000)) SENT[9102]=$((SENT[9102] + 4000))
RX0=$rx0 rx_wait $((rx0 + 8000))
verify "stepped back and forward while 8000 packets flowed"

nap 0.2		# drop counts are refreshed every 100 ms
read_counts
for s in $SESSIONS; do
	check_eq "$s dropped nothing" 0 "${C[$s.drops]:-unreadable}"
done
off=$(clock offset "$CLK_RT" "$CLK_MONO")
echo "  the wall clock is off by $off ms from the saved time plus the monotonic time elapsed"
check "the wall clock was restored, within 1 s" test "${off#-}" -lt 1000
check "the daemon is alive" daemon_alive
daemon_stop
