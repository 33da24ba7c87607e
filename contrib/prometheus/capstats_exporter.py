#!/usr/bin/env python3
"""capstats_exporter.py: serve `capstats metrics` over HTTP for Prometheus.

Every scrape of /metrics runs `capstats -m SHMNAME metrics`, which reads
the counter segment (never the daemon's socket), and returns its output
unchanged: the metrics are the ones capstats(8) documents. When capstats
fails (no daemon, a stale segment) the scrape fails with status 503 and
capstats' message, so Prometheus marks the target down and shows why.

    capstats_exporter.py [--listen HOST:PORT] [--capstats PATH] [-m SHMNAME]

It listens on 127.0.0.1:9477 unless told otherwise: port 0 picks a free
port, and the address it listens on is printed on stderr. It needs no
privilege beyond reading the segment (root, or the daemon's -g group).
Standard library only.

It has no authentication: anyone who can reach the port reads every
session's name, interface and counters. It answers only requests whose
Host names the address it listens on (421 otherwise; on loopback
localhost, 127.0.0.1 and [::1] too), and refuses a request whose Origin is
another site (403), so that a web page cannot read it through a browser by
DNS rebinding. Keep it on loopback: to scrape it from another host, put a
reverse proxy with authentication (TLS and basic auth, which Prometheus
speaks) in front, which passes the upstream address as Host (nginx's
default).
"""

import argparse
import http.server
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# sbin is where `make install` puts capstats, and often not on a user's
# PATH; it comes first because Debian's unrelated capstats is in /usr/bin.
SEARCH_PATH = os.pathsep.join(
    filter(None, ("/usr/local/sbin", "/usr/sbin", os.environ.get("PATH"))))


def parse_listen(text):
    """HOST:PORT, [V6HOST]:PORT or :PORT as (family, host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            "%r: give HOST:PORT, e.g. 127.0.0.1:9477" % text)
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, int(port)


class HostGuard:
    """Which Host and Origin a request may name: only this server's own
    address, so that a web page whose name was rebound to 127.0.0.1 (DNS
    rebinding) cannot read the counters through a visitor's browser.
    Accepted, with the port listened on: the literal listen address; on
    loopback also localhost, 127.0.0.1 and [::1]; on a wildcard address
    (0.0.0.0, ::) any IP address, since no page can rebind a name to those.
    dashboard.py has the same rule."""

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
    """GET /metrics runs capstats; / says where the metrics are."""

    server_version = "capstats_exporter"
    command_line = None     # set by main: the capstats call, as a list
    timeout_s = 5.0
    verbose = False
    guard = None            # a HostGuard, set by main

    def do_GET(self):
        refused = self.guard.refusal(self.headers)
        if refused is not None:
            self.reply(refused[0], "text/plain; charset=utf-8",
                       refused[1].encode("ascii", "replace"))
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.metrics()
        elif path == "/":
            self.reply(200, "text/html; charset=utf-8",
                       b"<html><head><title>capstats exporter</title></head>"
                       b"<body><a href=\"/metrics\">/metrics</a></body></html>\n")
        else:
            self.reply(404, "text/plain; charset=utf-8", b"not found\n")

    def metrics(self):
        try:
            run = subprocess.run(self.command_line, stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.reply(503, "text/plain; charset=utf-8",
                       b"capstats metrics took more than %g s\n"
                       % self.timeout_s)
            return
        except OSError as e:
            self.reply(503, "text/plain; charset=utf-8",
                       ("cannot run %s: %s\n" % (self.command_line[0],
                                                 e.strerror)).encode())
            return
        if run.returncode != 0:
            why = run.stderr.strip() or b"capstats metrics exited %d" \
                % run.returncode
            self.reply(503, "text/plain; charset=utf-8", why + b"\n")
            return
        self.reply(200, CONTENT_TYPE, run.stdout)

    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # A scrape every few seconds would fill the log; errors still show.
        if self.verbose:
            super().log_message(fmt, *args)

    def log_error(self, fmt, *args):
        super().log_message(fmt, *args)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="capstats_exporter.py",
        description="Serve capstats counters to Prometheus.",
        epilog="There is no authentication: keep it on loopback, and put a "
        "reverse proxy with authentication in front to scrape it from "
        "elsewhere (it must pass the upstream address as Host). Requests "
        "whose Host is not the listen address (or localhost, 127.0.0.1, "
        "[::1] on loopback) get 421; those from a page of another origin, "
        "403.")
    ap.add_argument("--listen", type=parse_listen,
                    default=parse_listen("127.0.0.1:9477"), metavar="HOST:PORT",
                    help="address to listen on (default 127.0.0.1:9477)")
    ap.add_argument("--capstats", default="capstats", metavar="PATH",
                    help="the capstats binary (default: capstats in "
                    "/usr/local/sbin, /usr/sbin or on PATH)")
    ap.add_argument("-m", dest="shm", metavar="SHMNAME",
                    help="the segment (default $CAPSTATS_SHM, or capstats)")
    ap.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                    help="longest a scrape may take (default 5)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log every request on stderr")
    args = ap.parse_args(argv)

    binary = shutil.which(args.capstats, path=SEARCH_PATH)
    if binary is None:
        ap.error("%s: not found (give --capstats PATH)" % args.capstats)
    command = [binary] + (["-m", args.shm] if args.shm else []) + ["metrics"]

    family, host, port = args.listen
    http.server.ThreadingHTTPServer.address_family = family
    Handler.command_line = command
    Handler.timeout_s = args.timeout
    Handler.verbose = args.verbose
    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        print("capstats_exporter: listen %s:%d: %s" % (host, port, e.strerror),
              file=sys.stderr)
        return 1
    server.daemon_threads = True
    # SIGTERM ends serve_forever through SystemExit, like ^C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound = server.server_address
    Handler.guard = HostGuard(host, bound)
    shown = "[%s]" % bound[0] if family == socket.AF_INET6 else bound[0]
    print("capstats_exporter: listening on http://%s:%d/metrics"
          % (shown, bound[1]), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
