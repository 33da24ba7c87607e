# tests/sys/drops.sh: when a libpcap session's ring overflows, the kernel's
# drops are reported and packets + drops is exactly what arrived; a
# session whose filter takes nothing drops nothing.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

N=5000
udp_pcap "$TDIR/udp.pcap" "$N"

# settled NAME: packets and drops once two reads 300 ms apart agree (drop
# counters are refreshed every 100 ms)
settled() {
	local now prev='' k
	for ((k = 0; k < 30; k++)); do
		now="$(poll_field "$1" packets) $(poll_field "$1" drops)"
		[ "$now" = "$prev" ] && break
		prev=$now
		nap 0.3
	done
	echo "$now"
}

veth_up drop || exit 1
# The smallest ring: about a thousand frames.
daemon_start -i "$HOST_IF" -B 64 || exit 1
check "new, pcap path" cs new all mode pcap filter "udp dst port 9000"
check "new, a filter that takes nothing" cs new none mode pcap filter "udp dst port 9001"

# The daemon stops reading while every packet arrives.
kill -STOP "$T_DPID"
replay "$TDIR/udp.pcap" 20000
kill -CONT "$T_DPID"
read -r pk dr <<<"$(settled all)"
if [ "$dr" -gt 0 ]; then
	pass "the ring overflowed while the daemon was stopped: $dr drops reported"
else
	fail "no drops reported for $N packets into a stopped daemon's small ring"
fi
check_eq "packets + drops = the $N that arrived" "$N" $((pk + dr))
check_eq "the other session counted nothing" "0 0" "$(settled none)"
check_eq "show reports the same drops" "$dr" \
    "$(cs -j show all | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["drops"])')"

# Afterwards it counts on, exactly.
replay "$TDIR/udp.pcap" 2000
wait_count all $((pk + N))
check_eq "then every packet of $N more is counted" "$((pk + N)) $dr" "$(settled all)"
check "the daemon is still running" daemon_alive
daemon_stop
