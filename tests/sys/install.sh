# tests/sys/install.sh: `make install` into a DESTDIR with a PREFIX of its
# own puts every file where PREFIX says, with its mode, naming PREFIX where
# a file names paths (capstats.pc, the unit); a program built against the
# installed header and library through pkg-config (shared and static) runs
# and gets CAPSTATS_E_NOENT for a missing segment; man finds the pages;
# `make uninstall` leaves nothing but directories. SYSTEMDDIR is honoured.
# alone: it runs make in the tree, which the other tests build in
. "${TOP:-.}/tests/lib.sh"
require_capstats
need make cc pkg-config readelf man bash

PREFIX=/opt/capstats-test
DEST=$TDIR/dest
P=$DEST$PREFIX

# mk TARGET VAR=VALUE...: make in the repository, output in $TDIR/make.log.
# The outer make's flags (jobserver) are not ours to use, nor is the build
# directory under test: what is installed is the plain build.
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u B -u SAN \
	    timeout 300 make -C "$TOP" "$@" >"$TDIR/make.log" 2>&1
}

# tree DIR: every non-directory under DIR, "MODE PATH" (symlinks "-> TARGET")
tree() {
	(cd "$1" && find . ! -type d | sort | while read -r f; do
		if [ -L "$f" ]; then
			printf '%s -> %s\n' "${f#.}" "$(readlink "$f")"
		else
			printf '%s %s\n' "$(stat -c %a "$f")" "${f#.}"
		fi
	done)
}

if ! mk install DESTDIR="$DEST" PREFIX="$PREFIX"; then
	fail "make install failed"
	tail -20 "$TDIR/make.log" | indent
	exit 1
fi
pass "make install DESTDIR PREFIX"

want="755 $PREFIX/lib/libcapstats.so.1
$PREFIX/lib/libcapstats.so -> libcapstats.so.1
644 $PREFIX/include/capstats.h
644 $PREFIX/lib/libcapstats.a
644 $PREFIX/lib/pkgconfig/capstats.pc
644 $PREFIX/lib/systemd/system/capstats.service
644 $PREFIX/share/bash-completion/completions/capstats
644 $PREFIX/share/man/man7/capstats-shm.7
644 $PREFIX/share/man/man8/capstats.8
755 $PREFIX/sbin/capstats"
check_eq "the installed tree: every file, its mode" \
    "$(printf '%s\n' "$want" | sort -k2)" "$(tree "$DEST" | sort -k2)"

# Contents: copies, except where the PREFIX is written in.
for pair in "sbin/capstats capstats" "include/capstats.h shm/capstats.h" \
    "share/man/man8/capstats.8 capstats.8" "share/man/man7/capstats-shm.7 shm/capstats-shm.7" \
    "share/bash-completion/completions/capstats contrib/bash-completion/capstats" \
    "lib/libcapstats.a libcapstats.a" "lib/libcapstats.so.1 libcapstats.so.1"; do
	set -- $pair
	check "$1 is the built $2" cmp "$P/$1" "$TOP/$2"
done
check_eq "the unit runs the installed binary" "ExecStart=$PREFIX/sbin/capstats -d -f" \
    "$(grep '^ExecStart=' "$P/lib/systemd/system/capstats.service")"
check_eq "the unit is contrib's otherwise" "" \
    "$(diff <(grep -v '^ExecStart=' "$TOP/contrib/systemd/capstats.service") \
        <(grep -v '^ExecStart=' "$P/lib/systemd/system/capstats.service"))"
check_eq "the installed binary runs" 0 "$("$P/sbin/capstats" -h >/dev/null 2>&1; echo $?)"

# pkg-config, looking only into DESTDIR; the sysroot maps PREFIX into it.
pc() { PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_LIBDIR=$P/lib/pkgconfig \
    PKG_CONFIG_SYSROOT_DIR=$DEST pkg-config "$@"; }
check_eq "capstats.pc names PREFIX" "prefix=$PREFIX libdir=$PREFIX/lib includedir=$PREFIX/include" \
    "$(grep -E '^(prefix|libdir|includedir)=' "$P/lib/pkgconfig/capstats.pc" | tr '\n' ' ' | sed 's/ $//')"
check_eq "pkg-config flags point into DESTDIR" "-I$P/include -L$P/lib -lcapstats" \
    "$(pc --cflags --libs capstats | tr -s ' ' | sed 's/ $//')"

cat >"$TDIR/noent.c" <<'EOF'
/* Opens a segment that does not exist: the library must say NOENT. */
#include <stdio.h>
#include <capstats.h>

int
main(int argc, char **argv)
{
	char err[CAPSTATS_ERRBUF_SIZE];
	struct capstats *cs;
	int rc = 0;

	if (argc != 2)
		return 2;
	if ((cs = capstats_open(argv[1], &rc, err)) != NULL) {
		capstats_close(cs);
		puts("opened");
		return 1;
	}
	printf("%d %s\n", rc, err);
	return rc == CAPSTATS_E_NOENT ? 0 : 1;
}
EOF
none=capstats-none-$$
if check "a program builds against the installed library (shared)" \
    cc -Wall -Wextra -Werror -o "$TDIR/noent" "$TDIR/noent.c" $(pc --cflags --libs capstats); then
	check_match "it links libcapstats.so.1" "NEEDED.*\[libcapstats\.so\.1\]" \
	    "$(readelf -d "$TDIR/noent")"
	check_match "it finds the installed one" "libcapstats\.so\.1 => $P/lib/libcapstats\.so\.1" \
	    "$(LD_LIBRARY_PATH=$P/lib ldd "$TDIR/noent")"
	out=$(LD_LIBRARY_PATH=$P/lib "$TDIR/noent" "$none")
	check_eq "it gets CAPSTATS_E_NOENT for a missing segment" 0 "$?"
	check_match "with a message naming the segment" "^-1 .*$none" "$out"
fi
if check "a program builds against the installed library (static)" \
    cc -Wall -Wextra -Werror -o "$TDIR/noent-static" "$TDIR/noent.c" $(pc --cflags capstats) \
    -L"$P/lib" -Wl,-Bstatic $(pc --static --libs-only-l capstats) -Wl,-Bdynamic; then
	check_eq "it needs no libcapstats.so" "" "$(readelf -d "$TDIR/noent-static" | grep libcapstats)"
	"$TDIR/noent-static" "$none" >/dev/null
	check_eq "static: it gets CAPSTATS_E_NOENT" 0 "$?"
fi

check_eq "man finds capstats(8)" "$P/share/man/man8/capstats.8" \
    "$(MANPATH=$P/share/man man -w 8 capstats 2>&1)"
check_eq "man finds capstats-shm(7)" "$P/share/man/man7/capstats-shm.7" \
    "$(MANPATH=$P/share/man man -w 7 capstats-shm 2>&1)"
check_match "the completion registers for capstats" "^complete -F _capstats capstats$" \
    "$(bash --norc --noprofile -c '. "$1" && complete -p capstats' sh \
        "$P/share/bash-completion/completions/capstats" 2>&1)"

check "make install again over it" mk install DESTDIR="$DEST" PREFIX="$PREFIX"
if mk uninstall DESTDIR="$DEST" PREFIX="$PREFIX"; then
	pass "make uninstall"
else
	fail "make uninstall failed"
	tail -20 "$TDIR/make.log" | indent
fi
check_eq "uninstall leaves only directories" "" "$(tree "$DEST")"

# The default PREFIX, with the unit where a distribution keeps units.
DEST2=$TDIR/dest2
check "make install SYSTEMDDIR" mk install DESTDIR="$DEST2" SYSTEMDDIR=/lib/systemd/system
check "the unit goes to SYSTEMDDIR" test -f "$DEST2/lib/systemd/system/capstats.service"
check "the binary goes to /usr/local/sbin" test -x "$DEST2/usr/local/sbin/capstats"
check_eq "the unit runs /usr/local/sbin/capstats" "ExecStart=/usr/local/sbin/capstats -d -f" \
    "$(grep '^ExecStart=' "$DEST2/lib/systemd/system/capstats.service")"
check "make uninstall SYSTEMDDIR" mk uninstall DESTDIR="$DEST2" SYSTEMDDIR=/lib/systemd/system
check_eq "uninstall SYSTEMDDIR leaves only directories" "" "$(tree "$DEST2")"
