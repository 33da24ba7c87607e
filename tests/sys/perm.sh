# tests/sys/perm.sh: who may do what. Root is admitted; with -g GROUP its
# members are, by primary and by supplementary group; anyone else is
# refused by the daemon and cannot read the segment. Users and the group
# are created here and removed by name.
# alone: it adds users and a group, as useradd and groupadd lock the files they change
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need useradd groupadd userdel groupdel setpriv python3

grp=cstg$$
ua=cstua$$ ub=cstub$$ uc=cstuc$$
perm_cleanup() {
	local u
	for u in "$ua" "$ub" "$uc"; do
		userdel "$u" 2>/dev/null
	done
	groupdel "$grp" 2>/dev/null
	cleanup
}
trap perm_cleanup EXIT

groupadd "$grp" || die "groupadd"
useradd -M -N -g "$grp" -s /usr/sbin/nologin "$ua" || die "useradd $ua"
useradd -M -N -G "$grp" -s /usr/sbin/nologin "$ub" || die "useradd $ub"
useradd -M -N -s /usr/sbin/nologin "$uc" || die "useradd $uc"
chmod 755 "$TDIR"	# the users must reach the socket

as() {	# as USER cmd...: run with that user's real credentials
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
}

daemon_start -i lo -g "$grp" || exit 1
check "root is admitted" cs list
check "a session" cs new s1 interface lo filter udp

mode() { stat -c '%a %U %G' "$1"; }
check_eq "socket mode with -g" "660 root $grp" "$(mode "$SOCK")"
check_eq "segment mode with -g" "640 root $grp" "$(mode "/dev/shm/$SHM")"
check_eq "state file mode" "600 root root" "$(mode "$STATE")"

check "member by primary group is admitted" as "$ua" "$CAPSTATS" -s "$SOCK" -m "$SHM" list
check "member by supplementary group is admitted" as "$ub" "$CAPSTATS" -s "$SOCK" -m "$SHM" list
check "a member may control" as "$ub" "$CAPSTATS" -s "$SOCK" -m "$SHM" new s2 interface lo filter tcp
check "a member reads the segment" as "$ua" "$CAPSTATS" -s "$SOCK" -m "$SHM" poll s1
check_fails "a stranger is refused on the socket" 1 \
    as "$uc" "$CAPSTATS" -s "$SOCK" -m "$SHM" list
check_match "... with permission denied" "permission denied" "$ERR"
check_fails "a stranger cannot read the segment" 1 \
    as "$uc" "$CAPSTATS" -s "$SOCK" -m "$SHM" poll s1
check_match "... with permission denied" "ermission denied" "$ERR"
check_fails "a stranger cannot replace the socket" 1 as "$uc" rm -f "$SOCK"
check_fails "a stranger cannot write the segment" 1 as "$uc" dd if=/dev/null \
    of="/dev/shm/$SHM" oflag=append conv=notrunc status=none
check_fails "a member cannot write the segment" 1 as "$ua" dd if=/dev/null \
    of="/dev/shm/$SHM" oflag=append conv=notrunc status=none
check_fails "a member cannot write the state file" 1 as "$ua" dd if=/dev/null \
    of="$STATE" oflag=append conv=notrunc status=none
daemon_stop

# Without -g only root is admitted, whatever the socket file's mode: the
# daemon checks the credentials the kernel reports.
daemon_start -i lo || exit 1
check_eq "socket mode without -g" "600 root root" "$(mode "$SOCK")"
check_eq "segment mode without -g" "640 root root" "$(mode "/dev/shm/$SHM")"
chmod 666 "$SOCK"
check_fails "a group member is refused without -g" 1 \
    as "$ua" "$CAPSTATS" -s "$SOCK" -m "$SHM" list
check_match "the daemon says why" "permission denied: uid [0-9]+ is not root" "$ERR"
check_fails "and cannot read the segment" 1 \
    as "$ua" "$CAPSTATS" -s "$SOCK" -m "$SHM" poll s1
daemon_stop

# Limits are enforced and reported.
rm -f "$STATE"
daemon_start -i lo -n 2 || exit 1
check "first of two sessions" cs new a interface lo filter
check "second of two sessions" cs new b interface lo filter
check_fails "a third is refused" 1 cs new c interface lo filter
check_match "... saying why" "session limit reached: 2 sessions" "$ERR"
check "stop one" cs stop a
check "then there is room again" cs new c interface lo filter
