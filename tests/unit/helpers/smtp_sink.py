#!/usr/bin/python3
"""smtp_sink.py - a real SMTP server (aiosmtpd) for tests/unit/test_notify.c.

Usage: smtp_sink.py OUTDIR [--auth USER:PASSWORD] [--lifetime SECONDS]

Listens on 127.0.0.1 on a port the kernel picks and prints "PORT <n>" on
stdout once it accepts connections. No TLS: STARTTLS is never offered.
With --auth, AUTH LOGIN/PLAIN is offered without TLS and required before
MAIL.

Each message received becomes two files in OUTDIR, both written to a
temporary name and renamed before the server answers 250, so the C test can
read them as soon as its send returns:
  <n>.eml   the bytes after DATA, dot-stuffing undone by aiosmtpd (CRLF kept)
  <n>.json  the envelope, the raw header values, and what Python's email
            package (an independent decoder) makes of the message: subject,
            body, Date as epoch

It exits when its stdin reaches end of file (the test ended, however it
ended) or after --lifetime seconds, so it never outlives its test.
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
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    def _write(self, name, data):
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.outdir, name))

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        raw = envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_payload(decode=True) or b""
        date = msg["Date"]
        plain = email.message_from_bytes(raw, policy=email.policy.compat32)
        auth = session.auth_data
        facts = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg["Subject"]),
            "body": body.decode("utf-8").replace("\r\n", "\n"),
            "date": plain["Date"],
            "date_epoch": email.utils.parsedate_to_datetime(str(date)).timestamp(),
            "headers": {k.lower(): str(v) for k, v in msg.items()},  # decoded
            "raw_headers": {k.lower(): v for k, v in plain.items()},  # as sent
            "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
        }
        self._write("%d.eml" % self.count, raw)
        self._write("%d.json" % self.count, json.dumps(facts).encode())
        return "250 OK"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    return check


def main():
    warnings.simplefilter("ignore")  # AUTH without TLS is the point here
    logging.disable(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--auth")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()

    kw = {"hostname": "sink.test"}  # no getfqdn() lookup
    if args.auth:
        user, password = args.auth.split(":", 1)
        kw.update(authenticator=authenticator(user, password), auth_required=True,
                  auth_require_tls=False)
    sink = Sink(args.outdir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    loop.run_until_complete(loop.create_server(lambda: SMTP(sink, **kw), sock=sock))

    def on_stdin():
        if not os.read(sys.stdin.fileno(), 4096):
            loop.stop()
    loop.add_reader(sys.stdin.fileno(), on_stdin)
    loop.call_later(args.lifetime, loop.stop)
    print("PORT %d" % sock.getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
