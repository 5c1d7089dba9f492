"""@azure/keyvault-keys 4.10.2 from npm (pinned by js/package-lock.json), unchanged, against the keys
API of `mivault up`: KeyClient and CryptographyClient, every algorithm, signatures verified by
node:crypto with the public JWK alone, and the service's errors as RestError (js/keys.js)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_js_sdk  # noqa: E402


def setUpModule():
    test_js_sdk.ensure_node_modules()


class JsKeysTest(test_js_sdk.JsTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up.cli("role", "assignment", "create", "--assignee", cls.system_principal(), "--role",
                   "Key Vault Crypto Officer", "--scope", "vault:dev")

    def test_key_and_cryptography_clients(self):
        p = "jsk-"
        c = self.node("keys.js", {"prefix": p}, timeout=300)
        r = self.ok(c, "create.rsa")
        self.assertEqual((r["kty"], r["n"], r["tags"], r["d"]), ("RSA", 256, {"t": "js"}, None))
        self.assertEqual(r["ops"], ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
        for crv, n in (("P-256", 32), ("P-384", 48), ("P-521", 66), ("P-256K", 32)):
            self.assertEqual(self.ok(c, "create.ec." + crv), {"kty": "EC", "crv": crv, "x": n, "ops": ["sign", "verify"]})
        self.assertEqual(self.ok(c, "get.latest"), r["version"])
        self.assertEqual(self.ok(c, "get.version"), p + "rsa")
        pages = self.ok(c, "list.pages")
        self.assertTrue(all(len(pg) <= 2 for pg in pages))
        self.assertEqual(sum(pages, []), sorted(p + n for n in ("rsa", "ecP256", "ecP384", "ecP521", "ecP256K")))
        self.assertEqual(self.ok(c, "update"), {"tags": {"u": "1"}, "enabled": True})
        self.rest_error(c, "get.missing", 404, "KeyNotFound")
        self.rest_error(c, "create.small", 400, "BadParameter")
        for source in ("key", "id"):
            for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K"):
                self.assertEqual(self.ok(c, "sign.%s.%s" % (source, alg)), [True, True, True], alg)
            for alg in ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256"):
                self.assertEqual(self.ok(c, "crypt.%s.%s" % (source, alg)), [True, True], alg)
        self.assertIs(self.ok(c, "verify.wrong"), False)
        self.assertEqual(self.ok(c, "create.limited"), ["sign", "verify"])
        self.rest_error(c, "op.forbidden", 403, "Forbidden", "KeyOperationForbidden")
        self.rest_error(c, "digest.length", 400, "BadParameter")
        self.assertEqual(self.ok(c, "import"), {"x": True, "d": None})
        d = self.ok(c, "delete")
        self.assertTrue(d["recoveryId"].endswith("/deletedkeys/" + p + "ecP384"), d)
        self.assertEqual(self.ok(c, "deleted.get"), p + "ecP384")
        self.rest_error(c, "create.over.deleted", 409, "Conflict", "ObjectIsDeletedButRecoverable")
        self.assertEqual(self.ok(c, "recover"), p + "ecP384")
        self.assertEqual(self.ok(c, "purge"), [])
        self.assertEqual(self.ok(c, "wire"), ["2025-07-01"])
