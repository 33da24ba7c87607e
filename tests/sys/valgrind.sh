# tests/sys/valgrind.sh: the daemon once under valgrind's memcheck, through
# every command on both counting paths and a SIGTERM: no error, no definite
# leak. Once per run: the sanitizer build has its own checks.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need valgrind python3

case $B in
*asan*)
	skip "valgrind: the sanitizer build is checked by its sanitizers; memcheck runs on the plain build"
	exit 0
	;;
esac
cat >"$TDIR/vg" <<EOF
#!/bin/sh
case " \$* " in
*" -d "*) exec valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --log-file=$TDIR/valgrind.log $CAPSTATS "\$@" ;;
esac
exec $CAPSTATS "\$@"
EOF
chmod 0755 "$TDIR/vg"
REAL=$CAPSTATS
CAPSTATS=$TDIR/vg
T_START_TIMEOUT=30
T_STOP_TIMEOUT=30
daemon_start -i lo || exit 1
CAPSTATS=$REAL
check "the daemon runs under valgrind" grep -q valgrind "/proc/$T_DPID/cmdline"
check "new, kernel path" cs new k interface lo mode kernel filter udp
check "new, libpcap path" cs new p interface lo mode pcap filter udp
check_fails "a bad filter" 1 cs new bad interface lo filter "port port"
check_fails "a missing interface" 1 cs new bad interface nosuch0 filter
"$PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20): s.sendto(b'x', ('127.0.0.1', 9))
"
check "the kernel path counts" wait_count k 20 10
check "the libpcap path counts" wait_count p 20 10
check "modify, kernel path" cs modify k udp port 9
check "modify, libpcap path" cs modify p udp port 9
check "list" cs list
check "show" cs show k
check "stop" cs stop k
printf 'list\nshow p\nfrobnicate\n' | check "a raw connection" "$PY" -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass
" "$SOCK"
CAPSTATS=$TDIR/vg
daemon_stop
check_eq "valgrind: the daemon exits 0 (99: memcheck found errors)" 0 "$DAEMON_RC"
# Valgrind may not know epoll_pwait2 (441) and says so in five lines; the
# daemon then waits in whole milliseconds. Anything else is a finding.
check_eq "valgrind: no error, no definite leak" "" \
    "$(sed '/unhandled amd64-linux syscall: 441$/,+4d' "$TDIR/valgrind.log")"
