#!/usr/bin/env bash
# tests/bench/many.sh: the many-filter part of `make bench`. N = 64, 256 and
# 1000 filters of one family (`host A` of 10.20.0.0/22, `tcp port P`,
# `vlan V`, and a blend of the three with filters.txt), counted on traffic
# from gen.c whose frames each match one filter of the family, or, one in
# ten, none; by capstats' kernel path, by `offline` (one libpcap capture and
# the N filters run in user space), and by N x tcpdump up to N = 64. Then
# the control side with 1000 sessions: `new`, `list`, `metrics`, shutdown,
# restore, and memory per session on each path. Targets are PASS/MISS and
# never fail the run. Writes build/bench/many.tsv and many.md.
# BENCH_QUICK=1: N = 1000 only, two families, two rates.
# BENCH_MANY_N, BENCH_MANY_FAMILIES, BENCH_MANY_RATES: these instead.
# BENCH_MANY_TRAFFIC=0: the control side and memory only.
#
# As in run.sh: the generator runs on the last CPU, where the kernel's
# receive work runs too (in its softirq); the counting processes on CPU 0.
# Each point is measured once; a contender's rates go up until it loses a
# packet.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=benchmany
# shellcheck source=../lib.sh
. "$TOP/tests/lib.sh"
# shellcheck source=common.sh
. "$TOP/tests/bench/common.sh"

BB=$TOP/build/bench
GEN=$BB/gen OFFLINE=$BB/offline RB=$BB/readbench
FILTERS=$TOP/tests/bench/filters.txt
CTL=$TOP/tests/bench/ctl.py
REPORT=$TOP/tests/bench/many.py
RAW=$TDIR/raw.tsv FACTS=$TDIR/facts.tsv TIMINGS=$TDIR/timings.tsv

BUF_KB=2048		# every capture's ring, as in run.sh
SESSIONS=1100		# -n: 1000 and the timed news
CTL_N=1000		# sessions for the control side
TCPDUMP_MAX=64		# more tcpdumps than this do not fit the machine
COST_RATE=200000	# the rate at which the eBPF run time is measured
GEN_CPU=$(($(nproc) - 1))
COUNT_CPU=0
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	NS=(1000) FAMILIES=(host mixed) RATES=(100000 500000) DUR=1
	NEWS=20 REPS=10 PCAP_MEM_N=64
else
	NS=(64 256 1000) FAMILIES=(host port vlan mixed)
	RATES=(20000 50000 100000 250000 500000 1000000) DUR=1
	NEWS=50 REPS=20 PCAP_MEM_N=256
fi
[ -n "${BENCH_MANY_N:-}" ] && read -r -a NS <<<"$BENCH_MANY_N"
[ -n "${BENCH_MANY_FAMILIES:-}" ] && read -r -a FAMILIES <<<"$BENCH_MANY_FAMILIES"
[ -n "${BENCH_MANY_RATES:-}" ] && read -r -a RATES <<<"$BENCH_MANY_RATES"
for n in "${NS[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 4 ] && [ "$n" -le 1000 ] ||
	    die "BENCH_MANY_N: give numbers of filters from 4 to 1000"
done
SATURATED=0.9	# below this share of a rate the generator is at its limit

require_root
need ip ethtool taskset tcpdump timeout "$PY"
require_capstats
cp "$CAPSTATS" "$TDIR/capstats" || die "bench: cannot copy $CAPSTATS"
CAPSTATS=$TDIR/capstats
for x in "$GEN" "$OFFLINE" "$RB"; do
	[ -x "$x" ] || die "bench: $x is missing (run make bench)"
done

ctl() { "$PY" "$CTL" "$@"; }

# fact KEY VALUE...: one line of what was measured besides the traffic
fact() { printf '%s' "$1" >>"$FACTS"; shift; printf '\t%s' "$@" >>"$FACTS"; echo >>"$FACTS"; }

rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# ---------------------------------------------------------------- daemon

DPID=

# many_daemon [CPU]: a daemon of our own (pinned to CPU if given) on the
# private socket, segment and state file; the cleanup of lib.sh stops it
many_daemon() {
	local n=200 pin=()
	[ -n "${1:-}" ] && pin=(taskset -c "$1")
	"${pin[@]}" "$CAPSTATS" -d -f -s "$SOCK" -m "$SHM" -S "$STATE" -n "$SESSIONS" \
	    -B "$BUF_KB" </dev/null >>"$TDIR/daemon.log" 2>&1 &
	T_DPID=$! T_DAEMON=1 DPID=$!
	until cs list >/dev/null 2>&1; do
		n=$((n - 1))
		if [ "$n" -le 0 ] || ! pid_running "$DPID"; then
			daemon_log | tail -20 | indent
			die "bench: the daemon did not start"
		fi
		nap 0.025
	done
}

# many_stop: SIGTERM; STOP_MS is the time until it exited
STOP_MS=
many_stop() {
	local t0 rc
	t0=${EPOCHREALTIME/[.,]/}
	kill -TERM "$DPID"
	wait "$DPID"
	rc=$?
	STOP_MS=$(((${EPOCHREALTIME/[.,]/} - t0) / 1000))
	T_DPID= DPID=
	[ "$rc" -eq 0 ] || die "bench: the daemon exited $rc after SIGTERM"
}

# ---------------------------------------------------------------- contenders
#
# As in run.sh, c_NAME ACTION N FILE: available, start (set C_PIDS),
# settle, stop (N lines "COUNTED DROPS" in $TDIR/got); and here setup and
# teardown around all the rates of one family and N.

C_PIDS=()

# counts FILE: "PACKETS DROPS" of sessions k0..k(N-1) from the segment
counts() {
	"$RB" counts "$SHM" | awk -v n="$1" '
	    $1 ~ /^k[0-9]+$/ { i = substr($1, 2) + 0; p[i] = $2; d[i] = $3 }
	    END { for (i = 0; i < n; i++) print (i in p ? p[i] : -1), (i in d ? d[i] : 0) }'
}

# The kernel path: the sessions stay for every rate; what a point counted
# is the growth of their counters.
c_kernel() {
	local action=$1 n=$2 f=${3:-} k ms prev= cur
	case $action in
	available)
		cs new k0 interface "$HOST_IF" mode kernel filter >"$TDIR/new.0" 2>&1 || {
			printf 'note: capstats mode kernel: %s; left out\n' "$(cat "$TDIR/new.0")"
			return 1
		}
		cs stop k0 >/dev/null
		;;
	setup)
		ms=$(ctl new "$SOCK" "$HOST_IF" k "$f" mode kernel) ||
		    die "bench: $n sessions could not be made"
		fact create "$FAM" "$n" "$ms"
		;;
	start)
		C_PIDS=("$DPID")
		counts "$n" >"$TDIR/before"
		;;
	settle)
		# drop counters are refreshed every 100 ms: two equal reads
		# 100 ms apart are final
		nap 0.25
		for ((k = 0; k < 30; k++)); do
			cur=$(counts "$n")
			[ "$cur" = "$prev" ] && break
			prev=$cur
			nap 0.1
		done
		;;
	stop)
		counts "$n" | paste -d' ' "$TDIR/before" - |
		    awk '{ print $3 - $1, $4 - $2 }' >"$TDIR/got"
		;;
	teardown)
		ctl stop "$SOCK" k "$n" || die "bench: sessions could not be stopped"
		;;
	esac
}

# One capture of everything, each filter run on every packet in user space.
c_offline() {
	local action=$1 n=$2 f=${3:-} k
	case $action in
	available | setup | teardown) ;;
	start)
		: >"$TDIR/offline.out"
		taskset -c "$COUNT_CPU" "$OFFLINE" "$HOST_IF" "$BUF_KB" "$f" "$n" \
		    >"$TDIR/offline.out" 2>&1 &
		C_PIDS=("$!")
		bg_track "$!"
		for ((k = 0; k < 400; k++)); do
			grep -q '^ready' "$TDIR/offline.out" && return 0
			pid_running "${C_PIDS[0]}" || break
			nap 0.025
		done
		indent <"$TDIR/offline.out"
		die "bench: offline did not start"
		;;
	settle)
		nap 0.3		# 30 times its ring timeout
		;;
	stop)
		bg_stop "${C_PIDS[0]}"
		# one capture: its drops once, not once per filter
		awk '$1 ~ /^[0-9]+$/ { print $2, ($1 == 0 ? $4 : 0) }' \
		    "$TDIR/offline.out" >"$TDIR/got"
		;;
	esac
}

# tcpdump as an operator would run it, one per filter (as in run.sh)
c_tcpdump() {
	local action=$1 n=$2 f=${3:-} i k pid cap drop flt
	case $action in
	available | setup | teardown) ;;
	start)
		C_PIDS=()
		mapfile -t flt <"$f"
		for ((i = 0; i < n; i++)); do
			: >"$TDIR/td.$i"
			taskset -c "$COUNT_CPU" tcpdump -i "$HOST_IF" -s 96 -B "$BUF_KB" \
			    -w /dev/null "${flt[i]}" 2>"$TDIR/td.$i" &
			C_PIDS+=("$!")
			bg_track "$!"
		done
		for ((k = 0; k < 400; k++)); do
			for ((i = 0; i < n; i++)); do
				grep -q '^listening on\|: listening on' "$TDIR/td.$i" || break
			done
			[ "$i" -eq "$n" ] && return 0
			nap 0.05
		done
		indent <"$TDIR/td.0"
		die "bench: tcpdump did not start"
		;;
	settle)
		nap 1.2	# tcpdump's ring timeout is 1 s
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

# ---------------------------------------------------------------- one point

# point C N RATE FILE [LABEL]: contender C counts while the traffic of
# family $FAM runs; one raw row to $RAW (columns: see many.py), under
# LABEL (default C). Sets POINT_OK (loss-free) and POINT_SAT (the
# generator fell short of RATE).
point() {
	local c=$1 n=$2 rate=$3 f=$4 label=${5:-$1} cpu0 cpu1 rx0 rx1 s0 s1 g b0 b1
	local sent ns guser gsys exp cnt drp exact
	"c_$c" start "$n" "$f"
	cpu0=$(cpu_ns "${C_PIDS[@]}")
	b0="0 0" b1="0 0"
	[ "$label" = kernel+bpfstats ] && b0=$(ctl bpf "$DPID")
	rx0=$(if_stat "$HOST_IF" rx_packets)
	s0=$(sys_ticks)
	g=$(ip netns exec "$NETNS" taskset -c "$GEN_CPU" "$GEN" -f "$FAM" -n "$n" \
	    send "$PEER_IF" "$rate" "$DUR") || die "bench: the generator failed"
	s1=$(sys_ticks)
	rx1=$(if_stat "$HOST_IF" rx_packets)
	"c_$c" settle "$n" "$f"
	cpu1=$(cpu_ns "${C_PIDS[@]}") || die "bench: $c died during the run"
	[ "$label" = kernel+bpfstats ] && b1=$(ctl bpf "$DPID")
	"c_$c" stop "$n" "$f"
	read -r _ sent _ ns _ guser _ gsys <<<"$g"
	"$GEN" -f "$FAM" -n "$n" expect "$sent" "$f" | cut -f1 >"$TDIR/exp"
	read -r exp cnt drp exact < <(paste -d' ' "$TDIR/exp" "$TDIR/got" | awk '
	    { e += $1; c += $2; d += $3; k++; if ($2 != $1) x = 1 }
	    END { print e, c, d, (k > 0 && !x) }')
	read -r -a s0 <<<"$s0"
	read -r -a s1 <<<"$s1"
	read -r -a b0 <<<"$b0"
	read -r -a b1 <<<"$b1"
	printf '%s\t' "$FAM" "$n" "$rate" "$label" "$sent" "$((rx1 - rx0))" "$ns" \
	    "$exp" "$cnt" "$drp" "$exact" "$((cpu1 - cpu0))" "$((s1[0] - s0[0]))" \
	    "$((s1[1] - s0[1]))" "$((s1[2] - s0[2]))" "$guser" "$gsys" \
	    "$((b1[0] - b0[0]))" >>"$RAW"
	printf '%s\n' "$((b1[1] - b0[1]))" >>"$RAW"
	"$PY" "$REPORT" row "$RAW"
	POINT_OK=0 POINT_SAT=0
	[ "$exact" = 1 ] && [ "$drp" -eq 0 ] && POINT_OK=1
	awk -v s="$sent" -v ns="$ns" -v r="$rate" -v lim="$SATURATED" \
	    'BEGIN { exit !(r > 0 && s / (ns / 1e9) < lim * r) }' && POINT_SAT=1
	return 0
}

# steps C N FILE: rising rates until C loses a packet or the generator is
# at its limit; the generator's most when it never did
steps() {
	local c=$1 n=$2 f=$3 rate
	for rate in "${RATES[@]}"; do
		point "$c" "$n" "$rate" "$f"
		[ "$POINT_OK" = 1 ] || return 0
		[ "$POINT_SAT" = 1 ] && return 0
	done
	point "$c" "$n" 0 "$f"
}

# cost N FILE: the kernel path once more at COST_RATE, with the kernel's
# eBPF run-time statistics on: its own cost per packet (they add some)
cost() {
	local spid k
	: >"$TDIR/stats.out"	# not an earlier run's "ready"
	"$PY" "$CTL" stats >"$TDIR/stats.out" 2>&1 &
	spid=$!
	bg_track "$spid"
	for ((k = 0; k < 100; k++)); do
		grep -q '^ready' "$TDIR/stats.out" && break
		pid_running "$spid" || break
		nap 0.02
	done
	if grep -q '^ready' "$TDIR/stats.out"; then
		point kernel "$1" "$COST_RATE" "$2" kernel+bpfstats
	else
		printf 'note: no eBPF run-time statistics: %s\n' "$(cat "$TDIR/stats.out")"
	fi
	bg_stop "$spid"
}

# family N: every contender on N filters of family $FAM
family() {
	local n=$1 f=$TDIR/filters.$FAM.$1 c
	"$GEN" -f "$FAM" -n "$n" filters "$FILTERS" >"$f" || die "bench: gen filters"
	fact share "$FAM" "$n" "$("$GEN" -f "$FAM" -n "$n" share "$f")"
	for c in "${CONTENDERS[@]}"; do
		if [ "$c" = tcpdump ] && [ "$n" -gt "$TCPDUMP_MAX" ]; then
			fact skipped "$FAM" "$n" tcpdump
			continue
		fi
		"c_$c" setup "$n" "$f"
		steps "$c" "$n" "$f"
		[ "$c" = kernel ] && cost "$n" "$f"
		"c_$c" teardown "$n" "$f"
	done
}

# ---------------------------------------------------------------- control side

# control: 1000 sessions of the host family on the kernel path, in a daemon
# of their own that is not pinned, as users run it: memory per session,
# whole `new`, `stop`, `list` and `metrics` processes, shutdown, restore.
control() {
	echo "== control side, $CTL_N sessions on the kernel path"
	many_daemon
	control_make
	control_timings "$CAPSTATS" -s "$SOCK" -m "$SHM"
	control_restart
	ctl stop "$SOCK" k "$CTL_N" || die "bench: sessions could not be stopped"
	many_stop
	rm -f "$STATE"
}

# control_make: the sessions, and the daemon's growth for them
control_make() {
	local f=$TDIR/filters.control r0 r1 m0 m1 ms
	"$GEN" -f host -n "$CTL_N" filters >"$f" || die "bench: gen filters"
	r0=$(rss_kb "$DPID") m0=$(ctl kmem "$DPID")
	ms=$(ctl new "$SOCK" "$HOST_IF" k "$f" mode kernel) ||
	    die "bench: $CTL_N sessions could not be made"
	ctl running "$SOCK" "$CTL_N" 30 0 >/dev/null ||
	    die "bench: not all $CTL_N sessions run on the kernel path"
	r1=$(rss_kb "$DPID") m1=$(ctl kmem "$DPID")
	fact create-control host "$CTL_N" "$ms"
	fact mem kernel "$CTL_N" "$r0" "$r1" "$m0" "$m1"
}

# control_timings CLIENT...: whole client processes; the news are family
# members and lines of filters.txt in turn. Beside them, the same news and
# stops as requests on an open connection (the daemon's share), and as
# many `/bin/true` processes (what any process costs the machine now).
control_timings() {
	local i
	grep -v -e '^#' -e '^$' "$FILTERS" | head -n "$((NEWS / 2))" >"$TDIR/other"
	for ((i = 0; i < NEWS; i++)); do
		if ((i % 2)); then
			printf 'other\t%s\n' "$(sed -n "$((i / 2 + 1))p" "$TDIR/other")"
		else
			printf 'member\thost 10.21.0.%d\n' "$((i / 2 + 1))"
		fi
	done >"$TDIR/news"
	ctl news new x "$TDIR/news" "$HOST_IF" kernel "$@" | tee -a "$TIMINGS"
	ctl stops stop x "$NEWS" "$@" | tee -a "$TIMINGS"
	ctl rtts rtt r "$TDIR/news" "$HOST_IF" kernel "$SOCK" | tee -a "$TIMINGS"
	"$RB" exec true "$NEWS" /bin/true | tee -a "$TIMINGS"
	"$RB" exec list "$REPS" "$@" list | tee -a "$TIMINGS"
	"$RB" exec metrics "$REPS" "$@" metrics | tee -a "$TIMINGS"
}

# control_restart: SIGTERM to exit, then a new daemon until it runs them all
control_restart() {
	local t0 ms
	many_stop
	fact shutdown kernel "$CTL_N" "$STOP_MS"
	t0=${EPOCHREALTIME/[.,]/}
	many_daemon
	ms=$(ctl running "$SOCK" "$CTL_N" 30 "$t0") ||
	    die "bench: the restarted daemon did not restore $CTL_N sessions"
	fact restore kernel "$CTL_N" "$ms"
}

# pcap_memory: the daemon's growth for PCAP_MEM_N sessions on the libpcap
# path, which also hold a ring of -B KiB each in the kernel
pcap_memory() {
	local f=$TDIR/filters.pcap r0 r1
	echo "== memory, $PCAP_MEM_N sessions on the libpcap path"
	"$GEN" -f host -n "$PCAP_MEM_N" filters >"$f" || die "bench: gen filters"
	many_daemon
	r0=$(rss_kb "$DPID")
	ctl new "$SOCK" "$HOST_IF" k "$f" mode pcap >/dev/null ||
	    die "bench: $PCAP_MEM_N libpcap sessions could not be made"
	r1=$(rss_kb "$DPID")
	fact mem pcap "$PCAP_MEM_N" "$r0" "$r1" 0 0
	fact ring pcap "$PCAP_MEM_N" "$BUF_KB"
	many_stop
	fact shutdown pcap "$PCAP_MEM_N" "$STOP_MS"
	rm -f "$STATE"
}

# ---------------------------------------------------------------- main

start=$(now_ms)
veth_up bnmy || die "bench: no veth pair"
: >"$RAW"
: >"$FACTS"
: >"$TIMINGS"
echo "== many filters"
machine | tee "$TDIR/machine"
quiet | tee "$TDIR/quiet"
printf 'families %s; N %s; rates %s and the most the generator can do, %s s each; ring %d KiB\n' \
    "${FAMILIES[*]}" "${NS[*]}" "${RATES[*]}" "$DUR" "$BUF_KB"

pcap_memory
control

if [ "${BENCH_MANY_TRAFFIC:-1}" != 0 ]; then
	echo "== traffic"
	many_daemon "$COUNT_CPU"
	CONTENDERS=()
	for c in kernel offline tcpdump; do
		"c_$c" available 0 && CONTENDERS+=("$c")
	done
	"$PY" "$REPORT" header
	for FAM in "${FAMILIES[@]}"; do
		for n in "${NS[@]}"; do
			family "$n"
		done
	done
fi
mkdir -p "$BB"
"$PY" "$REPORT" final "$RAW" "$FACTS" "$TIMINGS" "$TDIR/machine" "$TDIR/quiet" \
    "$BB" "$(($(now_ms) - start))"
