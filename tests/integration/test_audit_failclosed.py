"""The audit trail fails closed and cannot be broken by a request (hardening issue, points 12, 13).

Point 12: with the audit log on a full filesystem (a small tmpfs mounted for the test: needs root,
as CI runs it), data-plane requests are refused with 503 in Azure's shape and no secret goes out;
a short write is truncated back, so once space comes back requests are served again and
`mivault audit verify` passes (also after a restart).

Point 13: an unauthenticated ARM request with a ~3,900-character path still gets its record (the
path is cut, with a marker) and the log verifies.
"""
import http.client
import json
import os
import re
import subprocess
import unittest

from harness import Env, MivaultTest, free_port

SECRET = "s3cr3t-value-never-unaudited"


def records(env):
    with open(os.path.join(env.dir, "audit.log")) as f:
        return [json.loads(line) for line in f]


class AuditDiskFullTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounts a small tmpfs: needs root (CI runs integration tests as root)")
        self.env = e = Env(self)
        self.fs = os.path.join(e.dir, "auditfs")
        os.mkdir(self.fs)
        self.addCleanup(e.close)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", self.fs],
                           capture_output=True, text=True)
        if r.returncode != 0:  # a container without CAP_SYS_ADMIN: say so (skips are counted)
            self.skipTest("cannot mount a small tmpfs here: %s" % r.stderr.strip())
        self.addCleanup(self.unmount)
        self.addCleanup(self.stop_all)  # before the unmount (cleanups run last-in, first-out)
        log = os.path.join(e.dir, "audit.log")
        target = os.path.join(self.fs, "audit.log")
        if os.path.exists(log):
            with open(log, "rb") as src, open(target, "wb") as dst:
                dst.write(src.read())
            os.unlink(log)
        os.symlink(target, log)
        self.filler = os.path.join(self.fs, "filler")

    def stop_all(self):
        for p in self.env.procs:
            self.env.stop(p)

    def unmount(self):
        subprocess.run(["umount", "-l", self.fs], check=False)

    def fill(self):
        # pages first, then single bytes: the last page of audit.log may still hold part of a
        # record, which makes the next write a short one (truncated back by the server)
        for name, chunk in (("filler", 4096), ("pad", 1)):
            fd = os.open(os.path.join(self.fs, name), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for _ in range(1 << 20):
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
            finally:
                os.close(fd)

    def audit_failures(self):
        """mivault_audit_write_failures_total from the server's /metrics."""
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^mivault_audit_write_failures_total (\d+)$", body, re.M)
        self.assertIsNotNone(m, "no audit write failure counter in /metrics")
        return int(m.group(1))

    def test_disk_full_refuses_data_plane_then_recovers_and_verifies(self):
        e = self.env
        self.metrics_port = free_port()
        e.server = e.spawn("server", "server", "--metrics-listen", "127.0.0.1:%d" % self.metrics_port,
                           port=e.server_port)
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        tok = e.token(port, e.vault_resource())
        r = e.kv("PUT", "dev", "/secrets/db", token=tok, body={"value": SECRET})
        self.assertEqual(r.status, 200, r.body)
        r = e.kv("GET", "dev", "/secrets/db/", token=tok)
        self.assertEqual(r.status, 200, r.body)
        before = len(records(e))

        self.fill()
        # the last page of audit.log may still have room for a few whole records: those
        # requests are served, and audited; the record that does not fit is cut back and its
        # request refused, as is every later one
        served = refused = 0
        for _ in range(60):
            r = e.kv("GET", "dev", "/secrets/db/", token=tok)
            if r.status == 200:
                self.assertEqual(refused, 0, "served after a refusal with the disk still full")
                served += 1
                continue
            self.assertEqual(r.status, 503, r.body)
            self.assertNotIn(SECRET.encode(), r.body)
            self.assertEqual(r.json()["error"]["code"], "ServiceUnavailable")
            self.assertIsNotNone(r.header("x-ms-request-id"))
            refused += 1
        self.assertGreaterEqual(refused, 40)
        self.assertGreaterEqual(self.audit_failures(), refused)  # each refusal counted for operators
        before += served  # each one served has its record
        # refusals too: nothing of the data plane is answered unaudited
        r = e.kv("GET", "dev", "/secrets/nope/", token=tok)
        self.assertEqual(r.status, 503, r.body)
        r = e.kv("GET", "dev", "/secrets/db/")
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(len(records(e)), before)  # whole records only: the file still parses
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)

        os.unlink(self.filler)
        os.unlink(os.path.join(self.fs, "pad"))
        r = e.kv("GET", "dev", "/secrets/db/", token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"], SECRET)
        recs = records(e)
        self.assertEqual(len(recs), before + 1)
        self.assertEqual(recs[-1]["status"], 200)
        self.assertEqual(recs[-1]["seq"], recs[-2]["seq"] + 1)
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        # and after a restart the chain goes on
        e.stop(e.server)
        e.start_server()
        r = e.kv("GET", "dev", "/secrets/db/", token=tok)
        self.assertEqual(r.status, 200, r.body)
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)


class AuditLongRequestTest(MivaultTest):
    def test_long_arm_path_is_recorded_cut_and_verifies(self):
        e = self.env
        path = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/" % (e.sub, e.rg)
        path += "v" * (3900 - len(path))
        r = e.https("GET", path + "?api-version=2022-07-01")
        self.assertEqual(r.status, 401, r.body)
        recs = [x for x in records(e) if x["plane"] == "arm" and x["status"] == 401]
        self.assertTrue(recs, "the refused request has no record")
        scope = recs[-1]["scope"]
        self.assertTrue(scope.endswith("...[truncated]"), scope[-40:])
        self.assertLessEqual(len(scope), 1024 + len("...[truncated]"))
        # a path of escapes (each byte 6 bytes in the record) too
        r = e.https("GET", "/subscriptions/" + "%01" * 1200 + "?api-version=2022-07-01")
        self.assertIn(r.status, (400, 401, 404), r.body)
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertEqual(v["lines"], len(records(e)))


if __name__ == "__main__":
    unittest.main()
