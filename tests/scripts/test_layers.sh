#!/bin/sh
# test_layers.sh - the layer check must pass on the tree and fail on a
# deliberately wrong include: a copy of the tree in which a codec includes a
# daemon header, a subsystem includes the wiring's header, an include does not
# name its folder, and a header name is used twice.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
check="$root/scripts/check-layers.py"
python3 "$check" "$root"
tmp=$(mktemp -d /tmp/test_layers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/codecs" "$root/daemon" "$root/tools" "$tmp/"

expect() { # expect PATTERN: the check fails and prints PATTERN
	if out=$(python3 "$check" "$tmp"); then
		echo "test_layers: the check passed on a broken tree ($1)"; exit 1
	fi
	echo "$out" | grep -q -- "$1" || { echo "test_layers: expected '$1' in:"; echo "$out"; exit 1; }
}
printf '#include "store/store.h"\n' >> "$tmp/codecs/oioxml.c"
expect 'codecs/oioxml.c:[0-9]*: include "store/store.h": codecs may not include from daemon/store, a layer above it'
cp "$root/codecs/oioxml.c" "$tmp/codecs/oioxml.c"
printf '#include "daemon/broker.h"\n' >> "$tmp/daemon/outage/outage.c"
expect 'daemon/outage/outage.c:[0-9]*: include "daemon/broker.h": daemon/outage may not include from daemon, a layer above it'
cp "$root/daemon/outage/outage.c" "$tmp/daemon/outage/outage.c"
printf '#include "store.h"\n' >> "$tmp/daemon/store/commit.c"
expect 'does not name its folder'
cp "$root/daemon/store/commit.c" "$tmp/daemon/store/commit.c"
cp "$root/daemon/base/log.h" "$tmp/daemon/store/log.h"
expect 'header name log.h is also'
rm "$tmp/daemon/store/log.h"
python3 "$check" "$tmp" >/dev/null
echo "test_layers: ok"
