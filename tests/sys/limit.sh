# tests/sys/limit.sh: as many sessions as -n allows at most (4096), all on
# one interface and all on the kernel path, whatever net.core.optmem_max
# says; each counts exactly the frames sent to it, one to three apiece so
# that a frame counted by another session shows. One more is refused with
# the limit's message, the daemon stays, and a stop makes room again. A
# start with a smaller -n holds the sessions over it in the state file, and
# one with -n back at 4096 restores them all.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool "$PY"
N=4096

# Four families of N/4 (a program each, a constant per member) whose
# frames match their own session and no other: UDP and TCP destination
# ports, hosts of 10.1.0.0/16 and VLAN ids.
"$PY" - "$N" >"$TDIR/filters" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    k, j = i % 4, i // 4
    print(["udp dst port %d" % (20000 + j), "tcp dst port %d" % (20000 + j),
           "host 10.1.%d.%d" % (j >> 8, j & 255), "vlan %d" % (j + 1)][k])
EOF
veth_up lim || exit 1
DAEMON_BUFFER_KB=1024 daemon_start -i "$HOST_IF" -n "$N" || exit 1

t0=$(now_ms)
new_many "$TDIR/filters" s 1 "$N" mode kernel >"$TDIR/new.out"
check_eq "$N sessions created" "" "$(cat "$TDIR/new.out")"
echo "  created in $(($(now_ms) - t0)) ms"
check_eq "all $N count on the kernel path, running" "$N" "$(running_kernel)"

# Session s<i+1> (line i+1) gets 1 + i % 3 frames, sent from the namespace.
ip netns exec "$NETNS" "$PY" - "$PEER_IF" "$N" <<'EOF'
import socket, struct, sys
ifname, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
def ip4(proto, src, dst, l4):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h + l4
mac = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
for i in range(n):
    k, j = i % 4, i // 4
    udp9 = struct.pack("!HHHH", 9, 9, 8, 0)
    if k == 0:
        f = mac + b"\x08\x00" + ip4(17, "10.250.0.1", "10.250.0.2",
                                    struct.pack("!HHHH", 9, 20000 + j, 8, 0))
    elif k == 1:
        f = mac + b"\x08\x00" + ip4(6, "10.250.0.1", "10.250.0.2",
                                    struct.pack("!HHIIBBHHH", 9, 20000 + j, 0, 0, 0x50, 2, 1024, 0, 0))
    elif k == 2:
        f = mac + b"\x08\x00" + ip4(17, "10.1.%d.%d" % (j >> 8, j & 255), "10.250.0.2", udp9)
    else:
        f = mac + struct.pack("!HH", 0x8100, j + 1) + b"\x08\x00" + ip4(17, "10.250.0.1", "10.250.0.2", udp9)
    for _ in range(1 + i % 3):
        s.send(f)
EOF
# compare: the sessions whose count is not 1 + i % 3, once the counts stop moving
compare() {
	cs -j list | "$PY" -c '
import json, sys
got = {s["session"]: s["packets"] for s in json.load(sys.stdin)}
n = int(sys.argv[1])
bad = ["s%d: %s, expected %d" % (i + 1, got.get("s%d" % (i + 1)), 1 + i % 3)
       for i in range(n) if got.get("s%d" % (i + 1)) != 1 + i % 3]
print("%d wrong, first %s" % (len(bad), "; ".join(bad[:3])) if bad else "", end="")' "$N"
}
k=0
while [ -n "$(compare)" ] && [ "$k" -lt 50 ]; do
	nap 0.1
	k=$((k + 1))
done
check_eq "each of the $N sessions counts exactly its own frames" "" "$(compare)"

check_fails "session $((N + 1)) is refused" 1 cs new one-more interface "$HOST_IF" filter udp port 9
check_match "with the limit in its message" "session limit reached: $N sessions" "$ERR"
check "the daemon still answers" cs show s2
check "a stop makes room" cs stop s1
check "for a new session" cs new one-more interface "$HOST_IF" mode kernel filter udp port 9
check_eq "which counts on the kernel path" "kernel" "$(cs -j show one-more | "$PY" -c '
import json, sys; print(json.load(sys.stdin)["mode"])')"

# A start with a smaller -n holds the sessions over it in the state file;
# one with -n back at N restores them all.
daemon_stop
DAEMON_BUFFER_KB=1024 daemon_start -i "$HOST_IF" -n $((N - 96)) || exit 1
check_eq "$((N - 96)) restored under -n $((N - 96))" "$((N - 96))" \
    "$(cs -j list | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')"
check "the log says 96 are held" grep -q "96 sessions held until a start with a larger -n" \
    "$TDIR/daemon.log"
check_eq "the state file keeps all $N" "$N" "$(grep -c '^session' "$STATE")"
check_eq "and nothing is kept aside as damaged" "" "$(ls "$STATE".bad.* 2>/dev/null)"
daemon_stop
t0=$(now_ms)
DAEMON_BUFFER_KB=1024 daemon_start -i "$HOST_IF" -n "$N" || exit 1
k=0
while [ "$(running_kernel)" != "$N" ] && [ "$k" -lt 300 ]; do
	nap 0.1
	k=$((k + 1))
done
check_eq "all $N restored under -n $N, on the kernel path" "$N" "$(running_kernel)"
echo "  restored in $(($(now_ms) - t0)) ms"
daemon_stop
