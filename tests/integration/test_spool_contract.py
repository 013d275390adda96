"""The spool contract with EOJ vendors, with real users.

The daemon runs as a user of its own (ebit-broker, like the service user
edibroker), member of the EOJ client's group (ebit-eoj); the EOJ client
runs as ebit-eoj through runuser. Folders are made as edibroker.conf(5)'s
DEPLOYMENT says: owner the broker, group the client's, mode 2770 (or 0770
where the test wants no setgid). Checks that the client reads what is
delivered to it with file_group, and with a setgid outbox instead, and not
without either; that file_group is checked at start-up with the file and
line; and that an inbox file the broker may not read is reported once, is
visible in `edibrokerctl status`, and is picked up once the client fixes
its mode.

Users and groups are made with useradd/groupadd and removed afterwards
(the test runs as root, as CI does).
"""

import grp
import os
import pwd
import signal
import subprocess
import time
import unittest

from harness import (BIN, BrokerTest, drop, listdir_final, sample, wait_for,
                     with_ids)

BROKER_USER = "ebit-broker"
CLIENT = "ebit-eoj"      # the EOJ client's user and group
OTHER = "ebit-other"     # a group the broker is not in


def run(*cmd, check=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("%s: %d %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def remove_accounts():
    for u in (BROKER_USER, CLIENT):
        run("userdel", u, check=False)
    for g in (CLIENT, OTHER, BROKER_USER):
        run("groupdel", g, check=False)


def as_client(*cmd):
    """Runs cmd as the EOJ client's user, with a umask of 0027."""
    return subprocess.run(["runuser", "-u", CLIENT, "--", "sh", "-c", "umask 027; exec \"$@\"",
                           "sh"] + list(cmd), capture_output=True, timeout=30)


class SpoolContract(BrokerTest):
    @classmethod
    def setUpClass(cls):
        remove_accounts()  # what an interrupted run may have left
        run("groupadd", "--system", CLIENT)
        run("groupadd", "--system", OTHER)
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--gid", CLIENT, CLIENT)
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--user-group", "--groups", CLIENT, BROKER_USER)

    @classmethod
    def tearDownClass(cls):
        remove_accounts()

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.buid = pwd.getpwnam(BROKER_USER).pw_uid
        self.bgid = pwd.getpwnam(BROKER_USER).pw_gid
        self.cgid = grp.getgrnam(CLIENT).gr_gid

    def contract_broker(self, outbox_mode=0o2770, endpoint_extra=None):
        """A broker running as BROKER_USER on folders made per the contract."""
        b = self.broker(endpoint_extra=endpoint_extra or {},
                        popen_kw={"user": BROKER_USER, "group": BROKER_USER,
                                  "extra_groups": [CLIENT]})
        os.chmod(b.notify.path, 0o666)
        os.makedirs(b.state, 0o750)
        os.chown(b.state, self.buid, self.bgid)
        os.makedirs(b.spool)
        os.chmod(b.spool, 0o755)
        for ep in ("hospital", "municipality"):
            for d, mode in ((b.inbox(ep), 0o2770), (b.outbox(ep), outbox_mode)):
                os.makedirs(d)
                os.chown(os.path.dirname(d), self.buid, self.cgid)
                os.chmod(os.path.dirname(d), 0o750)
                os.chown(d, self.buid, self.cgid)
                os.chmod(d, mode)
        return b

    def deliver_one(self, b, name="dis20.xml"):
        data = sample("DIS20_1.xml")
        drop(b.inbox("hospital"), name, data)
        files = wait_for(lambda: listdir_final(b.outbox("municipality")), what="delivery")
        self.assertEqual(len(files), 1, files)
        return os.path.join(b.outbox("municipality"), files[0]), data

    def test_client_reads_its_outbox_with_file_group(self):
        b = self.contract_broker(outbox_mode=0o770,
                                 endpoint_extra={"municipality": "file_group = %s" % CLIENT})
        b.start()
        path, data = self.deliver_one(b)
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                         (self.buid, self.cgid, 0o640))
        r = as_client("cat", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)
        # ... and collects it: the folder is the client's to clean.
        r = as_client("rm", path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_client_cannot_read_without_file_group_or_setgid(self):
        b = self.contract_broker(outbox_mode=0o770).start()
        path, _ = self.deliver_one(b)
        st = os.stat(path)
        self.assertEqual((st.st_gid, st.st_mode & 0o7777), (self.bgid, 0o640))
        r = as_client("cat", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"Permission denied", r.stderr)

    def test_setgid_outbox_is_the_alternative(self):
        b = self.contract_broker(outbox_mode=0o2770,
                                 endpoint_extra={"municipality": "file_mode = 0440"}).start()
        path, data = self.deliver_one(b)
        st = os.stat(path)
        self.assertEqual((st.st_gid, st.st_mode & 0o7777), (self.cgid, 0o440))
        r = as_client("cat", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)

    def start_refused(self, group, why):
        b = self.contract_broker(endpoint_extra={"municipality": "file_group = %s" % group})
        lines = b.config_text().splitlines()
        line = lines.index("file_group = %s" % group) + 1
        where = r"edibroker\.conf:%d: endpoint 'municipality': file_group: " % line
        b.start(wait_ready=False)
        self.assertEqual(b.proc.wait(15), 78, b.log())
        self.assertRegex(b.log(), where + why)
        r = subprocess.run(["runuser", "-u", BROKER_USER, "--",
                            os.path.join(BIN, "edibrokerd"), "--check-config", b.conf],
                           capture_output=True, text=True, timeout=15)
        self.assertEqual(r.returncode, 78, r.stdout)
        self.assertRegex(r.stderr, where + why)

    def test_start_refuses_a_group_the_daemon_is_not_in(self):
        self.start_refused(OTHER, r"edibrokerd runs as %s, which is not a member of group "
                                  r"'%s' \(adduser %s %s, then restart it\)"
                           % (BROKER_USER, OTHER, BROKER_USER, OTHER))

    def test_start_refuses_a_group_that_does_not_exist(self):
        self.start_refused("ebit-nosuchgroup", r"no group called 'ebit-nosuchgroup'")

    def test_reload_to_an_unusable_group_holds_the_endpoint_with_the_line(self):
        b = self.contract_broker(outbox_mode=0o770,
                                 endpoint_extra={"municipality": "file_group = %s" % CLIENT})
        b.start()
        self.deliver_one(b, "first.xml")
        b.endpoint_extra["municipality"] = "file_group = %s" % OTHER
        b.write_config()
        line = b.config_text().splitlines().index("file_group = %s" % OTHER) + 1
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.notify.count("READY=1") == 2, what="READY=1 after the reload")
        drop(b.inbox("hospital"), "second.xml", with_ids(sample("DIS20_1.xml"), "E2", "L2"))
        wait_for(lambda: b.endpoint("municipality")["queued"] == 1, what="queued")
        ep = wait_for(lambda: (lambda e: e if e["last_error"] else None)(
            b.endpoint("municipality")), what="the delivery refused")
        self.assertRegex(ep["last_error"], r"edibroker\.conf:%d: file_group: edibrokerd runs "
                                           r"as %s, which is not a member of group '%s'"
                         % (line, BROKER_USER, OTHER))
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 1)
        b.endpoint_extra["municipality"] = "file_group = %s" % CLIENT
        b.write_config()
        b.signal(signal.SIGHUP)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2,
                 what="delivered once the group is usable again")

    def test_unreadable_inbox_file_reported_once_then_picked_up(self):
        b = self.contract_broker().start()
        inbox = b.inbox("hospital")
        tmp = os.path.join(inbox, ".eoj.tmp")
        final = os.path.join(inbox, "eoj.xml")
        data = with_ids(sample("DIS20_1.xml"), "EU1", "LU1")
        # The client writes with umask 077: a file only it may read.
        r = subprocess.run(["runuser", "-u", CLIENT, "--", "sh", "-c",
                            "umask 077; cat > \"$1\" && mv \"$1\" \"$2\"", "sh", tmp, final],
                           input=data, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        gone = os.path.join(inbox, "gone.xml")
        r = subprocess.run(["runuser", "-u", CLIENT, "--", "sh", "-c",
                            "umask 077; cat > \"$1\"", "sh", gone], input=data,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: b.endpoint("hospital")["inbox_unreadable"] == 2,
                 what="the unreadable files in status")
        # One the client takes back leaves the count at the next rescan.
        r = as_client("rm", gone)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: b.endpoint("hospital")["inbox_unreadable"] == 1,
                 what="the removed file out of the count")
        time.sleep(3.5)  # three rescans (rescan_interval = 1s): still said once
        lines = b.log_lines(r"event=inbox-unreadable endpoint=hospital file=eoj\.xml")
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(len(b.log_lines(r"event=inbox-unreadable")), 2)
        self.assertRegex(lines[0], r"endpoint=hospital file=eoj\.xml "
                                   r"error=\"Permission denied\" state=left-in-inbox")
        self.assertTrue(os.path.exists(final), "the broker must leave it in the inbox")
        self.assertEqual(b.log().count("inbox-read-failed"), 0)
        rc, out, _ = b.ctl_text("status")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"hospital: 1 inbox file\(s\) the broker may not read")
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        # The client fixes its mode: picked up at the next rescan.
        r = as_client("chmod", "0640", final)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: listdir_final(b.outbox("municipality")), what="delivery after chmod")
        wait_for(lambda: not os.path.exists(final), what="the inbox file removed")
        self.assertEqual(b.endpoint("hospital")["inbox_unreadable"], 0)
        self.assertEqual(len(b.log_lines(r"event=inbox-readable endpoint=hospital "
                                         r"file=eoj\.xml")), 1)
        rc, out, _ = b.ctl_text("status")
        self.assertNotRegex(out, r"may not read")


if __name__ == "__main__":
    unittest.main()
