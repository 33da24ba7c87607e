# tests/sys/dashboard.sh: contrib/dashboard in headless Chromium, driven
# over the DevTools protocol (a pipe, no port) by a small Python client,
# against a daemon counting traffic replayed on a veth pair. The page's
# numbers must move while the traffic flows, its rates fall back to 0 when
# it stops, and its totals then equal `capstats -j poll`. A screenshot is
# kept in the test's temp dir and copied to $B/dashboard.png for people.
# The server's /state, and the same with --capstats (libcapstats), agree
# with poll too.
# alone: it times the page's snapshots
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need chromium ip ethtool tcpreplay "$PY"

DASH=$TOP/contrib/dashboard
corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
scan=$corpus/ndpi-synscan.pcap		# 2011 packets, 116672 bytes, all TCP
[ -r "$scan" ] || die "dashboard: no $scan (set CAPSTATS_CORPUS)"
SESSIONS="all syn web udp"

# ---- the DevTools client: reads commands on stdin, answers one JSON line each
cat >"$TDIR/cdp.py" <<'EOF'
"""Drive Chromium over --remote-debugging-pipe: fd 3 takes commands,
fd 4 gives answers, each a JSON text ended by a NUL byte. Commands on
stdin, one JSON line answered for each but quit:
  open URL           load the page, wait for its first snapshot
  read               the page's numbers now
  sample N SECONDS   N reads, SECONDS apart, in one answer
  settle SECONDS     read until every rate is 0 (bounded), the last read
  shot FILE          a PNG screenshot
  quit"""
import base64, fcntl, json, os, subprocess, sys, threading, time

chrome, profile = sys.argv[1:3]
def high(fd):
    """FD moved to 10 or above, clear of the 3 and 4 the child needs."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new
to_chrome_r, to_chrome_w = map(high, os.pipe())
from_chrome_r, from_chrome_w = map(high, os.pipe())
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--user-data-dir=" + profile, "--remote-debugging-pipe",
         "--window-size=1280,900", "--hide-scrollbars", "about:blank"]
# Its own process group, so that every Chromium process ends with it.
proc = subprocess.Popen(
    ["bash", "-c", 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-'
     % (to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w), chrome] + flags,
    pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL, stderr=open(profile + ".log", "w"),
    start_new_session=True)
os.close(to_chrome_r)
os.close(from_chrome_w)

replies, events, cond = {}, [], threading.Condition()
def reader():
    buf = b""
    while True:
        chunk = os.read(from_chrome_r, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\0" in buf:
            msg, buf = buf.split(b"\0", 1)
            m = json.loads(msg)
            with cond:
                if "id" in m:
                    replies[m["id"]] = m
                else:
                    events.append(m)
                cond.notify_all()
    with cond:
        replies["eof"] = True
        cond.notify_all()
threading.Thread(target=reader, daemon=True).start()

next_id = 0
def call(method, session=None, timeout=15, **params):
    global next_id
    next_id += 1
    mid = next_id
    msg = {"id": mid, "method": method, "params": params}
    if session:
        msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
    end = time.monotonic() + timeout
    with cond:
        while mid not in replies:
            if "eof" in replies:
                raise RuntimeError("chromium went away during %s" % method)
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s: no answer in %d s" % (method, timeout))
            cond.wait(left)
        r = replies.pop(mid)
    if "error" in r:
        raise RuntimeError("%s: %s" % (method, r["error"]))
    return r["result"]

def evaluate(session, expr):
    r = call("Runtime.evaluate", session, expression=expr, returnByValue=True)
    if "exceptionDetails" in r:
        raise RuntimeError("page: %s" % r["exceptionDetails"].get("text"))
    return r["result"].get("value")

READ = """(() => {
  const out = {ready: document.body.dataset.ready === "1", now: Date.now(),
    status: document.getElementById("status").dataset.state,
    seq: +document.getElementById("seq").dataset.value,
    drops: +document.getElementById("drops-total").dataset.value,
    sessions: {}};
  for (const tr of document.querySelectorAll("#sessions tr[data-session]")) {
    const v = {};
    for (const td of tr.querySelectorAll("[data-field]"))
      v[td.dataset.field] = td.dataset.value;
    out.sessions[tr.dataset.session] = v;
  }
  return out;
})()"""

session = None
try:
    target = call("Target.createTarget", url="about:blank")["targetId"]
    session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    call("Emulation.setDeviceMetricsOverride", session, width=1280, height=900,
         deviceScaleFactor=1, mobile=False)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "open":
                call("Page.navigate", session, url=arg)
                end = time.monotonic() + 15
                while not evaluate(session, 'document.body && document.body.dataset.ready === "1"'):
                    if time.monotonic() > end:
                        raise RuntimeError("the page never showed a snapshot")
                    time.sleep(0.05)
                out = {"ok": True}
            elif cmd == "read":
                out = evaluate(session, READ)
            elif cmd == "sample":
                n, every = arg.split()
                out = []
                for i in range(int(n)):
                    if i:
                        time.sleep(float(every))
                    out.append(evaluate(session, READ))
            elif cmd == "settle":
                end = time.monotonic() + float(arg)
                while True:
                    out = evaluate(session, READ)
                    rates = [v.get("packets_per_s") for v in out["sessions"].values()]
                    if all(r == "0.000" for r in rates) or time.monotonic() > end:
                        break
                    time.sleep(0.1)
            elif cmd == "shot":
                png = base64.b64decode(call("Page.captureScreenshot", session, format="png")["data"])
                with open(arg, "wb") as f:
                    f.write(png)
                out = {"ok": True, "bytes": len(png)}
            elif cmd == "quit":
                break
            else:
                out = {"error": "unknown command %r" % cmd}
        except RuntimeError as e:
            out = {"error": str(e)}
        print(json.dumps(out), flush=True)
except RuntimeError as e:
    print(json.dumps({"error": str(e)}), flush=True)
finally:
    try:
        call("Browser.close", timeout=5)
    except RuntimeError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, 9)	# whatever is left of the group it started
    except ProcessLookupError:
        pass
    proc.wait()
EOF

# ---- the dashboard server



# start_dashboard VAR ARGS...: dashboard.py on a free loopback port, its
# pid tracked; sets VAR to its base URL. FAILs and returns 1 if it does
# not listen within 5 s.
start_dashboard() {
	local var=$1 pid url= log=$TDIR/dash.$RANDOM.err
	shift
	"$PY" "$DASH/dashboard.py" --listen 127.0.0.1:0 -m "$SHM" "$@" 2>"$log" &
	pid=$!
	bg_track "$pid"
	for _ in $(seq 100); do
		url=$(sed -n 's|^dashboard: listening on \(http://127\.0\.0\.1:[0-9]*/\)$|\1|p' "$log")
		[ -n "$url" ] && break
		pid_running "$pid" || break
		sleep 0.05
	done
	if [ -z "$url" ]; then
		fail "dashboard $*: not listening"
		indent <"$log"
		return 1
	fi
	printf -v "$var" '%s' "$url"
	printf -v "${var}_PID" '%s' "$pid"
}

# fetch URL: the body; status and content type in $TDIR/fetch.{status,type}
fetch() { http_get "$1" "$TDIR/fetch"; }

# polls: `capstats -j poll` of every session, as {name: {packets, bytes, drops}}
polls() {
	local s
	for s in $SESSIONS; do
		cs -j poll "$s" || return 1
	done | "$PY" -c '
import json, sys
print(json.dumps({d["session"]: {k: d[k] for k in ("packets", "bytes", "drops")}
                  for d in map(json.loads, sys.stdin)}, sort_keys=True))'
}

veth_up dash || exit 1
daemon_start -i "$HOST_IF" || exit 1
check "new all" cs new all filter
check "new syn" cs new syn filter 'tcp[tcpflags] & tcp-syn != 0'
check "new web" cs new web filter tcp port 80 or tcp port 443
check "new udp" cs new udp filter udp

start_dashboard URL || exit 1
page=$(fetch "$URL")
check_eq "GET /: 200" 200 "$(cat "$TDIR/fetch.status")"
check_match "GET /: HTML" "^text/html" "$(cat "$TDIR/fetch.type")"
check_match "the page has the charts" 'canvas id="chart-pps"' "$page"
check_eq "the page and its script load nothing from elsewhere" "" \
    "$(grep -hoE '(src|href)="[a-z]+:[^"]*"|https?://[^" ]*' "$DASH/index.html" "$DASH/dashboard.js")"
fetch "${URL}nothing" >/dev/null
check_eq "an unknown path: 404" 404 "$(cat "$TDIR/fetch.status")"
check_match "/state names the sessions" '"session":"syn"' "$(fetch "${URL}state")"

# ---- the page in Chromium

coproc DRV { exec "$PY" "$TDIR/cdp.py" chromium "$TDIR/profile" 2>"$TDIR/cdp.err"; }
# bash forgets DRV and DRV_PID once the coprocess ends: keep them
DRV_IN=${DRV[1]} DRV_OUT=${DRV[0]} DPID=$DRV_PID
bg_track "$DPID"
# drv COMMAND: send it, leave the one-line answer in $ANSWER (bounded wait)
drv() {
	ANSWER=
	printf '%s\n' "$1" >&"$DRV_IN" 2>/dev/null || return 1
	IFS= read -r -t 30 ANSWER <&"$DRV_OUT" || return 1
	case $ANSWER in
	'{"error"'*) return 1 ;;
	esac
}
# field SESSION FIELD: from the last "read" answer
field() { printf '%s' "$ANSWER" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["sessions"].get(sys.argv[1], {}).get(sys.argv[2]))' "$1" "$2"; }
# page_counts: the page's {name: {packets, bytes, drops}}, as polls prints it
page_counts() { printf '%s' "$ANSWER" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)["sessions"]
print(json.dumps({n: {k: int(v[k]) for k in ("packets", "bytes", "drops")}
                  for n, v in d.items()}, sort_keys=True))'; }

if ! drv "open $URL"; then
	fail "Chromium shows the page: $ANSWER"
	indent <"$TDIR/cdp.err"
	indent <"$TDIR/profile.log" | tail -20
	exit 1
fi
pass "Chromium shows the page"
drv read
check_eq "the page is live" live "$(printf '%s' "$ANSWER" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
check_eq "the page lists every session, at 0" "$(polls)" "$(page_counts)"

# Traffic for about 4 s; meanwhile the page is read every 0.25 s for 3 s.
# (In the background its FAIL lines go to a file, shown afterwards.)
replay "$scan" 500 >"$TDIR/replay.out" &
rpid=$!
if drv "sample 13 0.25"; then
	printf '%s' "$ANSWER" >"$TDIR/samples.json"
	# moves: reads where all's count grew; rated: reads with a rate over
	# 100/s; hz: snapshots the page took per second meanwhile
	read -r moves rated hz < <("$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
p = [int(r["sessions"]["all"]["packets"]) for r in s]
rate = [float(r["sessions"]["all"]["packets_per_s"] or 0) for r in s]
hz = (s[-1]["seq"] - s[0]["seq"]) * 1000 / (s[-1]["now"] - s[0]["now"])
print(sum(b > a for a, b in zip(p, p[1:])), sum(r > 100 for r in rate), round(hz))
' "$TDIR/samples.json")
	check_match "the page's packet count moves while traffic flows" "^([4-9]|1[0-2])$" "$moves"
	check_match "the page shows the rate while traffic flows" "^([3-9]|1[0-3])$" "$rated"
	check "the page takes about 10 snapshots a second ($hz)" test "$hz" -ge 6 -a "$hz" -le 12
else
	fail "reading the page during the traffic: $ANSWER"
fi
wait "$rpid"
check_eq "the replay succeeded" 0 "$?"
cat "$TDIR/replay.out"

# Once it stops, the rates fall to 0 and the totals equal poll's.
drv "settle 10" || fail "the page after the traffic: $ANSWER"
want=$(polls)
check_eq "after the traffic, the page's totals equal capstats -j poll" "$want" "$(page_counts)"
check_eq "after the traffic, the rate is 0" 0.000 "$(field all packets_per_s)"
check_eq "all counted the whole file (or reports drops for the rest)" 2011 \
    "$(( $(field all packets) + $(field all drops) ))"
check_eq "the page's drops are those of poll" \
    "$(printf '%s' "$want" | "$PY" -c 'import json,sys; print(sum(v["drops"] for v in json.load(sys.stdin).values()))')" \
    "$(printf '%s' "$ANSWER" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["drops"])')"

# A screenshot during the last traffic would look livelier; this one shows
# the minute's curves and the final totals.
if drv "shot $TDIR/dashboard.png"; then
	check_match "a screenshot is taken" '"bytes": [0-9]{5,}' "$ANSWER"
	check_eq "it is a PNG" "89504e470d0a1a0a" "$(head -c 8 "$TDIR/dashboard.png" | od -An -tx1 | tr -d ' \n')"
	case $B in
	/*) cp "$TDIR/dashboard.png" "$B/dashboard.png" ;;
	*) cp "$TDIR/dashboard.png" "$TOP/$B/dashboard.png" ;;
	esac
else
	fail "screenshot: $ANSWER"
fi
printf 'quit\n' >&"$DRV_IN"
exec {DRV_IN}>&-
bg_reap "$DPID" 20
check_eq "Chromium and its driver end cleanly" 0 "$REAPED"

# ---- /state, from the Python reader and from libcapstats, against poll

state_counts() { fetch "$1state" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(json.dumps({r["session"]: {k: r[k] for k in ("packets", "bytes", "drops")}
                  for r in d["sessions"]}, sort_keys=True))'; }
check_eq "/state equals capstats -j poll" "$want" "$(state_counts "$URL")"
if start_dashboard URL2 --capstats "$CAPSTATS"; then
	check_eq "/state with --capstats equals capstats -j poll" "$want" "$(state_counts "$URL2")"
	bg_stop "$URL2_PID"
fi

daemon_stop
check_match "no daemon: /state says so" '"ok":false,"error":"daemon not running \(no segment' "$(fetch "${URL}state")"
kill -TERM "$URL_PID"
bg_reap "$URL_PID" 5
check_eq "the dashboard exits 0 on SIGTERM" 0 "$REAPED"
