"""Bad input ends in quarantine with a specific reason; the daemon keeps running.

Malformed, truncated, oversized, wrongly encoded and hostile XML (entity
expansion, external entities) dropped into an inbox move to the endpoint's
quarantine folder with a ".reason" file naming the error class; nothing is
delivered, nothing already accepted is lost, and good messages keep flowing.
"""

import os

from harness import BrokerTest, drop, listdir_final, sample, wait_for, with_ids

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Emessage><Envelope><Identifier>&lol9;</Identifier></Envelope></Emessage>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Emessage [ <!ENTITY host SYSTEM "file://SECRET_PATH"> ]>
<Emessage xmlns="http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/">
<Envelope><Sent><Date>2020-01-01</Date><Time>10:00</Time></Sent>
<Identifier>&host;</Identifier><AcknowledgementCode>minuspositivkvitt</AcknowledgementCode>
</Envelope></Emessage>
"""


def cases(secret_path):
    good = sample("DIS20_1.xml")
    deep = b"<Emessage>" + b"<a>" * 300 + b"</a>" * 300 + b"</Emessage>"
    latin1_declared_utf8 = good.replace(b'encoding="windows-1252"', b'encoding="UTF-8"')
    assert b"\xe6" in latin1_declared_utf8  # the sample has a Latin-1 'ae'
    return {
        "billion-laughs.xml": (BILLION_LAUGHS, "hostile"),
        "xxe.xml": (XXE.replace(b"SECRET_PATH", secret_path.encode()), "hostile"),
        "malformed.xml": (good.replace(b"</Envelope>", b"</Envelop>"), "syntax"),
        "truncated.xml": (good[: len(good) // 2], "syntax"),
        "oversized.xml": (good + b"<!--" + b"x" * 70000 + b"-->", "too-big"),
        "wrong-encoding.xml": (latin1_declared_utf8, "encoding"),
        "not-xml.edi": (b"\x00\x01\x02 binary garbage \xff\xfe", "structure"),
        "wrong-root.xml": (b"<?xml version='1.0'?><Bundle><id>x</id></Bundle>", "structure"),
        "too-deep.xml": (deep, "depth"),
        "empty.xml": (b"", "structure"),
    }


class Quarantine(BrokerTest):
    def test_bad_input_is_quarantined_with_specific_reason(self):
        b = self.broker(extra="").start()
        # a small limit so that "oversized" is cheap to build
        b.stop()
        b.write_config(b.config_text().replace("[broker]\n", "[broker]\nmax_message_size = 64K\n"))
        b.start()
        # Something accepted before the bad input must survive it.
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")
        drop(b.inbox("hospital"), "before.xml", with_ids(sample("DIS20_1.xml"), "B1", "B1"))
        wait_for(lambda: b.endpoint("municipality")["queued"] == 1, what="queued")
        # what an external entity would leak: a file with a token nobody else has
        secret_path = os.path.join(self.tmp, "secret.txt")
        token = "SECRET-%s" % os.urandom(8).hex()
        with open(secret_path, "w") as f:
            f.write(token)
        expected = cases(secret_path)
        for name, (data, _) in expected.items():
            drop(b.inbox("hospital"), name, data)
        q = b.quarantine("hospital")
        # (a reason file is written under a temporary ".*.tmp" name first)
        wait_for(lambda: len([f for f in os.listdir(q) if not f.endswith(".reason")
                              and not f.startswith(".")]) ==
                 len(expected) if os.path.isdir(q) else False, timeout=20,
                 what="all bad files quarantined")
        self.assertEqual(os.listdir(b.inbox("hospital")), [])
        for name, (data, error) in expected.items():
            moved = [f for f in os.listdir(q) if f.endswith("-" + name)]
            self.assertEqual(len(moved), 1, name)
            with open(os.path.join(q, moved[0]), "rb") as f:
                self.assertEqual(f.read(), data, "quarantined copy differs: " + name)
            with open(os.path.join(q, moved[0] + ".reason")) as f:
                reason = f.read()
            self.assertIn("error: %s\n" % error, reason, name)
            self.assertIn("endpoint: hospital", reason)
            self.assertNotIn(token, reason, name)
        self.assertNotIn(token, b.log(), "an external entity was read")
        # still running, still accepting, the earlier message is intact
        self.assertIsNone(b.proc.poll())
        drop(b.inbox("hospital"), "after.xml", with_ids(sample("DIS20_1.xml"), "A1", "A1"))
        os.rename(b.outbox("municipality") + ".away", b.outbox("municipality"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2,
                 what="good messages delivered after the bad ones")

    def test_decodable_but_invalid_envelope_gets_negative_receipt(self):
        b = self.broker().start()
        bad = sample("DIS20_1.xml").replace(b"<VersionCode>XD2030C</VersionCode>",
                                            b"<VersionCode>XD9930C</VersionCode>")
        drop(b.inbox("hospital"), "badversion.xml", bad)
        q = b.quarantine("hospital")
        wait_for(lambda: os.path.isdir(q) and len(os.listdir(q)) == 2, what="quarantined")
        reason = [f for f in os.listdir(q) if f.endswith(".reason")][0]
        with open(os.path.join(q, reason)) as f:
            self.assertIn("error: version", f.read())
        receipts = wait_for(lambda: listdir_final(b.outbox("hospital")), what="receipt")
        with open(os.path.join(b.outbox("hospital"), receipts[0]), "rb") as f:
            r = f.read()
        self.assertIn(b"<RefuseCode>problem_med_version</RefuseCode>", r)
        self.assertIn(b"<OriginalEnvelopeIdentifier>123456789</OriginalEnvelopeIdentifier>", r)
