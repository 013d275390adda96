"""Every MedCom format through the real daemon (issue 10).

- Bare OIOXML (an XDIS13 too, a type with no list entry), a VANSEnvelope,
  an SBDH, FHIR XML and FHIR JSON are each
  routed by the receiver of their innermost letter and delivered byte for
  byte as received, wrapping and all, with their own file extension.
- A receiver nobody owns gets the sender a negative receipt in the
  sender's own format and wrapping (XCTL01 bare, Receipt/NegativeVans for
  VANS, an SBDH around an XCTL01, a fatal-error FHIR Acknowledgement in
  JSON with MSG_Receiver_Identifier_UNKNOWN), delivered to the endpoint
  the message came from, not to one looked up from its sender's GLN.
- The same letter sent bare and then in an SBDH is delivered once.
- A wrapping whose payload is broken is refused (quarantined).
- Receipts and acknowledgements pass through as ordinary messages and are
  never answered with a receipt.
"""

import base64
import os
import re

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, SAMPLES, drop, listdir_final,
                     sample, wait_for, with_ids)

BROKER_GLN = "5790000000000"
FHIR_SENDER = "5790000209354"
FHIR_RECEIVER = "5790001348120"
FHIR_SENDER_SOR = "265161000016000"     # the samples' sender and receiver SOR ids
FHIR_RECEIVER_SOR = "953741000016009"
REGIONH = "5790002515200"
REGIONH_MUNI = "5790002508226"


def shared(folder, name):
    with open(os.path.join(SAMPLES, folder, name), "rb") as f:
        return f.read()


VANS = ("vans-sbdh", "XDIS18_regionh_VANSEnvelope.xml")
SBDH = ("vans-sbdh", "XDIS20_regionh_SBDH.xml")
FHIR_XML = ("fhir", "CC_new-message_Bundle-add5e7e2.xml")
FHIR_JSON = ("fhir", "HN_STIN_admit-inpatient_Bundle-a5e5b880.json")


def sbdh_payload():
    """The XDIS20 the Region H SBDH carries: the same letter, bare."""
    m = re.search(rb"<BinaryContent[^>]*>(.*?)</BinaryContent>", shared(*SBDH), re.S)
    return base64.b64decode(m.group(1))


def xdis13():
    """A BookingConfirmation: a letter type the broker has no list entry for."""
    with open(os.path.join(os.path.dirname(__file__), "..", "data", "oioxml",
                           "XDIS13_BookingConfirmation.xml"), "rb") as f:
        return f.read()


def read_dir(d):
    """{file name: bytes} of the complete files in d."""
    out = {}
    for n in listdir_final(d):
        with open(os.path.join(d, n), "rb") as f:
            out[n] = f.read()
    return out


class Formats(BrokerTest):
    def make(self, endpoints=None, gln=True, endpoint_extra=None):
        eps = endpoints or {
            "hospital": ("hospital", [HOSPITAL_GLN, REGIONH, FHIR_SENDER]),
            "municipality": ("municipality", [MUNICIPALITY_GLN, REGIONH_MUNI, FHIR_RECEIVER]),
        }
        b = self.broker(endpoints=eps, endpoint_extra=endpoint_extra)
        if gln:
            b.write_config(b.config_text().replace(
                "[broker]\n", "[broker]\ngln = %s\n" % BROKER_GLN, 1))
        return b.start()

    def test_every_format_is_routed_and_delivered_as_received(self):
        b = self.make()
        inputs = {
            "bare.xml": with_ids(sample("DIS20_1.xml"), "ENVB", "LETB"),
            "xdis13.xml": xdis13(),
            "vans.xml": shared(*VANS),
            "sbdh.xml": shared(*SBDH),
            "fhir.xml": shared(*FHIR_XML),
            "fhir.json": shared(*FHIR_JSON),
        }
        for name, data in inputs.items():
            drop(b.inbox("hospital"), name, data)
        out = wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 6
                       and read_dir(b.outbox("municipality")), what="six deliveries")
        self.assertEqual(sorted(out.values()), sorted(inputs.values()),
                         "delivered byte for byte, wrapping and all")
        exts = sorted(n.rsplit(".", 1)[1] for n in out)
        self.assertEqual(exts, ["json", "xml", "xml", "xml", "xml", "xml"])
        for n, data in out.items():
            self.assertEqual(n.endswith(".json"), data == inputs["fhir.json"], n)
        self.assertEqual(listdir_final(b.outbox("hospital")), [], "no receipts")
        lines = b.log_lines(r"event=accepted ")
        self.assertTrue(any("format=vans+oioxml" in l and "type=XDIS18" in l
                            and "wrapper=vans:EPIC394319568" in l for l in lines), lines)
        self.assertTrue(any("format=sbdh+oioxml" in l and "type=XDIS20" in l for l in lines))
        self.assertTrue(any("type=XDIS13" in l for l in lines), "a letter type with no list entry")
        self.assertTrue(any("format=fhir-json" in l and "type=hospital-notification-message" in l
                            for l in lines), lines)
        # FHIR's SOR ids are shown to operators (routing is by GLN only)
        fhir = [l for l in lines if "format=fhir-" in l]
        self.assertEqual(len(fhir), 2, lines)
        for l in fhir:
            self.assertIn("sender_sor=%s receiver_sor=%s" % (FHIR_SENDER_SOR, FHIR_RECEIVER_SOR), l)
        self.assertTrue(all("receiver_sor=-" in l for l in lines if "format=fhir-" not in l), lines)
        self.assertEqual(b.ctl("dead")["dead"], 0)

    def test_unknown_receiver_is_answered_in_the_senders_format_and_wrapping(self):
        # Nobody owns the receivers; the sender GLNs are the hospital's, but
        # everything comes in through the gateway: the receipts go back there.
        eps = {
            "hospital": ("hospital", [HOSPITAL_GLN, REGIONH, FHIR_SENDER]),
            "gateway": ("other", ["5790000000099"]),
        }
        # the gateway relays for the hospital (senders are bound to endpoints)
        b = self.make(endpoints=eps, endpoint_extra={
            "gateway": "may_send_for = %s, %s, %s" % (HOSPITAL_GLN, REGIONH, FHIR_SENDER)})
        drop(b.inbox("gateway"), "bare.xml", with_ids(sample("DIS20_1.xml"), "ENVU", "LETU"))
        drop(b.inbox("gateway"), "vans.xml", shared(*VANS))
        drop(b.inbox("gateway"), "sbdh.xml", shared(*SBDH))
        drop(b.inbox("gateway"), "fhir.json", shared(*FHIR_JSON))
        out = wait_for(lambda: len(listdir_final(b.outbox("gateway"))) == 4
                       and read_dir(b.outbox("gateway")), what="four receipts")
        self.assertEqual(b.ctl("dead")["dead"], 4)
        self.assertEqual(listdir_final(b.outbox("hospital")), [],
                         "receipts go to the source endpoint, not to the sender's GLN")
        bodies = list(out.values())
        xctl = [d for d in bodies if d.lstrip().startswith(b"<?xml") and b"<Emessage" in d]
        vans = [d for d in bodies if b"<VANSEnvelope" in d]
        sbdh = [d for d in bodies if b"<StandardBusinessDocument" in d]
        ack = [d for n, d in out.items() if n.endswith(".json")]
        self.assertEqual((len(xctl), len(vans), len(sbdh), len(ack)), (1, 1, 1, 1), list(out))
        self.assertIn(b"<RefuseCode>ukendt_lokationsnummer</RefuseCode>", xctl[0])
        self.assertIn(b"<OriginalEnvelopeIdentifier>ENVU</OriginalEnvelopeIdentifier>", xctl[0])
        self.assertIn(b"<NegativeVans>", vans[0])
        self.assertIn(b"<SenderID EndPointType=\"EAN\">%s</SenderID>" % BROKER_GLN.encode(),
                      vans[0])
        self.assertIn(b"<ReceiverID EndPointType=\"EAN\">%s</ReceiverID>" % REGIONH.encode(),
                      vans[0])
        self.assertIn(b"<OriginalEnvelopeIdentifier>EPIC394319568</OriginalEnvelopeIdentifier>",
                      vans[0])
        inner = base64.b64decode(re.search(rb"<BinaryContent[^>]*>(.*?)</BinaryContent>",
                                           sbdh[0], re.S).group(1))
        self.assertIn(b"<NegativeVansReceipt>", inner)
        self.assertIn(b"0088:%s" % REGIONH.encode(), sbdh[0])
        self.assertIn(b"MSG_Receiver_Identifier_UNKNOWN", ack[0])
        self.assertIn(b"\"fatal-error\"", ack[0])
        self.assertIn(b"b9b4818e-02de-4cc4-b418-d20cbc7b5404", ack[0])
        self.assertIn(BROKER_GLN.encode(), ack[0])
        dead = b.ctl("dead")["messages"]
        self.assertEqual(sorted(m["type"] for m in dead),
                         ["XDIS18", "XDIS20", "XDIS20", "hospital-notification-message"],
                         "operators see the innermost letters' types")
        self.assertTrue(all("unknown receiver" in m["reason"] for m in dead), dead)
        # the receiver's SOR id helps an operator find whom a FHIR message was for
        self.assertTrue(any("format=fhir-json" in l and "receiver_sor=%s" % FHIR_RECEIVER_SOR in l
                            for l in b.log_lines(r"event=dead-letter ")))

    def test_the_same_letter_bare_then_in_sbdh_is_delivered_once(self):
        b = self.make()
        bare = sbdh_payload()
        drop(b.inbox("hospital"), "bare.xml", bare)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="the bare one")
        drop(b.inbox("hospital"), "wrapped.xml", shared(*SBDH))
        wait_for(lambda: os.listdir(b.inbox("hospital")) == [], what="inbox empty")
        wait_for(lambda: b.log_lines(r"event=duplicate .*format=sbdh\+oioxml"), what="duplicate")
        self.assertEqual(list(read_dir(b.outbox("municipality")).values()), [bare])
        self.assertEqual(b.ctl("dead")["dead"], 0)

    def test_a_wrapping_with_a_broken_payload_is_refused(self):
        b = self.make()
        broken = shared(*SBDH).replace(b'encoding="ISO-8859-1">PEV', b'encoding="ISO-8859-1">*EV',
                                       1)
        drop(b.inbox("hospital"), "broken.xml", broken)
        q = wait_for(lambda: [n for n in listdir_final(b.quarantine("hospital"))
                              if n.endswith(".reason")], what="quarantine")
        with open(os.path.join(b.quarantine("hospital"), q[0]), "rb") as f:
            self.assertIn(b"SBDH BinaryContent is not base64", f.read())
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        vans = shared(*VANS).replace(b"<Data>PG5z", b"<Data>*G5z", 1)
        drop(b.inbox("hospital"), "vans.xml", vans)
        out = wait_for(lambda: read_dir(b.outbox("hospital")), what="NegativeVans")
        self.assertIn(b"<NegativeVans>", list(out.values())[0])

    def test_receipts_and_acknowledgements_pass_through_and_are_never_answered(self):
        b = self.make()
        # An end-to-end Acknowledgement to a known receiver is an ordinary message.
        ack = shared("fhir", "ACK_ok_Bundle-a8c041b8.xml")
        drop(b.inbox("municipality"), "ack.xml", ack)
        out = wait_for(lambda: read_dir(b.outbox("hospital")), what="ack delivered")
        self.assertEqual(list(out.values()), [ack])
        # One to nobody is a dead letter, and nobody gets an acknowledgement of it.
        lost = shared("fhir", "ACK_fatal-error_Bundle-bc9535ef.xml").replace(
            b"5790000209354", b"5790000999999")
        vans_receipt = (
            b'<VANSEnvelope xmlns="urn:oio:medcom:vans-envelope:1.0.4">'
            b'<SenderID EndPointType="EAN">5790002508226</SenderID>'
            b'<ReceiverID EndPointType="EAN">5790000999999</ReceiverID>'
            b'<EnvelopeIdentifier>EPIC7</EnvelopeIdentifier>'
            b'<SentDateTime>2024-03-01T08:15:00</SentDateTime><Receipt><NegativeVans><Error>'
            b'<Description>x</Description></Error><OriginalEnvelopeIdentifier>EPIC6'
            b'</OriginalEnvelopeIdentifier></NegativeVans></Receipt></VANSEnvelope>')
        drop(b.inbox("municipality"), "lost-ack.xml", lost)
        drop(b.inbox("municipality"), "lost-vans.xml", vans_receipt)
        wait_for(lambda: b.ctl("dead")["dead"] == 2, what="two dead receipts")
        wait_for(lambda: os.listdir(b.inbox("municipality")) == [], what="inbox empty")
        self.assertEqual(listdir_final(b.outbox("municipality")), [],
                         "a receipt was answered with a receipt")
        self.assertEqual(len(b.log_lines(r"event=receipt ")), 0)
