"""The HTTP(S) transport (issue 9, points 1, 2, 4, 5, 6 and 8), through the
real daemon on loopback, with Python's own HTTP client and servers: what a
client in another language would do from docs/http.md.

- Submissions: 202 {"id"} only after the commit, the same id for a
  resubmission; every refusal an RFC 9457 problem with its type (400, 401
  with WWW-Authenticate, 403 for a spoofed sender, 404, 405, 413, 415,
  422, 503 with Retry-After under back-pressure); tokens never logged.
- Credentials: a token removed by a reload is refused at once on a
  kept-alive connection; TLS with a test CA, client certificates bound to
  endpoints by fingerprint; tokens over plain HTTP on a network refuse
  start-up.
- Delivery: POST in order with the message's bytes, media type and id;
  422 sets a message aside and the queue moves on; 503 with Retry-After is
  honoured; redirects are not followed; HTTPS with a private CA and a
  client certificate; verification is never off; idle endpoints are
  probed with HEAD.
- Isolation: two receivers that accept and never answer (one of them a
  byte at a time) cost only their endpoints while a third gets 50 messages
  at full speed and edibrokerctl status answers at once.
- Bounds: the connection limit, the idle and request timeouts.
- kill -9 in mid-stream: every message answered 202 is delivered after a
  restart.
"""

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (BIN, Broker, BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, drop, listdir_final,
                     sample, wait_for, with_ids)
import peer  # noqa: E402  (tests/peers, on the path harness sets)

TOKEN_H = "hospital-Tok-3f9a1c2d7e41"
TOKEN_M = "municipality-Tok-8b2e6d0f95"
OTHER_GLN = "5790000143061"
LETTER = re.compile(rb"<Identifier>(L\w+)</Identifier>")
# The build folder make used (B=build-asan for a sanitizer run); build/ by default.
DRIVE = os.path.join(BIN, "..", os.environ.get("EDIBROKER_BUILD", "build"), "peers",
                     "peer_http_drive")


def letter(data):
    return LETTER.search(data).group(1).decode()


def msg(i, receiver=MUNICIPALITY_GLN, sender=HOSPITAL_GLN, prefix="H"):
    return with_ids(sample("DIS20_1.xml"), "E%s%05d" % (prefix, i), "L%s%05d" % (prefix, i),
                    receiver=receiver, sender=sender)


# ---- the broker -------------------------------------------------------------------------

class HttpBroker(Broker):
    """A broker with the HTTP listener on a port the kernel picks, and
    endpoints described one by one: {name: {"kind", "gln", "transport",
    "lines"}}; spool endpoints get their folders."""

    def __init__(self, root, eps, broker_lines=(), listen="127.0.0.1:0", **kw):
        self.eps = eps
        self.broker_lines = list(broker_lines)
        self.listen = listen
        super().__init__(root, **kw)

    def config_text(self):
        lines = ["[broker]", "state_dir = %s" % self.state, "log_level = debug"]
        if self.listen:
            lines.append("http_listen = %s" % self.listen)
        lines += self.broker_lines + ["", "[delivery]"]
        lines += ["%s = %s" % kv for kv in self.delivery.items()]
        lines += ["", "[spool]", "rescan_interval = 1s", ""]
        for name, ep in self.eps.items():
            transport = ep.get("transport", "spool")
            lines += ["[endpoint %s]" % name, "kind = %s" % ep.get("kind", "other"),
                      "transport = %s" % transport, "gln = %s" % ", ".join(ep["gln"]),
                      "contact = test contact"]
            if transport == "spool":
                lines += ["inbox = %s" % self.inbox(name), "outbox = %s" % self.outbox(name),
                          "create_dirs = yes"]
            lines += list(ep.get("lines", ())) + [""]
        return "\n".join(lines) + "\n" + self.extra

    def write_config(self, text=None):
        super().write_config(text)
        os.chmod(self.conf, 0o600)  # it holds tokens

    def port(self):
        """The listener's port, from the last start's log line."""
        lines = self.log_lines(r"event=http-listening address=")
        if not lines:
            raise AssertionError("no event=http-listening in the log:\n" + self.log())
        return int(re.search(r"address=\S+:(\d+)", lines[-1]).group(1))

    def reload(self):
        before = self.notify.count("READY=1")
        self.signal(signal.SIGHUP)
        wait_for(lambda: self.notify.count("READY=1") > before, timeout=10, what="reload")


def basic_eps(**extra):
    eps = {
        "hospital": {"kind": "hospital", "gln": [HOSPITAL_GLN], "lines": ["token = " + TOKEN_H]},
        "municipality": {"kind": "municipality", "gln": [MUNICIPALITY_GLN]},
    }
    eps.update(extra)
    return eps


# ---- a client, as docs/http.md describes it --------------------------------------------

class Client:
    """One kept-alive HTTP(S) connection to the listener."""

    def __init__(self, port, context=None, timeout=15):
        if context:
            self.conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                                    context=context)
        else:
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, body, token=None, ctype="application/xml", method="POST",
             path="/v1/messages"):
        """(status, headers with lower-case names, parsed JSON or raw bytes)."""
        headers = {}
        if ctype:
            headers["Content-Type"] = ctype
        if token:
            headers["Authorization"] = "Bearer " + token
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        h = {k.lower(): v for k, v in r.getheaders()}
        if "json" in h.get("content-type", ""):
            data = json.loads(data)
        return r.status, h, data

    def close(self):
        self.conn.close()


# ---- receivers the broker delivers to ---------------------------------------------------

class Receiver:
    """An HTTP(S) server that keeps every request and answers from a plan
    (a list of (status, {header: value}), one per request), then 200."""

    def __init__(self, tls=None, plan=()):
        self.plan = list(plan)
        self.requests = []
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                if tls:
                    self.request.do_handshake()
                super().setup()

            def answer(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                cert = self.request.getpeercert() if tls else None
                with rec.lock:
                    planned = rec.plan and self.command == "POST"  # probes: always 200
                    status, extra = rec.plan.pop(0) if planned else (200, {})
                    rec.requests.append({"method": self.command, "path": self.path,
                                         "headers": {k.lower(): v for k, v in
                                                     self.headers.items()},
                                         "body": body, "at": time.monotonic(),
                                         "cert": cert, "status": status,
                                         "peer": self.client_address})
                out = b'{"title": "planned answer"}' if status >= 400 else b"{}"
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_POST = answer
            do_HEAD = answer

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = super().get_request()
                # headers and body go in two writes: without this, Nagle and
                # the client's delayed ACK cost 40 ms per answer
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if tls:
                    sock = tls.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False)
                return sock, addr

            def handle_error(self, request, client_address):
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d/in" % ("https" if tls else "http", self.port)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self):
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST"]

    def letters(self):
        return [letter(r["body"]) for r in self.posts() if r["status"] < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Silent:
    """A receiver that accepts connections and never answers ("hang"), or
    answers one byte and then nothing for a minute ("trickle"); serve()
    makes it answer every request 200 from then on."""

    def __init__(self, mode):
        self.mode = mode
        self.serving = False
        self.letters = []
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d/in" % self.port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        if not self.serving:
            if self.mode == "trickle":
                try:
                    c.recv(65536)
                    c.sendall(b"H")  # "HTTP/1.1 200 ..." would follow, a byte a minute
                except OSError:
                    pass
            return  # holds the connection open, silent
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                with self.lock:
                    self.letters.append(letter(body))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            return

    def serve(self):
        self.serving = True

    def close(self):
        self.closed = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


# ---- certificates -----------------------------------------------------------------------

def client_cert(folder, name):
    """A client certificate CN=name signed by folder's test CA (peer.make_certs):
    (cert path, key path, SHA-256 fingerprint as openssl prints it)."""
    p = lambda ext: os.path.join(folder, name + ext)  # noqa: E731
    with open(p(".ext"), "w") as f:
        f.write("basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [["req"] + ec + ["-keyout", p(".key"), "-out", p(".csr"), "-subj", "/CN=" + name],
             ["x509", "-req", "-in", p(".csr"), "-CA", os.path.join(folder, "ca.pem"),
              "-CAkey", os.path.join(folder, "ca.key"), "-CAcreateserial", "-out", p(".pem"),
              "-days", "2", "-extfile", p(".ext")]]
    for step in steps:
        subprocess.run(["openssl"] + step, check=True, capture_output=True, timeout=30)
    os.chmod(p(".key"), 0o600)
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                          p(".pem")], check=True, capture_output=True, text=True).stdout
    return p(".pem"), p(".key"), out.strip().split("=", 1)[1]


def make_ca(folder):
    peer.make_certs(folder)
    os.chmod(os.path.join(folder, "server.key"), 0o600)
    return folder


def client_context(certs, name=None):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if name:
        ctx.load_cert_chain(os.path.join(certs, name + ".pem"), os.path.join(certs, name + ".key"))
    return ctx


# ---- the scenarios ----------------------------------------------------------------------

class HttpTest(BrokerTest):

    def setUp(self):
        super().setUp()
        self.closers = []

    def tearDown(self):
        for c in self.closers:
            c.close()
        super().tearDown()

    def start(self, eps, **kw):
        kw.setdefault("delivery", {"retry_initial": "200ms", "retry_max": "1s"})
        b = HttpBroker(self.tmp, eps, **kw)
        self.brokers.append(b)
        b.start()
        return b

    def client(self, b, **kw):
        c = Client(b.port(), **kw)
        self.closers.append(c)
        return c

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.closers.append(r)
        return r

    def assert_problem(self, answer, status, problem):
        st, h, body = answer
        self.assertEqual(st, status, body)
        self.assertEqual(h.get("content-type"), "application/problem+json")
        self.assertEqual(body["type"], "urn:edibroker:problem:" + problem, body)
        self.assertEqual(body["status"], status)
        self.assertTrue(body["title"])
        return h, body

    def assert_no_secret(self, b, *secrets):
        log = b.log()
        for s in secrets:
            self.assertNotIn(s, log, "a token in the log")

    # -- ingress -----------------------------------------------------------------------

    def test_submit_deliver_and_resubmit_gets_the_same_id(self):
        b = self.start(basic_eps())
        c = self.client(b)
        data = msg(1)
        st, h, body = c.send(data, TOKEN_H)
        self.assertEqual(st, 202, body)
        self.assertEqual(h["content-type"], "application/json")
        mid = body["id"]
        self.assertIsInstance(mid, int)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="delivered")
        out = listdir_final(b.outbox("municipality"))[0]
        with open(os.path.join(b.outbox("municipality"), out), "rb") as f:
            self.assertEqual(f.read(), data, "delivered byte for byte")
        self.assertTrue(out.endswith("-%012d.xml" % mid), out)
        # the answer was lost: the client sends it again, on a new connection
        st, _, again = self.client(b).send(data, TOKEN_H)
        self.assertEqual((st, again), (202, {"id": mid}))
        time.sleep(0.5)
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 1, "delivered once")
        self.assertTrue(b.log_lines(r"event=accepted msg=%d source=hospital " % mid))
        self.assert_no_secret(b, TOKEN_H)

    def test_a_dead_letter_sent_again_gets_its_answer_again_and_is_kept_once(self):
        b = self.start(basic_eps())
        data = msg(7, receiver=OTHER_GLN)
        # the first answer was lost: the client sends the same body again
        _, first = self.assert_problem(self.client(b).send(data, TOKEN_H), 422, "undeliverable")
        _, again = self.assert_problem(self.client(b).send(data, TOKEN_H), 422, "undeliverable")
        self.assertEqual(again["id"], first["id"], "the first copy's id")
        self.assertEqual(again.get("detail"), first.get("detail"), "the first copy's reason")
        dead = b.ctl("dead")["messages"]
        self.assertEqual([m["id"] for m in dead], [first["id"]], "one dead letter, not two")
        self.assertTrue(b.log_lines(r"event=replay msg=%d source=hospital state=dead"
                                    % first["id"]))
        self.assertEqual(len(b.log_lines(r"event=dead-letter msg=")), 1, "logged once")

    def test_refusals_are_problems_with_precise_types(self):
        b = self.start(basic_eps(), broker_lines=["max_message_size = 4K"])
        c = self.client(b)
        h, _ = self.assert_problem(c.send(msg(1)), 401, "unauthorized")
        self.assertEqual(h["www-authenticate"], 'Bearer realm="edibroker"')
        h, _ = self.assert_problem(c.send(msg(1), "not-the-token-0123456789"), 401,
                                   "invalid-token")
        self.assertIn('error="invalid_token"', h["www-authenticate"])
        h, _ = self.assert_problem(c.send(None, TOKEN_H, method="GET"), 405,
                                   "method-not-allowed")
        self.assertEqual(h["allow"], "POST")
        self.assert_problem(c.send(msg(1), TOKEN_H, path="/v1/message"), 404, "not-found")
        self.assert_problem(c.send(msg(1), TOKEN_H, ctype="text/plain"), 415,
                            "unsupported-media-type")
        self.assert_problem(c.send(b"", TOKEN_H), 400, "empty")
        self.assert_problem(c.send(msg(2)[:700], TOKEN_H), 400, "syntax")
        _, p = self.assert_problem(c.send(b"<?xml version='1.0'?><note/>", TOKEN_H), 422,
                                   "structure")
        self.assertTrue(p["detail"])
        # spoofing: the hospital's token, the municipality's sender GLN
        _, p = self.assert_problem(c.send(msg(3, receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN),
                                          TOKEN_H), 403, "sender-not-owned")
        self.assertIn(MUNICIPALITY_GLN, p["detail"])
        self.assertTrue(b.log_lines(r"event=sender-refused source=hospital sender=%s .*"
                                    r"security=spoofing" % MUNICIPALITY_GLN))
        # a receiver no endpoint has: kept as a dead letter, its id told
        _, p = self.assert_problem(c.send(msg(4, receiver=OTHER_GLN), TOKEN_H), 422,
                                   "undeliverable")
        self.assertIsInstance(p["id"], int)
        dead = b.ctl("dead")
        self.assertIn(p["id"], [m["id"] for m in dead["messages"]])
        # larger than max_message_size: refused before the body is read
        big = msg(5).replace(b"<Envelope>", b"<!--" + b"x" * 8192 + b"-->" + b"<Envelope>", 1)
        st, _, _ = self.client(b).send(big, TOKEN_H)
        self.assertEqual(st, 413)
        # none of these reached the municipality; the connection still works
        st, _, _ = c.send(msg(6), TOKEN_H)
        self.assertEqual(st, 202)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="the one")
        out = os.path.join(b.outbox("municipality"), listdir_final(b.outbox("municipality"))[0])
        with open(out, "rb") as f:
            self.assertEqual(letter(f.read()), "LH00006")
        self.assertTrue(b.log_lines(r"event=http-refused .*status=401 problem=invalid-token "
                                    r".*security=auth"))
        self.assert_no_secret(b, TOKEN_H, "not-the-token-0123456789")

    def test_busy_queue_is_503_with_retry_after_and_other_endpoints_flow(self):
        eps = basic_eps(other={"kind": "municipality", "gln": [OTHER_GLN]})
        b = self.start(eps, delivery={"retry_initial": "200ms", "retry_max": "500ms",
                                      "max_queued_bytes": "1M"})
        away = b.outbox("municipality") + ".away"
        os.rename(b.outbox("municipality"), away)
        c = self.client(b)
        pad = b"<!--" + b"x" * (100 * 1024) + b"-->"
        answers = []
        for i in range(20):
            big = msg(i, prefix="B").replace(b"<Envelope>", pad + b"<Envelope>", 1)
            answers.append(c.send(big, TOKEN_H))
            if answers[-1][0] == 503:
                break
        st, h, p = answers[-1]
        self.assertEqual(st, 503, "the queue never filled: %s" % [a[0] for a in answers])
        self.assertEqual(p["type"], "urn:edibroker:problem:busy")
        self.assertGreater(int(h["retry-after"]), 0)
        self.assertGreater(len(answers), 5, "about ten fit under 1 MiB")
        # another receiver's messages are taken meanwhile
        st, _, _ = c.send(msg(1, receiver=OTHER_GLN, prefix="O"), TOKEN_H)
        self.assertEqual(st, 202)
        wait_for(lambda: len(listdir_final(b.outbox("other"))) == 1, what="other delivered")
        # the municipality is back: what was refused is taken when sent again
        os.rename(away, b.outbox("municipality"))
        refused = msg(len(answers) - 1, prefix="B").replace(b"<Envelope>", pad + b"<Envelope>", 1)
        wait_for(lambda: c.send(refused, TOKEN_H)[0] == 202, timeout=20, interval=0.5,
                 what="accepted once the queue drained")
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == len(answers),
                 timeout=20, what="all delivered")

    def test_token_removed_by_reload_is_refused_on_the_open_connection(self):
        eps = basic_eps()
        b = self.start(eps)
        c = self.client(b)
        self.assertEqual(c.send(msg(1), TOKEN_H)[0], 202)
        sock = c.conn.sock
        self.assertIsNotNone(sock)
        # a new token for the hospital, from a private file
        tf = os.path.join(self.tmp, "hospital.token")
        with open(tf, "w") as f:
            f.write("hospital-New-Tok-5d2c9e0a17\n")
        os.chmod(tf, 0o640)
        eps["hospital"]["lines"] = ["token_file = " + tf]
        b.write_config()
        b.reload()
        self.assert_problem(c.send(msg(2), TOKEN_H), 401, "invalid-token")
        self.assertIs(c.conn.sock, sock, "the same kept-alive connection")
        st, _, _ = c.send(msg(3), "hospital-New-Tok-5d2c9e0a17")
        self.assertEqual(st, 202, "the new token works at once, on the same connection")
        self.assertIs(c.conn.sock, sock)
        self.assert_no_secret(b, TOKEN_H, "hospital-New-Tok-5d2c9e0a17")

    def test_reload_moves_the_listener_and_turns_tls_on(self):
        certs = make_ca(os.path.join(self.tmp, "certs"))
        b = self.start(basic_eps())
        old = b.port()
        self.assertEqual(self.client(b).send(msg(1), TOKEN_H)[0], 202)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        new = s.getsockname()[1]
        s.close()
        b.listen = "127.0.0.1:%d" % new
        b.broker_lines = ["tls_cert = " + os.path.join(certs, "server.pem"),
                          "tls_key = " + os.path.join(certs, "server.key")]
        b.write_config()
        b.reload()
        self.assertEqual(b.port(), new)
        self.assertTrue(b.log_lines(r"event=http-listening address=127.0.0.1:%d tls=yes" % new))
        st, _, _ = self.client(b, context=client_context(certs)).send(msg(2), TOKEN_H)
        self.assertEqual(st, 202, "HTTPS on the new address")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", old), timeout=5).close()
        # a bad certificate in a reload that also revokes the token: the listener
        # stays as it was, the revocation takes effect all the same
        with open(os.path.join(self.tmp, "bad.pem"), "w") as f:
            f.write("not a certificate\n")
        b.broker_lines[0] = "tls_cert = " + os.path.join(self.tmp, "bad.pem")
        b.eps["hospital"]["lines"] = ["token = hospital-Other-Tok-77c1e2f3"]
        b.write_config()
        b.reload()
        self.assertTrue(b.log_lines(r"event=reload-partial transport=http .*tls_cert .*"
                                    r"the new tokens and fingerprints are in force"))
        c = self.client(b, context=client_context(certs))
        self.assert_problem(c.send(msg(3), TOKEN_H), 401, "invalid-token")
        st, _, _ = c.send(msg(3), "hospital-Other-Tok-77c1e2f3")
        self.assertEqual(st, 202)
        self.assert_no_secret(b, TOKEN_H, "hospital-Other-Tok-77c1e2f3")

    def test_tokens_in_clear_on_a_network_address_refuse_start(self):
        b = HttpBroker(self.tmp, basic_eps(), listen="0.0.0.0:0")
        self.brokers.append(b)
        r = subprocess.run([os.path.join(BIN, "edibrokerd"), "--check-config", b.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not a loopback address and tls_cert is not set", r.stderr)
        self.assertNotIn(TOKEN_H, r.stderr)
        b.start(wait_ready=False)
        wait_for(lambda: b.proc.poll() is not None, timeout=10, what="refused start")
        self.assertNotEqual(b.proc.returncode, 0)
        self.assertIn("bearer tokens (endpoint 'hospital') would cross the network in clear",
                      b.log())
        self.assert_no_secret(b, TOKEN_H)

    # -- TLS -----------------------------------------------------------------------------

    def test_tls_with_client_certificates_bound_to_endpoints(self):
        certs = make_ca(os.path.join(self.tmp, "certs"))
        _, _, fp_h = client_cert(certs, "hospital-client")
        _, _, fp_m = client_cert(certs, "municipality-client")
        client_cert(certs, "stranger")
        eps = {
            "hospital": {"kind": "hospital", "gln": [HOSPITAL_GLN],
                         "lines": ["peer_cert_sha256 = " + fp_h]},
            "municipality": {"kind": "municipality", "gln": [MUNICIPALITY_GLN],
                             "lines": ["peer_cert_sha256 = " + fp_m.replace(":", "").lower(),
                                       "token = " + TOKEN_M]},
        }
        b = self.start(eps, broker_lines=[
            "tls_cert = " + os.path.join(certs, "server.pem"),
            "tls_key = " + os.path.join(certs, "server.key"),
            "tls_client_ca = " + os.path.join(certs, "ca.pem")])
        self.assertTrue(b.log_lines(r"event=http-listening .*tls=yes client_certs=required"))
        c = self.client(b, context=client_context(certs, "hospital-client"))
        st, _, body = c.send(msg(1), None)
        self.assertEqual(st, 202, body)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="delivered")
        # a token of another endpoint beside the certificate
        self.assert_problem(c.send(msg(2), TOKEN_M), 403, "credential-mismatch")
        # a certificate of the test CA that no endpoint is bound to
        s = self.client(b, context=client_context(certs, "stranger"))
        self.assert_problem(s.send(msg(3)), 401, "certificate-not-bound")
        # its own token with its own certificate is fine
        m = self.client(b, context=client_context(certs, "municipality-client"))
        st, _, _ = m.send(msg(4, receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN, prefix="M"),
                          TOKEN_M)
        self.assertEqual(st, 202)
        # no client certificate: no TLS session at all; plain HTTP: no answer
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            self.client(b, context=client_context(certs)).send(msg(5), TOKEN_M)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            self.client(b, timeout=5).send(msg(5), TOKEN_M)
        # the hospital's binding removed: refused at once on its open connection
        sock = c.conn.sock
        eps["hospital"]["lines"] = []
        b.write_config()
        b.reload()
        self.assert_problem(c.send(msg(6)), 401, "certificate-not-bound")
        self.assertIs(c.conn.sock, sock)
        self.assert_no_secret(b, TOKEN_M)

    def test_https_delivery_with_a_private_ca_and_a_client_certificate(self):
        certs = make_ca(os.path.join(self.tmp, "certs"))
        bc, bk, _ = client_cert(certs, "broker")
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        srv.verify_mode = ssl.CERT_REQUIRED
        srv.load_verify_locations(os.path.join(certs, "ca.pem"))
        r = self.receiver(tls=srv)
        eps = basic_eps()
        eps["municipality"] = {"kind": "municipality", "gln": [MUNICIPALITY_GLN],
                               "transport": "http",
                               "lines": ["url = " + r.url, "ca_file = " + certs + "/ca.pem",
                                         "client_cert = " + bc, "client_key = " + bk]}
        # the same receiver without its CA: never delivered, verification stays on
        eps["other"] = {"kind": "municipality", "gln": [OTHER_GLN], "transport": "http",
                        "lines": ["url = " + r.url]}
        b = self.start(eps)
        drop(b.inbox("hospital"), "m1.xml", msg(1))
        drop(b.inbox("hospital"), "o1.xml", msg(1, receiver=OTHER_GLN, prefix="O"))
        wait_for(lambda: r.letters() == ["LH00001"], what="delivered over HTTPS")
        post = r.posts()[0]
        self.assertEqual(post["body"], msg(1))
        self.assertEqual(dict(x[0] for x in post["cert"]["subject"])["commonName"], "broker")
        wait_for(lambda: b.log_lines(r"event=deferred .*endpoint=other .*fault=tls"),
                 what="the other endpoint's TLS failure")
        self.assertEqual(len(r.posts()), 1, "nothing reached the receiver unverified")

    def test_peer_http_send_the_client_edibroker_peer_uses(self):
        """tools/peer_http.c (edibroker-peer send --http) against the daemon."""
        certs = make_ca(os.path.join(self.tmp, "certs"))
        cc, ck, fp = client_cert(certs, "hospital-client")
        eps = basic_eps()
        eps["hospital"]["lines"].append("peer_cert_sha256 = " + fp)
        b = self.start(eps, broker_lines=[
            "tls_cert = " + os.path.join(certs, "server.pem"),
            "tls_key = " + os.path.join(certs, "server.key"),
            "tls_client_ca = " + os.path.join(certs, "ca.pem")])
        files = []
        for i, m in enumerate([msg(1), msg(2), msg(3, sender=MUNICIPALITY_GLN)]):
            files.append(os.path.join(self.tmp, "m%d.xml" % i))
            with open(files[-1], "wb") as f:
                f.write(m)
        base = "https://127.0.0.1:%d" % b.port()
        ca = os.path.join(certs, "ca.pem")

        def drive(url, token, ca, cert, key, *paths):
            return subprocess.run([DRIVE, url, token or "-", ca or "-", cert or "-", key or "-",
                                   "5000"] + list(paths), capture_output=True, text=True,
                                  timeout=30)
        r = drive(base, TOKEN_H, ca, cc, ck, *files[:2])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"m0.xml: ok id \d+\n.*m1.xml: ok id \d+")
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2, what="delivered")
        # the same with the certificate alone, to the whole url
        r = drive(base + "/v1/messages", None, ca, cc, ck, files[0])
        self.assertEqual(r.returncode, 0, r.stdout)
        # a spoofed sender: refused, and why
        r = drive(base, TOKEN_H, ca, cc, ck, files[2])
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 403 urn:edibroker:problem:sender-not-owned", r.stdout)
        # a broker it does not trust, or nothing listening: an error in bounded time
        r = drive(base, TOKEN_H, None, cc, ck, files[0])
        self.assertEqual(r.returncode, 1)
        self.assertIn("error (-5)", r.stdout)
        t0 = time.monotonic()
        r = drive("http://127.0.0.1:1", TOKEN_H, None, None, None, files[0])
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertNotIn(TOKEN_H, r.stdout + r.stderr)

    # -- delivery ------------------------------------------------------------------------

    def test_delivery_in_order_rejection_retry_after_and_no_redirects(self):
        r = self.receiver(plan=[(422, {}), (200, {}), (503, {"Retry-After": "2"}),
                                (302, {"Location": "http://127.0.0.1:1/elsewhere"})])
        eps = basic_eps()
        eps["municipality"] = {"kind": "municipality", "gln": [MUNICIPALITY_GLN],
                               "transport": "http", "lines": ["url = " + r.url]}
        b = self.start(eps, extra="[outage]\nprobe_interval = 500ms\n")
        c = self.client(b)
        sent = [msg(i) for i in range(1, 5)]
        ids = []
        for m in sent:
            st, _, body = c.send(m, TOKEN_H)
            self.assertEqual(st, 202)
            ids.append(body["id"])
        wait_for(lambda: r.letters() == ["LH00002", "LH00003", "LH00004"], timeout=20,
                 what="the rest delivered in order")
        posts = r.posts()
        # 1: 422, set aside; 2: 200; 3: 503 Retry-After 2; 3 again after 2 s: 302;
        # 3 again: 200 (the redirect was not followed: nothing went elsewhere); 4: 200
        self.assertEqual([letter(p["body"]) for p in posts],
                         ["LH00001", "LH00002", "LH00003", "LH00003", "LH00003", "LH00004"])
        self.assertGreaterEqual(posts[3]["at"] - posts[2]["at"], 1.9, "Retry-After: 2")
        for p, m, i in zip([posts[0], posts[1], posts[5]], [sent[0], sent[1], sent[3]],
                           [ids[0], ids[1], ids[3]]):
            self.assertEqual(p["body"], m)
            self.assertEqual(p["headers"]["content-type"], "application/xml")
            self.assertRegex(p["headers"]["edibroker-message-id"], r"^[0-9a-f]{8}-%012d$" % i)
        dead = {m["id"]: m for m in b.ctl("dead")["messages"]}
        self.assertIn(ids[0], dead)
        self.assertIn("HTTP 422", dead[ids[0]]["reason"])
        self.assertTrue(b.log_lines(r"event=deferred .*endpoint=municipality .*fault=refused "
                                    r".*HTTP 302 .*redirect, not followed"))
        # idle: probed with HEAD
        wait_for(lambda: any(q["method"] == "HEAD" for q in r.requests), timeout=10,
                 what="a HEAD probe")

    # -- isolation -----------------------------------------------------------------------

    def test_silent_receivers_cost_only_their_endpoints(self):
        hang, trickle = Silent("hang"), Silent("trickle")
        self.closers += [hang, trickle]
        good = self.receiver()
        glns = {"hung-a": "5790000143078", "hung-b": "5790000143085", "muni-c": OTHER_GLN}
        urls = {"hung-a": hang.url, "hung-b": trickle.url, "muni-c": good.url}
        eps = {"hospital": {"kind": "hospital", "gln": [HOSPITAL_GLN],
                            "lines": ["token = " + TOKEN_H]}}
        for name in glns:
            eps[name] = {"kind": "municipality", "gln": [glns[name]], "transport": "http",
                         "lines": ["url = " + urls[name], "delivery_timeout = 2s"]}
        b = self.start(eps, extra="[outage]\ndown_after = 2\nprobe_interval = 500ms\n")
        c = self.client(b)
        for i in range(3):
            for ep, p in (("hung-a", "A"), ("hung-b", "B")):
                self.assertEqual(c.send(msg(i, receiver=glns[ep], prefix=p), TOKEN_H)[0], 202)
        wait_for(lambda: len(hang.conns) >= 1 and len(trickle.conns) >= 1,
                 what="both silent receivers connected to")
        t0 = time.monotonic()
        for i in range(50):
            self.assertEqual(c.send(msg(i, receiver=OTHER_GLN, prefix="C"), TOKEN_H)[0], 202)
        while len(good.letters()) < 50:
            self.assertLess(time.monotonic() - t0, 10, "muni-c waited for the silent receivers")
            s0 = time.monotonic()
            b.status()
            self.assertLess(time.monotonic() - s0, 1.0, "edibrokerctl status was slow")
            time.sleep(0.1)
        self.assertEqual(good.letters(), ["LC%05d" % i for i in range(50)], "in order, once")
        self.assertEqual(len({p["peer"] for p in good.posts()}), 1, "one kept-alive connection")
        # the silent ones: the deadline, cancel, backoff, then down
        for ep in ("hung-a", "hung-b"):
            wait_for(lambda: b.endpoint(ep)["health"] == "down", timeout=20, what=ep + " down")
            self.assertTrue(b.log_lines(r"event=deferred .*endpoint=%s .*fault=timeout" % ep))
        threads = len(os.listdir("/proc/%d/task" % b.proc.pid))
        self.assertLess(threads, 16, "%d threads" % threads)
        # they answer again: their backlog arrives, in order
        hang.serve()
        trickle.serve()
        wait_for(lambda: hang.letters == ["LA00000", "LA00001", "LA00002"] and
                 trickle.letters == ["LB00000", "LB00001", "LB00002"], timeout=20,
                 what="the backlog after the receivers recovered")
        self.assertEqual(b.stop(), 0)

    # -- bounds --------------------------------------------------------------------------

    def test_connection_limit_and_timeouts(self):
        b = self.start(basic_eps(), broker_lines=[
            "http_max_connections = 2", "http_idle_timeout = 2s", "http_request_timeout = 1s"])
        port = b.port()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        self.closers += idle
        wait_for(lambda: b.log_lines(r"event=http-connection-limit connections=2"),
                 what="the limit reached")
        # a third waits in the backlog: no answer while the two are open
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.client(b, timeout=1).send(msg(1), TOKEN_H)
        # idle connections are closed after http_idle_timeout
        t0 = time.monotonic()
        for s in idle:
            s.settimeout(6)
            self.assertEqual(s.recv(1), b"", "closed by the broker")
        self.assertLess(time.monotonic() - t0, 5)
        st, _, _ = self.client(b).send(msg(2), TOKEN_H)
        self.assertEqual(st, 202, "served once the slots are free")
        # a request trickling in is closed http_request_timeout after its first byte,
        # though bytes keep coming
        s = socket.create_connection(("127.0.0.1", port))
        self.closers.append(s)
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 4:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
        self.assertTrue(closed, "a slow request was not cut off")
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertTrue(b.log_lines(r"event=http-request-timeout"))

    def abuse(self, port, rounds, tls_ctx=None):
        """Connections that end every way a client can end one."""
        def ways():
            yield lambda s: None                                    # connect, close
            yield lambda s: s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost")  # half a request
            yield lambda s: s.sendall(b"\x16\x03\x01 garbage\r\n\r\n")  # not HTTP
            yield lambda s: (s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: 99999999\r\n\r\n"), s.recv(100))
            yield lambda s: (s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close"
                                       b"\r\n\r\n"), s.recv(100))
            yield lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        for _ in range(rounds):
            for way in ways():
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                try:
                    way(s)
                except OSError:
                    pass
                s.close()
        if tls_ctx:  # handshakes given up half-way, and refused certificates
            for _ in range(rounds):
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                t = tls_ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                        do_handshake_on_connect=False)
                try:
                    t.do_handshake()
                    t.sendall(b"POST /v1/messages HTTP/1.1\r\n")
                except (OSError, ssl.SSLError):
                    pass
                t.close()

    def test_connections_are_counted_down_however_they_end(self):
        b = self.start(basic_eps(), broker_lines=["http_max_connections = 2",
                                                  "max_message_size = 4K"])
        self.abuse(b.port(), 10)
        st, _, _ = self.client(b, timeout=5).send(msg(1), TOKEN_H)
        self.assertEqual(st, 202, "a slot was lost")
        self.assertEqual(b.proc.poll(), None)

    def test_tls_connections_are_counted_down_however_they_end(self):
        certs = make_ca(os.path.join(self.tmp, "certs"))
        b = self.start(basic_eps(), broker_lines=[
            "http_max_connections = 2",
            "tls_cert = " + os.path.join(certs, "server.pem"),
            "tls_key = " + os.path.join(certs, "server.key")])
        self.abuse(b.port(), 5, tls_ctx=client_context(certs))
        st, _, _ = self.client(b, timeout=5, context=client_context(certs)).send(msg(1), TOKEN_H)
        self.assertEqual(st, 202, "a slot was lost")

    # -- crash ---------------------------------------------------------------------------

    def test_kill9_mid_stream_loses_nothing_acknowledged(self):
        r = self.receiver()
        eps = basic_eps()
        eps["municipality"] = {"kind": "municipality", "gln": [MUNICIPALITY_GLN],
                               "transport": "http", "lines": ["url = " + r.url]}
        b = self.start(eps)
        acked, sent = {}, []
        stop = threading.Event()

        def submit(port):
            c = Client(port, timeout=5)
            self.closers.append(c)
            i = 0
            while not stop.is_set():
                m = msg(i, prefix="K")
                sent.append(m)
                try:
                    st, _, body = c.send(m, TOKEN_H)
                except (OSError, http.client.HTTPException):
                    return
                if st == 202:
                    acked[letter(m)] = body["id"]
                i += 1

        t = threading.Thread(target=submit, args=(b.port(),), daemon=True)
        t.start()
        wait_for(lambda: len(acked) >= 40, timeout=20, what="a stream under way")
        b.kill9()
        stop.set()
        t.join(10)
        self.assertGreaterEqual(len(acked), 40)
        b.start()
        wait_for(lambda: set(acked) <= set(r.letters()), timeout=30,
                 what="every acknowledged message delivered after the restart")
        # the one whose answer was lost: sent again, it gets an id, and arrives
        st, _, body = self.client(b).send(sent[-1], TOKEN_H)
        self.assertEqual(st, 202)
        wait_for(lambda: letter(sent[-1]) in r.letters(), what="the resent one")
        got = r.letters()
        order = [l for l in got if l in acked]
        self.assertEqual(sorted(set(order), key=order.index),
                         sorted(acked, key=lambda k: acked[k]), "delivered in order")
