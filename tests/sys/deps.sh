# tests/sys/deps.sh: every tool a system test needs comes with the deps step.
# The tools are the words of the tests' `need` lines; each must belong to a
# package that tests/deps.sh installs, or to one every Debian system has
# (Essential, or of priority required or important).
. "${TOP:-.}/tests/lib.sh"
need dpkg-query

listed=" $(sed -n '/^pkgs="/,/"$/p' "$TOP/tests/deps.sh" | tr -d '"' |
    sed 's/^pkgs=//' | tr '\n' ' ') "
# The package that holds a program, wherever usrmerge put it.
owner() {
	local p f
	p=$(command -v "$1") || return 1
	for f in "$(readlink -f "$p")" "$p" "${p#/usr}" "/usr$p"; do
		dpkg-query -S "$f" 2>/dev/null | sed -n '1s/:.*//p' | grep . && return 0
	done
	return 1
}
# What the listed packages depend on, two levels down (gcc -> gcc-12,
# pkg-config -> pkgconf -> pkgconf-bin).
depends() {
	dpkg-query -W -f='${Depends} ${Pre-Depends}\n' "$@" 2>/dev/null |
	    tr ',|' '\n\n' | sed 's/([^)]*)//; s/:any//; s/[[:space:]]//g' | grep . | sort -u
}
level1=$(depends $listed)
pulled=" $(printf '%s\n' $level1 $(depends $level1) | sort -u | tr '\n' ' ') "
base() {
	dpkg-query -W -f='${Essential} ${Priority}\n' "$1" 2>/dev/null |
	    grep -Eq '^yes|required|important'
}
tools=$(sed -n 's/^[[:space:]]*need \(.*\)/\1/p' "$TOP"/tests/sys/*.sh |
    tr ' ' '\n' | grep -E '^[a-z][a-z0-9.-]*$' | sort -u)
missing=
for t in $tools; do
	[ "$t" = python3 ] && continue	# deps.sh installs python3; PY may be another
	if ! pkg=$(owner "$t"); then
		missing="$missing $t(not installed)"
		continue
	fi
	pkg=${pkg%%,*}
	case $listed$pulled in *" $pkg "*) continue ;; esac
	# A package the deps step installs may pull this one in.
	base "$pkg" || missing="$missing $t($pkg)"
done
check_eq "every tool the system tests need is installed by tests/deps.sh" "" "${missing# }"
