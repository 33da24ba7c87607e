# tests/sys/thousand.sh: a thousand sessions on one interface, all on the
# kernel path, exact on corpus traffic: `host A` for the hosts of the
# captures and `tcp port P` / `udp port P` for their ports, with libpcap
# reading the same captures as the oracle. A hundred more sessions come
# and go while a capture replays, and the thousand are exact through it;
# a restarted daemon restores them all from its state file.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay "$PY"
CORPUS=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
FILES="ndpi-iphone.pcap ndpi-stun.pcap tcpreplay-test.pcap"
for f in $FILES; do
	[ -r "$CORPUS/$f" ] || die "thousand: no $CORPUS/$f (set CAPSTATS_CORPUS)"
done
N=1000

# The filters: the captures' IPv4 hosts and ports, most frequent first.
"$PY" - $(for f in $FILES; do echo "$CORPUS/$f"; done) >"$TDIR/filters" <<'EOF'
import collections, socket, struct, sys
hosts, ports = collections.Counter(), collections.Counter()
for name in sys.argv[1:]:
    f = open(name, "rb")
    le = f.read(24)[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    rec = struct.Struct("<IIII" if le else ">IIII")
    while True:
        r = f.read(16)
        if len(r) < 16:
            break
        d = f.read(rec.unpack(r)[2])
        if len(d) < 34 or d[12:14] != b"\x08\x00" or d[14] >> 4 != 4:
            continue
        hosts[socket.inet_ntoa(d[26:30])] += 1
        hosts[socket.inet_ntoa(d[30:34])] += 1
        ihl = (d[14] & 15) * 4
        if d[23] in (6, 17) and len(d) >= 14 + ihl + 4:
            proto = "tcp" if d[23] == 6 else "udp"
            for p in struct.unpack("!HH", d[14 + ihl:18 + ihl]):
                ports[proto, p] += 1
out = ["host " + h for h, _ in hosts.most_common(400)]
out += ["%s port %d" % k for k, _ in ports.most_common(1000 - len(out))]
p = 20000
while len(out) < 1000:		# ports no packet uses: they must count 0
    out.append("udp port %d" % p)
    p += 1
print("\n".join(out[:1000]))
EOF
check_eq "$N filters from the captures" "$N" "$(wc -l <"$TDIR/filters")"
veth_up th || exit 1
DAEMON_BUFFER_KB=1024 daemon_start -i "$HOST_IF" -n 1200 || exit 1

t0=$(now_ms)
check_eq "$N sessions created" "" "$(new_many "$TDIR/filters" s 1 $N)"
echo "  created in $(($(now_ms) - t0)) ms"
check_eq "all $N count on the kernel path" "$N" "$(running_kernel)"
cs -j list | "$PY" -c 'import json,sys
for s in json.load(sys.stdin):
    if s["mode"] != "kernel": print(s["session"], s["mode_reason"]); break' | indent

# What libpcap counts of each filter on each capture, every filter compiled
# with pcap_compile and run in user space on each frame, as tcpdump -r does
# (tests/bench/offline.c): "FILE LINE PACKETS BYTES".
build_tool OFFLINE bench/offline
: >"$TDIR/oracle"
for f in $FILES; do
	"$OFFLINE" -r "$CORPUS/$f" "$TDIR/filters" "$N" >"$TDIR/counts" &&
	    [ "$(wc -l <"$TDIR/counts")" -eq "$N" ] ||
	    die "thousand: the oracle did not count $f with $N filters"
	awk -v f="$f" '{ print f, $1 + 1, $2, $3 }' "$TDIR/counts" >>"$TDIR/oracle"
done

snapshot() { cs -j list >"$TDIR/$1.json"; }
# compare FILE BEFORE AFTER: each session's growth against the oracle.
compare() {
	"$PY" - "$TDIR" "$@" <<'EOF'
import json, sys
d, file, before, after = sys.argv[1:]
a = {s["session"]: s for s in json.load(open("%s/%s.json" % (d, before)))}
b = {s["session"]: s for s in json.load(open("%s/%s.json" % (d, after)))}
bad = 0
for line in open(d + "/oracle"):
    f, i, p, by = line.split()
    if f != file:
        continue
    n = "s" + i
    got = (b[n]["packets"] - a[n]["packets"], b[n]["bytes"] - a[n]["bytes"])
    if got != (int(p), int(by)) or b[n]["drops"]:
        bad += 1
        if bad <= 5:
            print("%s: %s packets %d bytes, expected %s %s" % (n, f, got[0], got[1], p, by))
print("%d wrong" % bad if bad else "", end="")
EOF
}
settle() {	# until the counters stop moving (the fold runs every 2 ms)
	local a b n=50
	a=$(cs -j list | md5sum)
	while [ $n -gt 0 ]; do
		nap 0.1
		b=$(cs -j list | md5sum)
		[ "$a" = "$b" ] && return 0
		a=$b
		n=$((n - 1))
	done
}

set -- $FILES
snapshot before
replay "$CORPUS/$1" 5000 && settle
snapshot after
check_eq "$N sessions exact on ${1}" "" "$(compare "$1" before after)"

# Churn: a hundred sessions come and go while the next capture replays.
replay "$CORPUS/$2" 2000 &
rp=$!
bg_track "$rp"
new_many "$TDIR/filters" c 1 100 >"$TDIR/churn.out"
for i in $(seq 1 2 100); do cs stop "c$i" >/dev/null || echo "stop c$i"; done >>"$TDIR/churn.out"
new_many "$TDIR/filters" d 101 150 >>"$TDIR/churn.out"
wait "$rp"
settle
snapshot after2
check_eq "sessions came and went during the replay" "" "$(cat "$TDIR/churn.out")"
check_eq "$N sessions exact on ${2} through the churn" "" "$(compare "$2" after after2)"
for i in $(seq 2 2 100); do cs stop "c$i" >/dev/null; done
for i in $(seq 101 150); do cs stop "d$i" >/dev/null; done

# A restart restores them all, on the kernel path.
daemon_stop
t0=$(now_ms)
DAEMON_BUFFER_KB=1024 daemon_start -i "$HOST_IF" -n 1200 || exit 1
for _ in $(seq 1 300); do
	[ "$(running_kernel)" = "$N" ] && break
	nap 0.1
done
echo "  restored in $(($(now_ms) - t0)) ms"
check_eq "a restart restores all $N on the kernel path" "$N" "$(running_kernel)"
snapshot before3
replay "$CORPUS/$3" 5000 && settle
snapshot after3
check_eq "$N restored sessions exact on ${3}" "" "$(compare "$3" before3 after3)"
