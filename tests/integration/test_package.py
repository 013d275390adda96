"""The Debian package: `make deb`, then what an operator's `apt install`
would get.

Builds build/deb/edibroker_<version>_<arch>.deb once (debhelper, from a copy
of the sources under build/deb), then: lintian reports no error and no
warning; `dpkg-deb -c` lists exactly the expected files with their modes;
the maintainer scripts make the user before fixing the conffile's group,
enable the service and never start, stop or restart it on install or
upgrade; `dpkg -x` into a scratch folder, where `edibrokerd --check-config`
accepts the packaged conffile (and the example it was made from, once its
endpoints are uncommented) and `systemd-analyze verify` accepts the unit
with every command and man page it names.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import ROOT

DEB_DIR = os.path.join(ROOT, "build", "deb")


def changelog_version():
    with open(os.path.join(ROOT, "packaging", "debian", "changelog")) as f:
        return re.match(r"edibroker \(([^)]+)\)", f.readline()).group(1)


def make_env():
    """The environment without the jobserver of the make around us (SANITIZE stays:
    the package sets its own, and the repository's build keeps its flags)."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


# Every file the package installs, the conffile included.
EXPECTED = {
    "./lib/systemd/system/edibrokerd.service": "-rw-r--r--",
    "./usr/bin/edibrokerctl": "-rwxr-xr-x",
    "./usr/bin/edibroker-peer": "-rwxr-xr-x",
    "./usr/sbin/edibrokerd": "-rwxr-xr-x",
    "./usr/lib/sysusers.d/edibroker.conf": "-rw-r--r--",
    "./usr/lib/tmpfiles.d/edibroker.conf": "-rw-r--r--",
    "./usr/share/bash-completion/completions/edibrokerctl": "-rw-r--r--",
    "./usr/share/doc/edibroker/README.md.gz": "-rw-r--r--",
    "./usr/share/doc/edibroker/changelog.gz": "-rw-r--r--",
    "./usr/share/doc/edibroker/copyright": "-rw-r--r--",
    "./usr/share/doc/edibroker/zmq.md.gz": "-rw-r--r--",
    "./usr/share/doc/edibroker/examples/edibroker.conf.example": "-rw-r--r--",
    "./usr/share/doc/edibroker/http.md.gz": "-rw-r--r--",
    "./usr/share/edibroker/notify-sms-example.sh": "-rwxr-xr-x",
    "./usr/share/man/man1/edibroker-peer.1.gz": "-rw-r--r--",
    "./usr/share/man/man5/edibroker.conf.5.gz": "-rw-r--r--",
    "./usr/share/man/man8/edibrokerctl.8.gz": "-rw-r--r--",
    "./usr/share/man/man8/edibrokerd.8.gz": "-rw-r--r--",
    "./usr/share/lintian/overrides/edibroker": "-rw-r--r--",
    "./usr/share/edibroker/prometheus/edibroker-rules.yml": "-rw-r--r--",
    "./usr/share/edibroker/prometheus/edibroker-rules.test.yml": "-rw-r--r--",
    "./usr/share/edibroker/prometheus/edibroker-dashboard.json": "-rw-r--r--",
    "./etc/edibroker/edibroker.conf": "-rw-r-----",
}


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        r = run(["make", "-s", "-C", ROOT, "deb"], env=make_env())
        cls.build_secs = time.monotonic() - t0
        if r.returncode != 0:
            raise AssertionError("make deb failed:\n%s%s" % (r.stdout, r.stderr))
        arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()
        cls.deb = os.path.join(DEB_DIR, "edibroker_%s_%s.deb" % (changelog_version(), arch))
        cls.root = tempfile.mkdtemp(prefix="edibroker-deb-")
        r = run(["dpkg", "-x", cls.deb, cls.root])
        if r.returncode != 0:
            raise AssertionError("dpkg -x: " + r.stderr)
        cls.control = os.path.join(cls.root, "DEBIAN")
        r = run(["dpkg-deb", "-e", cls.deb, cls.control])
        if r.returncode != 0:
            raise AssertionError("dpkg-deb -e: " + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_built_where_make_deb_says(self):
        self.assertTrue(os.path.isfile(self.deb), os.listdir(DEB_DIR))
        self.assertLess(self.build_secs, 180, "make deb took %.0fs" % self.build_secs)
        # Nothing outside the repository: dpkg-buildpackage writes beside its
        # tree, which is build/deb/edibroker-<version>, not beside ROOT.
        self.assertEqual(glob.glob(os.path.join(ROOT, "..", "edibroker*_*")), [])
        self.assertTrue(glob.glob(os.path.join(DEB_DIR, "edibroker_*.changes")))

    def test_lintian_reports_no_error_and_no_warning(self):
        r = run(["lintian", "--fail-on", "error,warning", self.deb])
        tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(tags, [])

    def test_file_list(self):
        r = run(["dpkg-deb", "-c", self.deb])
        self.assertEqual(r.returncode, 0, r.stderr)
        files = {}
        for line in r.stdout.splitlines():
            f = line.split()
            perm, owner, path = f[0], f[1], f[5]
            self.assertEqual(owner, "root/root", line)
            if not perm.startswith("d"):
                files[path] = perm
        expected = dict(EXPECTED)
        # MedCom's OIOXML schemas ([broker] xsd_dir), every file of data/xsd
        for d, _, names in os.walk(os.path.join(ROOT, "data", "xsd")):
            for n in names:
                rel = os.path.relpath(os.path.join(d, n), os.path.join(ROOT, "data"))
                expected["./usr/share/edibroker/" + rel] = "-rw-r--r--"
        self.assertGreater(len(expected), len(EXPECTED) + 100, "the schemas are counted")
        self.maxDiff = None
        self.assertEqual(files, expected)
        # every file of packaging/prometheus but its README goes in
        shipped = {os.path.basename(p) for p in EXPECTED if "/prometheus/" in p}
        here = {os.path.basename(p) for p in
                glob.glob(os.path.join(ROOT, "packaging", "prometheus", "*"))}
        self.assertEqual(here - {"README.md"}, shipped)

    def test_conffile_is_declared(self):
        with open(os.path.join(self.control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/edibroker/edibroker.conf"])
        with open(os.path.join(self.root, "usr/lib/tmpfiles.d/edibroker.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^z /etc/edibroker/edibroker\.conf +0640 +root +"
                                       r"edibroker -$")
        with open(os.path.join(self.root, "usr/lib/sysusers.d/edibroker.conf")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^u edibroker - ")
        self.assertRegex(text, r"(?m)^g edibroker-admin -")

    def test_maintainer_scripts_enable_but_never_start_or_restart(self):
        def script(name):
            path = os.path.join(self.control, name)
            if not os.path.exists(path):
                return ""
            with open(path) as f:
                return f.read()
        postinst = script("postinst")
        self.assertLess(postinst.index("systemd-sysusers"), postinst.index("systemd-tmpfiles"),
                        "the group edibroker must exist before the conffile gets it")
        self.assertIn("deb-systemd-helper enable 'edibrokerd.service'", postinst)
        for name in ("preinst", "postinst", "prerm", "postrm"):
            self.assertNotRegex(script(name), r"deb-systemd-invoke\s+[^\n]*(start|restart)",
                                name)
        self.assertNotIn("deb-systemd-invoke", script("preinst"), "stopped before an upgrade")
        prerm = script("prerm")
        self.assertRegex(prerm, r'"\$1" = remove \].*\n\s*deb-systemd-invoke stop '
                                r'edibrokerd\.service')
        self.assertEqual(prerm.count("deb-systemd-invoke"), 1)

    def test_packaged_daemon_accepts_the_packaged_conffile(self):
        daemon = os.path.join(self.root, "usr/sbin/edibrokerd")
        conf = os.path.join(self.root, "etc/edibroker/edibroker.conf")
        r = run([daemon, "--check-config", conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "%s: ok (0 endpoints)" % conf)
        r = run([daemon, "--version"])
        self.assertEqual(r.stdout.strip(), "edibrokerd %s" % changelog_version())
        with open(conf) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^;\[endpoint demo-hospital\]$")
        self.assertNotRegex(text, r"(?m)^[a-z_]+ *=", "every value is commented out")
        self.assertNotIn("./var", text)
        # Removing the first ';' of the endpoints' lines gives them back.
        head, _, tail = text.partition(";[endpoint ")
        tail = re.sub(r"(?m)^;", "", "[endpoint " + tail)
        uncommented = os.path.join(self.root, "uncommented.conf")
        with open(uncommented, "w") as f:
            f.write(head + tail)
        r = run([daemon, "--check-config", uncommented])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok (2 endpoints)", r.stdout)

    def test_packaged_schemas_load(self):
        # [broker] xsd_dir's default is where the package puts MedCom's
        # OIOXML schemas; here they are under the scratch root
        daemon = os.path.join(self.root, "usr/sbin/edibrokerd")
        with open(os.path.join(self.root, "etc/edibroker/edibroker.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^;xsd_dir = /usr/share/edibroker/xsd/oioxml ")
        xsd_dir = os.path.join(self.root, "usr/share/edibroker/xsd/oioxml")
        for release in ("2005/08/07", "2006/07/01", "2007/02/01"):
            self.assertTrue(os.path.isfile(os.path.join(xsd_dir, release, "EMessage.xsd")))
        with open(os.path.join(xsd_dir, "README.md")) as f:
            self.assertIn("Copyright (c) 2014 MedCom", f.read())
        conf = os.path.join(self.root, "xsd.conf")
        for where, rc in ((xsd_dir, 0), ("/nonexistent/xsd", 78)):
            with open(conf, "w") as f:
                f.write("[broker]\nxsd_dir = %s\n[endpoint h]\nkind = hospital\n"
                        "gln = 5790000143054\ninbox = /srv/edi/h/in\noutbox = /srv/edi/h/out\n"
                        "xsd = enforce\n" % where)
            r = run([daemon, "--check-config", conf])
            self.assertEqual(r.returncode, rc, r.stdout + r.stderr)
            if rc:
                self.assertIn("xsd_dir", r.stderr)

    def test_systemd_accepts_the_unit(self):
        # A root with systemd's own units beside the package's, so the unit's
        # dependencies resolve; commands and man pages are looked up in it.
        units = os.path.join(self.root, "lib/systemd/system")
        r = run(["cp", "-a", "--update=none", "/lib/systemd/system/.", units])
        if r.returncode != 0:
            r = run(["cp", "-an", "/lib/systemd/system/.", units])
        self.assertEqual(r.returncode, 0, r.stderr)
        env = dict(os.environ, MANPATH=os.path.join(self.root, "usr/share/man"))
        r = run(["systemd-analyze", "verify", "--root=" + self.root, "edibrokerd.service"],
                env=env)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        with open(os.path.join(units, "edibrokerd.service")) as f:
            unit = f.read()
        self.assertIn("ExecReload=/usr/sbin/edibrokerd --reload $MAINPID", unit)
        self.assertNotRegex(unit, r"(?m)^Exec.*/bin/kill")


if __name__ == "__main__":
    unittest.main()
