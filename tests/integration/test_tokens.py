"""Forged and wrong tokens are refused by the vault with 401 (issue 2 §8)."""
import hmac
import hashlib
import json
import time
import urllib.request

from harness import MivaultTest, b64url, jwt_parts


class ForgedTokenTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        self.principal = vm["identity"]["principalId"]
        e.grant(self.principal, "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])
        self.good = e.token(self.port, e.vault_resource())
        self.hdr, self.claims, self.sig = jwt_parts(self.good)
        r = e.kv("PUT", "dev", "/secrets/s", token=self.good, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)

    def refused(self, token, akv=None):
        r = self.env.kv("GET", "dev", "/secrets/s/", token=token)
        err = self.assertAzureError(r, 401, "Unauthorized")
        self.assertIn("Bearer authorization=", r.header("WWW-Authenticate"))
        if akv:
            self.assertIn(akv, err["message"])
        return err

    def mint(self, **changes):
        c = dict(self.claims)
        c.update(changes)
        return self.env.run("token", "mint", "--claims", json.dumps(c)).stdout.strip()

    def test_good_token_accepted(self):
        r = self.env.kv("GET", "dev", "/secrets/s/", token=self.good)
        self.assertEqual(r.status, 200)

    def test_minted_token_with_same_claims_accepted(self):
        r = self.env.kv("GET", "dev", "/secrets/s/", token=self.mint())
        self.assertEqual(r.status, 200, r.body)

    def test_alg_none(self):
        h = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": self.hdr["kid"]}).encode())
        p = self.good.split(".")[1]
        self.refused(h + "." + p + ".")
        self.refused(h + "." + p + "." + self.sig)

    def test_hs256_signed_with_public_key(self):
        e = self.env
        jwks = json.loads(e.https("GET", "/%s/discovery/v2.0/keys" % e.tenant).body)
        key = jwks["keys"][0]
        h = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key["kid"]}).encode())
        p = self.good.split(".")[1]
        for secret in (json.dumps(key).encode(), key["n"].encode(), key["x5c"][0].encode()):
            sig = b64url(hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest())
            self.refused(h + "." + p + "." + sig)

    def test_unknown_kid(self):
        t = self.env.run("token", "mint", "--kid", "unknownkid0000000000000000", "--claims",
                         json.dumps(self.claims)).stdout.strip()
        self.refused(t)

    def test_tampered_payload(self):
        c = dict(self.claims, oid="00000000-0000-4000-8000-000000000000")
        p = b64url(json.dumps(c).encode())
        h, _, s = self.good.split(".")
        self.refused(h + "." + p + "." + s)

    def test_expired(self):
        now = int(time.time())
        self.refused(self.mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600), "AKV10017")

    def test_not_yet_valid(self):
        now = int(time.time())
        self.refused(self.mint(nbf=now + 3600, exp=now + 7200))

    def test_wrong_issuer(self):
        self.refused(self.mint(iss="https://sts.windows.net/%s/" % self.env.tenant), "AKV10032")

    def test_wrong_tenant(self):
        self.refused(self.mint(tid="11111111-1111-4111-8111-111111111111"))

    def test_wrong_audience_with_good_signature(self):
        self.refused(self.mint(aud="https://vault.localhost:1"), "AKV10022")

    def test_garbage(self):
        for t in ("x", "a.b", "a.b.c", "a.b.c.d", "." * 3, "eyJ" * 4000):
            self.refused(t)

    def test_azure_audience_accepted(self):
        t = self.env.token(self.port, "https://vault.azure.net")
        r = self.env.kv("GET", "dev", "/secrets/s/", token=t)
        self.assertEqual(r.status, 200, r.body)
