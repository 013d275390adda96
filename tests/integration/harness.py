"""Test harness for edibrokerd integration scenarios.

Runs the real daemon binary on a private temporary directory with real
spool folders and a real SQLite store, speaks the real control socket
through bin/edibrokerctl, and plays systemd's part with a fake
NOTIFY_SOCKET that records every sd_notify datagram.

Every wait is bounded; every process started here is stopped by PID.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The SMTP and webhook peers, shared with the unit tests (tests/peers/).
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
from mail_sink import MailSink  # noqa: E402  (re-exported for the scenarios)
from webhook_sink import WebhookSink  # noqa: E402
BIN = os.path.join(ROOT, "bin")
SAMPLES = os.environ.get("EDIBROKER_SAMPLES_ROOT",
                         os.path.join(ROOT, "..", "shared", "medcom-samples"))
OIOXML = os.path.join(SAMPLES, "oioxml")

HOSPITAL_GLN = "5790000143054"      # sender of DIS20_1.xml
MUNICIPALITY_GLN = "5790000143055"  # receiver of DIS20_1.xml


def sample(name):
    with open(os.path.join(OIOXML, name), "rb") as f:
        return f.read()


def with_ids(data, envelope_id, letter_id, receiver=None, sender=None):
    """Returns an OIOXML sample with new envelope/letter ids (and GLNs)."""
    data = _put(data, rb"(<Envelope>.*?<Identifier>)[^<]*(</Identifier>)", envelope_id)
    data = _put(data, rb"(<(?:\w+:)?Letter>\s*<(?:\w+:)?Identifier>)[^<]*(</)", letter_id)
    if receiver is not None:
        data = _put(data, rb"(<Receiver>\s*<EANIdentifier>)[^<]*(</EANIdentifier>)", receiver)
    if sender is not None:
        data = _put(data, rb"(<Sender>\s*<EANIdentifier>)[^<]*(</EANIdentifier>)", sender)
    return data


def _put(data, pattern, value):
    """Puts value between the two groups of pattern's first match."""
    return re.sub(pattern, lambda m: m.group(1) + value.encode() + m.group(2),
                  data, count=1, flags=re.S)


# A sanitizer build runs several times slower: `make check SANITIZE=...` sets
# this so that every wait stretches with it. The plain build (`make check`,
# CI) keeps the bounds as written, which are the ones the issues promise.
TIMEOUT_SCALE = float(os.environ.get("EDIBROKER_TEST_TIMEOUT_SCALE", "1"))


def wait_for(cond, timeout=10.0, interval=0.02, what="condition", scaled=True):
    """Polls cond() until it returns a true value; fails after timeout."""
    if scaled:
        timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def drop(inbox, name, data):
    """Writes a file the way EDI clients do: temporary name, then rename."""
    tmp = os.path.join(inbox, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(inbox, name))


def free_port():
    """A loopback TCP port nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listdir_final(d):
    """Complete files in a folder (not starting with '.')."""
    try:
        return sorted(n for n in os.listdir(d) if not n.startswith("."))
    except FileNotFoundError:
        return []


class NotifySocket:
    """A fake systemd notify socket recording (monotonic time, message)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            now = time.monotonic()
            with self.lock:
                for line in data.decode(errors="replace").split("\n"):
                    if line:
                        self.messages.append((now, line))

    def all(self):
        with self.lock:
            return list(self.messages)

    def has(self, msg):
        return any(m == msg for _, m in self.all())

    def count(self, msg):
        return sum(1 for _, m in self.all() if m == msg)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


class Broker:
    """One edibrokerd process on a private state dir and spool tree."""

    def __init__(self, root, endpoints=None, extra="", delivery=None, notify=True,
                 env=None, state_dir=None, endpoint_extra=None, popen_kw=None):
        self.root = root
        self.state = state_dir or os.path.join(root, "state")
        self.spool = os.path.join(root, "spool")
        self.conf = os.path.join(root, "edibroker.conf")
        self.sock = os.path.join(self.state, "control.sock")
        self.log_path = os.path.join(root, "edibrokerd.log")
        self.endpoints = endpoints or {
            "hospital": ("hospital", [HOSPITAL_GLN, "5790002515200"]),
            "municipality": ("municipality", [MUNICIPALITY_GLN, "5790002508226"]),
        }
        self.delivery = delivery or {"retry_initial": "200ms", "retry_max": "1s"}
        self.extra = extra
        self.endpoint_extra = endpoint_extra or {}
        self.env_extra = env or {}
        # e.g. user=, group=, extra_groups= to run the daemon as another user
        self.popen_kw = popen_kw or {}
        self.proc = None
        self.notify = NotifySocket(os.path.join(root, "notify.sock")) if notify else None
        self.write_config()

    def inbox(self, ep):
        return os.path.join(self.spool, ep, "in")

    def outbox(self, ep):
        return os.path.join(self.spool, ep, "out")

    def quarantine(self, ep):
        return os.path.join(self.state, "quarantine", ep)

    def config_text(self):
        lines = ["[broker]", "state_dir = %s" % self.state, "log_level = debug", "",
                 "[delivery]"]
        lines += ["%s = %s" % kv for kv in self.delivery.items()]
        lines += ["", "[spool]", "rescan_interval = 1s", ""]
        for name, (kind, glns) in self.endpoints.items():
            lines += ["[endpoint %s]" % name, "kind = %s" % kind, "transport = spool",
                      "gln = %s" % ", ".join(glns),
                      "inbox = %s" % self.inbox(name), "outbox = %s" % self.outbox(name),
                      "create_dirs = yes", "contact = test contact"]
            lines += [self.endpoint_extra.get(name, ""), ""]
        return "\n".join(lines) + "\n" + self.extra

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    def start(self, wait_ready=True, extra_args=(), env=None):
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        if self.notify:
            e["NOTIFY_SOCKET"] = self.notify.path
        e.update(self.env_extra)
        if env:
            e.update(env)
        self.logf = open(self.log_path, "ab")
        self.ready_before = self.notify.count("READY=1") if self.notify else 0
        self.proc = subprocess.Popen([os.path.join(BIN, "edibrokerd"), "-c", self.conf]
                                     + list(extra_args), stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=e, **self.popen_kw)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        if self.notify:
            wait_for(lambda: self.notify.count("READY=1") > self.ready_before
                     or self.proc.poll() is not None, timeout, what="READY=1")
            if self.proc.poll() is not None:
                raise AssertionError("edibrokerd exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()))
        else:
            wait_for(lambda: os.path.exists(self.sock), timeout, what="control socket")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, pattern):
        return [l for l in self.log().splitlines() if re.search(pattern, l)]

    def ctl(self, *args, check=True):
        r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "-s", self.sock, "--json"]
                           + list(args), capture_output=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError("edibrokerctl %s failed (%d): %s %s"
                                 % (args, r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def ctl_text(self, *args):
        r = subprocess.run([os.path.join(BIN, "edibrokerctl"), "-s", self.sock] + list(args),
                           capture_output=True, timeout=20, text=True)
        return r.returncode, r.stdout, r.stderr

    def status(self):
        return self.ctl("status")

    def endpoint(self, name):
        for ep in self.status()["endpoints"]:
            if ep["name"] == name:
                return ep
        raise AssertionError("no endpoint %s in status" % name)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.logf.close()

    def stop(self, timeout=20):
        """SIGTERM; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise AssertionError("edibrokerd did not stop within %ss" % timeout)
        self.logf.close()
        return rc

    def close(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc:
            self.logf.close()
        if self.notify:
            self.notify.close()


class BrokerTest(unittest.TestCase):
    """Base class: a temp dir per test, brokers stopped afterwards."""

    keep = os.environ.get("EDIBROKER_KEEP_TMP")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="edibroker-it-")
        self.brokers = []

    def tearDown(self):
        for b in self.brokers:
            b.close()
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = result is not None and any(
            t is self for t, _ in result.failures + result.errors)
        if failed or self.keep:
            for b in self.brokers:
                print("\n--- edibrokerd log (%s) ---\n%s" % (b.root, b.log()[-6000:]))
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def broker(self, **kw):
        b = Broker(self.tmp, **kw)
        self.brokers.append(b)
        return b


class NoticeTest(BrokerTest):
    """A broker test with an SMTP server and a webhook receiver on loopback."""

    def setUp(self):
        super().setUp()
        self.mail = MailSink()
        self.hook = WebhookSink()

    def tearDown(self):
        super().tearDown()
        self.mail.close()
        self.hook.close()
