#!/bin/sh
# install-deps.sh - installs the Debian 12 packages edibroker needs to build
# and test, but only those that are missing: a warm machine runs no apt-get.
set -eu

# Build: compiler and the libraries the daemon links. Tests: Criterion, a
# Python with aiosmtpd (the SMTP server notices are sent to), libfaketime
# (the 22:00 hold under a shifted clock), systemd-analyze (unit hardening)
# and e2fsprogs' chattr (an unwritable outbox).
PKGS="build-essential pkg-config libevent-dev libxml2-dev libsystemd-dev libsqlite3-dev
libcurl4-openssl-dev libjansson-dev libcriterion-dev
python3 python3-aiosmtpd faketime systemd e2fsprogs"

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
