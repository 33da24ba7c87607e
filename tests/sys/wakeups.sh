# tests/sys/wakeups.sh: the libpcap path wakes per packet only while packets
# are few: a busy session is read on the daemon's millisecond tick, counts
# stay exact through the changes, and the tick stops once traffic does.
# alone: it counts the daemon's wake-ups, which other work would change
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

N=20000 PPS=20000 SLOW=50
udp_pcap "$TDIR/udp.pcap" "$N"
udp_pcap "$TDIR/slow.pcap" "$SLOW"

# switches: the daemon's voluntary context switches, one per wait for events
switches() { sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "/proc/$T_DPID/status"; }

veth_up wake || exit 1
daemon_start -i "$HOST_IF" || exit 1
check "new, pcap path" cs new busy mode pcap filter "udp dst port 9000"

a=$(switches)
replay "$TDIR/udp.pcap" "$PPS"
wait_count busy "$N"
b=$(switches)
check_eq "every packet of $N at $PPS/s is counted" "$N" "$(poll_field busy packets)"
check_eq "and none dropped" 0 "$(poll_field busy drops)"
# Woken per packet, the daemon would wait about N times.
if [ $((b - a)) -lt $((N / 4)) ]; then
	pass "$N packets at $PPS/s cost $((b - a)) wake-ups, not one each"
else
	fail "$N packets at $PPS/s cost $((b - a)) wake-ups"
fi

# Idle, only the 50 ms heartbeat wakes it: 20 a second, not 1000.
nap 0.2
a=$(switches)
nap 1
b=$(switches)
if [ $((b - a)) -lt 100 ]; then
	pass "idle after the traffic, $((b - a)) wake-ups in 1 s: the tick has stopped"
else
	fail "idle after the traffic, $((b - a)) wake-ups in 1 s"
fi

# Slow traffic is read as it comes again, and exactly.
replay "$TDIR/slow.pcap" 100
wait_count busy $((N + SLOW))
check_eq "then $SLOW packets at 100/s are counted too" $((N + SLOW)) "$(poll_field busy packets)"

# The interface goes while the session is read on the tick: the session
# fails with the reason, and the daemon runs on.
ip netns exec "$NETNS" tcpreplay -q --intf1="$PEER_IF" --pps="$PPS" --loop=0 \
    "$TDIR/udp.pcap" >/dev/null 2>&1 &
gen=$!
bg_track "$gen"
nap 0.5
a=$(switches)
nap 0.5
b=$(switches)
if [ $((b - a)) -lt $((PPS / 2 / 4)) ]; then
	pass "under traffic again: $((b - a)) wake-ups in 0.5 s, read on the tick"
else
	fail "under traffic again: $((b - a)) wake-ups in 0.5 s"
fi
ip link del dev "$HOST_IF"
bg_stop "$gen"
check "deleting its interface meanwhile puts the session in error" \
    wait_state busy error
check_match "show says why" "error +.*$HOST_IF" "$(cs show busy)"
check "the daemon is still running" daemon_alive
daemon_stop
