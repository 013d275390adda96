"""MedCom EDIFACT through the real daemon: routed, refused and answered.

- A DIS20 interchange dropped in the hospital's inbox is delivered
  byte-identical to the municipality's outbox, as .edi. Nothing in the
  daemon knows EDIFACT: ingest sniffs it and routes by the UNB recipient.
- A letter (sender GLN + UNH message reference) resent in a new interchange
  is delivered once.
- An interchange to a receiver nobody owns is a dead letter, and the
  hospital gets a CTL01 negative VANS receipt (FTX LOK,
  ukendt_lokationsnummer) echoing the interchange, both GLNs and the
  message, from the broker.
- Each negative MedCom sample (DIS20_ERROR_*) is quarantined with its own
  reason in the .reason file, and answered with a CTL02 (FTX SYN).
- A CONTRL receipt to a receiver nobody owns is a dead letter and gets no
  receipt back.
"""

import os
import re

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, SAMPLES, drop, listdir_final,
                     wait_for)

EDIFACT = os.path.join(SAMPLES, "edifact")
UNKNOWN_GLN = "5790009999994"


def edifact(name):
    with open(os.path.join(EDIFACT, name), "rb") as f:
        return f.read()


def with_edi_ids(data, interchange=None, message=None, receiver=None, sender=None):
    """An EDIFACT sample (default separators, no release characters in its
    UNB/UNH/UNT/UNZ) with a new interchange/message reference or GLNs."""
    unb = re.compile(rb"(UNB\+[^+']*\+)([^:+']*)(:14\+)([^:+']*)(:14\+[^+']*\+)([^+']*)")

    def fix_unb(m):
        g = [m.group(i) for i in range(1, 7)]
        for i, v in ((1, sender), (3, receiver), (5, interchange)):
            if v is not None:
                g[i] = v.encode()
        return b"".join(g)

    data = unb.sub(fix_unb, data, count=1)
    if interchange is not None:
        data = re.sub(rb"(UNZ\+\d+\+)[^']*", lambda m: m.group(1) + interchange.encode(), data)
    if message is not None:
        data = re.sub(rb"(UNH\+)[^+']*", lambda m: m.group(1) + message.encode(), data)
        data = re.sub(rb"(UNT\+\d+\+)[^']*", lambda m: m.group(1) + message.encode(), data)
    return data


def read_all(d):
    out = {}
    for f in listdir_final(d):
        with open(os.path.join(d, f), "rb") as fh:
            out[f] = fh.read()
    return out


class Edifact(BrokerTest):
    def test_dis20_is_delivered_byte_identical_as_edi(self):
        b = self.broker().start()
        msg = edifact("DIS20_1.edi")
        drop(b.inbox("hospital"), "dis20.edi", msg)
        out = wait_for(lambda: read_all(b.outbox("municipality")), what="delivery")
        self.assertEqual(list(out.values()), [msg])
        self.assertTrue(list(out)[0].endswith(".edi"), list(out))
        self.assertEqual(listdir_final(b.outbox("hospital")), [], "a receipt for a good message")
        line = b.log_lines(r"event=accepted ")[0]
        for field in ("type=DIS20", "envelope=123456789", "sender=%s" % HOSPITAL_GLN,
                      "receiver=%s" % MUNICIPALITY_GLN, "endpoint=municipality"):
            self.assertIn(field, line)

    def test_resent_letter_in_a_new_interchange_is_delivered_once(self):
        b = self.broker().start()
        first = with_edi_ids(edifact("DIS20_1.edi"), interchange="KUV1", message="BREV1")
        again = with_edi_ids(edifact("DIS20_1.edi"), interchange="KUV2", message="BREV1")
        other = with_edi_ids(edifact("DIS20_1.edi"), interchange="KUV3", message="BREV2")
        drop(b.inbox("hospital"), "1.edi", first)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="first")
        drop(b.inbox("hospital"), "2.edi", again)
        drop(b.inbox("hospital"), "3.edi", other)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2, what="BREV2")
        wait_for(lambda: os.listdir(b.inbox("hospital")) == [], what="inbox empty")
        self.assertEqual(len(b.log_lines(r"event=duplicate ")), 1)
        self.assertEqual(sorted(read_all(b.outbox("municipality")).values()),
                         sorted([first, other]))

    def test_unknown_receiver_is_dead_letter_with_ctl01(self):
        b = self.broker().start()
        msg = with_edi_ids(edifact("DIS20_1.edi"), interchange="KUV9", message="BREV9",
                           receiver=UNKNOWN_GLN)
        drop(b.inbox("hospital"), "unknown.edi", msg)
        dead = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead"), what="dead letter")
        m = dead["messages"][0]
        self.assertEqual(m["receiver"], UNKNOWN_GLN)
        self.assertEqual(m["type"], "DIS20")
        self.assertIn("unknown receiver", m["reason"])
        receipts = wait_for(lambda: read_all(b.outbox("hospital")), what="CTL01 receipt")
        self.assertEqual(len(receipts), 1)
        name, r = list(receipts.items())[0]
        self.assertTrue(name.endswith(".edi"), name)
        self.assertTrue(r.startswith(b"UNA:+.? '\nUNB+UNOC:3+"), r[:40])
        self.assertRegex(r, rb"UNB\+UNOC:3\+[^:]+:14\+%s:14\+" % HOSPITAL_GLN.encode())
        self.assertIn(b"+CONTRL:D:93A:ZZ:C0130Q+CTL01'", r)
        self.assertIn(b"UCI+KUV9+%s:14+%s:14+4'" % (HOSPITAL_GLN.encode(), UNKNOWN_GLN.encode()),
                      r)
        self.assertIn(b"FTX+LOK+P00++Modtagerlokationsnummer har ikke kunnet identificeres.'", r)
        self.assertIn(b"UCM+BREV9+MEDDIS:D:93A:UN:D2030C+4'", r)
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertEqual(os.listdir(b.inbox("hospital")), [], "accepted file left in inbox")
        receipt_line = b.log_lines(r"event=receipt ")[0]
        self.assertIn("type=CTL01", receipt_line)
        self.assertIn("refers=KUV9", receipt_line)

    def test_error_samples_are_quarantined_with_their_own_reason(self):
        b = self.broker().start()
        expected = {
            "DIS20_ERROR_UNT0.edi": ("structure", "segment count 25, but message 24681012 has "
                                                  "26 segments"),
            "DIS20_ERROR_UNH2.edi": ("structure", "message reference 24681012 differs from "
                                                  "UNH's 24681011"),
            "DIS20_ERROR_UNZ0.edi": ("structure", "interchange control reference 123456789 "
                                                  "differs from UNB's 123456788"),
            "DIS20_ERROR_UNZ1.edi": ("structure", "message count 2, but the interchange holds 1 "
                                                  "message"),
            "DIS20_ERROR_ENC0.edi": ("encoding", "the data is UTF-8 encoded"),
        }
        for name in expected:
            drop(b.inbox("hospital"), name, edifact(name))
        q = b.quarantine("hospital")
        # listdir_final: a reason file being written (.NAME.reason.tmp) is not one
        wait_for(lambda: len([f for f in listdir_final(q) if not f.endswith(".reason")])
                 == len(expected), timeout=20, what="all error samples quarantined")
        self.assertEqual(os.listdir(b.inbox("hospital")), [])
        for name, (error, text) in expected.items():
            moved = [f for f in os.listdir(q) if f.endswith("-" + name)]
            self.assertEqual(len(moved), 1, name)
            with open(os.path.join(q, moved[0]), "rb") as f:
                self.assertEqual(f.read(), edifact(name), "quarantined copy differs: " + name)
            with open(os.path.join(q, moved[0] + ".reason")) as f:
                reason = f.read()
            self.assertIn("error: %s\n" % error, reason, name)
            self.assertIn(text, reason, name)
        # each is answered with a CTL02 syntax refusal to the hospital
        receipts = wait_for(lambda: len(listdir_final(b.outbox("hospital"))) == len(expected)
                            and read_all(b.outbox("hospital")), what="CTL02 receipts")
        bodies = list(receipts.values())
        for r in bodies:
            self.assertIn(b"+CONTRL:D:93A:ZZ:C0230Q+CTL02'", r)
            self.assertIn(b"FTX+SYN+P00++", r)
            self.assertNotIn(b"UCM+", r, "a refused interchange has no letters to echo")
        self.assertEqual(sum(b"UCI+123456788+" in r for r in bodies), 1)
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertEqual(b.ctl("dead")["dead"], 0)

    def test_contrl_to_unknown_receiver_gets_no_receipt(self):
        b = self.broker().start()
        # CTL03_1 goes to 5790000181872, which nobody owns here; it comes from the
        # municipality's own GLN (senders are bound to endpoints).
        drop(b.inbox("municipality"), "ack.edi",
             edifact("CTL03_1.edi").replace(b"5790000120420", b"5790000143055"))
        dead = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead"),
                        what="dead receipt")
        self.assertEqual(dead["messages"][0]["type"], "CTL03")
        wait_for(lambda: os.listdir(b.inbox("municipality")) == [], what="inbox empty")
        # a broken one is refused, still without an answer
        broken = edifact("CTL01_1.edi").replace(b"UNT+6+", b"UNT+5+")
        drop(b.inbox("municipality"), "broken-ack.edi", broken)
        q = b.quarantine("municipality")
        wait_for(lambda: os.path.isdir(q) and len(os.listdir(q)) == 2, what="quarantined")
        self.assertEqual(listdir_final(b.outbox("municipality")), [],
                         "a receipt was answered with a receipt")
        self.assertEqual(b.log_lines(r"event=receipt "), [])
