"""test_throttle_pg.py: issue 7 point 5, Key Vault's limits hold for the vault across servers.

Azure's limits are per vault (reference §4.5): two `mivault server`s on one PostgreSQL database
(the second joined with `init --store URL --master-key`) together admit at most `throttleOps`
transactions and `throttleCreates` secret creations per vault per 10-second window; the rest get
429 with Retry-After; the next window admits again on both. Before the leases each server
admitted the whole limit on its own (the regression these tests guard)."""
import json
import os
import subprocess
import time
import unittest

from harness import BIN, Env, free_port, wait_port

WINDOW = 10
OPS = 100      # a lease is OPS / 50 = 2 permits
CREATES = 12   # 1 permit per lease
THREADS = 2


class ThrottleAcrossServersTest(unittest.TestCase):
    def setUp(self):
        e = self.e1 = Env(self, pg=True, threads=THREADS, throttleOps=OPS, throttleCreates=CREATES)
        self.addCleanup(e.close)
        dir2 = e.dir + "-2"
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", dir2]))
        r = subprocess.run([BIN, "init", "--state", dir2, "--store", e.store_url, "--master-key",
                            os.path.join(e.dir, "master.key"), "--server-port", str(free_port()),
                            "--agent-port", str(free_port()), "--threads", str(THREADS)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        path = os.path.join(dir2, "config.json")
        with open(path) as f:
            c = json.load(f)
        # One installation as clients see it: the first server's URL is the public one (the
        # issuer of every token), as a balancer's address would be.
        c.update(throttleOps=OPS, throttleCreates=CREATES, publicUrl="https://127.0.0.1:%d" % e.server_port)
        with open(path, "w") as f:
            json.dump(c, f)
        self.p1, self.p2 = e.server_port, free_port()
        e.start_server()
        log = open(os.path.join(e.dir, "server2.log"), "w+")
        e.logs.append(log)
        s2 = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:%d" % self.p2, "--state", dir2],
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        e.procs.append(s2)
        wait_port(self.p2, s2)
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, aport = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(aport, e.vault_resource())

    def kv(self, port, method, path, body=None):
        return self.e1.https(method, path + "?api-version=7.5", host="dev.vault.localhost",
                             port=port, token=self.tok, body=body)

    def next_window(self):
        """Sleeps until just after the start of the next window; returns its start."""
        now = time.time()
        start = (int(now) // WINDOW + 1) * WINDOW
        time.sleep(start - now + 0.05)
        return start

    def burst(self, method, path_of, body=None):
        """Requests alternating between the servers, within one window, until both have
        answered 429 a few times (or 2x the limit + 20 went out). Returns (start, answers)."""
        start = self.next_window()
        answers = []  # (server index, response)
        refused = [0, 0]
        for i in range(2 * OPS + 20):
            if min(refused) >= 5 or time.time() > start + WINDOW - 1:
                break
            r = self.kv((self.p1, self.p2)[i % 2], method, path_of(i), body)
            answers.append((i % 2, r))
            refused[i % 2] += r.status == 429
        self.assertLess(time.time(), start + WINDOW, "the burst did not fit in one window")
        self.assertGreaterEqual(min(refused), 5, "both servers should have throttled")
        return start, answers

    def check_refusals(self, answers, start):
        for _, r in answers:
            self.assertIn(r.status, (200, 429), r.body)
            if r.status == 429:
                self.assertEqual(r.json()["error"]["code"], "Throttled", r.body)
                retry = int(r.header("Retry-After"))
                self.assertTrue(1 <= retry <= WINDOW, retry)
                self.assertLessEqual(time.time() + retry, start + WINDOW + 2)

    def test_transactions_per_vault_not_per_server(self):
        self.assertEqual(self.kv(self.p1, "PUT", "/secrets/s", {"value": "v"}).status, 200)
        start, answers = self.burst("GET", lambda i: "/secrets/s")
        self.check_refusals(answers, start)
        ok = [srv for srv, r in answers if r.status == 200]
        # Never more than the limit together; at most a block per loop per server unspent.
        self.assertLessEqual(len(ok), OPS)
        self.assertGreaterEqual(len(ok), OPS - 2 * THREADS * (OPS // 50))
        self.assertEqual(set(ok), {0, 1}, "both servers admitted a share")
        # The next window admits again, on both servers.
        self.next_window()
        for port in (self.p1, self.p2):
            r = self.kv(port, "GET", "/secrets/s")
            self.assertEqual(r.status, 200, r.body)

    def test_creates_per_vault_not_per_server(self):
        start, answers = self.burst("PUT", lambda i: "/secrets/c%d" % i, {"value": "x"})
        self.check_refusals(answers, start)
        ok = [srv for srv, r in answers if r.status == 200]
        self.assertEqual(len(ok), CREATES)  # blocks of 1: nothing left unspent
        self.assertEqual(set(ok), {0, 1})
        self.next_window()
        for i, port in enumerate((self.p1, self.p2)):
            r = self.kv(port, "PUT", "/secrets/after%d" % i, {"value": "x"})
            self.assertEqual(r.status, 200, r.body)


if __name__ == "__main__":
    unittest.main()
