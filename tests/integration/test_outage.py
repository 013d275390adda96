"""The outage procedure end to end (issue 3), with a real SMTP server and a
webhook receiver on loopback.

With the threshold set to a few seconds, the municipality's outbox goes
away (as when its share is unmounted): no notice before the threshold;
exactly one notice after it, with the four fields right; updates at the
interval; one all-clear after recovery; every queued message delivered.
Also: operators' expected downtime, manual outages, planned shutdowns, the
e-mail fallback, and recipients by affected area.
"""

import datetime
import json
import os
import socket
import time
import zoneinfo

from harness import (MailSink, NoticeTest, drop, listdir_final, sample, wait_for,
                     with_ids)

SUPPORT = "edi-support@region.example"
ONCALL = "drift-vagt@region.example"
HOSPITALS = "sygehuse-edi@region.example"
MUNICIPALITIES = "kommuner-edi@region.example"
MUNI_OWN = "eoj-drift@kommune.example"
HOSP_OWN = "epj-drift@hospital.example"


CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")


def local(t, seconds=False):
    """Epoch seconds as the daemon's local time (Europe/Copenhagen)."""
    return datetime.datetime.fromtimestamp(t, CPH).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def dead_port():
    """A loopback port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OutageTest(NoticeTest):

    def start(self, threshold="3s", update="4s", probe="300ms", down_after=2, extra_notify="",
              window="00:00-24:00", env=None, smtp_url=None, muni_extra=""):
        extra = ("[outage]\nthreshold = %s\nupdate_interval = %s\nprobe_interval = %s\n"
                 "down_after = %d\nsend_window = %s\ntimezone = Europe/Copenhagen\n\n"
                 "[notify]\nsmtp_url = %s\nsmtp_starttls = no\nmail_from = edi@region.example\n"
                 "support_recipients = %s\noncall_recipients = %s\n"
                 "hospital_recipients = %s\nmunicipality_recipients = %s\n"
                 "webhook_url = %s\nretry_initial = 500ms\ntimeout = 5s\n%s\n"
                 % (threshold, update, probe, down_after, window, smtp_url or self.mail.url,
                    SUPPORT,
                    ONCALL, HOSPITALS, MUNICIPALITIES, self.hook.url, extra_notify))
        b = self.broker(extra=extra, endpoint_extra={
            "hospital": "recipients = %s\norganisation = Test Sygehus" % HOSP_OWN,
            "municipality": "recipients = %s\norganisation = Test Kommune\n%s" % (MUNI_OWN,
                                                                              muni_extra),
        })
        b.start(env=env)
        return b

    def outage_of(self, b, endpoint):
        for o in b.ctl("outages")["outages"]:
            if o["endpoint"] == endpoint:
                return o
        return None

    def break_outbox(self, b):
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")

    def fix_outbox(self, b):
        os.rename(b.outbox("municipality") + ".away", b.outbox("municipality"))

    def test_threshold_notice_updates_and_allclear(self):
        b = self.start()
        self.break_outbox(b)
        t_fail = time.monotonic()
        msgs = [with_ids(sample("DIS20_1.xml"), "E%d" % i, "L%d" % i) for i in range(3)]
        msgs += [with_ids(sample("DIS17_1.xml"), "F%d" % i, "M%d" % i) for i in range(2)]
        for i, m in enumerate(msgs):
            drop(b.inbox("hospital"), "m%d.xml" % i, m)
        o = wait_for(lambda: self.outage_of(b, "municipality"), timeout=10, what="outage open")
        self.assertEqual(o["state"], "open")
        self.assertIsNone(o["announced"])
        self.assertEqual(b.endpoint("municipality")["health"], "down")
        self.assertEqual(o["cause_fault"], "refused")
        # no notice before the threshold (3 s after the first failure)
        while time.monotonic() - t_fail < 2.5:
            self.assertEqual(self.mail.all(), [], "a notice went out before the threshold")
            time.sleep(0.1)
        first = wait_for(lambda: self.mail.all(), timeout=6, what="the first notice")[0]
        time.sleep(1.0)
        self.assertEqual(len(self.mail.all()), 1, "exactly one notice after the threshold")
        body = MailSink.body(first)
        subject = first["msg"]["Subject"]
        self.assertIn("Test Kommune", subject)
        # the four fields of the procedure, in Danish
        self.assertIn("Årsag til fejl", body)
        self.assertIn("findes ikke", body)
        # the error text (a path, a libc message) stays in the log and edibrokerctl
        self.assertNotIn("No such file", body)
        self.assertNotIn(b.spool, body)
        self.assertIn("Indlæggelsesadvis (XDIS20)", body, "types by name, code beside")
        self.assertIn("Berørte meddelelser", body)
        self.assertRegex(body, r"XDIS20\D+3\b|3\D+XDIS20")
        self.assertRegex(body, r"XDIS17\D+2\b|2\D+XDIS17")
        self.assertIn("Test Sygehus", body, "the organisation whose messages wait")
        self.assertRegex(body, r"Forventet nedetid:?\s+ukendt")
        self.assertRegex(body, r"Kontaktperson:?\s+test contact")
        self.assertIn("Næste status", body)
        self.assertNotIn("2505544849", body, "a CPR number in a notice")
        # recipients by area: audience, the failed endpoint, its partner
        rcpt = set(first["rcpt"])
        self.assertIn(MUNI_OWN, rcpt)
        self.assertIn(HOSPITALS, rcpt)
        self.assertIn(HOSP_OWN, rcpt)
        self.assertNotIn(MUNICIPALITIES, rcpt)
        self.assertEqual(len(rcpt & {SUPPORT, ONCALL}), 1, rcpt)
        # the webhook got the same notice as JSON
        wait_for(lambda: self.hook.kinds(), what="webhook")
        self.assertEqual(self.hook.kinds(), ["initial"])
        self.assertEqual(self.hook.bodies[0]["type"].split(";")[0], "application/json")
        self.assertEqual(self.hook.bodies[0]["json"]["endpoint"], "municipality")
        # status updates at the interval
        t_first = first["at"]
        wait_for(lambda: len(self.mail.all()) >= 2, timeout=8, what="an update")
        second = self.mail.all()[1]
        self.assertGreater(second["at"] - t_first, 3.0, "update before the interval")
        self.assertLess(second["at"] - t_first, 6.5, "update long after the interval")
        self.assertIn("Næste status", MailSink.body(second))
        # recovery: all queued messages delivered, then one all-clear
        self.fix_outbox(b)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == len(msgs), timeout=10,
                 what="backlog delivered")
        wait_for(lambda: "allclear" in self.hook.kinds(), timeout=10, what="all-clear")
        time.sleep(1.5)
        kinds = self.hook.kinds()
        self.assertEqual(kinds.count("allclear"), 1, kinds)
        self.assertEqual(kinds.count("initial"), 1, kinds)
        last = self.mail.all()[-1]
        self.assertEqual(len(self.mail.all()), len(kinds))
        allclear = MailSink.body(last)
        self.assertRegex(allclear, r"leveret forsinket:\s*5\b", "delivered late count")
        o = b.ctl("outages")["outages"][0]
        self.assertEqual(o["state"], "closed")
        self.assertEqual(o["delivered_late"], 5)
        show = b.ctl("outage", "show", str(o["id"]))["outage"]
        self.assertEqual([n["kind"] for n in show["notices"]][0], "initial")
        self.assertEqual(show["notices"][-1]["kind"], "allclear")
        for n in show["notices"]:
            channels = sorted((s["channel"], s["ok"]) for s in n["sends"])
            self.assertEqual(channels, [("email", True), ("webhook", True)], n)
            self.assertEqual(n["pending"], "")

    def test_short_outage_sends_nothing_but_is_recorded(self):
        b = self.start(threshold="20s")
        self.break_outbox(b)
        drop(b.inbox("hospital"), "a.xml", sample("DIS20_1.xml"))
        wait_for(lambda: self.outage_of(b, "municipality"), timeout=10, what="outage open")
        self.fix_outbox(b)
        wait_for(lambda: (self.outage_of(b, "municipality") or {}).get("state") == "closed",
                 timeout=10, what="closed")
        time.sleep(0.5)
        self.assertEqual(self.mail.all(), [])
        self.assertEqual(self.hook.bodies, [])
        o = self.outage_of(b, "municipality")
        self.assertIsNone(o["announced"])
        self.assertEqual(b.ctl("outage", "show", str(o["id"]))["outage"]["notices"], [])

    def test_idle_endpoint_is_probed_and_probe_leaves_no_file(self):
        b = self.start(threshold="1h")
        out = b.outbox("municipality")
        seen = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:  # several probe intervals
            seen.update(os.listdir(out))
            time.sleep(0.01)
        self.assertEqual([n for n in seen if not n.startswith(".")], [],
                         "a probe left a visible file in the outbox")
        self.break_outbox(b)
        # no message is waiting: probes alone find the outage
        wait_for(lambda: self.outage_of(b, "municipality"), timeout=5, what="outage by probe")
        self.assertEqual(b.endpoint("municipality")["queued"], 0)

    def test_expected_downtime_past_threshold_notifies_at_once(self):
        b = self.start(threshold="1h")
        self.break_outbox(b)
        o = wait_for(lambda: self.outage_of(b, "municipality"), timeout=10, what="outage")
        time.sleep(0.5)
        self.assertEqual(self.mail.all(), [])
        b.ctl("outage", "set", str(o["id"]), "--expected-downtime", "3h", "--contact",
              "Vagthavende 7000 0000")
        m = wait_for(lambda: self.mail.all(), timeout=5, what="notice after expected downtime")
        body = MailSink.body(m[0])
        self.assertNotRegex(body, r"Forventet nedetid:?\s+ukendt")
        self.assertIn("Vagthavende 7000 0000", body)
        rc, out, _ = b.ctl_text("outage", "show", str(o["id"]))
        self.assertEqual(rc, 0)
        self.assertIn("initial", out)

    def test_manual_outage_and_close(self):
        b = self.start(threshold="1s")
        r = b.ctl("outage", "open", "hospital", "--cause", "EPJ-opgradering")
        oid = r["id"]
        m = wait_for(lambda: self.mail.all(), timeout=6, what="notice for manual outage")
        self.assertIn("EPJ-opgradering", MailSink.body(m[0]))
        # the endpoint itself is fine: the outage stays until closed by hand
        time.sleep(1.0)
        self.assertEqual(self.outage_of(b, "hospital")["state"], "announced")
        b.ctl("outage", "close", str(oid))
        wait_for(lambda: "allclear" in self.hook.kinds(), timeout=6, what="all-clear")
        self.assertEqual(self.outage_of(b, "hospital")["state"], "closed")
        err = b.ctl("outage", "close", "9999", check=False)
        self.assertFalse(err["ok"])

    def test_planned_shutdown_announced_and_overrun_runs_acute_procedure(self):
        b = self.start(threshold="2s", probe="200ms")
        now = time.time()
        # a long window (announced at once) ...
        r = b.ctl("maintenance", "add", "municipality", "--from", local(now + 3600), "--to",
                  local(now + 4 * 3600), "--reason", "Opgradering af EOJ")
        m = wait_for(lambda: self.mail.all(), timeout=5, what="planned notice")
        self.assertIn("Opgradering af EOJ", MailSink.body(m[0]))
        # the webhook is a second channel of the same send: it may land after the mail
        wait_for(lambda: self.hook.kinds(), timeout=5, what="planned webhook")
        self.assertEqual(self.hook.kinds(), ["planned"])
        lst = b.ctl("maintenance", "list")["maintenance"]
        self.assertEqual(len(lst), 1)
        self.assertIsNotNone(lst[0]["announced"])
        b.ctl("maintenance", "remove", str(r["id"]))
        self.assertEqual(b.ctl("maintenance", "list")["maintenance"], [])
        # ... and a window running now that ends with the endpoint still down
        end_t = int(now) + 4
        b.ctl("maintenance", "add", "municipality", "--from", local(now - 30, True), "--to",
              local(end_t, True), "--reason", "Kort vindue")
        self.break_outbox(b)
        drop(b.inbox("hospital"), "q.xml", sample("DIS20_1.xml"))
        wait_for(lambda: b.endpoint("municipality")["health"] == "maintenance", timeout=5,
                 what="in maintenance")
        time.sleep(1.0)
        self.assertIsNone(self.outage_of(b, "municipality"), "acute outage during the window")
        wait_for(lambda: self.outage_of(b, "municipality"), timeout=end_t - time.time() + 10,
                 what="acute outage after the window")
        o = self.outage_of(b, "municipality")
        self.assertEqual(o["started_ms"], end_t * 1000, "the outage starts at the window's end")
        self.assertIsNotNone(o["maintenance_id"])

    def test_fallback_carries_notice_when_email_keeps_failing(self):
        flag = os.path.join(self.tmp, "fallback.json")
        script = os.path.join(self.tmp, "fallback.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nprintf '%%s\\n' \"$NOTICE_SUBJECT\" > %s.subject\n"
                    "env > %s.env\n"
                    "cat > %s.tmp && mv %s.tmp %s\n" % (flag, flag, flag, flag, flag))
        os.chmod(script, 0o755)
        # nobody listens on the mail port: every mail fails
        b = self.start(threshold="1s", smtp_url="smtp://127.0.0.1:%d" % dead_port(),
                       extra_notify="fallback_after = 2\nfallback_command = %s" % script)
        self.break_outbox(b)
        wait_for(lambda: os.path.exists(flag), timeout=15, what="fallback command ran")

        def fallback_recorded():
            o = self.outage_of(b, "municipality")
            sends = b.ctl("outage", "show", str(o["id"]))["outage"]["notices"][0]["sends"]
            return any(s["channel"] == "fallback" for s in sends)
        wait_for(fallback_recorded, timeout=5, what="fallback send recorded")
        with open(flag) as f:
            payload = json.load(f)
        self.assertEqual(payload["kind"], "initial")
        with open(flag + ".subject") as f:
            self.assertIn("Test Kommune", f.read())
        o = self.outage_of(b, "municipality")
        show = b.ctl("outage", "show", str(o["id"]))["outage"]
        sends = show["notices"][0]["sends"]
        failed = [s for s in sends if s["channel"] == "email" and not s["ok"]]
        self.assertGreaterEqual(len(failed), 2)
        self.assertTrue(any(s["channel"] == "fallback" and s["ok"] for s in sends), sends)
        self.assertTrue(any(s["channel"] == "webhook" and s["ok"] for s in sends), sends)
        self.assertEqual(len([s for s in sends if s["channel"] == "fallback"]), 1,
                         "the fallback carries a notice once")
        # once the fallback carried it, e-mail of it is not retried (people
        # who had the SMS would get the mail minutes later)
        n_email = len(failed)
        time.sleep(2.5)  # retry_initial is 500ms, doubling: a retry would be due by now
        sends = b.ctl("outage", "show", str(o["id"]))["outage"]["notices"][0]["sends"]
        self.assertEqual(len([s for s in sends if s["channel"] == "email"]), n_email,
                         "e-mail retried after the fallback had carried the notice")
        self.assertEqual(b.ctl("outage", "show", str(o["id"]))["outage"]["notices"][0]["pending"],
                         "")
        # the daemon's NOTIFY_SOCKET (the harness plays systemd) is not passed on
        with open(flag + ".env") as f:
            env = f.read()
        self.assertNotIn("NOTIFY_SOCKET", env)
        self.assertNotIn("WATCHDOG_", env)
        self.assertIn("NOTICE_MESSAGE_ID=notice-", env)

    def test_uncollected_files_mark_a_spool_endpoint_down(self):
        b = self.start(threshold="1h", probe="200ms", muni_extra="pickup_timeout = 1s")
        out = b.outbox("municipality")
        drop(b.inbox("hospital"), "p.xml", sample("DIS20_1.xml"))
        wait_for(lambda: listdir_final(out), what="delivered")
        o = wait_for(lambda: self.outage_of(b, "municipality"), timeout=10,
                     what="outage for files not collected")
        self.assertEqual(o["cause_fault"], "timeout")
        self.assertIn("not collected", o["cause_error"])
        self.assertEqual(b.endpoint("municipality")["health"], "down")
        # the EOJ system collects its files again
        for f in listdir_final(out):
            os.unlink(os.path.join(out, f))
        wait_for(lambda: b.endpoint("municipality")["health"] == "up", timeout=5,
                 what="up after collection")
        wait_for(lambda: self.outage_of(b, "municipality")["state"] == "closed", timeout=5,
                 what="outage closed")
        self.assertEqual(self.mail.all(), [], "a short outage sends nothing")

    def test_status_page_shows_health_and_outage(self):
        b = self.start(threshold="1h")
        status = os.path.join(b.state, "status")
        self.break_outbox(b)
        drop(b.inbox("hospital"), "s.xml", sample("DIS20_1.xml"))
        o = wait_for(lambda: self.outage_of(b, "municipality"), timeout=10, what="outage")

        def page():
            try:
                with open(os.path.join(status, "status.json")) as f:
                    j = json.load(f)
            except (FileNotFoundError, ValueError):
                return None
            return j if j.get("outages") else None
        j = wait_for(page, timeout=15, what="status.json with the outage")
        eps = {e["name"]: e for e in j["endpoints"]}
        self.assertEqual(eps["municipality"]["health"], "down")
        self.assertEqual(eps["municipality"]["queued"], 1)
        self.assertEqual(eps["hospital"]["health"], "up")
        self.assertEqual(j["outages"][0]["id"], o["id"])
        def html_page():
            # status.json is written first: the page may follow a moment later
            with open(os.path.join(status, "status.html"), encoding="utf-8") as f:
                text = f.read()
            return text if "Test Kommune" in text else None
        html = wait_for(html_page, timeout=15, what="status.html with the outage")
        self.assertIn("Forventet nedetid", html)
        # the page is rewritten now and then: a temporary name may exist for
        # a moment, but none may stay
        wait_for(lambda: not [n for n in os.listdir(status) if n.startswith(".")],
                 timeout=10, what="no temporary files left in the status folder")
        self.assertNotIn("2505544849", html)
