"""The ZeroMQ peer link (issue 9, points 3-8) through the real daemon.

Peers are bin/edibroker-peer (keygen, send, receive) and, where a test must
do what the tool never would (say ready and never confirm, choose another
peer's routing id, send frames that are not a command, speak without
CURVE), raw pyzmq sockets. Every port is a free one on 127.0.0.1; every
wait is bounded.

- hospital over ZeroMQ -> municipality over spool, byte for byte, and back
  (municipality's inbox -> `edibroker-peer receive` for the hospital);
- across the peer links: hospital over ZeroMQ -> municipality over HTTPS
  (a test CA), municipality over HTTPS (`edibroker-peer send --http`) ->
  hospital over ZeroMQ; no secret key or token in any log or output;
- a backlog queued while no receiver is connected goes to the receiver that
  connects, and one killed mid-way leaves nothing behind: the next
  connection gets what it had unconfirmed;
- a key the broker does not know, a wrong broker key, no CURVE at all and
  garbage on the port: refused within a bounded time, nothing stored, the
  broker serves the next good peer;
- a sender GLN the endpoint does not own, and a routing id chosen to look
  like another peer: refused as spoofing;
- a key a reload removes: refused at once on the connection already open;
- kill -9 in mid-stream, one `send` run across the restart: nothing lost,
  every delivered file byte-identical (re-delivery allowed);
- a peer that says ready and never confirms: only the window goes to it,
  its deliveries time out, another endpoint's traffic flows at full speed
  and `edibrokerctl status` answers at once;
- a full queue: "busy", retryable (exit 75);
- fail closed: no ZAP handler (a preloaded shim takes its address) or a
  secret key file others can read stops the start.
"""

import glob
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import zmq

from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, drop, listdir_final, sample,
                     wait_for, with_ids)
from test_http import HttpBroker, Receiver, make_ca
from zmqpeer import PEER, RawPeer, ZmqBroker, free_port, keygen, secret_of

LETTER = re.compile(rb"<(?:\w+:)?Letter>\s*<(?:\w+:)?Identifier>([^<]*)<")
EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 65, 69, 75


def letter_of(data):
    return LETTER.search(data).group(1).decode()



class ZmqTest(BrokerTest):
    def setUp(self):
        super().setUp()
        self.procs = []
        self.peers = []
        self.hosp_key = os.path.join(self.tmp, "hospital.secret")
        self.muni_key = os.path.join(self.tmp, "municipality.secret")
        self.hosp_pub = keygen(self.hosp_key)
        self.muni_pub = keygen(self.muni_key)

    def tearDown(self):
        for p in self.peers:
            p.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=5)
        super().tearDown()

    def zbroker(self, **kw):
        kw.setdefault("keys", {"hospital": self.hosp_pub})
        b = ZmqBroker(self.tmp, **kw)
        self.brokers.append(b)
        return b

    def send(self, b, files, key=None, timeout="10s", extra=(), expect=None):
        r = subprocess.run([PEER, "send", "-v", "--zmq", b.address, "--broker-key", b.public,
                            "--key", key or self.hosp_key, "--timeout", timeout,
                            "--connect-timeout", "3s"] + list(extra) + list(files),
                           capture_output=True, text=True, timeout=60)
        if expect is not None:
            self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r

    def receiver(self, b, into, key=None, window=None):
        os.makedirs(into, exist_ok=True)
        args = [PEER, "receive", "--zmq", b.address, "--broker-key", b.public, "--key",
                key or self.hosp_key, "--into", into, "--heartbeat", "500ms"]
        if window:
            args += ["--window", str(window)]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def raw(self, b, secret_path=None, **kw):
        p = RawPeer(b.address, b.public, secret_of(secret_path) if secret_path else None, **kw)
        self.peers.append(p)
        return p

    def write_msgs(self, folder, msgs):
        os.makedirs(folder, exist_ok=True)
        paths = []
        for i, data in enumerate(msgs):
            p = os.path.join(folder, "m%04d.xml" % i)
            with open(p, "wb") as f:
                f.write(data)
            paths.append(p)
        return paths

    def msgs(self, n, prefix, receiver=MUNICIPALITY_GLN, sender=HOSPITAL_GLN):
        base = sample("DIS20_1.xml")
        return [with_ids(base, "E%s%04d" % (prefix, i), "L%s%04d" % (prefix, i),
                         receiver=receiver, sender=sender) for i in range(n)]


class PeerLink(ZmqTest):

    def test_hospital_over_zmq_to_municipality_and_back(self):
        b = self.zbroker(zmq_eps={"hospital"}).start()
        self.assertTrue(b.log_lines(r"event=zmq-listening address=%s public_key=" % re.escape(
            b.address)))
        sent = self.msgs(3, "H")
        files = self.write_msgs(os.path.join(self.tmp, "out-h"), sent)
        r = self.send(b, files, expect=0)
        ids = re.findall(r": accepted (\d+)$", r.stdout, re.M)
        self.assertEqual(len(ids), 3, r.stdout)
        out = b.outbox("municipality")
        wait_for(lambda: len(listdir_final(out)) == 3, timeout=10, what="three delivered")
        got = {}
        for name in listdir_final(out):
            with open(os.path.join(out, name), "rb") as f:
                data = f.read()
            got[letter_of(data)] = data
        self.assertEqual(got, {letter_of(m): m for m in sent}, "not byte-identical")
        # the same messages again (a client retrying after a lost answer): the same ids
        r2 = self.send(b, files, expect=0)
        self.assertEqual(re.findall(r": accepted (\d+)$", r2.stdout, re.M), ids)
        # and back: the municipality drops files, the hospital receives over ZeroMQ
        into = os.path.join(self.tmp, "hospital-in")
        back = self.msgs(4, "M", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)
        for i, m in enumerate(back):
            drop(b.inbox("municipality"), "b%d.xml" % i, m)
        p = self.receiver(b, into)
        wait_for(lambda: len(listdir_final(into)) == 4, timeout=15, what="four received")
        for name in listdir_final(into):
            with open(os.path.join(into, name), "rb") as f:
                data = f.read()
            self.assertIn(data, back)
            self.assertRegex(name, r"^[0-9a-f]{8}-\d{12}\.xml$")
        self.assertEqual([n for n in os.listdir(into) if n.startswith(".")], [],
                         "a temporary file left behind")
        wait_for(lambda: b.endpoint("hospital")["queued"] == 0, timeout=5, what="confirmed")
        wait_for(lambda: b.endpoint("hospital")["health"] == "up", timeout=5, what="up")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        self.assertEqual(b.stop(), 0)

    def test_a_peer_that_is_not_connected_fails_fast_and_recovers_on_ready(self):
        b = self.zbroker(zmq_eps={"hospital"},
                         delivery={"retry_initial": "30s", "retry_max": "60s"}).start()
        drop(b.inbox("municipality"), "x.xml",
             self.msgs(1, "F", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)[0])
        wait_for(lambda: b.log_lines(r"event=deferred .*endpoint=hospital .*fault=refused "
                                     r"error=\"no connection of the peer receives"),
                 timeout=5, what="a fast failure")
        # a 30 s backoff, but a receiver connecting lets it go now
        t0 = time.monotonic()
        into = os.path.join(self.tmp, "in")
        self.receiver(b, into)
        wait_for(lambda: len(listdir_final(into)) == 1, timeout=8, what="delivered on ready")
        self.assertLess(time.monotonic() - t0, 8)

    def test_a_backlog_waits_for_its_receiver_and_outlives_one_killed_mid_way(self):
        b = self.zbroker(zmq_eps={"hospital"},
                         keys={"hospital": self.hosp_pub, "municipality": self.muni_pub},
                         delivery={"retry_initial": "30s", "retry_max": "60s"}).start()
        n = 200
        sent = self.msgs(n, "G", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)
        self.send(b, self.write_msgs(os.path.join(self.tmp, "g"), sent), key=self.muni_key,
                  expect=0)
        wait_for(lambda: b.endpoint("hospital")["queued"] == n, timeout=10, what="the backlog")
        # the first receiver dies (kill -9) with deliveries unconfirmed
        into = os.path.join(self.tmp, "hospital-in")
        first = self.receiver(b, into, window=8)
        wait_for(lambda: len(listdir_final(into)) >= 40, timeout=15, what="a part received")
        first.kill()
        first.wait(5)
        self.assertGreater(b.endpoint("hospital")["queued"], 0, "drained before the kill")
        # the next connection takes over, despite the 30 s backoff, and gets the rest
        self.receiver(b, into, window=32)
        wait_for(lambda: b.endpoint("hospital")["queued"] == 0, timeout=30, interval=0.2,
                 what="the backlog confirmed")
        got = {}
        for name in listdir_final(into):
            with open(os.path.join(into, name), "rb") as f:
                got[letter_of(f.read())] = name
        self.assertEqual(sorted(got), sorted(letter_of(m) for m in sent), "lost or extra")
        for m in sent:
            with open(os.path.join(into, got[letter_of(m)]), "rb") as f:
                self.assertEqual(f.read(), m, "not byte-identical")
        self.assertEqual(len(listdir_final(into)), n, "a duplicate under a new name")
        self.assertTrue(b.log_lines(r"event=zmq-receiver endpoint=hospital"))


class AcrossLinks(ZmqTest):
    """ZeroMQ and HTTPS in one broker: each link carries what the other took in."""

    TOKEN = "municipality-Tok-5c1d8e2a9b"

    def test_zmq_in_https_out_and_https_in_zmq_out(self):
        certs = make_ca(os.path.join(self.tmp, "certs"))
        ca = os.path.join(certs, "ca.pem")
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        rec = Receiver(tls=srv)
        self.peers.append(rec)
        secret = os.path.join(self.tmp, "broker.secret")
        keygen(secret)
        address = "tcp://127.0.0.1:%d" % free_port()
        eps = {"hospital": {"kind": "hospital", "gln": [HOSPITAL_GLN], "transport": "zmq",
                            "lines": ["zmq_public_key = " + self.hosp_pub]},
               "municipality": {"kind": "municipality", "gln": [MUNICIPALITY_GLN],
                                "transport": "http",
                                "lines": ["url = " + rec.url, "ca_file = " + ca,
                                          "token = " + self.TOKEN]}}
        b = HttpBroker(self.tmp, eps, delivery={"retry_initial": "200ms", "retry_max": "1s"},
                       broker_lines=["zmq_listen = " + address, "zmq_secret_key = " + secret,
                                     "zmq_heartbeat_timeout = 2s",
                                     "tls_cert = " + os.path.join(certs, "server.pem"),
                                     "tls_key = " + os.path.join(certs, "server.key")])
        self.brokers.append(b)
        b.start()
        b.address = address
        b.public = zmq.curve_public(secret_of(secret).encode()).decode()
        # hospital over ZeroMQ -> municipality over HTTPS
        there = self.msgs(3, "Z")
        r1 = self.send(b, self.write_msgs(os.path.join(self.tmp, "z"), there), expect=0)
        wait_for(lambda: sorted(rec.letters()) == sorted(letter_of(m) for m in there),
                 timeout=10, what="delivered over HTTPS")
        self.assertEqual(sorted(p["body"] for p in rec.posts()), sorted(there))
        # municipality over HTTPS -> hospital over ZeroMQ
        back = self.msgs(2, "W", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)
        token_file = os.path.join(self.tmp, "municipality.token")
        with open(token_file, "w") as f:
            f.write(self.TOKEN + "\n")
        r2 = subprocess.run([PEER, "send", "-v", "--http", "https://127.0.0.1:%d" % b.port(),
                             "--token-file", token_file, "--ca-file", ca, "--timeout", "10s"] +
                            self.write_msgs(os.path.join(self.tmp, "w"), back),
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(r2.returncode, 0, r2.stdout + r2.stderr)
        self.assertEqual(len(re.findall(r": accepted \d+$", r2.stdout, re.M)), 2, r2.stdout)
        into = os.path.join(self.tmp, "hospital-in")
        p = self.receiver(b, into)
        wait_for(lambda: len(listdir_final(into)) == 2, timeout=15, what="received over ZeroMQ")
        for name in listdir_final(into):
            with open(os.path.join(into, name), "rb") as f:
                self.assertIn(f.read(), back)
        wait_for(lambda: b.endpoint("hospital")["queued"] == 0, timeout=5, what="confirmed")
        p.send_signal(signal.SIGTERM)
        _, perr = p.communicate(timeout=10)
        # no secret anywhere: not the broker's or a peer's CURVE secret key, not the token
        secrets = [secret_of(secret), secret_of(self.hosp_key), self.TOKEN]
        outputs = {"the broker's log": b.log(), "send --zmq": r1.stdout + r1.stderr,
                   "send --http": r2.stdout + r2.stderr, "receive": perr.decode()}
        for what, text in outputs.items():
            for s in secrets:
                self.assertNotIn(s, text, "a secret in " + what)
        self.assertEqual(b.stop(), 0)


class Refusals(ZmqTest):

    def test_unknown_key_wrong_broker_key_no_curve_and_garbage(self):
        b = self.zbroker().start()
        files = self.write_msgs(os.path.join(self.tmp, "o"), self.msgs(1, "U"))
        stranger = os.path.join(self.tmp, "stranger.secret")
        stranger_pub = keygen(stranger)
        t0 = time.monotonic()
        r = self.send(b, files, key=stranger, expect=EX_UNAVAILABLE)
        self.assertLess(time.monotonic() - t0, 5, "the refusal took too long")
        self.assertIn("refused this peer's key", r.stderr)
        # (a key with Z85's punctuation is written quoted)
        wait_for(lambda: b.log_lines(r"event=zmq-refused reason=unknown-key key=\"?%s\"? "
                                     r"address=127\.0\.0\.1" % re.escape(stranger_pub)),
                 timeout=5, what="the refusal logged with the key")
        # the broker's key is not the one the client expects: no handshake
        wrong = ZmqBroker.__new__(ZmqBroker)
        wrong.address, wrong.public = b.address, self.muni_pub
        t0 = time.monotonic()
        r = self.send(wrong, files, expect=EX_UNAVAILABLE)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertIn("no handshake", r.stderr)
        # no CURVE at all: the NULL and the PLAIN mechanism
        null = self.raw(b)
        with open(files[0], "rb") as f:
            body = f.read()
        null.send("submit", "1", body)
        self.assertIsNone(null.recv(1.0), "a NULL-mechanism client got an answer")
        plain = self.raw(b)
        plain.sock.close()
        plain.sock = plain.ctx.socket(zmq.DEALER)
        plain.sock.linger = 0
        plain.sock.plain_username = b"hospital"
        plain.sock.plain_password = b"secret"
        plain.sock.connect(b.address)
        plain.send("submit", "1", body)
        self.assertIsNone(plain.recv(1.0), "a PLAIN client got an answer")
        # garbage and a truncated greeting on the port
        for junk in (b"\xff" + b"\x00" * 8 + b"\x7f" + b"garbage" * 20, b"\xff\x00\x00"):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=2)
            s.sendall(junk)
            s.close()
        # nothing was stored, the failed handshakes are in the log, and a good
        # peer is served right after
        self.assertEqual(b.endpoint("municipality")["queued"], 0)
        wait_for(lambda: b.log_lines(r"event=zmq-handshake-failed reason=protocol"), timeout=5,
                 what="failed handshakes logged")
        self.send(b, files, expect=0)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, timeout=10,
                 what="the good peer's message")
        self.assertIsNone(b.proc.poll())

    def test_spoofed_sender_and_borrowed_routing_id_are_refused(self):
        b = self.zbroker(keys={"hospital": self.hosp_pub, "municipality": self.muni_pub}).start()
        # the hospital's key, a sender GLN that is the municipality's
        spoof = self.msgs(1, "S", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)
        files = self.write_msgs(os.path.join(self.tmp, "s"), spoof)
        r = self.send(b, files, expect=EX_DATAERR)
        self.assertIn("forbidden", r.stderr)
        wait_for(lambda: b.log_lines(r"event=sender-refused source=hospital sender=%s .*"
                                     r"security=spoofing" % MUNICIPALITY_GLN),
                 timeout=5, what="the spoofing logged")
        # the municipality's key on a connection whose routing id says "hospital":
        # it is the municipality speaking, so a hospital sender is refused
        hosp_msg = self.msgs(1, "R")[0]
        p = self.raw(b, self.muni_key, routing_id=b"hospital")
        p.send("submit", "r1", hosp_msg)
        ans = p.recv(5)
        self.assertIsNotNone(ans, "no answer")
        self.assertEqual(ans[:4], [b"rejected", b"r1", b"0", b"forbidden"], ans)
        # and the hospital's own connection still works
        q = self.raw(b, self.hosp_key)
        q.send("submit", "r2", hosp_msg)
        ans = q.recv(5)
        self.assertEqual(ans[:2], [b"accepted", b"r2"], ans)
        self.assertEqual(len(listdir_final(b.outbox("hospital"))), 0)

    def test_a_dead_letter_submitted_again_gets_its_answer_again_and_is_kept_once(self):
        b = self.zbroker().start()
        dead = self.msgs(1, "D", receiver="5790000143061")[0]  # no endpoint has it
        p = self.raw(b, self.hosp_key)
        answers = []
        for ref in ("d1", "d2"):  # the first answer was lost: the same body, a new REF
            p.send("submit", ref, dead)
            ans = p.recv(5)
            self.assertEqual(ans[:4], [b"rejected", ref.encode(), b"0", b"dead-letter"], ans)
            answers.append(ans[4])
        self.assertEqual(answers[1], answers[0], "the first copy's id and reason")
        listed = b.ctl("dead")["messages"]
        self.assertEqual(len(listed), 1, "one dead letter, not two: %r" % listed)
        self.assertIn(b"kept as dead letter %d:" % listed[0]["id"], answers[0])

    def test_protocol_errors_are_answered_and_the_connection_lives(self):
        b = self.zbroker().start()
        p = self.raw(b, self.hosp_key)
        p.send("hello")
        self.assertEqual(p.recv(5)[:2], [b"error", b"protocol"])
        p.send("submit", "has space", b"x")
        self.assertEqual(p.recv(5)[:2], [b"error", b"protocol"])
        p.send("submit", "7", b"x", b"y")
        self.assertEqual(p.recv(5)[:4], [b"rejected", b"7", b"0", b"protocol"])
        p.send("accepted", "1", "2")
        self.assertEqual(p.recv(5)[:2], [b"error", b"protocol"])
        p.send("submit", "8", b"not a medcom message")
        ans = p.recv(5)
        self.assertEqual(ans[:4], [b"rejected", b"8", b"0", b"invalid"], ans)
        p.send("heartbeat")
        self.assertEqual(p.recv(5), [b"heartbeat", b"idle"])
        self.assertTrue(b.log_lines(r"event=zmq-protocol-error endpoint=hospital"))

    def test_a_key_removed_by_a_reload_is_refused_at_once(self):
        b = self.zbroker(zmq_eps={"hospital"},
                         keys={"hospital": self.hosp_pub, "municipality": self.muni_pub}).start()
        p = self.raw(b, self.hosp_key)
        p.send("ready", "8")
        self.assertEqual(p.recv(5), [b"heartbeat", b"receiving"])
        m = self.msgs(2, "K")
        p.send("submit", "k1", m[0])
        self.assertEqual(p.recv(5)[:2], [b"accepted", b"k1"])
        # the hospital's key goes (another one takes its place), by SIGHUP
        other = os.path.join(self.tmp, "new.secret")
        b.keys["hospital"] = keygen(other)
        b.write_config()
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.log_lines(r"event=zmq-key-removed endpoint=hospital"), timeout=5,
                 what="the reload")
        # the connection that was open: its very next message is refused
        p.send("submit", "k2", m[1])
        ans = p.recv(5)
        self.assertEqual(ans[:2], [b"error", b"unauthorized"], ans)
        time.sleep(0.3)
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 1, "k2 was stored")
        # nothing is delivered to it any more, though it said ready
        drop(b.inbox("municipality"), "back.xml",
             self.msgs(1, "B", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)[0])
        self.assertIsNone(p.recv_until(lambda f: f[0] == b"deliver", 1.5))
        # the new key works, a new connection with the old one is refused at the handshake
        self.send(b, [self.write_msgs(os.path.join(self.tmp, "n"), [m[1]])[0]], key=other,
                  expect=0)
        r = self.send(b, [os.path.join(self.tmp, "n", "m0000.xml")], expect=EX_UNAVAILABLE)
        self.assertIn("refused", r.stderr)

    def test_a_full_queue_is_busy_and_retryable(self):
        # the hospital's deliveries go nowhere (no receiver): its queue fills
        b = self.zbroker(zmq_eps={"hospital"},
                         keys={"hospital": self.hosp_pub, "municipality": self.muni_pub},
                         delivery={"retry_initial": "30s", "retry_max": "60s",
                                   "max_queued_bytes": "1M"}).start()
        pad = b"<!--" + b"x" * 100 * 1024 + b"-->"
        msgs = [m.replace(b"<Envelope>", pad + b"<Envelope>", 1)
                for m in self.msgs(14, "Q", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)]
        files = self.write_msgs(os.path.join(self.tmp, "q"), msgs)
        # pipelined: the mark counts what is still committing as well
        r = self.send(b, files, key=self.muni_key, expect=EX_TEMPFAIL)
        self.assertRegex(r.stderr, r"refused: busy \(retryable\): the queue of hospital is full")
        accepted = len(re.findall(r": accepted \d+$", r.stdout, re.M))
        self.assertGreater(accepted, 5)
        self.assertLess(accepted, 14)
        # another endpoint's traffic flows meanwhile
        self.send(b, self.write_msgs(os.path.join(self.tmp, "o"), self.msgs(2, "O")), expect=0)
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 2, timeout=10,
                 what="the other endpoint's messages")


class Crash(ZmqTest):

    def test_kill9_mid_stream_loses_nothing(self):
        b = self.zbroker(zmq_eps={"hospital"},
                         keys={"hospital": self.hosp_pub, "municipality": self.muni_pub})
        b.start()
        n = 300
        # the municipality sends to the hospital over ZeroMQ, the hospital receives
        sent = self.msgs(n, "C", receiver=HOSPITAL_GLN, sender=MUNICIPALITY_GLN)
        files = self.write_msgs(os.path.join(self.tmp, "c"), sent)
        into = os.path.join(self.tmp, "hospital-in")
        self.receiver(b, into, window=16)
        sender = subprocess.Popen([PEER, "send", "-v", "--zmq", b.address, "--broker-key",
                                   b.public, "--key", self.muni_key, "--window", "8",
                                   "--timeout", "30s"] + files,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(sender)
        wait_for(lambda: len(b.log_lines(r"event=delivered ")) >= 60, timeout=30,
                 what="the stream under way")
        b.kill9()
        time.sleep(0.5)
        b.start()
        out, err = sender.communicate(timeout=60)
        self.assertEqual(sender.returncode, 0, "the sender did not get through: " + err[-2000:])
        self.assertEqual(len(re.findall(r": accepted \d+$", out, re.M)), n)
        wait_for(lambda: len(listdir_final(into)) >= n, timeout=60, interval=0.2,
                 what="every message received")
        by_letter = {}
        for name in listdir_final(into):
            with open(os.path.join(into, name), "rb") as f:
                data = f.read()
            by_letter.setdefault(letter_of(data), []).append(data)
        self.assertEqual(sorted(by_letter), sorted(letter_of(m) for m in sent), "lost or extra")
        for m in sent:
            for got in by_letter[letter_of(m)]:
                self.assertEqual(got, m, "not byte-identical")
        self.assertEqual(len(listdir_final(into)), n, "a duplicate under a new name")
        self.assertEqual(glob.glob(os.path.join(into, ".*")), [])


class Isolation(ZmqTest):

    def test_a_peer_that_never_confirms_costs_only_its_endpoint(self):
        eps = {"hospital": ("hospital", [HOSPITAL_GLN, "5790002515200"]),
               "municipality": ("municipality", [MUNICIPALITY_GLN, "5790002508226"]),
               "other": ("hospital", ["5790000000029"])}
        b = self.zbroker(endpoints=eps, zmq_eps={"hospital"},
                         keys={"hospital": self.hosp_pub, "municipality": self.muni_pub},
                         broker_extra="zmq_window = 4\n",
                         endpoint_extra={"hospital": "delivery_timeout = 1s"},
                         delivery={"retry_initial": "200ms", "retry_max": "500ms"}).start()
        silent = self.raw(b, self.hosp_key)
        silent.send("ready", "64")
        self.assertEqual(silent.recv(5), [b"heartbeat", b"receiving"])
        for i, m in enumerate(self.msgs(20, "N", receiver=HOSPITAL_GLN,
                                        sender=MUNICIPALITY_GLN)):
            drop(b.inbox("municipality"), "n%02d.xml" % i, m)
        got = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            f = silent.recv(0.2)
            if f and f[0] == b"deliver":
                got.append(f)
            elif f is None and got:
                silent.send("heartbeat")  # alive, but it never confirms
        self.assertEqual([f[1] for f in got[:4]], sorted(f[1] for f in got[:4]), "order")
        self.assertEqual(len({f[1] for f in got}), 4, "more than the window went out")
        wait_for(lambda: b.log_lines(r"event=delivery-overdue endpoint=hospital"), timeout=5,
                 what="the deadline")
        # meanwhile another endpoint's messages flow at full speed, status answers at once
        t0 = time.monotonic()
        others = self.msgs(50, "T", receiver="5790000000029")
        self.send(b, self.write_msgs(os.path.join(self.tmp, "t"), others), expect=0)
        wait_for(lambda: len(listdir_final(b.outbox("other"))) == 50, timeout=10,
                 what="the other endpoint's 50")
        self.assertLess(time.monotonic() - t0, 10)
        for _ in range(3):
            t1 = time.monotonic()
            b.status()
            self.assertLess(time.monotonic() - t1, 1.0, "status was slow")
        self.assertEqual(b.endpoint("hospital")["queued"], 20, "nothing was confirmed")
        # the silent peer confirms at last: what it had counts, the rest follows
        for f in got[:4]:
            silent.send("delivered", f[1])
        more = silent.recv_until(lambda f: f[0] == b"deliver" and f[1] not in
                                 {g[1] for g in got}, 5)
        self.assertIsNotNone(more, "the queue did not move on")


class FailClosed(ZmqTest):

    def test_no_zap_handler_no_start(self):
        shim = os.path.join(self.tmp, "zapless.c")
        with open(shim, "w") as f:
            f.write("#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <errno.h>\n"
                    "#include <string.h>\n"
                    "int zmq_bind(void *s, const char *a) {\n"
                    "  static int (*real)(void *, const char *);\n"
                    "  if (!real) real = dlsym(RTLD_NEXT, \"zmq_bind\");\n"
                    "  if (strcmp(a, \"inproc://zeromq.zap.01\") == 0) {"
                    " errno = EADDRINUSE; return -1; }\n"
                    "  return real(s, a);\n}\n")
        so = os.path.join(self.tmp, "zapless.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", so, shim, "-ldl"], check=True)
        b = self.zbroker()
        # (under ASan the shim comes before its runtime: allowed for this run)
        asan = os.environ.get("ASAN_OPTIONS", "")
        b.start(wait_ready=False, env={"LD_PRELOAD": so, "ASAN_OPTIONS":
                                       asan + (":" if asan else "") + "verify_asan_link_order=0"})
        self.assertNotEqual(b.proc.wait(10), 0)
        self.assertTrue(b.log_lines(r"event=start-failed .*ZAP handler"), b.log())
        self.assertFalse(b.notify.has("READY=1"))

    def test_a_secret_key_others_can_read_stops_the_start(self):
        b = self.zbroker()
        os.chmod(b.secret, 0o644)
        b.start(wait_ready=False)
        self.assertEqual(b.proc.wait(10), 78)
        self.assertTrue(b.log_lines(r"zmq_secret_key: .* is open to others"), b.log())


if __name__ == "__main__":
    import unittest
    unittest.main()
