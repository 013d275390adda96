#!/usr/bin/python3
"""webhook_sink.py - an HTTP server on loopback that keeps every request it
is given: the integration harness's WebhookSink, and the webhook peer
tests/unit/test_notify.c runs as a subprocess:

  webhook_sink.py OUTDIR [--lifetime SECONDS]

It listens on 127.0.0.1 on a port the kernel picks; url is its /hook. The
answer depends on the path, so a test can make a delivery fail on purpose:
  /status/NNN   status NNN
  /redirect     302 to /status/200 (a client that follows makes a 2nd request)
  anything else 200
always with the body "response body text".

Every request is kept in memory (bodies: method, path, headers, body, the
body parsed as JSON when it is JSON, Content-Type, the monotonic time it
arrived) and, with an OUTDIR, as two files written before the
response is sent:
  <n>.body  the request body, byte for byte
  <n>.json  method, path, headers
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import peer

RESPONSE = b"response body text"


def parsed(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


class WebhookSink:
    """The HTTP server, serving on a thread of its own until close()."""

    def __init__(self, outdir=None):
        self.record = peer.Recorder(outdir)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                sink.keep(self)
                code, extra = sink.reply_to(self.path)
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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
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
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    peer.run(WebhookSink(args.outdir), args.lifetime)


if __name__ == "__main__":
    main()
