"""Acknowledgements, what a receiver accepts, and schema validation (issue 11),
end to end: the real daemon, spool folders, the control socket, and an SMTP
server for the outage notice.

- Tracking: a letter that asks for a positive receipt (pluspositivkvitt) is
  awaiting once delivered, overdue after [delivery] ack_timeout in
  `edibrokerctl acks`, acknowledged when the municipality's XCTL03 comes
  back through the broker, negative with an XCTL02.
- A duplicate after a lost receipt gets the stored XCTL03 again, in a new
  envelope; one whose receipt has not come is only dropped.
- accepts: a type the municipality does not take comes back to the hospital
  as an XCTL01 problem_med_version and is kept as a dead letter.
- xsd: enforce quarantines an invalid letter with a syntaksfejl receipt and
  passes a municipality-namespace letter (no schema) with a warning; warn
  delivers the invalid one and logs it; a reload whose xsd_dir does not
  load is refused.
- An outage notice counts the delivered letters whose receipt is overdue.
"""

import os
import re
import signal
import time

from harness import (HOSPITAL_GLN, MUNICIPALITY_GLN, ROOT, BrokerTest, MailSink, NoticeTest,
                     drop, listdir_final, sample, wait_for, with_ids)

XSD_DIR = os.path.join(ROOT, "data", "xsd", "oioxml")


def asking(envelope_id, letter_id, name="DIS20_1.xml"):
    """A letter from the hospital that asks for a positive receipt."""
    return with_ids(sample(name), envelope_id, letter_id).replace(
        b"minuspositivkvitt", b"pluspositivkvitt")


def receipt(name, envelope_id, letter_id, own_envelope, own_letter="BrevNr5678"):
    """The municipality's XCTL03 (CTL03_1.xml) or XCTL02 (CTL02_1.xml) of
    the hospital's letter letter_id in envelope envelope_id."""
    data = sample(name)
    for old, new in ((b"5790000120420", MUNICIPALITY_GLN), (b"5790000181872", HOSPITAL_GLN),
                     (b"MEDREF01095", envelope_id), (b"1111FRE01095", letter_id),
                     (b"1111MAN01095", letter_id), (b"KuvertNr1234", own_envelope),
                     (b"BrevNr5678", own_letter)):
        data = data.replace(old, new.encode() if isinstance(new, str) else new)
    return data


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Acks(BrokerTest):

    def start(self, ack_timeout="3s", hospital="", municipality="", xsd_dir=XSD_DIR):
        b = self.broker(delivery={"retry_initial": "200ms", "retry_max": "1s",
                                  "ack_timeout": ack_timeout},
                        endpoint_extra={"hospital": hospital, "municipality": municipality})
        b.write_config(b.config_text().replace("[broker]\n",
                                               "[broker]\nxsd_dir = %s\n" % xsd_dir, 1))
        b.start()
        return b

    def tracked(self, b, *args):
        return {m["id"]: m for m in b.ctl("acks", *args)["messages"]}

    def delivered(self, b, ep, n):
        return wait_for(lambda: len(listdir_final(b.outbox(ep))) >= n and
                        listdir_final(b.outbox(ep)), timeout=10, what="%d file(s) in %s" % (n, ep))

    def test_awaiting_overdue_acknowledged_negative(self):
        b = self.start()
        drop(b.inbox("hospital"), "a.xml", asking("E1", "L1"))
        self.delivered(b, "municipality", 1)
        m = wait_for(lambda: self.tracked(b), what="tracked")
        (mid, row), = m.items()
        self.assertEqual(row["state"], "awaiting")
        self.assertEqual((row["type"], row["endpoint"], row["envelope"]),
                         ("XDIS20", "municipality", "E1"))
        self.assertEqual(b.ctl("acks", "--overdue")["messages"], [])
        # overdue after ack_timeout (3 s), in the JSON and the table
        wait_for(lambda: self.tracked(b)[mid]["state"] == "overdue", timeout=8, what="overdue")
        self.assertEqual(list(self.tracked(b, "--overdue")), [mid])
        self.assertEqual(list(self.tracked(b, "municipality", "--overdue")), [mid])
        self.assertEqual(self.tracked(b, "hospital"), {})
        rc, out, _ = b.ctl_text("acks")
        self.assertEqual(rc, 0)
        self.assertIn("1 awaiting an acknowledgement, 1 overdue (after 3s)", out)
        self.assertRegex(out, r"(?m)^%d\s+municipality\s+XDIS20\s+%s\s+%s\s+\S+\s+overdue"
                         % (mid, HOSPITAL_GLN, MUNICIPALITY_GLN))
        # the municipality's receipt comes back through the broker
        drop(b.inbox("municipality"), "r.xml", receipt("CTL03_1.xml", "E1", "L1", "R1"))
        self.delivered(b, "hospital", 1)
        wait_for(lambda: self.tracked(b) == {}, what="no longer awaiting")
        self.assertTrue(b.log_lines(r"event=ack-received .*verdict=\"XCTL03\" refs=1 matched=1 "
                                    r"first=%d" % mid), b.log()[-2000:])
        # the trace tells the acknowledgement: its message, sender, verdict
        t = b.ctl("trace", str(mid))["messages"][0]
        self.assertEqual(t["ack"], "acknowledged")
        acks = [h for h in t["history"] if h["event"] == "acknowledged"]
        self.assertEqual(len(acks), 1, t["history"])
        self.assertEqual((acks[0]["message"], acks[0]["from"], acks[0]["type"]),
                         (t["ack_message"], "municipality", "XCTL03"))
        self.assertEqual([h["event"] for h in t["history"]][-1], "acknowledged")
        rc, out, _ = b.ctl_text("trace", str(mid))
        self.assertEqual(rc, 0)
        self.assertIn("acknowledgement: acknowledged", out)
        self.assertRegex(out, r"acknowledged\s+acknowledged by message %d \(XCTL03\) from "
                         r"municipality" % t["ack_message"])
        # a second letter, refused by its receiver
        drop(b.inbox("hospital"), "b.xml", asking("E2", "L2"))
        self.delivered(b, "municipality", 2)
        drop(b.inbox("municipality"), "n.xml", receipt("CTL02_1.xml", "E2", "L2", "R2", "B2"))
        neg = wait_for(lambda: self.tracked(b, "--negative"), what="negative")
        (nid, nrow), = neg.items()
        self.assertEqual(nrow["state"], "negative")
        self.assertEqual(nrow["ack_code"], "XCTL02 problem_med_version")
        self.assertEqual(nrow["envelope"], "E2")
        t = b.ctl("trace", str(nid))["messages"][0]
        self.assertEqual((t["ack"], t["ack_code"]), ("negative", "XCTL02 problem_med_version"))
        self.assertEqual([h["verdict"] for h in t["history"] if h["event"] == "acknowledged"],
                         ["negative"])
        rc, out, _ = b.ctl_text("acks", "--negative")
        self.assertIn("1 refused by their receiver", out)
        self.assertIn("XCTL02 problem_med_version", out)

    def test_an_acknowledgement_only_counts_from_where_the_letter_went(self):
        b = self.start()
        drop(b.inbox("hospital"), "a.xml", asking("E1", "L1"))
        self.delivered(b, "municipality", 1)
        wait_for(lambda: self.tracked(b), what="tracked")
        # the hospital itself cannot acknowledge what it sent
        forged = receipt("CTL03_1.xml", "E1", "L1", "R1").replace(
            MUNICIPALITY_GLN.encode(), b"5790002515200")
        forged = forged.replace(b"<Receiver><EANIdentifier>%s" % HOSPITAL_GLN.encode(),
                                b"<Receiver><EANIdentifier>%s" % MUNICIPALITY_GLN.encode())
        drop(b.inbox("hospital"), "f.xml", forged)
        wait_for(lambda: b.log_lines(r"event=ack-ignored msg=2 source=hospital type=XCTL03 refs=1"),
                 what="the forged receipt ignored")
        time.sleep(0.3)
        self.assertEqual([m["state"] for m in self.tracked(b).values()], ["awaiting"])

    def test_a_duplicate_gets_the_stored_receipt_again(self):
        b = self.start()
        drop(b.inbox("hospital"), "a.xml", asking("E1", "L1"))
        self.delivered(b, "municipality", 1)
        wait_for(lambda: self.tracked(b), what="tracked")
        r = receipt("CTL03_1.xml", "E1", "L1", "R1")
        drop(b.inbox("municipality"), "r.xml", r)
        first = self.delivered(b, "hospital", 1)
        self.assertEqual(read(os.path.join(b.outbox("hospital"), first[0])), r,
                         "delivered as received")
        # the hospital's system never saw it: it sends the letter again
        drop(b.inbox("hospital"), "a2.xml", asking("E1B", "L1"))
        files = self.delivered(b, "hospital", 2)
        again = read(os.path.join(b.outbox("hospital"), [f for f in files if f not in first][0]))
        self.assertNotEqual(again, r)
        m = re.search(rb"<Identifier>([^<]*)</Identifier>", again)
        self.assertRegex(m.group(1).decode(), r"^EB[0-9a-f]{12}$", "a new envelope id")
        self.assertEqual(again.replace(m.group(1), b"R1", 1), r, "the same content")
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 1, "not delivered twice")
        self.assertTrue(b.log_lines(r"event=ack-resent .*endpoint=hospital type=XCTL03"))
        # a letter whose receipt has not come is only dropped
        drop(b.inbox("hospital"), "c.xml", asking("E3", "L3"))
        self.delivered(b, "municipality", 2)
        drop(b.inbox("hospital"), "c2.xml", asking("E3B", "L3"))
        wait_for(lambda: b.log_lines(r"event=duplicate .*envelope=E3B"), what="the duplicate")
        time.sleep(0.5)
        self.assertEqual(len(listdir_final(b.outbox("hospital"))), 2)

    def test_accepts_refuses_what_the_receiver_does_not_take(self):
        b = self.start(municipality="accepts = XDIS17, XCTL03")
        drop(b.inbox("hospital"), "a.xml", with_ids(sample("DIS20_1.xml"), "E1", "L1"))
        files = self.delivered(b, "hospital", 1)
        rc = read(os.path.join(b.outbox("hospital"), files[0]))
        self.assertIn(b"<StatisticalCode>XCTL01</StatisticalCode>", rc)
        self.assertIn(b"<RefuseCode>problem_med_version</RefuseCode>", rc)
        self.assertIn(b"<OriginalEnvelopeIdentifier>E1<", rc)
        dead = b.ctl("dead")["messages"]
        self.assertEqual(len(dead), 1)
        self.assertIn("endpoint municipality does not take XDIS20 (XD2030C)", dead[0]["reason"])
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        drop(b.inbox("hospital"), "b.xml", with_ids(sample("DIS17_1.xml"), "E2", "L2"))
        self.delivered(b, "municipality", 1)

    def test_xsd_enforce(self):
        b = self.start(hospital="xsd = enforce")
        bad = with_ids(sample("DIS20_1.xml"), "E1", "L1").replace(
            b"<CivilRegistrationNumber>2505544849<", b"<CivilRegistrationNumber>25055448XX<")
        drop(b.inbox("hospital"), "bad.xml", bad)
        files = self.delivered(b, "hospital", 1)
        rc = read(os.path.join(b.outbox("hospital"), files[0]))
        self.assertIn(b"<RefuseCode>syntaksfejl</RefuseCode>", rc)
        self.assertIn(b"element CivilRegistrationNumber", rc)
        self.assertNotIn(b"25055448", rc)
        q = wait_for(lambda: b.ctl("quarantine")["messages"], what="quarantined")
        self.assertEqual(q[0]["error"], "schema")
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertNotIn("25055448", b.log(), "no patient data in the log")
        # a valid one passes, and one in a namespace without a schema too
        drop(b.inbox("hospital"), "ok.xml", with_ids(sample("DIS20_1.xml"), "E2", "L2"))
        self.delivered(b, "municipality", 1)
        drop(b.inbox("hospital"), "xd18.xml",
             sample("XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml"))
        self.delivered(b, "municipality", 2)
        self.assertTrue(b.log_lines(r"event=schema-missing .*xsd=enforce state=passed "
                                    r"reason=\"no schema for namespace "
                                    r"urn:oio:medcom:municipality:1.0.3\""), b.log()[-3000:])

    def test_xsd_warn_delivers_and_logs(self):
        b = self.start(hospital="xsd = warn")
        bad = with_ids(sample("DIS20_1.xml"), "E1", "L1").replace(b"<Admission>",
                                                                  b"<Extra>x</Extra><Admission>")
        drop(b.inbox("hospital"), "bad.xml", bad)
        self.delivered(b, "municipality", 1)
        self.assertTrue(b.log_lines(r"event=schema-invalid .*xsd=warn state=passed reason=\"line "
                                    r"\d+: element Extra: "), b.log()[-3000:])

    def test_a_reload_whose_schemas_do_not_load_is_refused(self):
        b = self.start(hospital="xsd = warn")
        b.write_config(b.config_text().replace("[broker]\n",
                                               "[broker]\nxsd_dir = /nonexistent/xsd\n", 1))
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.log_lines(r"event=reload-rejected .*xsd_dir"), what="reload refused")
        # the running config (and its schemas) stay
        bad = with_ids(sample("DIS20_1.xml"), "E1", "L1").replace(b"<Admission>",
                                                                  b"<Extra>x</Extra><Admission>")
        drop(b.inbox("hospital"), "bad.xml", bad)
        self.delivered(b, "municipality", 1)
        wait_for(lambda: b.log_lines(r"event=schema-invalid"), what="still validated")


class OverdueNotice(NoticeTest):

    def test_the_outage_notice_counts_overdue_receipts(self):
        extra = ("[outage]\nthreshold = 2s\nupdate_interval = 1h\nprobe_interval = 300ms\n"
                 "down_after = 2\nsend_window = 00:00-24:00\ntimezone = Europe/Copenhagen\n\n"
                 "[notify]\nsmtp_url = %s\nsmtp_starttls = no\nmail_from = edi@region.example\n"
                 "support_recipients = s@region.example\noncall_recipients = o@region.example\n"
                 "retry_initial = 500ms\ntimeout = 5s\n" % self.mail.url)
        b = self.broker(extra=extra, delivery={"retry_initial": "200ms", "retry_max": "1s",
                                               "ack_timeout": "1s"})
        b.start()
        drop(b.inbox("hospital"), "a.xml", asking("E1", "L1"))
        wait_for(lambda: listdir_final(b.outbox("municipality")), what="delivered")
        wait_for(lambda: b.ctl("acks", "--overdue")["messages"], timeout=8, what="overdue")
        # the municipality's share goes away; a second letter waits
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")
        drop(b.inbox("hospital"), "b.xml", with_ids(sample("DIS17_1.xml"), "E2", "L2"))
        first = wait_for(lambda: self.mail.all(), timeout=15, what="the notice")[0]
        body = MailSink.body(first)
        self.assertIn("Berørte meddelelser", body)
        # (ack_timeout 1s reads "0 min": durations in notices are whole minutes)
        self.assertRegex(body, r"Kvittering mangler for 1 leveret meddelelse \(over \d+ min; "
                               r"leveret \d\d-\d\d-\d{4} kl\. \d\d:\d\d\)")
