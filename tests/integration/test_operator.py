"""Operators' actions on single messages and endpoints (issue 13).

- requeue: a dead letter whose receiver nobody owned is requeued after a
  reload adds the route, and delivered once, with no second receipt;
  before the reload the requeue says "still no route" and changes nothing;
  a dead letter whose letter the sender resent meanwhile (delivered) is a
  duplicate on requeue and not delivered twice; a quarantined file (a
  sender the endpoint could not send for) is requeued after a reload lets
  it, read back from the quarantine folder, delivered, and removed; one
  request with several ids (one named twice, one unknown) answers each,
  routes each letter once and audits each change.
- trace: by id, envelope id, letter id, a VANS transmission id and a FHIR
  Bundle.id: accepted from, routed to, failed attempts with their fault,
  delivered, the receipt, what operators did and who.
- hold/release: nothing is delivered while held, the hold survives a
  restart, status and the status page say held; release delivers.
- retry skips a long backoff; resend delivers the same bytes again under a
  new name; delete ends a queued message (never delivered) and a dead
  letter, with the reason in the history.
- Every change is audited (event=control-change) with the caller, and a
  user outside the operator group is refused.
"""

import os
import re
import subprocess
import time

from harness import (BIN, HOSPITAL_GLN, MUNICIPALITY_GLN, SAMPLES, BrokerTest, drop,
                     listdir_final, sample, wait_for, with_ids)

UNKNOWN_GLN = "5790000999999"
FHIR_SENDER = "5790000209354"
FHIR_RECEIVER = "5790001348120"
BUNDLE_ID = "add5e7e2-0c0f-4a4a-bfff-f6f984fa7e3c"
MESSAGE_HEADER_ID = "42cb9200-f421-4d08-8391-7d51a2503cb4"
VANS_ID = "EPIC394319568"


def shared(folder, name):
    with open(os.path.join(SAMPLES, folder, name), "rb") as f:
        return f.read()


def read_dir(d):
    out = {}
    for n in listdir_final(d):
        with open(os.path.join(d, n), "rb") as f:
            out[n] = f.read()
    return out


def events(trace):
    return [s["event"] for s in trace["history"]]


class Operator(BrokerTest):
    def make(self, endpoints=None, endpoint_extra=None, delivery=None):
        eps = endpoints or {
            "hospital": ("hospital", [HOSPITAL_GLN, "5790002515200", FHIR_SENDER]),
            "municipality": ("municipality", [MUNICIPALITY_GLN, "5790002508226",
                                              FHIR_RECEIVER]),
        }
        b = self.broker(endpoints=eps, endpoint_extra=endpoint_extra, delivery=delivery)
        return b.start()

    def reload(self, b):
        before = len(b.log_lines(r"event=reloaded"))
        b.write_config()
        b.signal(1)  # SIGHUP
        wait_for(lambda: len(b.log_lines(r"event=reloaded")) > before, what="reloaded")

    def test_requeue_a_dead_letter_after_a_reload_adds_its_route(self):
        b = self.make()
        drop(b.inbox("hospital"), "d.xml", with_ids(sample("DIS20_1.xml"), "ENVD", "LETD",
                                                      receiver=UNKNOWN_GLN))
        dead = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead")["messages"][0],
                        what="the dead letter")
        wait_for(lambda: len(listdir_final(b.outbox("hospital"))) == 1, what="its receipt")
        did = dead["id"]

        # before the route exists: still no route, nothing changes, no receipt again
        r = b.ctl("requeue", str(did), check=False)
        self.assertFalse(r["ok"])
        self.assertIn("still no route", r["error"])
        self.assertIn(UNKNOWN_GLN, r["error"])
        self.assertEqual(b.ctl("dead")["dead"], 1)
        rc, out, err = b.ctl_text("requeue", str(did))
        self.assertEqual(rc, 1)
        self.assertIn("not requeued", out)

        # the route is added by a reload: requeued, delivered once
        b.endpoints["municipality"][1].append(UNKNOWN_GLN)
        self.reload(b)
        r = b.ctl("requeue", str(did))
        self.assertTrue(r["ok"])
        res = r["results"][0]
        self.assertEqual(res["outcome"], "accepted")
        new = res["message"]
        self.assertGreater(new, did)
        out = wait_for(lambda: read_dir(b.outbox("municipality")), what="delivered")
        self.assertEqual(list(out.values()),
                         [with_ids(sample("DIS20_1.xml"), "ENVD", "LETD",
                                   receiver=UNKNOWN_GLN)], "the same bytes")
        self.assertEqual(b.ctl("dead")["dead"], 0)
        time.sleep(0.5)
        self.assertEqual(len(listdir_final(b.outbox("hospital"))), 1, "no second receipt")
        again = b.ctl("requeue", str(did), check=False)
        self.assertFalse(again["ok"])
        self.assertIn("it is requeued", again["error"])

        # the trace of both, linked
        t = b.ctl("trace", str(did))["messages"][0]
        self.assertEqual(t["state"], "requeued")
        self.assertEqual(events(t)[:2], ["accepted", "receipt"])
        self.assertIn("requeued", events(t))
        step = [s for s in t["history"] if s["event"] == "requeued"][0]
        self.assertEqual(step["message"], new)
        self.assertEqual(step["by"], "root (uid 0)")
        t2 = b.ctl("trace", str(new))["messages"][0]
        self.assertEqual(events(t2), ["accepted", "requeued-from", "delivered"])
        self.assertEqual(t2["history"][0]["routed_to"], "municipality")
        self.assertEqual(len(b.log_lines(r"event=control-change verb=requeue .*uid=0 "
                                         r"user=root .*msg=%d" % did)), 1)

    def test_requeue_does_not_deliver_a_letter_twice(self):
        b = self.make()
        letter = with_ids(sample("DIS20_1.xml"), "ENV1", "LET1", receiver=UNKNOWN_GLN)
        drop(b.inbox("hospital"), "d.xml", letter)
        did = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead")["messages"][0],
                       what="dead")["id"]
        b.endpoints["municipality"][1].append(UNKNOWN_GLN)
        self.reload(b)
        # the sender resends the same letter in a new envelope: delivered
        drop(b.inbox("hospital"), "resent.xml", with_ids(sample("DIS20_1.xml"), "ENV2", "LET1",
                                                         receiver=UNKNOWN_GLN))
        wait_for(lambda: len(listdir_final(b.outbox("municipality"))) == 1, what="the resend")
        r = b.ctl("requeue", str(did))
        self.assertEqual(r["results"][0]["outcome"], "duplicate")
        self.assertIn("not delivered again", r["results"][0]["detail"])
        time.sleep(1.0)
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 1, "delivered twice")
        self.assertEqual(b.ctl("dead")["dead"], 0, "the dead letter is settled")

    def test_requeue_several_ids_reports_and_audits_each(self):
        b = self.make()
        for env, let in (("ENVA", "LETA"), ("ENVC", "LETC")):
            drop(b.inbox("hospital"), "%s.xml" % env,
                 with_ids(sample("DIS20_1.xml"), env, let, receiver=UNKNOWN_GLN))
        dead = wait_for(lambda: (lambda d: d["dead"] == 2 and d["messages"])(b.ctl("dead")),
                        what="two dead letters")
        a, c = sorted(m["id"] for m in dead)
        b.endpoints["municipality"][1].append(UNKNOWN_GLN)
        self.reload(b)
        # one request: both dead letters, one of them named twice, and an id
        # nobody has; each is answered, in the order given
        r = b.ctl("requeue", str(a), str(c), str(a), "999999", check=False)
        self.assertFalse(r["ok"])
        self.assertEqual([x["id"] for x in r["results"]], [a, c, a, 999999])
        self.assertEqual(sorted(x["outcome"] for x in r["results"] if x["id"] == a),
                         ["accepted", "duplicate"], "named twice: routed once")
        self.assertEqual(r["results"][1]["outcome"], "accepted")
        self.assertIn("no such message", r["results"][3]["error"])
        self.assertRegex(r["error"], r"^1 of 4 could not be requeued; the first: 999999: ")
        out = wait_for(lambda: (lambda d: len(d) == 2 and d)(read_dir(b.outbox("municipality"))),
                       what="both delivered")
        time.sleep(1.0)
        self.assertEqual(len(listdir_final(b.outbox("municipality"))), 2, "delivered twice")
        self.assertEqual(sorted(b"ENVA" in v for v in out.values()), [False, True])
        self.assertEqual(b.ctl("dead")["dead"], 0)
        # every change audited, the failed one not; each requeue logged as
        # one logfmt record with its fields intact
        audited = re.findall(r"event=control-change verb=requeue .*msg=(\d+)", b.log())
        self.assertEqual(sorted(map(int, audited)), sorted([a, c, a]))
        lines = b.log_lines(r"event=requeued ")
        self.assertEqual(len(lines), 3, lines)
        for line in lines:
            self.assertRegex(line, r"event=requeued msg=\d+ outcome=(accepted|duplicate) "
                                   r"new=\d+( record=changed-meanwhile)?$")

    def test_requeue_a_quarantined_file_after_a_reload_lets_its_sender(self):
        b = self.make()
        # the municipality sends in the hospital's name: refused as spoofing
        spoof = with_ids(sample("DIS20_1.xml"), "ENVQ", "LETQ", receiver="5790002515200")
        drop(b.inbox("municipality"), "q.xml", spoof)
        q = wait_for(lambda: b.ctl("quarantine")["messages"], what="quarantined")[0]
        self.assertEqual(q["error"], "sender")
        self.assertTrue(os.path.exists(q["file"]))
        r = b.ctl("requeue", str(q["id"]), check=False)
        self.assertFalse(r["ok"])
        self.assertIn("sender not owned", r["error"])
        self.assertTrue(os.path.exists(q["file"]), "still refused: the file stays")

        b.endpoint_extra["municipality"] = "may_send_for = %s" % HOSPITAL_GLN
        self.reload(b)
        r = b.ctl("requeue", str(q["id"]))
        self.assertEqual(r["results"][0]["outcome"], "accepted")
        out = wait_for(lambda: read_dir(b.outbox("hospital")), what="delivered to the hospital")
        self.assertEqual(list(out.values()), [spoof])
        self.assertFalse(os.path.exists(q["file"]), "the quarantined file is removed")
        self.assertFalse(os.path.exists(q["file"] + ".reason"))
        t = b.ctl("trace", str(q["id"]))["messages"][0]
        self.assertEqual(t["state"], "requeued")
        self.assertEqual(events(t)[0], "quarantined")
        self.assertEqual(t["history"][0]["error"], "sender")
        self.assertEqual(b.ctl("quarantine")["messages"], [])

    def test_trace_by_id_envelope_letter_wrapping_and_bundle(self):
        b = self.make(delivery={"retry_initial": "300ms", "retry_max": "1s"})
        out = b.outbox("municipality")
        os.rename(out, out + ".away")
        drop(b.inbox("hospital"), "a.xml", with_ids(sample("DIS20_1.xml"), "ENVT", "LETT"))
        wait_for(lambda: b.endpoint("municipality")["failures"] >= 2, what="two failures")
        os.rename(out + ".away", out)
        wait_for(lambda: listdir_final(out), what="delivered")
        drop(b.inbox("hospital"), "fhir.xml", shared("fhir", "CC_new-message_Bundle-add5e7e2.xml"))
        drop(b.inbox("hospital"), "vans.xml", shared("vans-sbdh",
                                                     "XDIS18_regionh_VANSEnvelope.xml"))
        wait_for(lambda: len(listdir_final(out)) == 3, what="FHIR and VANS delivered")

        by_env = b.ctl("trace", "--envelope", "ENVT")["messages"]
        self.assertEqual(len(by_env), 1)
        t = by_env[0]
        self.assertEqual((t["envelope"], t["letter"], t["source"], t["endpoint"], t["state"]),
                         ("ENVT", "LETT", "hospital", "municipality", "delivered"))
        ev = events(t)
        self.assertEqual(ev[0], "accepted")
        self.assertEqual(ev[-1], "delivered")
        attempts = [s for s in t["history"] if s["event"] == "attempt"]
        self.assertGreaterEqual(len(attempts), 2)
        self.assertEqual(attempts[0]["fault"], "refused")
        self.assertEqual(b.ctl("trace", "--letter", "LETT")["messages"][0]["id"], t["id"])
        self.assertEqual(b.ctl("trace", str(t["id"]))["messages"][0]["history"], t["history"])

        fhir = b.ctl("trace", "--bundle", BUNDLE_ID)["messages"]
        self.assertEqual(len(fhir), 1)
        self.assertEqual(fhir[0]["format"], "fhir-xml")
        self.assertEqual(fhir[0]["letter"], MESSAGE_HEADER_ID)
        self.assertEqual(b.ctl("trace", "--letter", MESSAGE_HEADER_ID)["messages"][0]["id"],
                         fhir[0]["id"])
        vans = b.ctl("trace", "--envelope", VANS_ID)["messages"]
        self.assertEqual(len(vans), 1, "found by the wrapping's transmission id")
        self.assertEqual(vans[0]["format"], "vans")
        self.assertEqual(b.ctl("trace", "--bundle", VANS_ID, check=False)["ok"], False,
                         "a VANS id is no Bundle id")

        r = b.ctl("trace", "--envelope", "NOSUCH", check=False)
        self.assertIn("no message with envelope id NOSUCH", r["error"])
        rc, text, _ = b.ctl_text("trace", "--envelope", "ENVT")
        self.assertEqual(rc, 0)
        self.assertRegex(text, r"attempt +refused: ")
        self.assertRegex(text, r"accepted +from hospital, routed to municipality")

    def test_hold_survives_a_restart_and_release_delivers(self):
        b = self.make()
        self.assertEqual(b.ctl("hold", "municipality")["held"], True)
        drop(b.inbox("hospital"), "h.xml", with_ids(sample("DIS20_1.xml"), "ENVH", "LETH"))
        wait_for(lambda: b.endpoint("municipality")["queued"] == 1, what="queued")
        time.sleep(1.0)
        self.assertEqual(listdir_final(b.outbox("municipality")), [], "delivered while held")
        ep = b.endpoint("municipality")
        self.assertEqual((ep["state"], ep["health"], ep["held"]), ("held", "held", True))
        with open(os.path.join(b.state, "status", "status.html"), encoding="utf-8") as f:
            wait_for(lambda: "Sat på pause" in open(f.name, encoding="utf-8").read(),
                     what="held on the status page")
        self.assertEqual(b.stop(), 0)
        b.start()
        self.assertEqual(b.endpoint("municipality")["state"], "held", "held after a restart")
        time.sleep(1.0)
        self.assertEqual(listdir_final(b.outbox("municipality")), [])
        r = b.ctl("release", "municipality")
        self.assertEqual((r["held"], r["changed"]), (False, True))
        wait_for(lambda: listdir_final(b.outbox("municipality")), what="delivered on release")
        self.assertEqual(b.endpoint("municipality")["health"], "up")
        r = b.ctl("hold", "nowhere", check=False)
        self.assertIn("no endpoint nowhere in the configuration", r["error"])
        self.assertEqual(len(b.log_lines(r"event=control-change verb=hold .*"
                                         r"endpoint=municipality")), 1)
        self.assertEqual(len(b.log_lines(r"event=control-change verb=release .*"
                                         r"endpoint=municipality")), 1)

    def test_retry_skips_the_backoff(self):
        b = self.make(delivery={"retry_initial": "1m", "retry_max": "10m"})
        out = b.outbox("municipality")
        os.rename(out, out + ".away")
        drop(b.inbox("hospital"), "r.xml", with_ids(sample("DIS20_1.xml"), "ENVR", "LETR"))
        wait_for(lambda: b.endpoint("municipality")["failures"] >= 1, what="a failure")
        os.rename(out + ".away", out)
        time.sleep(0.5)
        self.assertEqual(listdir_final(out), [], "waits for its minute")
        r = b.ctl("retry", "municipality")
        self.assertTrue(r["was_waiting"])
        wait_for(lambda: listdir_final(out), timeout=5, what="delivered at once")
        rc, text, _ = b.ctl_text("retry", "municipality")
        self.assertEqual(rc, 0)
        self.assertIn("was not waiting", text)

    def test_resend_delivers_the_same_bytes_again(self):
        b = self.make()
        msg = with_ids(sample("DIS20_1.xml"), "ENVS", "LETS")
        drop(b.inbox("hospital"), "s.xml", msg)
        first = wait_for(lambda: listdir_final(b.outbox("municipality")), what="delivered")[0]
        mid = b.ctl("trace", "--envelope", "ENVS")["messages"][0]["id"]
        os.unlink(os.path.join(b.outbox("municipality"), first))  # the receiver lost it
        r = b.ctl("resend", str(mid))
        self.assertEqual(r["endpoint"], "municipality")
        out = wait_for(lambda: read_dir(b.outbox("municipality")), what="resent")
        self.assertEqual(list(out.values()), [msg])
        self.assertNotEqual(list(out)[0], first, "a new name: the copy's own id")
        self.assertTrue(list(out)[0].endswith("-%012d.xml" % r["copy"]))
        t = b.ctl("trace", str(mid))["messages"][0]
        self.assertEqual(t["state"], "delivered", "the first delivery's record stays")
        self.assertEqual(events(t)[-1], "resent")
        r = b.ctl("resend", "999999", check=False)
        self.assertIn("no message with id 999999", r["error"])

    def test_delete_a_queued_message_and_a_dead_letter(self):
        b = self.make()
        b.ctl("hold", "municipality")
        drop(b.inbox("hospital"), "x.xml", with_ids(sample("DIS20_1.xml"), "ENVX", "LETX"))
        drop(b.inbox("hospital"), "y.xml", with_ids(sample("DIS20_1.xml"), "ENVY", "LETY"))
        wait_for(lambda: b.endpoint("municipality")["queued"] == 2, what="queued")
        x = b.ctl("trace", "--envelope", "ENVX")["messages"][0]["id"]
        r = b.ctl("delete", str(x), check=False)
        self.assertEqual(r, None, "no --reason: a usage error")
        rc, _, err = b.ctl_text("delete", str(x))
        self.assertEqual(rc, 2)
        r = b.ctl("delete", str(x), "--reason", "sent to the wrong municipality")
        self.assertEqual(r["was"], "queued")
        self.assertEqual(b.endpoint("municipality")["queued"], 1)
        b.ctl("release", "municipality")
        out = wait_for(lambda: read_dir(b.outbox("municipality")), what="the other delivered")
        time.sleep(0.5)
        self.assertEqual(len(read_dir(b.outbox("municipality"))), 1)
        self.assertIn(b"ENVY", list(out.values())[0])
        t = b.ctl("trace", str(x))["messages"][0]
        self.assertEqual(t["state"], "deleted")
        step = t["history"][-1]
        self.assertEqual((step["event"], step["detail"], step["by"]),
                         ("deleted", "sent to the wrong municipality", "root (uid 0)"))

        drop(b.inbox("hospital"), "d.xml", with_ids(sample("DIS20_1.xml"), "ENVZ", "LETZ",
                                                      receiver=UNKNOWN_GLN))
        d = wait_for(lambda: b.ctl("dead")["dead"] == 1 and b.ctl("dead")["messages"][0],
                     what="dead")["id"]
        b.ctl("delete", str(d), "--reason", "test message")
        self.assertEqual(b.ctl("dead")["dead"], 0)
        r = b.ctl("delete", str(d), "--reason", "again", check=False)
        self.assertIn("is deleted", r["error"])
        self.assertEqual(len(b.log_lines(r"event=control-change verb=delete ")), 2)

    def test_only_operators_act(self):
        b = self.make()
        os.chmod(self.tmp, 0o711)
        os.chmod(b.state, 0o711)
        os.chmod(b.sock, 0o666)
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        for args in (("hold", "municipality"), ("requeue", "1"), ("resend", "1"),
                     ("delete", "1", "--reason", "x"), ("retry", "hospital")):
            r = subprocess.run(nobody + [os.path.join(BIN, "edibrokerctl"), "-s", b.sock]
                               + list(args), capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn("permission denied: %s needs root" % args[0], r.stderr)
        r = subprocess.run(nobody + [os.path.join(BIN, "edibrokerctl"), "-s", b.sock, "trace",
                                     "--envelope", "X"], capture_output=True, text=True,
                           timeout=20)
        self.assertIn("no message with envelope id X", r.stderr, "reading is for anyone")
        self.assertFalse(b.endpoint("municipality")["held"])
        self.assertEqual(len(b.log_lines(r"event=control-denied uid=65534")), 5)


if __name__ == "__main__":
    import unittest
    unittest.main()
