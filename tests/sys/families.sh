# tests/sys/families.sh: sessions whose filters differ only in a constant
# share one program (a family) on the kernel path. Members come, move to
# another constant, keep their own, leave the family and go, each step
# exact: every frame is counted by the old filter or the new one.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool "$PY"
veth_up fam || exit 1
daemon_start -i "$HOST_IF" || exit 1

# send N DST...: N UDP frames from 10.9.0.1 to each 10.0.0.DST, in the namespace
send() {
	ip netns exec "$NETNS" "$PY" - "$PEER_IF" "$@" <<'PYEOF'
import socket, struct, sys
ifname, n, dsts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for d in dsts:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 4, 0, 0, 64, 17, 0,
                     socket.inet_aton("10.9.0.1"), socket.inet_aton("10.0.0." + d))
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 1, 2, 12, 0) + b"data"
    for _ in range(n):
        s.send(frame)
PYEOF
}
count() { poll_field "$1" packets; }
for i in 1 2 3 4; do
	check "new h$i" cs new "h$i" interface "$HOST_IF" mode kernel filter host 10.0.0.$i
done
send 10 1 2 3 4 5
check "h4 counts its 10" wait_count h4 10
check_eq "each member counts its own host" "10 10 10 10" \
    "$(count h1) $(count h2) $(count h3) $(count h4)"
check "modify h3 to its own filter" cs modify h3 host 10.0.0.3
check "modify h2 to another member's constant" cs modify h2 host 10.0.0.4
check "modify h4 out of the family" cs modify h4 udp and dst host 10.0.0.5
check "stop h1" cs stop h1
send 5 1 2 3 4 5
nap 0.2
check_eq "after the moves: h2 counts 10.0.0.4, h3 its own, h4 10.0.0.5" \
    "15 15 15" "$(count h2) $(count h3) $(count h4)"
check "new h5 with h2's constant" cs new h5 interface "$HOST_IF" mode kernel filter host 10.0.0.4
send 3 4
nap 0.2
check_eq "both members of one constant count" "18 3" "$(count h2) $(count h5)"
check_eq "every session counts in the kernel" "kernel kernel kernel kernel" \
    "$(for s in h2 h3 h4 h5; do cs -j show $s | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mode"])'; done | tr '\n' ' ' | sed 's/ $//')"
