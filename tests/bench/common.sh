# tests/bench/common.sh: sourced by run.sh and many.sh after tests/lib.sh:
# the CPU time of processes and of the whole machine, the machine's line in
# the results, and a warning when it was busy before the bench began.

# cpu_ns PID...: CPU time of the processes in ns. This is utime + stime of
# /proc/PID/stat (the kernel scales those two to add up to it), read from
# /proc/PID/schedstat, which counts in ns instead of 10 ms ticks: a session
# that uses 30 ms of CPU in a run would otherwise be measured to +-30%.
cpu_ns() {
	local pid ns sum=0
	for pid in "$@"; do
		read -r ns _ <"/proc/$pid/schedstat" || return 1
		sum=$((sum + ns))
	done
	echo "$sum"
}

# sys_ticks: "BUSY SOFTIRQ TOTAL" ticks of all CPUs so far, from /proc/stat
sys_ticks() {
	local cpu user nice system idle iowait irq softirq steal rest
	read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
	echo "$((user + nice + system + irq + softirq + steal)) $softirq" \
	    "$((user + nice + system + idle + iowait + irq + softirq + steal))"
}

machine() {
	printf 'machine\t%s CPUs, %s, Linux %s\n' "$(nproc)" \
	    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
	    "$(uname -r)"
}

# quiet: warn when something else already keeps the machine busy
quiet() {
	local a b busy
	read -r -a a <<<"$(sys_ticks)"
	sleep 1
	read -r -a b <<<"$(sys_ticks)"
	busy=$((100 * (b[0] - a[0]) / (b[2] - a[2] + 1)))
	[ "$busy" -lt 20 ] && return 0
	printf 'note: the machine was %d%% busy before the bench started; other work disturbs every number below\n' "$busy"
}
