# tests/sys/churn.sh: 64 clients run new, modify and stop in a loop for a
# bounded time; afterwards the daemon's table, the segment and the state
# file must say the same, and every session must still count.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need python3

CLIENTS=64
SECONDS_EACH=${CAPSTATS_CHURN_SECONDS:-4}
daemon_start -i lo -n 512 || exit 1

# One client's loop: its own name, so each step must succeed.
churn() {
	local i=$1 n=0 end=$(($(now_ms) + SECONDS_EACH * 1000)) fails=0
	local -x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
	while [ "$(now_ms)" -lt "$end" ]; do
		"$CAPSTATS" -s "$SOCK" new "c$i" interface lo filter udp port $((i + 1000)) \
		    >/dev/null 2>&1 || fails=$((fails + 1))
		"$CAPSTATS" -s "$SOCK" modify "c$i" udp port $((i + 2000)) \
		    >/dev/null 2>&1 || fails=$((fails + 1))
		n=$((n + 1))
		[ $((n % 3)) -eq 0 ] && continue	# leave some running
		"$CAPSTATS" -s "$SOCK" stop "c$i" >/dev/null 2>&1 || fails=$((fails + 1))
	done
	# and one to keep, so that something is left to compare and count
	"$CAPSTATS" -s "$SOCK" new "k$i" interface lo filter udp port $((i + 3000)) \
	    >/dev/null 2>&1 || fails=$((fails + 1))
	echo "$n $fails" >"$TDIR/churn.$i"
}
pids=()
for i in $(seq 1 "$CLIENTS"); do
	churn "$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p"
done
read -r rounds fails < <(cat "$TDIR"/churn.* | awk '{ r += $1; f += $2 } END { print r, f }')
echo "  $CLIENTS clients, $rounds rounds"
check "the clients made progress" test "$rounds" -ge "$CLIENTS"
# A client's `new` fails only when its previous round left the session
# running: the failures are exactly those, and nothing else.
check "every failure was a new on a name left running" test "$fails" -le "$rounds"

cs -j list >"$TDIR/list.json"
cs metrics >"$TDIR/metrics.txt"
check_eq "daemon, segment and state file hold the same sessions" "" "$("$PY" - "$TDIR" "$STATE" <<'EOF'
import json, re, sys
d, state = sys.argv[1:]
daemon = {s["session"]: (s["interface"], s["filter"]) for s in json.load(open(d + "/list.json"))}
seg = set(re.findall(r'capstats_packets_total\{session="([^"]+)"', open(d + "/metrics.txt").read()))
saved = {}
for line in open(state):
    if line.startswith("session\t"):
        _, name, iface, mode, flt = line.rstrip("\n").split("\t", 4)
        saved[name] = (iface, flt)
if set(daemon) != seg:
    print("segment differs:", sorted(set(daemon) ^ seg))
if daemon != saved:
    print("state file differs:", sorted(set(daemon.items()) ^ set(saved.items())))
EOF
)"
# The sessions left count.
check_eq "the kept sessions are there" "$CLIENTS" "$(cs -j list | "$PY" -c 'import json,sys; print(sum(s["session"].startswith("k") for s in json.load(sys.stdin)))')"
"$PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5): s.sendto(b'x', ('127.0.0.1', 3007))
"
check "a session left by the churn counts" wait_count k7 5
check "the daemon answers after the churn" cs list
