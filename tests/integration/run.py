#!/usr/bin/python3
"""Runs the integration scenarios (tests/integration/test_*.py).

Each scenario file runs in its own python3 process; two run at a time (CI
has two cores). A filter argument runs only the files whose name contains
it: `make integration T=spool`. Exit status is non-zero when any fails.
"""

import glob
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
JOBS = int(os.environ.get("EDIBROKER_IT_JOBS", "2"))
TIMEOUT = int(os.environ.get("EDIBROKER_IT_TIMEOUT", "600"))


def run_one(path):
    name = os.path.basename(path)[:-3]
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "unittest", "-v", name], cwd=HERE,
                           capture_output=True, text=True, timeout=TIMEOUT)
        ok, out = r.returncode == 0, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        ok, out = False, "TIMEOUT after %ss\n%s" % (TIMEOUT, e.stdout or "")
    return name, ok, time.monotonic() - t0, out


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    files = sorted(f for f in glob.glob(os.path.join(HERE, "test_*.py"))
                   if pattern in os.path.basename(f))
    if not files:
        print("no integration scenario matches %r" % pattern)
        return 1
    # Longest scenarios first, so two workers finish close together.
    files.sort(key=lambda f: ("crash" not in f, "outage" not in f, f))
    failed = []
    with ThreadPoolExecutor(JOBS) as pool:
        for name, ok, secs, out in pool.map(run_one, files):
            print("  %-4s %-32s %6.1fs" % ("ok" if ok else "FAIL", name, secs), flush=True)
            if not ok:
                failed.append(name)
                print(out)
    print("integration: %d passed, %d failed" % (len(files) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
