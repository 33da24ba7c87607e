#!/usr/bin/env bash
# tests/run.sh: run every test against one build or more and print the
# totals. Unit tests are programs in $B/tests (exit 0 = pass, 77 = cannot
# run here, with a line saying why); system tests are tests/sys/*.sh, which
# print "PASS: what", "FAIL: what" or "SKIP: what".
# Tests run a few at a time (CHECK_JOBS, default 3), each system test in a
# network namespace of its own, and each test's output is printed whole
# when it ends; a system test with a line "# alone: WHY" (it steps the
# clock, times the daemon's answers, adds users) runs afterwards, with
# nothing else running.
# Usage: tests/run.sh [B...]   (build directories, default build)
# Environment: T, system tests to run alone, e.g. T=tests/sys/json.sh
# (`make check T=...`), and no unit test; U, unit tests to run alone, by
# name, e.g. U="test_proto test_cmd" (`make check-unit`), and no system test.
set -u
cd "$(dirname "$0")/.." || exit 2
export TOP=$PWD
T=${T:-} U=${U:-}
for t in $T; do
	[ -f "$t" ] || { echo "tests/run.sh: T: no system test $t" >&2; exit 2; }
done
builds=("${@:-build}")
RES=$(mktemp -d) || exit 2
# At the end, or when interrupted: the namespaces made here, by name.
cleanup() {
	local ns
	for ns in $(ip netns list 2>/dev/null | sed -n "s/^\(cstrun$$-[0-9]*\).*/\1/p"); do
		ip netns del "$ns"
	done
	rm -rf "$RES"
}
trap cleanup EXIT
: >"$RES/tally"

# unit B PROGRAM: run a unit test; say PASS, SKIP (with its reason) or FAIL
unit() {
	local b=$1 t=$2 n=${2##*/}
	B=$b CAPSTATS=$PWD/$b/capstats timeout 300 "$t" >"$b/$n.log" 2>&1
	case $? in
	0)	echo "PASS: unit $n" ;;
	77)	sed 's/^/  | /' "$b/$n.log" | tail -40
		echo "SKIP: unit $n: $(sed -n 's/^SKIP: //p' "$b/$n.log" | head -1)" ;;
	*)	sed 's/^/  | /' "$b/$n.log" | tail -40
		echo "FAIL: unit $n" ;;
	esac
}

# system B TEST K: run a system test in a network namespace of its own (its
# own lo: no test counts another's packets), where it can make one, with
# a /run/netns of its own (the namespaces it names are the only ones it
# sees, and no other test sees them)
system() {
	local b=$1 t=$2 ns=cstrun$$-$3 rc
	local in=()
	if ip netns add "$ns" 2>/dev/null; then
		ip -n "$ns" link set lo up
		in=(ip netns exec "$ns" sh -c 'mount -t tmpfs -o mode=0755 \
		    cstrun /run/netns && exec "$@"' sh)
	fi
	B=$b CAPSTATS=$PWD/$b/capstats timeout 600 "${in[@]}" bash "$t" </dev/null 2>&1
	rc=$?
	[ ${#in[@]} -eq 0 ] || ip netns del "$ns"
	return $rc
}

# job KIND B TEST K: run it; print its output as one block when it ends,
# with the time it took, and add its tally to $RES/tally. A system test
# that says nothing, or fails without a FAIL line, fails.
job() {
	local kind=$1 b=$2 t=$3 n=${3##*/} out=$RES/$4 line rc t0 ms p=0 f=0 s=0
	t0=$(date +%s%N)
	"$kind" "$b" "$t" "$4" >"$out"
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	while IFS= read -r line; do
		case $line in
		PASS:*) p=$((p + 1)) ;;
		FAIL:*) f=$((f + 1)) ;;
		SKIP:*) s=$((s + 1)) ;;
		esac
	done <"$out"
	if [ "$kind" = system ] && { [ $((p + f + s)) -eq 0 ] ||
	    { [ $rc -ne 0 ] && [ $f -eq 0 ]; }; }; then
		echo "FAIL: $n exited $rc" >>"$out"
		f=$((f + 1))
	fi
	{
		flock 9
		printf '== %s %s (%s, %d.%02d s)\n' "$kind" "${n%.sh}" "$b" \
		    $((ms / 1000)) $((ms % 1000 / 10))
		cat "$out"
		echo "$p $f $s" >>"$RES/tally"
	} 9>>"$RES/lock"
}

# The queue: "KIND B TEST" per line, units first.
for b in "${builds[@]}"; do
	units=("$b"/tests/*)
	[ -z "$U" ] || units=($(printf "$b/tests/%s " $U))
	[ -z "$T" ] || units=()
	for t in "${units[@]}"; do
		if [ -x "$t" ]; then
			echo "unit $b $t"
		elif [ -n "$U" ]; then
			echo "FAIL: unit ${t##*/}: not built in $b" >&2
			echo "0 1 0" >>"$RES/tally"
		fi
	done
done 2>&1 >"$RES/queue"
systests=(tests/sys/*.sh)
[ -z "$T" ] || systests=($T)
[ -z "$U" ] || systests=()
alone() { grep -q '^# alone:' "$1"; }
for t in "${systests[@]}"; do
	alone "$t" && continue
	for b in "${builds[@]}"; do
		echo "system $b $t"
	done
done >>"$RES/queue"

k=0 running=0
while read -r kind b t; do
	if [ $running -ge "${CHECK_JOBS:-3}" ]; then
		wait -n
		running=$((running - 1))
	fi
	k=$((k + 1))
	job "$kind" "$b" "$t" $k &
	running=$((running + 1))
done <"$RES/queue"
wait
for t in "${systests[@]}"; do
	alone "$t" || continue
	for b in "${builds[@]}"; do
		k=$((k + 1))
		job system "$b" "$t" $k
	done
done

pass=0 fail=0 skip=0
while read -r p f s; do
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done <"$RES/tally"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
