"""kill -9 at random moments while 2,000 messages flow (issue 2, Proof 1).

A producer drops 2,000 distinct messages into the hospital's inbox while a
nemesis SIGKILLs the daemon at random moments and restarts it. The
municipality's outbox is immutable (unwritable) for the first part of the
run and writable afterwards. At the end:
  - none lost: every letter id sent is in the outbox;
  - every delivered file is byte-identical to what was sent;
  - order kept per sender: ordering the outbox by broker id gives the
    letters in the order they were sent;
  - no message twice in the outbox (a re-delivery replaces its own file).
"""

import os
import random
import re
import subprocess
import threading
import time

from harness import BrokerTest, drop, listdir_final, sample, wait_for, with_ids

N = 2000
KILLS = 12
LETTER = re.compile(rb"<Identifier>(L\d{5})</Identifier>")
FINAL = re.compile(r"^[0-9a-f]{8}-(\d{12})\.xml$")


class Crash(BrokerTest):
    def test_kill9_under_load_loses_nothing(self):
        seed = int(os.environ.get("EDIBROKER_SEED", time.time()))
        rng = random.Random(seed)
        print("seed", seed)
        # drain_rate slows the backlog's drain so that kills land mid-delivery too
        b = self.broker(delivery={"retry_initial": "100ms", "retry_max": "500ms",
                                  "batch_max": "64", "drain_rate": "500"}).start()
        out = b.outbox("municipality")
        self.assertEqual(subprocess.run(["chattr", "+i", out]).returncode, 0,
                         "chattr +i failed: the temp dir must be on ext4 or XFS")
        base = sample("DIS20_1.xml")
        sent = {}
        done = threading.Event()

        def produce():
            for i in range(N):
                lid = "L%05d" % i
                data = with_ids(base, "E%05d" % i, lid)
                sent[lid] = data
                drop(b.inbox("hospital"), "msg-%05d.xml" % i, data)
                if i % 50 == 49:
                    time.sleep(0.08)
            done.set()

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            kills = 0
            writable_after = rng.randint(3, 6)
            while kills < KILLS:
                time.sleep(rng.uniform(0.2, 1.2))
                b.kill9()
                kills += 1
                if kills == writable_after:
                    subprocess.run(["chattr", "-i", out], check=True)
                b.start()
        finally:
            subprocess.run(["chattr", "-i", out])
            producer.join(60)
        self.assertTrue(done.is_set(), "producer did not finish")
        self.assertEqual(kills, KILLS)

        wait_for(lambda: len(listdir_final(out)) >= N and
                 b.endpoint("municipality")["queued"] == 0, timeout=120,
                 what="all %d delivered" % N)
        files = listdir_final(out)
        by_id = sorted(files, key=lambda f: int(FINAL.match(f).group(1)))
        order = []
        for f in by_id:
            with open(os.path.join(out, f), "rb") as fh:
                data = fh.read()
            lid = LETTER.search(data).group(1).decode()
            self.assertEqual(data, sent[lid], "delivered bytes differ for " + lid)
            order.append(lid)
        self.assertEqual(len(order), len(set(order)), "a message is twice in the outbox")
        self.assertEqual(set(order), set(sent), "lost: %s" % sorted(set(sent) - set(order))[:10])
        self.assertEqual(order, sorted(order), "order per sender not kept")
        self.assertEqual(os.listdir(b.inbox("hospital")), [])
        self.assertEqual([f for f in os.listdir(out) if f.startswith(".")], [],
                         "temporary files left in the outbox")
        self.assertEqual(b.stop(), 0)
        log = b.log()
        print("kills=%d duplicates-dropped=%d deliveries=%d (above %d = re-deliveries after "
              "a kill mid-delivery)" % (kills, log.count("event=duplicate "),
                                        log.count("event=delivered "), N))
