"""The 22:00 hold, end to end, with the daemon under a shifted clock.

libfaketime sets the daemon's wall clock ("start at" a given local time,
running at normal speed; the monotonic clock stays real so timers work).
The outage state lives in the store, so the night is crossed by stopping
the daemon and starting it again at a later fake time.

  1. 21:59:55 Friday 27 November 2026: the municipality's outbox goes away;
     the threshold (10 s) falls due at about 22:00:05 -> no notice;
  2. restarted at 07:59:57 Saturday: the held notice goes out at 08:00,
     to the on-call duty (a weekend day);
  3. a second outage ends overnight (restart at 03:00 with the outbox back):
     the morning brings one notice that says it ended overnight.
"""

import os
import subprocess
import time

from harness import MailSink, NoticeTest, drop, listdir_final, sample, wait_for

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
SUPPORT = "edi-support@region.example"
ONCALL = "drift-vagt@region.example"


def at(local):
    # Under `make check SANITIZE=address`, libfaketime is preloaded ahead of the
    # ASan runtime; ASan works with it but refuses to start unless told so.
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "@" + local,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1",
            "TZ": "Europe/Copenhagen",
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


class Night(NoticeTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(FAKETIME_LIB), "libfaketime is not installed")

    def broker_at_night(self):
        extra = ("[outage]\nthreshold = 10s\nupdate_interval = 1h\nprobe_interval = 200ms\n"
                 "down_after = 1\ntimezone = Europe/Copenhagen\n\n"
                 "[notify]\nsmtp_url = %s\nsmtp_starttls = no\nmail_from = edi@region.example\n"
                 "support_recipients = %s\noncall_recipients = %s\nwebhook_url = %s\n"
                 "retry_initial = 500ms\ntimeout = 5s\n"
                 % (self.mail.url, SUPPORT, ONCALL, self.hook.url))
        return self.broker(extra=extra, endpoint_extra={
            "municipality": "organisation = Nat Kommune"})

    def lock_outbox(self, b, locked):
        """Makes the outbox unwritable (chattr +i) or writable again. Moving it
        away would not survive a restart: create_dirs makes it anew."""
        r = subprocess.run(["chattr", "+i" if locked else "-i", b.outbox("municipality")],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "chattr needs ext4 or XFS under the temp dir")

    def tearDown_unlock(self, b):
        subprocess.run(["chattr", "-i", b.outbox("municipality")], capture_output=True)

    def outage(self, b):
        outs = b.ctl("outages")["outages"]
        return outs[0] if outs else None

    def test_notice_due_after_2200_is_held_to_0800(self):
        b = self.broker_at_night().start(env=at("2026-11-27 21:59:55"))
        self.addCleanup(self.tearDown_unlock, b)
        self.lock_outbox(b, True)
        drop(b.inbox("hospital"), "late.xml", sample("DIS20_1.xml"))
        o = wait_for(lambda: self.outage(b), timeout=10, what="outage open")
        self.assertRegex(o["started"], r"^2026-11-27 (21:59|22:00)")
        time.sleep(14)  # past the threshold, now after 22:00 fake time
        self.assertEqual(self.mail.all(), [], "a notice went out after 22:00")
        self.assertEqual(self.outage(b)["state"], "open")
        self.assertEqual(b.stop(), 0)
        b.start(env=at("2026-11-28 07:59:57"))
        time.sleep(1.5)
        self.assertEqual(self.mail.all(), [], "sent before 08:00")
        m = wait_for(lambda: self.mail.all(), timeout=10, what="the 08:00 notice")
        self.assertEqual(len(m), 1)
        wait_for(lambda: self.hook.bodies, what="webhook")
        sent = self.hook.bodies[0]["json"]
        self.assertEqual(sent["kind"], "initial")
        when = m[0]["msg"]["Date"].datetime
        self.assertEqual((when.year, when.month, when.day, when.hour), (2026, 11, 28, 8))
        self.assertLess(when.minute, 1)
        self.assertIn(ONCALL, m[0]["rcpt"], "a Saturday goes to the on-call duty")
        self.assertNotIn(SUPPORT, m[0]["rcpt"])

    def test_outage_ended_overnight_gets_one_morning_notice(self):
        b = self.broker_at_night().start(env=at("2026-11-27 21:59:55"))
        self.addCleanup(self.tearDown_unlock, b)
        self.lock_outbox(b, True)
        drop(b.inbox("hospital"), "late.xml", sample("DIS20_1.xml"))
        wait_for(lambda: self.outage(b), timeout=10, what="outage open")
        time.sleep(12)
        self.assertEqual(b.stop(), 0)
        # 03:00: the receiver is back; the backlog goes out; nothing is sent
        self.lock_outbox(b, False)
        b.start(env=at("2026-11-28 03:00:00"))
        wait_for(lambda: listdir_final(b.outbox("municipality")), timeout=10, what="delivered")
        wait_for(lambda: self.outage(b)["state"] == "resolved", timeout=10, what="resolved")
        time.sleep(1.5)
        self.assertEqual(self.mail.all(), [], "a notice went out at 03:00")
        self.assertEqual(b.stop(), 0)
        b.start(env=at("2026-11-28 07:59:58"))
        m = wait_for(lambda: self.mail.all(), timeout=10, what="the morning notice")
        time.sleep(2)
        self.assertEqual(len(self.mail.all()), 1, "one morning notice, once")
        body = MailSink.body(m[0])
        self.assertRegex(body, r"03:0\d")
        self.assertIn("nattens løb", body, "the morning notice says it ended overnight")
        wait_for(lambda: self.hook.bodies, what="webhook")
        self.assertEqual(self.hook.kinds(), ["summary"])
        self.assertEqual(self.outage(b)["state"], "closed")
