# tests/sys/metrics.sh: `capstats metrics` with sessions counting replayed
# traffic passes `promtool check metrics` and its values equal those of
# `capstats -j poll` (a session in error included, an interface name that
# needs escaping included); contrib/prometheus/capstats_exporter.py serves
# the same text on a loopback port, which promtool accepts too, and a 503
# once the daemon is gone.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need promtool ip ethtool tcpreplay "$PY"

corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
stun=$corpus/ndpi-stun.pcap	# 201 packets: udp, vlan and IPv6 among them
EXPORTER=$TOP/contrib/prometheus/capstats_exporter.py
[ -r "$stun" ] || die "metrics: no $stun (set CAPSTATS_CORPUS)"

# promcheck "what" FILE: promtool accepts FILE without a word
promcheck() {
	local out rc
	out=$(timeout 30 promtool check metrics <"$2" 2>&1)
	rc=$?
	check_eq "$1" "0 " "$rc $out"
}

# prom.py TEXT POLLS: compare an exposition TEXT with the `capstats -j
# poll` objects in POLLS (one a line); prints one line per difference.
cat >"$TDIR/prom.py" <<'EOF'
import json, re, sys
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
def labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("bad labels: %r" % text)
        out[m.group(1)] = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        pos = m.end()
    return out
samples = {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    m = SAMPLE.match(line)
    if not m:
        print("not a sample: %r" % line)
        continue
    l = labels(m.group(2) or "")
    samples.setdefault(m.group(1), {})[l.get("session")] = (l, float(m.group(3)))
polls = [json.loads(l) for l in open(sys.argv[2])]
keys = {"capstats_packets_total": "packets", "capstats_bytes_total": "bytes",
        "capstats_drops_total": "drops", "capstats_if_drops_total": "if_drops"}
for metric in list(keys) + ["capstats_up"]:
    got = set(samples.get(metric, {}))
    want = {p["session"] for p in polls}
    if got != want:
        print("%s: sessions %s, poll has %s" % (metric, sorted(got, key=str), sorted(want)))
for p in polls:
    name = p["session"]
    for metric, key in keys.items():
        l, v = samples.get(metric, {}).get(name, ({}, None))
        if v != p[key]:
            print("%s{session=%s}: %s, poll says %s" % (metric, name, v, p[key]))
        if l and l.get("interface") != p["interface"]:
            print("%s{session=%s}: interface %r, poll says %r" % (metric, name, l.get("interface"), p["interface"]))
    up = samples.get("capstats_up", {}).get(name, ({}, None))[1]
    if up != (1 if p["state"] == "running" else 0):
        print("capstats_up{session=%s}: %s, state %s" % (name, up, p["state"]))
age = samples.get("capstats_heartbeat_age_seconds", {}).get(None, (None, None))[1]
if age is None or not 0 <= age < 5:
    print("capstats_heartbeat_age_seconds: %s" % age)
EOF

# compare "what" TEXTFILE: TEXTFILE's values are those of poll, now
compare() {
	local s out
	: >"$TDIR/polls"
	for s in all udp vlan odd; do
		cs -j poll "$s" >>"$TDIR/polls" || fail "$1: poll $s"
	done
	out=$("$PY" "$TDIR/prom.py" "$2" "$TDIR/polls" 2>&1)
	check_eq "$1" "" "$out"
}

veth_up prom || exit 1
# A second interface, named with a quote and a backslash, that carries
# nothing (its peer stays down); its session ends up in the error state.
ODD="cm\"\\$$"
ODD=${ODD:0:15}
odd_iface "$ODD" "csmo$$"
daemon_start -i "$HOST_IF" || exit 1
check "new all" cs new all filter
check "new udp" cs new udp filter udp
check "new vlan" cs new vlan filter vlan
check "new odd" cs new odd interface "$ODD" filter
check "new gone" cs new gone filter
check "stop gone" cs stop gone
ip link set dev "$ODD" down
replay "$stun" 4000

cs metrics >"$TDIR/metrics.txt"
check_eq "metrics exits 0" 0 "$?"
promcheck "promtool accepts capstats metrics" "$TDIR/metrics.txt"
compare "metrics equal capstats -j poll" "$TDIR/metrics.txt"
check_eq "all counted the file (or reports drops for the rest)" 201 \
    "$(cs -j poll all | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["packets"] + d["drops"])')"
check_eq "the odd interface name is escaped" \
    "capstats_up{session=\"odd\",interface=\"cm\\\"\\\\$$\"} 0" \
    "$(grep '^capstats_up{session="odd"' "$TDIR/metrics.txt")"
check_eq "a stopped session is left out" "" "$(grep 'session="gone"' "$TDIR/metrics.txt")"
# promtool does see a broken exposition.
sed 's/^capstats_up{session="all"/capstats_up{session=all/' "$TDIR/metrics.txt" >"$TDIR/broken.txt"
check_fails "promtool refuses a broken exposition" 1 promtool check metrics <"$TDIR/broken.txt"

# ---- the exporter



"$PY" "$EXPORTER" --listen 127.0.0.1:0 --capstats "$CAPSTATS" -m "$SHM" \
    2>"$TDIR/exporter.err" &
xpid=$!
bg_track "$xpid"
port=
for _ in $(seq 100); do
	port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/metrics$|\1|p' "$TDIR/exporter.err")
	[ -n "$port" ] && break
	pid_running "$xpid" || break
	sleep 0.05
done
[ -n "$port" ] || {
	fail "exporter: not listening"
	indent <"$TDIR/exporter.err"
	exit 1
}
pass "exporter listens on 127.0.0.1:$port"

# scrape PATH: status, content type and body of http://127.0.0.1:$port/PATH
# in $TDIR/scrape.{status,type,body}
scrape() { http_get "http://127.0.0.1:$port$1" "$TDIR/scrape" >"$TDIR/scrape.body"; }

scrape /metrics
check_eq "scrape: status 200" 200 "$(cat "$TDIR/scrape.status")"
check_eq "scrape: the exposition content type" "text/plain; version=0.0.4; charset=utf-8" \
    "$(cat "$TDIR/scrape.type")"
promcheck "promtool accepts the scrape" "$TDIR/scrape.body"
compare "the scrape equals capstats -j poll" "$TDIR/scrape.body"
check_eq "the scrape is capstats metrics' text" \
    "$(grep -v '^capstats_heartbeat_age_seconds ' "$TDIR/metrics.txt")" \
    "$(grep -v '^capstats_heartbeat_age_seconds ' "$TDIR/scrape.body")"
scrape /nothing
check_eq "an unknown path: 404" 404 "$(cat "$TDIR/scrape.status")"

daemon_stop
scrape /metrics
check_eq "no daemon: the scrape fails with 503" 503 "$(cat "$TDIR/scrape.status")"
check_match "no daemon: capstats' reason is given" "daemon not running" "$(cat "$TDIR/scrape.body")"

kill -TERM "$xpid"
bg_reap "$xpid" 5
check_eq "the exporter exits 0 on SIGTERM" 0 "$REAPED"
