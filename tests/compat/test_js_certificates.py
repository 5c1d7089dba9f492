"""@azure/keyvault-certificates 4.10.3 from npm (pinned by js/package-lock.json), unchanged, against
the certificates API of `mivault up` (js/certificates.js): the create poller with issuer Self
(PKCS#12 and PEM, RSA and EC), the certificate's secret read with SecretClient and checked with
node:crypto, policy and properties, pages, versions, delete / recover / purge, issuers and
contacts, cancel and delete of a pending operation, backup / purge / restore; issuer Unknown with a CSR this driver signs (with the `cryptography` package) and the
merge; import of a PFX with password and of PEM text."""
import base64
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_js_sdk  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def setUpModule():
    test_js_sdk.ensure_node_modules()


def self_signed(key, cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))


class JsCertificatesTest(test_js_sdk.JsTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up.cli("role", "assignment", "create", "--assignee", cls.system_principal(), "--role",
                   "Key Vault Administrator", "--scope", "vault:dev")

    def test_certificate_client(self):
        p = "jsc-"
        base = self.up.vault_url("dev")
        c = self.node("certificates.js", {"phase": 1, "prefix": p}, timeout=300)
        r = self.ok(c, "create.self.pkcs12")
        v = r["version"]
        self.assertEqual((r["id"], r["keyId"], r["secretId"]),
                         (base + "/certificates/jsc-rsa/" + v, base + "/keys/jsc-rsa/" + v, base + "/secrets/jsc-rsa/" + v))
        self.assertTrue(r["x5tOk"])
        self.assertEqual((r["subject"], r["san"], r["tags"]), ("CN=js.test", "DNS:js.test", {"t": "js"}))
        self.assertEqual(r["policy"]["issuerName"], "Self")
        self.assertEqual(r["policy"]["contentType"], "application/x-pkcs12")
        self.assertEqual((r["policy"]["keyType"], r["policy"]["keySize"], r["policy"]["months"]), ("RSA", 2048, 6))
        # POST create (202 inProgress), then at once GET pending (completed), then GET the certificate
        self.assertEqual(self.ok(c, "create.paths"), [["POST", "/certificates/jsc-rsa/create", 202],
                                                      ["GET", "/certificates/jsc-rsa/pending", 200],
                                                      ["GET", "/certificates/jsc-rsa/", 200]])
        self.assertEqual(self.ok(c, "secret.pkcs12"), {"contentType": "application/x-pkcs12", "managed": True,
                                                       "der": True, "holdsCert": True})
        e = self.ok(c, "create.self.pem.ec")
        self.assertEqual((e["policy"]["keyType"], e["policy"]["curve"], e["policy"]["contentType"]),
                         ("EC", "P-256", "application/x-pem-file"))
        self.assertEqual(self.ok(c, "secret.pem"), {"contentType": "application/x-pem-file", "keyFirst": True,
                                                    "matches": True, "sameCert": True})
        self.assertEqual(self.ok(c, "get.version"), {"id": True, "policy": None})
        self.assertEqual(self.ok(c, "policy.update"), ["CN=changed.js.test", 24, "Self"])
        self.assertEqual(self.ok(c, "properties.update"), [False, {"u": "1"}])
        self.assertEqual(sum(self.ok(c, "list.pages"), []), ["jsc-ec", "jsc-rsa"])
        self.assertEqual(self.ok(c, "versions"), 2)
        d = self.ok(c, "delete.recover.purge")
        self.assertEqual(d, {"deletedName": "jsc-ec", "recoveryId": base + "/deletedcertificates/jsc-ec",
                             "got": "jsc-ec", "recovered": "jsc-ec", "gone": True})
        self.rest_error(c, "get.missing", 404, "CertificateNotFound")
        # (4.10.3 names an issuer after the second path segment of its id, "issuers", as it would
        # with Azure's own ids; and deleteContacts resolves to no contacts)
        self.assertEqual(self.ok(c, "issuers.contacts")[1:5], ["Test", "Test", ["js@example.test"],
                                                               ["js@example.test"]])
        # cancel through the operation poller (PATCH pending), then delete the operation
        self.assertEqual(self.ok(c, "cancel.delete"), {"status": "cancelled", "cancellationRequested": True,
                                                       "deleted": "cancelled"})
        # (4.10.3's operation poller GETs the certificate before the operation: its 404 is the one seen)
        self.rest_error(c, "cancel.gone", 404, "CertificateNotFound")
        self.rest_error(c, "cancel.nocert", 404, "CertificateNotFound")
        # backup, delete + purge, restore: the same certificate and version; its secret is listed
        # as managed (SecretItem.managed)
        self.assertEqual(self.ok(c, "backup.restore"), {"bytes": True, "gone": True, "name": "jsc-rsa",
                                                        "sameCer": True, "sameVersion": True,
                                                        "policy": "CN=changed.js.test", "secretManaged": [True]})
        self.rest_error(c, "restore.garbage", 400, "BadParameter")
        u = self.ok(c, "unknown.create")
        self.assertEqual((u["done"], u["status"], u["issuer"]), (False, "inProgress", "Unknown"))

        # the driver plays the CA: it signs the CSR; and it makes the files to import
        csr = x509.load_der_x509_csr(base64.b64decode(u["csr"]))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = self_signed(ca_key, "JS Test CA")
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)).sign(ca_key, hashes.SHA256()))
        der = lambda x: base64.b64encode(x.public_bytes(serialization.Encoding.DER)).decode()  # noqa: E731
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pfx = pkcs12.serialize_key_and_certificates(b"i", k, self_signed(k, "pfx.js.test"), None,
                                                    serialization.BestAvailableEncryption(b"pw"))
        ek = ec.generate_private_key(ec.SECP384R1())
        pem = ek.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()) + self_signed(ek, "pem.js.test").public_bytes(
                                   serialization.Encoding.PEM)
        c2 = self.node("certificates.js", {"phase": 2, "prefix": p, "x5c": [der(leaf), der(ca)],
                                           "pfx": base64.b64encode(pfx).decode(), "pem": base64.b64encode(pem).decode()})
        m = self.ok(c2, "merge")
        self.assertEqual((m["info"]["subject"], m["status"]), ("CN=ext.js.test", "completed"))
        self.assertEqual(self.ok(c2, "import.pfx")["subject"], "CN=pfx.js.test")
        ip = self.ok(c2, "import.pem")
        self.assertEqual((ip["info"]["subject"], ip["info"]["policy"]["keyType"], ip["info"]["policy"]["curve"]),
                         ("CN=pem.js.test", "EC", "P-384"))
        self.assertEqual(ip["contentType"], "application/x-pem-file")
        self.rest_error(c2, "import.wrongpw", 400, "BadParameter")
