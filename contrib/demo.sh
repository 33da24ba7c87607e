#!/bin/sh
# contrib/demo.sh: the main job in one command. Starts the daemon built
# here in the foreground, counts all traffic on the default interface in a
# session named "all", and watches it live until interrupted.
set -u
cd "$(dirname "$0")/.." || exit 1
bin=./capstats
sock=${CAPSTATS_SOCKET:-/var/run/capstats}
[ -x "$bin" ] || { echo "demo: build first (make)" >&2; exit 1; }
"$bin" -d -f -s "$sock" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
i=0
until "$bin" -s "$sock" list >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 50 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: the daemon did not start" >&2
		exit 1
	fi
	sleep 0.1
done
"$bin" -s "$sock" show all >/dev/null 2>&1 ||
	"$bin" -s "$sock" new all filter || exit 1
"$bin" -s "$sock" show all
"$bin" -s "$sock" watch all frequency 1
