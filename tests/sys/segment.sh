# tests/sys/segment.sh: poll, watch and metrics read the segment alone; a
# reader in another language reads the same numbers; readers notice a
# stopped session and a daemon that stops.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need strace python3

lo_udp() {
	"$PY" -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])): s.sendto(b'x' * 50, ('127.0.0.1', 9))
" "$1"
}

daemon_start -i lo || exit 1
check "a session" cs new web interface lo filter udp port 9
lo_udp 7
wait_count web 7

for cmd in "poll web" "watch web frequency 0.01 count 3" "metrics"; do
	strace -f -qq -e trace=socket,connect -o "$TDIR/strace" \
	    "$CAPSTATS" -s "$SOCK" -m "$SHM" $cmd >/dev/null 2>&1
	check_eq "${cmd%% *} makes no socket and no connect" 0 \
	    "$(grep -Ec '^[0-9]+ +(socket|connect)\(' "$TDIR/strace")"
done
strace -f -qq -e trace=connect -o "$TDIR/strace" "$CAPSTATS" -s "$SOCK" list >/dev/null 2>&1
check "... while list does connect (the check can fail)" grep -q "connect(" "$TDIR/strace"

py=$TOP/contrib/python/capstats_shm.py
check_eq "the Python reader prints what poll -j prints" \
    "$(cs -j poll web)" "$("$PY" "$py" -m "$SHM" poll web)"
check_eq "... after more traffic too" 7 "$(cs -j poll web | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["packets"])')"
lo_udp 3
wait_count web 10
check_eq "... and again" "$(cs -j poll web)" "$("$PY" "$py" -m "$SHM" poll web)"
check_fails "the Python reader refuses an unknown session" 1 "$PY" "$py" -m "$SHM" poll nosuch

# watch reports a stopped session and exits 1
cs watch web frequency 0.05 >"$TDIR/w.out" 2>"$TDIR/w.err" &
w=$!
bg_track "$w"
sleep 0.3
check "stop while watched" cs stop web
wait_exit "$w" 3
wait "$w"
check_eq "watch exits 1 when its session stops" 1 $?
check_match "... saying so" "session web stopped" "$(cat "$TDIR/w.err")"

# a reader attached across a stop and a reuse of the entry never mixes sessions
check "a new session" cs new other interface lo filter udp
check_fails "poll of the stopped name fails" 1 cs poll web
check_match "... as unknown" "no session named web" "$ERR"

# metrics are in the Prometheus text format with the poll values
lo_udp 4
wait_count other 4
m=$(cs metrics)
check_match "metrics has the packet counter" \
    "capstats_packets_total\\{session=\"other\",interface=\"lo\"\\} 4" "$m"
check_match "metrics has the heartbeat gauge" "capstats_heartbeat_age_seconds 0\\.[0-9]+" "$m"

# a daemon that stops: watch says so instead of printing stale numbers
cs watch other frequency 0.05 >"$TDIR/w2.out" 2>"$TDIR/w2.err" &
w=$!
bg_track "$w"
sleep 0.3
daemon_stop
sleep 0.5
n=$(wc -l <"$TDIR/w2.out")
sleep 0.3
check_eq "watch prints nothing while the daemon is gone" "$n" "$(wc -l <"$TDIR/w2.out")"
check_match "watch says the daemon is gone" "daemon|closed|waiting" "$(cat "$TDIR/w2.err")"
bg_stop "$w"
check_fails "poll without the daemon" 1 cs poll other
check_match "... says it is not running" "not running" "$ERR"
