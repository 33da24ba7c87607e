#!/usr/bin/env bash
# tests/sys/kdiff.sh: the kernel path's translation against the kernel's own
# classic BPF (tests/kdiff/kdiff.c): the corpus's filters, expressions of
# ours, random programs and mutants, each attached as is to one packet socket
# and translated to another, on the corpus's traffic and frames of its own,
# in a namespace of this test's own with a veth pair; and families, many
# filters counted by one program with a lookup, each counter against the
# classic socket of its own program. The daemon is not needed. KDIFF_SEED
# repeats a run; KDIFF_RANDOM, KDIFF_MUTANTS and KDIFF_FAMILIES say how many
# programs, mutants and families of mutants to make.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
T_TAG=kdiff
. "$TOP/tests/lib.sh"

require_root
need ip sysctl ethtool make timeout
CORPUS=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
[ -r "$CORPUS/filters.txt" ] ||
    die "kdiff: corpus not found: no $CORPUS/filters.txt (set CAPSTATS_CORPUS)"

# The program, built as this build directory is (build/asan: sanitizers).
build_tool KDIFF kdiff/kdiff

# Both ends in the namespace, which takes them along when cleanup deletes it.
# No IPv6, no ARP, no addresses: nothing sends on its own. An MTU of 9000
# lets frames larger than a page through, which the kernel keeps paged.
NS=cst-kdiff-$$
SEND_IF=kd$$s
RECV_IF=kd$$r
ip netns add "$NS" || die "kdiff: cannot create namespace $NS"
T_NETNS+=("$NS")
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
ip -n "$NS" link add "$SEND_IF" type veth peer name "$RECV_IF" ||
    die "kdiff: cannot create $SEND_IF and $RECV_IF"
for x in "$SEND_IF" "$RECV_IF"; do
	ip netns exec "$NS" ethtool -K "$x" gro off >/dev/null 2>&1
	ip -n "$NS" link set dev "$x" arp off mtu 9000 up ||
	    die "kdiff: cannot set $x up"
done

args=(-r "$RECV_IF" -t "$SEND_IF" -c "$CORPUS")
[ -z "${KDIFF_SEED:-}" ] || args+=(-s "$KDIFF_SEED")
[ -z "${KDIFF_RANDOM:-}" ] || args+=(-n "$KDIFF_RANDOM")
[ -z "${KDIFF_MUTANTS:-}" ] || args+=(-m "$KDIFF_MUTANTS")
[ -z "${KDIFF_FAMILIES:-}" ] || args+=(-f "$KDIFF_FAMILIES")
timeout 300 ip netns exec "$NS" "$KDIFF" "${args[@]}" >"$TDIR/kdiff.out" 2>&1
rc=$?
cat "$TDIR/kdiff.out"
if [ "$rc" -ne 0 ] && ! grep -q '^FAIL:' "$TDIR/kdiff.out"; then
	fail "kdiff: exited $rc"
fi
exit 0
