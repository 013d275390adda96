#!/bin/sh
# install-deps.sh - installs the Debian 12 packages edibroker needs to build
# and test, but only those that are missing: a warm machine runs no apt-get.
set -eu

# Build: compiler and the libraries the daemon links; scdoc (man pages);
# debhelper (`make deb`). Tests: Criterion, a Python with aiosmtpd (the SMTP
# server notices are sent to), libfaketime (the 22:00 hold under a shifted
# clock), systemd-analyze (unit hardening, `verify` of the packaged unit),
# e2fsprogs' chattr (an unwritable outbox), lintian (the package), man-db
# (man pages render), bash-completion (edibrokerctl's completion), passwd's
# useradd (the EOJ client as a user of its own), chromium (the status page
# measured and photographed in a real browser, headless).
PKGS="build-essential pkg-config libevent-dev libssl-dev libxml2-dev libsystemd-dev libsqlite3-dev
libcurl4-openssl-dev libjansson-dev libcriterion-dev scdoc debhelper
python3 python3-aiosmtpd faketime systemd e2fsprogs lintian man-db bash-completion passwd
chromium"

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
