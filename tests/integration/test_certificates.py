"""Key Vault certificates on real processes (docs/certificates.md): the create / pending / merge
flow, the shapes (ids, x5t, cer, policy), the certificate's secret, paging, soft delete, and every
error of the operations, with nothing stored by a refused request. Runs on SQLite and, with
MIVAULT_TEST_STORE=postgresql, on PostgreSQL."""
import base64
import datetime
import hashlib
import os
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from harness import MivaultTest, free_port

POLICY = {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=it.test", "sans": {"dns_names": ["it.test"]}}}


def b64url_nopad(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class CertificatesTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        self.principal = vm["identity"]["principalId"]
        e.grant(self.principal, "Key Vault Administrator", e.vault_scope("dev"))
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(self.port, e.vault_resource())
        self.base = "https://dev.vault.localhost:%d" % e.server_port

    def kv(self, method, path, **kw):
        return self.env.kv(method, "dev", path, token=self.tok, **kw)

    def create(self, name, policy=POLICY, **extra):
        r = self.kv("POST", "/certificates/%s/create" % name, body=dict({"policy": policy}, **extra))
        self.assertEqual(r.status, 202, r.body)
        return r

    def assertNoCertificates(self):
        self.assertEqual(self.kv("GET", "/certificates").json()["value"], [])

    def test_self_signed_create_pending_get_and_secret(self):
        r = self.create("web", tags={"a": "b"})
        op = r.json()
        self.assertEqual(op["status"], "inProgress")
        self.assertEqual(op["id"], self.base + "/certificates/web/pending")
        self.assertEqual(op["issuer"], {"name": "Self"})
        self.assertFalse(op["cancellation_requested"])
        csr = x509.load_der_x509_csr(base64.b64decode(op["csr"]))
        self.assertTrue(csr.is_signature_valid)
        loc = r.header("Location")
        self.assertTrue(loc.startswith(self.base + "/certificates/web/pending?api-version=7.5&request_id="), loc)
        p = self.kv("GET", "/certificates/web/pending").json()
        self.assertEqual(p["status"], "completed")
        self.assertEqual(p["target"], self.base + "/certificates/web")
        self.assertEqual(p["request_id"], op["request_id"])
        self.assertAzureError(self.kv("GET", "/certificates/web/pending?request_id=0123"), 404,
                              "PendingCertificateNotFound")

        b = self.kv("GET", "/certificates/web/").json()
        v = b["id"].rsplit("/", 1)[1]
        self.assertRegex(v, "^[0-9a-f]{32}$")
        self.assertEqual(b["kid"], self.base + "/keys/web/" + v)
        self.assertEqual(b["sid"], self.base + "/secrets/web/" + v)
        der = base64.b64decode(b["cer"], validate=True)
        self.assertEqual(b["x5t"], b64url_nopad(hashlib.sha1(der).digest()))
        self.assertEqual(len(b["x5t"]), 27)
        cert = x509.load_der_x509_certificate(der)
        self.assertEqual(b["attributes"]["exp"], int(cert.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()))
        self.assertEqual(b["attributes"]["recoveryLevel"], "Recoverable+Purgeable")
        self.assertEqual(b["tags"], {"a": "b"})
        pol = b["policy"]
        self.assertEqual(pol["id"], self.base + "/certificates/web/policy")
        self.assertEqual(pol["key_props"], {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False})
        self.assertEqual(pol["secret_props"], {"contentType": "application/x-pkcs12"})
        self.assertEqual(pol["x509_props"]["ekus"], ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"])
        self.assertEqual(pol["x509_props"]["key_usage"], ["digitalSignature", "keyEncipherment"])
        self.assertEqual(pol["x509_props"]["validity_months"], 12)
        self.assertEqual(pol["lifetime_actions"], [{"trigger": {"lifetime_percentage": 80},
                                                    "action": {"action_type": "AutoRenew"}}])
        self.assertNotIn("policy", self.kv("GET", "/certificates/web/" + v).json())
        self.assertEqual(self.kv("GET", "/certificates/WEB").json()["id"], b["id"])

        s = self.kv("GET", "/secrets/web/").json()
        self.assertEqual(s["id"], self.base + "/secrets/web/" + v)
        self.assertEqual(s["kid"], self.base + "/keys/web/" + v)
        self.assertTrue(s["managed"])
        self.assertEqual(s["contentType"], "application/x-pkcs12")
        key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(s["value"]), None)
        self.assertEqual(leaf.public_bytes(serialization.Encoding.DER), der)
        self.assertEqual(key.public_key().public_numbers(), cert.public_key().public_numbers())

        # the key of the same name and version: managed, key_ops from the key usage, it signs
        k = self.kv("GET", "/keys/web/").json()
        self.assertEqual(k["key"]["kid"], self.base + "/keys/web/" + v)
        self.assertTrue(k["managed"])
        self.assertEqual(k["key"]["kty"], "RSA")
        self.assertEqual(k["key"]["key_ops"], ["sign", "verify", "wrapKey", "unwrapKey"])
        self.assertEqual(base64.urlsafe_b64decode(k["key"]["n"] + "==")[-8:],
                         cert.public_key().public_numbers().n.to_bytes(256, "big")[-8:])
        digest = hashlib.sha256(b"hello").digest()
        sig = self.kv("POST", "/keys/web/%s/sign" % v, body={"alg": "RS256", "value": b64url_nopad(digest)})
        self.assertEqual(sig.status, 200, sig.body)
        from cryptography.hazmat.primitives.asymmetric import padding, utils
        cert.public_key().verify(base64.urlsafe_b64decode(sig.json()["value"] + "=="), digest, padding.PKCS1v15(),
                                 utils.Prehashed(hashes.SHA256()))
        self.assertAzureError(self.kv("POST", "/keys/web/%s/encrypt" % v,
                                      body={"alg": "RSA-OAEP", "value": b64url_nopad(b"x")}), 403)

    def test_managed_secret_and_key_refuse_plain_writes(self):
        self.create("mg")
        b = self.kv("GET", "/certificates/mg/").json()
        v = b["id"].rsplit("/", 1)[1]
        kid = self.base + "/keys/mg/" + v
        before_s = self.kv("GET", "/secrets/mg/").json()
        before_k = self.kv("GET", "/keys/mg/").json()
        refusals = [
            self.kv("PUT", "/secrets/mg", body={"value": "x"}),
            self.kv("PUT", "/secrets/MG", body={"value": "x"}),
            self.kv("PATCH", "/secrets/mg/" + v, body={"contentType": "text/plain"}),
            self.kv("PATCH", "/secrets/mg/", body={"attributes": {"enabled": False}}),
            self.kv("DELETE", "/secrets/mg"),
            self.kv("PATCH", "/keys/mg/" + v, body={"attributes": {"enabled": False}}),
            self.kv("PATCH", "/keys/mg/", body={"key_ops": ["sign"]}),
            self.kv("DELETE", "/keys/mg"),
            self.kv("POST", "/keys/mg/create", body={"kty": "EC"}),
            self.kv("POST", "/keys/mg/rotate"),
            self.kv("PUT", "/keys/mg/rotationpolicy", body={"lifetimeActions": [
                {"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}]}),
        ]
        for r in refusals:
            self.assertAzureError(r, 403, "Forbidden")
            self.assertIn("is managed by a certificate", r.json()["error"]["message"])
        # nothing changed: same versions, same attributes
        self.assertEqual(self.kv("GET", "/secrets/mg/").json(), before_s)
        self.assertEqual(self.kv("GET", "/keys/mg/").json(), before_k)
        self.assertEqual(len(self.kv("GET", "/secrets/mg/versions").json()["value"]), 1)
        self.assertEqual(len(self.kv("GET", "/keys/mg/versions").json()["value"]), 1)

        # managed (and, on bundles, kid) everywhere the certificate's secret shows
        self.kv("PUT", "/secrets/plain", body={"value": "p", "contentType": "application/x-pkcs12"})
        items = {i["id"].rsplit("/", 1)[1]: i for i in self.kv("GET", "/secrets").json()["value"]}
        self.assertIs(items["mg"]["managed"], True)
        self.assertNotIn("kid", items["mg"])
        self.assertNotIn("managed", items["plain"])
        ver = self.kv("GET", "/secrets/mg/versions").json()["value"]
        self.assertEqual(ver[0]["id"], self.base + "/secrets/mg/" + v)
        self.assertIs(ver[0]["managed"], True)
        self.assertNotIn("managed", self.kv("GET", "/secrets/plain/versions").json()["value"][0])
        kitems = {i["kid"].rsplit("/", 1)[1]: i for i in self.kv("GET", "/keys").json()["value"]}
        self.assertIs(kitems["mg"]["managed"], True)
        self.assertIs(self.kv("GET", "/keys/mg/versions").json()["value"][0]["managed"], True)

        # deleting the certificate still takes both; the deleted secret says managed too
        self.assertEqual(self.kv("DELETE", "/certificates/mg").status, 200)
        ds = self.kv("GET", "/deletedsecrets/mg").json()
        self.assertIs(ds["managed"], True)
        self.assertEqual(ds["kid"], kid)
        self.assertIs(self.kv("GET", "/deletedsecrets").json()["value"][0]["managed"], True)
        self.assertTrue(self.kv("GET", "/deletedkeys/mg").json()["managed"])
        self.assertAzureError(self.kv("GET", "/secrets/mg/"), 404, "SecretNotFound")
        self.assertAzureError(self.kv("GET", "/keys/mg/"), 404, "KeyNotFound")
        # recover and purge go through the certificate too
        for method, path in (("POST", "/deletedsecrets/mg/recover"), ("DELETE", "/deletedsecrets/mg"),
                             ("POST", "/deletedkeys/mg/recover"), ("DELETE", "/deletedkeys/mg")):
            r = self.kv(method, path)
            self.assertAzureError(r, 403, "Forbidden")
            self.assertIn("is managed by a certificate", r.json()["error"]["message"])
        self.assertIs(self.kv("GET", "/deletedsecrets/mg").json()["managed"], True)
        self.assertEqual(self.kv("POST", "/deletedcertificates/mg/recover").status, 200)
        self.assertIs(self.kv("GET", "/secrets/mg/").json()["managed"], True)
        self.assertIs(self.kv("GET", "/keys/mg/").json()["managed"], True)
        self.kv("DELETE", "/certificates/mg")
        self.assertEqual(self.kv("DELETE", "/deletedcertificates/mg").status, 204)
        self.assertAzureError(self.kv("GET", "/deletedsecrets/mg"), 404)
        self.assertAzureError(self.kv("GET", "/deletedkeys/mg"), 404)
        # a certificate's key restored from its backup without the certificate is an ordinary key
        self.create("orph")
        blob = self.kv("POST", "/keys/orph/backup").json()["value"]
        self.kv("DELETE", "/certificates/orph")
        self.assertEqual(self.kv("DELETE", "/deletedcertificates/orph").status, 204)
        self.assertEqual(self.kv("POST", "/keys/restore", body={"value": blob}).status, 200)
        self.assertEqual(self.kv("PATCH", "/keys/orph/", body={"tags": {"o": "1"}}).status, 200)
        self.assertEqual(self.kv("DELETE", "/keys/orph").status, 200)
        # a plain secret / key of a name no certificate holds is still writable and deletable
        self.assertEqual(self.kv("PATCH", "/secrets/plain/", body={"tags": {"t": "1"}}).status, 200)
        self.assertEqual(self.kv("DELETE", "/secrets/plain").status, 200)

    def test_not_exportable_secret_holds_no_key(self):
        for ct in ("application/x-pkcs12", "application/x-pem-file"):
            name = "nx" + ct[-3:]
            self.create(name, dict(POLICY, key_props={"exportable": False}, secret_props={"contentType": ct}))
            v = self.kv("GET", "/secrets/%s/" % name).json()["value"]
            if ct.endswith("pkcs12"):
                key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(v), None)
                self.assertIsNone(key)
                self.assertEqual(len(([leaf] if leaf else []) + extra), 1)  # the certificate only
            else:
                self.assertNotIn("PRIVATE KEY", v)
                self.assertIn("-----BEGIN CERTIFICATE-----", v)
            # the key still signs in the vault
            k = self.kv("GET", "/keys/%s/" % name).json()["key"]["kid"]
            r = self.kv("POST", "/keys/%s/%s/sign" % (name, k.rsplit("/", 1)[1]),
                        body={"alg": "RS256", "value": b64url_nopad(hashlib.sha256(b"x").digest())})
            self.assertEqual(r.status, 200, r.body)

    def test_unknown_issuer_merge(self):
        pol = dict(POLICY, issuer={"name": "Unknown"}, key_props={"kty": "EC", "crv": "P-256"},
                   secret_props={"contentType": "application/x-pem-file"})
        op = self.create("ext", pol).json()
        self.assertEqual(self.kv("GET", "/certificates/ext/pending").json()["status"], "inProgress")
        # while pending, the version exists without a certificate (JS's operation poller reads it)
        pv = self.kv("GET", "/certificates/ext/").json()
        self.assertNotIn("cer", pv)
        self.assertEqual(pv["policy"]["issuer"], {"name": "Unknown"})
        self.assertEqual(self.kv("GET", "/certificates").json()["value"], [])
        self.assertEqual(len(self.kv("GET", "/certificates?includePending=true").json()["value"]), 1)
        # a second create or an import while in progress: 409
        self.assertAzureError(self.kv("POST", "/certificates/ext/create", body={"policy": pol}), 409, "Forbidden")
        csr = x509.load_der_x509_csr(base64.b64decode(op["csr"]))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "IT CA")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=9))
              .sign(ca_key, hashes.SHA256()))
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(name).public_key(csr.public_key())
                .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=5))
                .sign(ca_key, hashes.SHA256()))
        d = lambda c: base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()  # noqa: E731
        self.assertAzureError(self.kv("POST", "/certificates/ext/pending/merge", body={"x5c": [d(ca)]}), 400,
                              "BadParameter")
        self.assertAzureError(self.kv("POST", "/certificates/ext/pending/merge", body={"x5c": ["@@"]}), 400)
        self.assertAzureError(self.kv("POST", "/certificates/ext/pending/merge", body={"x5c": []}), 400)
        r = self.kv("POST", "/certificates/ext/pending/merge", body={"x5c": [d(ca), d(leaf)]})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["id"], pv["id"])  # the pending version, now with its certificate
        self.assertEqual(r.json()["cer"], d(leaf))
        self.assertEqual(self.kv("GET", "/certificates/ext/pending").json()["status"], "completed")
        self.assertAzureError(self.kv("POST", "/certificates/ext/pending/merge", body={"x5c": [d(leaf)]}), 403,
                              "Forbidden")
        s = self.kv("GET", "/secrets/ext").json()
        self.assertEqual(s["contentType"], "application/x-pem-file")
        self.assertTrue(s["value"].startswith("-----BEGIN PRIVATE KEY-----"))
        self.assertEqual(s["value"].count("-----BEGIN CERTIFICATE-----"), 2)

    def test_cancel_and_delete_pending(self):
        pol = dict(POLICY, issuer={"name": "Unknown"})
        self.create("pend", pol)
        self.assertAzureError(self.kv("PATCH", "/certificates/pend/pending", body={"x": 1}), 400, "BadParameter")
        c = self.kv("PATCH", "/certificates/pend/pending", body={"cancellation_requested": True}).json()
        self.assertEqual((c["status"], c["cancellation_requested"]), ("cancelled", True))
        self.assertAzureError(self.kv("PATCH", "/certificates/pend/pending", body={"cancellation_requested": True}),
                              403, "Forbidden")
        self.assertEqual(self.kv("DELETE", "/certificates/pend/pending").json()["status"], "cancelled")
        for m in ("GET", "DELETE"):
            self.assertAzureError(self.kv(m, "/certificates/pend/pending"), 404, "PendingCertificateNotFound")
        self.assertAzureError(self.kv("POST", "/certificates/pend/pending/merge", body={"x5c": ["AA=="]}), 404,
                              "PendingCertificateNotFound")
        self.assertNoCertificates()

    def test_bad_requests_store_nothing(self):
        bad_policies = [
            {"key_props": {"kty": "oct"}, "x509_props": {"subject": "CN=x"}},
            {"key_props": {"kty": "RSA", "key_size": 1024}, "x509_props": {"subject": "CN=x"}},
            {"key_props": {"kty": "EC", "crv": "P-192"}, "x509_props": {"subject": "CN=x"}},
            {"x509_props": {"subject": "nonsense"}},
            {"x509_props": {}},
            {"x509_props": {"subject": "CN=x", "validity_months": 0}},
            {"x509_props": {"subject": "CN=x", "ekus": ["serverAuth"]}},
            {"x509_props": {"subject": "CN=x", "key_usage": ["everything"]}},
            {"key_props": {"kty": "EC"}, "x509_props": {"subject": "CN=x", "key_usage": ["keyEncipherment"]}},
            {"x509_props": {"subject": "CN=x"}, "secret_props": {"contentType": "text/plain"}},
            {"x509_props": {"subject": "CN=x"}, "lifetime_actions": [{"trigger": {"lifetime_percentage": 100},
                                                                      "action": {"action_type": "AutoRenew"}}]},
            {"x509_props": {"subject": "CN=x"}, "issuer": {"name": "SomeCA"}},
            "not an object",
        ]
        for p in bad_policies:
            r = self.kv("POST", "/certificates/bad/create", body={"policy": p, "issuer": {"name": "Self"}})
            self.assertAzureError(r, 400, "BadParameter")
        for body in (b"", b"{", b"[]", b'{"policy":{},"policy":{}}'):
            r = self.kv("POST", "/certificates/bad/create", body=body, headers={"Content-Type": "application/json"})
            self.assertAzureError(r, 400, "BadParameter")
        self.assertAzureError(self.kv("POST", "/certificates/bad/create", body={}), 400, "BadParameter")
        for value in ("", "garbage", base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),
                      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
            self.assertAzureError(self.kv("POST", "/certificates/bad/import", body={"value": value}), 400,
                                  "BadParameter")
        self.assertAzureError(self.kv("POST", "/certificates/bad/import", body={"pwd": "x"}), 400, "BadParameter")
        self.assertAzureError(self.kv("POST", "/certificates/a_b/create", body={"policy": POLICY}), 400,
                              "BadParameter")
        self.assertNoCertificates()
        self.assertAzureError(self.kv("GET", "/secrets/bad/"), 404, "SecretNotFound")
        for path in ("/certificates/none/", "/certificates/none/policy", "/deletedcertificates/none"):
            self.assertAzureError(self.kv("GET", path), 404, "CertificateNotFound")
        self.assertAzureError(self.kv("DELETE", "/certificates/none"), 404, "CertificateNotFound")
        self.assertAzureError(self.kv("DELETE", "/deletedcertificates/none"), 404, "CertificateNotFound")
        self.assertAzureError(self.kv("POST", "/deletedcertificates/none/recover"), 404, "CertificateNotFound")
        self.assertAzureError(self.kv("PATCH", "/certificates/none/policy", body={}), 404, "CertificateNotFound")

    def test_update_policy_and_properties(self):
        self.create("upd")
        self.assertAzureError(self.kv("PATCH", "/certificates/upd/policy", body={"key_props": {"kty": "oct"}}), 400)
        p = self.kv("PATCH", "/certificates/upd/policy", body={"x509_props": {"validity_months": 6},
                                                                "secret_props": {"contentType": "application/x-pem-file"}})
        self.assertEqual(p.status, 200, p.body)
        p = p.json()
        self.assertEqual(p["x509_props"]["validity_months"], 6)
        self.assertEqual(p["x509_props"]["subject"], "CN=it.test")  # the rest kept
        self.assertEqual(p["secret_props"]["contentType"], "application/x-pem-file")
        self.assertEqual(self.kv("GET", "/certificates/upd/policy").json(), p)
        u = self.kv("PATCH", "/certificates/upd/", body={"attributes": {"enabled": False}, "tags": {"t": "1"}}).json()
        self.assertFalse(u["attributes"]["enabled"])
        self.assertEqual(u["tags"], {"t": "1"})
        self.assertAzureError(self.kv("PATCH", "/certificates/upd/", body={"attributes": {"enabled": "no"}}), 400)
        # a second create uses the stored policy when none is given: a new version, PEM secret
        self.assertEqual(self.kv("POST", "/certificates/upd/create", body={}).status, 202)
        self.assertEqual(len(self.kv("GET", "/certificates/upd/versions").json()["value"]), 2)
        self.assertEqual(self.kv("GET", "/secrets/upd").json()["contentType"], "application/x-pem-file")

    def test_paging_delete_recover_purge(self):
        for i in range(3):
            self.create("p%d" % i)
        r = self.kv("GET", "/certificates?maxresults=2").json()
        self.assertEqual([i["id"].rsplit("/", 1)[1] for i in r["value"]], ["p0", "p1"])
        self.assertIn("x5t", r["value"][0])
        nxt = r["nextLink"]
        self.assertTrue(nxt.startswith(self.base + "/certificates?api-version=7.5&$skiptoken="), nxt)
        r2 = self.env.https("GET", nxt.split(str(self.env.server_port), 1)[1], host=self.env.vault_host("dev"),
                            token=self.tok).json()
        self.assertEqual([i["id"].rsplit("/", 1)[1] for i in r2["value"]], ["p2"])
        self.assertIsNone(r2["nextLink"])
        self.assertAzureError(self.kv("GET", "/certificates?maxresults=26"), 400, "BadParameter")

        d = self.kv("DELETE", "/certificates/p1").json()
        self.assertEqual(d["recoveryId"], self.base + "/deletedcertificates/p1")
        self.assertGreater(d["scheduledPurgeDate"], d["deletedDate"])
        self.assertIn("policy", d)
        self.assertAzureError(self.kv("GET", "/certificates/p1/"), 404, "CertificateNotFound")
        self.assertAzureError(self.kv("GET", "/secrets/p1/"), 404, "SecretNotFound")
        self.assertAzureError(self.kv("GET", "/keys/p1/"), 404, "KeyNotFound")
        self.assertEqual(self.kv("GET", "/deletedcertificates/p1").json()["recoveryId"], d["recoveryId"])
        self.assertEqual([i["recoveryId"] for i in self.kv("GET", "/deletedcertificates").json()["value"]],
                         [d["recoveryId"]])
        r = self.kv("POST", "/certificates/p1/create", body={"policy": POLICY})
        self.assertAzureError(r, 409, "Conflict")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable")
        rec = self.kv("POST", "/deletedcertificates/p1/recover").json()
        self.assertEqual(rec["id"], d["id"])
        self.assertEqual(self.kv("GET", "/secrets/p1/").status, 200)
        self.assertEqual(self.kv("GET", "/keys/p1/").json()["managed"], True)
        self.kv("DELETE", "/certificates/p1")
        self.assertEqual(self.kv("DELETE", "/deletedcertificates/p1").status, 204)
        self.assertAzureError(self.kv("GET", "/deletedcertificates/p1"), 404)
        self.assertAzureError(self.kv("GET", "/deletedsecrets/p1"), 404)
        self.assertAzureError(self.kv("GET", "/deletedkeys/p1"), 404)
        self.create("p1")

    def test_backup_restore(self):
        self.create("bk", tags={"k": "v"})
        self.assertEqual(self.kv("POST", "/certificates/bk/create", body={}).status, 202)
        before = self.kv("GET", "/certificates/bk/").json()
        secret = self.kv("GET", "/secrets/bk/").json()["value"]
        blob = self.kv("POST", "/certificates/bk/backup").json()["value"]
        self.assertRegex(blob, "^[A-Za-z0-9_-]+$")
        r = self.kv("POST", "/certificates/restore", body={"value": blob})
        self.assertAzureError(r, 409, "Conflict")
        self.kv("DELETE", "/certificates/bk")
        self.assertAzureError(self.kv("POST", "/certificates/restore", body={"value": blob}), 409, "Conflict")
        self.assertEqual(self.kv("DELETE", "/deletedcertificates/bk").status, 204)
        r = self.kv("POST", "/certificates/restore", body={"value": blob})
        self.assertEqual(r.status, 200, r.body)
        after = r.json()
        for k in ("id", "kid", "sid", "x5t", "cer", "tags"):
            self.assertEqual(after.get(k), before.get(k), k)
        self.assertEqual(after["policy"]["x509_props"], before["policy"]["x509_props"])
        self.assertEqual(len(self.kv("GET", "/certificates/bk/versions").json()["value"]), 2)
        def opened(v):  # the PFX is made anew (its MAC salt is random): compare what it holds
            k, c, _ = pkcs12.load_key_and_certificates(base64.b64decode(v), None)
            return (k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()), c.public_bytes(serialization.Encoding.DER))
        self.assertEqual(opened(self.kv("GET", "/secrets/bk/").json()["value"]), opened(secret))
        self.assertTrue(self.kv("GET", "/keys/bk/").json()["managed"])
        for bad in ({"value": blob[:-8]}, {"value": "AAAA"}, {"value": 5}, {}):
            self.assertAzureError(self.kv("POST", "/certificates/restore", body=bad), 400, "BadParameter")
        self.assertAzureError(self.kv("POST", "/certificates/none/backup"), 404, "CertificateNotFound")

    def test_issuers_contacts(self):
        self.assertAzureError(self.kv("GET", "/certificates/contacts"), 404, "ContactsNotFound")
        r = self.kv("PUT", "/certificates/contacts", body={"contacts": [{"email": "a@x.test"}]}).json()
        self.assertEqual(r, {"id": self.base + "/certificates/contacts", "contacts": [{"email": "a@x.test"}]})
        self.assertEqual(self.kv("DELETE", "/certificates/contacts").json()["contacts"], [{"email": "a@x.test"}])
        self.assertAzureError(self.kv("PUT", "/certificates/issuers/ca1", body={}), 400, "BadParameter")
        i = self.kv("PUT", "/certificates/issuers/ca1", body={"provider": "Test",
                                                            "credentials": {"account_id": "a", "pwd": "secret"}})
        self.assertEqual(i.status, 200, i.body)
        self.assertEqual(i.json()["credentials"], {"account_id": "a"})  # the password is not kept
        self.assertEqual(self.kv("GET", "/certificates/issuers").json()["value"],
                         [{"id": self.base + "/certificates/issuers/ca1", "provider": "Test"}])
        self.assertEqual(self.kv("DELETE", "/certificates/issuers/ca1").status, 200)
        self.assertAzureError(self.kv("GET", "/certificates/issuers/ca1"), 404)

    def test_builtin_roles(self):
        """Certificates Officer: every certificate action, not the secret's value; Certificate User:
        read the certificate, its secret and key, create nothing; Reader: metadata only."""
        e = self.env
        self.create("rb")
        toks = {}
        for i, role in enumerate(("Key Vault Certificates Officer", "Key Vault Certificate User", "Key Vault Reader")):
            vm = e.vm("r%d" % i)
            e.grant(vm["identity"]["principalId"], role, e.vault_scope("dev"))
            _, port = e.start_agent("r%d" % i, join=vm["joinToken"])
            toks[role.split()[-2] if role != "Key Vault Reader" else "Reader"] = e.token(port, e.vault_resource())
        off, user, reader = toks["Certificates"], toks["Certificate"], toks["Reader"]
        kv = lambda t, m, p, **kw: e.kv(m, "dev", p, token=t, **kw)  # noqa: E731
        self.assertEqual(kv(off, "POST", "/certificates/off/create", body={"policy": POLICY}).status, 202)
        self.assertEqual(kv(off, "PATCH", "/certificates/off/policy", body={}).status, 200)
        self.assertEqual(kv(off, "PUT", "/certificates/issuers/i1", body={"provider": "Test"}).status, 200)
        self.assertEqual(kv(off, "PUT", "/certificates/contacts", body={"contacts": []}).status, 200)
        self.assertAzureError(kv(off, "GET", "/secrets/off/"), 403, "Forbidden")
        self.assertEqual(kv(user, "GET", "/certificates/rb/").status, 200)
        self.assertEqual(kv(user, "GET", "/secrets/rb/").status, 200)
        self.assertEqual(kv(user, "GET", "/keys/rb/").status, 200)
        self.assertAzureError(kv(user, "POST", "/certificates/u/create", body={"policy": POLICY}), 403, "Forbidden")
        self.assertAzureError(kv(user, "DELETE", "/certificates/rb"), 403, "Forbidden")
        self.assertEqual(kv(reader, "GET", "/certificates/rb/").status, 200)
        self.assertEqual(kv(reader, "GET", "/certificates/rb/policy").status, 200)
        self.assertEqual(kv(reader, "GET", "/certificates/issuers").status, 200)
        self.assertAzureError(kv(reader, "GET", "/secrets/rb/"), 403, "Forbidden")
        self.assertAzureError(kv(reader, "PATCH", "/certificates/rb/", body={"tags": {}}), 403, "Forbidden")
        self.assertAzureError(kv(reader, "POST", "/certificates/rb/backup"), 403, "Forbidden")

    def test_rbac(self):
        e = self.env
        vm = e.vm("vm2")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm2", join=vm["joinToken"])
        tok = e.token(port, e.vault_resource())
        r = e.kv("POST", "dev", "/certificates/x/create", token=tok, body={"policy": POLICY})
        self.assertAzureError(r, 403, "Forbidden")
        self.assertIn("Microsoft.KeyVault/vaults/certificates/create/action", r.body.decode())
        self.assertAzureError(e.kv("GET", "dev", "/certificates", token=tok), 403, "Forbidden")
        self.assertNoCertificates()


class CertificateRenewalTest(MivaultTest):
    """Auto-renewal by the scheduler (docs/certificates.md "Auto-renewal"), with the test-only
    clock offset MIVAULT_TEST_CLOCK_OFFSET_SECS instead of waiting months."""

    def test_auto_renew_at_percentage_and_days_before_expiry(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Administrator", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        tok = e.token(port, e.vault_resource())
        kv = lambda m, p, **kw: e.kv(m, "dev", p, token=tok, **kw)  # noqa: E731
        pct = dict(POLICY, x509_props={"subject": "CN=renew", "validity_months": 12},
                   lifetime_actions=[{"trigger": {"lifetime_percentage": 50}, "action": {"action_type": "AutoRenew"}}])
        days = dict(POLICY, x509_props={"subject": "CN=renew2", "validity_months": 12},
                    lifetime_actions=[{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "AutoRenew"}}])
        mail = dict(POLICY, x509_props={"subject": "CN=mail", "validity_months": 12},
                    lifetime_actions=[{"trigger": {"lifetime_percentage": 1}, "action": {"action_type": "EmailContacts"}}])
        for name, pol in (("pct", pct), ("days", days), ("mail", mail)):
            self.assertEqual(kv("POST", "/certificates/%s/create" % name, body={"policy": pol}).status, 202)
        first = {n: kv("GET", "/certificates/%s/" % n).json() for n in ("pct", "days", "mail")}
        # now + 200 days: past 50 % of a year, not yet 30 days before expiry; two servers on the
        # store, each with its scheduler: each due certificate is renewed once
        os.environ["MIVAULT_TEST_CLOCK_OFFSET_SECS"] = str(200 * 86400)
        try:
            e.stop(e.server)
            e.start_server(listen_port=free_port())
            e.start_server()
        finally:
            del os.environ["MIVAULT_TEST_CLOCK_OFFSET_SECS"]
        deadline = time.time() + 20
        while time.time() < deadline and len(kv("GET", "/certificates/pct/versions").json()["value"]) < 2:
            time.sleep(0.5)
        time.sleep(6)  # one more tick: nothing renews twice
        self.assertEqual(len(kv("GET", "/certificates/pct/versions").json()["value"]), 2)
        self.assertEqual(len(kv("GET", "/certificates/days/versions").json()["value"]), 1)
        self.assertEqual(len(kv("GET", "/certificates/mail/versions").json()["value"]), 1)
        new = kv("GET", "/certificates/pct/").json()
        self.assertNotEqual(new["id"], first["pct"]["id"])
        self.assertNotEqual(new["cer"], first["pct"]["cer"])
        self.assertGreaterEqual(new["attributes"]["nbf"], first["pct"]["attributes"]["nbf"] + 200 * 86400 - 60)
        v = new["id"].rsplit("/", 1)[1]
        self.assertEqual(kv("GET", "/secrets/pct/").json()["id"].rsplit("/", 1)[1], v)
        self.assertEqual(kv("GET", "/keys/pct/").json()["key"]["kid"].rsplit("/", 1)[1], v)
        self.assertNotIn("renewed_from", new["policy"])
        # now + 340 days: 30 days before the first version's expiry
        os.environ["MIVAULT_TEST_CLOCK_OFFSET_SECS"] = str(340 * 86400)
        try:
            e.stop(e.server)
            e.start_server()
        finally:
            del os.environ["MIVAULT_TEST_CLOCK_OFFSET_SECS"]
        deadline = time.time() + 20
        while time.time() < deadline and len(kv("GET", "/certificates/days/versions").json()["value"]) < 2:
            time.sleep(0.5)
        self.assertEqual(len(kv("GET", "/certificates/days/versions").json()["value"]), 2)
        self.assertEqual(len(kv("GET", "/certificates/mail/versions").json()["value"]), 1)
