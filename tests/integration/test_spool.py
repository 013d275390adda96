"""Spool in -> route -> store -> spool out, with the real daemon.

Checks the file-drop convention end to end: complete files are picked up
(temporary names are not), removed from the inbox only after the commit,
delivered byte-identical under "<instance>-<id>.xml", in order, and the
control socket reports what happened.
"""

import os
import re
import time

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, drop, listdir_final,
                     sample, wait_for, with_ids)

FINAL = re.compile(r"^[0-9a-f]{8}-(\d{12})\.xml$")


class SpoolFlow(BrokerTest):
    def test_sample_flows_byte_identical(self):
        b = self.broker().start()
        data = sample("DIS20_1.xml")
        drop(b.inbox("hospital"), "dis20.xml", data)
        out = b.outbox("municipality")
        files = wait_for(lambda: listdir_final(out), what="delivery")
        self.assertEqual(len(files), 1)
        self.assertRegex(files[0], FINAL)
        with open(os.path.join(out, files[0]), "rb") as f:
            self.assertEqual(f.read(), data)
        wait_for(lambda: not os.listdir(b.inbox("hospital")), what="inbox emptied")
        self.assertEqual(listdir_final(b.outbox("hospital")), [])
        ep = b.endpoint("municipality")
        self.assertEqual(ep["queued"], 0)
        self.assertEqual(ep["delivered"], 1)
        self.assertEqual(b.status()["accepted"], 1)
        accepted = b.log_lines(r"event=accepted .*endpoint=municipality type=XDIS20")
        self.assertEqual(len(accepted), 1)
        self.assertNotIn("2505544849", b.log(), "a CPR number reached the log")

    def test_every_sample_routes_by_receiver(self):
        # Region H samples go hospital 5790002515200 -> municipality 5790002508226;
        # the receipts go 5790000120420 -> 5790000181872. Several samples share
        # letter ids, so each gets its own (else they are duplicates).
        b = self.broker(endpoints={
            "hospital": ("hospital", [HOSPITAL_GLN, "5790002515200", "5790000120420"]),
            "municipality": ("municipality",
                             [MUNICIPALITY_GLN, "5790002508226", "5790000181872"]),
        }).start()
        names = ["DIS20_1.xml", "DIS17_1.xml", "XDIS20_regionh_NotificationOfAdmission.xml",
                 "XDIS17_regionh_NotificationOfDischarge.xml",
                 "XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml", "CTL03_1.xml",
                 "CTL02_1.xml"]
        sent = [with_ids(sample(n), "ENV%d" % i, "LET%d" % i) for i, n in enumerate(names)]
        for n, data in zip(names, sent):
            drop(b.inbox("hospital"), n, data)
        delivered = wait_for(lambda: len(listdir_final(b.outbox("municipality"))) ==
                             len(names) and listdir_final(b.outbox("municipality")),
                             what="all samples delivered")
        got = []
        for f in delivered:
            with open(os.path.join(b.outbox("municipality"), f), "rb") as fh:
                got.append(fh.read())
        self.assertEqual(sorted(got), sorted(sent))

    def test_incomplete_names_are_ignored(self):
        b = self.broker().start()
        inbox = b.inbox("hospital")
        with open(os.path.join(inbox, ".partial.xml"), "wb") as f:
            f.write(sample("DIS20_1.xml"))
        with open(os.path.join(inbox, "writing.xml.tmp"), "wb") as f:
            f.write(sample("DIS17_1.xml"))
        time.sleep(1.5)  # more than one rescan interval
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertEqual(sorted(os.listdir(inbox)), [".partial.xml", "writing.xml.tmp"])
        os.rename(os.path.join(inbox, "writing.xml.tmp"), os.path.join(inbox, "done.xml"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1,
                 what="renamed file delivered")
        # the inbox file is removed after the commit, beside the delivery
        wait_for(lambda: os.listdir(inbox) == [".partial.xml"], timeout=5,
                 what="done.xml removed, .partial.xml kept")

    def test_order_kept_within_endpoint(self):
        b = self.broker().start()
        base = sample("DIS20_1.xml")
        n = 300
        for i in range(n):
            drop(b.inbox("hospital"), "m%05d.xml" % i, with_ids(base, "E%d" % i, "L%d" % i))
        out = b.outbox("municipality")
        wait_for(lambda: len(listdir_final(out)) == n, timeout=60, what="300 deliveries")
        order = []
        for f in sorted(listdir_final(out), key=lambda x: int(FINAL.match(x).group(1))):
            with open(os.path.join(out, f), "rb") as fh:
                order.append(int(re.search(rb"<Identifier>L(\d+)<", fh.read()).group(1)))
        self.assertEqual(order, list(range(n)))

    def test_files_waiting_at_start_are_picked_up(self):
        b = self.broker()
        os.makedirs(b.inbox("hospital"))
        for i in range(20):
            drop(b.inbox("hospital"), "w%02d.xml" % i,
                 with_ids(sample("DIS20_1.xml"), "W%d" % i, "WL%d" % i))
        b.start()
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 20,
                 what="backlog in inbox delivered")
        wait_for(lambda: os.listdir(b.inbox("hospital")) == [], what="inbox empty")

    def test_ctl_queue_and_status_text(self):
        b = self.broker().start()
        rc, out, err = b.ctl_text("status")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^hospital\s+hospital\s+up\s+idle\s+0")
        self.assertRegex(out, r"(?m)^municipality\s+municipality\s+up\s+idle\s+0")
        rc, out, err = b.ctl_text("queue", "nosuch")
        self.assertEqual(rc, 0)
        self.assertIn("not configured", out)
        rc, out, err = b.ctl_text("bogus")
        self.assertEqual(rc, 2)
