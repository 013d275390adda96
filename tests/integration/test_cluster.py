"""Several daemons on one PostgreSQL database (issue 15), with a real server.

Two edibrokerd share the database and the same spool folders. The first
to start holds every lease; the other waits. Scenarios:

- `edibrokerd --check-config` connects, reports the schema (to be created,
  then current) and changes nothing; a database nobody serves fails it;
- an orderly stop hands the work over at once (released leases), and
  `edibrokerctl status` on either node shows both nodes and who delivers;
- a hold (and a release) given on the node that delivers nothing takes
  effect on the one that delivers within a lease round;
- the proof of the issue: 2,000 messages flow while the holder is paused
  (SIGSTOP) past its lease and resumed, the other node, holder by then, is
  killed (SIGKILL), and the database is stopped (-m immediate) and started
  again; meanwhile an endpoint is down long enough for the outage procedure
  to send notices. Afterwards every message is in the outbox exactly once by
  content, under one name; each sender's messages appeared in the order they
  were dropped; nothing is left queued or in the inbox; and each notice of
  the outage was composed and sent once.
"""

import ctypes
import os
import select
import signal
import struct
import subprocess
import threading
import time
import urllib.request

from harness import (BIN, Broker, HOSPITAL_GLN, MUNICIPALITY_GLN, NoticeTest, TIMEOUT_SCALE,
                     drop, listdir_final, sample, wait_for, with_ids)
from pgserver import PgServer, free_port

SENDERS = [HOSPITAL_GLN, "5790002515200"]  # the hospital's two GLNs
LEASE = "3s"


def gln(base12):
    """A GLN-13 with its check digit (mod 10, weights 1 and 3 from the left)."""
    s = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(base12))
    return base12 + str((10 - s % 10) % 10)


LAB_GLN = gln("579000099990")


class OutboxWatch:
    """inotify on a folder: the final names renamed into it (IN_MOVED_TO), in
    the kernel's order - a listing races with renames under way and may
    show a later file before an earlier one."""

    IN_MOVED_TO, IN_Q_OVERFLOW, IN_NONBLOCK = 0x80, 0x4000, 0o4000

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self.libc.inotify_add_watch(self.fd, path.encode(), self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def arrivals(self, timeout):
        if not select.select([self.fd], [], [], timeout)[0]:
            return []
        buf, names, at = os.read(self.fd, 1 << 16), [], 0
        while at < len(buf):
            _, mask, _, n = struct.unpack_from("iIII", buf, at)
            name = buf[at + 16:at + 16 + n].split(b"\0", 1)[0].decode()
            at += 16 + n
            if mask & self.IN_Q_OVERFLOW:
                raise AssertionError("inotify queue overflow: the order is lost")
            if not name.startswith("."):
                names.append(name)
        return names

    def close(self):
        os.close(self.fd)


class ClusterTest(NoticeTest):

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.pg = PgServer(self.tmp)
        self.spool = os.path.join(self.tmp, "spool")

    def tearDown(self):
        # the server first: the base class removes the temp folder, and
        # pg_ctl cannot stop a server whose data folder is gone (the
        # postmaster then lingers until it notices its lock file is)
        self.pg.close()
        super().tearDown()

    def node(self, name, outage=False, metrics_port=None, lease=LEASE, stop_timeout=None):
        """A daemon of the cluster: its own state, config and log; the spool
        folders and the database every node shares."""
        root = os.path.join(self.tmp, name)
        os.makedirs(root)
        extra = ("[store]\nbackend = postgresql\nurl = %s\nlease = %s\nnode = %s\n\n"
                 % (self.pg.url, lease, name))
        if stop_timeout:
            extra += "[broker]\nstop_timeout = %s\n\n" % stop_timeout
        if metrics_port:
            extra += "[metrics]\nlisten = 127.0.0.1:%d\n\n" % metrics_port
        if outage:
            extra += ("[outage]\nthreshold = 5s\nupdate_interval = 1h\nprobe_interval = 300ms\n"
                      "down_after = 2\nsend_window = 00:00-24:00\ntimezone = Europe/Copenhagen\n\n"
                      "[notify]\nsmtp_url = %s\nsmtp_starttls = no\nmail_from = edi@region.example\n"
                      "support_recipients = edi-support@region.example\n"
                      "oncall_recipients = vagt@region.example\nwebhook_url = %s\n"
                      "retry_initial = 500ms\ntimeout = 5s\n" % (self.mail.url, self.hook.url))
        endpoints = {
            "hospital": ("hospital", SENDERS),
            "municipality": ("municipality", [MUNICIPALITY_GLN, "5790002508226"]),
        }
        if outage:
            endpoints["lab"] = ("other", [LAB_GLN])
        b = Broker(root, endpoints=endpoints, extra=extra,
                   delivery={"retry_initial": "200ms", "retry_max": "1s"})
        b.spool = self.spool
        b.write_config()
        self.brokers.append(b)
        return b

    def assert_no_answer_in_time(self, b, verbs):
        """Each verb answers within its deadline that the store did not."""
        for v in verbs:
            t0 = time.monotonic()
            ans = b.ctl(*v, check=False)
            took = time.monotonic() - t0
            self.assertLess(took, 3 * TIMEOUT_SCALE, "%s waited for the database" % (v,))
            self.assertFalse(ans["ok"], v)
            self.assertEqual(ans["error"], "store: no answer in time", v)

    def holders(self, b):
        return {ep["name"]: ep.get("holder") for ep in b.status()["endpoints"]}

    def check_config(self, conf):
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--check-config", conf],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def test_check_config_reaches_the_database_and_reports_its_schema(self):
        a = self.node("node-a")
        rc, out = self.check_config(a.conf)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"store: postgresql schema 0, upgraded to \d+ when a daemon "
                              r"starts; node node-a")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                     "current_schema()"), [["0"]], "a check changes nothing")
        a.start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        rc, out = self.check_config(a.conf)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"store: postgresql schema \d+ \(current\), node node-a")
        # a database nobody serves: the file is fine, the store is not
        with open(a.conf) as f:
            text = f.read()
        bad = os.path.join(self.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write(text.replace(self.pg.url, "postgresql://edibroker@127.0.0.1:%d/edibroker"
                                 % free_port()))
        rc, out = self.check_config(bad)
        self.assertEqual(rc, 1, out)
        self.assertIn("127.0.0.1", out)
        self.assertNotRegex(out, r": ok \(")
        self.assertEqual(a.stop(), 0)

    def test_an_orderly_stop_hands_over_and_status_shows_the_cluster(self):
        a = self.node("node-a").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        port = free_port()
        b = self.node("node-b", metrics_port=port).start()
        st = wait_for(lambda: (lambda s: s if len(s["cluster"]["nodes"]) == 2 else None)(
            b.status()), 15, what="b sees both nodes")
        c = st["cluster"]
        self.assertEqual(c["node"], "node-b")
        self.assertTrue(c["reachable"])
        self.assertEqual(c["held"], 0, "the second node waits")
        nodes = {n["name"]: n for n in c["nodes"]}
        self.assertIn("procedure", nodes["node-a"]["leases"])
        self.assertIn("in:hospital", nodes["node-a"]["leases"])
        self.assertEqual(nodes["node-b"]["leases"], [])
        self.assertTrue(st["ready"])
        rc, text, _ = b.ctl_text("status")
        self.assertEqual(rc, 0)
        self.assertRegex(text, r"node-a\s+\d+s\s+ep:hospital")
        self.assertRegex(text, r"municipality\s+node-a")
        self.assertIn("database: reachable", text)
        self.assertEqual(self.holders(b), {"hospital": "node-a", "municipality": "node-a"})
        # the metrics say which node this is and that it delivers nothing yet
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        self.assertIn('edibroker_cluster_node_info{node="node-b"} 1', text)
        self.assertIn("edibroker_cluster_database_up 1", text)
        self.assertIn('edibroker_cluster_endpoint_held{endpoint="municipality"} 0', text)

        base = sample("DIS20_1.xml")
        for i in range(10):
            drop(os.path.join(self.spool, "hospital", "in"), "a%03d.xml" % i,
                 with_ids(base, "EA%05d" % i, "LA%05d" % i))
        out = os.path.join(self.spool, "municipality", "out")
        wait_for(lambda: len(listdir_final(out)) == 10, 15, what="10 delivered by a")
        t0 = time.monotonic()
        self.assertEqual(a.stop(), 0)
        self.assertTrue(a.log_lines(r"event=leases-released node=node-a count=5"))
        # released, not expired: b takes over at its next round (lease/3)
        wait_for(lambda: set(self.holders(b).values()) == {"node-b"}, 10, what="b holds all")
        self.assertLess(time.monotonic() - t0, 5, "a handover needs no lease to expire")
        for i in range(10):
            drop(os.path.join(self.spool, "hospital", "in"), "b%03d.xml" % i,
                 with_ids(base, "EB%05d" % i, "LB%05d" % i))
        wait_for(lambda: len(listdir_final(out)) == 20, 15, what="10 more delivered by b")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        self.assertIn('edibroker_cluster_endpoint_held{endpoint="municipality"} 1', text)
        self.assertEqual(listdir_final(os.path.join(self.spool, "hospital", "in")), [])
        rows = self.pg.sql("SELECT count(*), count(*) FILTER (WHERE state = 1) FROM messages")
        self.assertEqual(rows, [["20", "20"]])
        # b shows a as stopped, and a starts again under its name at once: it
        # does not wait for its old row to go quiet
        wait_for(lambda: {n["name"]: n for n in b.status()["cluster"]["nodes"]}["node-a"]
                 .get("stopped"), 10, what="b shows node-a stopped")
        rc, text, _ = b.ctl_text("status")
        self.assertRegex(text, r"node-a\s+\S+\s+\(stopped\)")
        a.start()
        wait_for(lambda: a.status()["cluster"]["reachable"], 10, what="node-a back")
        self.assertEqual(a.log_lines(r"node name must be unique"), [])
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def test_a_hold_given_on_any_node_holds_the_endpoint_on_its_holder(self):
        # holds are read by every lease round: an operator need not know
        # which node delivers the endpoint
        a = self.node("node-a").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        b = self.node("node-b").start()
        wait_for(lambda: len(b.status()["cluster"]["nodes"]) == 2, 15, what="b sees both")
        self.assertEqual(b.status()["cluster"]["held"], 0, "b delivers nothing")
        self.assertEqual(b.ctl("hold", "municipality")["held"], True)
        wait_for(lambda: a.endpoint("municipality")["held"], 5, what="held on node-a")
        self.assertEqual(a.endpoint("municipality")["state"], "held")
        self.assertEqual(len(a.log_lines(r"event=endpoint-held endpoint=municipality "
                                         r"source=cluster")), 1)
        out = os.path.join(self.spool, "municipality", "out")
        drop(os.path.join(self.spool, "hospital", "in"), "h.xml",
             with_ids(sample("DIS20_1.xml"), "ENVH", "LETH"))
        wait_for(lambda: a.endpoint("municipality")["queued"] == 1, 10, what="queued")
        time.sleep(2.0)  # two lease rounds: the hold is not undone by one
        self.assertEqual(listdir_final(out), [], "delivered while held")
        self.assertTrue(a.endpoint("municipality")["held"])
        self.assertEqual(b.ctl("release", "municipality")["changed"], True)
        wait_for(lambda: listdir_final(out), 5, what="delivered on release")
        self.assertFalse(a.endpoint("municipality")["held"])
        self.assertEqual(len(a.log_lines(r"event=endpoint-released endpoint=municipality "
                                         r"source=cluster")), 1)
        # the node it was given to does not undo it either (the verb records
        # first, its rounds only confirm)
        self.assertEqual(len(b.log_lines(r"event=endpoint-(held|released) endpoint="
                                         r"municipality source=cluster")), 0)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def test_a_stop_during_a_lease_round_leaves_no_lease_behind(self):
        # READY comes before the first lease round lands. Hold that round on
        # a lock, stop the node, then let the round win: what it wins must
        # be given back, or a restart (or another node) waits a whole lease
        a = self.node("node-a").start()  # makes the schema and the lease rows
        self.assertEqual(a.stop(), 0)
        lock = self.psql_lock("leases")
        try:
            a.start()
            stopped = []
            t = threading.Thread(target=lambda: stopped.append(a.stop()))
            t.start()
            time.sleep(1.0)  # the stop waits for the round held on the lock
            lock.stdin.write("COMMIT;\n")
            lock.stdin.flush()
            t.join(30)
            self.assertEqual(stopped, [0])
        finally:
            lock.stdin.close()
            lock.wait(10)
        held = self.pg.sql("SELECT name, owner FROM leases WHERE owner IS NOT NULL")
        self.assertEqual(held, [], "leases left held by a stopped node")
        # the first stop gave back five; this one gives back what the held round won
        self.assertEqual(len(a.log_lines(r"event=leases-released node=node-a count=5")), 2,
                         "the round's leases were not given back by the stop")

    def psql_lock(self, table):
        """A session holding an EXCLUSIVE lock on table until .stdin gets COMMIT."""
        psql = [os.path.join(self.pg.bin, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p",
                str(self.pg.port), "-U", "edibroker", "-d", "edibroker"]
        if os.getuid() == 0:
            psql = ["runuser", "-u", self.pg.user, "--"] + psql
        lock = subprocess.Popen(psql, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                text=True)
        lock.stdin.write("BEGIN; LOCK TABLE %s IN EXCLUSIVE MODE; SELECT 1;\n" % table)
        lock.stdin.flush()
        return lock

    def test_pickup_resumes_when_an_inbox_lease_comes_back_after_an_outage(self):
        # A file that arrives while the database is down pauses pick-up; the
        # outage outlasts the lease, so the inbox lease goes. The store works
        # again before the lease comes back (the lease table is held on a
        # lock meanwhile): pick-up must start with the lease, not wait for
        # the retry timer its stop took away
        a = self.node("node-a").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        inbox = os.path.join(self.spool, "hospital", "in")
        out = os.path.join(self.spool, "municipality", "out")
        base = sample("DIS20_1.xml")
        self.pg.stop_immediate()
        lock = None
        try:
            drop(inbox, "during.xml", with_ids(base, "EO00001", "LO00001"))
            wait_for(lambda: a.log_lines(r"event=pickup-paused endpoint=hospital"), 15,
                     what="pick-up paused")
            wait_for(lambda: a.log_lines(r"event=lease-lost lease=in:hospital"), 15,
                     what="inbox lease lost")
            self.pg.start()
            self.pg.wait_up()
            lock = self.psql_lock("leases")
            wait_for(lambda: a.log_lines(r"event=store-recovered"), 30, what="store back")
            self.assertEqual(len(a.log_lines(r"event=lease-acquired lease=in:hospital")), 1,
                             "the inbox lease came back before the store: nothing to test")
        finally:
            if lock:
                lock.stdin.write("COMMIT;\n")
                lock.stdin.close()
                lock.wait(10)
        wait_for(lambda: len(a.log_lines(r"event=lease-acquired lease=in:hospital")) >= 2, 30,
                 what="inbox lease back")
        drop(inbox, "after.xml", with_ids(base, "EO00002", "LO00002"))
        wait_for(lambda: len(listdir_final(out)) == 2, 30, what="both delivered")
        self.assertEqual(listdir_final(inbox), [])
        self.assertEqual(a.stop(), 0)

    def pg_signal(self, sig):
        """Sends sig to the test's PostgreSQL server and its backends (ours, by PID)."""
        with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
            main = int(f.readline())
        kids = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True)
        for pid in [main] + [int(p) for p in kids.stdout.split()]:
            os.kill(pid, sig)

    def test_status_answers_while_the_database_hangs(self):
        a = self.node("node-a").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        st = a.status()
        self.assertNotIn("store_read", st, "the store answered: its figures are in")
        self.assertEqual(st["dead"], 0)
        self.pg_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            st = a.status()
            took = time.monotonic() - t0
            self.assertEqual(st.get("store_read"), "no answer in time")
            self.assertLess(took, 3 * TIMEOUT_SCALE, "the status waited for the database")
            self.assertEqual(len(st["endpoints"]), 2, "what the loop knows is still there")
            self.assertIsNone(st["dead"], "not known: not a made-up 0")
            rc, text, _ = a.ctl_text("status")
            self.assertEqual(rc, 0)
            self.assertIn("dead letters: ? (no answer in time)", text)
        finally:
            self.pg_signal(signal.SIGCONT)
        wait_for(lambda: "store_read" not in a.status(), 30, what="figures back")
        self.assertEqual(a.stop(), 0)

    def test_verbs_answer_while_the_database_hangs(self):
        """queue, dead and trace read on the store's read lane: with the
        database stopped each says it had no answer in time, within its
        deadline, and the status still answers; once the database runs again
        they answer from it. On the loop's own connection (before) they
        waited for the database and said why it failed, not this."""
        a = self.node("node-a").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        verbs = [("queue", "municipality"), ("dead",), ("trace", "1")]
        for v in verbs[:2]:
            self.assertTrue(a.ctl(*v)["ok"], v)
        self.pg_signal(signal.SIGSTOP)
        try:
            self.assert_no_answer_in_time(a, verbs)
            st = a.status()
            self.assertEqual(st.get("store_read"), "no answer in time")
            self.assertEqual(len(st["endpoints"]), 2, "what the loop knows is still there")
            # a script polling the hung database queues no more than 16 jobs
            # per lane: the rest are told at once that the store is busy
            answers = []
            polls = [threading.Thread(target=lambda: answers.append(
                a.ctl("dead", check=False))) for _ in range(24)]
            for t in polls:
                t.start()
            for t in polls:
                t.join(20)
            self.assertEqual(len(answers), 24)
            busy = [x for x in answers if x["error"].startswith("store: busy, ")]
            self.assertTrue(busy, answers)
            self.assertEqual(len(busy) + sum(x["error"] == "store: no answer in time"
                                             for x in answers), 24, answers)
        finally:
            self.pg_signal(signal.SIGCONT)
        wait_for(lambda: a.ctl("queue", "municipality", check=False).get("ok"), 30,
                 what="queue answers again")
        self.assertTrue(a.ctl("dead")["ok"])
        ans = a.ctl("trace", "1", check=False)  # no message 1: the store says so
        self.assertNotEqual(ans.get("error"), "store: no answer in time", ans)
        self.assertEqual(a.stop(), 0)

    def test_a_stop_while_the_database_hangs_waits_for_store_work_then_leaves_it(self):
        """A verb's read stuck on a database that does not answer: the stop
        waits for it up to stop_timeout, then exits around it (its thread
        and connection abandoned, said in the log) with status 0. Before,
        the stop did not wait for the store's lanes at all, and the close
        then abandoned the work without saying so: exit handlers ran over a
        thread still in the kernel, and under LeakSanitizer the daemon's
        stop failed (status 1) whenever any store job was still out."""
        a = self.node("node-a", stop_timeout="2s").start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        self.pg_signal(signal.SIGSTOP)
        try:
            ans = a.ctl("queue", "municipality", check=False)
            self.assertEqual(ans.get("error"), "store: no answer in time", ans)
            t0 = time.monotonic()
            self.assertEqual(a.stop(), 0)
            took = time.monotonic() - t0
        finally:
            self.pg_signal(signal.SIGCONT)
        self.assertGreaterEqual(took, 1.5, "the stop waited for the store's work")
        # stop_timeout, then the lease round in flight (cluster.c waits 5 s
        # for it) and two bounded calls of the loop's handle (release, leave)
        self.assertLess(took, 2 + 5 + 1 + 3 * TIMEOUT_SCALE, "within its bounds")
        self.assertTrue(a.log_lines(r"event=stopped state=work-abandoned"), a.log()[-2000:])

    def test_outage_and_maintenance_changes_answer_while_the_database_hangs(self):
        """outage open and maintenance add write on the store's write lane:
        with the database stopped each says it had no answer in time, within
        its deadline, and the status still answers. Once the database runs
        again each change lands, is applied to the procedure (a second open
        of that endpoint is refused: already open) and is audited with the
        caller (control-change), as a change answered in time is. On the
        loop's own connection (before) each waited out its store call and
        failed with the connection's error, and nothing was applied."""
        a = self.node("node-a").start()
        wait_for(lambda: "procedure" in {n["name"]: n for n in a.status()["cluster"]["nodes"]}
                 .get("node-a", {}).get("leases", []), 15, what="a runs the procedure")
        changes = [("outage", "open", "municipality", "--cause", "the database test"),
                   ("maintenance", "add", "hospital", "--from", "2031-01-01 06:00",
                    "--to", "2031-01-01 08:00", "--reason", "upgrade")]
        self.pg_signal(signal.SIGSTOP)
        try:
            self.assert_no_answer_in_time(a, changes)
            t0 = time.monotonic()
            st = a.status()
            self.assertLess(time.monotonic() - t0, 3 * TIMEOUT_SCALE, "the status waited")
            self.assertEqual(len(st["endpoints"]), 2, "what the loop knows is still there")
        finally:
            self.pg_signal(signal.SIGCONT)
        for verb, action, key in (("outage", "open", "outage"),
                                  ("maintenance", "add", "maintenance")):
            wait_for(lambda: a.log_lines(r"event=control-late-answer verb=%s-%s ok=true"
                                         % (verb, action)), 30, what="%s %s lands" % (verb, action))
            lines = a.log_lines(r"event=control-change verb=%s action=%s " % (verb, action))
            self.assertEqual(len(lines), 1, lines)
            self.assertRegex(lines[0], r" uid=\d+ .* %s=[1-9]\d*$" % key)
        ans = a.ctl("outage", "open", "municipality", "--cause", "again", check=False)
        self.assertFalse(ans["ok"])
        self.assertIn("already open for municipality", ans["error"], "applied to the procedure")
        self.assertEqual([o["endpoint"] for o in a.ctl("outages")["outages"]], ["municipality"])
        self.assertEqual([m["endpoint"] for m in a.ctl("maintenance")["maintenance"]],
                         ["hospital"])
        self.assertEqual(a.stop(), 0)

    def test_the_procedure_does_not_hold_the_loop_while_the_database_hangs(self):
        """The outage procedure's own store work (saving the outage as it
        advances, reading what its notice says, saving and recording the
        notice, the status page's queues) runs on the store's lanes: with
        the database stopped just as an outage reaches its threshold, the
        loop answers all along - status within 1 s every time, and a scrape
        of the metrics (answered from memory by the loop) never waits as
        long as one store call on the loop's own connection (500 ms). Once
        the database runs again the outage is announced and its notice sent
        exactly once. A lease of 30 s keeps the node acting through the
        stop (with 3 s it would stand down and do nothing to wait on).
        Before, each of those calls ran on the loop's connection: the loop
        stalled 500 ms at the threshold and again each time the breaker
        let it try (every 5 s)."""
        port = free_port()
        lab_out = os.path.join(self.spool, "lab", "out")
        a = self.node("node-a", outage=True, metrics_port=port, lease="30s").start()
        wait_for(lambda: "procedure" in {n["name"]: n for n in a.status()["cluster"]["nodes"]}
                 .get("node-a", {}).get("leases", []), 15, what="a runs the procedure")
        os.rename(lab_out, lab_out + ".away")   # the lab's share is gone: an outage
        wait_for(lambda: a.log_lines(r"event=outage-opened .*endpoint=lab"), 15,
                 what="the lab's outage opened")
        opened = time.monotonic()
        self.assertEqual(self.mail.all(), [], "nothing before the threshold (5 s)")
        slow, stop = [], threading.Event()

        def scrape():  # the loop's own answer, no store behind it
            url = "http://127.0.0.1:%d/metrics" % port
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    urllib.request.urlopen(url, timeout=10).read()
                except OSError as e:
                    slow.append(("error", str(e)))
                took = time.monotonic() - t0
                if took > 0.35 * TIMEOUT_SCALE:
                    slow.append((round(time.monotonic() - opened, 2), round(took, 3)))
                time.sleep(0.05)

        self.pg_signal(signal.SIGSTOP)
        watcher = threading.Thread(target=scrape, daemon=True)
        watcher.start()
        tooks = []
        try:
            # from before the threshold to two breaker periods past it
            while time.monotonic() - opened < 13 or len(tooks) < 10:
                t0 = time.monotonic()
                st = a.status()
                tooks.append(round(time.monotonic() - t0, 3))
                self.assertEqual(len(st["endpoints"]), 3, "what the loop knows is still there")
                time.sleep(0.3)
            due = a.log_lines(r"event=outage-announced|event=notice ")
        finally:
            stop.set()
            watcher.join(15)
            self.pg_signal(signal.SIGCONT)
        print("status while the database hangs: %s; slow scrapes: %s" % (tooks, slow))
        self.assertTrue(all(t < 1.0 * TIMEOUT_SCALE for t in tooks), tooks)
        self.assertEqual(slow, [], "the loop waited (seconds since the open, seconds waited)")
        self.assertEqual(due, [], "announced before the store had the outage's change")
        wait_for(lambda: self.mail.all(), 30, what="the lab's notice after the database is back")
        time.sleep(3)  # a second copy would have come by now (retry_initial 500 ms)
        self.assertEqual(len(self.mail.all()), 1, "one notice, sent once: %s" % self.mail.all())
        kinds = [((h["json"] or {}).get("endpoint"), (h["json"] or {}).get("kind"))
                 for h in self.hook.bodies]
        self.assertEqual(kinds, [("lab", "initial")], kinds)
        rows = self.pg.sql("SELECT kind, count(*) FROM notices GROUP BY 1 ORDER BY 1")
        self.assertEqual(rows, [["initial", "1"]], rows)
        sends = self.pg.sql("SELECT channel, ok, count(*) FROM notice_sends GROUP BY 1, 2 "
                            "ORDER BY 1, 2")
        self.assertEqual(sends, [["email", "t", "1"], ["webhook", "t", "1"]], sends)
        self.assertEqual(a.stop(), 0)

    def test_2000_messages_through_a_pause_a_kill_and_a_database_restart(self):
        inbox = os.path.join(self.spool, "hospital", "in")
        out = os.path.join(self.spool, "municipality", "out")
        lab_out = os.path.join(self.spool, "lab", "out")
        a = self.node("node-a", outage=True).start()
        wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 15, what="a holds all")
        b = self.node("node-b", outage=True).start()
        os.rename(lab_out, lab_out + ".away")  # the lab's share is gone: an outage

        # 2,000 messages, the hospital's two GLNs taking turns, 100 a second
        base = sample("DIS20_1.xml")
        sent = {}
        order = {}

        def sender():
            for i in range(2000):
                who = SENDERS[i % 2]
                data = with_ids(base, "E%07d" % i, "L%07d" % i, sender=who)
                sent[data] = i
                order[i] = who
                drop(inbox, "m%07d.xml" % i, data)
                time.sleep(0.01)

        # the receiver: names in the order the kernel saw them arrive
        watch = OutboxWatch(out)
        seen, seen_at, stop = [], {}, threading.Event()

        def watcher():
            k = 0
            while not stop.is_set():
                for n in watch.arrivals(0.05):
                    if n not in seen_at:
                        seen_at[n] = k
                        seen.append(n)
                    k += 1

        threads = [threading.Thread(target=sender), threading.Thread(target=watcher)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            a.signal(signal.SIGSTOP)            # paused past its lease (3 s)
            t0 = time.monotonic()
            wait_for(lambda: set(self.holders(b).values()) == {"node-b"}, 15,
                     what="b takes over from the paused a")
            paused_takeover = time.monotonic() - t0
            time.sleep(5)
            a.signal(signal.SIGCONT)
            wait_for(lambda: a.log_lines(r"event=lease-lost lease=ep:municipality"), 10,
                     what="a notices it lost its leases")
            time.sleep(3)
            b.kill9()                           # the holder dies
            t0 = time.monotonic()
            wait_for(lambda: set(self.holders(a).values()) == {"node-a"}, 20,
                     what="a takes over from the killed b")
            killed_takeover = time.monotonic() - t0
            time.sleep(2)
            self.pg.stop_immediate()            # the database crashes ...
            time.sleep(2)
            self.pg.start()                     # ... and comes back
            self.pg.wait_up()
            threads[0].join(60)
            os.rename(lab_out + ".away", lab_out)   # the lab is back
            b2 = self.node("node-b2", outage=True).start()
            wait_for(lambda: len(set(listdir_final(out))) >= 2000, 120,
                     what="2000 messages delivered")
            wait_for(lambda: "allclear" in self.hook.kinds(), 30, what="the lab's all-clear")
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
            if a.proc.poll() is None:
                os.kill(a.proc.pid, signal.SIGCONT)

        watch.close()
        # a takeover comes within about a lease (3 s) after the holder stops
        # renewing, plus a claim round (lease/3) and the status poll
        print("takeover after SIGSTOP %.1fs, after SIGKILL %.1fs" %
              (paused_takeover, killed_takeover))
        self.assertLess(paused_takeover, 6.5 * TIMEOUT_SCALE)
        self.assertLess(killed_takeover, 6.5 * TIMEOUT_SCALE)
        # every message exactly once by content, under one name
        names = listdir_final(out)
        self.assertEqual(len(names), 2000)
        contents = {}
        for n in names:
            with open(os.path.join(out, n), "rb") as f:
                data = f.read()
            self.assertIn(data, sent, "%s is not a message that was sent" % n)
            self.assertNotIn(data, contents, "%s and %s hold the same message" %
                             (n, contents.get(data)))
            contents[data] = n
        self.assertEqual(len(contents), 2000)
        # each sender's messages appeared in the order they were dropped
        for who in SENDERS:
            mine = [n for n in seen if order[sent[self.content(out, n)]] == who]
            idx = [sent[self.content(out, n)] for n in mine]
            bad = [(mine[k - 1], idx[k - 1], seen_at[mine[k - 1]], mine[k], idx[k],
                    seen_at[mine[k]]) for k in range(1, len(idx)) if idx[k] < idx[k - 1]]
            self.assertEqual(bad, [], "%s: out of order (name, sent as, seen at poll)" % who)
        # nothing left behind, nothing stored twice
        self.assertEqual(listdir_final(inbox), [])
        rows = self.pg.sql("SELECT count(*), count(*) FILTER (WHERE state = 1) FROM messages "
                           "WHERE endpoint = 'municipality'")
        self.assertEqual(rows, [["2000", "2000"]])
        # the lab's outage: each notice composed and sent once
        notices = self.pg.sql("SELECT outage_id, kind, count(*) FROM notices "
                              "WHERE outage_id > 0 GROUP BY 1, 2 ORDER BY 1, 2")
        self.assertTrue(notices, "no notice for the lab's outage")
        for outage_id, kind, n in notices:
            if kind in ("initial", "allclear", "summary"):
                self.assertEqual(n, "1", "%s notice of outage %s composed %s times" %
                                 (kind, outage_id, n))
        hooks = [(h["json"] or {}) for h in self.hook.bodies]
        kinds = [(h.get("endpoint"), h.get("kind")) for h in hooks]
        self.assertEqual(kinds.count(("lab", "initial")), 1, kinds)
        self.assertEqual(kinds.count(("lab", "allclear")), 1, kinds)
        # what happened is what the scenario claims
        self.assertTrue(b.log_lines(r"event=lease-acquired lease=ep:municipality .*node=node-b"))
        self.assertTrue(a.log_lines(r"event=lease-lost lease=ep:municipality"))
        self.assertTrue(a.log_lines(r"event=database-unreachable node=node-a"))
        self.assertEqual(b2.stop(), 0)
        self.assertEqual(a.stop(), 0)

    @staticmethod
    def content(out, name):
        with open(os.path.join(out, name), "rb") as f:
            return f.read()
