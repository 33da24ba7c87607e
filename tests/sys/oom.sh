# tests/sys/oom.sh: the host is out of memory for a new capture buffer,
# which a session on the libpcap path needs (the kernel path has none).
# The kernel's refusal is injected at the system call (tests/shim/enomem.c):
# `new` must fail with a clear error, and nothing else may be disturbed.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats

shim=$TOP/$B/enomem.so
[ -f "$shim" ] || die "oom: $shim is not built"
trigger=$TDIR/enomem
export CAPSTATS_TEST_ENOMEM=$trigger
export ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0
LD_PRELOAD=$shim daemon_start -i lo || exit 1

check "a session before" cs new before interface lo filter udp
touch "$trigger"
check_fails "new without memory for its buffer is refused" 1 \
    cs new big interface lo mode pcap filter tcp
check_match "... saying so, with the kernel's reason" \
    "lo: .*(annot allocate memory|rx ring)" "$ERR"
echo "  | $ERR"
check_fails "nothing is half-created" 1 cs show big
check "the state file does not name it" sh -c "! grep -q big '$STATE'"
check_eq "the segment does not hold it" 0 \
    "$(cs metrics | grep -c 'session="big"')"
check_eq "the segment holds the other" 1 \
    "$(cs metrics | grep -c '^capstats_packets_total{session="before"')"
check "the other session is untouched" cs poll before
rm -f "$trigger"
check "with memory again, new works" cs new big interface lo mode pcap filter tcp
