"""peer.py - what the test peers (mail_sink.py, webhook_sink.py) share.

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
