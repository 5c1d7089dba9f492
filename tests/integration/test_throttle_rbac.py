"""The vault's throttle counts only authorized requests (hardening issue, point 4): a principal
with no role on a vault cannot spend that vault's budget for everyone."""
import json

from harness import Env, MivaultTest, jwt_parts

OPS = 20


class ThrottleAfterRbacTest(MivaultTest):
    def setUp(self):
        self.env = Env(self, throttleOps=OPS, throttleCreates=0)
        self.addCleanup(self.env.close)
        self.env.start_server()

    def test_refused_requests_do_not_spend_the_budget(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        good = e.token(port, e.vault_resource())
        # a principal of the same tenant with no role on the vault: a correctly signed token
        ident = e.cli("identity", "create", "--name", "norole")
        pid = ident["properties"]["principalId"]
        _, claims, _ = jwt_parts(good)
        claims.update(oid=pid, sub=pid)
        stranger = e.run("token", "mint", "--claims", json.dumps(claims)).stdout.strip()
        for _ in range(3 * OPS):
            r = e.kv("GET", "dev", "/secrets/x/", token=stranger)
            self.assertEqual(r.status, 403, r.body)
        # the window's budget is untouched: the authorized caller is served
        r = e.kv("PUT", "dev", "/secrets/x", token=good, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)
        served, throttled = 1, False
        for _ in range(3 * OPS):
            r = e.kv("GET", "dev", "/secrets/x/", token=good)
            if r.status == 429:
                throttled = True
                break
            self.assertEqual(r.status, 200, r.body)
            served += 1
        # and the limit still holds for authorized requests (a window may roll over once)
        self.assertTrue(throttled, "authorized requests were never throttled")
        self.assertGreaterEqual(served, OPS // 2)
        self.assertLessEqual(served, 2 * OPS)
