# tests/sys/manpages.sh: the man pages render without a warning from groff,
# man or mandoc's linter, and the documents stay true to the code: the
# SYNOPSIS of capstats.8 is the usage `capstats -h` prints, and every option
# of it is described; its COMMANDS, and the README's table of commands, are
# the command table of `capstats -jh`, in the same order, with the same
# arguments (and in the README what each does and whom it talks to). A
# command missing from either document is caught: the checks are run on
# copies with one removed, too.
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

# mdoc_text PAGE SECTION KIND: PAGE as plain text, one line per item.
# KIND synopsis: one line per `.Nm` of SECTION; KIND items: the head of
# every `.It` of SECTION, placeholders (Ar) in upper case as usage prints them.
mdoc_text() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
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

# `capstats -h`: the synopsis lines, then the commands
"$CAPSTATS" -h >"$TDIR/usage" 2>&1
check_eq "capstats -h exits 0" 0 "$?"
usage_synopsis=$(sed '/^commands:/,$d; s/^usage: //' "$TDIR/usage" | tr -s ' \n' '  ' |
    sed 's/ capstats /\ncapstats /g; s/ $//')
man_synopsis=$(mdoc_text "$TOP/capstats.8" SYNOPSIS synopsis)
check_eq "SYNOPSIS is the usage of capstats -h" "$usage_synopsis" "$man_synopsis"

# The command table, `capstats -jh`: one line per command, in order, of
# "usage<TAB>help<TAB>via"; "EXPR..." and "expr ..." are the same thing.
"$CAPSTATS" -jh >"$TDIR/table.json"
check_eq "capstats -jh exits 0" 0 "$?"
table=$("$PY" -c 'import json, sys
for c in json.load(open(sys.argv[1])):
    print("\t".join((c["usage"].replace(" ...", "..."), c["help"], c["via"])))' "$TDIR/table.json")
usage_commands=$(cut -f1 <<<"$table")
check_match "capstats -jh lists commands" "^new " "$usage_commands"
check_eq "capstats -h lists them too" "$usage_commands" \
    "$(sed '1,/^commands:/d' "$TDIR/usage" | sed -n 's/^       \([a-z].*\)/\1/p' |
    sed 's/ \.\.\./.../g')"

# man_commands PAGE: the heads of its COMMANDS, as usage prints them
man_commands() { mdoc_text "$1" COMMANDS items | sed 's/ \.\.\./.../g'; }
# readme_commands FILE: the README's table of commands, a line per row of
# "usage<TAB>what it does<TAB>talks to"
readme_commands() {
	"$PY" - "$1" <<'EOF' | sed 's/ \.\.\./.../g'
import re, sys
inside = False
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("|"):
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells == ["command", "what it does", "talks to"]:
            inside = True
        elif inside and not set("".join(cells)) <= set("-:"):
            print("\t".join([cells[0].strip("`")] + cells[1:]))
    elif inside:
        break
EOF
}

man_commands=$(man_commands "$TOP/capstats.8")
check_eq "COMMANDS has the commands of capstats -jh, in order" \
    "$(printf '%s\n' "$usage_commands" | awk '{ print $1 }')" \
    "$(printf '%s\n' "$man_commands" | awk '{ print $1 }')"
while read -r line; do
	name=${line%% *}
	check_eq "COMMANDS: $name has the arguments of capstats -jh" "$line" \
	    "$(printf '%s\n' "$man_commands" | awk -v n="$name" '$1 == n')"
done <<<"$usage_commands"
check_eq "README's table of commands is the table of capstats -jh" "$table" \
    "$(readme_commands "$TOP/README.md")"

# The same checks see a command missing: the second of the table, taken
# out of a copy of each document.
gone=$(sed -n '2s/ .*//p' <<<"$usage_commands")
sed "/^\.It Cm $gone\( \|$\)/d" "$TOP/capstats.8" >"$TDIR/gone.8"
sed "/^| \`$gone[ \`]/d" "$TOP/README.md" >"$TDIR/gone.md"
check "a copy of capstats.8 without $gone is shorter" \
    test "$(wc -l <"$TDIR/gone.8")" -lt "$(wc -l <"$TOP/capstats.8")"
check "a copy of the README without $gone is shorter" \
    test "$(wc -l <"$TDIR/gone.md")" -lt "$(wc -l <"$TOP/README.md")"
check "COMMANDS without $gone is caught" \
    test "$usage_commands" != "$(man_commands "$TDIR/gone.8")"
check "the README without $gone is caught" \
    test "$table" != "$(readme_commands "$TDIR/gone.md")"

# Every option letter of the SYNOPSIS has an item of its own in DESCRIPTION.
described=$(mdoc_text "$TOP/capstats.8" DESCRIPTION items | grep -o -- '-[A-Za-z]' | sort -u)
for opt in $(printf '%s\n' "$man_synopsis" | grep -oE -- '-[A-Za-z]+' | sed 's/^-//' | fold -w1 | sort -u); do
	check_match "option -$opt is described" "(^|
)-$opt(
|$)" "$described"
done
