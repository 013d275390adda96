"""ZeroMQ peers for the integration tests and the benchmark: a broker with
the ZeroMQ listener on (ZmqBroker), CURVE keys made by edibroker-peer keygen,
and a raw pyzmq DEALER for what the tool never does (RawPeer).
"""

import os
import re
import subprocess
import time

import zmq

from harness import BIN, Broker, free_port  # noqa: F401  (re-exported)

PEER = os.path.join(BIN, "edibroker-peer")


def keygen(path):
    r = subprocess.run([PEER, "keygen", path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def secret_of(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")][0]


class ZmqBroker(Broker):
    """A broker with the ZeroMQ listener on; endpoints in zmq_eps deliver over
    it, and every endpoint in keys has a zmq_public_key."""

    def __init__(self, root, zmq_eps=(), keys=None, broker_extra="", heartbeat_timeout="2s",
                 **kw):
        self.port = free_port()
        self.address = "tcp://127.0.0.1:%d" % self.port
        os.makedirs(root, exist_ok=True)
        self.secret = os.path.join(root, "broker.secret")
        if not os.path.exists(self.secret):
            keygen(self.secret)
        self.public = zmq.curve_public(secret_of(self.secret).encode()).decode()
        self.zmq_eps = set(zmq_eps)
        self.keys = dict(keys or {})
        self.broker_extra = broker_extra
        self.heartbeat_timeout = heartbeat_timeout
        super().__init__(root, **kw)

    def config_text(self):
        text = super().config_text()
        text = text.replace("log_level = debug\n", "log_level = debug\nzmq_listen = %s\n"
                            "zmq_secret_key = %s\nzmq_heartbeat_timeout = %s\n%s"
                            % (self.address, self.secret, self.heartbeat_timeout,
                               self.broker_extra), 1)
        for name in self.endpoints:
            head = "[endpoint %s]\n" % name
            start = text.index(head)
            end = text.find("\n[", start + 1)
            end = len(text) if end < 0 else end + 1
            section = text[start:end]
            if name in self.zmq_eps:
                section = section.replace("transport = spool", "transport = zmq")
                section = re.sub(r"(?m)^(inbox|outbox|create_dirs) = .*\n", "", section)
            if name in self.keys:
                section = section.replace(head, head + "zmq_public_key = %s\n" % self.keys[name])
            text = text[:start] + section + text[end:]
        return text


class RawPeer:
    """A pyzmq DEALER with CURVE (or without, when secret is None)."""

    def __init__(self, address, server_public, secret=None, routing_id=None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if routing_id:
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        if secret:
            self.sock.curve_serverkey = server_public.encode()
            self.sock.curve_secretkey = secret.encode()
            self.sock.curve_publickey = zmq.curve_public(secret.encode())
        self.sock.connect(address)

    def send(self, *frames):
        self.sock.send_multipart([f if isinstance(f, bytes) else f.encode() for f in frames])

    def recv(self, timeout=5.0):
        if self.sock.poll(int(timeout * 1000)):
            return self.sock.recv_multipart()
        return None

    def recv_until(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m and pred(m):
                return m
        return None

    def close(self):
        self.sock.close()
        self.ctx.term()
