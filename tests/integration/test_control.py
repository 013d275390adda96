"""The control socket as a trust boundary, and retention of patient data.

- Roles: a client running as uid nobody (the socket made reachable for it)
  reads the status but is refused opening and closing outages and adding
  planned shutdowns; a member of the operator group (a group and a user the
  test creates and removes) may, and the daemon gives the socket that
  group. Every change is logged with uid and user name and stored with the
  record (changed_by); every refusal is logged.
- Bounds: a client that pipelines requests and never reads is no longer
  read from, so the daemon stays small while another client is served at
  once; idle connections beyond max_connections get a polite error line
  and the idle timeout frees their slots; an over-long request and a cause
  with control characters get specific errors.
- Retention: with a short [store] dead_retention and [quarantine]
  retention, an old dead letter loses its body (the record stays) and an
  old quarantined file and its .reason go - except one kept with
  `edibrokerctl keep`, until `keep --release`.
- $RUNTIME_DIRECTORY: the socket goes there when control_socket is unset.
"""

import json
import os
import socket
import sqlite3
import subprocess
import time

from harness import BIN, BrokerTest, drop, listdir_final, sample, wait_for, with_ids

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
UNKNOWN_GLN = "5790000999999"


def ctl_as(prefix, sock, *args):
    r = subprocess.run(prefix + [os.path.join(BIN, "edibrokerctl"), "-s", sock] + list(args),
                       capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout, r.stderr


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def read_line(s):
    """One answer line from s (b"" when the daemon closed first)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def closed_by_daemon(s, timeout):
    """True when the daemon closes s within timeout (reads and drops answers)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


class Roles(BrokerTest):
    def setUp(self):
        super().setUp()
        tag = "%d" % os.getpid()
        self.group = "ebit-ops-" + tag
        self.user = "ebit-op-" + tag
        subprocess.run(["groupadd", "--system", self.group], check=True, timeout=20)
        self.addCleanup(subprocess.run, ["groupdel", self.group], timeout=20)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--gid", "nogroup", "--groups", self.group, self.user],
                       check=True, timeout=20)
        self.addCleanup(subprocess.run, ["userdel", self.user], timeout=20)
        self.gid = int(subprocess.run(["getent", "group", self.group], capture_output=True,
                                      text=True, check=True).stdout.split(":")[2])
        self.uid = int(subprocess.run(["id", "-u", self.user], capture_output=True, text=True,
                                      check=True).stdout)
        self.operator = ["setpriv", "--reuid=" + self.user, "--regid=nogroup", "--init-groups"]

    def test_reader_reads_operator_changes_and_both_are_audited(self):
        b = self.broker(extra="\n[control]\noperator_group = %s\n" % self.group).start()
        # Let others traverse to the socket; the socket's own mode decides.
        os.chmod(self.tmp, 0o711)
        os.chmod(b.state, 0o711)
        wait_for(lambda: os.stat(b.sock).st_gid == self.gid,
                 what="the socket's group set to the operator group")
        self.assertEqual(os.stat(b.sock).st_mode & 0o777, 0o660)

        # The operator reaches the socket through its group, and may change.
        rc, out, err = ctl_as(self.operator, b.sock, "outage", "open", "hospital",
                              "--cause", "EOJ opgraderes")
        self.assertEqual(rc, 0, err)
        oid = int(out.split()[-1])
        rc, out, err = ctl_as(NOBODY, b.sock, "status")
        self.assertNotEqual(rc, 0, "nobody cannot even connect to a 0660 socket")
        self.assertIn("cannot reach edibrokerd", err)

        # "the socket made reachable": now nobody connects, and may only read.
        os.chmod(b.sock, 0o666)
        rc, out, err = ctl_as(NOBODY, b.sock, "status")
        self.assertEqual(rc, 0, err)
        self.assertIn("hospital", out)
        rc, out, err = ctl_as(NOBODY, b.sock, "outage", "show", str(oid))
        self.assertEqual(rc, 0, err)
        for args, what in (
                (("outage", "close", str(oid)), "outage close"),
                (("outage", "open", "municipality", "--cause", "x"), "outage open"),
                (("maintenance", "add", "hospital", "--from", "2031-01-01 06:00",
                  "--to", "2031-01-01 08:00", "--reason", "stille"), "maintenance add")):
            rc, out, err = ctl_as(NOBODY, b.sock, *args)
            self.assertEqual(rc, 1, "%s: %s" % (what, out))
            self.assertIn("permission denied: %s needs root, the root user or group %s"
                          % (what, self.group), err)
        self.assertEqual(b.ctl("outages")["outages"][0]["state"], "open", "still open")
        self.assertEqual(b.ctl("maintenance", "list")["maintenance"], [])
        denied = b.log_lines(r"event=control-denied uid=65534 user=nobody .*verb=outage "
                             r"action=close")
        self.assertEqual(len(denied), 1, b.log())

        # The operator closes it and plans a shutdown: logged and stored.
        rc, out, err = ctl_as(self.operator, b.sock, "outage", "close", str(oid))
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl_as(self.operator, b.sock, "maintenance", "add", "hospital",
                              "--from", "2031-01-01 06:00", "--to", "2031-01-01 08:00",
                              "--reason", "Opgradering")
        self.assertEqual(rc, 0, err)
        by = "%s (uid %d)" % (self.user, self.uid)
        self.assertEqual(b.ctl("outage", "show", str(oid))["outage"]["changed_by"], by)
        windows = b.ctl("maintenance", "list")["maintenance"]
        self.assertEqual([w["changed_by"] for w in windows], [by])
        rc, out, err = b.ctl_text("outage", "show", str(oid))
        self.assertRegex(out, r"changed_by\s+\"%s\"" % by.replace("(", r"\(").replace(")", r"\)"))
        for action, key in (("open", "outage=%d" % oid), ("close", "outage=%d" % oid),
                            ("add", "maintenance=%d" % windows[0]["id"])):
            lines = b.log_lines(r"event=control-change verb=\w+ action=%s uid=%d user=%s .*%s$"
                                % (action, self.uid, self.user, key))
            self.assertEqual(len(lines), 1, "%s: %s" % (action, b.log()[-3000:]))


class Bounds(BrokerTest):
    def test_pipelining_client_that_never_reads_is_held_back(self):
        b = self.broker(extra="\n[control]\nidle_timeout = 3s\n").start()
        greedy = connect(b.sock)
        greedy.setblocking(False)
        burst = b'{"cmd":"status"}\n' * 2000
        sent, stalled_since, deadline = 0, None, time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                sent += greedy.send(burst)
                stalled_since = None
            except BlockingIOError:
                now = time.monotonic()
                stalled_since = stalled_since or now
                if now - stalled_since > 2:
                    break
                time.sleep(0.01)
        self.assertIsNotNone(stalled_since, "the daemon kept reading %d bytes" % sent)
        self.assertLess(sent, 16 << 20, "it stopped reading early")
        rss = rss_kib(b.proc.pid)
        self.assertLess(rss, 200 * 1024, "RSS %d KiB" % rss)
        t0 = time.monotonic()
        self.assertEqual(len(b.status()["endpoints"]), 2)
        self.assertLess(time.monotonic() - t0, 2.0, "another client waited")
        # A client that takes no answers is closed after idle_timeout.
        wait_for(lambda: b.log_lines(r"event=control-timeout .*answers-not-taken"), timeout=10,
                 what="the greedy client closed")
        greedy.close()

    def test_idle_connections_do_not_lock_out_operators(self):
        b = self.broker(extra="\n[control]\nmax_connections = 4\nidle_timeout = 1500ms\n").start()
        idle = [connect(b.sock) for _ in range(4)]
        extra = connect(b.sock)
        answer = json.loads(read_line(extra))
        self.assertEqual(answer, {"ok": False, "error": "too many connections to the control "
                                                        "socket (4); try again later"})
        self.assertEqual(extra.recv(1), b"", "and closed")
        rc, out, err = b.ctl_text("status")
        self.assertEqual(rc, 1, "refused at once, not left waiting")
        self.assertIn("too many connections", err)
        self.assertTrue(all(closed_by_daemon(s, 5) for s in idle), "idle slots freed")
        self.assertEqual(b.ctl("status")["ok"], True)
        self.assertTrue(b.log_lines(r"event=control-refused reason=too-many-connections max=4"))

    def test_overlong_request_and_control_characters_get_specific_errors(self):
        b = self.broker().start()
        s = connect(b.sock)
        s.sendall(b"x" * (70 * 1024))
        self.assertEqual(json.loads(read_line(s)),
                         {"ok": False, "error": "request longer than 65536 bytes"})
        self.assertTrue(closed_by_daemon(s, 5))
        s = connect(b.sock)
        for req, error in (
                ({"cmd": "outage", "action": "open", "endpoint": "hospital",
                  "cause": "nede\u0007 event=outage-closed"},
                 "cause: control characters are not allowed (at byte 4)"),
                ({"cmd": "outage", "action": "open", "endpoint": "hospital", "cause": "x" * 301},
                 "cause: longer than 300 bytes"),
                ({"cmd": "maintenance", "action": "add", "endpoint": "hospital",
                  "from": "2031-01-01 06:00", "to": "2031-01-01 08:00", "reason": "a\nb"},
                 "reason: control characters are not allowed (at byte 1)")):
            s.sendall(json.dumps(req).encode() + b"\n")
            self.assertEqual(json.loads(read_line(s)), {"ok": False, "error": error})
        s.sendall(b'{"cmd":"status"}\n')
        self.assertTrue(json.loads(read_line(s))["ok"], "the connection goes on")
        s.close()
        rc, out, err = b.ctl_text("outage", "open", "hospital", "--cause", "to\nlines")
        self.assertEqual(rc, 1)
        self.assertIn("cause: control characters are not allowed", err)
        self.assertEqual(b.ctl("outages")["outages"], [], "nothing was opened")


class Retention(BrokerTest):
    def dead_letter(self, b, i):
        drop(b.inbox("hospital"), "dead%d.xml" % i,
             with_ids(sample("DIS20_1.xml"), "DE%d" % i, "DL%d" % i, receiver=UNKNOWN_GLN))

    def test_old_dead_bodies_and_quarantine_files_go_unless_kept(self):
        b = self.broker().start()
        for i in range(2):
            self.dead_letter(b, i)
            drop(b.inbox("hospital"), "bad%d.xml" % i, b"<not-xml")
        dead = wait_for(lambda: len(b.ctl("dead")["messages"]) == 2 and b.ctl("dead"),
                        what="two dead letters")["messages"]
        quar = wait_for(lambda: len(b.ctl("quarantine")["messages"]) == 2
                        and b.ctl("quarantine"), what="two quarantined files")["messages"]
        for q in quar:
            self.assertTrue(os.path.exists(q["file"]), q)
            self.assertTrue(os.path.exists(q["file"] + ".reason"), q)
            self.assertEqual(q["source"], "hospital")
            self.assertEqual(q["error"], "structure")
            self.assertIsNone(q["removed_ms"])
        rc, out, _ = b.ctl_text("quarantine")
        self.assertIn(quar[0]["file"], out)
        kept_dead, kept_quar = dead[1]["id"], quar[1]["id"]
        self.assertEqual(b.ctl("keep", str(kept_dead))["keep"], True)
        self.assertEqual(b.ctl("keep", str(kept_quar))["keep"], True)
        self.assertTrue(b.log_lines(r"event=control-change verb=keep action=keep uid=0 "
                                    r"user=root .*msg=%d$" % kept_dead))
        answer = b.ctl("keep", str(dead[0]["id"] + quar[0]["id"] + 1000), check=False)
        self.assertIn("no dead letter or quarantined file", answer["error"])

        # Now make their retention short (a reload), and let housekeeping run.
        b.extra = "\n[store]\ndead_retention = 1s\n[quarantine]\nretention = 1s\n"
        b.write_config()
        b.signal(1)  # SIGHUP
        wait_for(lambda: b.log_lines(r"event=reloaded"), what="reload")
        wait_for(lambda: not os.path.exists(quar[0]["file"]), timeout=30,
                 what="old quarantine file removed")
        self.assertFalse(os.path.exists(quar[0]["file"] + ".reason"))
        wait_for(lambda: self.removed(b, "dead", dead[0]["id"]), timeout=30,
                 what="old dead-letter body dropped")
        self.assertTrue(self.removed(b, "quarantine", quar[0]["id"]), "the row stays, marked")
        self.assertIsNone(self.body(b, dead[0]["id"]), "the body is gone from the store")
        self.assertEqual(b.ctl("dead")["dead"], 2, "the record stays")
        rc, out, _ = b.ctl_text("dead")
        self.assertIn("(body removed)", out)
        self.assertIn("(kept)", out)
        self.assertIsNotNone(self.body(b, kept_dead), "kept")
        self.assertTrue(os.path.exists(quar[1]["file"]), "kept")
        self.assertFalse(self.removed(b, "dead", kept_dead))

        # Released, retention takes them too.
        self.assertEqual(b.ctl("keep", "--release", str(kept_dead))["keep"], False)
        self.assertEqual(b.ctl("keep", "--release", str(kept_quar))["keep"], False)
        wait_for(lambda: not os.path.exists(quar[1]["file"]), timeout=30,
                 what="released quarantine file removed")
        wait_for(lambda: self.body(b, kept_dead) is None, timeout=30,
                 what="released dead-letter body dropped")
        answer = b.ctl("keep", str(kept_dead), check=False)
        self.assertIn("retention has already removed its body", answer["error"])
        self.assertEqual(listdir_final(b.quarantine("hospital")), [])

    @staticmethod
    def removed(b, verb, id_):
        rows = [m for m in b.ctl(verb)["messages"] if m["id"] == id_]
        return bool(rows) and rows[0]["removed_ms"] is not None

    @staticmethod
    def body(b, id_):
        db = sqlite3.connect("file:%s/edibroker.db?mode=ro" % b.state, uri=True, timeout=5)
        try:
            row = db.execute("SELECT length(body) FROM bodies WHERE id = ?", (id_,)).fetchone()
        finally:
            db.close()
        return row[0] if row else None


class RuntimeDirectory(BrokerTest):
    def test_socket_in_runtime_directory_unless_configured(self):
        run = os.path.join(self.tmp, "run")
        os.mkdir(run, 0o755)
        b = self.broker(env={"RUNTIME_DIRECTORY": run})
        b.sock = os.path.join(run, "control.sock")
        b.start()
        self.assertEqual(b.status()["ok"], True)
        self.assertFalse(os.path.exists(os.path.join(b.state, "control.sock")))
        r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "--json", "status"],
                           env=dict(os.environ, EDIBROKER_SOCKET=b.sock),
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(b.sock), "removed at exit")

        # A control_socket written in the file wins over RUNTIME_DIRECTORY.
        mine = os.path.join(self.tmp, "mine.sock")
        b.write_config(b.config_text().replace("[broker]\n", "[broker]\ncontrol_socket = %s\n"
                                               % mine, 1))
        b.sock = mine
        b.start()
        self.assertEqual(b.status()["ok"], True)
        self.assertFalse(os.path.exists(os.path.join(run, "control.sock")))
        # edibrokerctl -c finds it from the config
        r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "-c", b.conf, "--json", "status"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
