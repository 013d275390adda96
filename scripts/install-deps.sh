#!/bin/sh
# install-deps.sh - installs the Debian 12 packages edibroker needs to build
# and test, but only those that are missing: a warm machine runs no apt-get.
set -eu

PKGS="build-essential pkg-config libevent-dev libxml2-dev libzmq3-dev libsystemd-dev
libsqlite3-dev libcurl4-openssl-dev libjansson-dev libinih-dev libcriterion-dev
sqlite3 python3 python3-aiosmtpd python3-zmq faketime libxml2-utils"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
