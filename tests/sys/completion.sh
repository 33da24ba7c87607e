# tests/sys/completion.sh: contrib/bash-completion/capstats, sourced into
# bash (plain, and after the bash-completion library), completes the
# commands of the binary's table (`capstats -jh`), options, the keywords of
# new and watch, interface names, and the live sessions of the daemon that
# -m/-s on the line (or the environment) point to, after every command
# whose first argument the table says is one, against a running daemon.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need bash ip ethtool

COMPLETION=$TOP/contrib/bash-completion/capstats
LIB=/usr/share/bash-completion/bash_completion
[ -r "$COMPLETION" ] || die "completion: no $COMPLETION"
[ -r "$LIB" ] || die "completion: needs the bash-completion package ($LIB)"

# The cases are gathered first and run in one bash per pass, which sources
# the completion once. case_add KIND "what" WANT WORD...: the completion of
# the line WORD... (the last word under the cursor, may be empty) must be
# WANT exactly (KIND is) or include the word WANT (KIND has). NOENV=1 hides
# this test's CAPSTATS_SHM and CAPSTATS_SOCKET from that case.
CASES=()
case_add() {
	local kind=$1 what=$2 want=$3
	shift 3
	CASES+=("$kind"$'\x1f'"$what"$'\x1f'"$want"$'\x1f'"${NOENV:-0}"$'\x1f'"$(printf ' %q' "$@")")
}

# run_cases WITH_LIB SUFFIX: run every case, WITH_LIB=1 after loading the
# bash-completion library; each result is checked, its name ending in
# SUFFIX. Forks are few: this runs on loaded machines.
run_cases() {
	local with_lib=$1 suffix=$2 c n=0 kind what want noenv words
	local -A got=() err=()
	{
		printf '%s\n' "[ $with_lib = 1 ] && . $(printf %q "$LIB")" \
		    ". $(printf %q "$COMPLETION") || exit 3"
		cat <<-'EOF'
		# run N NOENV WORD...: "N<US>REPLY<US>E", E 1 if it wrote to stderr
		run() {
			local n=$1 noenv=$2 shm=${CAPSTATS_SHM-} sock=${CAPSTATS_SOCKET-}
			shift 2
			[ "$noenv" = 1 ] && unset CAPSTATS_SHM CAPSTATS_SOCKET
			COMP_WORDS=("$@")
			COMP_CWORD=$(($# - 1))
			COMP_LINE="$*"
			COMP_POINT=${#COMP_LINE}
			COMPREPLY=()
			_capstats 2>"$ERRF.$n"
			[ "$noenv" = 1 ] && export CAPSTATS_SHM="$shm" CAPSTATS_SOCKET="$sock"
			printf '%s\037%s\037%s\n' "$n" "${COMPREPLY[*]}" "$([ -s "$ERRF.$n" ] && echo 1 || echo 0)"
		}
		EOF
		for c in "${CASES[@]}"; do
			IFS=$'\x1f' read -r kind what want noenv words <<<"$c"
			printf 'run %d %s%s\n' "$n" "$noenv" "$words"
			n=$((n + 1))
		done
	} >"$TDIR/cases.sh"
	ERRF=$TDIR/comp.err timeout 60 bash --norc --noprofile "$TDIR/cases.sh" >"$TDIR/results" 2>&1
	# The replies' words sorted, in one process.
	"$PY" -c '
import sys
for line in sys.stdin:
    f = line.rstrip("\n").split("\037")
    if len(f) == 3:
        f[1] = " ".join(sorted(f[1].split()))
    print("\037".join(f))' <"$TDIR/results" >"$TDIR/sorted"
	while IFS=$'\x1f' read -r n c e; do
		got[$n]=$c
		err[$n]=$e
	done <"$TDIR/sorted"
	n=0
	for c in "${CASES[@]}"; do
		IFS=$'\x1f' read -r kind what want noenv words <<<"$c"
		if [ -z "${err[$n]:-}" ]; then
			fail "$what$suffix: no result"
		elif [ "$kind" = is ]; then
			check_eq "$what$suffix" "$want" "${got[$n]}"
		else
			check_match "$what$suffix" "(^| )$want( |$)" "${got[$n]}"
		fi
		[ "${err[$n]:-0}" = 0 ] || fail "$what$suffix: the completion wrote to stderr"
		n=$((n + 1))
	done
	grep -av $'\x1f' "$TDIR/results" | indent
}

veth_up comp || exit 1
daemon_start -i "$HOST_IF" || exit 1
check "new web" cs new web filter tcp port 80
check "new dns" cs new dns filter udp port 53
check "new dhcp" cs new dhcp filter udp port 67
check "new gone" cs new gone filter
check "stop gone" cs stop gone

C=$CAPSTATS
# table [FIRST]: the commands of capstats -jh, sorted; with FIRST, those
# whose first argument is that
table() {
	"$CAPSTATS" -jh | "$PY" -c 'import json, sys
print(" ".join(sorted(c["command"] for c in json.load(sys.stdin)
                      if sys.argv[1] in ("", c["first"]))))' "${1:-}"
}
commands=$(table)
check_match "capstats -jh lists commands" "(^| )metrics( |$)" "$commands"
check_eq "capstats -h lists the same" "$commands" \
    "$("$CAPSTATS" -h | sed '1,/^commands:/d' | sed -n 's/^       \([a-z][a-z]*\).*/\1/p' |
        sort | tr '\n' ' ' | sed 's/ $//')"
session_commands=$(table session)
check_match "some commands take a live session" "(^| )stop( |$)" "$session_commands"

lib=
case_add is "commands are those of capstats -jh" "$commands" "$C" ""
case_add is "a command's prefix" "poll" "$C" po
case_add is "commands after options" "$commands" "$C" -j -m "$SHM" ""
case_add has "client options" -j "$C" -
case_add has "daemon options after -d" -B "$C" -d -
case_add has "interfaces after -d -i" "$HOST_IF" "$C" -d -i ""
case_add has "groups after -d -g" root "$C" -d -f -g ""
case_add has "segments after -m" "$SHM" "$C" -m ""

# Sessions come from the environment's segment (lib.sh exports
# CAPSTATS_SHM), or from -m on the line, in both spellings.
for cmd in $session_commands; do
	case_add is "sessions after $cmd" "dhcp dns web" "$C" "$cmd" ""
done
for cmd in $commands; do
	[[ " $session_commands " == *" $cmd "* ]] ||
	    case_add is "no sessions after $cmd" "" "$C" "$cmd" ""
done
case_add is "a session's prefix" "dhcp dns" "$C" show d
NOENV=1 case_add is "sessions from -m on the line" "dhcp dns web" "$C" -j -m "$SHM" poll ""
NOENV=1 case_add is "sessions from -mNAME on the line" "dhcp dns web" "$C" -Hm"$SHM" stop ""
NOENV=1 case_add is "no sessions from another segment" "" "$C" -m "capstats-none-$$" poll ""
case_add is "nothing after a session name" "" "$C" poll web ""

case_add is "frequency after watch NAME" frequency "$C" watch web ""
case_add is "nothing for the seconds" "" "$C" watch web frequency ""
case_add is "count after the seconds" count "$C" watch web frequency 0.5 ""
case_add is "interface, mode or filter after new NAME" "filter interface mode" "$C" new x ""
case_add is "nothing for a new name" "" "$C" new ""
case_add has "interfaces after new NAME interface" "$HOST_IF" "$C" new x interface ""
case_add is "mode or filter after the interface" "filter mode" "$C" new x interface "$HOST_IF" ""
case_add is "the modes after mode" "auto kernel pcap" "$C" new x mode ""
case_add is "a mode's prefix" "kernel" "$C" new x mode k
case_add is "interface or filter after the mode" "filter interface" "$C" new x mode pcap ""
case_add is "filter after both" filter "$C" new x mode pcap interface "$HOST_IF" ""
case_add is "nothing inside a filter" "" "$C" new x filter udp ""
case_add is "nothing after list" "" "$C" list ""

run_cases 0 ""
run_cases 1 " (bash-completion loaded)"
