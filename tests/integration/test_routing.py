"""Routing decisions, dead letters, negative receipts and duplicates.

- A receiver GLN no endpoint owns is not queued: the message becomes a dead
  letter with its reason (edibrokerctl dead), and the sender's endpoint gets
  an XCTL01 NegativeVansReceipt with RefuseCode ukendt_lokationsnummer.
- [routing] default_endpoint takes GLNs nobody owns.
- An Emessage whose letters go to different endpoints is never split or
  rewritten: it is a dead letter ("letters for different endpoints").
- The same letter (sender GLN + letter id) is delivered once, whether it is
  resent in the same envelope or in a new one.
"""

import os
import re

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, drop, listdir_final,
                     sample, wait_for, with_ids)


def read_all(d):
    out = []
    for f in listdir_final(d):
        with open(os.path.join(d, f), "rb") as fh:
            out.append(fh.read())
    return out


def two_letters(receiver1, receiver2):
    """A two-letter Emessage built from DIS20_1.xml (letters L1 and L2)."""
    data = sample("DIS20_1.xml")
    start = data.index(b"<NotificationOfAdmission>")
    end = data.index(b"</NotificationOfAdmission>") + len(b"</NotificationOfAdmission>")
    letter = data[start:end]
    l1 = re.sub(rb"<Identifier>24681012</Identifier>", b"<Identifier>L1</Identifier>", letter,
                count=1).replace(b"5790000143055", receiver1.encode())
    l2 = re.sub(rb"<Identifier>24681012</Identifier>", b"<Identifier>L2</Identifier>", letter,
                count=1).replace(b"5790000143055", receiver2.encode())
    return data[:start] + l1 + l2 + data[end:]


class Routing(BrokerTest):
    def test_unknown_receiver_is_dead_letter_with_negative_receipt(self):
        b = self.broker().start()
        msg = with_ids(sample("DIS20_1.xml"), "ENV1", "LET1", receiver="5790009999994")
        drop(b.inbox("hospital"), "unknown.xml", msg)
        dead = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead"),
                        what="dead letter")
        m = dead["messages"][0]
        self.assertEqual(m["receiver"], "5790009999994")
        self.assertEqual(m["source"], "hospital")
        self.assertIn("unknown receiver", m["reason"])
        self.assertIn("5790009999994", m["reason"])
        # The receipt goes back to the sender's endpoint.
        receipts = wait_for(lambda: read_all(b.outbox("hospital")), what="XCTL01 receipt")
        self.assertEqual(len(receipts), 1)
        r = receipts[0]
        self.assertIn(b"<NegativeVansReceipt>", r)
        self.assertIn(b"<RefuseCode>ukendt_lokationsnummer</RefuseCode>", r)
        self.assertIn(b"<OriginalEnvelopeIdentifier>ENV1</OriginalEnvelopeIdentifier>", r)
        self.assertIn(b"<OriginalLetterIdentifier>LET1</OriginalLetterIdentifier>", r)
        self.assertRegex(r, rb"<Receiver>\s*<EANIdentifier>5790000143054</EANIdentifier>")
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertEqual(os.listdir(b.inbox("hospital")), [], "accepted file left in inbox")
        rc, out, _ = b.ctl_text("dead")
        self.assertEqual(rc, 0)
        self.assertIn("unknown receiver", out)

    def test_receipt_with_unknown_receiver_gets_no_receipt(self):
        b = self.broker().start()
        # CTL03_1 is addressed to 5790000181872, which nobody owns here; its
        # sender is made the municipality's own (senders are bound to endpoints).
        drop(b.inbox("municipality"), "ack.xml",
             sample("CTL03_1.xml").replace(b"5790000120420", MUNICIPALITY_GLN.encode()))
        wait_for(lambda: b.ctl("dead")["dead"] == 1, what="dead receipt")
        self.assertEqual(b.ctl("dead")["messages"][0]["type"], "XCTL03")
        self.assertEqual(listdir_final(b.outbox("municipality")), [],
                         "a receipt was answered with a receipt")

    def test_default_endpoint_takes_unowned_glns(self):
        eps = {
            "hospital": ("hospital", [HOSPITAL_GLN]),
            "municipality": ("municipality", [MUNICIPALITY_GLN]),
            "gateway": ("other", ["5790000000005"]),
        }
        b = self.broker(endpoints=eps, extra="[routing]\ndefault_endpoint = gateway\n").start()
        drop(b.inbox("hospital"), "far.xml",
             with_ids(sample("DIS20_1.xml"), "E1", "L1", receiver="5790001111111"))
        drop(b.inbox("hospital"), "near.xml", with_ids(sample("DIS20_1.xml"), "E2", "L2"))
        wait_for(lambda: len(listdir_final(b.outbox("gateway"))) == 1, what="via default")
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="owned GLN")
        self.assertIn(b"5790001111111", read_all(b.outbox("gateway"))[0])
        self.assertEqual(b.ctl("dead")["dead"], 0)

    def test_letters_for_different_endpoints_are_not_split(self):
        eps = {
            "hospital": ("hospital", [HOSPITAL_GLN]),
            "municipality": ("municipality", [MUNICIPALITY_GLN]),
            "other-muni": ("municipality", ["5790000143062"]),
        }
        b = self.broker(endpoints=eps).start()
        drop(b.inbox("hospital"), "split.xml", two_letters(MUNICIPALITY_GLN, "5790000143062"))
        dead = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead"), what="dead")
        self.assertIn("different endpoints", dead["messages"][0]["reason"])
        self.assertEqual(dead["messages"][0]["letters"], 2)
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        self.assertEqual(listdir_final(b.outbox("other-muni")), [])

    def test_same_endpoint_two_letters_delivered_whole(self):
        eps = {
            "hospital": ("hospital", [HOSPITAL_GLN]),
            "municipality": ("municipality", [MUNICIPALITY_GLN, "5790000143062"]),
        }
        b = self.broker(endpoints=eps).start()
        msg = two_letters(MUNICIPALITY_GLN, "5790000143062")
        drop(b.inbox("hospital"), "two.xml", msg)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="delivery")
        self.assertEqual(read_all(b.outbox("municipality")), [msg])

    def test_resent_letter_is_delivered_once(self):
        b = self.broker().start()
        first = with_ids(sample("DIS20_1.xml"), "ENVA", "LETTER1")
        same_env = first
        new_env = with_ids(sample("DIS20_1.xml"), "ENVB", "LETTER1")
        other = with_ids(sample("DIS20_1.xml"), "ENVC", "LETTER2")
        drop(b.inbox("hospital"), "1.xml", first)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="first")
        drop(b.inbox("hospital"), "2.xml", same_env)
        drop(b.inbox("hospital"), "3.xml", new_env)
        drop(b.inbox("hospital"), "4.xml", other)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2, what="LETTER2")
        wait_for(lambda: os.listdir(b.inbox("hospital")) == [], what="inbox empty")
        self.assertEqual(len(b.log_lines(r"event=duplicate ")), 2)
        self.assertEqual(sorted(read_all(b.outbox("municipality"))), sorted([first, other]))
        # Same letter id from another sender is a different letter.
        foreign = with_ids(sample("DIS20_1.xml"), "ENVD", "LETTER1", sender="5790002515200")
        drop(b.inbox("hospital"), "5.xml", foreign)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 3, what="foreign")

    def test_duplicates_within_one_batch(self):
        b = self.broker().start()
        b.stop()
        msg = with_ids(sample("DIS20_1.xml"), "ENVX", "LETX")
        for i in range(5):
            drop(b.inbox("hospital"), "dup%d.xml" % i, msg)
        b.start()
        wait_for(lambda: os.listdir(b.inbox("hospital")) == [], what="inbox empty")
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="one copy")
        self.assertEqual(len(b.log_lines(r"event=duplicate ")), 4)
