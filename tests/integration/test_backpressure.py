"""Back-pressure (issue 9, point 5): a full queue costs only its endpoint.

An endpoint's queue takes no more than [delivery] max_queued_bytes: once the
municipality's outbox is gone and its queue is at the mark, further files for
it wait in the hospital's inbox ("busy"), while files for another endpoint in
the same inbox flow on. When the municipality is back, everything is
delivered, in order, and the inbox empties.
"""

import os
import re
import time

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, drop, listdir_final, sample,
                     wait_for, with_ids)

OTHER_GLN = "5790000000029"
LETTER = re.compile(rb"<Identifier>(L\w+)</Identifier>")
FINAL = re.compile(r"^[0-9a-f]{8}-(\d{12})\.xml$")


def padded(i, receiver, kb=100):
    """A DIS20 of about kb KiB (a comment pads it) with its own ids."""
    data = with_ids(sample("DIS20_1.xml"), "EBP%03d" % i, "LBP%03d" % i, receiver=receiver)
    pad = b"<!--" + b"x" * (kb * 1024) + b"-->"
    return data.replace(b"<Envelope>", pad + b"<Envelope>", 1)


class Backpressure(BrokerTest):

    def test_a_full_queue_waits_and_other_endpoints_flow(self):
        eps = {
            "hospital": ("hospital", [HOSPITAL_GLN]),
            "municipality": ("municipality", [MUNICIPALITY_GLN]),
            "other": ("municipality", [OTHER_GLN]),
        }
        b = self.broker(endpoints=eps, delivery={"retry_initial": "200ms", "retry_max": "500ms",
                                                 "max_queued_bytes": "1M"}).start()
        away = b.outbox("municipality") + ".away"
        os.rename(b.outbox("municipality"), away)
        n = 15
        for i in range(n):
            drop(b.inbox("hospital"), "m%02d.xml" % i, padded(i, MUNICIPALITY_GLN))
        # about ten fit under 1 MiB; the rest wait in the inbox, busy
        wait_for(lambda: b.log_lines(r"event=busy source=hospital endpoint=municipality"),
                 timeout=10, what="the municipality's queue full")
        queued = b.endpoint("municipality")["queued"]
        self.assertGreater(queued, 5)
        self.assertLess(queued, n, "the mark did not hold")
        time.sleep(1.5)
        self.assertEqual(b.endpoint("municipality")["queued"], queued, "the queue grew past its mark")
        waiting = listdir_final(b.inbox("hospital"))
        self.assertEqual(len(waiting), n - queued, waiting)
        # the other endpoint is not held up by the full one
        t0 = time.monotonic()
        for i in range(5):
            drop(b.inbox("hospital"), "o%d.xml" % i,
                 with_ids(sample("DIS20_1.xml"), "EO%d" % i, "LO%d" % i, receiver=OTHER_GLN))
        wait_for(lambda: len(listdir_final(b.outbox("other"))) == 5, timeout=8,
                 what="messages for another endpoint")
        self.assertLess(time.monotonic() - t0, 8)
        # the municipality is back: all of it arrives, in the order it was sent
        os.rename(away, b.outbox("municipality"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == n, timeout=30,
                 what="all %d delivered" % n)
        wait_for(lambda: listdir_final(b.inbox("hospital")) == [], timeout=10, what="inbox empty")
        names = sorted(listdir_final(b.outbox("municipality")),
                       key=lambda f: int(FINAL.match(f).group(1)))
        letters = []
        for f in names:
            with open(os.path.join(b.outbox("municipality"), f), "rb") as fh:
                letters.append(LETTER.search(fh.read()).group(1).decode())
        self.assertEqual(letters, ["LBP%03d" % i for i in range(n)], "order lost")
