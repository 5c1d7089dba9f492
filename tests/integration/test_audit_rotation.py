"""The audit log rotates by size (config auditMaxBytes / auditKeep) and stays one verifiable chain."""
import os
import unittest

from harness import Env


class AuditRotationTest(unittest.TestCase):
    def test_log_rotates_keeps_at_most_keep_files_and_verifies(self):
        e = Env(self, auditMaxBytes=1500, auditKeep=3)
        self.addCleanup(e.close)
        e.start_server()
        for i in range(12):  # each control-plane call leaves a record
            e.cli("identity", "create", "--name", "rot%d" % i)
        rotated = sorted(f for f in os.listdir(e.dir) if f.startswith("audit.log."))
        self.assertEqual(len(rotated), 3, rotated)
        self.assertNotIn("audit.log.000001", rotated)  # the oldest were removed
        for f in rotated:
            self.assertLessEqual(os.path.getsize(os.path.join(e.dir, f)), 1500 + 1024)
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertGreater(v["lines"], 3)
        # editing a record in a rotated file is caught
        p = os.path.join(e.dir, rotated[-1])
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace('"status":2', '"status":4', 1))
        r = e.run("audit", "verify", check=False)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
