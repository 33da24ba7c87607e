#!/usr/bin/env bash
# tests/run.sh: run every test against one build and print the totals.
# Unit tests are programs in $B/tests (exit 0 = pass); system tests are
# tests/sys/*.sh, which print "PASS: what", "FAIL: what" or "SKIP: what".
# Usage: tests/run.sh [B...]   (build directories, default build)
set -u
cd "$(dirname "$0")/.." || exit 2
export TOP=$PWD
pass=0 fail=0 skip=0

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
for t in "$B"/tests/*; do
	[ -x "$t" ] || continue
	n=${t##*/}
	echo "== unit $n ($B)"
	if timeout 300 "$t" >"$B/$n.log" 2>&1; then
		echo "PASS: unit $n"; pass=$((pass + 1))
	else
		sed 's/^/  | /' "$B/$n.log" | tail -40
		echo "FAIL: unit $n"; fail=$((fail + 1))
	fi
done

for t in tests/sys/*.sh; do
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
