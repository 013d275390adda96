"""The status page in a real browser (issue 12): Debian's headless Chromium,
driven over the DevTools protocol (cdp.py), reads the page the real daemon
wrote during a real outage, served over HTTP on loopback as the intranet's
web server would.

At 390 px (a phone) the document is no wider than the viewport and no
element reaches past its right edge; at 1280 px the banner is the first
thing on the page. Both are photographed into build/test-artefacts/
(statuspage-390.png, statuspage-1280.png). The page's own script is then
made to look for a newer status.json, after an operator's change made the
daemon rewrite the page, and must reload it: the refresh that replaced the
meta refresh works in a browser.
"""

import functools
import http.server
import json
import os
import threading
import time
import unittest

from cdp import Browser
from harness import (BrokerTest, HOSPITAL_GLN, MUNICIPALITY_GLN, ROOT, drop, sample, wait_for,
                     with_ids)

ARTEFACTS = os.path.join(ROOT, "build", "test-artefacts")
FALLBACK = "VisInfoSyd vagttelefon, +45 7011 2233"

# Every element's right edge, and the document's width, against the viewport.
MEASURE = """(() => {
  const vw = window.innerWidth, out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5)
      out.push(el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className + ' ' +
               Math.round(r.right));
  }
  const banner = document.getElementById('banner');
  return {vw: vw, scroll: document.documentElement.scrollWidth,
          body: document.body.scrollWidth, wider: out,
          first: document.body.firstElementChild.id,
          top: banner.getBoundingClientRect().top,
          atTop: banner.contains(document.elementFromPoint(vw / 2, 2)),
          h1: banner.querySelector('h1').textContent, title: document.title,
          generated: document.body.dataset.generated};
})()"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StatusPageBrowserTest(BrokerTest):

    def start_broker(self):
        extra = ("[outage]\nthreshold = 1s\nupdate_interval = 1h\nprobe_interval = 300ms\n"
                 "down_after = 2\nsend_window = 00:00-24:00\ntimezone = Europe/Copenhagen\n\n"
                 "[notify]\nsupport_phone = EDI-support 7020 3040\n"
                 "status_url = http://intranet.region.example/edi/status.html\n")
        b = self.broker(extra=extra, endpoint_extra={
            "hospital": "organisation = Rigshospitalet",
            "municipality": "organisation = Københavns Kommune\nfallback_contact = %s\n"
                            "fallback_note = Ved udskrivning: ring til visitationen, før "
                            "patienten sendes hjem." % FALLBACK,
        })
        b.start()
        return b

    def serve(self, folder):
        handler = functools.partial(QuietHandler, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return "http://127.0.0.1:%d/status.html" % server.server_address[1]

    def status_json(self, b):
        try:
            with open(os.path.join(b.state, "status", "status.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def outage_page(self, b):
        """Waits for the page of an announced outage holding three types."""
        def announced():
            j = self.status_json(b)
            for o in (j or {}).get("outages", []):
                if o["state"] == "announced" and len(o["affected"]) == 3:
                    return j
            return None
        return wait_for(announced, timeout=15, what="status.json with the announced outage")

    def test_phone_and_desktop_width_and_refresh(self):
        b = self.start_broker()
        os.rename(b.outbox("municipality"), b.outbox("municipality") + ".away")
        msgs = [with_ids(sample("DIS20_1.xml"), "E1", "L1"),
                with_ids(sample("DIS20_1.xml"), "E2", "L2"),
                with_ids(sample("DIS17_1.xml"), "F1", "M1"),
                with_ids(sample("DIS91_1.xml"), "G1", "N1", receiver=MUNICIPALITY_GLN,
                         sender=HOSPITAL_GLN)]
        for i, m in enumerate(msgs):
            drop(b.inbox("hospital"), "m%d.xml" % i, m)
        j = self.outage_page(b)
        self.assertEqual(j["banner"]["level"], "down")
        url = self.serve(os.path.join(b.state, "status"))

        browser = Browser()
        self.addCleanup(browser.close)
        # a phone: 390 x 844 CSS px
        browser.viewport(390, 844, mobile=True)
        browser.open(url)
        m = browser.evaluate(MEASURE)
        self.assertEqual(m["vw"], 390)
        self.assertLessEqual(m["scroll"], m["vw"], "sideways scrolling at 390 px: %s" % m)
        self.assertEqual(m["wider"], [], "elements past the right edge at 390 px")
        self.assertIn("Meddelelser til Københavns Kommune leveres ikke lige nu", m["h1"])
        self.assertTrue(m["title"].startswith("Nede: Københavns Kommune"), m["title"])
        text = browser.evaluate("document.body.innerText")
        for want in ("Indlæggelsesadvis (XDIS20)", "Udskrivningsadvis (XDIS17)",
                     "Korrespondancebrev (XDIS91)", FALLBACK, "Hvad gør jeg?"):
            self.assertIn(want, text)
        self.assertNotIn(b.spool, text, "a path on the page")
        browser.screenshot(os.path.join(ARTEFACTS, "statuspage-390.png"))

        # a desktop: the banner is the first thing, from the very top
        browser.viewport(1280, 800, mobile=False)
        browser.open(url)
        m = browser.evaluate(MEASURE)
        self.assertEqual(m["first"], "banner")
        self.assertEqual(m["top"], 0)
        self.assertTrue(m["atTop"], "something above the banner: %s" % m)
        self.assertLessEqual(m["scroll"], m["vw"])
        browser.screenshot(os.path.join(ARTEFACTS, "statuspage-1280.png"))
        for name in ("statuspage-390.png", "statuspage-1280.png"):
            with open(os.path.join(ARTEFACTS, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)

        # the page's script: after an operator's change the daemon rewrites
        # the page, and the script, finding a newer status.json, reloads it
        before = m["generated"]
        o = j["outages"][0]
        b.ctl("outage", "set", str(o["id"]), "--expected-downtime", "3h")
        wait_for(lambda: (self.status_json(b) or {}).get("generated_at_ms", 0) > int(before),
                 timeout=10, what="status page rewritten")
        try:
            browser.evaluate("edibrokerRefresh()", await_promise=True)
        except RuntimeError:
            pass  # the reload may tear the evaluation's context down under it
        browser.wait("document.body && document.body.dataset.generated > %s" % before)
        self.assertRegex(browser.evaluate("document.querySelector('.card.down').innerText"),
                         r"Forventet nedetid\s+til \d\d-\d\d-\d{4} kl\. \d\d:\d\d \(ca\. ")


if __name__ == "__main__":
    unittest.main()
