#!/bin/sh
# tests/deps.sh: install the Debian packages that building and testing
# capstats need, when any is missing. Run as root.
set -e
pkgs="make gcc libc6-dev libpcap-dev libbsd-dev pkg-config iproute2 ethtool
tcpreplay tcpdump python3 strace clang libclang-rt-14-dev groff-base man-db
systemd util-linux mandoc bash-completion prometheus chromium valgrind
binutils"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
