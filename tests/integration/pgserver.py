"""A throw-away PostgreSQL server for scenarios with a shared store.

Debian's postgresql (any version under /usr/lib/postgresql/*/bin): initdb
into a folder of the test's own as an unprivileged user (nobody when the
tests run as root: initdb refuses root), a free loopback port, the socket
in that folder. fsync stays on unless asked: the scenarios kill the server
with `pg_ctl stop -m immediate` and count on what it acknowledged.

Every process started here is stopped by the pg_ctl of its data folder.
"""

import glob
import os
import pwd
import shutil
import subprocess
import time

from harness import free_port  # noqa: F401  (the scenarios take it from here too)


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: [int(x) for x in d.split("/")[-2].split(".") if x.isdigit()])
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    raise AssertionError("PostgreSQL is not installed (apt-get install postgresql)")


class PgServer:
    """One PostgreSQL cluster in root/pg, running as nobody when we are root."""

    def __init__(self, root, fsync=True, settings=None):
        self.bin = pg_bin()
        self.dir = os.path.join(root, "pg")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        os.makedirs(self.dir)
        self.user = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            pw = pwd.getpwnam("nobody")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(root, os.stat(root).st_mode | 0o711)  # nobody reaches its folder
        self.port = free_port()
        self._as("initdb", "-D", self.data, "-U", "edibroker", "-A", "trust", "-E", "UTF8",
                 "--no-sync")
        conf = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.dir,
            "fsync": "on" if fsync else "off", "synchronous_commit": "on",
            "max_connections": "100", "shared_buffers": "64MB",
            "log_min_messages": "warning",
        }
        conf.update(settings or {})
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        self.start()
        self._as("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "edibroker",
                 "edibroker")
        self.url = "postgresql://edibroker@127.0.0.1:%d/edibroker" % self.port

    def _as(self, prog, *args, check=True, timeout=60):
        cmd = [os.path.join(self.bin, prog)] + list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s %s" % (prog, r.returncode, r.stdout,
                                                            r.stderr))
        return r

    def start(self):
        self._as("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop_immediate(self):
        """The server dies as in a crash: no checkpoint, clients cut off."""
        self._as("pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=False)

    def sql(self, query):
        """Runs query with psql; its rows as lists of strings."""
        r = self._as("psql", "-X", "-q", "-A", "-t", "-F", "\t", "-h", "127.0.0.1", "-p",
                     str(self.port), "-U", "edibroker", "-d", "edibroker", "-c", query)
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def close(self):
        self.stop_immediate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_up(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._as("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError("PostgreSQL did not come up")
