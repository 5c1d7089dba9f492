"""Issue 7 point 5: the audit trail stays verifiable with N writers (docs/audit.md).

Each server keeps its own chain (STATE/audit.log, records carry "writer" = STATE/server.id and
"seq"), and pins its head now and then (auditCheckpointSecs, lowered here) and at a clean stop
in the store's checkpoint chain. `audit verify` checks the local chain, the checkpoint chain, and
each log given against its writer's checkpoints."""
import json
import os
import sqlite3
import subprocess
import time
import unittest

from harness import BIN, Env, free_port, pg_sql, wait_port


def store_sql(env, stmt):
    """One statement on env's store (SQLite file or PostgreSQL database); the first value."""
    if env.store_url:
        return pg_sql(env.store_url, stmt)
    db = sqlite3.connect(os.path.join(env.dir, "mivault.db"))
    try:
        row = db.execute(stmt).fetchone()
        db.commit()
        return str(row[0]) if row else ""
    finally:
        db.close()


def cut_last_line(path):
    with open(path) as f:
        lines = f.readlines()
    with open(path, "w") as f:
        f.writelines(lines[:-1])


class CheckpointTest(unittest.TestCase):
    def setUp(self):
        self.e = Env(self, auditCheckpointSecs=1)
        self.addCleanup(self.e.close)

    def records_then_stop(self, rounds=2):
        """Records over more than one checkpoint interval, then a clean stop (a last checkpoint)."""
        e = self.e
        p = e.start_server()
        for r in range(rounds):
            for i in range(3):
                e.cli("identity", "create", "--name", "cp%d%d" % (r, i))
            time.sleep(1.5)
        e.stop(p)

    def verify_fails(self, *args):
        r = self.e.run("audit", "verify", *args, check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("NOT intact", r.stderr)
        return r.stderr

    def test_checkpoints_written_and_verify_passes(self):
        self.records_then_stop()
        with open(os.path.join(self.e.dir, "server.id")) as f:
            sid = f.read().strip()
        v = self.e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertTrue(v["complete"], v)
        self.assertGreaterEqual(v["checkpointChain"]["length"], 2)
        w = v["writers"][0]
        self.assertEqual(w["writer"], sid)
        self.assertEqual(w["firstRecord"], 1)
        self.assertEqual(w["lastRecord"], v["lines"])
        self.assertEqual(w["checkedCheckpoints"], w["checkpoints"])
        self.assertEqual(w["lastCheckpoint"]["records"], w["lastRecord"])  # the stop pinned the end
        self.assertEqual(w["recordsAfterLastCheckpoint"], 0)
        with open(os.path.join(self.e.dir, "audit.log")) as f:
            last = json.loads(f.readlines()[-1])
        self.assertEqual(last["writer"], sid)
        self.assertEqual(last["seq"], w["lastRecord"])
        self.assertEqual(last["hash"], w["lastCheckpoint"]["headHash"])

    def test_truncated_tail_behind_a_checkpoint_fails(self):
        """Regression: cutting the last records used to leave a valid chain that verified."""
        self.records_then_stop()
        cut_last_line(os.path.join(self.e.dir, "audit.log"))
        self.assertIn("the log was cut", self.verify_fails())
        os.unlink(os.path.join(self.e.dir, "audit.log"))  # the whole log gone
        self.assertIn("audit.log: No such file", self.verify_fails())

    def test_deleted_or_edited_checkpoint_fails(self):
        self.records_then_stop()
        e = self.e
        self.assertGreaterEqual(int(store_sql(e, "SELECT count(*) FROM audit_checkpoints")), 2)
        store_sql(e, "UPDATE audit_checkpoints SET at = at + 1 WHERE seq = 1")
        self.assertIn("checkpoint chain broken at checkpoint 1", self.verify_fails())
        store_sql(e, "UPDATE audit_checkpoints SET at = at - 1 WHERE seq = 1")
        self.assertTrue(e.cli("audit", "verify")["intact"])
        store_sql(e, "DELETE FROM audit_checkpoints WHERE seq = 1")
        self.assertIn("checkpoint 1 is missing", self.verify_fails())

    def test_edited_record_against_checkpoint_and_chain(self):
        self.records_then_stop(rounds=1)
        path = os.path.join(self.e.dir, "audit.log")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace('"status":201', '"status":200', 1))
        self.assertIn("chain broken", self.verify_fails())


class TwoServersTest(unittest.TestCase):
    """Two servers on one PostgreSQL database, each with its own chain and state dir."""

    def test_verify_both_chains_with_logs(self):
        e1 = Env(self, pg=True, auditCheckpointSecs=1)
        self.addCleanup(e1.close)
        dir2 = e1.dir + "-2"
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", dir2]))
        p2 = free_port()
        r = subprocess.run([BIN, "init", "--state", dir2, "--store", e1.store_url, "--master-key",
                            os.path.join(e1.dir, "master.key"), "--server-port", str(p2), "--agent-port",
                            str(free_port()), "--threads", "2"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = os.path.join(dir2, "config.json")
        with open(cfg) as f:
            c = json.load(f)
        c["auditCheckpointSecs"] = 1
        with open(cfg, "w") as f:
            json.dump(c, f)
        s1 = e1.start_server()
        log = open(os.path.join(e1.dir, "server2.log"), "w+")
        e1.logs.append(log)
        s2 = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:%d" % p2, "--state", dir2],
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        e1.procs.append(s2)
        wait_port(p2, s2)
        for i in range(3):  # each CLI talks to its own server (its dir's public URL)
            e1.cli("identity", "create", "--name", "a%d" % i)
            r = subprocess.run([BIN, "identity", "create", "--name", "b%d" % i, "--state", dir2],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1.5)
        e1.stop(s1)
        e1.stop(s2)
        with open(os.path.join(e1.dir, "server.id")) as f:
            id1 = f.read().strip()
        with open(os.path.join(dir2, "server.id")) as f:
            id2 = f.read().strip()
        self.assertNotEqual(id1, id2)
        # Only DIR1's log: DIR2's writer is reported, not checked.
        v = e1.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertFalse(v["complete"], v)
        self.assertEqual([w["writer"] for w in v["writersWithoutLog"]], [id2])
        # Both logs: both chains against their checkpoints, in one checkpoint chain.
        v = e1.cli("audit", "verify", "--logs", dir2)
        self.assertTrue(v["intact"] and v["complete"], v)
        self.assertEqual([w["writer"] for w in v["writers"]], [id1, id2])
        for w in v["writers"]:
            self.assertGreaterEqual(w["checkedCheckpoints"], 1, w)
            self.assertEqual(w["recordsAfterLastCheckpoint"], 0, w)
        rows = pg_sql(e1.store_url, "SELECT count(DISTINCT writer) FROM audit_checkpoints")
        self.assertEqual(rows, "2")
        # The audit file of DIR2 given directly works too; cut, it fails.
        v = e1.cli("audit", "verify", "--logs", os.path.join(dir2, "audit.log"))
        self.assertTrue(v["complete"], v)
        cut_last_line(os.path.join(dir2, "audit.log"))
        r = e1.run("audit", "verify", "--logs", dir2, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(os.path.join(dir2, "audit.log"), r.stderr)


if __name__ == "__main__":
    unittest.main()
