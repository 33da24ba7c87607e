# tests/sys/hostile.sh: bad bytes on the control socket. Every kind gets a
# clear error or a closed connection, and the daemon answers the next
# client at once with its sessions intact.
# alone: it times the answers to the next client
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need python3

daemon_start -i lo || exit 1
check "a session to keep" cs new keep interface lo filter udp

# raw REQUEST-BYTES: send bytes (a python literal) and print what comes back
raw() {
	"$PY" - "$SOCK" "$1" "${2:-2}" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(float(sys.argv[3]))
s.connect(sys.argv[1])
data = eval(sys.argv[2])
try:
    s.sendall(data)
except OSError as e:
    print("send failed:", e)
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except socket.timeout:
    pass
sys.stdout.write(out.decode("ascii", "replace"))
PY
}

# alive: the daemon still serves a normal client, with the session intact
alive() {
	local out
	out=$(cs -j list 2>&1)
	if daemon_alive && [[ $out == *'"session": "keep"'* ]]; then
		pass "daemon serves the next client after $1"
	else
		fail "daemon serves the next client after $1: $out"
	fi
}

expect_error() {	# what bytes code
	local out
	out=$(raw "$2" 1)
	check_match "$1 gets error $3" "error	$3	" "$out"
	alive "$1"
}

expect_error "unknown command" "b'frobnicate\n'" badreq
expect_error "missing argument" "b'stop\n'" badreq
expect_error "extra argument" "b'show keep extra\n'" badreq
expect_error "empty line" "b'\n'" badreq
expect_error "NUL byte" "b'list\x00\n'" badreq
expect_error "invalid UTF-8" "b'new x filter \xc3\x28\n'" badreq
expect_error "binary garbage" "bytes(range(256)) + b'\n'" badreq
expect_error "line over the limit" "b'x' * 5000 + b'\n'" toolong
expect_error "filter over the limit" "b'new big filter ' + b'tcp or ' * 400 + b'tcp\n'" toolong
expect_error "empty name" "b'show \n'" badname
expect_error "name too long" "b'show ' + b'a' * 64 + b'\n'" badname
expect_error "name with bad characters" "b'show a/b\n'" badname
expect_error "unknown name for show" "b'show nosuch\n'" nosession
expect_error "unknown name for modify" "b'modify nosuch tcp\n'" nosession
expect_error "unknown name for stop" "b'stop nosuch\n'" nosession
expect_error "existing name for new" "b'new keep filter tcp\n'" exists

# A filter libpcap takes seconds to compile is refused at a deadline.
slow=$(cat "$TOP/tests/fuzz/slow/slow-filter-portrange")
t0=$(now_ms)
check_fails "a filter too slow to compile is refused" 1 cs new slow interface lo filter "$slow"
check_match "... saying so" "takes more than [0-9]+ ms to compile" "$ERR"
check "... within a second and a half" test $(($(now_ms) - t0)) -lt 1500
alive "a filter too slow to compile"

out=$(raw "b'list\nshow keep\nlist\n'" 1)
check_eq "many requests in one write get one reply each" 3 \
    "$(printf '%s\n' "$out" | grep -c '^ok$')"

out=$("$PY" - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
for c in b"show keep\n":
    s.send(bytes([c]))
    time.sleep(0.01)
out = b""
while not out.endswith(b"ok\n"):
    b = s.recv(4096)
    if not b:
        break
    out += b
print(out.decode())
PY
)
check_match "a request split into one-byte writes" "session=keep" "$out"
alive "one-byte writes"

# a client that says nothing does not hold up others, and is dropped
"$PY" -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(12)
" "$SOCK" &
silent=$!
bg_track "$silent"
sleep 0.2
t0=$(now_ms)
check "a silent client does not block others" cs list
check "... and the answer is immediate" test $(($(now_ms) - t0)) -lt 1000
bg_stop "$silent"

raw "b'show ke'" 0.1 >/dev/null
alive "a client that hangs up mid-request"

for i in $(seq 1 200); do
	echo "new s$i interface lo filter udp port $i"
done | "$PY" -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += b.count(b'\nok\n')
print(n)
" "$SOCK" >"$TDIR/many.out"
check_eq "200 sessions created through one connection" 200 "$(cs -j list | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)) - 1)')"
"$PY" - "$SOCK" <<'PY'
import socket, sys
# ask for a long reply many times, read nothing, hang up
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"list\n" * 200)
s.close()
PY
alive "a client that hangs up mid-reply"

# 1000 clients at once
"$PY" - "$SOCK" >"$TDIR/thousand.out" <<'PY'
import socket, sys, selectors
sel = selectors.DefaultSelector()
socks = []
for i in range(1000):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        pass
    socks.append(s)
done = ok = 0
bufs = {}
import time
deadline = time.time() + 30
pending = list(socks)
for s in pending:
    try:
        s.send(b"show keep\n")
    except OSError:
        pass
    sel.register(s, selectors.EVENT_READ)
while sel.get_map() and time.time() < deadline:
    for key, _ in sel.select(1):
        s = key.fileobj
        try:
            b = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            b = b""
        bufs[s] = bufs.get(s, b"") + b
        if not b or bufs[s].endswith(b"ok\n"):
            sel.unregister(s)
            s.close()
            if bufs[s].endswith(b"ok\n"):
                ok += 1
print(ok)
PY
check_eq "1000 clients at once all get their answer" 1000 "$(cat "$TDIR/thousand.out")"
alive "1000 clients"
