#!/usr/bin/env bash
# tests/run.sh: run every test against one build and print the totals.
# Unit tests are programs in $B/tests (exit 0 = pass, 77 = cannot run
# here, with a line saying why); system tests are tests/sys/*.sh, which
# print "PASS: what", "FAIL: what" or "SKIP: what".
# Usage: tests/run.sh [B...]   (build directories, default build)
# Environment: T, system tests to run alone, e.g. T=tests/sys/json.sh
# (`make check T=...`), and no unit test; U, unit tests to run alone, by
# name, e.g. U="test_proto test_cmd" (`make check-unit`), and no system test.
set -u
cd "$(dirname "$0")/.." || exit 2
export TOP=$PWD
pass=0 fail=0 skip=0
T=${T:-} U=${U:-}
for t in $T; do
	[ -f "$t" ] || { echo "tests/run.sh: T: no system test $t" >&2; exit 2; }
done

count() {	# count NAME: read a test's output on stdin, tally it
	local name=$1 line seen=0
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		PASS:*) pass=$((pass + 1)); seen=1 ;;
		FAIL:*) fail=$((fail + 1)); seen=1 ;;
		SKIP:*) skip=$((skip + 1)); seen=1 ;;
		esac
	done
	return $((seen == 0))
}

for B in "${@:-build}"; do
export B CAPSTATS=$PWD/$B/capstats
units=("$B"/tests/*)
[ -z "$U" ] || units=($(printf "$B/tests/%s " $U))
[ -z "$T" ] || units=()
for t in "${units[@]}"; do
	n=${t##*/}
	if [ ! -x "$t" ]; then
		[ -z "$U" ] && continue
		echo "FAIL: unit $n: not built in $B"; fail=$((fail + 1))
		continue
	fi
	echo "== unit $n ($B)"
	t0=$(date +%s%N)
	timeout 300 "$t" >"$B/$n.log" 2>&1
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ $rc -eq 0 ]; then
		printf 'PASS: unit %s (%d.%02d s)\n' "$n" $((ms / 1000)) $((ms % 1000 / 10))
		pass=$((pass + 1))
	elif [ $rc -eq 77 ]; then
		sed 's/^/  | /' "$B/$n.log" | tail -40
		echo "SKIP: unit $n: $(sed -n 's/^SKIP: //p' "$B/$n.log" | head -1)"
		skip=$((skip + 1))
	else
		sed 's/^/  | /' "$B/$n.log" | tail -40
		echo "FAIL: unit $n"; fail=$((fail + 1))
	fi
done

systests=(tests/sys/*.sh)
[ -z "$T" ] || systests=($T)
[ -z "$U" ] || systests=()
for t in "${systests[@]}"; do
	[ -f "$t" ] || continue
	n=${t##*/}
	echo "== system ${n%.sh} ($B)"
	out=$(mktemp)
	timeout 600 bash "$t" >"$out" 2>&1
	rc=$?
	if ! count "$n" <"$out" || { [ $rc -ne 0 ] && ! grep -q '^FAIL:' "$out"; }; then
		echo "FAIL: $n exited $rc"; fail=$((fail + 1))
	fi
	rm -f "$out"
done
done

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
