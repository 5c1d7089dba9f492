"""`mivault keyvault certificate ...` (issue 9, Also): create (default policy, PEM content type, az's
camelCase policy, issuer Unknown with a merge), show, list, download (PEM, DER), import (PEM, PFX with a password), the
certificate's secret read through libmivault's mv_secret_get (`keyvault secret show`) and its key
signing through mv_key_sign, delete/recover/purge; usage errors exit 2."""
import base64
import datetime
import hashlib
import json
import os
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from harness import BIN, MivaultTest


def self_signed(key, cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))


class CliCertsTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Administrator", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        self.envvars = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % port)
        self.tmp = tempfile.mkdtemp(prefix="mivault-certs.")

    def run_cli(self, *a):
        r = subprocess.run([BIN] + list(a) + ["--state", self.env.dir], capture_output=True, text=True,
                           env=self.envvars, timeout=90)
        for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(m, r.stderr)
        return r

    def kv(self, *a):
        r = self.run_cli("keyvault", *a)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_create_default_policy_download_secret_key(self):
        c = self.kv("certificate", "create", "--vault-name", "dev", "--name", "web")
        self.assertEqual(c["name"], "web")
        self.assertIn("x5t", c)
        self.assertEqual(c["policy"]["issuer"]["name"], "Self")
        der = base64.b64decode(c["cer"])
        cert = x509.load_der_x509_certificate(der)
        self.assertIn("CN=CLIGetDefaultPolicy", cert.subject.rfc4514_string())
        # Download: PEM (default) and DER; an existing file is not overwritten.
        self.kv("certificate", "download", "--vault-name", "dev", "--name", "web", "--file", self.path("w.pem"))
        with open(self.path("w.pem"), "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER), der)
        self.kv("certificate", "download", "--vault-name", "dev", "--name", "web", "--file", self.path("w.der"),
                "--encoding", "DER")
        with open(self.path("w.der"), "rb") as f:
            self.assertEqual(f.read(), der)
        r = self.run_cli("keyvault", "certificate", "download", "--vault-name", "dev", "--name", "web",
                         "--file", self.path("w.der"))
        self.assertEqual(r.returncode, 1)
        # The secret of the same name, through mv_secret_get: the PFX without password.
        s = self.kv("secret", "show", "--vault-name", "dev", "--name", "web")
        self.assertEqual(s["contentType"], "application/x-pkcs12")
        key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(s["value"]), None)
        self.assertEqual(leaf.public_bytes(serialization.Encoding.DER), der)
        self.assertEqual(key.public_key().public_numbers(), cert.public_key().public_numbers())
        # The key of the same name signs through mv_key_sign; the certificate verifies it.
        digest = hashlib.sha256(b"signed by a certificate's key").digest()
        sig = self.kv("key", "sign", "--vault-name", "dev", "--name", "web", "--algorithm", "RS256",
                      "--digest", base64.b64encode(digest).decode())["result"]
        cert.public_key().verify(base64.b64decode(sig), b"signed by a certificate's key", padding.PKCS1v15(),
                                 hashes.SHA256())
        # show, list, list-versions, table.
        self.assertEqual(self.kv("certificate", "show", "--vault-name", "dev", "--name", "web")["x5t"], c["x5t"])
        self.assertEqual([i["name"] for i in self.kv("certificate", "list", "--vault-name", "dev")], ["web"])
        self.assertEqual(len(self.kv("certificate", "list-versions", "--vault-name", "dev", "--name", "web")), 1)
        table = self.run_cli("keyvault", "certificate", "list", "--vault-name", "dev", "-o", "table").stdout
        self.assertRegex(table, r"web .* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        # delete, recover, delete, purge.
        d = self.kv("certificate", "delete", "--vault-name", "dev", "--name", "web")
        self.assertIn("recoveryId", d)
        self.assertEqual([i["name"] for i in self.kv("certificate", "list-deleted", "--vault-name", "dev")], ["web"])
        self.assertEqual(self.kv("certificate", "recover", "--vault-name", "dev", "--name", "web")["name"], "web")
        self.kv("certificate", "delete", "--vault-name", "dev", "--name", "web")
        self.assertIsNone(self.kv("certificate", "purge", "--vault-name", "dev", "--name", "web"))
        r = self.run_cli("keyvault", "certificate", "show", "--vault-name", "dev", "--name", "web")
        self.assertEqual(r.returncode, 1)
        self.assertIn("CertificateNotFound", r.stderr)

    def test_pem_policy_and_unknown_issuer(self):
        policy = self.kv("certificate", "get-default-policy")
        policy["secret_props"]["contentType"] = "application/x-pem-file"
        policy["key_props"] = {"exportable": True, "kty": "EC", "crv": "P-256", "reuse_key": False}
        policy["x509_props"]["key_usage"] = ["digitalSignature"]
        policy["x509_props"]["subject"] = "CN=pem.example"
        with open(self.path("p.json"), "w") as f:
            json.dump(policy, f)
        c = self.kv("certificate", "create", "--vault-name", "dev", "--name", "pem", "--policy", "@" + self.path("p.json"))
        self.assertEqual(c["policy"]["secret_props"]["contentType"], "application/x-pem-file")
        s = self.kv("secret", "show", "--vault-name", "dev", "--name", "pem")
        self.assertIn("-----BEGIN PRIVATE KEY-----", s["value"])
        self.assertIn("-----BEGIN CERTIFICATE-----", s["value"])
        key = serialization.load_pem_private_key(s["value"].encode(), None)
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        # Issuer Unknown: the pending operation with its CSR; a CA signs it, merge completes it.
        policy["issuer"] = {"name": "Unknown"}
        op = self.kv("certificate", "create", "--vault-name", "dev", "--name", "ext", "--policy", json.dumps(policy))
        self.assertEqual(op["status"], "inProgress")
        csr = x509.load_der_x509_csr(base64.b64decode(op["csr"]))
        self.assertIn("CN=pem.example", csr.subject.rfc4514_string())
        self.assertEqual(self.kv("certificate", "pending", "show", "--vault-name", "dev", "--name", "ext")["status"],
                         "inProgress")
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = self_signed(ca_key, "Test CA")
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=10))
                .sign(ca_key, hashes.SHA256()))
        with open(self.path("chain.pem"), "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
        merged = self.kv("certificate", "pending", "merge", "--vault-name", "dev", "--name", "ext",
                         "--file", self.path("chain.pem"))
        self.assertEqual(base64.b64decode(merged["cer"]), leaf.public_bytes(serialization.Encoding.DER))
        s = self.kv("secret", "show", "--vault-name", "dev", "--name", "ext")
        self.assertIn("-----BEGIN PRIVATE KEY-----", s["value"])
        # Another one, its pending operation deleted.
        self.kv("certificate", "create", "--vault-name", "dev", "--name", "ext2", "--policy", json.dumps(policy))
        self.kv("certificate", "pending", "delete", "--vault-name", "dev", "--name", "ext2")
        r = self.run_cli("keyvault", "certificate", "pending", "show", "--vault-name", "dev", "--name", "ext2")
        self.assertEqual(r.returncode, 1)
        with open(self.path("junk"), "w") as f:
            f.write("no certificate here")
        r = self.run_cli("keyvault", "certificate", "pending", "merge", "--vault-name", "dev", "--name", "ext2",
                         "--file", self.path("junk"))
        self.assertEqual(r.returncode, 1)

    def test_az_camelcase_policy(self):
        """The policy as `az keyvault certificate get-default-policy` prints it."""
        az = {"issuerParameters": {"certificateTransparency": None, "certificateType": None, "name": "Self"},
              "keyProperties": {"curve": "P-384", "exportable": True, "keySize": None, "keyType": "EC",
                                "reuseKey": True},
              "lifetimeActions": [{"action": {"actionType": "AutoRenew"},
                                   "trigger": {"daysBeforeExpiry": 90, "lifetimePercentage": None}}],
              "secretProperties": {"contentType": "application/x-pem-file"},
              "x509CertificateProperties": {"ekus": None, "keyUsage": ["digitalSignature"],
                                            "subject": "CN=az.example",
                                            "subjectAlternativeNames": {"dnsNames": ["az.example"]},
                                            "validityInMonths": 6}}
        c = self.kv("certificate", "create", "--vault-name", "dev", "--name", "az", "--policy", json.dumps(az))
        self.assertEqual(c["policy"]["key_props"]["crv"], "P-384")
        self.assertEqual(c["policy"]["x509_props"]["sans"]["dns_names"], ["az.example"])
        self.assertEqual(c["policy"]["secret_props"]["contentType"], "application/x-pem-file")
        cert = x509.load_der_x509_certificate(base64.b64decode(c["cer"]))
        self.assertIn("CN=az.example", cert.subject.rfc4514_string())
        self.assertIsInstance(cert.public_key(), ec.EllipticCurvePublicKey)

    def test_import_pem_and_pfx(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self_signed(key, "imported.example")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)
        with open(self.path("i.pem"), "wb") as f:
            f.write(pem)
        c = self.kv("certificate", "import", "--vault-name", "dev", "--name", "ipem", "--file", self.path("i.pem"))
        self.assertEqual(base64.b64decode(c["cer"]), cert.public_bytes(serialization.Encoding.DER))
        self.assertEqual(c["policy"]["secret_props"]["contentType"], "application/x-pem-file")
        eckey = ec.generate_private_key(ec.SECP256R1())
        eccert = self_signed(eckey, "pfx.example")
        pfx = pkcs12.serialize_key_and_certificates(b"x", eckey, eccert, None,
                                                    serialization.BestAvailableEncryption(b"pw"))
        with open(self.path("i.pfx"), "wb") as f:
            f.write(pfx)
        c = self.kv("certificate", "import", "--vault-name", "dev", "--name", "ipfx", "--file", self.path("i.pfx"),
                    "--password", "pw", "--tags", "src=test")
        self.assertEqual(base64.b64decode(c["cer"]), eccert.public_bytes(serialization.Encoding.DER))
        self.assertEqual(c["tags"], {"src": "test"})
        s = self.kv("secret", "show", "--vault-name", "dev", "--name", "ipfx")
        k, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(s["value"]), None)
        self.assertEqual(k.private_numbers(), eckey.private_numbers())
        r = self.run_cli("keyvault", "certificate", "import", "--vault-name", "dev", "--name", "bad",
                         "--file", self.path("i.pfx"), "--password", "wrong")
        self.assertEqual(r.returncode, 1)

    def test_set_attributes_and_policy(self):
        c = self.kv("certificate", "create", "--vault-name", "dev", "--name", "sa")
        ver = c["id"].rsplit("/", 1)[1]
        u = self.kv("certificate", "set-attributes", "--vault-name", "dev", "--name", "sa", "--enabled", "false",
                    "--tags", "env=prod")
        self.assertFalse(u["attributes"]["enabled"])
        self.assertEqual(u["tags"], {"env": "prod"})
        u = self.kv("certificate", "set-attributes", "--vault-name", "dev", "--name", "sa", "--version", ver,
                    "--enabled", "true")
        self.assertTrue(u["attributes"]["enabled"])
        self.assertEqual(u["tags"], {"env": "prod"})
        p = self.kv("certificate", "policy", "show", "--vault-name", "dev", "--name", "sa")
        self.assertTrue(p["id"].endswith("/certificates/sa/policy"), p["id"])
        self.assertEqual(p["x509_props"]["subject"], "CN=CLIGetDefaultPolicy")
        with open(self.path("pol.json"), "w") as f:
            json.dump({"x509_props": {"subject": "CN=updated.test", "validity_months": 6}}, f)
        p2 = self.kv("certificate", "policy", "update", "--vault-name", "dev", "--name", "sa",
                     "--policy", "@" + self.path("pol.json"))
        self.assertEqual(p2["x509_props"]["subject"], "CN=updated.test")
        self.assertEqual(p2["x509_props"]["validity_months"], 6)
        self.assertEqual(p2["key_props"], p["key_props"])  # absent members stay
        self.assertEqual(self.kv("certificate", "policy", "show", "--vault-name", "dev", "--name", "sa"), p2)
        # set-attributes --policy updates the policy too
        u = self.kv("certificate", "set-attributes", "--vault-name", "dev", "--name", "sa",
                    "--policy", '{"x509_props": {"subject": "CN=third.test"}}')
        self.assertEqual(u["policy"]["x509_props"]["subject"], "CN=third.test")
        # errors: unknown certificate exit 1; usage exit 2 (and nothing changed)
        r = self.run_cli("keyvault", "certificate", "policy", "show", "--vault-name", "dev", "--name", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("CertificateNotFound", r.stderr)
        for args in (["set-attributes", "--vault-name", "dev", "--name", "sa", "--enabled", "maybe"],
                     ["set-attributes", "--vault-name", "dev", "--name", "sa", "--bogus", "1"],
                     ["set-attributes", "--vault-name", "dev", "--name", "sa", "--policy", "[]"],
                     ["policy", "update", "--vault-name", "dev", "--name", "sa"],
                     ["policy", "update", "--vault-name", "dev", "--name", "sa", "--policy", "nope"],
                     ["policy", "show", "--vault-name", "dev", "--name", "sa", "--version", "x"]):
            with self.subTest(args=args):
                r = self.run_cli("keyvault", "certificate", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(self.kv("certificate", "show", "--vault-name", "dev", "--name", "sa")["attributes"]["enabled"],
                         True)

    def test_usage_errors(self):
        for args in (["create", "--vault-name", "dev", "--name", "x", "--policy", "not json"],
                     ["create", "--vault-name", "dev", "--name", "x", "--kty", "RSA"],
                     ["download", "--vault-name", "dev", "--name", "x", "--file", self.path("d"), "--encoding", "b"],
                     ["import", "--vault-name", "dev", "--name", "x"],
                     ["show", "--vault-name", "dev", "--name", "a_b"]):
            with self.subTest(args=args):
                r = self.run_cli("keyvault", "certificate", *args)
                self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
