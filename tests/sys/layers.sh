# tests/sys/layers.sh: daemon/'s files keep to the layers of the table in
# daemon/daemon.h: no #include and no call points up or sideways, so the
# include and call graph has no cycle (tests/layers.py). The checker must
# also catch an upward edge: with two layers of the table swapped it fails.
. "${TOP:-.}/tests/lib.sh"
need "$PY" nm

LY=$TOP/tests/layers.py
out=$("$PY" "$LY" "$TOP/$B" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
	pass "layers: every include and call of daemon/ points down"
else
	fail "layers: daemon/ breaks its layering"
	printf '%s\n' "$out" | indent
fi

# Sessions below the counting paths: sess.c's calls into pcap.c and
# kpath.c, and its includes of path.h, point up.
awk '$2 == "sessions" { next }
    $2 == "tally" { s = $0; sub("tally[ \t]+path.h", "sessions\tsess.c", s); print s }
    { print }' "$TOP/daemon/daemon.h" >"$TDIR/swapped.h"
if cmp -s "$TOP/daemon/daemon.h" "$TDIR/swapped.h"; then
	fail "layers: the test could not swap two layers of the table"
else
	out=$("$PY" "$LY" --table "$TDIR/swapped.h" "$TOP/$B" 2>&1)
	check_match "layers: a call pointing up is caught" \
	    "sess.c uses [a-z_]+ from daemon/(pcap|kpath).c" "$out"
	check_match "layers: an include pointing up is caught" \
	    'daemon/sess.h:[0-9]+: includes "path.h"' "$out"
fi

# A file that is in no layer is named.
grep -v '^ \*	state		state.c$' "$TOP/daemon/daemon.h" >"$TDIR/missing.h"
out=$("$PY" "$LY" --table "$TDIR/missing.h" "$TOP/$B" 2>&1)
check_match "layers: a file left out of the table is caught" \
    "daemon/state.c: not in the layer table" "$out"
