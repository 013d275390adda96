#!/usr/bin/python3
"""http_sink.py - a webhook receiver for tests/unit/test_notify.c.

Usage: http_sink.py OUTDIR [--lifetime SECONDS]

Listens on 127.0.0.1 on a port the kernel picks and prints "PORT <n>" on
stdout once it accepts connections. Every request is recorded in OUTDIR as
<n>.body (the request body, byte for byte) and <n>.json (method, path,
headers), renamed into place before the response is sent. The answer
depends on the path:
  /status/NNN   status NNN
  /redirect     302 to /status/200 (a client that follows makes a 2nd request)
  anything else 200

It exits when its stdin reaches end of file or after --lifetime seconds.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    count = 0
    outdir = "."

    def _write(self, name, data):
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.outdir, name))

    def _record(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Handler.count += 1
        facts = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        self._write("%d.body" % Handler.count, body)
        self._write("%d.json" % Handler.count, json.dumps(facts).encode())

    def _answer(self):
        self._record()
        if self.path.startswith("/status/"):
            code, extra = int(self.path.split("/")[2]), {}
        elif self.path == "/redirect":
            code, extra = 302, {"Location": "/status/200"}
        else:
            code, extra = 200, {}
        self.send_response(code)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "18")
        self.end_headers()
        self.wfile.write(b"response body text")

    do_POST = _answer
    do_GET = _answer

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    Handler.outdir = args.outdir
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    print("PORT %d" % server.server_address[1], flush=True)
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
