#!/usr/bin/env bash
# tests/sys/linktypes.sh: exact counts on the link types other than a plain
# Ethernet device, with tcpdump on the same interface as the oracle. The
# daemon runs in a private namespace, where `any` (Linux cooked v2) sees a
# veth end the corpus is replayed into, a tun device (raw IP) the corpus's IP
# packets are written into, and lo (Ethernet) carrying UDP, TCP and ICMP.
# Every filter has a session in the default mode and one with libpcap on
# each interface; a filter libpcap cannot compile there must be refused as
# tcpdump refuses it, the default mode must count in the kernel, and each
# session must count, packets and bytes, what tcpdump counts there: what
# `tcpdump -r` selects from one unfiltered capture of the interface, and on
# `any`, where a live filter does not always read the packet as `tcpdump -r`
# reads its record (the length without the cooked header; a frame that came
# with two VLAN tags), what a live tcpdump with the filter captured.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=linktypes
. "$TOP/tests/lib.sh"

require_root
need ip ethtool sysctl tcpreplay tcpdump timeout "$PY"
require_capstats
CORPUS=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
[ -r "$CORPUS/filters.txt" ] ||
    die "linktypes: corpus not found: no $CORPUS/filters.txt (set CAPSTATS_CORPUS)"
SETTLE_MS=${CAPSTATS_SETTLE_MS:-3000}	# longest wait for counters to catch up
PPS=${CAPSTATS_REPLAY_PPS:-5000}	# the veth replay
TUN_PPS=${CAPSTATS_TUN_PPS:-10000}	# the writes into the tun
DAEMON_BUFFER_KB=${CAPSTATS_LINKTYPES_BUFFER_KB:-4096}

NSD=cst-lt-$$		# the daemon, its captures and the interfaces counted on
NSS=cst-lts-$$		# the sender of the replay
VD=ltveth0 VS=ltveth1 TUN=lttun0	# names inside those namespaces only
TUN_ADDR=198.18.255.1/24	# in no packet of the corpus
TUN_PEER=198.18.255.2		# sent to, out of the tun
TUN_OUT=7			# datagrams sent there

# The interfaces, by a one-letter key: the name, the link type libpcap
# takes there (as tcpdump's -y names it) and its pcap file header number.
KEYS=(a t l)
declare -A IFN=([a]=any [t]=$TUN [l]=lo)
declare -A DLT=([a]=LINUX_SLL2 [t]=RAW [l]=EN10MB)
declare -A LT=([a]=276 [t]=101 [l]=1)

# The filters: the corpus's, then some of this test's; F_ANY ones only on
# `any`, the one link type here that keeps the direction in a capture file.
mapfile -t FLT < <(awk '!seen[$0]++' "$CORPUS/filters.txt")
for x in 'tcp port 80' 'udp port 53' 'host 127.0.0.1' 'ip6 and udp' \
    'ether host 02:00:00:00:00:01' 'ip and greater 1400' inbound outbound \
    'inbound and udp' 'outbound and tcp'; do
	printf '%s\n' "${FLT[@]}" | grep -qxF -- "$x" || FLT+=("$x")
done
F_ANY='^(inbound|outbound)'

# lt_step "what" cmd...: run a set-up step; FAIL with its output if it fails
lt_step() { setup_step "linktypes: $1" "${@:2}"; }

# ns_stat IFACE COUNTER: an interface counter in the daemon's namespace
ns_stat() { ip netns exec "$NSD" cat "/sys/class/net/$1/statistics/$2"; }

# lt_setup: both namespaces; the veth pair between them, quiet as the corpus
# README asks (IPv6 and ARP off before link-up, GRO off, no addresses); the
# tun with IPv6 off (no router solicitations) and one address; lo up.
lt_setup() {
	lt_step "ip netns add $NSD" ip netns add "$NSD" || return 1
	T_NETNS+=("$NSD")
	lt_step "ip netns add $NSS" ip netns add "$NSS" || return 1
	T_NETNS+=("$NSS")
	lt_step "veth $VD/$VS" ip -n "$NSD" link add "$VD" type veth peer name "$VS" \
	    netns "$NSS" || return 1
	lt_step "disable_ipv6 $VD" ip netns exec "$NSD" sysctl -qw "net.ipv6.conf.$VD.disable_ipv6=1" || return 1
	lt_step "disable_ipv6 $VS" ip netns exec "$NSS" sysctl -qw "net.ipv6.conf.$VS.disable_ipv6=1" || return 1
	lt_step "arp off $VD" ip -n "$NSD" link set dev "$VD" arp off || return 1
	lt_step "arp off $VS" ip -n "$NSS" link set dev "$VS" arp off || return 1
	lt_step "gro off $VD" ip netns exec "$NSD" ethtool -K "$VD" gro off || return 1
	lt_step "gro off $VS" ip netns exec "$NSS" ethtool -K "$VS" gro off || return 1
	lt_step "up $VS" ip -n "$NSS" link set dev "$VS" up || return 1
	lt_step "up $VD" ip -n "$NSD" link set dev "$VD" up || return 1
	lt_step "tuntap add $TUN" ip -n "$NSD" tuntap add dev "$TUN" mode tun || return 1
	lt_step "disable_ipv6 $TUN" ip netns exec "$NSD" sysctl -qw "net.ipv6.conf.$TUN.disable_ipv6=1" || return 1
	lt_step "address on $TUN" ip -n "$NSD" addr add "$TUN_ADDR" dev "$TUN" || return 1
	lt_step "up $TUN" ip -n "$NSD" link set dev "$TUN" up || return 1
	lt_step "up lo" ip -n "$NSD" link set dev lo up || return 1
}

# tun_writer: a background program in $NSD that attaches to the tun, reads
# the IP packets of the corpus's frames (VLAN tags stripped; other frames and
# payloads that are not IPv4 or IPv6 skipped), says "ready", and once
# $TDIR/tun.go exists writes them at $TUN_PPS, then says "done SENT FAILED"
# and stays attached until stopped. Its state is in $TDIR/tun.state.
tun_writer() {
	ip netns exec "$NSD" "$PY" - "$TUN" "$TUN_PPS" "$TDIR" "$CORPUS"/*.pcap \
	    >"$TDIR/tun.log" 2>&1 <<'EOF' &
import fcntl, os, struct, sys, time
name, pps, d = sys.argv[1], float(sys.argv[2]), sys.argv[3]
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
def frames(path):
    with open(path, "rb") as f:
        h = f.read(24)
        e = "<" if h[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        if struct.unpack(e + "I", h[20:24])[0] != 1:
            return
        while True:
            r = f.read(16)
            if len(r) < 16:
                return
            incl = struct.unpack(e + "IIII", r)[2]
            yield f.read(incl)
pkts = []
for path in sys.argv[4:]:
    for fr in frames(path):
        off = 12
        while len(fr) >= off + 6 and fr[off:off + 2] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
            off += 4
        if fr[off:off + 2] in (b"\x08\x00", b"\x86\xdd") and len(fr) > off + 2 \
                and fr[off + 2] >> 4 in (4, 6):
            pkts.append(fr[off + 2:])
def say(s):
    with open(d + "/tun.state.tmp", "w") as f:
        f.write(s + "\n")
    os.rename(d + "/tun.state.tmp", d + "/tun.state")
say("ready %d" % len(pkts))
while not os.path.exists(d + "/tun.go"):
    time.sleep(0.01)
t0, sent, failed = time.monotonic(), 0, 0
for i, p in enumerate(pkts):
    ahead = t0 + i / pps - time.monotonic()
    if ahead > 0.002:
        time.sleep(ahead)
    try:
        os.write(fd, p)
        sent += 1
    except OSError as e:
        failed += 1
        print("write %d bytes: %s" % (len(p), e), file=sys.stderr)
say("done %d %d" % (sent, failed))
while True:
    time.sleep(60)
EOF
	T_TUNPID=$!
	bg_track "$T_TUNPID"
}

# tun_state WORD SECONDS: bounded wait until the writer's state starts with
# WORD; STATE_LINE is its last state line
tun_state() { state_wait "$TDIR/tun.state" "$1" "$2" "$T_TUNPID"; }

# local_traffic: in $NSD, over 127.0.0.1 and ::1, UDP (to ports 53 and 9000,
# and to a closed one: an ICMP port unreachable), a TCP connection to port
# 80 and to 8080, and ICMP echo, sizes from 1 byte to 60000; then UDP out of
# the tun, what `outbound` counts on `any`
local_traffic() {
	ip netns exec "$NSD" "$PY" - "$TUN_PEER" "$TUN_OUT" <<'EOF'
import os, socket, struct, sys, time
def udp(fam, addr, port, sizes):
    r = socket.socket(fam, socket.SOCK_DGRAM)
    r.bind((addr, port))
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for n in sizes:
        s.sendto(bytes(n), r.getsockname()[:2])
        assert len(r.recv(65536)) == n
    s.sendto(b"closed", (addr, s.getsockname()[1] ^ 1))
    r.close()
    s.close()
def tcp(fam, addr, port, sizes):
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(1)
    c = socket.create_connection((addr, port))
    a, _ = l.accept()
    for n in sizes:
        c.sendall(bytes(n))
        got = 0
        while got < n:
            got += len(a.recv(n - got))
        a.sendall(b"ok")
        assert c.recv(2) == b"ok"
    c.shutdown(socket.SHUT_WR)
    assert a.recv(1) == b""
    a.close()
    assert c.recv(1) == b""
    c.close()
    l.close()
def ping(fam, addr, sizes):
    if fam == socket.AF_INET:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        typ = 8
    else:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        typ = 128
    s.settimeout(2)
    for i, n in enumerate(sizes):
        m = struct.pack("!BBHHH", typ, 0, 0, 0x4c54, i) + bytes(n)
        if fam == socket.AF_INET:
            c = sum(struct.unpack("!%dH" % ((len(m) + 1) // 2), m + bytes(len(m) % 2)))
            while c >> 16:
                c = (c & 0xffff) + (c >> 16)
            m = m[:2] + struct.pack("!H", ~c & 0xffff) + m[4:]
        s.sendto(m, (addr, 0))
        while True:
            r = s.recv(65536)
            if fam == socket.AF_INET:
                r = r[(r[0] & 15) * 4:]
            if r[0] in (0, 129) and struct.unpack("!H", r[6:8])[0] == i:
                break
    s.close()
sizes = (1, 40, 99, 512, 1000, 1400, 1472, 3000, 60000)
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    udp(fam, addr, 53, sizes)
    udp(fam, addr, 9000, sizes[:5])
    tcp(fam, addr, 80, sizes)
    tcp(fam, addr, 8080, sizes[:3])
    ping(fam, addr, sizes[:6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for j in range(int(sys.argv[2])):
    s.sendto(bytes(sizes[j % 7]), (sys.argv[1], 9000))
s.close()
time.sleep(0.3)	# delayed acks
EOF
}

# The captures (tests/lib.sh: capture_start) run in $NSD.
CAPTURE_NS=$NSD

# wait_pids PID...: wait for these children; a bare `wait` would wait for
# the daemon too
wait_pids() { [ "$#" -eq 0 ] || wait "$@"; }

# verdicts: for each interface and filter, whether tcpdump compiles it there:
# "KEY N ok|no" lines in $TDIR/verdict, the reason in $TDIR/v/KEY.N
verdicts() {
	local k i x all=() pids=()
	mkdir -p "$TDIR/v"
	for k in "${KEYS[@]}"; do
		for i in "${!FLT[@]}"; do
			[ "$k" = a ] || [[ ! ${FLT[$i]} =~ $F_ANY ]] || continue
			{
				if ip netns exec "$NSD" tcpdump -d -i "${IFN[$k]}" -y "${DLT[$k]}" \
				    "${FLT[$i]}" >/dev/null 2>"$TDIR/v/$k.$i"; then
					echo ok
				else
					echo no
				fi >"$TDIR/v/$k.$i.v"
			} &
			pids+=($!)
			all+=("$k $i")
			if [ "${#pids[@]}" -ge 4 ]; then
				wait_pids "${pids[@]}"
				pids=()
			fi
		done
	done
	wait_pids "${pids[@]}"
	for x in "${all[@]}"; do
		echo "$x $(cat "$TDIR/v/${x/ /.}.v")"
	done >"$TDIR/verdict"
}

# new_one NAME IFACE d|p FILTER: new NAME in the default mode or with
# libpcap; its exit status in $TDIR/new/NAME.rc, its output in NAME.out
new_one() {
	local words mode=()
	read -r -a words <<<"$4"
	[ "$3" = d ] || mode=(mode pcap)
	"$CAPSTATS" -s "$SOCK" -m "$SHM" new "$1" interface "$2" "${mode[@]}" \
	    filter "${words[@]}" >"$TDIR/new/$1.out" 2>&1
	echo $? >"$TDIR/new/$1.rc"
}

# new_all: one session per (interface, filter) in the default mode (KEYdN)
# and one with libpcap (KEYpN), a few clients at a time. The daemon gives a
# compile 500 ms; a machine busy enough can take longer for a short filter,
# which is not what this test is about: such a refusal is said and tried
# again, twice at most.
new_all() {
	local -x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
	local k i v m name pids=() try
	mkdir -p "$TDIR/new"
	while read -r k i v; do
		for m in d p; do
			new_one "$k$m$i" "${IFN[$k]}" "$m" "${FLT[$i]}" &
			pids+=($!)
			if [ "${#pids[@]}" -ge 8 ]; then
				wait_pids "${pids[@]}"
				pids=()
			fi
		done
	done <"$TDIR/verdict"
	wait_pids "${pids[@]}"
	for try in 1 2; do
		while read -r k i v; do
			for m in d p; do
				name=$k$m$i
				[ "$(cat "$TDIR/new/$name.rc")" = 1 ] &&
				    grep -q 'ms to compile' "$TDIR/new/$name.out" || continue
				printf '  NOTE: new %s: %s; again\n' "$name" "$(cat "$TDIR/new/$name.out")"
				new_one "$name" "${IFN[$k]}" "$m" "${FLT[$i]}"
			done
		done <"$TDIR/verdict"
	done
}

# check_new KEY: new refused exactly the filters tcpdump refuses on KEY, with
# exit 1 and a message, and accepted the others
check_new() {
	local k=$1 kk i v m rc refused=() bad=0 nok=0
	while read -r kk i v; do
		[ "$kk" = "$k" ] || continue
		for m in d p; do
			rc=$(cat "$TDIR/new/$k$m$i.rc" 2>/dev/null || echo '?')
			if [ "$v" = ok ] && [ "$rc" != 0 ]; then
				fail "linktypes ${IFN[$k]}: new $k$m$i '${FLT[$i]}' exited $rc, tcpdump compiles it on ${DLT[$k]}"
				indent <"$TDIR/new/$k$m$i.out"
				bad=1
			elif [ "$v" = no ] && { [ "$rc" != 1 ] || [ ! -s "$TDIR/new/$k$m$i.out" ]; }; then
				fail "linktypes ${IFN[$k]}: new $k$m$i '${FLT[$i]}' exited $rc, expected 1 and a message: tcpdump says $(tr '\n' ' ' <"$TDIR/v/$k.$i")"
				indent <"$TDIR/new/$k$m$i.out"
				bad=1
			fi
		done
		if [ "$v" = no ]; then
			refused+=("'${FLT[$i]}'")
			printf '  %s %s: new says: %s\n' "${IFN[$k]}" "'${FLT[$i]}'" \
			    "$(head -1 "$TDIR/new/${k}d$i.out")"
		else
			nok=$((nok + 1))
		fi
	done <"$TDIR/verdict"
	[ "$bad" -eq 0 ] &&
	    pass "linktypes ${IFN[$k]}: new accepts the $nok filters tcpdump compiles on ${DLT[$k]} and refuses, with exit 1, the ${#refused[@]} it refuses (${refused[*]})"
}

# check_modes: default-mode sessions count in the kernel, libpcap ones with
# libpcap; a fallback is a FAIL unless the translator refused the program
check_modes() {
	local line
	cs -j list >"$TDIR/list.json" || {
		fail "linktypes: list failed"
		return 1
	}
	"$PY" - "$TDIR/list.json" "a=${IFN[a]}" "t=${IFN[t]}" "l=${IFN[l]}" <<'EOF' >"$TDIR/modes.out"
import json, re, sys
ss = json.load(open(sys.argv[1]))
refusal = re.compile(r"kernel path refused: (instruction \d+|too large|\d+ instructions)")
for arg in sys.argv[2:]:
    k, name = arg.split("=", 1)
    for m, want in (("d", "kernel"), ("p", "pcap")):
        mine = [s for s in ss if re.fullmatch(k + m + r"\d+", s["session"])]
        off = [s for s in mine if s["mode"] != want or s["state"] != "running"]
        for s in off:
            genuine = m == "d" and s["state"] == "running" and refusal.match(s["mode_reason"])
            print("%s\t%s '%s': mode %s, state %s: %s" % ("NOTE" if genuine else "FAIL",
                  s["session"], s["filter"], s["mode"], s["state"], s["mode_reason"]))
        print("%s\t%s, %s: %d of %d sessions" % ("PASS" if not off else "INFO", name,
              "default mode" if m == "d" else "mode pcap", len(mine) - len(off), len(mine)))
EOF
	while IFS=$'\t' read -r v line; do
		case $v in
		FAIL) fail "linktypes: $line" ;;
		PASS) pass "linktypes: counting in the expected mode: $line" ;;
		*) printf '  %s: %s\n' "$v" "$line" ;;
		esac
	done <"$TDIR/modes.out"
}

# oracle: for each interface and filter tcpdump compiles there, what
# `tcpdump -r` selects from the unfiltered capture, "KEY N PACKETS BYTES" in
# $TDIR/oracle; and on `any`, what each filtered live capture holds, the
# same in $TDIR/live
oracle() {
	local k i v o=() pids=() n=0
	mkdir -p "$TDIR/o"
	while read -r k i v; do
		[ "$v" = ok ] || continue
		tcpdump -r "$TDIR/$k.pcap" -w "$TDIR/o/$k.$i" "${FLT[$i]}" 2>"$TDIR/o/$k.$i.err" &
		pids+=($!)
		o+=("$k $i")
		n=$((n + 1))
		if [ $((n % 4)) -eq 0 ]; then
			wait_pids "${pids[@]}"
			pids=()
		fi
	done <"$TDIR/verdict"
	wait_pids "${pids[@]}"
	for v in "${o[@]}"; do
		[ -s "$TDIR/o/${v// /.}" ] || {
			fail "linktypes: tcpdump -r ${v% *}.pcap '${FLT[${v#* }]}' failed"
			indent <"$TDIR/o/${v// /.}.err"
			return 1
		}
	done
	paste -d ' ' <(printf '%s\n' "${o[@]}") \
	    <(cd "$TDIR/o" && pcap_count "${o[@]/ /.}") >"$TDIR/oracle" || return 1
	rm -f "$TDIR"/o/*
	o=()
	while read -r k i v; do
		[ "$k" = a ] && [ "$v" = ok ] && o+=("$i")
	done <"$TDIR/verdict"
	paste -d ' ' <(printf 'a %s\n' "${o[@]}") \
	    <(cd "$TDIR/lv" && pcap_count "${o[@]/%/.pcap}") >"$TDIR/live"
}

# compare: every session against tcpdump: on `any` the live capture with the
# filter, elsewhere the unfiltered capture filtered afterwards. Prints
# "FAIL\tline" per mismatch, "PASS\tline" per interface and mode, and
# "NOTE\tline" per filter on `any` that the kernel and `tcpdump -r` read
# differently; exit 0 when all are exact, 1 when some are only short (worth
# another look), 2 otherwise.
compare() {
	printf '%s\n' "${FLT[@]}" >"$TDIR/filters"
	"$PY" - "$TDIR" "${IFN[a]}" "${IFN[t]}" "${IFN[l]}" <<'EOF'
import json, sys
d = sys.argv[1]
names = dict(zip("atl", sys.argv[2:]))
flt = open(d + "/filters").read().split("\n")
now = {s["session"]: s for s in json.load(open(d + "/list.json"))}
def load(f):
    r = {}
    for line in open(d + "/" + f):
        k, i, p, b = line.split()
        r[(k, i)] = (int(p), int(b))
    return r
offline, live = load("oracle"), load("live")
ref = dict(offline)
ref.update(live)
out, status = [], 0
for (k, i), pb in sorted(live.items(), key=lambda x: int(x[0][1])):
    if offline.get((k, i)) != pb:
        out.append("NOTE\t%s '%s': live tcpdump %d packets %d bytes, tcpdump -r %d packets %d bytes"
                   % (names[k], flt[int(i)], pb[0], pb[1], *offline[(k, i)]))
for k in ("a", "t", "l"):
    for m, what in (("d", "default mode"), ("p", "pcap mode")):
        bad, n, pk = 0, 0, 0
        for (kk, i), (p, b) in sorted(ref.items(), key=lambda x: int(x[0][1])):
            if kk != k:
                continue
            n += 1
            pk += p
            s = now.get(k + m + i)
            if s is None:
                out.append("FAIL\t%s%s%s: not listed" % (k, m, i))
                bad, status = bad + 1, 2
                continue
            why = []
            if (s["packets"], s["bytes"]) != (p, b):
                why.append("tcpdump %d packets %d bytes, counted %d packets %d bytes"
                           % (p, b, s["packets"], s["bytes"]))
            if s["drops"]:
                why.append("%d drops" % s["drops"])
            if s["state"] != "running":
                why.append("state %s" % s["state"])
            if why:
                short = len(why) == 1 and s["packets"] < p and s["bytes"] < b
                status = max(status, 1 if short else 2)
                bad += 1
                out.append("FAIL\t%s %s (%s): %s '%s': %s" % (s["interface"], what,
                           s["mode"], s["session"], s["filter"], "; ".join(why)))
        if bad == 0:
            out.append("PASS\t%s %s: %d filters exact against tcpdump (%d packets matched in all)"
                       % (names[k], what, n, pk))
        else:
            out.append("INFO\t%s %s: %d of %d filters differ" % (names[k], what, bad, n))
print("\n".join(out))
sys.exit(status)
EOF
}

# ---- main

start=$(now_ms)
lt_setup || exit 1
rm -f "$STATE"
ns_daemon_start "$NSD" -n 512 || exit 1
tun_writer
tun_state ready 30 || die "linktypes: the tun writer did not start: $(cat "$TDIR/tun.log")"
verdicts
new_all
for k in "${KEYS[@]}"; do
	check_new "$k"
done
check_modes

# The oracle: an unfiltered capture of each interface, and on `any`, where
# the kernel does not read every filter as `tcpdump -r` reads the capture,
# one live capture per filter as well.
for k in "${KEYS[@]}"; do
	capture_start "$TDIR/$k.pcap" "${IFN[$k]}" "${DLT[$k]}"
done
mkdir -p "$TDIR/lv"
CAPTURE_KB=4096
while read -r k i v; do
	[ "$k" = a ] && [ "$v" = ok ] || continue
	capture_start "$TDIR/lv/$i.pcap" any "${DLT[a]}" "${FLT[$i]}"
done <"$TDIR/verdict"
captures_listening || exit 1

# The traffic, one interface after the other; `any` sees all of it.
rx0=$(ns_stat "$VD" rx_packets) tx0=$(ns_stat "$VD" tx_packets) nrx=0
nrec=$(pcap_count "$CORPUS"/*.pcap | awk '{ n += $1 } END { print n }')
if timeout $((nrec / PPS + 60)) ip netns exec "$NSS" tcpreplay -q --intf1="$VS" \
    --pps="$PPS" "$CORPUS"/*.pcap >"$TDIR/tcpreplay.log" 2>&1; then
	n=250
	while [ "$(ns_stat "$VD" rx_packets)" -lt $((rx0 + nrec)) ] && [ "$n" -gt 0 ]; do
		nap 0.02
		n=$((n - 1))
	done
	nrx=$(($(ns_stat "$VD" rx_packets) - rx0))
	check_eq "linktypes: $VD received the corpus's $nrec frames and sent nothing" \
	    "$nrec 0" "$nrx $(($(ns_stat "$VD" tx_packets) - tx0))"
else
	fail "linktypes: tcpreplay failed"
	indent <"$TDIR/tcpreplay.log"
fi
read -r _ ntun <<<"$STATE_LINE"
: >"$TDIR/tun.go"
nsent=0
if tun_state done $((ntun / TUN_PPS + 30)); then
	read -r _ nsent _ <<<"$STATE_LINE"
	check_eq "linktypes: $ntun IP packets of the corpus written into $TUN" \
	    "done $ntun 0" "$STATE_LINE"
else
	fail "linktypes: the tun writer did not finish"
	indent <"$TDIR/tun.log"
fi
check "linktypes: UDP, TCP and ICMP over 127.0.0.1 and ::1, UDP out of $TUN" local_traffic

# Stop the captures once they have written everything (nothing else is sent
# here); they must have lost nothing.
captures_drained || fail "linktypes: the captures still grow 10 s after the traffic"
captures_stop
for k in "${KEYS[@]}"; do
	check_eq "linktypes ${IFN[$k]}: tcpdump captured as ${DLT[$k]}" "${LT[$k]}" \
	    "$(od -An -tu4 -j20 -N4 "$TDIR/$k.pcap" | tr -d ' ')"
done
oracle || exit 1
all=
for i in "${!FLT[@]}"; do
	[ -n "${FLT[$i]}" ] || all=$i
done
[ -n "$all" ] || die "linktypes: filters.txt has no empty filter"
opk() { awk -v k="$1" -v i="$all" '$1 == k && $2 == i { print $3 }' "$TDIR/$2"; }
check_eq "linktypes: tcpdump on $TUN captured every packet written and sent" \
    "$((nsent + TUN_OUT))" "$(opk t oracle)"
n=$((nrx + nsent + TUN_OUT + $(opk l oracle)))
check_eq "linktypes: tcpdump on any captured the replay, the tun's and lo's packets, live and whole" \
    "$n $n" "$(opk a oracle) $(opk a live)"

# Counters trail the wire by the kernel path's fold and the daemon's turn on
# the CPU: look again, bounded, while some are short.
t0=$(now_ms)
while :; do
	cs -j list >"$TDIR/list.json" || die "linktypes: list failed"
	compare >"$TDIR/compare.out"
	rc=$?
	[ "$rc" -eq 1 ] && [ $(($(now_ms) - t0)) -lt "$SETTLE_MS" ] || break
	nap 0.1
done
while IFS=$'\t' read -r v line; do
	case $v in
	FAIL) fail "linktypes: $line" ;;
	PASS) pass "linktypes: $line" ;;
	*) printf '  %s: %s\n' "$v" "$line" ;;
	esac
done <"$TDIR/compare.out"

check "linktypes: the daemon is still running" daemon_alive
bg_stop "$T_TUNPID"
daemon_stop
printf '  %s filters on 3 interfaces, %s ms\n' "${#FLT[@]}" "$(($(now_ms) - start))"
exit 0
