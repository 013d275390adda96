#!/usr/bin/python3
"""mail_sink.py - a real SMTP server on loopback (aiosmtpd) that keeps every
message it is given: the integration harness's MailSink, and the SMTP peer
tests/unit/test_notify.c runs as a subprocess:

  mail_sink.py OUTDIR [--auth USER:PASSWORD] [--tls starttls|smtps] [--lifetime SECONDS]

It listens on 127.0.0.1 on a port the kernel picks. Without --tls there is
no TLS: STARTTLS is never offered, so a client that insists on it fails.
With auth, AUTH LOGIN/PLAIN is offered (without TLS, unless --tls) and
required before MAIL; a wrong user or password is answered 535.

--tls makes a private CA and a server certificate for 127.0.0.1 (peer.py)
and writes the CA as OUTDIR/tls/ca.pem, for a client to trust: "starttls"
offers STARTTLS and requires it (AUTH only after it), "smtps" speaks TLS
from the first byte (smtps://).

Every AUTH attempt is kept (auth_attempts(): mechanism, login, password,
whether it was accepted) and, with an OUTDIR, written as <n>.auth (JSON),
so a test can tell whether, and how often, a client sent credentials.

Every message is kept in memory (all(): envelope sender and recipients, the
parsed message, the monotonic time it arrived) and, with an OUTDIR, as two
files written before the server answers 250:
  <n>.eml   the bytes after DATA, dot-stuffing undone by aiosmtpd (CRLF kept)
  <n>.json  the envelope, the raw header values, and what Python's email
            package (a decoder independent of the daemon's encoder) makes of
            the message: subject, body, Date as epoch, and the AUTH login
"""

import argparse
import asyncio
import email
import email.policy
import email.utils
import json
import logging
import os
import socket
import threading
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

import peer


def facts_of(raw, session):
    """What the unit tests check of a message, as JSON-able values."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    plain = email.message_from_bytes(raw, policy=email.policy.compat32)
    body = msg.get_payload(decode=True) or b""
    date = msg["Date"]
    auth = session.auth_data
    return {
        "subject": str(msg["Subject"]),
        "body": body.decode("utf-8").replace("\r\n", "\n"),
        "date": plain["Date"],
        "date_epoch": email.utils.parsedate_to_datetime(str(date)).timestamp()
        if date else None,
        "headers": {k.lower(): str(v) for k, v in msg.items()},  # decoded
        "raw_headers": {k.lower(): v for k, v in plain.items()},  # as sent
        "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
    }


def authenticator(user, password, attempts):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        login = auth_data.login if isinstance(auth_data, LoginPassword) else b""
        secret = auth_data.password if isinstance(auth_data, LoginPassword) else b""
        attempts.add({"mechanism": mechanism, "login": login.decode(errors="replace"),
                      "password": secret.decode(errors="replace"), "ok": ok,
                      "tls": session.ssl is not None},
                     {"auth": b""})
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


class AuthRecorder(peer.Recorder):
    """AUTH attempts, as <n>.auth files holding each attempt as JSON."""

    def add(self, entry, files):
        return super().add(entry, {"auth": json.dumps(entry).encode()})


class MailSink:
    """The SMTP server, running on a thread of its own until close()."""

    def __init__(self, outdir=None, auth=None, tls=None, certdir=None):
        self.record = peer.Recorder(outdir)
        self.attempts = AuthRecorder(outdir)
        kw = {"hostname": "sink.test"}  # no getfqdn() lookup
        if auth:
            user, password = auth.split(":", 1)
            kw.update(authenticator=authenticator(user, password, self.attempts),
                      auth_required=True, auth_require_tls=tls == "starttls")
        ssl_ctx = None
        if tls:
            certdir = certdir or os.path.join(outdir, "tls")
            ctx = peer.make_certs(certdir)
            self.ca_file = os.path.join(certdir, "ca.pem")
            if tls == "starttls":
                kw.update(tls_context=ctx, require_starttls=True)
            else:
                ssl_ctx = ctx
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.url = "%s://127.0.0.1:%d" % ("smtps" if tls == "smtps" else "smtp", self.port)
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SMTP(self, **kw), sock=sock, ssl=ssl_ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.content
        entry = {"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                 "msg": email.message_from_bytes(raw, policy=email.policy.default),
                 "at": time.monotonic()}
        files = {}
        if self.record.outdir:
            facts = {"mail_from": envelope.mail_from, "rcpt_tos": entry["rcpt"]}
            facts.update(facts_of(raw, session))
            files = {"eml": raw, "json": json.dumps(facts).encode()}
        self.record.add(entry, files)
        return "250 OK"

    def all(self):
        return self.record.all()

    def auth_attempts(self):
        return self.attempts.all()

    def subjects(self):
        return [m["msg"]["Subject"] for m in self.all()]

    @staticmethod
    def body(m):
        return m["msg"].get_body(preferencelist=("plain",)).get_content()

    def close(self):
        async def shut():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def main():
    warnings.simplefilter("ignore")  # AUTH without TLS is the point here
    logging.disable(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--auth")
    ap.add_argument("--tls", choices=("starttls", "smtps"))
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    peer.run(MailSink(args.outdir, args.auth, args.tls), args.lifetime)


if __name__ == "__main__":
    main()
