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
"""

import argparse
import http.server
import os
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


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /metrics runs capstats; / says where the metrics are."""

    server_version = "capstats_exporter"
    command_line = None     # set by main: the capstats call, as a list
    timeout_s = 5.0
    verbose = False

    def do_GET(self):
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
        description="Serve capstats counters to Prometheus.")
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
