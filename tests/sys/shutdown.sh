# tests/sys/shutdown.sh: a daemon that ends with many kernel-path sessions
# on one interface tears the interface's program down once, instead of
# rebuilding and loading it again for every session it closes.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need strace

N=32
# LeakSanitizer cannot run in a process that strace holds.
export ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0
daemon_start -i lo || exit 1
for i in $(seq 1 $N); do
	cs new "k$i" interface lo mode kernel filter udp port $((5000 + i)) >/dev/null ||
	    fail "new k$i"
done
check_eq "$N sessions count in the kernel" "$N" \
    "$(cs -j list | "$PY" -c 'import json,sys; print(sum(s["mode"] == "kernel" for s in json.load(sys.stdin)))')"
strace -f -qq -e trace=bpf -o "$TDIR/strace.out" -p "$T_DPID" 2>"$TDIR/strace.err" &
st=$!
bg_track "$st"
# strace has attached once it reports the next system call.
for _ in $(seq 100); do
	cs list >/dev/null
	grep -q . "$TDIR/strace.out" 2>/dev/null && break
	nap 0.05
done
: >"$TDIR/strace.out"
daemon_stop
wait "$st" 2>/dev/null
loads=$(grep -c 'BPF_PROG_LOAD' "$TDIR/strace.out")
check_eq "shutting down loads no program" 0 "$loads"
