"""peer.py - what the test peers (mail_sink.py, webhook_sink.py) share.

make_certs() makes a private CA and a server certificate for 127.0.0.1 and
localhost signed by it (openssl(1)), so a peer can serve TLS that a client
trusts only when told to trust that CA.

Recorder keeps what a peer received: in memory, for a test in the same
process (the integration harness), and optionally as numbered files in a
folder, for a test in another process (tests/unit/test_notify.c). Each file
is written to a temporary name and renamed before the peer answers its
client, so a test may read it as soon as the client's call returns.

run() is the command-line life of a peer run as a subprocess: it prints
"PORT <n>" once the peer accepts connections, and closes the peer when its
stdin reaches end of file (the test ended, however it ended) or after a
lifetime, so it never outlives its test.
"""

import os
import select
import ssl
import subprocess
import sys
import threading
import time


class Recorder:
    """A numbered record of what a peer received (1, 2, ...)."""

    def __init__(self, outdir=None):
        self.outdir = outdir
        self.entries = []
        self.lock = threading.Lock()

    def add(self, entry, files):
        """Keeps entry; with an outdir, also writes files {ext: bytes} as
        <n>.<ext> in their order (a test waits for the last one)."""
        with self.lock:
            n = len(self.entries) + 1
            if self.outdir:
                for ext, data in files.items():
                    self._write("%d.%s" % (n, ext), data)
            self.entries.append(entry)
            return n

    def all(self):
        with self.lock:
            return list(self.entries)

    def _write(self, name, data):
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.outdir, name))


def run(peer, lifetime):
    """Serves until stdin closes or lifetime seconds pass, then closes peer."""
    print("PORT %d" % peer.port, flush=True)
    deadline = time.monotonic() + lifetime
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    peer.close()


def make_certs(folder):
    """A private CA and a server certificate signed by it, in folder:
    ca.pem (what a client is told to trust), server.pem and server.key.
    Returns an ssl.SSLContext that serves with them."""
    os.makedirs(folder, exist_ok=True)
    path = lambda name: os.path.join(folder, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(path("server.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n")
    steps = [
        ["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.pem"),
                                 "-days", "2", "-subj", "/CN=edibroker test CA",
                                 "-addext", "basicConstraints=critical,CA:TRUE",
                                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req"] + ec + ["-keyout", path("server.key"), "-out", path("server.csr"),
                        "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"),
         "-CAkey", path("ca.key"), "-CAcreateserial", "-out", path("server.pem"),
         "-days", "2", "-extfile", path("server.ext")],
    ]
    for step in steps:
        subprocess.run(["openssl"] + step, check=True, capture_output=True, timeout=30)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path("server.pem"), path("server.key"))
    return ctx
