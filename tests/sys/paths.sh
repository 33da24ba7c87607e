# tests/sys/paths.sh: what the daemon creates where, as capstats(8) FILES
# says, and what it refuses to touch: at the socket path it replaces only a
# socket no one listens on, never a file, a directory or a link; beside it,
# it takes only an empty file for its lock; and a segment name that would
# put the pidfile or the state file outside their directories is refused.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need python3

T_DAEMON=1	# a daemon that wrongly starts below may leave its segment and pidfile
T_CMD_TIMEOUT=5	# ... and one that wrongly stays up is stopped by timeout

# refused WHAT REGEX [-s PATH] [-m NAME]: the daemon refuses to start,
# saying why; it uses this test's socket and segment unless told otherwise
refused() {
	local what=$1 re=$2 sock=$SOCK shm=$SHM
	shift 2
	while [ $# -gt 0 ]; do
		case $1 in
		-s) sock=$2 ;;
		-m) shm=$2 ;;
		esac
		shift 2
	done
	check_fails "$what: refused" 1 "$CAPSTATS" -d -f -s "$sock" -m "$shm" \
	    -S "$TDIR/state.refused" -i lo
	check_match "... saying why" "$re" "$ERR"
}

# The files of a running daemon.
daemon_start -i lo || exit 1
check "the new session" cs new a interface lo filter udp
check "the socket is where -s says" test -S "$SOCK"
check "the lock file is beside it" test -f "$SOCK.lock"
check_eq "the pidfile is named for -m, in /var/run" "$T_DPID" "$(cat "/var/run/$SHM.pid" 2>&1)"
check "the segment is in /dev/shm" test -f "/dev/shm/$SHM"
check "the state file is where -S says" test -f "$STATE"
daemon_stop
check "after a stop, the lock file is gone" test ! -e "$SOCK.lock"
check "... and the state file stays" test -f "$STATE"

# A leading '/' is shm_open(3)'s spelling: the same segment and pidfile.
SHM0=$SHM
SHM=/$SHM0
rm -f "$STATE"
daemon_start -i lo || exit 1
check_eq "-m /NAME: the pidfile is /var/run/NAME.pid" "$T_DPID" "$(cat "/var/run/$SHM0.pid" 2>&1)"
daemon_stop
SHM=$SHM0

# The socket path: only a stale socket is replaced.
printf 'precious\n' >"$TDIR/file"
refused "-s on a regular file" "file exists and is not a socket" -s "$TDIR/file"
check_eq "... which is left as it was" precious "$(cat "$TDIR/file")"
ln -s "$TDIR/file" "$TDIR/link"
refused "-s on a link to a file" "link exists and is not a socket" -s "$TDIR/link"
check "... which is left as it was" test -L "$TDIR/link"
check_eq "... and so is the file" precious "$(cat "$TDIR/file")"
ln -s "$TDIR/nothing" "$TDIR/dangling"
refused "-s on a dangling link" "dangling exists and is not a socket" -s "$TDIR/dangling"
check "... which is left as it was" test -L "$TDIR/dangling"
check "... and not followed" test ! -e "$TDIR/nothing"
mkdir "$TDIR/dir"
refused "-s on a directory" "dir exists and is not a socket" -s "$TDIR/dir"
check "... which is left as it was" test -d "$TDIR/dir"

"$PY" - "$TDIR/live" <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
open(sys.argv[1] + ".up", "w").close()
time.sleep(30)
PY
live=$!
bg_track "$live"
n=100
while [ ! -e "$TDIR/live.up" ] && [ "$n" -gt 0 ]; do
	nap 0.05
	n=$((n - 1))
done
refused "-s on another program's listening socket" "live is a socket in use by another program" \
    -s "$TDIR/live"
check "... which is left as it was" test -S "$TDIR/live"
bg_stop "$live"
rm -f "$TDIR/live.lock"

"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
check "a stale socket is there" test -S "$SOCK"
daemon_start -i lo && pass "a stale socket is replaced"
daemon_stop

printf 'someone else\n' >"$SOCK.lock"
refused "a lock file that is not empty" "sock.lock exists and is not an empty file" -s "$SOCK"
check_eq "... which is left as it was" "someone else" "$(cat "$SOCK.lock")"
check "... and no socket is made" test ! -e "$SOCK"
rm -f "$SOCK.lock"
ln -s "$TDIR/file" "$SOCK.lock"
refused "a lock file that is a link" "sock.lock" -s "$SOCK"
check_eq "... whose target is left as it was" precious "$(cat "$TDIR/file")"
rm -f "$SOCK.lock"

# The segment's name is one path component: it also names the pidfile,
# /var/run/NAME.pid, and the state file, /var/lib/capstats/NAME.state.
printf 'precious\n' >"$TDIR/victim.pid"
refused "-m ../../TDIR/victim" "not a segment name" -m "../..$TDIR/victim"
check_eq "... and the file its pidfile would have been is left as it was" precious \
    "$(cat "$TDIR/victim.pid" 2>&1)"
for m in .. . /.. a/b /a/b /; do
	refused "-m '$m'" "-m $m: not a segment name" -m "$m"
done
