# tests/sys/manpages.sh: the man pages render without a warning from groff,
# man or mandoc's linter, and capstats.8 stays true to the code: its
# SYNOPSIS is the usage `capstats -h` prints, its COMMANDS are the commands
# of `capstats -h`, in the same order and with the same arguments, and every
# option of the SYNOPSIS is described.
. "${TOP:-.}/tests/lib.sh"
require_capstats
need groff man mandoc "$PY"

PAGES="$TOP/capstats.8 $TOP/shm/capstats-shm.7"

# Each formatter's words about a page, empty when it is clean.
w_groff() { timeout 30 groff -ww -mdoc -Tutf8 -z "$1" 2>&1; }
w_man() { MANWIDTH=80 timeout 30 man --warnings -l "$1" 2>&1 >/dev/null; }
w_mandoc() { timeout 30 mandoc -Tlint -Wwarning "$1" 2>&1; }

# A page with an unknown macro and an unclosed list, which each must report.
sed 's/^\.Sh DESCRIPTION$/.Sh DESCRIPTION\n.Bl -tag\n.It Fl q\n.Xx nonsense/' \
    "$TOP/capstats.8" >"$TDIR/broken.8"
for f in groff man mandoc; do
	for page in $PAGES; do
		check_eq "${page#"$TOP"/}: no warning from $f" "" "$("w_$f" "$page")"
	done
	check_match "$f reports a broken page" "Xx" "$("w_$f" "$TDIR/broken.8")"
done

# mdoc_text SECTION KIND: capstats.8 as plain text, one line per item.
# KIND synopsis: one line per `.Nm` of SECTION; KIND items: the head of
# every `.It` of SECTION, placeholders (Ar) in upper case as usage prints them.
mdoc_text() {
	"$PY" - "$TOP/capstats.8" "$1" "$2" <<'EOF'
import shlex, sys
path, section, kind = sys.argv[1:]
lines, inside = [], False
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith(".Sh "):
        inside = line[4:].strip() == section
        continue
    if inside and line.startswith("."):
        lines.append(line[1:])
MACROS = ("Fl", "Ar", "Cm", "Pa", "Nm", "Ns", "Op", "Oo", "Oc")
def render(words, upper):
    """mdoc's inline macros as the text they print."""
    out, i = [], 0
    while i < len(words):
        w = words[i]
        if w == "Op":
            out.append("[" + render(words[i + 1:], upper) + "]")
            break
        if w in ("Oo", "Oc"):
            out.append("[" if w == "Oo" else "]")
        elif w in MACROS:
            arg = words[i + 1] if i + 1 < len(words) else None
            if arg is None or arg in MACROS:
                if w == "Fl":
                    out.append("-")
            else:
                i += 1
                out.append("-" + arg if w == "Fl" else
                           arg.upper() if w == "Ar" and upper else arg)
        else:
            out.append(w)
        i += 1
    return " ".join(out).replace("[ ", "[").replace(" ]", "]")
if kind == "synopsis":
    cur = None
    for l in lines:
        words = shlex.split(l)
        if words[0] == "Nm":
            if cur is not None:
                print(" ".join(cur))
            cur = ["capstats"]
        elif cur is not None:
            cur.append(render(words, False))
    if cur is not None:
        print(" ".join(cur))
else:
    for l in lines:
        words = shlex.split(l)
        if words[0] == "It":
            print(render(words[1:], True))
EOF
}

# usage_text: `capstats -h` as the two synopsis lines, then the commands
"$CAPSTATS" -h >"$TDIR/usage" 2>&1
check_eq "capstats -h exits 0" 0 "$?"
usage_synopsis=$(sed '/^commands:/,$d; s/^usage: //' "$TDIR/usage" | tr -s ' \n' '  ' |
    sed 's/ capstats /\ncapstats /g; s/ $//')
# "EXPR..." and "expr ..." are the same thing
usage_commands=$(sed '1,/^commands:/d; s/^ *//; s/ \.\.\./.../g' "$TDIR/usage")
check_match "capstats -h lists commands" "^new " "$usage_commands"

man_synopsis=$(mdoc_text SYNOPSIS synopsis)
check_eq "SYNOPSIS is the usage of capstats -h" "$usage_synopsis" "$man_synopsis"

man_commands=$(mdoc_text COMMANDS items | sed 's/ \.\.\./.../g')
check_eq "COMMANDS has the commands of capstats -h, in order" \
    "$(printf '%s\n' "$usage_commands" | awk '{ print $1 }')" \
    "$(printf '%s\n' "$man_commands" | awk '{ print $1 }')"
while read -r line; do
	name=${line%% *}
	check_eq "COMMANDS: $name has the arguments of capstats -h" "$line" \
	    "$(printf '%s\n' "$man_commands" | awk -v n="$name" '$1 == n')"
done <<<"$usage_commands"

# Every option letter of the SYNOPSIS has an item of its own in DESCRIPTION.
described=$(mdoc_text DESCRIPTION items | grep -o -- '-[A-Za-z]' | sort -u)
for opt in $(printf '%s\n' "$man_synopsis" | grep -oE -- '-[A-Za-z]+' | sed 's/^-//' | fold -w1 | sort -u); do
	check_match "option -$opt is described" "(^|
)-$opt(
|$)" "$described"
done
