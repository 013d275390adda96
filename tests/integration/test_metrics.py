"""Prometheus metrics, alerting rules and the effective configuration (issue 13).

- /metrics is scraped during a flow (accepted, delivered, a duplicate, a
  dead letter with its receipt, an undecodable file, a type nobody named)
  and an outage (an outbox gone: failed attempts, the endpoint down, the
  outage open then announced with a notice mailed, the queue and its
  oldest age), then while held and after the recovery; each scrape's
  counters are checked against what happened and by `promtool check
  metrics`. Label values stay bounded: no id, and an unknown type counts
  as "other".
- edibroker_acknowledgements_overdue counts, per endpoint, the delivered
  letters whose acknowledgement is overdue (issue 11), as housekeeping
  reads them from the store: 2, then 1 once a receipt comes back.
- Only GET /metrics is served; a second daemon on the same address fails
  to start with a clear error.
- packaging/prometheus: `promtool check rules`, `promtool test rules`,
  and every metric the rules and the dashboard name is one the daemon
  exports.
- `edibrokerd --print-config`: every key with its default, secrets
  redacted, no secret file read; a bad file exits 78.
"""

import json
import os
import re
import subprocess
import urllib.error
import urllib.request

from harness import (BIN, ROOT, Broker, NoticeTest, drop, free_port, listdir_final, sample,
                     wait_for, with_ids)
import test_acks

PROM = os.path.join(ROOT, "packaging", "prometheus")
UNKNOWN_GLN = "5790000999999"


def parse(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-z_:]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class Metrics(NoticeTest):
    def start(self, extra_endpoint=None, delivery=None):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/metrics" % self.port
        extra = ("[metrics]\nlisten = 127.0.0.1:%d\n\n"
                 "[outage]\nthreshold = 2s\nupdate_interval = 1h\nprobe_interval = 300ms\n"
                 "down_after = 2\nsend_window = 00:00-24:00\n\n"
                 "[notify]\nsmtp_url = %s\nsmtp_starttls = no\nmail_from = edi@region.example\n"
                 "support_recipients = edi-support@region.example\n"
                 "oncall_recipients = drift-vagt@region.example\nretry_initial = 500ms\n"
                 "timeout = 5s\n" % (self.port, self.mail.url))
        b = self.broker(extra=extra, delivery=delivery)
        return b.start()

    def scrape(self, check=True):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["Content-Type"],
                             "text/plain; version=0.0.4; charset=utf-8")
            text = r.read().decode()
        if check:
            p = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + text)
        return text

    def test_counts_a_flow_and_an_outage(self):
        b = self.start()
        inbox = b.inbox("hospital")
        for i in range(3):
            drop(inbox, "ok%d.xml" % i, with_ids(sample("DIS20_1.xml"), "ENV%d" % i, "LET%d" % i))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 3, what="3 delivered")
        drop(inbox, "again.xml", with_ids(sample("DIS20_1.xml"), "ENVX", "LET0"))
        drop(inbox, "nobody.xml", with_ids(sample("DIS20_1.xml"), "ENVD", "LETD",
                                           receiver=UNKNOWN_GLN))
        drop(inbox, "junk.xml", b"<not-medcom/>")
        with open(os.path.join(ROOT, "tests", "data", "oioxml",
                               "XDIS13_BookingConfirmation.xml"), "rb") as f:
            drop(inbox, "xdis13.xml", f.read())
        wait_for(lambda: b.ctl("dead")["dead"] == 1 and listdir_final(b.outbox("hospital")),
                 what="the dead letter and its receipt")
        wait_for(lambda: len(listdir_final(b.quarantine("hospital"))) >= 1, what="quarantined")
        # The file is in quarantine before the loop hears that its job is done
        # and counts it: wait for the count rather than read it at once.
        wait_for(lambda: sum(v for k, v in parse(self.scrape(check=False)).items()
                             if k[0] == "edibroker_files_quarantined_total") == 1,
                 what="the quarantined file counted")
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 4, what="xdis13")

        s = parse(self.scrape())
        acc = "edibroker_messages_accepted_total"
        self.assertEqual(val(s, acc, source="hospital", endpoint="municipality",
                             type="XDIS20"), 3)
        self.assertEqual(val(s, acc, source="hospital", endpoint="municipality",
                             type="other"), 1, "XDIS13 has no row in the type table")
        self.assertEqual(val(s, "edibroker_messages_delivered_total", endpoint="municipality",
                             type="XDIS20"), 3)
        self.assertEqual(val(s, "edibroker_messages_delivered_total", endpoint="hospital",
                             type="XCTL01"), 1, "the receipt")
        self.assertEqual(val(s, "edibroker_messages_duplicate_total", source="hospital",
                             type="XDIS20"), 1)
        self.assertEqual(val(s, "edibroker_messages_dead_total", source="hospital",
                             reason="unknown-receiver", type="XDIS20"), 1)
        refused = {k: v for k, v in s.items() if k[0] == "edibroker_messages_refused_total"}
        self.assertEqual(sum(refused.values()), 1, refused)
        self.assertEqual(dict(next(iter(refused))[1])["source"], "hospital")
        self.assertEqual(sum(v for k, v in s.items()
                             if k[0] == "edibroker_files_quarantined_total"), 1)
        self.assertEqual(val(s, "edibroker_delivery_latency_seconds_count",
                             endpoint="municipality"), 4)
        self.assertGreater(val(s, "edibroker_commit_duration_seconds_count"), 0)
        self.assertEqual(val(s, "edibroker_endpoint_state", endpoint="municipality",
                             state="up"), 1)
        self.assertEqual(val(s, "edibroker_store_up"), 1)
        self.assertEqual(val(s, "edibroker_queue_messages", endpoint="municipality"), 0)
        wait_for(lambda: val(parse(self.scrape(check=False)), "edibroker_dead_letters") == 1,
                 timeout=15, what="housekeeping counts the dead letter")
        self.assertGreater(val(parse(self.scrape(check=False)), "edibroker_store_size_bytes"),
                           0)
        text = self.scrape()
        for ident in ("ENV0", "LET0", "ENVD", "24681012", UNKNOWN_GLN, "XDIS13"):
            self.assertNotIn(ident, text, "an id as a label value")

        # the outage: the outbox goes away, messages wait, the endpoint goes
        # down and the procedure opens, then announces, an outage
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")
        for i in range(2):
            drop(inbox, "w%d.xml" % i, with_ids(sample("DIS20_1.xml"), "W%d" % i, "WL%d" % i))
        down = wait_for(lambda: (lambda x: val(x, "edibroker_endpoint_state",
                                                endpoint="municipality", state="down") == 1
                                 and x)(parse(self.scrape(check=False))),
                        timeout=15, what="municipality down in the metrics")
        self.assertEqual(val(down, "edibroker_endpoint_state", endpoint="municipality",
                             state="up"), 0, "one state at a time")
        self.assertEqual(val(down, "edibroker_queue_messages", endpoint="municipality"), 2)
        self.assertGreater(val(down, "edibroker_delivery_failures_total",
                               endpoint="municipality", fault="refused"), 0)
        wait_for(lambda: self.mail.all(), timeout=15, what="the outage notice")
        s = wait_for(lambda: (lambda x: val(x, "edibroker_notices_sent_total", channel="email")
                              >= 1 and x)(parse(self.scrape())), timeout=10, what="counted")
        self.assertEqual(val(s, "edibroker_outages_open", endpoint="municipality",
                             state="announced"), 1)
        self.assertEqual(val(s, "edibroker_outages_open", endpoint="municipality",
                             state="open"), 0)
        self.assertGreaterEqual(val(s, "edibroker_queue_oldest_age_seconds",
                                    endpoint="municipality"), 1)
        self.assertEqual(val(s, "edibroker_outages_open", endpoint="hospital",
                             state="announced"), 0)

        # held: the state says so, not down
        b.ctl("hold", "municipality")
        s = parse(self.scrape())
        self.assertEqual(val(s, "edibroker_endpoint_state", endpoint="municipality",
                             state="held"), 1)
        self.assertEqual(val(s, "edibroker_endpoint_state", endpoint="municipality",
                             state="down"), 0)
        self.assertEqual(val(s, "edibroker_operator_actions_total", action="hold"), 1)

        # back: released and the outbox returns; the backlog is delivered
        b.ctl("release", "municipality")
        os.rename(b.outbox("municipality") + ".away", b.outbox("municipality"))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 6, timeout=20,
                 what="the backlog delivered")
        s = wait_for(lambda: (lambda x: val(x, "edibroker_queue_messages",
                                             endpoint="municipality") == 0
                              and val(x, "edibroker_endpoint_state", endpoint="municipality",
                                      state="up") == 1 and x)(parse(self.scrape())),
                     timeout=15, what="up with an empty queue")
        self.assertEqual(val(s, "edibroker_messages_delivered_total", endpoint="municipality",
                             type="XDIS20"), 5)
        self.assertEqual(val(s, "edibroker_queue_oldest_age_seconds", endpoint="municipality"),
                         0)

    def test_acknowledgements_overdue_is_the_stores_count(self):
        b = self.start(delivery={"retry_initial": "200ms", "retry_max": "1s",
                                 "ack_timeout": "1s"})
        overdue = "edibroker_acknowledgements_overdue"
        for i in range(2):
            drop(b.inbox("hospital"), "a%d.xml" % i, test_acks.asking("E%d" % i, "L%d" % i))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2, what="2 delivered")
        wait_for(lambda: len(b.ctl("acks", "--overdue")["messages"]) == 2, timeout=8,
                 what="both overdue")
        # housekeeping reads the store every 10 s; the scrape only renders
        wait_for(lambda: val(parse(self.scrape(check=False)), overdue,
                             endpoint="municipality") == 2, timeout=15, what="gauge at 2")
        s = parse(self.scrape())
        self.assertEqual(s.get((overdue, frozenset({("endpoint", "hospital")}))), 0.0,
                         "an endpoint without overdue letters reads 0")
        # the receipt of the first comes back through the broker
        drop(b.inbox("municipality"), "r.xml",
             test_acks.receipt("CTL03_1.xml", "E0", "L0", "R0"))
        wait_for(lambda: len(b.ctl("acks", "--overdue")["messages"]) == 1, what="one answered")
        wait_for(lambda: val(parse(self.scrape(check=False)), overdue,
                             endpoint="municipality") == 1, timeout=15, what="gauge at 1")

    def test_only_get_metrics_is_served_and_the_address_is_the_daemons(self):
        b = self.start()
        for path, code in (("/", 404), ("/metrics/x", 404), ("/status", 404)):
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=5)
            self.assertEqual(e.exception.code, code, path)
        req = urllib.request.Request(self.url, method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        self.assertIn(e.exception.code, (405, 501))
        self.assertIn("edibroker_start_time_seconds", self.scrape())
        # a second daemon (a tree of its own) on the same address does not start
        root2 = os.path.join(self.tmp, "second")
        os.mkdir(root2)
        other = Broker(root2, extra="[metrics]\nlisten = 127.0.0.1:%d\n" % self.port,
                       notify=False)
        self.brokers.append(other)
        other.start(wait_ready=False)
        self.assertEqual(other.proc.wait(15), 1)
        self.assertRegex(other.log(), r"event=start-failed error=\"metrics listen "
                                      r"127\.0\.0\.1:%d: Address already in use" % self.port)

    def test_rules_and_dashboard_check_and_name_only_exported_metrics(self):
        r = subprocess.run(["promtool", "check", "rules", "edibroker-rules.yml"], cwd=PROM,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 6 rules found", r.stdout)
        r = subprocess.run(["promtool", "test", "rules", "edibroker-rules.test.yml"], cwd=PROM,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)
        with open(os.path.join(PROM, "edibroker-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 15)
        with open(os.path.join(PROM, "edibroker-rules.yml")) as f:
            rules = f.read()
        named = set(re.findall(r"edibroker_[a-z_]+", rules + "\n".join(exprs)
                               + json.dumps(dash["templating"])))
        self.start()
        exported = set(re.findall(r"^# TYPE (\S+) (\w+)", self.scrape(), re.M))
        names = {n for n, _ in exported}
        names |= {n + s for n, t in exported if t == "histogram"
                  for s in ("_bucket", "_sum", "_count")}
        self.assertEqual(sorted(named - names), [], "named but not exported")
        for fixed in ("edibroker_messages_accepted_total", "edibroker_messages_delivered_total",
                      "edibroker_queue_messages", "edibroker_queue_oldest_age_seconds",
                      "edibroker_endpoint_state", "edibroker_delivery_latency_seconds"):
            self.assertIn(fixed, names)

    def test_print_config_shows_defaults_and_redacts_secrets(self):
        secret = os.path.join(self.tmp, "token")
        with open(secret, "w") as f:
            f.write("TOKEN-SECRET\n")
        os.chmod(secret, 0o600)
        conf = os.path.join(self.tmp, "p.conf")
        with open(conf, "w") as f:
            f.write("[broker]\nstate_dir = %s/st\n\n[metrics]\nlisten = [::1]:9464\n\n"
                    "[notify]\nsmtp_url = smtp://user:PW-IN-URL@mail.example:25/?x=QUERY\n"
                    "mail_from = edi@region.example\n"
                    "smtp_password = INLINE-PASSWORD\nwebhook_url = https://hook.example/in"
                    "?key=HOOK-KEY\nwebhook_token_file = %s\n"
                    "fallback_command = /opt/sms/send.sh --api-key SMS-KEY\n\n"
                    "[endpoint hospital]\nkind = hospital\ngln = 5790000143054\n"
                    "inbox = %s/in\noutbox = %s/out\n" % (self.tmp, secret, self.tmp, self.tmp))
        os.chmod(secret, 0o000)  # not read: root reads anyway, so it is also not shown
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--print-config", conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        for secret_text in ("PW-IN-URL", "QUERY", "INLINE-PASSWORD", "HOOK-KEY", "TOKEN-SECRET",
                            "SMS-KEY", "--api-key"):
            self.assertNotIn(secret_text, out)
        self.assertIn("smtp_password = ***\n", out)
        self.assertIn("fallback_command = send.sh\n", out)
        self.assertIn("webhook_token_file = %s\n" % secret, out, "a path is no secret")
        self.assertRegex(out, r"(?m)^smtp_url = smtp://\*\*\*@mail\.example:25/\?\*\*\*$")
        for line in ("[metrics]\nlisten = [::1]:9464\n", "retention = 7d\n", "history = 90d\n",
                     "threshold = 2h\n", "operator_group = edibroker-admin\n",
                     "[endpoint hospital]\nkind = hospital\n", "delivery_timeout = 1m\n",
                     "# default_endpoint (not set)\n", "rescan_interval = "):
            self.assertIn(line, out)
        # every key of every section is there (an endpoint shows its own
        # transport's keys, not another's)
        keys = subprocess.run([os.path.join(BIN, "edibrokerd"), "--list-keys"],
                              capture_output=True, text=True, timeout=30).stdout.split()
        sections = re.findall(r"(?ms)^\[([^\]]+)\]\n(.*?)(?=^\[|\Z)", out)
        shown = {(sec if not sec.startswith("endpoint ") else "endpoint", k)
                 for sec, body in sections
                 for k in re.findall(r"(?m)^(?:# )?(\w+)(?: =| \(not set\))", body)}
        for k in keys:
            sec, key = k.split(".")
            if sec != "endpoint":
                self.assertIn((sec, key), shown, k)
        for key in ("kind", "gln", "inbox", "outbox", "file_mode", "fallback_contact"):
            self.assertIn(("endpoint", key), shown)
        with open(conf, "w") as f:
            f.write("[metrics]\nlisten = localhost:9464\n")
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--print-config", conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr, r"p\.conf:2: .*not an IPv4 address")


if __name__ == "__main__":
    import unittest
    unittest.main()
