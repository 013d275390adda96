"""The status page in a real browser (issue 12): Debian's headless Chromium,
driven over the DevTools protocol (cdp.py), reads the page the real daemon
wrote during a real outage, served over HTTP on loopback as the intranet's
web server would.

At 390 px (a phone) the document is no wider than the viewport and no
element reaches past its right edge; at 1280 px the banner is the first
thing on the page; on a wall screen (2560 px) nothing runs off either and
the type is larger. All three are photographed into build/test-artefacts/
(statuspage-390.png, statuspage-1280.png, statuspage-2560.png). Every
piece of text and every border, in every state the page can show, has the
contrast WCAG AA asks for, measured on the colours Chromium computes. The
page's own script is then made to look for a newer status.json, after an
operator's change (edibrokerctl outage set --expected-downtime --fallback)
made the daemon rewrite the page, and must reload it: the refresh that
replaced the meta refresh works in a browser, and the card says whom to
phone for this one outage.
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
OVERRIDE = "Akutvagt, +45 7099 0000"

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


# WCAG 2.1 AA, measured: text 4.5:1 (large text, 24 px or 18.66 px bold:
# 3:1, 1.4.3), borders 3:1 (1.4.11), each against the background behind it.
# The page shows one state now (down, with an endpoint up); a sample of
# every other state's banner, card and endpoint, in the page's own classes
# and under its own style sheet, is added so their colours count too. The
# warning of a stale page is unhidden to be measured as well.
CONTRAST = """(() => {
  const states = ['ok', 'down', 'recovering', 'suspect', 'planned', 'active', 'maintenance',
                  'held'];
  const box = document.createElement('div');
  for (const s of states)
    box.insertAdjacentHTML('beforeend',
      '<header class="banner ' + s + '"><div class="wrap"><p><span class="tag ' + s +
      '">x ' + s + '</span></p><h1>h</h1><p>p</p></div></header><ul class="cards"><li ' +
      'class="card ' + s + '"><h3>h</h3><p class="meta"><span class="tag ' + s + '">x</span>' +
      ' m</p><dl><dt>t</dt><dd class="todo">d</dd><dd>d</dd></dl></li></ul><ul class="eps">' +
      '<li class="ep ' + s + '"><h3>h</h3><span class="tag ' + s + '">x</span> t</li></ul>');
  document.querySelector('main').appendChild(box);
  document.getElementById('stale').hidden = false;
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => {
    const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => {
    const x = lum(a), y = lum(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  const behind = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const low = [];
  let texts = 0, borders = 0;
  for (const el of document.body.querySelectorAll('*')) {
    if (!el.getClientRects().length) continue;
    const cs = getComputedStyle(el), name = el.tagName + '.' + el.className;
    if ([...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) {
      const px = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
      const need = px >= 24 || (px >= 18.66 && bold) ? 3 : 4.5;
      const r = ratio(rgb(cs.color), behind(el));
      texts++;
      if (r < need) low.push(name + ' text ' + r.toFixed(2) + ' < ' + need);
    }
    for (const side of ['Top', 'Right', 'Bottom', 'Left']) {
      if (parseFloat(cs['border' + side + 'Width']) <= 0) continue;
      const r = ratio(rgb(cs['border' + side + 'Color']), behind(el.parentElement));
      borders++;
      if (r < 3) low.push(name + ' border-' + side + ' ' + r.toFixed(2) + ' < 3');
    }
  }
  return {texts: texts, borders: borders, low: low};
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
        desktop_font = browser.evaluate("getComputedStyle(document.body).fontSize")

        # contrast, in every state (the samples are gone at the next open)
        c = browser.evaluate(CONTRAST)
        self.assertGreater(c["texts"], 100, c)
        self.assertGreater(c["borders"], 50, c)
        self.assertEqual(c["low"], [], "below WCAG AA contrast")

        # a wall screen: nothing runs off, and the type is larger
        browser.viewport(2560, 1440, mobile=False)
        browser.open(url)
        m = browser.evaluate(MEASURE)
        self.assertEqual(m["vw"], 2560)
        self.assertLessEqual(m["scroll"], m["vw"], "sideways scrolling at 2560 px: %s" % m)
        self.assertEqual(m["wider"], [], "elements past the right edge at 2560 px")
        wall_font = browser.evaluate("getComputedStyle(document.body).fontSize")
        self.assertGreater(float(wall_font.rstrip("px")), float(desktop_font.rstrip("px")),
                           "the same type on a wall screen as on a desktop")
        browser.screenshot(os.path.join(ARTEFACTS, "statuspage-2560.png"))
        for name in ("statuspage-390.png", "statuspage-1280.png", "statuspage-2560.png"):
            with open(os.path.join(ARTEFACTS, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)

        # the page's script: after an operator's change the daemon rewrites
        # the page, and the script, finding a newer status.json, reloads it
        before = m["generated"]
        o = j["outages"][0]
        b.ctl("outage", "set", str(o["id"]), "--expected-downtime", "3h", "--fallback", OVERRIDE)
        # (the page is written before the JSON, so a JSON with the change
        # means a page with it; a periodic rewrite before the change does not)
        wait_for(lambda: any(x["fallback_contact"] == OVERRIDE
                             for x in (self.status_json(b) or {}).get("outages", [])),
                 timeout=10, what="status page rewritten with the change")
        try:
            browser.evaluate("edibrokerRefresh()", await_promise=True)
        except RuntimeError:
            pass  # the reload may tear the evaluation's context down under it
        browser.wait("document.body && document.body.dataset.generated > %s" % before)
        card = browser.evaluate("document.querySelector('.card.down').innerText")
        self.assertRegex(card, r"Forventet nedetid\s+til \d\d-\d\d-\d{4} kl\. \d\d:\d\d \(ca\. ")
        # the operator's --fallback replaces the endpoint's contact for this outage
        self.assertIn("Hvad gør jeg?\nHaster det, så ring til %s." % OVERRIDE, card)
        self.assertNotIn(FALLBACK, card)
        self.assertIn("Ved udskrivning", card, "the endpoint's note stays")


if __name__ == "__main__":
    unittest.main()
