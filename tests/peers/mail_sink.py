#!/usr/bin/python3
"""mail_sink.py - a real SMTP server on loopback (aiosmtpd) that keeps every
message it is given: the integration harness's MailSink, and the SMTP peer
tests/unit/test_notify.c runs as a subprocess:

  mail_sink.py OUTDIR [--auth USER:PASSWORD] [--lifetime SECONDS]

It listens on 127.0.0.1 on a port the kernel picks. No TLS: STARTTLS is
never offered, so a client that insists on it fails. With auth, AUTH
LOGIN/PLAIN is offered without TLS and required before MAIL.

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


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


class MailSink:
    """The SMTP server, running on a thread of its own until close()."""

    def __init__(self, outdir=None, auth=None):
        self.record = peer.Recorder(outdir)
        kw = {"hostname": "sink.test"}  # no getfqdn() lookup
        if auth:
            user, password = auth.split(":", 1)
            kw.update(authenticator=authenticator(user, password), auth_required=True,
                      auth_require_tls=False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SMTP(self, **kw), sock=sock))
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
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    peer.run(MailSink(args.outdir, args.auth), args.lifetime)


if __name__ == "__main__":
    main()
