#!/usr/bin/env bash
# tests/sys/replay.sh: exact counts on real traffic. Every corpus file is
# replayed on a veth pair into a fresh daemon with one session per filter that
# expected.tsv lists for it; each session's packets and bytes must equal
# expected.tsv, with no drops.

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

# ---- running one client command per session, all at once

declare -A PIDS=()
# launch LABEL NAME ARGS...: the client with ARGS in the background (one
# process: reap bounds it), output in $TDIR/NAME.LABEL
launch() {
	local label=$1 name=$2
	shift 2
	"$CAPSTATS" -s "$SOCK" -m "$SHM" "$@" >"$TDIR/$name.$label" 2>&1 &
	PIDS[$name]=$!
}
# reap LABEL NAME...: wait for each, killing what still runs after
# T_CMD_TIMEOUT s; 1 if any failed, with one line "NAME: exit N: output" per
# failure in $TDIR/reap.out
reap() {
	local label=$1 name pid rc t
	shift
	t=${EPOCHREALTIME/[.,]/}
	local deadline=$((t / 1000 + T_CMD_TIMEOUT * 1000))
	: >"$TDIR/reap.out"
	for name in "$@"; do
		pid=${PIDS[$name]}
		while pid_running "$pid"; do
			t=${EPOCHREALTIME/[.,]/}
			if [ $((t / 1000)) -gt "$deadline" ]; then
				kill -KILL "$pid" 2>/dev/null
				echo "(killed after $T_CMD_TIMEOUT s)" >>"$TDIR/$name.$label"
				break
			fi
			nap 0.01
		done
		wait "$pid" 2>/dev/null
		rc=$?
		[ "$rc" -eq 0 ] || printf '%s: exit %s: %s\n' "$name" "$rc" \
		    "$(head -c 300 "$TDIR/$name.$label" | tr '\n' ' ')" >>"$TDIR/reap.out"
	done
	PIDS=()
	[ ! -s "$TDIR/reap.out" ]
}

# compare SAMPLE: one python call checks `list -j` ($TDIR/list.json) against
# $TDIR/cur.tsv, and that `poll SAMPLE` ($TDIR/sample.poll) shows the same
# counters as list; prints one line per problem. Exit 0 all exact, 1 some
# counters still below expected and nothing else wrong, 2 anything else.
compare() {
	"$PY" - "$TDIR" "$HOST_IF" "$1" <<'EOF'
import json, sys
d, iface, sample = sys.argv[1:]
status = 0
def problem(text, late=False):
    global status
    print(text)
    status = max(status, 1 if late else 2)
def load(path, kind):
    text = open(path).read()
    try:
        v = json.loads(text)
        if not isinstance(v, kind):
            raise ValueError("not a JSON " + kind.__name__)
        return v
    except ValueError as e:
        problem("%s: %s: %r" % (path.rsplit("/", 1)[1], e, text[:300]))
def counters(j):
    bad = [k for k in ("packets", "bytes", "drops") if type(j.get(k)) is not int]
    if bad:
        raise ValueError("missing or not integers: " + ", ".join(bad))
    return j["packets"], j["bytes"], j["drops"]
rows = {}
for line in open(d + "/cur.tsv"):
    name, pk, by, flt = line.rstrip("\n").split("\t", 3)
    rows[name] = (int(pk), int(by), flt)
got = load(d + "/list.json", list) or []
seen = {}
for j in got:
    if isinstance(j, dict) and j.get("session") in rows:
        seen[j["session"]] = j
    else:
        problem("list: unexpected entry %r" % (j,))
for name, (pk, by, flt) in rows.items():
    j = seen.get(name)
    if j is None:
        problem("%s '%s': not in list" % (name, flt))
        continue
    try:
        p, b, drops = counters(j)
    except ValueError as e:
        problem("%s '%s': list: %s" % (name, flt, e))
        continue
    why = []
    if (p, b) != (pk, by):
        why.append("expected %d packets %d bytes, got %d packets %d bytes" % (pk, by, p, b))
    if drops:
        why.append("drops %d" % drops)
    if j.get("interface") != iface or j.get("filter") != flt:
        why.append("interface %r filter %r" % (j.get("interface"), j.get("filter")))
    if why:
        problem("%s '%s': %s" % (name, flt, "; ".join(why)),
                late=len(why) == 1 and p < pk and b < by)
j = load(d + "/sample.poll", dict)
if j is not None and sample in seen:
    try:
        mine = counters(j)
        if j.get("session") != sample or j.get("interface") != iface:
            raise ValueError("session %r interface %r" % (j.get("session"), j.get("interface")))
        if mine != counters(seen[sample]):
            raise ValueError("packets, bytes, drops %s, list says %s"
                             % (mine, counters(seen[sample])))
    except ValueError as e:
        problem("%s: poll: %s" % (sample, e), late=status == 1)
sys.exit(status)
EOF
}

# poll_packets NAME: the session's packet counter (-1 if unreadable)
poll_packets() {
	local j
	j=$(ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 cs -j poll "$1" 2>/dev/null)
	if [[ $j =~ \"packets\":\ *([0-9]+) ]]; then
		echo "${BASH_REMATCH[1]}"
	else
		echo -1
	fi
}

# new_all: create every session of the file at once (uses replay_file's
# names and filters). Under ASan, leak checks at exit make up two thirds of
# a client's cost; these hundreds of identical `new` runs skip them (the
# daemon and every other client keep them).
new_all() {
	local -x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
	local i words
	for i in "${!names[@]}"; do
		read -r -a words <<<"${filters[$i]}"
		launch new "${names[$i]}" new "${names[$i]}" interface "$HOST_IF" filter "${words[@]}"
	done
	reap new "${names[@]}"
}

# ---- one file

# replay_file N FILE: a fresh daemon with one session for each of FILE's rows
# of the plan, replay, compare, stop the daemon (which must exit cleanly).
# `poll` is checked against `list` on one session per file, a different one each time.
replay_file() {
	local k=$1 file=$2 path=$CORPUS/$2 row name pk by flt words t0 rc i late sample
	local names=() filters=() most=-1 sentinel=
	: >"$TDIR/cur.tsv"
	while IFS=$'\t' read -r row name pk by flt; do
		[ "$row" = "$file" ] || continue
		names+=("$name")
		filters+=("$flt")
		[ "$pk" -le "$most" ] || { most=$pk sentinel=$name; }
		printf '%s\t%s\t%s\t%s\n' "$name" "$pk" "$by" "$flt" >>"$TDIR/cur.tsv"
	done <"$TDIR/plan.tsv"
	if [ ! -r "$path" ]; then
		fail "replay $file: not in the corpus ($path)"
		return
	fi
	sample=${names[$((k % ${#names[@]}))]}

	rm -f "$STATE"
	daemon_start || return
	if ! new_all; then
		fail "replay $file: new failed"
		indent <"$TDIR/reap.out"
		daemon_stop
		return
	fi

	replay "$path" || { daemon_stop; return; }

	# Counters may lag the wire by up to a capture timeout (a ring hands over
	# a partly filled block only then): first wait, bounded, for the session
	# expecting the most packets, then compare all, again while some are short.
	t0=$(now_ms)
	late=
	while [ "$(poll_packets "$sentinel")" -lt "$most" ]; do
		late=1
		[ $(($(now_ms) - t0)) -lt "$SETTLE_MS" ] || break
		nap 0.05
	done
	while :; do
		cs -j list >"$TDIR/list.json" 2>&1
		cs -j poll "$sample" >"$TDIR/sample.poll" 2>&1
		compare "$sample" >"$TDIR/compare.out"
		rc=$?
		[ "$rc" -eq 1 ] && [ $(($(now_ms) - t0)) -lt "$SETTLE_MS" ] || break
		late=1
		nap 0.2
	done
	[ -z "$late" ] || late=", counters caught up after $(($(now_ms) - t0)) ms"
	if [ "$rc" -eq 0 ]; then
		pass "replay $file: ${#names[@]} sessions exact ($REPLAY_PACKETS packets at $REPLAY_PPS pps$late)"
	else
		fail "replay $file: $(wc -l <"$TDIR/compare.out") problem(s) in ${#names[@]} sessions ($REPLAY_PACKETS packets at $REPLAY_PPS pps)"
		indent <"$TDIR/compare.out"
	fi
	daemon_stop
}

# ---- main

start=$(now_ms)
veth_up rp || exit 1
mapfile -t files < <(cut -f1 "$TDIR/plan.tsv" | awk '!seen[$0]++')
for k in "${!files[@]}"; do
	replay_file "$k" "${files[$k]}"
done
printf '  %s files replayed at %s pps in %s ms\n' "${#files[@]}" "$REPLAY_PPS" "$(($(now_ms) - start))"
exit 0
