#!/usr/bin/env bash
# tests/sys/harness_selftest.sh: proves tests/lib.sh without capstats. Two
# corpus files replayed on veth_up are captured by tcpdump and must equal the
# file and expected.tsv; a stand-in daemon exercises daemon_start/stop; test
# instances run in sub-shells must leave no netns, link, temp dir, segment or pidfile.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=self
. "$TOP/tests/lib.sh"

require_root
need ip ethtool sysctl tcpdump tcpreplay "$PY" timeout awk
CORPUS=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
[ -r "$CORPUS/expected.tsv" ] || die "corpus: no $CORPUS/expected.tsv (set CAPSTATS_CORPUS)"

# Files and filters that are not in disagreements.tsv (no VLAN effects).
FILES=(tcpreplay-test.pcap ndpi-iphone.pcap)
FILTERS=('tcp[tcpflags] & tcp-syn != 0' 'not ip and not ip6' 'less 100')

# expected FILE FILTER: "packets bytes" from expected.tsv (exactly one row)
expected() {
	awk -F'\t' -v f="$1" -v x="$2" '$1 == f && $2 == x { print $3, $4; n++ }
	    END { exit n != 1 }' "$CORPUS/expected.tsv"
}
disagrees() {
	awk -F'\t' -v f="$1" -v x="$2" '$1 == f && $2 == x { n++ } END { exit n == 0 }' \
	    "$CORPUS/disagreements.tsv" 2>/dev/null
}

# same_records A B: the two pcap files hold the same records (data and wire length)
same_records() {
	"$PY" - "$1" "$2" <<'EOF'
import struct, sys
def records(path):
    with open(path, "rb") as f:
        e = "<" if f.read(24)[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            incl, orig = struct.unpack(e + "IIII", h)[2:]
            yield orig, f.read(incl)
a, b = list(records(sys.argv[1])), list(records(sys.argv[2]))
if len(a) != len(b):
    sys.exit("%d records, %d expected" % (len(b), len(a)))
for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
        sys.exit("record %d differs" % (i + 1))
EOF
}

# ---- veth_up: names and configuration
veth_up self || exit 1
check "veth_up: interface names fit IFNAMSIZ" [ "${#HOST_IF}" -le 15 -a "${#PEER_IF}" -le 15 ]
check "veth_up: the namespace exists" ip netns exec "$NETNS" true
check_match "veth_up: host end up, ARP off" '<[^>]*NOARP[^>]*UP' "$(ip -o link show dev "$HOST_IF")"
check_match "veth_up: peer up, ARP off" '<[^>]*NOARP[^>]*UP' "$(ip -n "$NETNS" -o link show dev "$PEER_IF")"
check_eq "veth_up: IPv6 off on the host end" 1 "$(cat "/proc/sys/net/ipv6/conf/$HOST_IF/disable_ipv6")"
check_eq "veth_up: IPv6 off on the peer" 1 \
    "$(ip netns exec "$NETNS" cat "/proc/sys/net/ipv6/conf/$PEER_IF/disable_ipv6")"
check_match "veth_up: GRO off on the host end" 'generic-receive-offload: off' "$(ethtool -k "$HOST_IF")"
check_match "veth_up: GRO off on the peer" 'generic-receive-offload: off' \
    "$(ip netns exec "$NETNS" ethtool -k "$PEER_IF")"
check_eq "veth_up: no addresses on either end" "" \
    "$(ip -o addr show dev "$HOST_IF"; ip -n "$NETNS" -o addr show dev "$PEER_IF")"

# ---- replay two files under tcpdump; compare with the file and expected.tsv
for f in "${FILES[@]}"; do
	for x in '' "${FILTERS[@]}"; do
		disagrees "$f" "$x" && die "selftest: $f '$x' is in disagreements.tsv; pick another"
	done
	cap=$TDIR/${f%.pcap}.cap
	# Immediate mode and -U: every packet reaches the file at once, not when
	# a ring block times out (SIGTERM would lose a block still in the ring).
	# In immediate mode libpcap uses a ring of snaplen-sized slots: a small
	# snaplen (frames are at most 1514 bytes) and -B make it thousands deep.
	: >"$TDIR/tcpdump.err"	# not the previous file's "listening on"
	tcpdump -i "$HOST_IF" -Z root --immediate-mode -U -s 2048 -B 16384 -w "$cap" \
	    >"$TDIR/tcpdump.err" 2>&1 &
	tdpid=$!
	bg_track "$tdpid"
	n=100
	until grep -q 'listening on' "$TDIR/tcpdump.err"; do
		n=$((n - 1))
		if [ "$n" -le 0 ] || ! pid_running "$tdpid"; then
			indent <"$TDIR/tcpdump.err"
			die "tcpdump on $HOST_IF did not start"
		fi
		sleep 0.05
	done
	rx0=$(if_stat "$HOST_IF" rx_packets)
	tx0=$(if_stat "$HOST_IF" tx_packets)
	t0=$(now_ms)
	replay "$CORPUS/$f" || { bg_stop "$tdpid"; continue; }
	t1=$(now_ms)
	read -r pk by < <(expected "$f" '')
	n=100
	until [ "$(pcap_count "$cap" 2>/dev/null)" = "$pk $by" ] || [ "$n" -le 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	bg_stop "$tdpid"
	check_eq "replay $f: the host end received the file's packets" "$pk" \
	    "$(($(if_stat "$HOST_IF" rx_packets) - rx0))"
	check_eq "replay $f: the host end sent nothing" 0 "$(($(if_stat "$HOST_IF" tx_packets) - tx0))"
	check_match "replay $f: tcpdump dropped nothing" '(^|[^0-9])0 packets dropped by kernel' \
	    "$(cat "$TDIR/tcpdump.err")"
	check "replay $f: capture is record-identical to the file" same_records "$CORPUS/$f" "$cap"
	check_eq "replay $f: all packets (expected.tsv)" "$pk $by" "$(pcap_count "$cap")"
	for x in "${FILTERS[@]}"; do
		check_eq "replay $f: '$x' (expected.tsv)" "$(expected "$f" "$x")" \
		    "$(tcpdump -r "$cap" -w - "$x" 2>/dev/null | pcap_count -)"
	done
	printf '  replayed %s (%s packets at %s pps) in %s ms\n' "$f" "$pk" "$REPLAY_PPS" "$((t1 - t0))"
done

# ---- a stand-in for the daemon and client: enough for daemon_start/stop and cs
FAKE=$TDIR/fake-capstats
{
echo "#!$PY"
cat <<'EOF'
# Stand-in for capstats: -d serves "ok" on -s and creates the segment and
# pidfile; FAKE_MODE=die fails at start, messy leaves its files, stubborn
# ignores SIGTERM. Client mode sends one request and prints the reply.
import os, signal, socket, sys
args, words, opt = sys.argv[1:], [], {}
it = iter(args)
for a in it:
    if a in ("-s", "-m", "-S", "-B", "-i", "-g", "-n"):
        opt[a] = next(it)
    elif a.startswith("-"):
        opt[a] = True
    else:
        words.append(a)
sock = opt.get("-s") or os.environ["CAPSTATS_SOCKET"]
shm = opt.get("-m") or os.environ["CAPSTATS_SHM"]
mode = os.environ.get("FAKE_MODE", "ok")
if "-d" not in opt and words[:1] == ["poll"]:
    try:
        n = int(open(os.path.dirname(sock) + "/fake.count").read())
    except OSError:
        n = 0
    print('{"session": "%s", "packets": %d}' % (words[1], n))
    sys.exit(0)
if "-d" not in opt:
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall((" ".join(words) + "\n").encode())
    r = c.recv(4096).decode()
    print(r, end="")
    sys.exit(0 if r == "ok\n" else 1)
if mode == "die":
    sys.exit("fake: cannot start (FAKE_MODE=die)")
files = [sock, "/dev/shm/" + shm, "/var/run/%s.pid" % shm]
def term(*_):
    if mode != "messy":
        for f in files:
            os.unlink(f)
    print("fake: exiting", file=sys.stderr, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else term)
s = socket.socket(socket.AF_UNIX)
s.bind(sock)
open(files[1], "w").close()
with open(files[2], "w") as f:
    f.write("%d\n" % os.getpid())
s.listen(16)
print("fake: listening on", sock, file=sys.stderr, flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"ok\n")
    c.close()
EOF
} >"$FAKE"
chmod +x "$FAKE"

# instance TAG MODE SCRIPT: run SCRIPT as a separate test process sourcing
# lib.sh with the stand-in; its output goes to $TDIR/TAG.out
instance() {
	local tag=$1 mode=$2
	T_TAG=$tag FAKE_MODE=$mode CAPSTATS=$FAKE T_STOP_TIMEOUT=1 timeout 60 bash -c \
	    '. "$TOP/tests/lib.sh"; echo "NAMES $TDIR $SHM"; '"$3" >"$TDIR/$tag.out" 2>&1
}

# names TAG: what instance TAG said it created
names() { sed -n 's/^NAMES //p' "$TDIR/$1.out"; }

# left_behind TAG: print what instance TAG left behind (nothing is good)
left_behind() {
	local tdir shm pid x
	read -r tdir shm x < <(names "$1")
	[ -n "$tdir" ] || { echo "no NAMES line"; return; }
	pid=${shm#capstats-t}
	pid=${pid%%-*}
	ip netns list | grep -E "^cst-${1:0:4}-$pid( |\$)"
	for x in "cs${1:0:4}${pid}h" "cs${1:0:4}${pid}p"; do
		[ ! -e "/sys/class/net/$x" ] || echo "$x"
	done
	[ ! -e "$tdir" ] || echo "$tdir"
	[ ! -e "/dev/shm/$shm" ] || echo "/dev/shm/$shm"
	[ ! -e "/var/run/$shm.pid" ] || echo "/var/run/$shm.pid"
	pgrep -f -- "-m $shm" | sed 's/^/pid /'
}

# show TAG: its output, indented so its result lines are not counted here
show() { indent <"$TDIR/$1.out"; }

export CORPUS
t0=$(now_ms)
instance okay ok '
	veth_up okay || exit 1
	daemon_start || exit 1
	check "cs list" cs list
	check_fails "cs reaches the daemon" 0 cs list
	check "plain \$CAPSTATS uses the private socket" "$CAPSTATS" list
	check "segment exists" test -e "/dev/shm/$SHM"
	replay "$CORPUS/zeek-ntp-NTP_sync.pcap" 20000 && pass "replay"
	(sleep 0.3; echo 7 >"$TDIR/fake.count") &
	wait_count x 7 3 && [ "$WAIT_POLLS" -gt 1 ] && pass "wait_count waits"
	wait_count x 8 1 || pass "wait_count gives up"
	daemon_stop && pass "daemon_stop"
	exit 0'
rc=$?
t1=$(now_ms)
if [ "$rc" -eq 0 ] && [ "$(grep -c '^PASS:' "$TDIR/okay.out")" -eq 8 ] && ! grep -q '^FAIL:' "$TDIR/okay.out"; then
	pass "instance: veth, daemon_start, cs, replay, wait_count, daemon_stop"
	echo "  instance ran and cleaned up in $((t1 - t0)) ms"
else
	fail "instance: veth, daemon_start, cs, replay, wait_count, daemon_stop (exit $rc)"
	show okay
fi
check_eq "instance: nothing left after a normal exit" "" "$(left_behind okay)"

instance died die '
	daemon_start && echo "started?"
	exit 0'
rc=$?
if [ "$rc" -ne 0 ] && grep -q '^FAIL: daemon_start: daemon exited 1' "$TDIR/died.out" &&
    grep -q 'FAKE_MODE=die' "$TDIR/died.out"; then
	pass "instance: daemon_start fails loudly with the log"
else
	fail "instance: daemon_start fails loudly with the log (exit $rc)"
	show died
fi
check_eq "instance: nothing left after a failed start" "" "$(left_behind died)"

instance mess messy '
	daemon_start || exit 1
	daemon_stop
	exit 0'
rc=$?
if [ "$rc" -ne 0 ] && grep -q "^FAIL: daemon_stop: daemon left /dev/shm/" "$TDIR/mess.out" &&
    grep -q '^FAIL: daemon_stop: daemon left /var/run/' "$TDIR/mess.out"; then
	pass "instance: daemon_stop reports a segment and pidfile left behind"
else
	fail "instance: daemon_stop reports a segment and pidfile left behind (exit $rc)"
	show mess
fi
check_eq "instance: cleanup removes what its daemon left" "" "$(left_behind mess)"

instance stub stubborn '
	daemon_start || exit 1
	exit 0'
rc=$?
if [ "$rc" -ne 0 ] && grep -q '^FAIL: daemon_stop: still running 1 s after SIGTERM; killed' "$TDIR/stub.out"; then
	pass "instance: cleanup kills a daemon that ignores SIGTERM"
else
	fail "instance: cleanup kills a daemon that ignores SIGTERM (exit $rc)"
	show stub
fi
check_eq "instance: nothing left after SIGKILL" "" "$(left_behind stub)"

# Interrupted: SIGTERM while it waits must still clean up everything.
T_TAG=kill FAKE_MODE=ok CAPSTATS=$FAKE timeout 60 bash -c '. "$TOP/tests/lib.sh"; veth_up kill || exit 1; daemon_start || exit 1
	sleep 60 & bg_track $!; echo "NAMES $TDIR $SHM $!"; wait' >"$TDIR/kill.out" 2>&1 &
kpid=$!
bg_track "$kpid"
n=200
until grep -q '^NAMES' "$TDIR/kill.out" || [ "$n" -le 0 ] || ! pid_running "$kpid"; do
	sleep 0.05
	n=$((n - 1))
done
read -r _ _ sleeper < <(names kill)
check_match "instance: interrupted instance set up" '^[0-9]+$' "${sleeper:-}"
ip netns list | grep -q "cst-kill-" || fail "instance: interrupted instance has no netns"
kill -TERM "$kpid"
if wait_exit "$kpid" 15; then
	pass "instance: SIGTERM ends a waiting instance"
else
	fail "instance: SIGTERM ends a waiting instance"
fi
bg_stop "$kpid"
check_eq "instance: nothing left after SIGTERM" "" "$(left_behind kill)"
check_eq "instance: its background process was ended" "" "$(ps -o pid= -p "${sleeper:-0}")"
grep -q '^FAIL:' "$TDIR/kill.out" && { fail "instance: interrupted instance failed"; show kill; }

exit 0
