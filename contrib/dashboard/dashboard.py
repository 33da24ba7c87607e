#!/usr/bin/env python3
"""dashboard.py: a live web page of every capstats session's counters.

    dashboard.py [--listen HOST:PORT] [-m SHMNAME] [--capstats PATH]

Serves index.html and dashboard.js from its own directory, a snapshot of
every running (or failed) session at /state (JSON), and the same snapshot
ten times a second as Server-Sent Events at /events. The page draws packets
and bytes per second from consecutive snapshots; the server only reads.

Counters come from the segment, read in this process with
contrib/python/capstats_shm.py, lock-free and without a word to the daemon.
With --capstats PATH they come from `PATH metrics` instead, which reads the
segment through libcapstats: exact on every CPU, where the Python reader is
exact on x86-64 only (see capstats_shm.py). Either way it needs read access
to the segment and nothing else.

It listens on 127.0.0.1:9478 unless told otherwise; port 0 picks a free
port, and the address is printed on stderr. Standard library only.

It has no authentication: anyone who can reach the port reads every
session's name, interface, filter and counters. It answers only requests
whose Host names the address it listens on (421 otherwise; on loopback
localhost, 127.0.0.1 and [::1] too), and refuses a request whose Origin is
another site (403), so that a web page cannot read it through a browser by
DNS rebinding. Keep it on loopback: to show it beyond this host, put a
reverse proxy with authentication in front, which passes the upstream
address as Host (nginx's default).
"""

import argparse
import http.server
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import capstats_shm  # noqa: E402  (found through the path above)

PERIOD = 0.1                # seconds between snapshots: 10 Hz
STATES = capstats_shm.STATES
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
}
# The page loads nothing from elsewhere, and the browser is told so.
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'")


class ShmSource:
    """Snapshots read from the segment with capstats_shm."""

    def __init__(self, shm):
        self.shm = shm
        self.seg = None

    def read(self):
        # A mapping whose daemon left is dropped and the name opened again
        # at once: a restarted daemon is picked up, a gone one reported as
        # such (no segment) rather than as the old one's closing. A daemon
        # whose heartbeat stopped keeps its mapping: it may only be slow,
        # and check() still sees it restart or stop.
        for attempt in (1, 2):
            if self.seg is None:
                self.seg = capstats_shm.Segment(self.shm)
            try:
                self.seg.check()
                break
            except capstats_shm.Stale:
                raise
            except capstats_shm.ShmError:
                self.seg.close()
                self.seg = None
                if attempt == 2:
                    raise
        try:
            return "%016x" % self.seg.h["instance_id"], self.rows()
        except capstats_shm.ShmError:
            self.seg.close()
            self.seg = None
            raise

    def rows(self):
        rows = []
        for m in self.seg.sessions():
            c = self.seg.counters(m["slot"], m["session_id"])
            # Counters that already say STOPPED: the session is ending.
            if c is None or c["state"] == capstats_shm.STOPPED:
                continue
            # The state shown is that of the counters; the error text goes
            # with it only when they say ERROR too.
            error = m["error"] if c["state"] == capstats_shm.ERROR else b""
            rows.append({
                "session": m["name"].decode("ascii", "replace"),
                "interface": m["iface"].decode("ascii", "replace"),
                "filter": m["filter"].decode("ascii", "replace"),
                "state": STATES[c["state"]],
                "error": error.decode("ascii", "replace"),
                "packets": c["packets"], "bytes": c["bytes"],
                "drops": c["drops"], "if_drops": c["if_drops"],
            })
        return rows


class MetricsSource:
    """Snapshots parsed from `capstats metrics`, which uses libcapstats."""

    SAMPLE = re.compile(r'^capstats_(packets|bytes|drops|if_drops)_total'
                        r'\{session="([^"]*)",interface="((?:[^"\\]|\\.)*)"\} (\d+)$'
                        r'|^capstats_up\{session="([^"]*)",'
                        r'interface="((?:[^"\\]|\\.)*)"\} (\d+)$')

    def __init__(self, binary, shm):
        self.argv = [binary] + (["-m", shm] if shm else []) + ["metrics"]

    def read(self):
        try:
            run = subprocess.run(self.argv, stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise capstats_shm.ShmError("%s: %s" % (self.argv[0], e))
        if run.returncode != 0:
            raise capstats_shm.ShmError(
                run.stderr.decode("ascii", "replace").strip()
                .replace("capstats: ", "", 1) or "capstats metrics failed")
        rows = {}
        for line in run.stdout.decode("ascii", "replace").splitlines():
            m = self.SAMPLE.match(line)
            if not m:
                continue
            if m.group(1):
                name, iface, key, value = m.group(2), m.group(3), m.group(1), m.group(4)
            else:
                name, iface, key, value = m.group(5), m.group(6), "up", m.group(7)
            row = rows.setdefault(name, {
                "session": name, "filter": "", "error": "",
                "interface": re.sub(r"\\(.)", r"\1", iface)})
            if key == "up":
                row["state"] = "running" if value == "1" else "error"
            else:
                row[key] = int(value)
        # metrics does not name the daemon's instance.
        return None, list(rows.values())


class Sampler:
    """The latest snapshot, read at most once a PERIOD whatever the number
    of pages watching, as the JSON text every client is sent."""

    def __init__(self, source):
        self.source = source
        self.lock = threading.Lock()
        self.when = 0.0
        self.text = None

    def snapshot(self):
        with self.lock:
            now = time.monotonic()
            if self.text is None or now - self.when >= PERIOD * 0.9:
                self.text = json.dumps(self.take(now), separators=(",", ":"))
                self.when = now
            return self.text

    def take(self, now):
        try:
            instance, rows = self.source.read()
        except capstats_shm.Stale as e:
            return {"t": now, "ok": False, "stale": True, "sessions": [],
                    "error": "daemon not responding (%s)" % e}
        except capstats_shm.ShmError as e:
            return {"t": now, "ok": False, "error": str(e), "sessions": []}
        return {"t": now, "ok": True, "instance": instance, "sessions": rows}


class HostGuard:
    """Which Host and Origin a request may name: only this server's own
    address, so that a web page whose name was rebound to 127.0.0.1 (DNS
    rebinding) cannot read the counters through a visitor's browser.
    Accepted, with the port listened on: the literal listen address; on
    loopback also localhost, 127.0.0.1 and [::1]; on a wildcard address
    (0.0.0.0, ::) any IP address, since no page can rebind a name to those.
    capstats_exporter.py has the same rule."""

    AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::([0-9]{1,5}))?")

    def __init__(self, listen_host, bound):
        self.port = bound[1]
        self.names = {listen_host.lower(), bound[0].lower()}
        ip = ipaddress.ip_address(bound[0])
        self.any_ip = ip.is_unspecified
        if ip.is_loopback:
            self.names |= {"localhost", "127.0.0.1", "::1"}

    def host_ok(self, text):
        """TEXT, a Host header (name[:port]), names this server."""
        m = self.AUTHORITY.fullmatch(text.strip().lower())
        if not m:
            return False
        name = m.group(1).strip("[]")
        if (int(m.group(2)) if m.group(2) else 80) != self.port:
            return False
        if name in self.names:
            return True
        try:
            return self.any_ip and bool(ipaddress.ip_address(name))
        except ValueError:
            return False

    def origin_ok(self, text):
        """TEXT, an Origin header, is a page served from this server."""
        scheme, sep, rest = text.strip().partition("://")
        return bool(sep) and scheme.lower() == "http" and self.host_ok(rest)

    def refusal(self, headers):
        """None for a request to this server, else (status, why)."""
        hosts = headers.get_all("Host") or []
        if len(hosts) != 1 or not self.host_ok(hosts[0]):
            return 421, "Host %r is not this server\n" % (
                hosts[0] if len(hosts) == 1 else hosts)
        origins = headers.get_all("Origin") or []
        if len(origins) > 1 or (origins and not self.origin_ok(origins[0])):
            return 403, "a page from %r may not read this server\n" % (
                origins[0] if len(origins) == 1 else origins)
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "capstats-dashboard"
    sampler = None          # set by main
    guard = None            # a HostGuard, set by main

    def do_GET(self):
        refused = self.guard.refusal(self.headers)
        if refused is not None:
            self.reply(refused[0], "text/plain; charset=utf-8",
                       refused[1].encode("ascii", "replace"))
            return
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            name, ctype = STATIC[path]
            try:
                with open(os.path.join(HERE, name), "rb") as f:
                    body = f.read()
            except OSError:
                self.reply(500, "text/plain", b"missing %s\n" % name.encode())
                return
            self.reply(200, ctype, body)
        elif path == "/state":
            self.reply(200, "application/json",
                       self.sampler.snapshot().encode() + b"\n")
        elif path == "/events":
            self.events()
        else:
            self.reply(404, "text/plain", b"not found\n")

    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def events(self):
        """A snapshot every PERIOD until the page goes away."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.close_connection = True
        due = time.monotonic()
        try:
            while True:
                self.wfile.write(b"data: " + self.sampler.snapshot().encode()
                                 + b"\n\n")
                self.wfile.flush()
                due += PERIOD
                time.sleep(max(0.0, due - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, fmt, *args):
        # Every request of a 10 Hz page is not news; errors still show.
        pass

    def log_error(self, fmt, *args):
        super().log_message(fmt, *args)


def parse_listen(text):
    """HOST:PORT, [V6HOST]:PORT or :PORT as (family, host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            "%r: give HOST:PORT, e.g. 127.0.0.1:9478" % text)
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="dashboard.py",
        description="A live web page of the capstats counters.",
        epilog="There is no authentication: keep it on loopback, and put a "
        "reverse proxy with authentication in front to show it elsewhere "
        "(it must pass the upstream address as Host). Requests whose Host "
        "is not the listen address (or localhost, 127.0.0.1, [::1] on "
        "loopback) get 421; those from a page of another origin, 403.")
    ap.add_argument("--listen", type=parse_listen,
                    default=parse_listen("127.0.0.1:9478"), metavar="HOST:PORT",
                    help="address to listen on (default 127.0.0.1:9478)")
    ap.add_argument("-m", dest="shm", metavar="SHMNAME",
                    help="the segment (default $CAPSTATS_SHM, or capstats)")
    ap.add_argument("--capstats", metavar="PATH",
                    help="read through `PATH metrics` (libcapstats) instead "
                    "of in Python")
    args = ap.parse_args(argv)

    if args.capstats:
        if not os.access(args.capstats, os.X_OK):
            ap.error("--capstats %s: not an executable" % args.capstats)
        source = MetricsSource(args.capstats, args.shm)
    else:
        source = ShmSource(args.shm)
    Handler.sampler = Sampler(source)

    family, host, port = args.listen
    http.server.ThreadingHTTPServer.address_family = family
    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        print("dashboard: listen %s:%d: %s" % (host, port, e.strerror),
              file=sys.stderr)
        return 1
    # Pages hold /events open; they must not keep the server from exiting.
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound = server.server_address
    Handler.guard = HostGuard(host, bound)
    shown = "[%s]" % bound[0] if family == socket.AF_INET6 else bound[0]
    print("dashboard: listening on http://%s:%d/" % (shown, bound[1]),
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
