# tests/sys/systemd.sh: contrib/systemd/capstats.service. systemd-analyze
# must accept the unit without a word. No systemd runs services here, so
# what the unit allows is checked against what the daemon does: under the
# unit's capability bounding set (and no-new-privs) it starts with -g,
# captures and counts exactly; every capability in the set is shown to be
# needed; every system call, socket family and written path of a traced run
# is one the unit allows.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need systemd-analyze setpriv strace ip ethtool tcpreplay "$PY"

UNIT=$TOP/contrib/systemd/capstats.service
[ -r "$UNIT" ] || die "systemd: no $UNIT"
corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
ntp=$corpus/zeek-ntp-NTP_sync.pcap	# 32 packets, 3315 bytes
GROUP=daemon				# in every Debian base system, gid 1

# unit_values KEY: the words KEY ends up with (an empty KEY= resets, as in systemd)
unit_values() {
	awk -v k="$1" 'index($0, k "=") == 1 {
		v = substr($0, length(k) + 2)
		all = v == "" ? "" : (all == "" ? v : all " " v)
	} END { print all }' "$UNIT"
}

# ---- systemd-analyze

# verify needs ExecStart's binary to exist and, for Documentation=, the
# pages to be found by man: the built ones stand in for the installed ones.
mkdir -p "$TDIR/man/man8" "$TDIR/man/man7" "$TDIR/unit"
cp "$TOP/capstats.8" "$TDIR/man/man8/"
cp "$TOP/shm/capstats-shm.7" "$TDIR/man/man7/"
sed "s|^ExecStart=/usr/local/sbin/capstats |ExecStart=$CAPSTATS |" "$UNIT" \
    >"$TDIR/unit/capstats.service"
check "ExecStart runs the daemon in the foreground" \
    grep -qx "ExecStart=$CAPSTATS -d -f" "$TDIR/unit/capstats.service"

verify() {	# verify FILE: systemd-analyze's words about FILE, in $TDIR/verify.out
	MANPATH=$TDIR/man timeout 30 systemd-analyze verify "$1" >"$TDIR/verify.out" 2>&1
}
verify "$TDIR/unit/capstats.service"
rc=$?
check_eq "systemd-analyze verify accepts the unit" 0 "$rc"
check_eq "systemd-analyze verify has nothing to say about it" "" \
    "$(grep -i capstats "$TDIR/verify.out")"
# The same check sees a mistake: an unknown key is reported.
mkdir -p "$TDIR/bad"
sed 's/^Restart=/Restrat=/' "$TDIR/unit/capstats.service" >"$TDIR/bad/capstats.service"
verify "$TDIR/bad/capstats.service"
check_match "verify reports a misspelt key" "Unknown key( name)? 'Restrat'" "$(cat "$TDIR/verify.out")"

# Exposure is 0 (locked down) to 10; the unit scores about 2.3.
check "systemd-analyze security: exposure at most 3.0" timeout 30 \
    systemd-analyze security --offline=yes --threshold=30 "$TDIR/unit/capstats.service"

# ---- the daemon under the unit's privileges, traced

caps=$(unit_values CapabilityBoundingSet)
check_match "the unit bounds capabilities" '^CAP_' "$caps"
check_eq "the unit grants no ambient capabilities" "" "$(unit_values AmbientCapabilities)"
check_eq "the unit sets NoNewPrivileges" "yes" "$(unit_values NoNewPrivileges)"

# setpriv_caps CAP...: the capabilities as setpriv's --bounding-set wants them
setpriv_caps() {
	local c out=-all
	for c in "$@"; do
		c=${c#CAP_}
		out=$out,+${c,,}
	done
	printf '%s' "$out"
}

# with_caps CAPLIST TRACE: make $TDIR/wrap the daemon's launcher: capstats
# with bounding set CAPLIST and no-new-privs, under strace -f when TRACE is
# 1. Client calls through it run the plain binary.
REAL=$CAPSTATS
with_caps() {
	local tr=
	# LeakSanitizer cannot run under ptrace; the untraced runs keep it.
	# -I2: strace passes a SIGTERM (the cleanup's) on to the daemon.
	[ "$2" = 1 ] && tr="env ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 strace -I2 -f -qq -o $TDIR/strace.out --"
	cat >"$TDIR/wrap" <<-EOF
	#!/bin/sh
	case " \$* " in
	*" -d "*) exec setpriv --bounding-set $1 --inh-caps -all --no-new-privs -- $tr $REAL "\$@" ;;
	esac
	exec $REAL "\$@"
	EOF
	chmod 0755 "$TDIR/wrap"
	CAPSTATS=$TDIR/wrap
}

# stop_traced: SIGTERM the daemon (strace's child), bounded wait; FAILs
# unless it exits 0 and leaves nothing behind
stop_traced() {
	local kid rc f
	kid=
	read -r kid _ </proc/"$T_DPID"/task/"$T_DPID"/children
	if [ -z "$kid" ]; then
		fail "systemd: the traced daemon is gone"
		daemon_stop
		return
	fi
	kill -TERM "$kid"
	if ! wait_exit "$T_DPID" "$T_STOP_TIMEOUT"; then
		fail "systemd: traced daemon still running after SIGTERM"
		daemon_stop
		return
	fi
	wait "$T_DPID"
	rc=$?
	T_DPID=
	check_eq "the daemon under the unit's privileges exits 0 on SIGTERM" 0 "$rc"
	for f in "$SOCK" "/dev/shm/$SHM" "$PIDFILE"; do
		[ ! -e "$f" ] || fail "systemd: daemon left $f behind"
	done
}

veth_up sysd || exit 1
read -ra capv <<<"$caps"
with_caps "$(setpriv_caps "${capv[@]}")" 1
if daemon_start -i "$HOST_IF" -g "$GROUP"; then
	CAPSTATS=$REAL
	# CapEff as a mask against the unit's list, numbered by systemd-analyze
	want=$(systemd-analyze capability "${capv[@]}" |
	    "$PY" -c 'import sys; print("%016x" % sum(1 << int(l.split()[1]) for l in list(sys.stdin)[1:]))')
	read -r dpid _ </proc/"$T_DPID"/task/"$T_DPID"/children
	check_eq "the daemon's capabilities are the unit's bounding set" "$want" \
	    "$(awk '/^CapEff:/ { print $2 }' "/proc/$dpid/status")"
	check_eq "no-new-privs is set" 1 "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$dpid/status")"
	check_eq "socket has the -g group" "root:$GROUP 660" "$(stat -c '%U:%G %a' "$SOCK")"
	check_eq "segment has the -g group" "root:$GROUP 640" "$(stat -c '%U:%G %a' "/dev/shm/$SHM")"
	check "new session" cs new all filter
	check "new session with a filter" cs new ntp filter udp port 123
	check_fails "a bad filter is refused" 1 cs new bad filter "port port"
	replay "$ntp" 2000
	# Every packet is counted or reported dropped (strace slows the daemon).
	check_eq "counts the packets" "32 True" \
	    "$(cs -j poll all | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["packets"] + d["drops"], d["packets"] > 0)')"
	check "modify" cs modify ntp udp
	check "list" cs list
	check "show" cs show ntp
	check "stop" cs stop ntp
	# the interface going down and up: the session stops and resumes counting
	ip link set dev "$HOST_IF" down
	for _ in $(seq 60); do
		[ "$(cs -j poll all | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = error ] && break
		sleep 0.05
	done
	ip link set dev "$HOST_IF" up
	for _ in $(seq 60); do
		st=$(cs -j poll all | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])')
		[ "$st" = running ] && break
		sleep 0.05
	done
	check_eq "counting again after the interface came back" running "$st"
	stop_traced
fi
CAPSTATS=$REAL

# Every system call of that run must pass the unit's SystemCallFilter (an
# allow-list of groups and names, expanded by systemd-analyze), every socket
# its RestrictAddressFamilies, every written path its writable paths. The
# test's own socket and state file stand in for /run/capstats and
# /var/lib/capstats/capstats.state.
out=$("$PY" - "$TDIR/strace.out" "$(unit_values SystemCallFilter)" \
    "$(unit_values RestrictAddressFamilies)" \
    "$(unit_values ReadWritePaths) /var/lib/$(unit_values StateDirectory) $TDIR /dev/null" <<'EOF'
import re, subprocess, sys
trace, sysfilter, families, writable = sys.argv[1:]
bad = []
if not sysfilter or sysfilter.startswith("~"):
    sys.exit("SystemCallFilter must be an allow-list, not %r" % sysfilter)
groups, cur = {}, None
out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                     capture_output=True, text=True).stdout
for line in out.splitlines():
    w = line.strip()
    if line.startswith("@"):
        cur = groups.setdefault(w.split()[0], [])
    elif w and not w.startswith("#") and cur is not None:
        cur.append(w)
def expand(name, seen):
    if not name.startswith("@"):
        return {name}
    if name not in groups:
        sys.exit("unknown syscall group %s" % name)
    r = set()
    for m in groups[name]:
        if m not in seen:
            seen.add(m)
            r |= expand(m, seen)
    return r
allowed = set()
for w in sysfilter.split():
    allowed |= expand(w, set())
roots = [p.rstrip("/") for p in writable.split()]
def is_writable(path):
    path = re.sub(r"^/var/run(/|$)", r"/run\1", path)
    return any(path == r or path.startswith(r + "/") for r in
               [re.sub(r"^/var/run(/|$)", r"/run\1", r) for r in roots])
calls = set()
for line in open(trace, errors="replace"):
    m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(\(| resumed>)", line)
    if not m:
        continue
    calls.add(m.group(1))
    call = m.group(1)
    s = re.search(r"socket\((AF_[A-Z0-9]+)", line)
    if s and s.group(1) not in families.split():
        bad.append("socket family %s not in RestrictAddressFamilies" % s.group(1))
    p = re.search(r'"([^"]*)"', line)
    writes = (call in ("rename", "unlink", "unlinkat", "mkdir", "mkdirat", "chown",
                       "fchownat", "bind", "renameat", "renameat2")
              or (call in ("openat", "open") and re.search(r"O_(WRONLY|RDWR|CREAT)", line)))
    if writes and p and p.group(1).startswith("/") and not is_writable(p.group(1)):
        bad.append("%s writes %s, outside the unit's writable paths" % (call, p.group(1)))
for c in sorted(calls - allowed):
    bad.append("system call %s is not in SystemCallFilter" % c)
if len(calls) < 20:
    bad.append("only %d system calls traced: the trace is broken" % len(calls))
print("\n".join(sorted(set(bad))))
EOF
)
rc=$?
check_eq "the trace was read" 0 "$rc"
check_eq "the traced run stays inside the unit's filters" "" "$out"

# Every capability in the set is needed: without it something fails.
for cap in "${capv[@]}"; do
	rest=()
	for c in "${capv[@]}"; do
		[ "$c" = "$cap" ] || rest+=("$c")
	done
	with_caps "$(setpriv_caps "${rest[@]}")" 0
	case $cap in
	CAP_NET_RAW)
		if daemon_start -i "$HOST_IF"; then
			CAPSTATS=$REAL
			check_fails "without CAP_NET_RAW no session captures" 1 cs new x filter
			check_match "without CAP_NET_RAW: the reason is given" "Operation not permitted" "$ERR"
			daemon_stop
		fi
		;;
	CAP_CHOWN)
		check_fails "without CAP_CHOWN the daemon refuses -g" 1 timeout 10 "$CAPSTATS" \
		    -d -f -s "$SOCK" -m "$SHM" -S "$STATE" -g "$GROUP"
		check_match "without CAP_CHOWN: the reason is given" "Operation not permitted" "$ERR"
		check "without CAP_CHOWN: nothing left behind" \
		    test ! -e "$SOCK" -a ! -e "/dev/shm/$SHM" -a ! -e "$PIDFILE"
		;;
	CAP_BPF | CAP_PERFMON)
		rm -f "$STATE"
		if daemon_start -i "$HOST_IF"; then
			CAPSTATS=$REAL
			check "without $cap sessions still count" cs new x filter
			check_eq "without $cap they count with libpcap" pcap \
			    "$(cs -j show x | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mode"])')"
			check_fails "without $cap the kernel path is refused" 1 \
			    cs new y mode kernel filter
			check_match "without $cap: the reason is given" "kernel path unavailable" "$ERR"
			daemon_stop
		fi
		;;
	*)
		fail "systemd: $cap is in the unit, but no test shows the daemon needs it"
		;;
	esac
	CAPSTATS=$REAL
done
