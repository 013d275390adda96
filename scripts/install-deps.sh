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
# measured and photographed in a real browser, headless), prometheus (only
# for its promtool: a scrape, the alerting rules and their tests are
# checked with it; the Prometheus server it brings is never started), openssl
# (a test CA, server and client certificates for HTTPS tests). libzmq3-dev:
# the ZeroMQ peer link (CURVE through its libsodium); python3-zmq: tests that
# speak raw ZeroMQ to it (spoofed routing ids, bad frames). libpq-dev: the
# PostgreSQL store; postgresql: the server its tests start (initdb and
# pg_ctl under /usr/lib/postgresql/*/bin; its own cluster is not used).
PKGS="build-essential pkg-config libevent-dev libssl-dev libxml2-dev libsystemd-dev libsqlite3-dev
libcurl4-openssl-dev libjansson-dev libzmq3-dev libcriterion-dev scdoc debhelper libpq-dev
python3 python3-aiosmtpd python3-zmq faketime systemd e2fsprogs lintian man-db bash-completion passwd
chromium prometheus openssl postgresql"

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
# The prometheus package's postinst starts its server (invoke-rc.d,
# deb-systemd-invoke): a policy-rc.d that says no stops that, and the unit
# is disabled afterwards so no later boot starts it either. An existing
# policy-rc.d (a container's) is left as it is.
policy=/usr/sbin/policy-rc.d
made_policy=
case " $missing " in
*" prometheus "*)
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# install-deps.sh: start no service while installing\nexit 101\n' |
			$SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		made_policy=yes
	fi
	;;
esac
cleanup() {
	if [ -n "$made_policy" ]; then
		$SUDO rm -f "$policy"
	fi
}
trap cleanup EXIT
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
case " $missing " in
*" prometheus "*)
	$SUDO deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
	$SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
	;;
esac
