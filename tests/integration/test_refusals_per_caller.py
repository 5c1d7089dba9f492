"""Refused requests are counted per caller, apart from the vault's budget (hardening issue,
point 4, second half): a caller refused more than `refusedPerCaller` times in a 10 s window gets
429 for itself, while other callers (another principal, even from the same address) are served
or refused as usual. Caller = the token's oid when it presented a valid one, else the client
address."""
import json
import time

from harness import Env, MivaultTest, jwt_parts

LIMIT = 15


class RefusalsPerCallerTest(MivaultTest):
    def setUp(self):
        self.env = Env(self, refusedPerCaller=LIMIT)
        self.addCleanup(self.env.close)
        self.env.start_server()

    def stranger(self, good, name):
        ident = self.env.cli("identity", "create", "--name", name)
        pid = ident["properties"]["principalId"]
        _, claims, _ = jwt_parts(good)
        claims.update(oid=pid, sub=pid)
        return self.env.run("token", "mint", "--claims", json.dumps(claims)).stdout.strip()

    def hammer(self, expect, **kw):
        """Requests until the first 429: how many were refused with `expect` before it."""
        e = self.env
        for n in range(3 * LIMIT):
            r = e.kv("GET", "dev", "/secrets/x/", **kw)
            if r.status == 429:
                err = self.assertAzureError(r, 429, "Throttled")
                self.assertIn("TooManyRefusedRequests", err["message"])
                self.assertTrue(1 <= int(r.header("Retry-After")) <= 10)
                return n
            self.assertEqual(r.status, expect, r.body)
        self.fail("a caller refused %d times was never throttled" % (3 * LIMIT))

    def at_window_start(self):
        while time.time() % 10 > 3:  # the server counts in 10 s windows of the same clock
            time.sleep(0.2)

    def test_refused_caller_is_throttled_alone(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        good = e.token(port, e.vault_resource())
        r = e.kv("PUT", "dev", "/secrets/x", token=good, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)
        bad1, bad2 = self.stranger(good, "norole1"), self.stranger(good, "norole2")

        self.at_window_start()
        n = self.hammer(403, token=bad1)
        self.assertGreaterEqual(n, LIMIT)
        self.assertLessEqual(n, 2 * LIMIT)  # a window may roll over once
        # the throttled caller stays throttled, whatever it asks
        r = e.kv("GET", "dev", "/secrets/other/", token=bad1)
        self.assertEqual(r.status, 429, r.body)
        # another principal (same client address) is served, another stranger refused as usual
        for _ in range(2 * LIMIT):
            r = e.kv("GET", "dev", "/secrets/x/", token=good)
            self.assertEqual(r.status, 200, r.body)
        r = e.kv("GET", "dev", "/secrets/x/", token=bad2)
        self.assertEqual(r.status, 403, r.body)

        # without a valid token the caller is the client address
        self.at_window_start()
        n = self.hammer(401, token="not-a-token")
        self.assertGreaterEqual(n, LIMIT)
        self.assertLessEqual(n, 2 * LIMIT)
        r = e.kv("GET", "dev", "/secrets/x/")  # the same address, no token: still throttled
        self.assertEqual(r.status, 429, r.body)
        r = e.kv("GET", "dev", "/secrets/x/", token=good)  # a valid token is its own caller
        self.assertEqual(r.status, 200, r.body)

    def test_limit_zero_is_off(self):
        e = Env(self, refusedPerCaller=0)
        self.addCleanup(e.close)
        e.start_server()
        e.vault("dev")
        for _ in range(3 * LIMIT):
            r = e.kv("GET", "dev", "/secrets/x/")
            self.assertEqual(r.status, 401, r.body)


if __name__ == "__main__":
    import unittest
    unittest.main()
