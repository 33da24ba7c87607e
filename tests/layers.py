#!/usr/bin/env python3
"""tests/layers.py: check that daemon/'s includes and calls only point down.

The layers are the table in daemon/daemon.h, between the lines LAYERS and
END: a layer's name, then its files (in daemon/ unless a path is given).
A .c file's module includes its .h. Every file of daemon/ must be in the
table. A file may include the headers of, and its object may use symbols
defined by, only its own module and modules of lower layers.

Usage: layers.py [--table FILE] [--graph] BUILD_DIR
Prints one line per violation and exits 1 if there is any; --graph prints
the module graph instead (who uses whom), for reading.
"""
import argparse
import os
import re
import subprocess
import sys

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


def module(path):
    return os.path.splitext(path)[0]


def read_table(path):
    layer_of, names, inside = {}, [], False
    for line in open(path):
        text = line.strip().lstrip('*').strip()
        if text == 'LAYERS (bottom first)' or text == 'LAYERS':
            inside = True
            continue
        if not inside:
            continue
        if text == 'END':
            break
        words = text.split()
        if not words:
            continue
        names.append(words[0])
        for f in words[1:]:
            p = f if '/' in f else 'daemon/' + f
            layer_of[module(p)] = len(names) - 1
    if not inside or not layer_of:
        sys.exit('layers: no LAYERS ... END table in %s' % path)
    return layer_of, names


def includes(path):
    out = []
    for n, line in enumerate(open(os.path.join(TOP, path)), 1):
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
        if m:
            out.append((n, m.group(1)))
    return out


def resolve(name, layer_of):
    for d in ('daemon', 'shm'):
        if module(d + '/' + name) in layer_of:
            return module(d + '/' + name)
    return None


def symbols(obj):
    out = subprocess.run(['nm', obj], capture_output=True, text=True,
                         check=True).stdout
    defs, undef = set(), set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in 'TDBRCGSV':
            defs.add(p[2])
        elif len(p) == 2 and p[0] == 'U':
            undef.add(p[1])
    return defs, undef


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--table', default=os.path.join(TOP, 'daemon/daemon.h'))
    ap.add_argument('--graph', action='store_true')
    ap.add_argument('build')
    a = ap.parse_args()
    layer_of, names = read_table(a.table)
    bad = []
    edges = {}

    files = sorted('daemon/' + f for f in os.listdir(os.path.join(TOP, 'daemon'))
                   if f.endswith(('.c', '.h')))
    for f in files:
        m = module(f)
        if m not in layer_of:
            bad.append('%s: not in the layer table' % f)
            continue
        for n, inc in includes(f):
            t = resolve(inc, layer_of)
            if t is None:
                bad.append('%s:%d: includes "%s", which is in no layer' % (f, n, inc))
            elif t != m:
                edges.setdefault(m, set()).add(t)
                if layer_of[t] >= layer_of[m]:
                    bad.append('%s:%d: includes "%s": layer %s, not below %s' % (
                        f, n, inc, names[layer_of[t]], names[layer_of[m]]))

    objs = {}
    for m in layer_of:
        o = os.path.join(a.build, m + '.o')
        if os.path.exists(os.path.join(TOP, m + '.c')):
            if not os.path.exists(o):
                bad.append('%s: no object; build first' % o)
                continue
            objs[m] = symbols(o)
    owner = {}
    for m, (defs, _) in objs.items():
        for s in defs:
            owner[s] = m
    for m, (_, undef) in sorted(objs.items()):
        for s in sorted(undef):
            t = owner.get(s)
            if t is None or t == m:
                continue
            edges.setdefault(m, set()).add(t)
            if layer_of[t] >= layer_of[m]:
                bad.append('%s.c uses %s from %s.c: layer %s, not below %s' % (
                    m, s, t, names[layer_of[t]], names[layer_of[m]]))

    if a.graph:
        for m in sorted(edges, key=lambda x: (layer_of.get(x, -1), x)):
            print('%s -> %s' % (m, ' '.join(sorted(edges[m]))))
        return 0
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
