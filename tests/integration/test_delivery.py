"""Delivery while the receiver is down: queueing, backoff, drain, restarts.

The municipality's outbox is made unwritable (the folder is moved away, as
when a share is unmounted, or made immutable); messages queue, retries back
off per endpoint, and when the outbox is back the backlog drains in order.
"""

import os
import re
import subprocess
import time

from harness import BrokerTest, drop, listdir_final, sample, wait_for, with_ids

ORDER = re.compile(rb"<Identifier>(L\d+)<")


def letter_ids(outbox):
    files = sorted(listdir_final(outbox), key=lambda f: int(f.split("-")[1].split(".")[0]))
    ids = []
    for f in files:
        with open(os.path.join(outbox, f), "rb") as fh:
            ids.append(ORDER.search(fh.read()).group(1).decode())
    return ids


def immutable(path, on):
    """chattr +i / -i; False when the file system does not support it."""
    return subprocess.run(["chattr", "+i" if on else "-i", path],
                          capture_output=True).returncode == 0


class Delivery(BrokerTest):
    def test_backlog_queues_while_outbox_missing_and_drains_in_order(self):
        b = self.broker(delivery={"retry_initial": "200ms", "retry_max": "800ms"}).start()
        out = b.outbox("municipality")
        away = out + ".away"
        os.rename(out, away)
        n = 50
        for i in range(n):
            drop(b.inbox("hospital"), "m%03d.xml" % i,
                 with_ids(sample("DIS20_1.xml"), "E%d" % i, "L%d" % i))
        wait_for(lambda: b.endpoint("municipality")["queued"] == n, what="50 queued")
        ep = wait_for(lambda: (lambda e: e if e["failures"] >= 3 else None)(
            b.endpoint("municipality")), timeout=10, what="3 failed attempts")
        self.assertEqual(ep["state"], "retrying")
        self.assertIn("No such file or directory", ep["last_error"])
        self.assertEqual(ep["fault"], "refused")
        q = b.ctl("queue", "municipality", "--limit", "5")
        self.assertEqual(q["queued"], n)
        self.assertEqual(len(q["messages"]), 5)
        self.assertGreaterEqual(q["messages"][0]["attempts"], 3, q["messages"][0])
        self.assertEqual(q["messages"][1]["attempts"], 0, "only the head is attempted")
        self.assertEqual(q["messages"][0]["type"], "XDIS20")
        self.assertEqual(q["messages"][0]["sender"], "5790000143054")
        # Backoff: attempts are spaced out, not hammering.
        f0 = b.endpoint("municipality")["failures"]
        time.sleep(2.0)
        f1 = b.endpoint("municipality")["failures"]
        self.assertLessEqual(f1 - f0, 4, "more attempts than a 800ms-capped backoff allows")
        self.assertGreaterEqual(f1 - f0, 1, "no retry within 2s of an 800ms cap")
        os.rename(away, out)
        wait_for(lambda: len(listdir_final(out)) == n, timeout=20, what="backlog drained")
        self.assertEqual(letter_ids(out), ["L%d" % i for i in range(n)])
        ep = wait_for(lambda: (lambda e: e if e["queued"] == 0 else None)(
            b.endpoint("municipality")), what="queue empty")
        self.assertEqual(ep["failures"], 0)
        self.assertEqual(len(b.log_lines(r"event=endpoint-recovered endpoint=municipality")), 1)

    def test_immutable_outbox_then_writable(self):
        b = self.broker().start()
        out = b.outbox("municipality")
        self.assertTrue(immutable(out, True),
                        "chattr +i failed: the temp dir must be on ext4 or XFS")
        try:
            drop(b.inbox("hospital"), "a.xml", sample("DIS20_1.xml"))
            ep = wait_for(lambda: (lambda e: e if e["failures"] >= 2 else None)(
                b.endpoint("municipality")), what="failed attempts on immutable outbox")
            self.assertIn("Operation not permitted", ep["last_error"])
            self.assertEqual(os.listdir(out), [], "a failed attempt left a file behind")
        finally:
            immutable(out, False)
        wait_for(lambda: len(listdir_final(out)) == 1, what="delivery after chattr -i")
        self.assertEqual(os.listdir(out), listdir_final(out), "temporary files left")

    def test_queue_survives_restart(self):
        b = self.broker().start()
        out = b.outbox("municipality")
        os.rename(out, out + ".away")
        for i in range(10):
            drop(b.inbox("hospital"), "r%02d.xml" % i,
                 with_ids(sample("DIS17_1.xml"), "E%d" % i, "L%d" % i))
        wait_for(lambda: b.endpoint("municipality")["queued"] == 10, what="10 queued")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(os.listdir(b.inbox("hospital")), [])
        os.rename(out + ".away", out)
        b.start()
        wait_for(lambda: len(listdir_final(out)) == 10, what="queue delivered after restart")
        self.assertEqual(letter_ids(out), ["L%d" % i for i in range(10)])

    def test_drain_rate_limits_backlog(self):
        b = self.broker(delivery={"retry_initial": "200ms", "retry_max": "300ms",
                                  "drain_rate": "20"}).start()
        out = b.outbox("municipality")
        os.rename(out, out + ".away")
        n = 60
        for i in range(n):
            drop(b.inbox("hospital"), "d%03d.xml" % i,
                 with_ids(sample("DIS20_1.xml"), "E%d" % i, "L%d" % i))
        wait_for(lambda: b.endpoint("municipality")["queued"] == n, what="queued")
        wait_for(lambda: b.endpoint("municipality")["failures"] >= 1, what="a failure")
        os.rename(out + ".away", out)
        t0 = time.monotonic()
        wait_for(lambda: len(listdir_final(out)) >= 20, timeout=20, what="first 20")
        t20 = time.monotonic() - t0
        wait_for(lambda: len(listdir_final(out)) == n, timeout=30, what="all 60")
        total = time.monotonic() - t0
        # 60 messages at 20 msg/s (burst of 20) take about 2 s; unlimited takes well
        # under 0.5 s on this disk.
        self.assertGreater(total, 1.6, "drain_rate not applied (%.2fs)" % total)
        self.assertLess(total, 8, "drain far slower than drain_rate (%.2fs)" % total)
        self.assertLess(t20, total)
        self.assertEqual(letter_ids(out), ["L%d" % i for i in range(n)])

    def test_other_endpoint_keeps_flowing(self):
        b = self.broker().start()
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")
        drop(b.inbox("hospital"), "to-muni.xml", sample("DIS20_1.xml"))
        wait_for(lambda: b.endpoint("municipality")["failures"] >= 1, what="muni failing")
        # A receipt from the municipality to the hospital is not held up.
        # (its sender made the municipality's own: senders are bound to endpoints)
        receipt = sample("CTL03_1.xml").replace(b"5790000181872", b"5790000143054") \
            .replace(b"5790000120420", b"5790000143055")
        drop(b.inbox("municipality"), "ack.xml", receipt)
        wait_for(lambda: len(listdir_final(b.outbox("hospital"))) == 1,
                 what="hospital delivery while municipality is down")
