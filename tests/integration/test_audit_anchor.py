"""The audit chain is anchored (hardening issue, point 14): records carry a keyed hash ("mac",
HMAC-SHA256 under a key derived from the master key) and each writer's chain head is kept in
the store (audit_heads, with its own mac), so `audit verify` (which derives the key from the
state dir's master key) catches a log cut at its tail after the last checkpoint, a chain
recomputed without the key, and a head moved in the store."""
import hashlib
import json
import os
import signal
import time
import unittest

from harness import Env
from test_audit_checkpoints import cut_last_line, store_sql


def rewrite_without_key(path, edit):
    """Recomputes the whole chain with plain SHA-256 after edit(record) -- what someone with the
    files but not the master key can do. Records keep their (now stale) mac, or lose it."""
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    prev = "0" * 64
    out = []
    for r in recs:
        edit(r)
        r.pop("hash")
        r["prev"] = prev
        text = json.dumps(r, separators=(",", ":"), ensure_ascii=False)[:-1]  # without the "}"
        h = hashlib.sha256(text.encode()).hexdigest()
        out.append(text + ',"hash":"%s"}\n' % h)
        prev = h
    with open(path, "w") as f:
        f.writelines(out)


class AuditAnchorTest(unittest.TestCase):
    def setUp(self):
        # checkpoints only at a clean stop: what is left to catch a cut tail is the head
        self.e = Env(self, auditCheckpointSecs=3600)
        self.addCleanup(self.e.close)
        self.log = os.path.join(self.e.dir, "audit.log")

    def records_then_kill(self):
        e = self.e
        p = e.start_server()
        for i in range(4):
            e.cli("identity", "create", "--name", "an%d" % i)
        time.sleep(2.5)  # the head follows the log within a second
        e.stop(p, signal.SIGKILL)  # no last checkpoint
        self.assertEqual(store_sql(e, "SELECT count(*) FROM audit_checkpoints"), "0")

    def verify_fails(self):
        r = self.e.run("audit", "verify", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("NOT intact", r.stderr)
        return r.stderr

    def test_records_are_keyed_and_verify(self):
        self.records_then_kill()
        with open(self.log) as f:
            recs = [json.loads(line) for line in f]
        self.assertTrue(all(len(r["mac"]) == 64 for r in recs), recs[0])
        v = self.e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertTrue(v["keyChecked"])
        w = v["writers"][0]
        self.assertEqual(w["macsChecked"], len(recs))
        self.assertTrue(w["headChecked"], w)
        self.assertEqual(w["head"]["records"], recs[-1]["seq"])

    def test_cut_tail_after_the_last_checkpoint_fails(self):
        """Regression: with no checkpoint after them, cut records left a chain that verified."""
        self.records_then_kill()
        cut_last_line(self.log)
        self.assertIn("the log was cut at its tail", self.verify_fails())

    def test_chain_recomputed_without_the_key_fails(self):
        self.records_then_kill()

        def edit(r):
            if r["seq"] == 2:
                r["status"] = 500
        rewrite_without_key(self.log, edit)
        self.assertIn("wrong mac", self.verify_fails())

        def strip(r):
            r.pop("mac", None)
        rewrite_without_key(self.log, strip)  # no macs at all: the head no longer matches
        self.assertIn("audit head pinned", self.verify_fails())

    def test_sigterm_is_a_clean_stop_that_pins_the_last_record(self):
        """Regression: SIGTERM reached the store writer's or the checkpointer's thread (started
        before the signals were blocked) and ended the process at once: no last checkpoint."""
        e = self.e
        p = e.start_server()
        e.vault("dev")
        self.assertEqual(e.kv("GET", "dev", "/secrets/x/").status, 401)
        e.stop(p)  # at once: before any tick
        self.assertEqual(p.returncode, 0)
        with open(self.log) as f:
            last = json.loads(f.readlines()[-1])
        self.assertEqual(store_sql(e, "SELECT max(records) FROM audit_checkpoints"), str(last["seq"]))
        self.assertEqual(store_sql(e, "SELECT records FROM audit_heads"), str(last["seq"]))
        v = e.cli("audit", "verify")
        self.assertTrue(v["writers"][0]["headChecked"], v)
        self.assertEqual(v["writers"][0]["recordsAfterLastCheckpoint"], 0)

    def test_head_moved_in_the_store_fails(self):
        self.records_then_kill()
        cut_last_line(self.log)
        store_sql(self.e, "UPDATE audit_heads SET records = records - 1")
        self.assertIn("wrong mac", self.verify_fails())


if __name__ == "__main__":
    unittest.main()
