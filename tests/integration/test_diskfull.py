"""The store cannot commit (disk full): pick-up stops, files stay, it resumes.

The state directory lives on a small tmpfs mounted for the test. Filling it
makes SQLite commits fail with SQLITE_FULL: the inbox files must stay where
they are, the fault is logged once, and when space returns pick-up resumes
by itself and everything is delivered. Nothing accepted before is lost.
"""

import os
import subprocess
import time

from harness import BrokerTest, drop, listdir_final, sample, wait_for, with_ids


class DiskFull(BrokerTest):
    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.tmp, "statefs")
        os.makedirs(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "mounting a tmpfs needs root: " + r.stderr)

    def tearDown(self):
        for b in self.brokers:
            b.close()
        subprocess.run(["umount", "-l", self.mnt])
        super().tearDown()

    def fill(self):
        """Fills the file system, leaving no room for a commit."""
        path = os.path.join(self.mnt, "filler")
        # Unbuffered: a partial last write must not stay in a buffer that
        # close() would try (and fail) to flush - whether it does depends
        # on how much room the database happens to leave.
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        return path

    def test_disk_full_pauses_pickup_and_resumes(self):
        b = self.broker(state_dir=os.path.join(self.mnt, "state")).start()
        drop(b.inbox("hospital"), "before.xml", with_ids(sample("DIS20_1.xml"), "B", "B"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="first")
        filler = self.fill()
        n = 30
        for i in range(n):
            drop(b.inbox("hospital"), "f%02d.xml" % i,
                 with_ids(sample("DIS20_1.xml"), "E%d" % i, "L%d" % i))
        wait_for(lambda: b.log_lines(r"event=pickup-paused endpoint=hospital"), timeout=10,
                 what="pick-up paused")
        time.sleep(3)  # several retries while full
        self.assertEqual(len(b.log_lines(r"event=pickup-paused endpoint=hospital")), 1,
                         "the fault must be logged once")
        self.assertEqual(len(b.log_lines(r"event=store-failed")), 1)
        left = listdir_final(b.inbox("hospital"))
        self.assertEqual(len(left), n, "files left the inbox while the store was full")
        status = b.status()
        self.assertEqual(status["store"], "failing")
        self.assertTrue(b.endpoint("hospital")["pickup_paused"])
        os.unlink(filler)
        # pick-up retries at most every 5 s while the store cannot commit
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == n + 1, timeout=15,
                 what="pick-up resumed and delivered")
        wait_for(lambda: listdir_final(b.inbox("hospital")) == [], timeout=5,
                 what="inbox emptied (files leave it beside the delivery)")
        self.assertEqual(len(b.log_lines(r"event=pickup-resumed endpoint=hospital")), 1)
        self.assertEqual(b.status()["store"], "ok")
        self.assertIsNone(b.proc.poll())
