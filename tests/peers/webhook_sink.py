#!/usr/bin/python3
"""webhook_sink.py - an HTTP server on loopback that keeps every request it
is given: the integration harness's WebhookSink, and the webhook peer
tests/unit/test_notify.c runs as a subprocess:

  webhook_sink.py OUTDIR [--token TOKEN] [--tls] [--lifetime SECONDS]

It listens on 127.0.0.1 on a port the kernel picks; url is its /hook. The
answer depends on the path, so a test can make a delivery fail on purpose:
  /status/NNN   status NNN
  /redirect     302 to /status/200 (a client that follows makes a 2nd request)
  anything else 200
always with the body "response body text". With --token, a request without
"Authorization: Bearer TOKEN" is answered 401 (and kept all the same).
With --tls it serves HTTPS with a certificate of a private CA made for it
(peer.py), written as OUTDIR/tls/ca.pem for a client to trust; a client
that does not trust it ends the handshake and nothing is kept.

Every request is kept in memory (bodies: method, path, headers, body, the
body parsed as JSON when it is JSON, Content-Type, the monotonic time it
arrived) and, with an OUTDIR, as two files written before the
response is sent:
  <n>.body  the request body, byte for byte
  <n>.json  method, path, headers
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import peer

RESPONSE = b"response body text"


class Server(ThreadingHTTPServer):
    """Wraps each accepted connection in TLS when tls is set; a client that
    refuses the certificate ends only its own request's thread."""

    tls = None

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # a refused handshake is what some tests want


def parsed(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


class WebhookSink:
    """The HTTP server, serving on a thread of its own until close()."""

    def __init__(self, outdir=None, token=None, tls=False, certdir=None):
        self.record = peer.Recorder(outdir)
        self.token = token
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self):
                if tls:  # the handshake on this request's thread, not the acceptor's
                    self.request.do_handshake()
                super().setup()

            def answer(self):
                sink.keep(self)
                code, extra = sink.reply_to(self.path)
                if sink.token and self.headers.get("Authorization") != "Bearer " + sink.token:
                    code, extra = 401, {}
                self.send_response(code)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(RESPONSE)))
                self.end_headers()
                self.wfile.write(RESPONSE)

            do_POST = answer
            do_GET = answer

            def log_message(self, *args):
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        if tls:
            certdir = certdir or os.path.join(outdir, "tls")
            self.httpd.tls = peer.make_certs(certdir)
            self.ca_file = os.path.join(certdir, "ca.pem")
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d/hook" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def keep(self, req):
        body = req.rfile.read(int(req.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in req.headers.items()}
        entry = {"method": req.command, "path": req.path, "headers": headers, "body": body,
                 "json": parsed(body), "type": req.headers.get("Content-Type"),
                 "at": time.monotonic()}
        facts = {"method": req.command, "path": req.path, "headers": headers}
        self.record.add(entry, {"body": body, "json": json.dumps(facts).encode()})

    @staticmethod
    def reply_to(path):
        path = path.split("?", 1)[0]  # a query (a token) does not choose the answer
        if path.startswith("/status/"):
            return int(path.split("/")[2]), {}
        if path == "/redirect":
            return 302, {"Location": "/status/200"}
        return 200, {}

    @property
    def bodies(self):
        return self.record.all()

    def kinds(self):
        return [(b["json"] or {}).get("kind") for b in self.bodies]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--token")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    peer.run(WebhookSink(args.outdir, args.token, args.tls), args.lifetime)


if __name__ == "__main__":
    main()
