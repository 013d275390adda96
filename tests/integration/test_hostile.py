"""Careless or hostile files in an inbox (issue 8, points 2 and 3).

Whatever lands in an inbox, the event loop stays responsive (edibrokerctl
status answers within 2 s), good messages behind it keep flowing, memory
stays bounded, and each bad file is dealt with once:
  - a FIFO and a symlink are moved aside to quarantine, unread; a folder
    is left alone with one log line;
  - a sparse 2 GB file in an inbox on another file system than the
    quarantine is never read: it stays, with one log line, and peak RSS
    stays under 200 MB;
  - a file that cannot be quarantined (its quarantine name is too long)
    gets one negative receipt and one log line, however often the inbox is
    rescanned.
"""

import os
import re
import subprocess
import time

from harness import BrokerTest, drop, listdir_final, sample, wait_for, with_ids


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmHWM for %d" % pid)


class Hostile(BrokerTest):

    def timed_status(self, b):
        t0 = time.monotonic()
        b.status()
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, "edibrokerctl status took %.1fs" % took)

    def flows(self, b, prefix, n=5):
        """n good messages from the hospital reach the municipality."""
        before = len(listdir_final(b.outbox("municipality")))
        for i in range(n):
            drop(b.inbox("hospital"), "%s%d.xml" % (prefix, i),
                 with_ids(sample("DIS20_1.xml"), "E%s%d" % (prefix, i), "L%s%d" % (prefix, i)))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == before + n,
                 timeout=8, what="good messages behind the bad input")

    def test_fifo_symlink_and_folder(self):
        b = self.broker().start()
        inbox = b.inbox("hospital")
        os.mkfifo(os.path.join(inbox, "pipe.xml"))
        secret = os.path.join(self.tmp, "secret.xml")
        with open(secret, "wb") as f:
            f.write(sample("DIS20_1.xml"))
        os.symlink(secret, os.path.join(inbox, "link.xml"))
        os.mkdir(os.path.join(inbox, "folder.xml"))
        self.timed_status(b)
        self.flows(b, "a")
        self.timed_status(b)
        q = b.quarantine("hospital")

        def moved():
            names = os.listdir(q) if os.path.isdir(q) else []
            return sorted(n.split("-", 1)[1] for n in names
                          if not n.endswith(".reason") and not n.startswith("."))
        wait_for(lambda: moved() == ["link.xml", "pipe.xml"], timeout=8,
                 what="FIFO and symlink moved aside")
        self.assertEqual(sorted(os.listdir(inbox)), ["folder.xml"])
        with open(secret, "rb") as f:
            self.assertEqual(f.read(), sample("DIS20_1.xml"), "the link's target changed")
        reasons = [n for n in os.listdir(q) if n.endswith(".reason")]
        text = "".join(open(os.path.join(q, n)).read() for n in reasons)
        self.assertIn("not a regular file (fifo)", text)
        self.assertIn("not a regular file (symlink)", text)
        time.sleep(2.5)  # two rescans (rescan_interval = 1s)
        self.assertEqual(len(b.log_lines(r"event=inbox-entry-skipped .*file=folder\.xml")), 1,
                         "the folder must be logged once")
        self.flows(b, "b")
        # only the two good batches were delivered: the link was not followed
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 10)

    def test_sparse_2g_file_on_another_file_system(self):
        mnt = os.path.join(self.tmp, "inboxfs")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", mnt],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "mounting a tmpfs needs root: " + r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        b = self.broker()
        b.inbox = lambda ep, _orig=b.inbox: os.path.join(mnt, ep) if ep == "hospital" else _orig(ep)
        b.write_config()
        b.start()
        big = os.path.join(b.inbox("hospital"), "big.xml")
        with open(big, "wb") as f:
            f.truncate(2 * 1024 * 1024 * 1024)  # sparse: costs nothing on the tmpfs
        self.flows(b, "a")
        self.timed_status(b)
        wait_for(lambda: b.log_lines(r"event=quarantine-failed .*file=big\.xml"), timeout=8,
                 what="the big file refused")
        time.sleep(2.5)
        self.flows(b, "b")
        lines = b.log_lines(r"event=quarantine-failed .*file=big\.xml")
        self.assertEqual(len(lines), 1, "logged once")
        # the one line says why the file was refused, not only why it stayed
        self.assertIn('refused=too-big reason="message larger than max_message_size', lines[0])
        self.assertTrue(os.path.exists(big), "the file stays for an operator")
        rss = peak_rss_mb(b.proc.pid)
        self.assertLess(rss, 200, "peak RSS %.0f MB" % rss)

    def test_one_receipt_for_a_file_that_cannot_be_quarantined(self):
        b = self.broker().start()
        # A valid envelope whose letter is refused (a wrong VersionCode) is
        # answered with a receipt; its 250-byte name leaves no room for the
        # quarantine's timestamp prefix.
        bad = sample("DIS20_1.xml").replace(b"XD2030C", b"XD9999C")
        self.assertNotEqual(bad, sample("DIS20_1.xml"))
        name = "r" * 246 + ".xml"
        drop(b.inbox("hospital"), name, bad)
        wait_for(lambda: b.log_lines(r"event=quarantine-failed"), timeout=8,
                 what="the quarantine failed")
        time.sleep(3.5)  # several rescans
        self.flows(b, "a")
        failed = b.log_lines(r"event=quarantine-failed")
        self.assertEqual(len(failed), 1)
        # an operator finds the file's refusal on the line that names it
        self.assertIn("file=%s" % name, failed[0])
        self.assertRegex(failed[0], r'refused=\w+ reason="[^"]*XD9999C')
        receipts = [n for n in listdir_final(b.outbox("hospital"))]
        self.assertEqual(len(receipts), 1, "one receipt, not one per rescan: %s" % receipts)
        self.assertEqual(len(b.log_lines(r"event=rejected")), 1)
        self.assertTrue(os.path.exists(os.path.join(b.inbox("hospital"), name)))

    def test_attribute_bomb_is_quarantined_and_the_next_message_flows(self):
        b = self.broker().start()
        attrs = b"".join(b' a%d="%d"' % (i, i) for i in range(120000))
        bomb = sample("DIS20_1.xml").replace(b"<Envelope>", b"<Envelope" + attrs + b">", 1)
        self.assertGreater(len(bomb), 1_500_000)
        t0 = time.monotonic()
        drop(b.inbox("hospital"), "bomb.xml", bomb)
        drop(b.inbox("hospital"), "good.xml", with_ids(sample("DIS20_1.xml"), "EG", "LG"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, timeout=8,
                 what="the good message behind the bomb")
        self.assertLess(time.monotonic() - t0, 8)
        self.timed_status(b)
        wait_for(lambda: b.log_lines(r"event=quarantined .*file=bomb\.xml error=too-expensive"),
                 timeout=8, what="the bomb quarantined as too expensive")


    def test_a_file_name_cannot_forge_a_log_field(self):
        b = self.broker().start()
        name = "x event=delivered msg=999 endpoint=evil.xml"
        drop(b.inbox("hospital"), name, b"not a medcom message")
        wait_for(lambda: b.log_lines(r"event=quarantined"), timeout=8, what="quarantined")
        line = b.log_lines(r"event=quarantined")[0]
        self.assertIn('file="x event=delivered msg=999 endpoint=evil.xml"', line)
        # every key=value pair outside quotes is one the daemon wrote
        bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        self.assertEqual(bare.count("event="), 1, line)
        self.assertNotIn("msg=999", bare)


class SenderBinding(BrokerTest):
    """A message is accepted from an endpoint only in a name it owns."""

    def test_spoofed_sender_and_preclaimed_letter_id(self):
        b = self.broker().start()
        real = with_ids(sample("DIS20_1.xml"), "E-REAL", "L-CLAIMED")  # from the hospital's GLN
        # the municipality writes the hospital's letter id in the hospital's name first
        drop(b.inbox("municipality"), "spoof.xml", real)
        wait_for(lambda: b.log_lines(r"event=sender-refused source=municipality"), timeout=8,
                 what="the spoofed message refused")
        line = b.log_lines(r"event=sender-refused")[0]
        self.assertIn("security=spoofing", line)
        self.assertIn("sender=5790000143054", line)
        q = b.quarantine("municipality")
        wait_for(lambda: os.path.isdir(q) and any(n.endswith(".reason") for n in os.listdir(q)),
                 timeout=8, what="the spoofed file quarantined")
        reason = [n for n in os.listdir(q) if n.endswith(".reason")][0]
        with open(os.path.join(q, reason)) as f:
            self.assertIn("sender not owned by this endpoint", f.read())
        # no receipt anywhere: it would go to an organisation that sent nothing
        self.assertEqual(listdir_final(b.outbox("hospital")), [])
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        # the hospital's real letter is delivered, not dropped as a duplicate
        drop(b.inbox("hospital"), "real.xml", real)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, timeout=8,
                 what="the real letter delivered")
        self.assertEqual(b.log().count("event=duplicate"), 0)
        with open(os.path.join(b.outbox("municipality"),
                               listdir_final(b.outbox("municipality"))[0]), "rb") as f:
            self.assertEqual(f.read(), real)
