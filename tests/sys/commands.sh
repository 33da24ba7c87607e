# tests/sys/commands.sh: every client command and every error path of the
# client, against a daemon on a private socket and segment, with traffic
# sent on a veth pair.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need ip ethtool tcpreplay python3

veth_up cmd || exit 1
daemon_start -i "$HOST_IF" || exit 1
corpus=${CAPSTATS_CORPUS:-$TOP/../shared/corpus}
ntp=$corpus/zeek-ntp-NTP_sync.pcap	# 32 packets, 3315 bytes

json() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# usage errors: exit 2, a message, no daemon needed
check_fails "no command is a usage error" 2 "$CAPSTATS"
check_fails "unknown command is a usage error" 2 cs frobnicate
check_match "unknown command is named" "unknown command 'frobnicate'" "$ERR"
check_fails "new without filter keyword" 2 cs new x
check_fails "stop with two names" 2 cs stop a b
check_fails "bad name is a usage error" 2 cs new 'a/b' filter tcp
check_match "bad name is explained" "invalid session name" "$ERR"
check_fails "64-character name refused" 2 cs new "$(printf 'a%.0s' $(seq 64))" filter
check_fails "watch without frequency" 2 cs watch x
check_fails "watch with a bad frequency" 2 cs watch x frequency 0
check_fails "watch with a bad count" 2 cs watch x frequency 1 count -3
check_fails "daemon option without -d" 2 "$CAPSTATS" -f list
check_fails "control bytes in a filter" 2 cs new x filter "$(printf 'tcp\tport 80')"
check "-h prints usage" sh -c "'$CAPSTATS' -h | grep -q 'usage: capstats -d'"

# The command table, as capstats -jh lists it: the client refuses each
# command with too few or too many words, with its usage; over the socket
# the daemon does the same for its own and knows none of the segment's.
ask() {	# ask REQUEST: one request line on the socket, the reply's last line
	"$PY" - "$SOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
f = s.makefile("r")
line = f.readline()
while line.startswith(("hello", "row")):
    line = f.readline()
print(line.rstrip("\n"))
PY
}
table=$("$CAPSTATS" -jh)
check_eq "capstats -jh exits 0" 0 "$?"
check_eq "capstats -jh has every key for every command" "True" "$(printf '%s' "$table" |
    json 'len(d) > 0 and all(set(c) == {"command", "via", "first", "min", "max", "usage", "help"} for c in d)')"
rows=$(printf '%s' "$table" | json '"\n".join("\t".join(str(c[k]) for k in ("command", "via", "min", "max", "usage")) for c in d)')
while IFS=$'\t' read -r name via min max usage; do
	[ "$max" = None ] && max=-1
	if [ "$min" -eq 0 ] && [ "$max" -lt 0 ]; then
		continue	# any number of words will do
	elif [ "$min" -gt 0 ]; then
		words=$(seq 2 "$min" | sed 's/.*/x/')
	else
		words=$(seq 0 "$max" | sed 's/.*/x/')
	fi
	check_fails "$name with $(echo $words | wc -w) words is a usage error" 2 cs "$name" $words
	check_eq "... with its usage" "capstats: usage: capstats $usage" "$ERR"
	if [ "$max" -ge 0 ]; then
		check_fails "$name with $((max + 1)) words is a usage error" 2 cs "$name" $(seq 0 "$max" | sed 's/.*/x/')
	fi
	if [ "$via" = socket ]; then
		check_eq "the daemon answers $name, with its usage" \
		    "error	badreq	usage: $usage" "$(ask "$(echo "$name" $words)")"
	else
		check_eq "the daemon leaves $name to the client" \
		    "error	badreq	unknown command '$name'" "$(ask "$name x")"
	fi
done <<<"$rows"

# new, and its errors
check "new with a quoted filter" cs new web filter "udp port 123"
check "new with unquoted words" cs new web2 interface "$HOST_IF" filter udp and port 123
check "new with an empty filter" cs new all filter
check_fails "new with an existing name" 1 cs new web filter tcp
check_match "existing name is explained" "session web exists" "$ERR"
check_fails "new with a bad filter" 1 cs new bad filter "tcp port nonsense"
check_match "bad filter carries libpcap's message" "filter 'tcp port nonsense': .*" "$ERR"
check_fails "new on a missing interface" 1 cs new bad interface nosuch0 filter tcp
check_match "missing interface is explained" "nosuch0: no such interface" "$ERR"
check_fails "filter for another link type" 1 cs new bad filter "wlan type mgt"
check_fails "nothing half-created" 1 cs show bad
check "state file lists the sessions" grep -q "^session	web	$HOST_IF	auto	udp port 123$" "$STATE"

# The modes new's usage names are the ones the daemon takes, each shown
# in show and saved; a word it does not name is refused.
modes=$(printf '%s' "$table" | json '[c["usage"] for c in d if c["command"] == "new"][0]' |
    sed -n 's/.*\[mode \([a-z|]*\)\].*/\1/p' | tr '|' ' ')
check_eq "new's usage names three modes" 3 "$(echo $modes | wc -w)"
for m in $modes; do
	check "new with mode $m" cs new "m-$m" mode "$m" filter udp
	check_match "... shown as asked for" "mode_reason=asked for|mode_reason=the default" \
	    "$(cs -j show "m-$m" | json '"mode_reason=" + d["mode_reason"]')"
	check "... saved with its mode" grep -q "^session	m-$m	$HOST_IF	$m	udp$" "$STATE"
	check "... stopped" cs stop "m-$m"
done
check_fails "new with a mode the usage does not name" 2 cs new m-x mode fast filter udp

# counting, through poll (segment) and list/show (socket)
replay "$ntp" 2000
wait_count web 30
wait_count all 32
wait_count web2 30
p=$(cs -j poll web | json 'd["packets"]')
check_eq "poll counts the filter's packets" 30 "$p"
b=$(cs -j poll all | json 'd["bytes"]')
check_eq "the empty filter counts every byte" 3315 "$b"
check_eq "quoted and unquoted filters agree" \
    "$(cs -j poll web | json '(d["packets"], d["bytes"])')" \
    "$(cs -j poll web2 | json '(d["packets"], d["bytes"])')"
check_match "poll prints a human line" "^web: 30 packets, 2,700 bytes, 0 drops$" "$(cs poll web)"
check_eq "list -j has every session" "['web', 'web2', 'all']" \
    "$(cs -j list | json '[s["session"] for s in d]')"
check_eq "list -j has the keys" "True" \
    "$(cs -j list | json 'all(set(s) >= {"session","interface","filter","packets","bytes","drops"} for s in d)')"
check_match "list prints aligned columns" "^web +$HOST_IF +running +30 " "$(cs list | grep '^web ')"
out=$(cs show web)
for k in interface filter state created modified packets bytes drops if_drops last_packet; do
	check_match "show has $k" "(^|
)$k " "$out"
done
check_eq "show -j agrees with poll" "$(cs -j poll web | json 'd["bytes"]')" \
    "$(cs -j show web | json 'd["bytes"]')"

# modify: counters go on with the new filter
check "modify" cs modify web udp port 53
replay "$ntp" 2000
wait_count web 32
check_eq "modify counts the new filter" "$((30 + 2))" "$(cs -j poll web | json 'd["packets"]')"
check_fails "modify with a bad filter" 1 cs modify web "port port"
check_eq "a refused modify changes nothing" "udp port 53" "$(cs -j show web | json 'd["filter"]')"
check_fails "modify an unknown session" 1 cs modify nosuch tcp
check_match "unknown session is named" "no session named nosuch" "$ERR"

# watch
out=$(cs watch all frequency 0.05 count 3)
check_eq "watch prints a header and count lines" 4 "$(printf '%s\n' "$out" | wc -l)"
wait_count all 64
out=$(cs -j watch all frequency 0.05 count 2 | tail -1)
check_eq "watch -j has rates" "True" "$(printf '%s' "$out" | json '"pps" in d and "bps" in d and d["packets"] == 64')"

# stop
check "stop" cs stop web2
check_fails "stopped session is gone from show" 1 cs show web2
check_fails "stopped session is gone from poll" 1 cs poll web2
check_fails "stop an unknown session" 1 cs stop web2
check_eq "stop is saved" 0 "$(grep -c 'web2' "$STATE")"

# daemon not running
check_fails "client without a daemon" 1 "$CAPSTATS" -s "$TDIR/none" list
check_match "client says the daemon is not running" "daemon not running" "$ERR"
check_fails "poll without a segment" 1 "$CAPSTATS" -m capstats-none-$$ poll web
check_match "poll says the daemon is not running" "daemon not running" "$ERR"
