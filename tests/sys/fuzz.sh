# tests/sys/fuzz.sh: the libFuzzer targets in tests/fuzz/. Building them is
# part of the test; then each runs a fixed number of inputs over its seeds.
# A crash, a leak, a sanitizer report or a broken invariant makes libFuzzer
# exit non-zero: FAIL, with the end of its log and the input it saved.
. "${TOP:-.}/tests/lib.sh"

# The targets carry their own sanitizers and do not use $B at all: running
# them again for the ASan build would repeat the same work.
if [ "$B" != build ]; then
	skip "fuzz: the fuzz targets are the same for every build variant; they run with build, not again with $B"
	exit 0
fi
require_root
need clang make

# Inputs per target after its seeds, or SECONDS, whichever ends first:
# fuzz_request runs the real sessions, state file and segment under each
# input, at a few hundred inputs a second on 2 cores, and at 60 where a
# page fault is slow, so a count alone can take minutes.
RUNS_fuzz_request=${CAPSTATS_FUZZ_RUNS:-10000}
RUNS_fuzz_names=${CAPSTATS_FUZZ_RUNS:-80000}
RUNS_fuzz_segment=${CAPSTATS_FUZZ_RUNS:-20000}
SECONDS_MAX=${CAPSTATS_FUZZ_SECONDS:-30}
# The targets' files in /dev/shm (fuzz_segment's segments, fuzz_request's
# segment and state file): named for this run, removed at the end
export CAPSTATS_FUZZ_SHM=capstats-t$$-fuzz

FZ=$TOP/build/fuzz
targets="fuzz_request fuzz_names fuzz_segment"

t0=$(now_ms)
# A target's dictionary is built beside it: the request fuzzer's has the
# commands of the table.
dicts=$(cd "$TOP/tests/fuzz" && printf "build/fuzz/%s " *.dict)
if make -C "$TOP" -j2 $(printf "build/fuzz/%s " $targets) build/fuzz/seed_segment \
    $dicts >"$TDIR/build.log" 2>&1; then
	pass "fuzz: the targets build with clang ($((($(now_ms) - t0) / 1000)) s)"
else
	fail "fuzz: building the targets"
	tail -40 "$TDIR/build.log" | indent
	exit 1
fi

mkdir -p "$TDIR/seeds"
check "fuzz: segment seeds from this tree's writer" "$FZ/seed_segment" "$TDIR/seeds"

# fuzz TARGET [EXTRA_SEEDS]: RUNS_TARGET inputs; what it adds to its corpus
# stays in $TDIR, a crash is kept in build/fuzz/ for the report
fuzz() {
	local t=$1 runs maxlen log=$TDIR/$1.log rc dict=() speed
	runs=RUNS_$t
	runs=${!runs}
	maxlen=$(sed -n 's/^max_len *= *//p' "$TOP/tests/fuzz/$t.options")
	[ ! -f "$TOP/tests/fuzz/$t.dict" ] || dict=(-dict="$FZ/$t.dict")
	mkdir -p "$TDIR/corpus-$t"
	timeout 300 "$FZ/$t" -runs="$runs" -max_total_time="$SECONDS_MAX" \
	    -max_len="$maxlen" "${dict[@]}" \
	    -timeout=20 -print_final_stats=1 -artifact_prefix="$FZ/$t-" \
	    "$TDIR/corpus-$t" "$TOP/tests/fuzz/corpus/$t" ${2:+"$2"} \
	    >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q '^Done ' "$log"; then
		speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		pass "fuzz: $t: $runs inputs, no crash, leak or broken invariant ($speed exec/s)"
		return 0
	fi
	fail "fuzz: $t exited $rc"
	{
		grep -m1 'INFO: Seed:' "$log"
		tail -60 "$log"
	} | indent
	return 1
}

for t in $targets; do
	if [ "$t" = fuzz_segment ]; then
		fuzz "$t" "$TDIR/seeds"
	else
		fuzz "$t"
	fi
done

left=$(find /dev/shm -maxdepth 1 -name "$CAPSTATS_FUZZ_SHM-*" 2>/dev/null)
if [ -n "$left" ]; then
	fail "fuzz: the targets left files in /dev/shm"
	printf '%s\n' "$left" | indent
	rm -rf $left
else
	pass "fuzz: the targets left nothing in /dev/shm"
fi
