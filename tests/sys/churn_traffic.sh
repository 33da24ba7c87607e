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
# The background traffic runs at each of CHURN_RATES (tests/lib.sh) for a
# second, in a loop;
MIN_SECONDS=9				# and the churn this long: every rate once
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

# The background traffic, while the one client, from inside the namespace,
# makes its requests over the control socket and, between them, sends the
# probes to PROBE_PORT on the peer end.
churn_replay "$NETNS" "$PEER_IF" "$TDIR/udp.pcap"
nap 0.5
churn_client "$NETNS" 75 "$PEER_IF" "$OPS" "$SEED" "$PROBE_PORT" "$MIN_SECONDS" || exit 1
churn_checks
check "new, modify and stop were each done on both paths" test \
    "$(churn_get 'min(d["done"]["modify"], d["done"]["stop"], *d["by_mode"].values())')" -ge 20
churn_leftovers keepk keepp

# The kept sessions counted every probe, exactly.
N=$(churn_get 'd["probes"]')
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

no_sanitizer_report
daemon_stop && pass "the daemon stops cleanly: exit 0, nothing left behind, no sanitizer report"
