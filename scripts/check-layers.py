#!/usr/bin/python3
"""check-layers.py - the house rules for includes, checked in `make check`.

The source folders form layers, lowest first (LAYERS below). A file may
include headers from its own folder and from folders below it, never from
one above it: so no folder includes from a folder that includes it, directly
or through others, no subsystem includes the wiring's headers (daemon/*.h),
and codecs/ includes nothing from daemon/. Every quoted include names its
folder ("store/store.h", "codecs/base/mem.h"), resolved against the include
path the Makefile uses (-I. -Idaemon), and header basenames are unique.

Usage: check-layers.py [ROOT]   exit 0 when every rule holds, else 1 with
one "FILE:LINE: reason" per broken rule.
"""

import os
import re
import sys

# Lowest first. A folder's rank is its index; each folder is its own layer.
LAYERS = [
    "codecs/base",      # allocation, strings, UTF-8: what codecs and daemon share
    "codecs",           # pure decoders and the receipts they build
    "daemon/base",      # log, clocks, files, workers, sd_notify, fault classes
    "daemon/metrics",   # counters, gauges, histograms; the /metrics listener
    "daemon/time",      # calendar and time rules
    "daemon/conf",      # the INI reader and the configuration
    "daemon/store",     # the durable store: front end, backends, group commit
    "daemon/cluster",   # several daemons on one database: nodes and leases
    "daemon/notice",    # notice texts, channels, the status page
    "daemon/outage",    # health, outages, planned shutdowns, the procedure
    "daemon/accept",    # decode, route, commit, report
    "daemon/transport", # how messages come in and go out (spool, ...)
    "daemon/deliver",   # per-endpoint FIFO, backoff, deadlines
    "daemon/control",   # the operators' socket and its views
    "daemon",           # the wiring: main.c and broker.c
    "tools",            # edibrokerctl and other programs
]
INCLUDE_PATH = [".", "daemon"]
SOURCE_ROOTS = ["codecs", "daemon", "tools"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path):
    return os.path.dirname(path)


def resolve(root, name):
    for d in INCLUDE_PATH:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(root, p)):
            return p
    return None


def check(root):
    rank = {f: i for i, f in enumerate(LAYERS)}
    errors = []
    files = []
    for top in SOURCE_ROOTS:
        for dp, _, fn in os.walk(os.path.join(root, top)):
            for f in fn:
                if f.endswith((".c", ".h")):
                    files.append(os.path.relpath(os.path.join(dp, f), root))
    seen = {}
    for f in sorted(files):
        if f.endswith(".h"):
            base = os.path.basename(f)
            if base in seen:
                errors.append("%s:1: header name %s is also %s" % (f, base, seen[base]))
            seen[base] = f
    for f in sorted(files):
        here = folder_of(f)
        if here not in rank:
            errors.append("%s:1: folder %s is not in the layer list (scripts/check-layers.py)"
                          % (f, here))
            continue
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                name = m.group(1)
                if "/" not in name:
                    errors.append('%s:%d: include "%s" does not name its folder' % (f, n, name))
                    continue
                target = resolve(root, name)
                if not target:
                    errors.append('%s:%d: include "%s" is not found' % (f, n, name))
                    continue
                there = folder_of(target)
                if there not in rank:
                    errors.append('%s:%d: include "%s": folder %s is not in the layer list'
                                  % (f, n, name, there))
                elif rank[there] > rank[here]:
                    errors.append('%s:%d: include "%s": %s may not include from %s, a '
                                  'layer above it' % (f, n, name, here, there))
                elif rank[there] == rank[here] and there != here:
                    errors.append('%s:%d: include "%s": %s and %s share a layer'
                                  % (f, n, name, here, there))
    return errors


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    errors = check(root)
    for e in errors:
        print(e)
    if errors:
        print("check-layers: %d broken rule(s)" % len(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
