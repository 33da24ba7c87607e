#!/usr/bin/env bash
# tests/bench/run.sh: `make bench`. capstats (its libpcap path, and its
# kernel path) against N x tcpdump and two libpcap readers of N handles in
# one thread (ref.c): ref, which reads its rings as the libpcap path does,
# and epoll, the best such reader; each alone in turn on the same
# generated traffic (gen.c) on a veth pair, at rising rates, N = 1, 8, 64
# filters; then the read side: one read, a scan, a `poll` process, a
# socket round trip, and freshness. Prints a table; writes
# build/bench/results.tsv and results.md. Targets are reported as
# PASS/MISS and never fail the run; it fails only when it cannot measure.
# BENCH_QUICK=1: one N, three rates; BENCH_N="1 64": these N;
# BENCH_CONTENDERS="capstats epoll": these contenders.
#
# The generator runs on the last CPU, where the kernel's receive work (every
# capture socket's filter) also runs, in its softirq; the counting processes
# run on CPU 0. Every point is measured twice.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=bench
# shellcheck source=../lib.sh
. "$TOP/tests/lib.sh"
# shellcheck source=common.sh
. "$TOP/tests/bench/common.sh"

BB=$TOP/build/bench		# the programs (see Makefile) and the results
GEN=$BB/gen REF=$BB/ref RB=$BB/readbench
FILTERS=$TOP/tests/bench/filters.txt
REPORT=$TOP/tests/bench/report.py
RAW=$TDIR/raw.tsv READ=$TDIR/read.tsv

BUF_KB=2048	# capstats' default -B; tcpdump and ref get the same ring
RUNS=2
CONTENDERS=(capstats kernel tcpdump ref epoll)
[ -n "${BENCH_CONTENDERS:-}" ] && read -r -a CONTENDERS <<<"$BENCH_CONTENDERS"
GEN_CPU=$(($(nproc) - 1))
COUNT_CPU=0
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	NS=(8) RATES=(20000 200000) DUR=1.5 PROBES=150
else
	NS=(1 8 64) RATES=(20000 50000 100000 200000 400000) DUR=2 PROBES=300
fi
# BENCH_N="64": only these numbers of filters
[ -n "${BENCH_N:-}" ] && read -r -a NS <<<"$BENCH_N"
for n in "${NS[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 64 ] ||
	    die "BENCH_N: give numbers of filters from 1 to 64"
done
SATURATED=0.9	# below this share of a rate the generator is at its limit

require_root
need ip ethtool sysctl taskset tcpdump timeout "$PY"
require_capstats
# The binary under test stays the same for the whole run, whatever make
# does to the build directory meanwhile.
cp "$CAPSTATS" "$TDIR/capstats" || die "bench: cannot copy $CAPSTATS"
CAPSTATS=$TDIR/capstats
for x in "$GEN" "$REF" "$RB"; do
	[ -x "$x" ] || die "bench: $x is missing (run make bench)"
done
mapfile -t FILT < <(grep -v -e '^#' -e '^$' "$FILTERS")
[ "${#FILT[@]}" -ge 64 ] || die "bench: $FILTERS has ${#FILT[@]} filters, 64 needed"

# ---------------------------------------------------------------- contenders
#
# A contender is one function c_NAME ACTION N:
#   available	0 if it can run here (any other answer: it is left out)
#   start	count the first N filters on $HOST_IF; set C_PIDS to the
#		processes whose CPU time is the contender's; 1 on failure
#   settle	after the traffic: wait until what arrived is counted
#   stop	end counting; write N lines "COUNTED DROPS" to $TDIR/got
# Adding a contender is that function and its name in CONTENDERS.

C_PIDS=()
BENCH_DPID=

# bench_daemon: a daemon of our own, pinned to the counting CPU, with the
# bench's ring size; the cleanup of lib.sh stops it.
bench_daemon() {
	local n=100
	taskset -c "$COUNT_CPU" "$CAPSTATS" -d -f -s "$SOCK" -m "$SHM" -S "$STATE" \
	    -B "$BUF_KB" </dev/null >>"$TDIR/daemon.log" 2>&1 &
	T_DPID=$! T_DAEMON=1 BENCH_DPID=$!
	until cs list >/dev/null 2>&1; do
		n=$((n - 1))
		if [ "$n" -le 0 ] || ! pid_running "$T_DPID"; then
			daemon_log | indent
			die "bench: the daemon did not start"
		fi
		sleep 0.05
	done
}

# capstats_counts N: "PACKETS DROPS" of sessions b0..b(N-1), as the
# segment publishes them (what every reader sees)
capstats_counts() {
	local n=$1 name pk dr i
	local -a p=() d=()
	while read -r name pk dr; do
		[[ $name =~ ^b([0-9]+)$ ]] || continue
		p[BASH_REMATCH[1]]=$pk
		d[BASH_REMATCH[1]]=$dr
	done < <("$RB" counts "$SHM")
	for ((i = 0; i < n; i++)); do
		echo "${p[i]:--1} ${d[i]:-0}"
	done
}

# _capstats ACTION N [WORDS...]: sessions b0..b(N-1) in the daemon; WORDS
# go between the interface and the filter (a counting mode, say)
_capstats() {
	local action=$1 n=$2 i prev= cur k fails=0 pids
	shift 2
	case $action in
	available)
		cs new b0 interface "$HOST_IF" "$@" filter >"$TDIR/new.0" 2>&1 || {
			printf 'note: capstats %s: %s; left out\n' "$*" "$(cat "$TDIR/new.0")"
			return 1
		}
		cs stop b0 >/dev/null
		;;
	start)
		# all at once: 64 clients one after the other take seconds
		pids=()
		for ((i = 0; i < n; i++)); do
			cs new "b$i" interface "$HOST_IF" "$@" filter "${FILT[i]}" \
			    >"$TDIR/new.$i" 2>&1 &
			pids+=("$!")
		done
		for i in "${pids[@]}"; do
			wait "$i" || fails=1
		done
		if [ "$fails" -ne 0 ]; then
			cat "$TDIR"/new.* | indent
			return 1
		fi
		C_PIDS=("$BENCH_DPID")
		;;
	settle)
		# Drop counters are refreshed every 100 ms: two equal reads
		# 100 ms apart are final.
		sleep 0.25
		for ((k = 0; k < 30; k++)); do
			cur=$(capstats_counts "$n")
			[ "$cur" = "$prev" ] && break
			prev=$cur
			sleep 0.1
		done
		;;
	stop)
		capstats_counts "$n" >"$TDIR/got"
		capstats_stop "$n"
		;;
	esac
}

# capstats_stop N: stop sessions b0..b(N-1), all at once
capstats_stop() {
	local i pids=()
	for ((i = 0; i < $1; i++)); do
		cs stop "b$i" >/dev/null &
		pids+=("$!")
	done
	for i in "${pids[@]}"; do
		wait "$i"
	done
}

# capstats' libpcap path: a capture socket and a ring per session
c_capstats() { _capstats "$@" mode pcap; }

# capstats' kernel path: one eBPF program per interface counts every session
c_kernel() { _capstats "$@" mode kernel; }

# tcpdump as an operator would run it, one per filter, counted from its
# own final lines
c_tcpdump() {
	local action=$1 n=$2 i k pid cap drop
	case $action in
	available)
		;;
	start)
		C_PIDS=()
		for ((i = 0; i < n; i++)); do
			# Emptied first: a background job's redirection empties
			# the file only once the job runs, and until then the
			# wait below could read the last run's "listening on" and
			# start the traffic before this tcpdump listens.
			: >"$TDIR/td.$i"
			taskset -c "$COUNT_CPU" tcpdump -i "$HOST_IF" -s 96 -B "$BUF_KB" \
			    -w /dev/null "${FILT[i]}" 2>"$TDIR/td.$i" &
			C_PIDS+=("$!")
			bg_track "$!"
		done
		for ((k = 0; k < 200; k++)); do
			for ((i = 0; i < n; i++)); do
				grep -q '^listening on\|: listening on' "$TDIR/td.$i" || break
			done
			[ "$i" -eq "$n" ] && return 0
			sleep 0.05
		done
		fail "bench: tcpdump did not start"
		cat "$TDIR/td.0" | indent
		return 1
		;;
	settle)
		sleep 1.2	# tcpdump's ring timeout is 1 s
		;;
	stop)
		for pid in "${C_PIDS[@]}"; do
			kill -INT "$pid" 2>/dev/null
		done
		: >"$TDIR/got"
		for ((i = 0; i < n; i++)); do
			bg_stop "${C_PIDS[i]}"
			cap=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured$/\1/p' "$TDIR/td.$i")
			drop=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel$/\1/p' "$TDIR/td.$i")
			echo "${cap:--1} ${drop:-0}" >>"$TDIR/got"
		done
		;;
	esac
}

# _ref ACTION N [OPTIONS...]: a reference reader, N handles in one process
_ref() {
	local action=$1 n=$2 k
	shift 2
	case $action in
	available)
		;;
	start)
		: >"$TDIR/ref.out"	# not the previous run's "ready" (see c_tcpdump)
		taskset -c "$COUNT_CPU" "$REF" "$@" "$HOST_IF" "$BUF_KB" "$FILTERS" "$n" \
		    >"$TDIR/ref.out" 2>&1 &
		C_PIDS=("$!")
		bg_track "$!"
		for ((k = 0; k < 200; k++)); do
			grep -q '^ready' "$TDIR/ref.out" && return 0
			pid_running "${C_PIDS[0]}" || break
			sleep 0.05
		done
		fail "bench: ref $* did not start"
		indent <"$TDIR/ref.out"
		return 1
		;;
	settle)
		# As long as capstats' first wait; on stop it reads its rings
		# until nothing more comes, as capstats' settle does.
		sleep 0.3
		;;
	stop)
		bg_stop "${C_PIDS[0]}"
		awk '$1 ~ /^[0-9]+$/ { print $2, $4 }' "$TDIR/ref.out" >"$TDIR/got"
		;;
	esac
}

# ref: reads its rings as capstats' libpcap path does (a 1 ms tick)
c_ref() { _ref "$@"; }

# epoll: the best one-thread libpcap reader, every handle in one epoll set
# and pcap_dispatch() on each that is ready, with a ring of blocks, each
# handed over when full or 100 ms after it opened. The same reader tuned
# otherwise, left out unless BENCH_CONTENDERS names it: epollimm, a ring of
# frames in immediate mode (a wake-up per packet); epoll1 and epoll10,
# blocks handed over after 1 or 10 ms.
c_epoll() { _ref "$@" -e -b 100; }
c_epollimm() { _ref "$@" -e; }
c_epoll1() { _ref "$@" -e -b 1; }
c_epoll10() { _ref "$@" -e -b 10; }

# ---------------------------------------------------------------- one point

# send RATE: the generator in the namespace; its report line on stdout
send() {
	ip netns exec "$NETNS" taskset -c "$GEN_CPU" "$GEN" send "$PEER_IF" "$1" "$DUR"
}

# point C N RATE RUN: contender C counts while the traffic runs; appends
# one raw row to $RAW (columns: see report.py)
point() {
	local c=$1 n=$2 rate=$3 run=$4 cpu0 cpu1 rx0 rx1 s0 s1 g
	local sent ns guser gsys exp cnt drp exact acct
	"c_$c" start "$n" || die "bench: $c: start failed ($n filters)"
	cpu0=$(cpu_ns "${C_PIDS[@]}")
	rx0=$(if_stat "$HOST_IF" rx_packets)
	s0=$(sys_ticks)
	g=$(send "$rate") || die "bench: the generator failed"
	s1=$(sys_ticks)
	rx1=$(if_stat "$HOST_IF" rx_packets)
	"c_$c" settle "$n"
	cpu1=$(cpu_ns "${C_PIDS[@]}") || die "bench: $c died during the run"
	"c_$c" stop "$n"
	read -r _ sent _ ns _ guser _ gsys <<<"$g"
	"$GEN" expect "$sent" "$FILTERS" | head -n "$n" | cut -f1 >"$TDIR/exp"
	# per filter: exact when counted = expected, accounted when counted +
	# drops = expected; sums of expected, counted, drops
	read -r exp cnt drp exact acct < <(paste -d' ' "$TDIR/exp" "$TDIR/got" | awk '
	    { e += $1; c += $2; d += $3; if ($2 != $1) x = 1; if ($2 + $3 != $1) a = 1 }
	    END { print e, c, d, 1 - x, 1 - a }')
	read -r -a s0 <<<"$s0"
	read -r -a s1 <<<"$s1"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
	    "$n" "$rate" "$run" "$c" "$sent" "$((rx1 - rx0))" "$ns" "$exp" "$cnt" \
	    "$drp" "$exact" "$acct" "$((cpu1 - cpu0))" "$((s1[0] - s0[0]))" \
	    "$((s1[1] - s0[1]))" "$((s1[2] - s0[2]))" "$guser" "$gsys" >>"$RAW"
}

# step N RATE: every run of every contender at one rate; prints its rows.
# Returns 1 when the generator fell short of RATE (it is at its limit).
step() {
	local n=$1 rate=$2 run c
	for ((run = 1; run <= RUNS; run++)); do
		for c in "${CONTENDERS[@]}"; do
			point "$c" "$n" "$rate" "$run"
		done
		"$PY" "$REPORT" row "$RAW" "$n" "$rate" "$run"
	done
	[ "$rate" -eq 0 ] && return 0
	awk -F'\t' -v n="$n" -v r="$rate" -v lim="$SATURATED" '
	    $1 == n && $2 == r { s += $5 / ($7 / 1e9); k++ }
	    END { exit !(k > 0 && s / k < lim * r) }' "$RAW" && return 1
	return 0
}

# ---------------------------------------------------------------- read side

# rb KEY...: readbench's result lines, kept in $READ
rb() { "$RB" "$@" | tee -a "$READ" | sed 's/^/  /'; }

read_side() {
	local port=$((20000 + $$ % 20000)) n gpid i
	echo "== read side"
	rb wake 2000
	cs new rd interface "$HOST_IF" mode pcap filter "${FILT[0]}" >/dev/null ||
	    die "bench: new rd"
	rb read "$SHM" rd
	rb scan "capstats-bench-scan-$$" 1000 2000
	rb exec true 200 /bin/true
	rb exec poll 200 "$CAPSTATS" -s "$SOCK" -m "$SHM" -j poll rd
	rb exec show 200 "$CAPSTATS" -s "$SOCK" -m "$SHM" -j show rd
	rb sock "$SOCK" rd 2000
	# A probe session on lo per counting path, each with its own port.
	for i in "${!MODES[@]}"; do
		cs new "fresh-${MODES[i]}" interface lo mode "${MODES[i]}" filter \
		    "udp dst port $((port + i)) and dst host 127.0.0.1" \
		    >/dev/null || die "bench: new fresh-${MODES[i]}"
		rb fresh "fresh-${MODES[i]}-idle" "$SHM" "fresh-${MODES[i]}" \
		    "$((port + i))" "$PROBES"
	done
	# Under load: the daemon also counts N libpcap sessions of the
	# generator at its highest rate, for as long as the probes take.
	for n in "${NS[@]}"; do
		c_capstats start "$n" || die "bench: sessions for freshness"
		DUR=$((PROBES * ${#MODES[@]} / 100 + 2)) send 0 >/dev/null &
		gpid=$!
		bg_track "$gpid"
		sleep 0.3
		for i in "${!MODES[@]}"; do
			rb fresh "fresh-${MODES[i]}-load-N$n" "$SHM" \
			    "fresh-${MODES[i]}" "$((port + i))" "$PROBES"
		done
		wait "$gpid"
		bg_stop "$gpid"
		capstats_stop "$n"
	done
	for i in "${!MODES[@]}"; do
		cs stop "fresh-${MODES[i]}" >/dev/null
	done
	cs stop rd >/dev/null
}

# ---------------------------------------------------------------- main

start=$(now_ms)
# readbench removes its test segment, unless it is interrupted
trap 'rc=$?; rm -f "/dev/shm/capstats-bench-scan-$$"; (exit $rc); cleanup' EXIT
veth_up bnch || die "bench: no veth pair"
bench_daemon
: >"$RAW"
: >"$READ"
machine | tee "$TDIR/machine"
quiet
printf 'rates %s and the most the generator can do, %s s each, %d runs; ring %d KiB\n' \
    "${RATES[*]}" "$DUR" "$RUNS" "$BUF_KB"
keep=()
for c in "${CONTENDERS[@]}"; do
	declare -F "c_$c" >/dev/null || die "bench: no contender $c"
	"c_$c" available 0 && keep+=("$c")
done
CONTENDERS=("${keep[@]}")
# the counting paths whose freshness is measured
MODES=(pcap)
[[ " ${CONTENDERS[*]} " = *" kernel "* ]] && MODES+=(kernel)
"$PY" "$REPORT" header "${CONTENDERS[@]}"
for n in "${NS[@]}"; do
	for rate in "${RATES[@]}"; do
		step "$n" "$rate" || break
	done
	step "$n" 0
done
read_side
mkdir -p "$BB"
"$PY" "$REPORT" final "$RAW" "$READ" "$TDIR/machine" "$BB" "$(($(now_ms) - start))"
