# tests/sys/deep.sh: filters that read past the bytes the libpcap path
# copies count every packet, from the first after `new` and after each
# `modify`, on both paths.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

N=60
# N Ethernet/IPv4/TCP frames to port 80 with 300 bytes of non-zero payload.
"$PY" - "$TDIR/deep.pcap" "$N" <<'EOF'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        payload = bytes((j % 255) + 1 for j in range(300))
        tcp = struct.pack("!HHIIBBHHH", 40000 + i, 80, i, 0, 5 << 4, 0x18, 8192, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, i, 0, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        frame = eth + ip + tcp + payload
        f.write(struct.pack("<IIII", 1, i, len(frame), len(frame)) + frame)
EOF

veth_up deep || exit 1
daemon_start -i "$HOST_IF" || exit 1
for m in kernel pcap; do
	check "new, $m path" cs new "$m" mode "$m" filter "tcp port 80 and tcp[200:1] != 0"
done
replay "$TDIR/deep.pcap" 2000
for m in kernel pcap; do
	wait_count "$m" "$N"
	check_eq "$m path: every packet from the first after new" "$N" \
	    "$(cs -j poll "$m" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["packets"])')"
	check "modify, $m path" cs modify "$m" "tcp port 80 and tcp[250:1] != 0"
done
replay "$TDIR/deep.pcap" 2000
for m in kernel pcap; do
	wait_count "$m" $((2 * N))
	check_eq "$m path: every packet from the first after modify" $((2 * N)) \
	    "$(cs -j poll "$m" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["packets"])')"
done
