# tests/sys/json.sh: `capstats -j` prints valid JSON for every command
# (new, modify, stop, list, show, poll, watch), with the keys the man page
# documents and numbers as numbers, also for strings that need escaping
# (a filter with a backslash, an interface named with a quote and a
# backslash) and for a session in the error state; and every refusal,
# usage error or absent daemon leaves stdout empty and says why on stderr.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay "$PY"

corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
ntp=$corpus/zeek-ntp-NTP_sync.pcap	# 32 packets, 3315 bytes

# strict.py SHAPE: the checks of jcheck beyond json.tool
cat >"$TDIR/strict.py" <<'EOF'
import json, sys
shape = sys.argv[1]
def strict(pairs):
    seen = [k for k, _ in pairs]
    dup = {k for k in seen if seen.count(k) > 1}
    if dup:
        raise ValueError("duplicate keys %s" % sorted(dup))
    return dict(pairs)
def const(c):
    raise ValueError("%s is not JSON" % c)
text = sys.stdin.read()
try:
    docs = ([json.loads(l, object_pairs_hook=strict, parse_constant=const)
             for l in text.splitlines()] if shape == "lines" else
            [json.loads(text, object_pairs_hook=strict, parse_constant=const)])
except ValueError as e:
    sys.exit(str(e))
if shape == "array":
    if not isinstance(docs[0], list):
        sys.exit("not an array")
    docs = docs[0]
if shape == "lines" and not docs:
    sys.exit("no lines")
for d in docs:
    if not isinstance(d, dict):
        sys.exit("not an object: %r" % (d,))
    for k in ("packets", "bytes", "drops", "if_drops", "session_id",
              "created", "modified", "time", "slot"):
        if k in d and (type(d[k]) is not int or d[k] < 0):
            sys.exit("%s is %r, not a count" % (k, d[k]))
    for k in ("pps", "bps", "last_packet"):
        if k in d and d[k] is not None and type(d[k]) not in (int, float):
            sys.exit("%s is %r, not a number or null" % (k, d[k]))
    print(json.dumps(d, sort_keys=True))
EOF

# jcheck "what" SHAPE cmd...: run cmd, which must exit 0 with stdout that
# python's json.tool accepts and that parses strictly (no NaN, no duplicate
# key) as SHAPE: object, array (of objects) or lines (one object a line),
# counts as non-negative integers. The objects are left in $TDIR/json.out,
# one a line; on failure it is empty.
jcheck() {
	local what=$1 shape=$2 rc tool=
	shift 2
	: >"$TDIR/json.out"
	_run "$@" >"$TDIR/j.out" 2>"$TDIR/j.err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		fail "$what: exit $rc"
		indent <"$TDIR/j.err"
		return 1
	fi
	[ "$shape" = lines ] && tool=--json-lines
	if ! "$PY" -m json.tool $tool <"$TDIR/j.out" >/dev/null 2>"$TDIR/j.tool"; then
		fail "$what: json.tool refuses the output"
		{ cat "$TDIR/j.tool"; head -c 2000 "$TDIR/j.out"; } | indent
		return 1
	fi
	if ! "$PY" "$TDIR/strict.py" "$shape" <"$TDIR/j.out" >"$TDIR/json.out" 2>"$TDIR/j.why"; then
		fail "$what: $(cat "$TDIR/j.why")"
		head -c 2000 "$TDIR/j.out" | indent
		return 1
	fi
	pass "$what"
}

# jkeys "what" KEYS: every object of $TDIR/json.out has exactly KEYS
jkeys() {
	local out
	out=$("$PY" -c '
import json, sys
want = sorted(sys.argv[1].split())
for l in sys.stdin:
    got = sorted(json.loads(l))
    if got != want:
        print("missing %s, undocumented %s" % (sorted(set(want) - set(got)), sorted(set(got) - set(want))))
        break
' "$2" <"$TDIR/json.out")
	check_eq "$1" "" "$out"
}

# jget EXPR: EXPR over the first object d of $TDIR/json.out
jget() { head -1 "$TDIR/json.out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1" 2>/dev/null; }

# jrefused "what" STATUS cmd...: exits STATUS, nothing on stdout, a reason on stderr
jrefused() {
	local what=$1 want=$2
	shift 2
	check_fails "$what: exit $want" "$want" "$@" || return 1
	check_eq "$what: stdout stays empty" "" "$OUT"
	check_match "$what: says why on stderr" "^capstats: " "$ERR"
}


# The keys capstats(8) documents.
POLL_KEYS="session interface state packets bytes drops if_drops last_packet session_id instance"
LIST_KEYS="session interface state mode mode_reason packets bytes drops if_drops filter"
WATCH_KEYS="$POLL_KEYS time pps bps"

veth_up json || exit 1
# An interface whose name needs escaping: a veth whose peer, in the test's
# namespace, stays down, so it carries nothing. Deleted by name at the end.
ODD="cj\"\\$$"
ODD=${ODD:0:15}
odd_iface "$ODD" "csjo$$"
daemon_start -i "$HOST_IF" || exit 1

jcheck "new -j" object cs -j new web filter udp port 123
check_eq "new -j names the session" web "$(jget 'd["session"]')"
jcheck "new -j, a filter with a backslash" object cs -j new esc filter 'ether proto \ip'
jcheck "new -j, an interface named with a quote and a backslash" object \
    cs -j new odd interface "$ODD" filter
check_eq "new -j: the odd interface name survives" "$ODD" "$(jget 'd["interface"]')"
# Its interface going down puts the session in the error state.
ip link set dev "$ODD" down
for _ in $(seq 100); do
	[ "$(cs -j poll odd 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null)" = error ] && break
	sleep 0.05
done
replay "$ntp" 2000

jcheck "list -j" array cs -j list
jkeys "list -j: the documented keys" "$LIST_KEYS"
check_eq "list -j: every session" "esc odd web" \
    "$("$PY" -c 'import json,sys; print(*sorted(json.loads(l)["session"] for l in sys.stdin))' <"$TDIR/json.out")"
check_eq "list -j: the backslash survives" 'ether proto \ip' \
    "$(grep '"session": "esc"' "$TDIR/json.out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["filter"])')"
jcheck "list -j -H: numbers stay numbers" array cs -j -H list

jcheck "show -j" object cs -j show web
check_match "show -j: counted" "^[1-9]" "$(jget 'd["packets"]')"
jcheck "show -j, a session in the error state" object cs -j show odd
check_eq "show -j: the state is error" error "$(jget 'd["state"]')"
check_match "show -j: the error is said" "." "$(jget 'd.get("error", "")')"
jcheck "show -j, the escaped filter" object cs -j show esc
check_eq "show -j: the backslash survives" 'ether proto \ip' "$(jget 'd["filter"]')"

jcheck "poll -j" object cs -j poll web
jkeys "poll -j: the documented keys" "$POLL_KEYS"
check_eq "poll -j: the counts of show -j" "$(cs -j show web | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["packets"], d["bytes"])')" \
    "$(jget 'd["packets"], d["bytes"]' | tr -d '(),')"
check_match "poll -j: last_packet is a time" "^[0-9]{19}$" "$(jget 'd["last_packet"]')"
jcheck "poll -j, the odd interface" object cs -j poll odd
check_eq "poll -j: last_packet of a silent session is null" None "$(jget 'd["last_packet"]')"

jcheck "watch -j, count 3" lines cs -j watch web frequency 0.05 count 3
jkeys "watch -j, count 3: the documented keys" "$WATCH_KEYS"
check_eq "watch -j: 3 lines" 3 "$(wc -l <"$TDIR/json.out")"
check_eq "watch -j: rates null on the first line only" "None 0.0" \
    "$("$PY" -c 'import json,sys; d=[json.loads(l) for l in sys.stdin]; print(d[0]["pps"], d[2]["pps"])' <"$TDIR/json.out")"
jcheck "watch -j, the odd interface" lines cs -j watch odd frequency 0.01 count 2

jcheck "modify -j" object cs -j modify web udp
jcheck "stop -j" object cs -j stop esc
jcheck "list -j after a stop" array cs -j list

# Refusals: nothing on stdout.
jrefused "show -j of an unknown session" 1 cs -j show nosuch
jrefused "poll -j of an unknown session" 1 cs -j poll nosuch
jrefused "poll -j of a stopped session" 1 cs -j poll esc
jrefused "watch -j of an unknown session" 1 cs -j watch nosuch frequency 0.1 count 1
jrefused "stop -j of an unknown session" 1 cs -j stop nosuch
jrefused "modify -j of an unknown session" 1 cs -j modify nosuch tcp
jrefused "new -j with an existing name" 1 cs -j new web filter tcp
jrefused "new -j with a bad filter" 1 cs -j new bad filter "port port"
jrefused "new -j on a missing interface" 1 cs -j new bad interface nosuch0 filter
jrefused "modify -j with a bad filter" 1 cs -j modify web "port port"
jrefused "-j with an unknown command" 2 cs -j frobnicate
jrefused "-j with a bad name" 2 cs -j new 'a/b' filter
jrefused "watch -j with a bad frequency" 2 cs -j watch web frequency 0
jrefused "list -j without a daemon" 1 "$CAPSTATS" -j -s "$TDIR/none" list
jrefused "show -j without a daemon" 1 "$CAPSTATS" -j -s "$TDIR/none" show web
jrefused "poll -j without a segment" 1 "$CAPSTATS" -j -m "capstats-none-$$" poll web
jrefused "watch -j without a segment" 1 "$CAPSTATS" -j -m "capstats-none-$$" watch web frequency 0.1 count 1

# A session stopped while watched: the lines so far are JSON, then exit 1.
cs -j watch web frequency 0.05 >"$TDIR/w.out" 2>"$TDIR/w.err" &
wpid=$!
bg_track "$wpid"
sleep 0.3
cs stop web >/dev/null
bg_reap "$wpid" 5
check_eq "watch -j of a session stopped meanwhile exits 1" 1 "$REAPED"
jcheck "watch -j of a session stopped meanwhile: lines so far are JSON" lines \
    cat "$TDIR/w.out"
check_match "watch -j: the stop is said on stderr" "stopped" "$(cat "$TDIR/w.err")"
