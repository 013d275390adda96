#!/bin/sh
# with-pg.sh CMD [ARG...] - runs CMD beside a throw-away PostgreSQL server.
#
# The server is Debian's (package postgresql, any version under
# /usr/lib/postgresql/*/bin): initdb into a new temporary folder as an
# unprivileged user (nobody when run as root: initdb refuses root), on a
# free loopback port, its socket in that folder. CMD finds it through
# EDIBROKER_TEST_PG_URL (and EDIBROKER_TEST_PG_BIN, EDIBROKER_TEST_PG_DATA,
# EDIBROKER_TEST_PG_USER for tests that stop and start it). The server is
# stopped (-m immediate) and its folder removed when CMD ends, whatever
# happens; CMD's exit status is ours.
#
# PG_FSYNC=on keeps fsync (benchmarks); unit tests run without it.
set -eu

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
	echo "with-pg: PostgreSQL is not installed (apt-get install postgresql)" >&2
	exit 1
fi
DIR=$(mktemp -d /tmp/edibroker-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
	PGUSER_OS=nobody
	chown nobody "$DIR"
	as() { runuser -u nobody -- "$@"; }
else
	PGUSER_OS=$(id -un)
	as() { "$@"; }
fi
cleanup() {
	as "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

as "$BIN/initdb" -D "$DIR/data" -U edibroker -A trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 || {
	cat "$DIR/initdb.log" >&2
	exit 1
}
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FSYNC=${PG_FSYNC:-off}
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
fsync = $FSYNC
full_page_writes = $FSYNC
synchronous_commit = on
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
CONF
as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 start >/dev/null || {
	cat "$DIR/server.log" >&2
	exit 1
}
as "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U edibroker edibroker

export EDIBROKER_TEST_PG_URL="postgresql://edibroker@127.0.0.1:$PORT/edibroker"
export EDIBROKER_TEST_PG_BIN="$BIN"
export EDIBROKER_TEST_PG_DATA="$DIR/data"
export EDIBROKER_TEST_PG_USER="$PGUSER_OS"
export EDIBROKER_TEST_PG_PORT="$PORT"
status=0
"$@" || status=$?
exit $status
