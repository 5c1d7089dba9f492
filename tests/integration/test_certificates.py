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
from harness import MivaultTest

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

    def test_unknown_issuer_merge(self):
        pol = dict(POLICY, issuer={"name": "Unknown"}, key_props={"kty": "EC", "crv": "P-256"},
                   secret_props={"contentType": "application/x-pem-file"})
        op = self.create("ext", pol).json()
        self.assertEqual(self.kv("GET", "/certificates/ext/pending").json()["status"], "inProgress")
        self.assertAzureError(self.kv("GET", "/certificates/ext/"), 404, "CertificateNotFound")
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
        # now + 200 days: past 50 % of a year, not yet 30 days before expiry
        os.environ["MIVAULT_TEST_CLOCK_OFFSET_SECS"] = str(200 * 86400)
        try:
            e.stop(e.server)
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
