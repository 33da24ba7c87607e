# tests/sys/squat.sh: /dev/shm is anyone's to write in, and the segment's
# name is known: nothing another user puts there first keeps the daemon
# from starting and publishing. What was there is logged, with its owner.
. "${TOP:-.}/tests/lib.sh"
require_root
require_capstats
need setpriv

nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
trap 'rm -rf "/dev/shm/$SHM".squatted.*; cleanup' EXIT

# A directory, with something in it so it cannot simply be removed.
nobody mkdir "/dev/shm/$SHM" && nobody touch "/dev/shm/$SHM/x" ||
    die "squat: cannot make a directory as uid 65534"
daemon_start -i lo || exit 1
check "a directory at the segment's name: the daemon starts and publishes" \
    cs metrics
check_match "the log says what was there and whose" \
    "a directory of uid 65534 gid 65534 was there; moved to /dev/shm/$SHM.squatted" \
    "$(daemon_log)"
check "the segment is a root-owned file" test -f "/dev/shm/$SHM" -a -O "/dev/shm/$SHM"
daemon_stop

# An empty directory, a file, a symbolic link and a fifo of another user.
sum=$(md5sum </etc/passwd)
for kind in directory file link fifo; do
	rm -rf "/dev/shm/$SHM"
	case $kind in
	directory) nobody mkdir "/dev/shm/$SHM" ;;
	file) nobody touch "/dev/shm/$SHM" ;;
	link) nobody ln -s /etc/passwd "/dev/shm/$SHM" ;;
	fifo) nobody mkfifo "/dev/shm/$SHM" ;;
	esac || die "squat: cannot make a $kind as uid 65534"
	: >"$TDIR/daemon.log"
	daemon_start -i lo || continue
	check "a $kind at the segment's name: the segment is published" cs metrics
	check_match "... and the log says whose it was" "uid 65534 gid 65534" "$(daemon_log)"
	check_eq "... and what a link pointed to was not touched" "$sum" \
	    "$(md5sum </etc/passwd)"
	daemon_stop
done
