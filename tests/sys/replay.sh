#!/usr/bin/env bash
# tests/sys/replay.sh: exact counts on real traffic, on both counting paths.
# One daemon holds two sessions per filter of filters.txt, one counting in
# the kernel and one with libpcap; every corpus file is replayed on a veth
# pair, and what each session counted during that file must equal
# expected.tsv for every (file, filter) it lists, with no drops.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=replay
. "$TOP/tests/lib.sh"

require_root
need ip ethtool sysctl tcpreplay timeout "$PY"
require_capstats
CORPUS=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
[ -r "$CORPUS/expected.tsv" ] ||
    die "replay: corpus not found: no $CORPUS/expected.tsv (set CAPSTATS_CORPUS)"
SETTLE_MS=${CAPSTATS_SETTLE_MS:-3000}	# longest wait for counters to catch up
# libpcap's TPACKET_V3 ring is cut in 256 KiB blocks: 1 MiB is 4 blocks, which
# a daemon kept off the CPU for ~10 ms can exhaust at 5000 pps.
DAEMON_BUFFER_KB=${CAPSTATS_REPLAY_BUFFER_KB:-8192}

# The plan: one row per (file, filter) of expected.tsv, "FILE NAME PACKETS
# BYTES FILTER" (tab-separated, the filter last as it may be empty). NAME is
# f<line of the filter in filters.txt, from 0>, the same in every file.
"$PY" - "$CORPUS" >"$TDIR/plan.tsv" <<'EOF' || die "replay: cannot read $CORPUS/expected.tsv"
import os, sys
corpus = sys.argv[1]
index = {}
if os.path.exists(corpus + "/filters.txt"):
    for line in open(corpus + "/filters.txt"):
        index.setdefault(line.rstrip("\n"), len(index))
lines = open(corpus + "/expected.tsv").read().splitlines()
if not lines or lines[0].split("\t")[:2] != ["file", "filter"]:
    sys.exit("expected.tsv: no header line")
for n, line in enumerate(lines[1:], 2):
    row = line.split("\t")
    if len(row) != 4 or not row[2].isdigit() or not row[3].isdigit():
        sys.exit("expected.tsv:%d: not FILE FILTER PACKETS BYTES" % n)
    name = "f%d" % index.setdefault(row[1], len(index))
    print("\t".join((row[0], name, row[2], row[3], row[1])))
EOF

# ---- the sessions: k<N> in the kernel, p<N> with libpcap, for filter N

declare -A FNAME=()
while IFS=$'\t' read -r _ name _ _ flt; do
	FNAME[$name]=$flt
done <"$TDIR/plan.tsv"

# new_all: every session at once, one client each; 1 with the failures
new_all() {
	local -x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
	local name mode words pids=() rc=0 i
	: >"$TDIR/new.out"
	for name in "${!FNAME[@]}"; do
		read -r -a words <<<"${FNAME[$name]}"
		for mode in kernel pcap; do
			"$CAPSTATS" -s "$SOCK" -m "$SHM" new "${mode:0:1}$name" \
			    interface "$HOST_IF" mode "$mode" filter "${words[@]}" \
			    >>"$TDIR/new.out" 2>&1 &
			pids+=($!)
		done
	done
	for i in "${pids[@]}"; do
		wait "$i" || rc=1
	done
	return "$rc"
}

# check_file FILE: what every session counted since the last list must be
# FILE's rows of expected.tsv; prints one line per problem, exit 0 when all
# are exact, 1 when some are still short (worth another look), 2 otherwise.
check_file() {
	"$PY" - "$TDIR" "$1" "$HOST_IF" <<'EOF'
import json, sys
d, file, iface = sys.argv[1:]
prev = {s["session"]: s for s in json.load(open(d + "/prev.json"))}
now = {s["session"]: s for s in json.load(open(d + "/list.json"))}
status = 0
def problem(text, short=False):
    global status
    print(text)
    status = max(status, 1 if short else 2)
for line in open(d + "/plan.tsv"):
    f, name, pk, by, flt = line.rstrip("\n").split("\t", 4)
    if f != file:
        continue
    for path in ("kernel", "pcap"):
        s = path[0] + name
        if s not in now or s not in prev:
            problem("%s '%s': not listed" % (s, flt))
            continue
        a, b = prev[s], now[s]
        dp, db = b["packets"] - a["packets"], b["bytes"] - a["bytes"]
        why = []
        if (dp, db) != (int(pk), int(by)):
            why.append("expected %s packets %s bytes, counted %d packets %d bytes"
                       % (pk, by, dp, db))
        if b["drops"]:
            why.append("%d drops" % b["drops"])
        if b["mode"] != path or b["state"] != "running" or b["interface"] != iface:
            why.append("mode %s state %s interface %s" % (b["mode"], b["state"], b["interface"]))
        if why:
            problem("%s '%s' (%s): %s" % (s, flt, path, "; ".join(why)),
                    short=len(why) == 1 and dp < int(pk))
sys.exit(status)
EOF
}

# ---- main

start=$(now_ms)
veth_up rp || exit 1
rm -f "$STATE"
daemon_start -B "$DAEMON_BUFFER_KB" || exit 1
if ! new_all; then
	fail "replay: creating the sessions failed"
	indent <"$TDIR/new.out"
	exit 1
fi
nsess=$((2 * ${#FNAME[@]}))
cs -j list >"$TDIR/prev.json" || die "replay: list failed"
check_eq "replay: $nsess sessions, half of them in the kernel" "$((nsess / 2))" \
    "$("$PY" -c 'import json,sys; print(sum(s["mode"] == "kernel" for s in json.load(sys.stdin)))' <"$TDIR/prev.json")"

mapfile -t files < <(cut -f1 "$TDIR/plan.tsv" | awk '!seen[$0]++')
for file in "${files[@]}"; do
	replay "$CORPUS/$file" || continue
	# Counters trail the wire by the kernel path's fold and the daemon's
	# turn on the CPU: look again, bounded, while some are short.
	t0=$(now_ms)
	while :; do
		cs -j list >"$TDIR/list.json"
		check_file "$file" >"$TDIR/check.out"
		rc=$?
		[ "$rc" -eq 1 ] && [ $(($(now_ms) - t0)) -lt "$SETTLE_MS" ] || break
		nap 0.1
	done
	n=$(awk -F'\t' -v f="$file" '$1 == f' "$TDIR/plan.tsv" | wc -l)
	if [ "$rc" -eq 0 ]; then
		pass "replay $file: $n filters exact on both paths ($REPLAY_PACKETS packets at $REPLAY_PPS pps)"
	else
		fail "replay $file: $(wc -l <"$TDIR/check.out") problem(s)"
		indent <"$TDIR/check.out"
	fi
	mv "$TDIR/list.json" "$TDIR/prev.json"
done

# The segment says what the daemon says, for every session.
cs metrics >"$TDIR/metrics.txt"
check_eq "replay: the segment agrees with the daemon on every session" "" \
    "$("$PY" - "$TDIR" <<'EOF'
import json, re, sys
d = sys.argv[1]
seg = {}
for line in open(d + "/metrics.txt"):
    m = re.match(r'capstats_packets_total\{session="([^"]+)"', line)
    if m:
        seg[m.group(1)] = int(line.split()[-1])
for s in json.load(open(d + "/prev.json")):
    if seg.get(s["session"]) != s["packets"]:
        print("%s: segment %s, daemon %s" % (s["session"], seg.get(s["session"]), s["packets"]))
EOF
)"
printf '  %s files replayed at %s pps in %s ms\n' "${#files[@]}" "$REPLAY_PPS" "$(($(now_ms) - start))"
exit 0
