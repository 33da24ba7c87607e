# tests/sys/readers.sh: the readers of the segment other than poll: metrics
# steps past a slot it cannot read; watch skips the ticks it missed while
# stopped and stays attached to a daemon that only stalls; the Python
# reader and the dashboard judge the heartbeat by the rule of capstats.h;
# the dashboard and the exporter answer only requests that name their own
# address (DNS rebinding); the documents state the rule the code follows.
# alone: it times readers against the daemon's ticks
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need "$PY"

PYREAD=$TOP/contrib/python/capstats_shm.py
DASH=$TOP/contrib/dashboard/dashboard.py
EXPORTER=$TOP/contrib/prometheus/capstats_exporter.py
FAKE=$SHM-fake		# a segment this test writes itself

# The daemon is never left stopped, and the fake segment never left behind.
readers_cleanup() {
	local rc=$?
	[ -z "$T_DPID" ] || kill -CONT "$T_DPID" 2>/dev/null
	rm -f "/dev/shm/$FAKE" "/dev/shm/.$FAKE.tmp"
	(exit "$rc")
	cleanup
}
trap readers_cleanup EXIT

daemon_start -i lo || exit 1
check "new web (slot 0)" cs new web interface lo filter udp port 9
check "new dns (slot 1)" cs new dns interface lo filter udp port 53
check "new ntp (slot 2)" cs new ntp interface lo filter udp port 123
wait_state ntp running || fail "ntp is not running"

# ---- metrics steps past the slots it cannot read

# A copy of the live segment, written back as $FAKE with slot 0 stuck in
# the middle of a write (odd meta seq) and slot 1's name unterminated; a
# heartbeat keeps it alive until SIGTERM.
cp "/dev/shm/$SHM" "$TDIR/segment" || die "cannot copy the segment"
"$PY" - "$TDIR/segment" "$FAKE" 2>"$TDIR/fake.err" <<'EOF' &
import mmap, os, signal, struct, sys, time
img = bytearray(open(sys.argv[1], "rb").read())
path, tmp = "/dev/shm/" + sys.argv[2], "/dev/shm/." + sys.argv[2] + ".tmp"
(slots, cstride, coff, mstride, _, moff) = struct.unpack_from("=IIQIIQ", img, 64)
hw = struct.unpack_from("=I", img, 200)[0]
for i in range(min(hw, slots)):		# the copy may have caught a write
    for off in (coff + i * cstride, moff + i * mstride):
        struct.pack_into("=Q", img, off, struct.unpack_from("=Q", img, off)[0] & ~1)
struct.pack_into("=Q", img, moff, struct.unpack_from("=Q", img, moff)[0] | 1)
img[moff + mstride + 64:moff + mstride + 128] = b"A" * 64
fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
os.write(fd, img)
os.rename(tmp, path)
mm = mmap.mmap(fd, len(img))
def bye(*_):
    os.unlink(path)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
beats = struct.unpack_from("=Q", mm, 144)[0]
while True:
    beats += 1
    struct.pack_into("=QQ", mm, 136, time.monotonic_ns(), beats)
    time.sleep(0.02)
EOF
fpid=$!
bg_track "$fpid"
for _ in $(seq 100); do
	[ -e "/dev/shm/$FAKE" ] && break
	pid_running "$fpid" || break
	nap 0.05
done
[ -e "/dev/shm/$FAKE" ] || { fail "cannot write the fake segment"; indent <"$TDIR/fake.err"; exit 1; }
check_fails "metrics of a segment with unreadable slots exits 0" 0 \
    "$CAPSTATS" -m "$FAKE" metrics
check_match "metrics steps past them to the session of slot 2" \
    'capstats_packets_total\{session="ntp",interface="lo"\} 0' "$OUT"
check_eq "... and shows only that one" 1 "$(grep -c '^capstats_up{' <<<"$OUT")"
check_match "... naming the slot stuck in a write on stderr" "slot 0: no stable read" "$ERR"
check_match "... and the malformed one" "slot 1: malformed description" "$ERR"
check_match "the Python reader lists slot 2 too" '"session": "ntp"' \
    "$("$PY" "$PYREAD" -m "$FAKE" list)"
bg_stop "$fpid"
check "the fake segment is gone" test ! -e "/dev/shm/$FAKE"

# ---- the heartbeat rule: 3 intervals, never less than 1 s

check_eq "capstats.h and capstats_shm.py state the same rule" \
    "$(sed -n 's/^#define CAPSTATS_STALE_\(BEATS\|MIN_NS\)[[:space:]]*\([0-9]*\).*/\1 \2/p' "$TOP/shm/capstats.h")" \
    "$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import capstats_shm as c
print("BEATS", c.STALE_BEATS); print("MIN_NS", c.STALE_MIN_NS)' "$TOP/contrib/python")"
for doc in "$TOP/shm/ABI.md" "$TOP/shm/capstats-shm.7"; do
	check "${doc##*/} names the rule" grep -q "CAPSTATS_STALE_MIN_NS" "$doc"
done

# ---- the state words: the library's, the Python reader's, the documents'

# lib_states: capstats_state_name() of the built library for 0, 1, ...
# until it says "unknown"
lib_states() {
	"$PY" - "$TOP/libcapstats.so.1" <<'EOF'
import ctypes, sys
name = ctypes.CDLL(sys.argv[1]).capstats_state_name
name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_uint]
words = []
while len(words) < 64 and name(len(words)) != b"unknown":
    words.append(name(len(words)).decode())
print(" ".join(words))
EOF
}
states=$(lib_states)
check_match "libcapstats names the states" "^free running " "$states"
check_eq "capstats_shm.py's STATES are libcapstats' words" "$states" \
    "$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import capstats_shm as c
print(" ".join(c.STATES))' "$TOP/contrib/python")"
# doc_states FILE: the names of the states its table (ABI.md) or sentence
# (the man page) lists, in lower case, when their values are 0, 1, ...
doc_states() {
	"$PY" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
if sys.argv[1].endswith(".md"):
    part = text[text.index("Session states"):]
    pairs = re.findall(r"^\| (\d+) \| ([A-Z]+) \|", part.split("\n\n")[1], re.M)
else:
    part = text[text.index("Session states:"):]
    pairs = re.findall(r"\b(\d+) ([A-Z]+)\b", part[:part.index(".\n")])
if [int(v) for v, n in pairs] != list(range(len(pairs))):
    print("values out of order:", pairs)
else:
    print(" ".join(n.lower() for v, n in pairs))
EOF
}
for doc in "$TOP/shm/ABI.md" "$TOP/shm/capstats-shm.7"; do
	check_eq "${doc##*/} lists libcapstats' states, in order" "$states" "$(doc_states "$doc")"
	check "${doc##*/} names capstats_state_name" grep -q "capstats_state_name" "$doc"
done

# start_http VAR LOG PROGRAM ARGS...: a server on 127.0.0.1:0, tracked;
# VAR is set to its port. FAILs and returns 1 if it does not listen.
start_http() {
	local var=$1 log=$2 pid port=
	shift 2
	"$PY" "$@" --listen 127.0.0.1:0 -m "$SHM" 2>"$log" &
	pid=$!
	bg_track "$pid"
	for _ in $(seq 100); do
		port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log")
		[ -n "$port" ] && break
		pid_running "$pid" || break
		nap 0.05
	done
	if [ -z "$port" ]; then
		fail "${2##*/}: not listening"
		indent <"$log"
		return 1
	fi
	printf -v "$var" '%s' "$port"
}
start_http DPORT "$TDIR/dash.err" "$DASH" || exit 1
start_http XPORT "$TDIR/exporter.err" "$EXPORTER" --capstats "$CAPSTATS" || exit 1

# req PORT PATH [HEADER: VALUE]...: the status, then the body's first line,
# of a GET to 127.0.0.1:PORT with exactly these headers (Host included)
req() {
	"$PY" - "$@" <<'EOF'
import http.client, sys
port, path, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
for h in headers:
    k, v = h.split(": ", 1)
    c.putheader(k, v)
c.endheaders()
r = c.getresponse()
print(r.status, r.fp.readline().decode("ascii", "replace").strip())
EOF
}
state_of() { req "$DPORT" /state "Host: 127.0.0.1:$DPORT"; }

# A daemon stopped for 0.3 s (6 beats) is slow, not gone. One process asks
# the Python reader and the dashboard, and says how old the heartbeat was:
# on a loaded host it may pass 1 s before they answer, then try again.
stall_probe() {
	"$PY" - "$TOP/contrib/python" "$SHM" "$DPORT" <<'EOF'
import http.client, sys, time
sys.path.insert(0, sys.argv[1])
import capstats_shm
seg = capstats_shm.Segment(sys.argv[2])
try:
    seg.check()
    reader = "alive"
except capstats_shm.ShmError as e:
    reader = "refused (%s)" % e
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[3]), timeout=10)
c.request("GET", "/state")
dash = c.getresponse().read().decode()[:80]
age = (time.monotonic_ns() - seg.q[capstats_shm.Q_HEARTBEAT_NS]) // 1000000
print(age, reader, dash)
EOF
}
for _ in 1 2 3; do
	kill -STOP "$T_DPID"
	nap 0.3
	probe=$(stall_probe 2>&1)
	kill -CONT "$T_DPID"
	[ "${probe%% *}" -lt 900 ] 2>/dev/null && break
	nap 0.3
done
check_match "the heartbeat was 0.15 to 0.9 s old ($probe)" "^(1[5-9]|[2-8][0-9])[0-9] " "$probe"
check_match "the Python reader waits 1 s for a heartbeat" "^[0-9]+ alive " "$probe"
check_match "... and so does the dashboard" '^[0-9]+ alive \{"t":[0-9.]+,"ok":true' "$probe"

# ---- a daemon that stalls longer: readers say so and stay attached

"$CAPSTATS" -s "$SOCK" -m "$SHM" watch web frequency 0.1 >"$TDIR/w.out" 2>"$TDIR/w.err" &
wpid=$!
bg_track "$wpid"
nap 0.5
instance=$(cs -j poll web | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["instance"])')
kill -STOP "$T_DPID"
nap 1.6
check_fails "past 1 s the Python reader says the daemon is not responding" 1 \
    "$PY" "$PYREAD" -m "$SHM" poll web
check_match "... saying so" "daemon not responding \(no heartbeat for [0-9]+ ms\)" "$ERR"
check_match "the dashboard says so too" '"ok":false,"stale":true,.*not responding' "$(state_of)"
lines=$(wc -l <"$TDIR/w.out")
nap 0.3
check_eq "watch prints nothing meanwhile" "$lines" "$(wc -l <"$TDIR/w.out")"
kill -CONT "$T_DPID"
nap 0.6
check_match "the dashboard takes it back, same instance" "\"ok\":true,\"instance\":\"$instance\"" "$(state_of)"
check "watch prints again" test "$(wc -l <"$TDIR/w.out")" -gt "$lines"
check "watch is still running" pid_running "$wpid"
bg_stop "$wpid"
check_eq "watch said once that the daemon was not responding" 1 \
    "$(grep -c 'daemon not responding (no heartbeat for' "$TDIR/w.err")"
check_eq "... then that it was back" 1 "$(grep -c 'daemon responding again' "$TDIR/w.err")"
check_eq "... and never that it restarted or was waited for" 0 \
    "$(grep -Ec 'restarted|waiting' "$TDIR/w.err")"
[ "$T_NFAIL" -eq 0 ] || indent <"$TDIR/w.err"

# ---- watch stopped for a while skips the ticks it missed

# Each line is stamped on arrival with CLOCK_MONOTONIC: a burst arrives at
# one moment, and the wall clock the lines print may be stepped meanwhile.
mkfifo "$TDIR/lines"
"$PY" -c '
import sys, time
for line in iter(sys.stdin.buffer.readline, b""):
    print(time.monotonic_ns(), flush=True)' <"$TDIR/lines" >"$TDIR/stamps" &
spid=$!
bg_track "$spid"
"$CAPSTATS" -s "$SOCK" -m "$SHM" -j watch web frequency 0.2 >"$TDIR/lines" 2>"$TDIR/j.err" &
wpid=$!
bg_track "$wpid"
nap 0.7
kill -STOP "$wpid"
nap 1.3
kill -CONT "$wpid"
nap 0.9
bg_stop "$wpid"
bg_reap "$spid" 5
# gaps: the spacing of the lines, in periods; a burst would put several at 0
gaps=$("$PY" -c '
import sys
t = [int(x) / 1e9 for x in open(sys.argv[1])]
print(" ".join("%.2f" % ((b - a) / 0.2) for a, b in zip(t, t[1:])))' "$TDIR/stamps")
check_match "watch printed across the stop" "^([0-9.]+ ){5,}" "$gaps "
check_match "... one gap of the time it was stopped" " ([5-9]|1[0-9])\.[0-9]+ " " $gaps "
check "... and no burst: lines at least a quarter period apart ($gaps)" \
    "$PY" -c 'import sys; sys.exit(min(map(float, sys.argv[1:])) < 0.25)' $gaps

# ---- the dashboard and the exporter answer their own address only

check_match "dashboard: Host 127.0.0.1:PORT is served" "^200 " "$(req "$DPORT" /state "Host: 127.0.0.1:$DPORT")"
check_match "dashboard: Host localhost:PORT is served" "^200 " "$(req "$DPORT" /state "Host: localhost:$DPORT")"
check_match "dashboard: Host [::1]:PORT is served" "^200 " "$(req "$DPORT" /state "Host: [::1]:$DPORT")"
check_match "dashboard: a foreign Host gets 421" "^421 " "$(req "$DPORT" /state "Host: evil.example:$DPORT")"
check_match "dashboard: ... on the page too" "^421 " "$(req "$DPORT" / "Host: evil.example:$DPORT")"
check_match "dashboard: ... and the event stream" "^421 " "$(req "$DPORT" /events "Host: evil.example:$DPORT")"
check_match "dashboard: a foreign Host without port gets 421" "^421 " "$(req "$DPORT" /state "Host: evil.example")"
check_match "dashboard: another port gets 421" "^421 " "$(req "$DPORT" /state "Host: 127.0.0.1:1")"
check_match "dashboard: no Host gets 421" "^421 " "$(req "$DPORT" /state)"
check_match "dashboard: two Hosts get 421" "^421 " \
    "$(req "$DPORT" /state "Host: 127.0.0.1:$DPORT" "Host: evil.example:$DPORT")"
check_match "dashboard: events from its own page are served" "^200 data: \{" \
    "$(req "$DPORT" /events "Host: 127.0.0.1:$DPORT" "Origin: http://127.0.0.1:$DPORT")"
check_match "dashboard: events for a foreign Origin get 403" "^403 " \
    "$(req "$DPORT" /events "Host: 127.0.0.1:$DPORT" "Origin: http://evil.example:$DPORT")"
check_match "dashboard: ... and for Origin null" "^403 " \
    "$(req "$DPORT" /events "Host: 127.0.0.1:$DPORT" "Origin: null")"
check_match "dashboard: ... and for https on another port" "^403 " \
    "$(req "$DPORT" /events "Host: 127.0.0.1:$DPORT" "Origin: https://127.0.0.1")"
check_match "exporter: Host 127.0.0.1:PORT is served" "^200 # HELP" "$(req "$XPORT" /metrics "Host: 127.0.0.1:$XPORT")"
check_match "exporter: Host localhost:PORT is served" "^200 # HELP" "$(req "$XPORT" /metrics "Host: localhost:$XPORT")"
check_match "exporter: a foreign Host gets 421" "^421 " "$(req "$XPORT" /metrics "Host: evil.example:$XPORT")"
check_match "exporter: no Host gets 421" "^421 " "$(req "$XPORT" /metrics)"
check_match "exporter: a foreign Origin gets 403" "^403 " \
    "$(req "$XPORT" /metrics "Host: 127.0.0.1:$XPORT" "Origin: http://evil.example:$XPORT")"
for prog in "$DASH" "$EXPORTER"; do
	check_match "${prog##*/} --help says it needs a proxy with authentication" \
	    "reverse proxy with authentication" "$("$PY" "$prog" --help | tr -s ' \n' '  ')"
done
