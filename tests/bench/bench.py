#!/usr/bin/python3
"""End-to-end benchmark for edibrokerd: spool in -> spool out (`make bench`).

Scenarios, each on a fresh state directory under one temporary folder on the
same disk as the repository:

  burst-N      the minimal relay (tests/bench/minrelay.c) moves N pre-staged
               files - the file work no spool relay can avoid - and, in
               interleaved runs, edibroker does the same: N pre-staged files in
               the hospital inbox, then the daemon starts. Accepted msg/s (inbox
               emptied), delivered msg/s (all in the outbox), the ratio of the
               medians to the relay's, peak RSS.
  paced-N      N messages dropped at a steady rate (half the burst rate):
               p50/p99 latency from drop to delivery, peak RSS.
  backlog-N    the outbox is away while N messages are accepted (RSS with N
               queued), then it returns: drain msg/s of the backlog; twice on one
               store, with the database size after each round's pruning.

And the store backends side by side (issue 15), spool to spool:

  store-N      burst-N with the SQLite store and with the PostgreSQL store
               (a server of the bench's own on this machine, tests/integration/
               pgserver.py: fsync and synchronous_commit on, a fresh database
               per run, its schema made before the clock starts), interleaved:
               accepted and delivered msg/s, and the
               ratio of the medians PostgreSQL / SQLite. Target >= 0.7.

And over the ZeroMQ peer link (issue 9), with 5 KB messages (a DIS20 padded
by a comment) sent and received by tests/bench/zmqbench.c, which speaks the
daemon's own framing over CURVE and confirms deliveries without touching a
disk, so the broker's work is what is measured:

  zmq-link-N   the link alone: a sender, a stand-in broker that answers
               "accepted" at once and forwards each message, and a receiver,
               in one process; no store. Interleaved with:
  zmq-e2e-N    N messages submitted over ZeroMQ (512 unanswered at most),
               each committed (synchronous=FULL) before its "accepted",
               delivered over ZeroMQ and confirmed: accepted msg/s and end to
               end msg/s (first submission to last confirmation), peak RSS.
  zmq-paced-N  N messages at 1,000 msg/s: submit-to-accepted latency p50/p99.
  zmq-backlog-N  no receiver while N messages are accepted (RSS with N
               queued), then one connects: drain msg/s, peak RSS.

Targets (issue 9, this 2-core machine): end to end >= 5,000 msg/s, accept p99
< 10 ms at 1,000 msg/s, a 100k backlog drained at >= 5,000 msg/s with RSS
< 64 MB.

Messages are built from the MedCom samples with unique envelope and letter
ids. Run with --quick for 1k/10k instead of 10k/100k (ZeroMQ: 10k, and 3k
paced); --only spool, --only zmq or --only store runs one part.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Broker, listdir_final, sample, with_ids, wait_for  # noqa
from zmqpeer import ZmqBroker, keygen  # noqa
from pgserver import PgServer  # noqa

SAMPLES = ["DIS20_1.xml", "DIS17_1.xml", "XDIS20_regionh_NotificationOfAdmission.xml",
           "XDIS17_regionh_NotificationOfDischarge.xml",
           "XDIS18_regionh_ReportOfDischarge_municipality-1.0.3.xml", "DIS91_1.xml"]
GLNS = {
    "hospital": ("hospital", ["5790000143054", "5790002515200"]),
    "municipality": ("municipality", ["5790000143055", "5790002508226"]),
}
LETTER = re.compile(rb"<(?:\w+:)?Identifier>(B\d{7})</")


def messages(n):
    bases = [sample(s) for s in SAMPLES]
    # DIS91_1 is addressed to GLNs outside the demo pair: send it to the municipality.
    bases[-1] = re.sub(rb"(<Receiver>\s*<EANIdentifier>)[^<]*", rb"\g<1>5790000143055", bases[-1])
    bases[-1] = re.sub(rb"(<Sender>\s*<EANIdentifier>)[^<]*", rb"\g<1>5790000143054", bases[-1])
    return [with_ids(bases[i % len(bases)], "A%07d" % i, "B%07d" % i) for i in range(n)]


def stage(folder, msgs, prefix="m"):
    os.makedirs(folder, exist_ok=True)
    for i, data in enumerate(msgs):
        with open(os.path.join(folder, "%s%07d.xml" % (prefix, i)), "wb") as f:
            f.write(data)


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def count_dir(path):
    n = 0
    with os.scandir(path) as it:
        for e in it:
            if not e.name.startswith("."):
                n += 1
    return n


def new_broker(work, name, retention="10s", store=""):
    root = os.path.join(work, name)
    os.makedirs(root)
    b = Broker(root, endpoints=GLNS,
               delivery={"retry_initial": "200ms", "retry_max": "1s"},
               extra="[store]\nretention = %s\nhistory = 1m\n%s" % (retention, store))
    # info is the production log level: one line per accepted and delivered message
    b.write_config(b.config_text().replace("log_level = debug", "log_level = info"))
    return b


def relay(work, msgs):
    root = tempfile.mkdtemp(dir=work, prefix="relay-")
    inbox, outbox = os.path.join(root, "in"), os.path.join(root, "out")
    stage(inbox, msgs)
    os.makedirs(outbox)
    os.sync()
    r = subprocess.run([os.path.join(ROOT, "build", "bench", "minrelay"), inbox, outbox,
                        os.path.join(root, "journal"), str(len(msgs))],
                       capture_output=True, text=True, check=True)
    secs = float(r.stdout)
    assert count_dir(outbox) == len(msgs)
    shutil.rmtree(root)
    return len(msgs) / secs


def burst(work, msgs, store="", tag="", warm=False):
    n = len(msgs)
    b = new_broker(work, "burst%s-%d" % (tag, n), store=store)
    if warm:  # the store made (a server's schema) before the clock starts
        b.start()
        assert b.stop() == 0
    stage(b.inbox("hospital"), msgs)
    os.makedirs(b.outbox("municipality"), exist_ok=True)
    os.sync()
    t0 = time.monotonic()
    b.start(wait_ready=False)
    accepted_at = delivered_at = None
    deadline = t0 + 600
    while time.monotonic() < deadline:
        if accepted_at is None and count_dir(b.inbox("hospital")) == 0:
            accepted_at = time.monotonic()
        if delivered_at is None and count_dir(b.outbox("municipality")) >= n:
            delivered_at = time.monotonic()
        # Inbox files are unlinked on a lane after their commit, so the last
        # delivery can land before the last unlink: wait for both.
        if accepted_at is not None and delivered_at is not None:
            break
        time.sleep(0.05)
    assert delivered_at and accepted_at, "burst: not all accepted and delivered"
    rss = peak_rss_mb(b.proc.pid)
    assert b.stop() == 0
    b.close()
    out = {"accepted_per_s": n / (accepted_at - t0), "delivered_per_s": n / (delivered_at - t0),
           "peak_rss_mb": rss}
    shutil.rmtree(b.root)
    return out


def latencies(outbox, dropped):
    lat = []
    for name in listdir_final(outbox):
        p = os.path.join(outbox, name)
        st = os.stat(p)
        with open(p, "rb") as f:
            lid = LETTER.search(f.read()).group(1)
        lat.append(st.st_ctime - dropped[lid])
    lat.sort()
    return lat


def pct(sorted_vals, q):
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def paced(work, msgs, rate):
    n = len(msgs)
    b = new_broker(work, "paced-%d" % n)
    staging = os.path.join(b.root, "staging")
    stage(staging, msgs)
    b.start()
    inbox = b.inbox("hospital")
    dropped = {}
    t0 = time.monotonic()
    for i, data in enumerate(msgs):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        lid = LETTER.search(data).group(1)
        name = "m%07d.xml" % i
        dropped[lid] = time.time()
        os.rename(os.path.join(staging, name), os.path.join(inbox, name))
    wait_for(lambda: count_dir(b.outbox("municipality")) >= n, timeout=600, interval=0.1,
             what="paced delivery")
    rss = peak_rss_mb(b.proc.pid)
    assert b.stop() == 0
    b.close()
    lat = latencies(b.outbox("municipality"), dropped)
    shutil.rmtree(b.root)
    return {"rate": rate, "p50_ms": pct(lat, 0.50) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
            "max_ms": lat[-1] * 1000, "peak_rss_mb": rss}


def db_bytes(state):
    return sum(os.path.getsize(os.path.join(state, f)) for f in os.listdir(state)
               if f.startswith("edibroker.db"))


def backlog_round(b, msgs, tag):
    """Outbox away, msgs accepted, outbox back: returns (rss queued, drain/s)."""
    n = len(msgs)
    out = b.outbox("municipality")
    os.rename(out, out + ".away")
    before = b.endpoint("municipality")["delivered"]
    stage(b.inbox("hospital") + ".stage", msgs, prefix=tag)
    # swap the staged folder in as the inbox: the watch sees the move and rescans
    os.rename(b.inbox("hospital"), b.inbox("hospital") + ".old")
    os.rename(b.inbox("hospital") + ".stage", b.inbox("hospital"))
    shutil.rmtree(b.inbox("hospital") + ".old")
    wait_for(lambda: b.endpoint("municipality")["queued"] == n, timeout=900, interval=0.5,
             what="backlog accepted")
    rss = peak_rss_mb(b.proc.pid)
    os.rename(out + ".away", out)
    t0 = time.monotonic()
    wait_for(lambda: b.endpoint("municipality")["delivered"] - before >= n, timeout=900,
             interval=0.05, what="backlog drained")
    return rss, n / (time.monotonic() - t0)


def backlog(work, msgs):
    """Two backlogs of len(msgs) on one store: RSS with the backlog queued,
    drain rate, and the database size after each round's pruning (bounded:
    the second round reuses the pages the first one freed)."""
    n = len(msgs)
    b = new_broker(work, "backlog-%d" % n, retention="1s")
    b.start()
    rss_queued, drain = backlog_round(b, msgs, "a")
    db_queued = db_bytes(b.state)
    time.sleep(12)  # pruning runs every 10 s for bodies older than retention (1 s)
    db_first = db_bytes(b.state)
    second = [with_ids(m, "C%07d" % i, "D%07d" % i) for i, m in enumerate(msgs)]
    rss2, drain2 = backlog_round(b, second, "b")
    time.sleep(12)
    db_second = db_bytes(b.state)
    rss = peak_rss_mb(b.proc.pid)
    assert b.stop() == 0
    b.close()
    shutil.rmtree(b.root)
    return {"queued": n, "peak_rss_mb_queued": max(rss_queued, rss2), "peak_rss_mb": rss,
            "drain_per_s": median([drain, drain2]), "db_mb_queued": db_queued / 1e6,
            "db_mb_pruned": db_first / 1e6, "db_mb_second_round": db_second / 1e6}


def median(vals):
    v = sorted(vals)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def compare(work, msgs, pairs):
    """Interleaves minimal-relay and edibroker runs on the same disk state.

    Each run deletes its files afterwards, and ext4 (mounted with discard
    here) is much slower right after mass deletes: a relay run on a fresh
    disk can be twice as fast as the same run a minute later. Interleaving
    and taking medians compares like with like.
    """
    relays, bursts = [], []
    for _ in range(pairs):
        relays.append(relay(work, msgs))
        bursts.append(burst(work, msgs))
    r = median(relays)
    out = {key: median([b[key] for b in bursts])
           for key in ("accepted_per_s", "delivered_per_s")}
    out["peak_rss_mb"] = max(b["peak_rss_mb"] for b in bursts)
    out["relay_per_s"] = r
    out["relay_runs"] = relays
    out["delivered_runs"] = [b["delivered_per_s"] for b in bursts]
    out["ratio_to_relay"] = out["delivered_per_s"] / r
    return out


def store_compare(work, msgs, pairs):
    """burst() with SQLite and with PostgreSQL, interleaved (see compare())."""
    os.chmod(work, 0o711)  # the server runs as nobody when we are root: it passes through
    pg = PgServer(tempfile.mkdtemp(dir=work, prefix="pg-"))
    try:
        lite, post = [], []
        for i in range(pairs):
            lite.append(burst(work, msgs, warm=True))
            db = "bench_%d_%d" % (len(msgs), i)
            pg.sql("CREATE DATABASE %s" % db)
            url = pg.url.rsplit("/", 1)[0] + "/" + db
            post.append(burst(work, msgs, tag="-pg", warm=True,
                              store="backend = postgresql\nurl = %s\nnode = bench\n" % url))
            pg.sql("DROP DATABASE %s" % db)
    finally:
        pg.close()
    out = {}
    for name, runs in (("sqlite", lite), ("postgresql", post)):
        for key in ("accepted_per_s", "delivered_per_s"):
            out["%s_%s" % (name, key)] = median([r[key] for r in runs])
        out["%s_peak_rss_mb" % name] = max(r["peak_rss_mb"] for r in runs)
        out["%s_delivered_runs" % name] = [r["delivered_per_s"] for r in runs]
    out["ratio"] = out["postgresql_delivered_per_s"] / out["sqlite_delivered_per_s"]
    return out


# ---- the ZeroMQ peer link ---------------------------------------------------

ZMQBENCH = os.path.join(ROOT, "build", "bench", "zmqbench")
ZMQ_SIZE = 5 * 1024


def zmq_template(work):
    """A 5 KB DIS20 whose ids zmqbench fills in (@@ENVELOPE@@, @@LETTER@@)."""
    data = with_ids(sample("DIS20_1.xml"), "@@ENVELOPE@@", "@@LETTER@@")
    pad = b"<!--" + b"x" * (ZMQ_SIZE - len(data) - 7) + b"-->"
    data = data.replace(b"<Envelope>", pad + b"<Envelope>", 1)
    path = os.path.join(work, "template.xml")
    with open(path, "wb") as f:
        f.write(data)
    return path


class ZmqSetup:
    """A broker whose hospital submits over ZeroMQ and whose municipality
    (transport = zmq) receives over it, at the production log level."""

    def __init__(self, work, name, retention="10s"):
        self.root = os.path.join(work, name)
        os.makedirs(self.root)
        self.hosp = os.path.join(self.root, "hospital.secret")
        self.muni = os.path.join(self.root, "municipality.secret")
        keys = {"hospital": keygen(self.hosp), "municipality": keygen(self.muni)}
        self.b = ZmqBroker(self.root, endpoints=GLNS, zmq_eps={"municipality"}, keys=keys,
                           heartbeat_timeout="15s",
                           delivery={"retry_initial": "200ms", "retry_max": "1s"},
                           extra="[store]\nretention = %s\nhistory = 1m\n" % retention)
        self.b.write_config(self.b.config_text().replace("log_level = debug", "log_level = info"))
        self.b.start()

    def sender(self, template, n, window, rate, prefix):
        return subprocess.Popen([ZMQBENCH, "send", self.b.address, self.b.public, self.hosp,
                                 template, str(n), str(window), str(rate), prefix],
                                stdout=subprocess.PIPE, text=True)

    def receiver(self, n, window=128):
        return subprocess.Popen([ZMQBENCH, "receive", self.b.address, self.b.public, self.muni,
                                 str(n), str(window)], stdout=subprocess.PIPE, text=True)

    def close(self):
        assert self.b.stop() == 0
        self.b.close()
        shutil.rmtree(self.root)


def result(proc, timeout=1800):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, "zmqbench failed: %s" % out
    return json.loads(out.strip().splitlines()[-1])


def zmq_link(template, n):
    r = subprocess.run([ZMQBENCH, "link", template, str(n), "256"], capture_output=True,
                       text=True, check=True, timeout=600)
    return json.loads(r.stdout)["per_s"]


def zmq_e2e(work, template, n):
    z = ZmqSetup(work, "zmq-e2e-%d" % n)
    rx = z.receiver(n)
    time.sleep(0.3)  # its ready is in before the first message
    tx = result(z.sender(template, n, 512, 0, "E"))
    got = result(rx)
    rss = peak_rss_mb(z.b.proc.pid)
    z.close()
    return {"accepted_per_s": tx["accepted_per_s"],
            "e2e_per_s": n / (got["last_wall"] - tx["start_wall"]), "peak_rss_mb": rss}


def zmq_paced(work, template, n, rate=1000):
    z = ZmqSetup(work, "zmq-paced-%d" % n)
    rx = z.receiver(n)
    time.sleep(0.3)
    tx = result(z.sender(template, n, 512, rate, "P"))
    result(rx)
    rss = peak_rss_mb(z.b.proc.pid)
    z.close()
    return {"rate": rate, "p50_ms": tx["p50_ms"], "p99_ms": tx["p99_ms"], "max_ms": tx["max_ms"],
            "peak_rss_mb": rss}


def zmq_backlog(work, template, n):
    z = ZmqSetup(work, "zmq-backlog-%d" % n, retention="1s")
    tx = result(z.sender(template, n, 512, 0, "Q"))
    wait_for(lambda: z.b.endpoint("municipality")["queued"] == n, timeout=60, interval=0.2,
             what="the backlog queued")
    rss_queued = peak_rss_mb(z.b.proc.pid)
    t0 = time.time()
    got = result(z.receiver(n))
    drain = n / (got["last_wall"] - t0)
    rss = peak_rss_mb(z.b.proc.pid)
    z.close()
    return {"queued": n, "accepted_per_s": tx["accepted_per_s"], "drain_per_s": drain,
            "peak_rss_mb_queued": rss_queued, "peak_rss_mb": rss}


def zmq_compare(work, template, n, pairs):
    """The bare link and the broker, interleaved, medians (as compare())."""
    links, runs = [], []
    for _ in range(pairs):
        links.append(zmq_link(template, n))
        runs.append(zmq_e2e(work, template, n))
    out = {k: median([r[k] for r in runs]) for k in ("accepted_per_s", "e2e_per_s")}
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["link_per_s"] = median(links)
    out["link_runs"] = links
    out["e2e_runs"] = [r["e2e_per_s"] for r in runs]
    out["ratio_to_link"] = out["e2e_per_s"] / out["link_per_s"]
    return out


def run_zmq(work, quick, pairs, results):
    subprocess.run(["make", "-s", "-C", ROOT, "build/bench/zmqbench"], check=True)
    template = zmq_template(work)
    n = 10000 if quick else 50000
    zc = zmq_compare(work, template, n, pairs)
    results["zmq-e2e-%d" % n] = zc
    print("zmq n=%-5d link alone %6.0f msg/s | edibroker accepted %6.0f msg/s, end to end "
          "%6.0f msg/s = %.2f x link | peak RSS %.1f MB"
          % (n, zc["link_per_s"], zc["accepted_per_s"], zc["e2e_per_s"], zc["ratio_to_link"],
             zc["peak_rss_mb"]), flush=True)
    print("          runs: link %s, end to end %s" % (
        " ".join("%.0f" % v for v in zc["link_runs"]),
        " ".join("%.0f" % v for v in zc["e2e_runs"])), flush=True)
    pn = 3000 if quick else 10000
    paced = [zmq_paced(work, template, pn) for _ in range(pairs)]
    zp = {k: median([p[k] for p in paced]) for k in ("p50_ms", "p99_ms", "max_ms")}
    zp["rate"] = 1000
    zp["p99_runs"] = [p["p99_ms"] for p in paced]
    zp["peak_rss_mb"] = max(p["peak_rss_mb"] for p in paced)
    results["zmq-paced-%d" % pn] = zp
    print("          accepted at 1000 msg/s: p50 %.2f ms, p99 %.2f ms (runs %s), max %.1f ms"
          % (zp["p50_ms"], zp["p99_ms"], " ".join("%.1f" % v for v in zp["p99_runs"]),
             zp["max_ms"]), flush=True)
    bn = 10000 if quick else 100000
    bl = zmq_backlog(work, template, bn)
    results["zmq-backlog-%d" % bn] = bl
    print("zmq backlog %6d: accepted %.0f msg/s, peak RSS %.1f MB while queued (%.1f MB "
          "overall), drained at %.0f msg/s" % (bn, bl["accepted_per_s"], bl["peak_rss_mb_queued"],
                                              bl["peak_rss_mb"], bl["drain_per_s"]), flush=True)
    return (zc["e2e_per_s"] >= 5000 and zp["p99_ms"] < 10 and bl["drain_per_s"] >= 5000
            and max(zc["peak_rss_mb"], bl["peak_rss_mb"]) < 64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1k and 10k instead of 10k and 100k")
    ap.add_argument("--pairs", type=int, default=3, help="relay/edibroker run pairs per size")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--only", choices=("spool", "zmq", "store"), help="run one part")
    args = ap.parse_args()
    sizes = [1000, 10000] if args.quick else [10000, 100000]
    subprocess.run(["make", "-s", "-C", ROOT, "build/bench/minrelay"], check=True)
    work = tempfile.mkdtemp(prefix="edibroker-bench-", dir=os.path.join(ROOT, "build"))
    results = {}
    zmq_ok = True
    store_ratio = None
    try:
        if args.only in (None, "zmq"):
            zmq_ok = run_zmq(work, args.quick, args.pairs, results)
        if args.only in (None, "store"):
            n = sizes[0]
            st = store_compare(work, messages(n), args.pairs)
            results["store-%d" % n] = st
            store_ratio = st["ratio"]
            print("store n=%-7d SQLite accepted %6.0f msg/s, delivered %6.0f msg/s | PostgreSQL "
                  "accepted %6.0f msg/s, delivered %6.0f msg/s = %.2f x SQLite | peak RSS %.1f / "
                  "%.1f MB" % (n, st["sqlite_accepted_per_s"], st["sqlite_delivered_per_s"],
                               st["postgresql_accepted_per_s"], st["postgresql_delivered_per_s"],
                               st["ratio"], st["sqlite_peak_rss_mb"],
                               st["postgresql_peak_rss_mb"]), flush=True)
            print("          runs: SQLite %s, PostgreSQL %s" % (
                " ".join("%.0f" % v for v in st["sqlite_delivered_runs"]),
                " ".join("%.0f" % v for v in st["postgresql_delivered_runs"])), flush=True)
        if args.only in ("zmq", "store"):
            sizes = []
        if sizes:
            relay(work, messages(sizes[0]))  # warm-up: bring the disk to its steady state
        for n in sizes:
            msgs = messages(n)
            bu = compare(work, msgs, args.pairs if n < 100000 else max(1, args.pairs - 1))
            results["burst-%d" % n] = bu
            print("n=%-7d minimal relay %6.0f msg/s | edibroker accepted %6.0f msg/s, "
                  "delivered %6.0f msg/s = %.2f x relay | peak RSS %.1f MB"
                  % (n, bu["relay_per_s"], bu["accepted_per_s"], bu["delivered_per_s"],
                     bu["ratio_to_relay"], bu["peak_rss_mb"]), flush=True)
            print("          runs: relay %s, edibroker %s" % (
                " ".join("%.0f" % v for v in bu["relay_runs"]),
                " ".join("%.0f" % v for v in bu["delivered_runs"])), flush=True)
            pa = paced(work, msgs, max(100, int(bu["delivered_per_s"] / 2)))
            results["paced-%d" % n] = pa
            print("          paced at %d msg/s: latency p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                  " | peak RSS %.1f MB" % (pa["rate"], pa["p50_ms"], pa["p99_ms"],
                                          pa["max_ms"], pa["peak_rss_mb"]), flush=True)
        for n in [1000, sizes[-1]] if sizes else []:
            bl = backlog(work, messages(n))
            results["backlog-%d" % n] = bl
            print("backlog %6d: peak RSS %.1f MB while queued (%.1f MB overall), drain %.0f "
                  "msg/s, db %.1f MB queued, %.1f MB after pruning, %.1f MB after a second "
                  "backlog" % (n, bl["peak_rss_mb_queued"], bl["peak_rss_mb"], bl["drain_per_s"],
                               bl["db_mb_queued"], bl["db_mb_pruned"],
                               bl["db_mb_second_round"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [v["ratio_to_relay"] for k, v in results.items() if k.startswith("burst")]
    ratio = min(ratios) if ratios else 1.0
    rss = max((max(v.get("peak_rss_mb", 0), v.get("peak_rss_mb_queued", 0))
               for k, v in results.items() if not k.startswith("store")), default=0)
    store_ok = store_ratio is None or store_ratio >= 0.7
    print("\nsummary: worst ratio to minimal relay %.2f (target >= 0.70), worst peak RSS "
          "%.1f MB (target < 64), ZeroMQ targets %s, PostgreSQL / SQLite %s (target >= 0.70)"
          % (ratio, rss, "met" if zmq_ok else "MISSED",
             "%.2f" % store_ratio if store_ratio is not None else "not run"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ratio >= 0.7 and rss < 64 and zmq_ok and store_ok else 1


if __name__ == "__main__":
    sys.exit(main())
