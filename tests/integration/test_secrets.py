"""Secrets stay secret (issue 8, point 5), with the real daemon, a real SMTP
server that requires STARTTLS and AUTH (certificate of a private CA made
here) and a webhook receiver that wants a bearer token.

- After notices went out over e-mail (user and password from a private
  file, STARTTLS required because credentials are set, the server trusted
  only through smtp_ca_file) and over a webhook whose URL carries user-info
  and a token in its query (plus a bearer token from a file), none of the
  secrets is in the daemon's log, in any STATUS= the fake NOTIFY_SOCKET got,
  or in the output of any read-only edibrokerctl verb, with or without
  --json. The webhook's send shows its URL redacted.
- A password file others can read refuses start-up (exit 78) and a reload
  (the running config stays; STATUS= says why, without the secret), and so
  does a bad smtp_url with credentials, without echoing them.
- A refused login (SMTP 535) sends the notice through the fallback command
  at once, the server sees one AUTH, not a loop; e-mail waits until a
  reload brings a new password, then goes.
- edibrokerctl finds the socket in a config without reading the secret
  files it names.
"""

import os
import signal
import stat
import subprocess
import time

from harness import BIN, BrokerTest, MailSink, WebhookSink, wait_for

SMTP_PW = "Pw-smtp-7f3a9c"
HOOK_USER_PW = "Pw-hookuser-51e0"
HOOK_QUERY_TOKEN = "Qtok-88d2b1"
BEARER = "Bearer-tok-c4e6f2"
FALLBACK_KEY = "ApiKey-9b7d03"
SECRETS = (SMTP_PW, HOOK_USER_PW, HOOK_QUERY_TOKEN, BEARER, FALLBACK_KEY)

READ_ONLY_VERBS = (
    ("status",), ("outages",), ("outages", "--all"), ("dead",),
    ("queue", "municipality"), ("queue", "hospital"),
    ("maintenance", "list"), ("maintenance", "list", "--all"),
)


def secret_file(path, text, mode=0o640):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


class SecretsTest(BrokerTest):

    def setUp(self):
        super().setUp()
        self.peers = []

    def tearDown(self):
        super().tearDown()
        for p in self.peers:
            p.close()

    def peer(self, p):
        self.peers.append(p)
        return p

    def fallback_script(self):
        """A fallback command that records the notice; its argument is a
        secret that must never be shown."""
        self.flag = os.path.join(self.tmp, "fallback.json")
        script = os.path.join(self.tmp, "sms-gateway.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ncat > %s.tmp && mv %s.tmp %s\n" % ((self.flag,) * 3))
        os.chmod(script, 0o755)
        return "%s --api-key %s" % (script, FALLBACK_KEY)

    def start(self, notify, threshold="1s", wait_ready=True):
        extra = ("[outage]\nthreshold = %s\nupdate_interval = 1h\nprobe_interval = 300ms\n"
                 "down_after = 2\nsend_window = 00:00-24:00\ntimezone = Europe/Copenhagen\n\n"
                 "[notify]\nmail_from = edi@region.example\n"
                 "support_recipients = edi-support@region.example\n"
                 "oncall_recipients = drift-vagt@region.example\n"
                 "retry_initial = 500ms\ntimeout = 5s\n%s\n" % (threshold, notify))
        b = self.broker(extra=extra)
        b.start(wait_ready=wait_ready)
        return b

    def break_outbox(self, b):
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")

    def outage(self, b):
        return wait_for(lambda: next(iter(b.ctl("outages")["outages"]), None), timeout=10,
                        what="an outage")

    def sends(self, b, oid):
        notices = b.ctl("outage", "show", str(oid))["outage"]["notices"]
        return notices[0]["sends"] if notices else []

    def ctl_outputs(self, b, oid):
        """stdout and stderr of every read-only verb, with and without --json."""
        out = []
        for verb in READ_ONLY_VERBS + (("outage", "show", str(oid)),):
            for json_flag in ([], ["--json"]):
                r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "-s", b.sock] + json_flag
                                   + list(verb), capture_output=True, text=True, timeout=20)
                self.assertEqual(r.returncode, 0, "%s: %s" % (verb, r.stderr))
                out.append((" ".join(json_flag + list(verb)), r.stdout + r.stderr))
        return out

    def assert_no_secret(self, where, text):
        for s in SECRETS:
            self.assertNotIn(s, text, "a secret in %s" % where)

    def test_no_secret_in_log_status_or_ctl_after_notices_went_out(self):
        certs = os.path.join(self.tmp, "tls")
        mail = self.peer(MailSink(auth="edibroker:" + SMTP_PW, tls="starttls", certdir=certs))
        hook = self.peer(WebhookSink(token=BEARER))
        pw = secret_file(os.path.join(self.tmp, "smtp.pw"), SMTP_PW)
        tok = secret_file(os.path.join(self.tmp, "hook.token"), BEARER, 0o600)
        hook_url = "http://ops:%s@127.0.0.1:%d/hook?key=%s" % (HOOK_USER_PW, hook.port,
                                                                 HOOK_QUERY_TOKEN)
        b = self.start("smtp_url = %s\nsmtp_user = edibroker\nsmtp_password_file = %s\n"
                       "smtp_ca_file = %s\nwebhook_url = %s\nwebhook_token_file = %s\n"
                       "fallback_command = %s\n"
                       % (mail.url, pw, mail.ca_file, hook_url, tok, self.fallback_script()))
        self.break_outbox(b)
        o = self.outage(b)
        wait_for(lambda: mail.all() and hook.bodies, timeout=15, what="mail and webhook")
        wait_for(lambda: len(self.sends(b, o["id"])) >= 2, timeout=5, what="sends recorded")

        # they went out, with their secrets, to where they belong
        attempts = mail.auth_attempts()
        self.assertEqual(len(attempts), 1)
        self.assertTrue(attempts[0]["ok"] and attempts[0]["tls"], "AUTH only after STARTTLS")
        req = hook.bodies[0]
        self.assertEqual(req["headers"].get("authorization"), "Bearer " + BEARER)
        self.assertEqual(req["path"], "/hook?key=" + HOOK_QUERY_TOKEN)
        sends = {s["channel"]: s for s in self.sends(b, o["id"])}
        self.assertTrue(sends["email"]["ok"] and sends["webhook"]["ok"], sends)
        self.assertEqual(sends["webhook"]["to"], "http://***@127.0.0.1:%d/hook?***" % hook.port)

        # and nowhere else
        self.assert_no_secret("the log", b.log())
        self.assertTrue(b.log_lines(r"event=notice-sent .*channel=webhook"), b.log())
        self.assertTrue(b.log_lines(r"event=config-warning .*webhook_url: credentials in the URL"),
                        "a URL with credentials in a config others can read is warned about")
        statuses = [m for _, m in b.notify.all() if m.startswith("STATUS=")]
        self.assertTrue(statuses)
        self.assert_no_secret("STATUS=", "\n".join(statuses))
        for verb, text in self.ctl_outputs(b, o["id"]):
            self.assert_no_secret("edibrokerctl %s" % verb, text)
        self.assertEqual(b.stop(), 0)
        self.assert_no_secret("the log after the stop", b.log())

    def test_refused_login_goes_to_the_fallback_at_once_and_is_not_retried(self):
        mail = self.peer(MailSink(auth="edibroker:the-right-one"))
        pw = secret_file(os.path.join(self.tmp, "smtp.pw"), SMTP_PW)
        # plain AUTH only because the config says so: a test server on loopback
        b = self.start("smtp_url = %s\nsmtp_starttls = no\nsmtp_user = edibroker\n"
                       "smtp_password_file = %s\nfallback_after = 3\nfallback_command = %s\n"
                       % (mail.url, pw, self.fallback_script()))
        self.break_outbox(b)
        o = self.outage(b)
        wait_for(lambda: os.path.exists(self.flag), timeout=15, what="the fallback ran")
        wait_for(lambda: any(s["channel"] == "fallback" for s in self.sends(b, o["id"])),
                 timeout=5, what="the fallback recorded")
        sends = self.sends(b, o["id"])
        self.assertEqual([s["channel"] for s in sends if not s["ok"]], ["email"],
                         "one refused e-mail, then the fallback in the same round")
        fb = [s for s in sends if s["channel"] == "fallback"][0]
        self.assertTrue(fb["ok"])
        self.assertEqual(fb["to"], "sms-gateway.sh", "the fallback by name only")
        self.assertIn("SMTP 535", [s for s in sends if s["channel"] == "email"][0]["error"])
        time.sleep(3)  # six retry intervals
        self.assertEqual(len(mail.auth_attempts()), 1, "the refused password was retried")
        self.assertEqual(mail.all(), [])
        lines = b.log_lines(r"event=notice-auth-failed")
        self.assertEqual(len(lines), 1, b.log())
        self.assertIn("channel=email code=535", lines[0])
        self.assert_no_secret("the log", b.log())

        # a new password: the waiting e-mail goes, once
        secret_file(pw, "the-right-one")
        b.signal(signal.SIGHUP)
        wait_for(lambda: mail.all(), timeout=10, what="the e-mail after the reload")
        self.assertEqual(len(mail.auth_attempts()), 2)
        self.assertTrue(mail.auth_attempts()[1]["ok"])
        self.assertTrue(b.log_lines(r"event=notice-auth-changed"))
        for verb, text in self.ctl_outputs(b, o["id"]):
            self.assert_no_secret("edibrokerctl %s" % verb, text)

    def test_secret_file_open_to_others_refuses_start_and_reload(self):
        pw = secret_file(os.path.join(self.tmp, "smtp.pw"), SMTP_PW, 0o644)
        notify = "smtp_url = smtp://127.0.0.1:1\nsmtp_user = edibroker\nsmtp_password_file = %s\n"
        b = self.start(notify % pw, wait_ready=False)
        self.assertEqual(b.proc.wait(15), 78)
        self.assertIn("smtp_password_file: %s is open to others (mode 0644)" % pw, b.log())
        self.assert_no_secret("the log", b.log())
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--check-config", b.conf],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 78)
        self.assertIn("is open to others", r.stderr)
        self.assert_no_secret("--check-config", r.stdout + r.stderr)

        # root:edibroker 0640 is fine; a reload that finds it open to others
        # keeps the running config and says why, without the secret
        os.chmod(pw, 0o640)
        b.start()
        os.chmod(pw, 0o604)
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.log_lines("event=reload-rejected"), what="reload rejected")
        # a bad smtp_url with credentials: rejected, not echoed
        b.write_config(b.config_text().replace(
            "smtp_url = smtp://127.0.0.1:1", "smtp_url = smtp://ops:%s@mail.example:port"
            % SMTP_PW))
        b.signal(signal.SIGHUP)
        wait_for(lambda: len(b.log_lines("event=reload-rejected")) == 2, what="2nd rejection")
        # the STATUS= datagram follows the log line: wait for it, not only the log
        rejected = lambda: [m for _, m in b.notify.all() if m.startswith("STATUS=reload rejected")]
        wait_for(lambda: any("smtp_url: not a valid URL" in m for m in rejected()),
                 what="2nd STATUS=")
        statuses = rejected()
        self.assertTrue(any("open to others" in m for m in statuses), statuses)
        self.assertTrue(any("smtp_url: not a valid URL" in m for m in statuses), statuses)
        self.assert_no_secret("STATUS=", "\n".join(m for _, m in b.notify.all()))
        self.assert_no_secret("the log", b.log())
        self.assertEqual(b.stop(), 0)

    def test_inline_password_readable_by_others_is_a_warning(self):
        b = self.broker(extra="[notify]\nsmtp_url = smtp://127.0.0.1:1\nsmtp_user = edibroker\n"
                        "smtp_password = %s\nmail_from = edi@region.example\n" % SMTP_PW)
        os.chmod(b.conf, 0o644)
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--check-config", b.conf],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: %s:" % b.conf, r.stderr)
        self.assertIn("smtp_password: a secret in a file others can read (mode 0644); "
                      "put it in smtp_password_file", r.stderr)
        self.assertEqual(r.stderr.count("smtp_password: a secret in a file others can read"), 1,
                         "each warning is said once")
        self.assert_no_secret("--check-config", r.stdout + r.stderr)
        os.chmod(b.conf, 0o640)
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--check-config", b.conf],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        # (the harness's test GLNs draw check-digit warnings of their own)
        self.assertNotIn("smtp_password", r.stderr)

    def test_edibrokerctl_finds_the_socket_without_reading_secrets(self):
        pw = secret_file(os.path.join(self.tmp, "smtp.pw"), SMTP_PW, 0o600)
        b = self.start("smtp_url = smtp://127.0.0.1:1\nsmtp_user = edibroker\n"
                       "smtp_password_file = %s\n" % pw)
        os.chmod(b.conf, 0o644)
        os.chmod(self.tmp, 0o755)
        # an operator who may read the config, not the password file
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            os.path.join(BIN, "edibrokerctl"), "-c", b.conf, "status"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotIn("smtp.pw", r.stderr)
        self.assertEqual(r.returncode, 3, "got past the config to the socket: %s" % r.stderr)
        self.assertIn("cannot reach edibrokerd at %s" % b.sock, r.stderr)
        self.assertFalse(os.stat(pw).st_mode & stat.S_IROTH)
        # root, who may reach the socket, gets its answer the same way
        r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "-c", b.conf, "status"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
