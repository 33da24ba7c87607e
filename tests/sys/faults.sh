# tests/sys/faults.sh: faults the daemon must live through. An interface
# that vanishes and comes back, a killed watch, a daemon killed with
# SIGKILL and restarted, a second daemon, a damaged state file.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
ntp=$corpus/zeek-ntp-NTP_sync.pcap	# 32 packets, 3315 bytes
json() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
lo_udp() {	# lo_udp N: N datagrams to a closed port on loopback
	"$PY" -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])): s.sendto(b'x' * 10, ('127.0.0.1', 9))
" "$1"
}
veth_up flt || exit 1
daemon_start || exit 1
check "session on the veth" cs new v interface "$HOST_IF" filter
check "session on loopback" cs new l interface lo filter udp port 9
replay "$ntp" 2000
wait_count v 32
check_eq "the veth session counts" 32 "$(poll_field v packets)"

# The interface disappears: the session reports it, the others count on.
ip link del dev "$HOST_IF"
check "the session goes to error when its interface is deleted" wait_state v error
check_match "show says why" "error +.*$HOST_IF" "$(cs show v)"
check_match "list shows the error state" "^v +$HOST_IF +error " "$(cs list | grep '^v ')"
check_eq "its counters are kept" 32 "$(poll_field v packets)"
before=$(poll_field l packets)
lo_udp 5
wait_count l $((before + 5))
check_eq "the other session counts on" $((before + 5)) "$(poll_field l packets)"
check "the daemon still answers" cs list

# ...and comes back under the same name: counting resumes, counters kept.
ip link add "$HOST_IF" type veth peer name "$PEER_IF" netns "$NETNS" &&
sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1" &&
ip netns exec "$NETNS" sysctl -qw "net.ipv6.conf.$PEER_IF.disable_ipv6=1" &&
ip link set dev "$HOST_IF" arp off && ip -n "$NETNS" link set dev "$PEER_IF" arp off &&
ethtool -K "$HOST_IF" gro off >/dev/null && ip netns exec "$NETNS" ethtool -K "$PEER_IF" gro off >/dev/null &&
ip -n "$NETNS" link set dev "$PEER_IF" up && ip link set dev "$HOST_IF" up ||
    die "recreating $HOST_IF"
check "the session runs again when the interface returns" wait_state v running
replay "$ntp" 2000
wait_count v 64
check_eq "it counts on from its kept counters" 64 "$(poll_field v packets)"

# An interface that goes down and up again.
ip link set dev "$HOST_IF" down
check "down interface: error state" wait_state v error
for m in kernel pcap auto; do
	check_fails "new on a down interface is refused ($m)" 1 \
	    cs new d interface "$HOST_IF" mode "$m" filter
	check_match "... saying so ($m)" "$HOST_IF: interface is down" "$ERR"
done
ip link set dev "$HOST_IF" up
check "up again: running" wait_state v running
replay "$ntp" 2000
wait_count v 96
check_eq "and counting" 96 "$(poll_field v packets)"

# A killed watch client leaves the daemon untouched.
cs watch l frequency 0.05 >/dev/null 2>&1 &
w=$!
bg_track "$w"
sleep 0.3
{ kill -KILL "$w"; wait "$w"; } 2>/dev/null
bg_stop "$w"
check "the daemon survives a killed watch" cs show l

# A second daemon on the same socket, or the same segment, refuses to start.
check_fails "a second daemon on the same socket is refused" 1 \
    "$CAPSTATS" -d -f -s "$SOCK" -m "$SHM-other" -S "$TDIR/state2"
check_match "... saying why" "another capstats daemon" "$ERR"
check_fails "a second daemon on the same segment is refused" 1 \
    "$CAPSTATS" -d -f -s "$TDIR/sock2" -m "$SHM" -S "$TDIR/state2"
check_match "... saying why" "another capstats daemon" "$ERR"
check "the first daemon is untouched" cs show v
[ -e "$TDIR/sock2" ] && fail "the refused daemon left its socket"

# SIGKILL: the next start succeeds, sessions come back, watch notices.
cs watch l frequency 0.05 >"$TDIR/watch.out" 2>"$TDIR/watch.err" &
w=$!
bg_track "$w"
sleep 0.3
old=$(cs -j show l | json 'd["instance"]')
kill -KILL "$T_DPID"
wait "$T_DPID" 2>/dev/null
T_DPID=
sleep 1.5
check_match "watch notices the daemon is gone" "daemon|heartbeat" "$(cat "$TDIR/watch.err")"
daemon_start || exit 1
check "sessions come back from the state file" cs show v
check_eq "both sessions are back" "['v', 'l']" "$(cs -j list | json '[s["session"] for s in d]')"
check "the new instance is another" test "$(cs -j show l | json 'd["instance"]')" != "$old"
sleep 1
check_match "watch says the daemon restarted" "restarted" "$(cat "$TDIR/watch.err")"
lines=$(wc -l <"$TDIR/watch.out")
sleep 0.3
check "watch prints again after the restart" test "$(wc -l <"$TDIR/watch.out")" -gt "$lines"
bg_stop "$w"
daemon_stop

# A damaged state file: good lines restored, bad ones named, a copy kept.
printf '# capstats state 1\nsession\tgood1\tlo\tauto\tudp\ngarbage line\nsession\tbad/name\tlo\tauto\ttcp\nsession\tgood2\tlo\tpcap\t\nsession\tbadmode\tlo\tfast\ttcp\nsession\ttrunc\tlo\tauto\tud' >"$STATE"
cp "$STATE" "$TDIR/state.orig"
daemon_start || exit 1
wait_state good1 running
wait_state good2 running
check_eq "the good sessions are restored" "['good1', 'good2']" \
    "$(cs -j list | json '[s["session"] for s in d]')"
check_match "the log names line 3" "line 3: not a session line" "$(daemon_log)"
check_match "the log names line 4" "line 4: bad session name" "$(daemon_log)"
check_match "the log names line 6" "line 6: bad counting path" "$(daemon_log)"
check_match "the log names line 7" "line 7: truncated" "$(daemon_log)"
check_eq "the restored sessions keep their path" "['kernel', 'pcap']" \
    "$(cs -j list | json '[s["mode"] for s in d]')"
bad=$(ls "$STATE".bad.* 2>/dev/null | head -1)
check "a copy of the damaged file is kept" cmp "$TDIR/state.orig" "${bad:-/nonexistent}"

daemon_stop

# A NUL byte inside a line: that line is named, the next one restored.
rm -f "$STATE".bad.*
printf '# capstats state 1\nsession\tnul\tlo\tauto\tudp\0 port 1\nsession\tafter\tlo\tauto\tudp\n' >"$STATE"
daemon_start || exit 1
check "the line after a NUL byte is restored" wait_state after running
check_match "the line with the NUL byte is named" "line 2: has a NUL byte" "$(daemon_log)"
check "a copy of that file is kept" test -n "$(ls "$STATE".bad.* 2>/dev/null)"
daemon_stop

# A state file another user could have written is not believed.
for how in owner mode; do
	rm -f "$STATE".bad.*
	printf '# capstats state 1\nsession\tplanted\tlo\tauto\tudp\n' >"$STATE"
	if [ $how = owner ]; then chown 65534 "$STATE"; else chmod 0666 "$STATE"; fi
	daemon_start || exit 1
	nap 0.3
	check_eq "a state file of the wrong $how is not restored" "[]" \
	    "$(cs -j list | json '[s["session"] for s in d]')"
	check_match "... and the log says why" \
	    "state file $STATE: (owned by uid 65534, not root|writable by group or others); nothing restored" \
	    "$(daemon_log)"
	check "... and it is kept aside" test -n "$(ls "$STATE".bad.* 2>/dev/null)"
	check "... and replaced by root's own" test -O "$STATE" -a ! -w "$STATE" -o "$(stat -c %a "$STATE")" = 600
	daemon_stop
done

# A FIFO where the state file goes: the start does not wait for a writer.
rm -f "$STATE" "$STATE".bad.*
mkfifo -m 0600 "$STATE"
if daemon_start; then
	check_match "a FIFO as the state file is not read" \
	    "state file $STATE: not a regular file; nothing restored" "$(daemon_log)"
	bad=$(ls "$STATE".bad.* 2>/dev/null | head -1)
	check "... it is moved aside" test -p "${bad:-/nonexistent}"
	check "... and a state file takes its place" test -f "$STATE"
	daemon_stop
fi
rm -f "$STATE".bad.*
