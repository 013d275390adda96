"""One endpoint's trouble costs only that endpoint (issue 7).

Spool folders of some endpoints sit on a loop-mounted ext4 image that the
test freezes with `fsfreeze -f`: every write, rename, unlink and mkdir there
blocks in the kernel, as on a dead NFS or SMB mount. While it is frozen:
  - 50 messages to a third endpoint are delivered within 15 s, and
    `edibrokerctl status` answers within 2 s every time it is asked;
  - the frozen endpoints turn SUSPECT, then DOWN (delivery_timeout);
  - a reload (SIGHUP) does not stall the daemon either;
  - with an inbox on the share, other endpoints' pick-up goes on;
  - SIGTERM ends the daemon within its stop timeout.
After `fsfreeze -u` the backlog is delivered byte-identical, in order, and
never as a second copy under another name.

Needs root (mount, losetup, fsfreeze); the share is always thawed and
unmounted in tearDown, whatever happened.
"""

import os
import re
import signal
import subprocess
import time

from harness import Broker, BrokerTest, drop, listdir_final, sample, wait_for, with_ids

FINAL = re.compile(r"^[0-9a-f]{8}-(\d{12})\.xml$")
LETTER = re.compile(rb"<Identifier>(L\w+)</Identifier>")

ENDPOINTS = {
    "hospital": ("hospital", ["5790000143054"]),
    "hospital-b": ("hospital", ["5790000143060"]),
    "muni-a": ("municipality", ["5790000143055"]),
    "muni-b": ("municipality", ["5790000143056"]),
    "muni-c": ("municipality", ["5790000143057"]),
}


class ShareBroker(Broker):
    """A broker whose listed spool folders live on the frozen share."""

    def __init__(self, root, share, on_share, **kw):
        self.share = share
        self.on_share = on_share  # {"muni-a": "out", "hospital-b": "in", ...}
        super().__init__(root, **kw)

    def config_text(self):
        # Endpoints listed in no_create keep their folders as they are.
        text = super().config_text()
        for ep in getattr(self, "no_create", ()):
            text = re.sub(r"(\[endpoint %s\][^\[]*?)create_dirs = yes" % re.escape(ep),
                          r"\1create_dirs = no", text)
        return text

    def _folder(self, ep, which):
        if which in self.on_share.get(ep, ()):
            return os.path.join(self.share, ep, which)
        return os.path.join(self.spool, ep, which)

    def inbox(self, ep):
        return self._folder(ep, "in")

    def outbox(self, ep):
        return self._folder(ep, "out")


def lid(prefix, i):
    """The letter id of message i of a series."""
    return "L%s%05d" % (prefix, i)


def msg(i, receiver, sender="5790000143054", prefix="A"):
    return with_ids(sample("DIS20_1.xml"), "E%s%05d" % (prefix, i), lid(prefix, i),
                    receiver=receiver, sender=sender)


class Isolation(BrokerTest):

    def setUp(self):
        super().setUp()
        self.image = os.path.join(self.tmp, "share.img")
        self.share = os.path.join(self.tmp, "share")
        os.makedirs(self.share)
        with open(self.image, "wb") as f:
            f.truncate(96 * 1024 * 1024)
        r = subprocess.run(["mkfs.ext4", "-q", "-F", self.image], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["mount", "-o", "loop", self.image, self.share], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, "a loop mount needs root: " + r.stderr)
        self.frozen = False

    def tearDown(self):
        self.thaw()
        for b in self.brokers:
            b.close()
        subprocess.run(["umount", "-l", self.share])
        super().tearDown()

    def freeze(self):
        r = subprocess.run(["fsfreeze", "-f", self.share], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.frozen = True

    def thaw(self):
        if self.frozen:
            subprocess.run(["fsfreeze", "-u", self.share])
            self.frozen = False

    def start(self, on_share, endpoint_extra=None, extra="", delivery_timeout="2s",
              no_create=(), **kw):
        ee = {name: "delivery_timeout = %s" % delivery_timeout for name in ENDPOINTS}
        for name, text in (endpoint_extra or {}).items():
            ee[name] += "\n" + text
        b = ShareBroker(self.tmp, self.share, on_share, endpoints=ENDPOINTS,
                        endpoint_extra=ee,
                        extra="[outage]\ndown_after = 2\nprobe_interval = 500ms\n" + extra, **kw)
        b.no_create = no_create
        b.write_config()
        self.brokers.append(b)
        return b

    def timed_status(self, b):
        t0 = time.monotonic()
        st = b.status()
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, "edibrokerctl status took %.1fs" % took)
        return st

    def health(self, b, ep):
        for e in self.timed_status(b)["endpoints"]:
            if e["name"] == ep:
                return e["health"]
        raise AssertionError("no endpoint " + ep)

    def check_outbox(self, folder, sent):
        """Every sent letter exactly once, byte-identical, in acceptance order."""
        names = listdir_final(folder)
        self.assertTrue(all(FINAL.match(n) for n in names), names)
        names.sort(key=lambda n: int(FINAL.match(n).group(1)))
        letters = []
        for n in names:
            with open(os.path.join(folder, n), "rb") as f:
                data = f.read()
            lid = LETTER.search(data).group(1).decode()
            self.assertEqual(data, sent[lid], "%s is not byte-identical" % n)
            letters.append(lid)
        self.assertEqual(sorted(letters), sorted(sent), "lost or extra letters")
        self.assertEqual(len(letters), len(set(letters)), "a letter under two names")
        self.assertEqual(letters, list(sent), "delivered out of order")

    def test_frozen_outboxes_cost_only_their_endpoints(self):
        b = self.start({"muni-a": ("out",), "muni-b": ("out",)}).start()
        sent = {"muni-a": {}, "muni-b": {}, "muni-c": {}}
        gln = {ep: ENDPOINTS[ep][1][0] for ep in sent}
        # one message each while the share works
        for k, ep in enumerate(sent):
            m = msg(k, gln[ep], prefix="W")
            sent[ep][lid("W", k)] = m
            drop(b.inbox("hospital"), "w%d.xml" % k, m)
        for ep in sent:
            wait_for(lambda: len(listdir_final(b.outbox(ep))) == 1, what="first to " + ep)
        self.freeze()
        for i in range(5):
            for ep in ("muni-a", "muni-b"):
                m = msg(i, gln[ep], prefix="F" + ep[-1])
                sent[ep][lid("F" + ep[-1], i)] = m
                drop(b.inbox("hospital"), "%s-%d.xml" % (ep, i), m)
        time.sleep(0.5)  # the frozen endpoints are now stuck in a write
        t0 = time.monotonic()
        for i in range(50):
            m = msg(i, gln["muni-c"], prefix="C")
            sent["muni-c"][lid("C", i)] = m
            drop(b.inbox("hospital"), "c%02d.xml" % i, m)
        while len(listdir_final(b.outbox("muni-c"))) < 51:
            self.assertLess(time.monotonic() - t0, 15, "muni-c waited for the frozen share")
            self.timed_status(b)
            time.sleep(0.2)
        self.check_outbox(b.outbox("muni-c"), sent["muni-c"])
        # the stuck endpoints count failures: SUSPECT first, then DOWN
        for ep in ("muni-a", "muni-b"):
            wait_for(lambda: self.health(b, ep) == "down", timeout=15, what=ep + " down")
            seen = [l for l in b.log_lines(r"endpoint=%s\b" % ep)
                    if re.search(r"event=endpoint-(suspect|down)", l)]
            self.assertRegex(seen[0], "event=endpoint-suspect", "SUSPECT before DOWN")
        self.assertTrue(b.log_lines(r"event=delivery-overdue endpoint=muni-a"))
        # a reload while frozen: the daemon stays responsive
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.notify.count("READY=1") >= 2, timeout=5, what="reload done")
        self.timed_status(b)
        # no thread leak: one blocking operation per frozen endpoint at most
        threads = len(os.listdir("/proc/%d/task" % b.proc.pid))
        self.assertLess(threads, 16, "%d threads while two endpoints are stuck" % threads)
        self.thaw()
        for ep in ("muni-a", "muni-b"):
            wait_for(lambda: len(listdir_final(b.outbox(ep))) == 6, timeout=20,
                     what="backlog of %s after the thaw" % ep)
        time.sleep(1.0)  # a late second copy would show up now
        for ep in sent:
            self.check_outbox(b.outbox(ep), sent[ep])
        wait_for(lambda: self.health(b, "muni-a") == "up", timeout=10, what="muni-a up")
        self.assertEqual(b.stop(), 0)

    def test_frozen_inbox_costs_only_its_endpoint(self):
        b = self.start({"hospital-b": ("in",)}, no_create=("hospital-b",))
        os.makedirs(b.inbox("hospital-b"))
        sent_b = {}
        for i in range(30):
            m = msg(i, "5790000143057", sender="5790000143060", prefix="B")
            sent_b[lid("B", i)] = m
            drop(b.inbox("hospital-b"), "b%02d.xml" % i, m)
        self.freeze()  # files can be read; they cannot leave the inbox
        b.start()
        sent_a = {}
        t0 = time.monotonic()
        for i in range(20):
            m = msg(i, "5790000143055", prefix="A")
            sent_a[lid("A", i)] = m
            drop(b.inbox("hospital"), "a%02d.xml" % i, m)
        while listdir_final(b.inbox("hospital")) or \
                len(listdir_final(b.outbox("muni-a"))) < 20:
            self.assertLess(time.monotonic() - t0, 15,
                            "hospital's pick-up waited for the frozen inbox")
            self.timed_status(b)
            time.sleep(0.2)
        self.check_outbox(b.outbox("muni-a"), sent_a)
        self.thaw()
        wait_for(lambda: not listdir_final(b.inbox("hospital-b")), timeout=20,
                 what="hospital-b's inbox emptied after the thaw")
        wait_for(lambda: len(listdir_final(b.outbox("muni-c"))) == 30, timeout=20,
                 what="hospital-b's messages delivered")
        time.sleep(1.0)
        self.check_outbox(b.outbox("muni-c"), sent_b)
        self.assertEqual(b.stop(), 0)

    def test_sigterm_while_frozen_then_restart_delivers_once(self):
        b = self.start({"muni-a": ("out",)}, extra="[broker]\nstop_timeout = 3s\n")
        b.start()
        sent = {}
        drop(b.inbox("hospital"), "w.xml", msg(0, "5790000143055", prefix="W"))
        sent[lid("W", 0)] = msg(0, "5790000143055", prefix="W")
        wait_for(lambda: len(listdir_final(b.outbox("muni-a"))) == 1, what="first message")
        self.freeze()
        for i in range(10):
            m = msg(i, "5790000143055", prefix="S")
            sent[lid("S", i)] = m
            drop(b.inbox("hospital"), "s%d.xml" % i, m)
        wait_for(lambda: b.log_lines(r"event=delivery-overdue endpoint=muni-a"), timeout=10,
                 what="the delivery to muni-a stuck past its deadline")
        t0 = time.monotonic()
        b.signal(signal.SIGTERM)
        pid = b.proc.pid

        def ended():
            # A thread stuck in the kernel keeps the process from being
            # reaped until the thaw; its main thread has exited (zombie).
            if b.proc.poll() is not None:
                return True
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(")")[-1].split()[0] == "Z"

        wait_for(ended, timeout=8, what="the daemon to exit")
        self.assertLess(time.monotonic() - t0, 3 + 3, "exit took longer than stop_timeout")
        self.assertTrue(b.log_lines(r"event=stopped"))
        self.assertTrue(b.log_lines(r"event=stop-abandoned .*endpoint=muni-a"))
        self.thaw()
        b.proc.wait(20)
        b.logf.close()
        b.start()
        wait_for(lambda: len(listdir_final(b.outbox("muni-a"))) == 11, timeout=20,
                 what="everything delivered after the restart")
        time.sleep(1.0)
        self.check_outbox(b.outbox("muni-a"), sent)
        self.assertEqual(b.stop(), 0)
