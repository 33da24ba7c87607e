# tests/sys/churn_links.sh: churn_traffic.sh on the interfaces other than a
# plain veth: `any`, lo, a tun device and a VLAN device on a veth end, in a
# private namespace with the daemon. Sessions come, change and go on all
# four, on both paths, while packets flow on each; the sessions left alone
# count exactly the probes sent to each interface, as tcpdump there counts
# them, and the daemon lives on. On a kernel without 802.1Q the tagged
# frames go to the veth end itself, and the VLAN device is skipped, saying so.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool sysctl tcpreplay tcpdump timeout python3

OPS=${CAPSTATS_CHURN_OPS:-400}		# at least this many new, modify and stop
SEED=${CAPSTATS_CHURN_SEED:-$RANDOM}
PROBE_PORT=9555				# only the kept sessions match it
MIN_SECONDS=9				# the churn's least length: every rate once
CHURN_RATES="300 2000 10000 800 5000 15000 500 3000"	# on the VLAN, 1 s each
GEN_PPS=${CAPSTATS_CHURN_GEN_PPS:-1000}	# on the tun and on lo, each
GEN_EVERY=25				# every 25th of those is a probe
BURST=200				# probes on each interface after the churn
echo "  seed $SEED (CAPSTATS_CHURN_SEED=$SEED reproduces the choices)"

NSD=cst-lc-$$		# the daemon and the interfaces counted on
NSS=cst-lcs-$$		# the sender on the VLAN
VD=lcveth0 VS=lcveth1 TUN=lctun0 VID=100	# names inside those namespaces only

lc_step() { setup_step "churn_links: $1" "${@:2}"; }

# ns_stat NS IFACE COUNTER: an interface counter in namespace NS
ns_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# lc_setup: both namespaces; a veth pair between them, quiet (IPv6 and ARP
# off before link-up, GRO off, no addresses), with a VLAN device on each end
# where the kernel has them; the tun, with IPv6 off; lo up. Sets VL, the
# interface counted on for the VLAN, and VSEND, the one the sender uses.
lc_setup() {
	local x
	lc_step "ip netns add $NSD" ip netns add "$NSD" || return 1
	T_NETNS+=("$NSD")
	lc_step "ip netns add $NSS" ip netns add "$NSS" || return 1
	T_NETNS+=("$NSS")
	lc_step "veth $VD/$VS" ip -n "$NSD" link add "$VD" type veth peer name "$VS" \
	    netns "$NSS" || return 1
	if ip -n "$NSD" link add link "$VD" name "$VD.$VID" type vlan id "$VID" \
	    2>"$TDIR/vlan.err"; then
		lc_step "vlan $VS.$VID" ip -n "$NSS" link add link "$VS" name "$VS.$VID" \
		    type vlan id "$VID" || return 1
		VL=$VD.$VID VSEND=$VS.$VID
	else
		# A kernel without 802.1Q: the tagged frames still come, to the
		# veth end itself, where the kernel takes the tag out.
		skip "churn_links: no VLAN device: this kernel has no 802.1Q" \
		    "($(head -1 "$TDIR/vlan.err")); the tagged frames are counted on $VD itself"
		VL=$VD VSEND=$VS
	fi
	for x in "$NSD $VD" "$NSS $VS" "$NSD $VL" "$NSS $VSEND"; do
		set -- $x
		lc_step "disable_ipv6 $2" ip netns exec "$1" sysctl -qw \
		    "net.ipv6.conf.${2//./\/}.disable_ipv6=1" || return 1
		lc_step "arp off $2" ip -n "$1" link set dev "$2" arp off || return 1
	done
	lc_step "gro off $VD" ip netns exec "$NSD" ethtool -K "$VD" gro off || return 1
	lc_step "gro off $VS" ip netns exec "$NSS" ethtool -K "$VS" gro off || return 1
	for x in "$NSS $VS" "$NSD $VD" "$NSS $VSEND" "$NSD $VL"; do
		set -- $x
		lc_step "up $2" ip -n "$1" link set dev "$2" up || return 1
	done
	lc_step "tuntap add $TUN" ip -n "$NSD" tuntap add dev "$TUN" mode tun || return 1
	lc_step "disable_ipv6 $TUN" ip netns exec "$NSD" sysctl -qw "net.ipv6.conf.$TUN.disable_ipv6=1" || return 1
	lc_step "up $TUN" ip -n "$NSD" link set dev "$TUN" up || return 1
	lc_step "up lo" ip -n "$NSD" link set dev lo up || return 1
}

# gen_start: in $NSD, a program attached to the tun that writes IP packets
# into it (UDP from 10.0.0.1 to 10.0.0.2 port 9000, 58 bytes, not for this
# host: dropped after the captures) and sends UDP over lo (from 127.0.0.1
# port 40000 to port 9000, where a socket takes and never reads them: no
# ICMP), $GEN_PPS a second on each, every $GEN_EVERY-th a probe to
# PROBE_PORT (100 bytes of IP on the tun; 50 bytes of UDP payload on lo,
# read by a socket there), from when $TDIR/gen.go exists. It says "ready"
# first, "stopped" once $TDIR/gen.stop exists; once $TDIR/gen.burst exists,
# it sends $BURST probes on each and says "done TUN_WRITES TUN_FAILED
# TUN_PROBES LO_PROBES LO_RECEIVED LO_SENT", and stays attached until
# stopped. Its state is in $TDIR/gen.state.
gen_start() {
	ip netns exec "$NSD" "$PY" - "$TUN" "$TDIR" "$GEN_PPS" "$GEN_EVERY" \
	    "$PROBE_PORT" "$BURST" >"$TDIR/gen.log" 2>&1 <<'EOF' &
import fcntl, os, socket, struct, sys, time
name, d = sys.argv[1], sys.argv[2]
pps, every, port, burst = (int(x) for x in sys.argv[3:7])
TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 9000))
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", port))
rx.setblocking(False)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.bind(("127.0.0.1", 40000))
ptx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ptx.bind(("127.0.0.1", 41000))
n = {"writes": 0, "failed": 0, "tun": 0, "lo": 0, "recv": 0, "sent": 0}

def ip4(i, dport, payload):
    udp = struct.pack("!HHHH", 40000 + i % 1000, dport, 8 + payload, 0) + bytes(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                    bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    c = sum(struct.unpack("!10H", h))
    while c >> 16:
        c = (c & 0xffff) + (c >> 16)
    return h[:10] + struct.pack("!H", ~c & 0xffff) + h[12:] + udp

def drain():
    while True:
        try:
            rx.recv(2048)
            n["recv"] += 1
        except BlockingIOError:
            return

def tun_write(p):
    try:
        os.write(fd, p)
        n["writes"] += 1
        return True
    except OSError as e:
        n["failed"] += 1
        print("tun write: %s" % e, file=sys.stderr)
        return False

def send(i, probe):
    if probe:
        n["tun"] += tun_write(ip4(i, port, 72))
        ptx.sendto(bytes(50), ("127.0.0.1", port))
        n["lo"] += 1
        drain()
    else:
        tun_write(ip4(i, 9000, 30))
        tx.sendto(bytes(20), ("127.0.0.1", 9000))
    n["sent"] += 1

def say(s):
    with open(d + "/gen.state.tmp", "w") as f:
        f.write(s + "\n")
    os.rename(d + "/gen.state.tmp", d + "/gen.state")

say("ready")
while not os.path.exists(d + "/gen.go"):
    time.sleep(0.01)
t0, i = time.monotonic(), 0
while not os.path.exists(d + "/gen.stop"):
    ahead = t0 + i / pps - time.monotonic()
    if ahead > 0.002:
        time.sleep(ahead)
    i += 1
    send(i, i % every == 0)
say("stopped")
while not os.path.exists(d + "/gen.burst"):
    time.sleep(0.01)
for j in range(burst):
    send(i + j, True)
t1 = time.monotonic()
while n["recv"] < n["lo"] and time.monotonic() - t1 < 5:
    time.sleep(0.01)
    drain()
say("done %d %d %d %d %d %d" % (n["writes"], n["failed"], n["tun"], n["lo"], n["recv"],
                             n["sent"]))
while True:
    time.sleep(60)
EOF
	GEN=$!
	bg_track "$GEN"
}

# gen_state WORD SECONDS: bounded wait until the generator's state starts
# with WORD; STATE_LINE is its last state line
gen_state() { state_wait "$TDIR/gen.state" "$1" "$2" "$GEN"; }

# ---- main

start=$(now_ms)
lc_setup || exit 1
declare -A IFN=([a]=any [l]=lo [t]=$TUN [v]=$VL)
declare -A DLT=([a]=LINUX_SLL2 [l]=EN10MB [t]=RAW [v]=EN10MB)
KEEP=(kak kap klk klp ktk ktp kvk kvp)

# What the churned filters match (udp to port 9000) and the probes, tagged
# where the frames go to the veth end itself.
if [ "$VL" = "$VD" ]; then
	udp_pcap "$TDIR/bg.pcap" 1000 9000 "$VID"
	udp_pcap "$TDIR/burst.pcap" "$BURST" "$PROBE_PORT" "$VID"
	export CHURN_VLAN=$VID
	VLEN=64			# the tag is counted where the kernel took it out
	ANY_VL=1		# `any` sees the frame once
else
	udp_pcap "$TDIR/bg.pcap" 1000
	udp_pcap "$TDIR/burst.pcap" "$BURST" "$PROBE_PORT"
	VLEN=60			# the VLAN device receives the frame untagged
	ANY_VL=2		# `any` sees it on the veth end and on the VLAN device
fi

ns_daemon_start "$NSD" -i "$VL" || exit 1
DPID=$T_DPID

# The oracle: tcpdump on each interface, with the kept sessions' filter,
# each packet written as it comes.
CAPTURE_NS=$NSD CAPTURE_OPTS=--immediate-mode CAPTURE_SNAP=128 CAPTURE_KB=8192
for k in a l t v; do
	capture_start "$TDIR/$k.pcap" "${IFN[$k]}" "${DLT[$k]}" "udp dst port $PROBE_PORT"
done
captures_listening || exit 1
gen_start
gen_state ready 10 || die "churn_links: the tun and lo sender did not start: $(cat "$TDIR/gen.log")"

# Left alone throughout: one on each path on each interface.
for k in a l t v; do
	check "new k${k}k on ${IFN[$k]}, kernel path" \
	    cs new "k${k}k" interface "${IFN[$k]}" mode kernel filter "udp dst port $PROBE_PORT"
	check "new k${k}p on ${IFN[$k]}, pcap path" \
	    cs new "k${k}p" interface "${IFN[$k]}" mode pcap filter "udp dst port $PROBE_PORT"
done

check_eq "they count on the path asked for" \
    "$(printf '%s kernel running %s pcap running ' "${KEEP[@]}")" \
    "$(cs -j list | "$PY" -c 'import json,sys; print(*("%s %s %s" % (s["session"], s["mode"], s["state"]) for s in sorted(json.load(sys.stdin), key=lambda s: s["session"])), end=" ")')"
vd_rx0=$(ns_stat "$NSD" "$VD" rx_packets) vs_tx0=$(ns_stat "$NSS" "$VS" tx_packets)
tun_rx0=$(ns_stat "$NSD" "$TUN" rx_packets) lo_rx0=$(ns_stat "$NSD" lo rx_packets)

# The churn, on the four interfaces, while the VLAN carries tcpreplay's
# traffic (and the client's probes) and the tun and lo the generator's.
: >"$TDIR/gen.go"
churn_replay "$NSS" "$VSEND" "$TDIR/bg.pcap"
nap 0.5
churn_client "$NSS" 75 "$VSEND" "$OPS" "$SEED" "$PROBE_PORT" "$MIN_SECONDS" \
    any lo "$TUN" "$VL" || exit 1
: >"$TDIR/gen.stop"
gen_state stopped 10 || fail "churn_links: the tun and lo sender did not stop: $(cat "$TDIR/gen.log")"
churn_checks
for k in a l t v; do
	check "on ${IFN[$k]}: new on both paths, modify and stop, at least 5 of each" test \
	    "$(churn_get "min(d['by_iface']['${IFN[$k]}']['modify'], d['by_iface']['${IFN[$k]}']['stop'], d['by_iface']['${IFN[$k]}']['new']['kernel'], d['by_iface']['${IFN[$k]}']['new']['pcap'])")" -ge 5
done
echo "  by interface:" $(churn_get "' '.join('%s: new %s, modify %d, stop %d;' % (i, '/'.join(str(x) for x in v['new'].values()), v['modify'], v['stop']) for i, v in d['by_iface'].items())")
churn_leftovers "${KEEP[@]}"

# Quiet now: the probes, $BURST on each interface.
vl_rx0=$(ns_stat "$NSD" "$VL" rx_packets)
if ! timeout 30 ip netns exec "$NSS" tcpreplay -q --intf1="$VSEND" --pps=5000 \
    "$TDIR/burst.pcap" >"$TDIR/tcpreplay.log" 2>&1; then
	fail "churn_links: tcpreplay of the probes failed"
	indent <"$TDIR/tcpreplay.log"
fi
: >"$TDIR/gen.burst"
gen_state done 30 || die "churn_links: the tun and lo sender did not finish: $(cat "$TDIR/gen.log")"
read -r _ twrites tfailed tprobes lprobes lrecv lsent <<<"$STATE_LINE"
n=250
while [ "$(ns_stat "$NSD" "$VL" rx_packets)" -lt $((vl_rx0 + BURST)) ] && [ "$n" -gt 0 ]; do
	nap 0.02
	n=$((n - 1))
done
check_eq "$VL received the $BURST probes" "$BURST" $(($(ns_stat "$NSD" "$VL" rx_packets) - vl_rx0))
check_eq "$VD received every frame $VS sent" $(($(ns_stat "$NSS" "$VS" tx_packets) - vs_tx0)) \
    $(($(ns_stat "$NSD" "$VD" rx_packets) - vd_rx0))
check_eq "$TUN received every packet written, none failed" "$twrites 0" \
    "$(($(ns_stat "$NSD" "$TUN" rx_packets) - tun_rx0)) $tfailed"
check_eq "lo carried every datagram sent over it, and every probe arrived" \
    "$lsent $lprobes" "$(($(ns_stat "$NSD" lo rx_packets) - lo_rx0)) $lrecv"
printf '  sent: %d frames to %s, %d packets into %s, %d datagrams over lo\n' \
    $(($(ns_stat "$NSS" "$VS" tx_packets) - vs_tx0)) "$VD" "$twrites" "$TUN" "$lsent"
captures_drained || fail "churn_links: the captures still grow 10 s after the probes"
captures_stop

# What each interface carried to PROBE_PORT, from what was sent: on the VLAN
# Ethernet frames of $VLEN bytes, on the tun IP packets of 100 bytes, on lo
# frames of 92; on `any` the IP packet and 20 bytes of cooked header.
pv=$(($(churn_get 'd["probes"]') + BURST))
declare -A WANT=([v]="$pv $((pv * VLEN))" [t]="$tprobes $((tprobes * 100))"
    [l]="$lprobes $((lprobes * 92))"
    [a]="$((pv * ANY_VL + tprobes + lprobes)) $((pv * ANY_VL * 66 + tprobes * 120 + lprobes * 98))")
for k in a l t v; do
	check_eq "tcpdump on ${IFN[$k]} captured the probes sent there, packets and bytes" \
	    "${WANT[$k]}" "$(pcap_count "$TDIR/$k.pcap")"
done

# The kept sessions counted them, exactly.
for k in a l t v; do
	for s in "k${k}k" "k${k}p"; do
		wait_count "$s" "${WANT[$k]% *}" 5
	done
done
nap 0.3		# anything beyond would show by now; drops are refreshed every 100 ms
cs -j list >"$TDIR/list.json" || fail "churn_links: list failed"
for k in a l t v; do
	for s in "k${k}k" "k${k}p"; do
		check_eq "$s on ${IFN[$k]} counted the probes, packets and bytes, and dropped none" \
		    "${WANT[$k]} 0" "$("$PY" -c 'import json,sys
s = [s for s in json.load(open(sys.argv[1])) if s["session"] == sys.argv[2]]
print(*(s and (s[0]["packets"], s[0]["bytes"], s[0]["drops"]) or ["not listed"]))' "$TDIR/list.json" "$s")"
	done
done

check "list answers" cs list
check_eq "the daemon is the one started (pid)" "$DPID" "$(cat "$PIDFILE" 2>/dev/null)"
check "the daemon is alive" daemon_alive
no_sanitizer_report
bg_stop "$GEN"
daemon_stop && pass "the daemon stops cleanly: exit 0, nothing left behind, no sanitizer report"
printf '  %s ms\n' "$(($(now_ms) - start))"
