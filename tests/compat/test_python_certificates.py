"""Debian's python3-azure (azure-keyvault-certificates 4.7.0b1, api-version 7.3), unchanged, with
ManagedIdentityCredential: CertificateClient with both issuers (Self through the create poller,
Unknown through the CSR and merge), both content types, PFX (with and without password) and PEM
import, policy get/update, properties update, list and versions with paging, delete / recover /
purge pollers, issuers and contacts; and SecretClient reading the certificate's secret (the PFX or
PEM) and checking it with the `cryptography` package.

localvm's identity is Key Vault Administrator on `dev` (certificates, their secrets).
"""
from compat import CompatTest

CERT_PRELUDE = r"""
import hashlib
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from azure.keyvault.certificates import (CertificateClient, CertificatePolicy, CertificateContentType,
                                         CertificateContact, KeyType, KeyCurveName, KeyUsageType,
                                         WellKnownIssuerNames, LifetimeAction, CertificatePolicyAction)

cred = ManagedIdentityCredential()
cc = CertificateClient(VAULT, cred, raw_response_hook=hook)
sc = SecretClient(VAULT, cred)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pub_der(k):
    return k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def self_signed(key, cn, days=30):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
"""


class PythonCertificatesTest(CompatTest):
    @classmethod
    def prepare(cls):
        up = cls.up
        principal = up.cli("vm", "show", "--name", "localvm")["identity"]["principalId"]
        up.cli("role", "assignment", "create", "--assignee", principal, "--role", "Key Vault Administrator",
               "--scope", "vault:dev")

    def program(self, code):
        return self.py_json(CERT_PRELUDE + code, env=self.up.env, timeout=180)

    def test_self_signed_pkcs12_through_the_create_poller(self):
        out = self.program(r'''
pol = CertificatePolicy(issuer_name=WellKnownIssuerNames.self, subject="CN=selfcert.test, O=Contoso",
                        san_dns_names=["selfcert.test", "www.selfcert.test"], validity_in_months=12,
                        key_type=KeyType.rsa, key_size=2048, content_type=CertificateContentType.pkcs12,
                        key_usage=[KeyUsageType.digital_signature, KeyUsageType.key_encipherment],
                        enhanced_key_usage=["1.3.6.1.5.5.7.3.1"])
poller = cc.begin_create_certificate("selfcert", pol, tags={"env": "test"})
cert = poller.result()
out["type"] = type(cert).__name__
out["name"], out["id"], out["key_id"], out["secret_id"] = cert.name, cert.id, cert.key_id, cert.secret_id
out["version"] = cert.properties.version
out["tags"] = cert.properties.tags
out["x5t_ok"] = cert.properties.x509_thumbprint == hashlib.sha1(bytes(cert.cer)).digest()
x = x509.load_der_x509_certificate(bytes(cert.cer))
out["subject"] = x.subject.rfc4514_string()
out["sans"] = x.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
out["days"] = (x.not_valid_after - x.not_valid_before).days
out["ku"] = [x.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature,
             x.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment]
out["eku"] = [e.dotted_string for e in x.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
out["policy"] = {"subject": cert.policy.subject, "issuer": cert.policy.issuer_name,
                 "ct": str(cert.policy.content_type), "size": cert.policy.key_size,
                 "months": cert.policy.validity_in_months, "exportable": cert.policy.exportable,
                 "actions": [(str(a.action), a.lifetime_percentage) for a in cert.policy.lifetime_actions]}
out["exp_ok"] = abs(cert.properties.expires_on.timestamp() - x.not_valid_after.replace(tzinfo=datetime.timezone.utc).timestamp()) < 1
# the secret of the same name: the PFX, base64, no password
s = sc.get_secret("selfcert")
out["secret"] = {"ct": s.properties.content_type, "id": s.id, "kid": s.properties.key_id,
                 "managed": s.properties.managed}
out["plain_secret"] = [sc.set_secret("plain", "x").properties.managed, sc.get_secret("plain").properties.key_id]
p12 = base64.b64decode(s.value)
key, leaf, extra = pkcs12.load_key_and_certificates(p12, None)
out["pfx_key_matches"] = pub_der(key) == x.public_key().public_bytes(serialization.Encoding.DER,
                                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
out["pfx_leaf_is_cer"] = leaf.public_bytes(serialization.Encoding.DER) == cert.cer
out["pfx_empty_password"] = pkcs12.load_key_and_certificates(p12, b"")[1] is not None
# latest carries the policy, by version does not
out["by_version_policy"] = cc.get_certificate_version("selfcert", cert.properties.version).policy is None
out["op"] = cc.get_certificate_operation("selfcert").status
# the certificate's key through KeyClient and CryptographyClient (remote sign, verified locally)
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding, utils
kk = KeyClient(VAULT, cred).get_key("selfcert")
out["key"] = [kk.id, kk.properties.managed, kk.key_operations]
digest = hashlib.sha256(b"signed by the certificate's key").digest()
sig = CryptographyClient(kk.id, cred).sign(SignatureAlgorithm.rs256, digest).signature
x.public_key().verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
out["signed"] = True
out["paths"] = [(w["method"], w["url"].split("?")[0].split("/", 3)[3], w["status"]) for w in wire
                if w["status"] != 401][:4]
# the secret and the key belong to the certificate: the plain clients cannot change them
kc = KeyClient(VAULT, cred)
refused = [capture(lambda: sc.set_secret("selfcert", "x")),
           capture(lambda: sc.update_secret_properties("selfcert", enabled=False)),
           capture(lambda: sc.begin_delete_secret("selfcert")),
           capture(lambda: kc.update_key_properties("selfcert", enabled=False)),
           capture(lambda: kc.begin_delete_key("selfcert"))]
out["refused"] = [(r["error"]["status"], r["error"]["code"]) if "error" in r else r for r in refused]
out["listed_managed"] = [p.managed for p in sc.list_properties_of_secrets() if p.name == "selfcert"]
out["key_listed_managed"] = [p.managed for p in kc.list_properties_of_keys() if p.name == "selfcert"]
''')
        self.assertEqual(out["type"], "KeyVaultCertificate")
        v = out["version"]
        base = self.up.vault_url("dev")
        self.assertRegex(v, "^[0-9a-f]{32}$")
        self.assertEqual(out["id"], base + "/certificates/selfcert/" + v)
        self.assertEqual(out["key_id"], base + "/keys/selfcert/" + v)
        self.assertEqual(out["secret_id"], base + "/secrets/selfcert/" + v)
        self.assertEqual(out["tags"], {"env": "test"})
        self.assertTrue(out["x5t_ok"])
        self.assertEqual(out["subject"], "O=Contoso,CN=selfcert.test")
        self.assertEqual(out["sans"], ["selfcert.test", "www.selfcert.test"])
        self.assertIn(out["days"], range(365, 367))
        self.assertEqual(out["ku"], [True, True])
        self.assertEqual(out["eku"], ["1.3.6.1.5.5.7.3.1"])
        self.assertEqual(out["policy"]["subject"], "CN=selfcert.test, O=Contoso")
        self.assertEqual(out["policy"]["issuer"], "Self")
        self.assertEqual(out["policy"]["size"], 2048)
        self.assertEqual(out["policy"]["months"], 12)
        self.assertTrue(out["policy"]["exportable"])
        self.assertEqual(out["policy"]["actions"], [["CertificatePolicyAction.auto_renew", 80]])
        self.assertTrue(out["exp_ok"])
        self.assertEqual(out["secret"], {"ct": "application/x-pkcs12", "id": base + "/secrets/selfcert/" + v,
                                         "kid": base + "/keys/selfcert/" + v, "managed": True})
        self.assertEqual(out["plain_secret"], [None, None])
        self.assertEqual(out["refused"], [[403, "Forbidden"]] * 5)
        self.assertEqual(out["listed_managed"], [True])
        self.assertEqual(out["key_listed_managed"], [True])
        self.assertTrue(out["pfx_key_matches"])
        self.assertTrue(out["pfx_leaf_is_cer"])
        self.assertTrue(out["pfx_empty_password"])
        self.assertTrue(out["by_version_policy"])
        self.assertEqual(out["op"], "completed")
        self.assertEqual(out["key"], [base + "/keys/selfcert/" + v, True, ["sign", "verify", "wrapKey", "unwrapKey"]])
        self.assertTrue(out["signed"])
        # 202 with inProgress, then the poller's GET /pending, then GET /certificates/{name}/
        self.assertEqual(out["paths"][:3], [["POST", "certificates/selfcert/create", 202],
                                            ["GET", "certificates/selfcert/pending", 200],
                                            ["GET", "certificates/selfcert/", 200]])

    def test_ec_pem_secret(self):
        out = self.program(r'''
pol = CertificatePolicy(issuer_name="Self", subject="CN=ecpem.test", key_type=KeyType.ec,
                        key_curve_name=KeyCurveName.p_384, content_type=CertificateContentType.pem,
                        validity_in_months=3)
cert = cc.begin_create_certificate("ecpem", pol).result()
x = x509.load_der_x509_certificate(bytes(cert.cer))
out["curve"] = x.public_key().curve.name
s = sc.get_secret("ecpem")
out["ct"] = s.properties.content_type
out["order"] = [s.value.find("-----BEGIN PRIVATE KEY-----"), s.value.find("-----BEGIN CERTIFICATE-----")]
key = serialization.load_pem_private_key(s.value.encode(), None)
out["match"] = pub_der(key) == x.public_key().public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
out["policy"] = [str(cert.policy.key_type), str(cert.policy.key_curve_name), str(cert.policy.content_type)]
out["ec_ke"] = capture(lambda: cc.begin_create_certificate("eckeyenc", CertificatePolicy(
    issuer_name="Self", subject="CN=x", key_type=KeyType.ec,
    key_usage=[KeyUsageType.key_encipherment])).result())
''')
        self.assertEqual(out["curve"], "secp384r1")
        self.assertEqual(out["ct"], "application/x-pem-file")
        self.assertEqual(out["order"][0], 0)
        self.assertGreater(out["order"][1], 0)
        self.assertTrue(out["match"])
        self.assertEqual(out["policy"], ["KeyType.ec", "KeyCurveName.p_384", "CertificateContentType.pem"])
        self.assertEqual(out["ec_ke"]["error"]["status"], 400)
        self.assertIn("wrapKey", out["ec_ke"]["error"]["message"])

    def test_unknown_issuer_csr_merge_cancel_delete(self):
        out = self.program(r'''
pol = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=merged.test",
                        san_dns_names=["merged.test"])
poller = cc.begin_create_certificate("merged", pol)
out["result"] = poller.result()  # Python's poller: issuer Unknown is done at once, result None
op = cc.get_certificate_operation("merged")
out["op"] = [op.status, op.issuer_name, op.cancellation_requested]
csr = x509.load_der_x509_csr(bytes(op.csr))
out["csr_ok"] = csr.is_signature_valid
out["csr_subject"] = csr.subject.rfc4514_string()
out["busy"] = capture(lambda: cc.begin_create_certificate("merged", pol))
# a CA of the test signs the CSR
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = self_signed(ca_key, "Test CA")
now = datetime.datetime.now(datetime.timezone.utc)
leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject).public_key(csr.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
        .sign(ca_key, hashes.SHA256()))
out["wrong_merge"] = capture(lambda: cc.merge_certificate("merged", [ca.public_bytes(serialization.Encoding.DER)]))
merged = cc.merge_certificate("merged", [ca.public_bytes(serialization.Encoding.DER),
                                         leaf.public_bytes(serialization.Encoding.DER)])
out["merged_leaf"] = merged.cer == leaf.public_bytes(serialization.Encoding.DER)
out["op_after"] = cc.get_certificate_operation("merged").status
s = sc.get_secret("merged")
key, l2, chain = pkcs12.load_key_and_certificates(base64.b64decode(s.value), None)
out["secret_chain"] = [l2.subject.rfc4514_string()] + [c.subject.rfc4514_string() for c in chain]
out["secret_key"] = pub_der(key) == csr.public_key().public_bytes(serialization.Encoding.DER,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
out["merge_again"] = capture(lambda: cc.merge_certificate("merged", [leaf.public_bytes(serialization.Encoding.DER)]))
# cancel, then delete a pending operation
cc.begin_create_certificate("cancelme", pol)
c1 = cc.cancel_certificate_operation("cancelme")
out["cancel"] = [c1.status, c1.cancellation_requested]
out["cancel_again"] = capture(lambda: cc.cancel_certificate_operation("cancelme"))
d = cc.delete_certificate_operation("cancelme")
out["deleted_op"] = d.status
out["gone"] = capture(lambda: cc.get_certificate_operation("cancelme"))
out["no_cert"] = capture(lambda: cc.get_certificate("cancelme"))
''')
        self.assertIsNone(out["result"])
        self.assertEqual(out["op"], ["inProgress", "Unknown", False])
        self.assertTrue(out["csr_ok"])
        self.assertEqual(out["csr_subject"], "CN=merged.test")
        self.assertEqual(out["busy"]["error"]["status"], 409)
        self.assertEqual(out["wrong_merge"]["error"]["status"], 400)
        self.assertTrue(out["merged_leaf"])
        self.assertEqual(out["op_after"], "completed")
        self.assertEqual(out["secret_chain"], ["CN=merged.test", "CN=Test CA"])
        self.assertTrue(out["secret_key"])
        self.assertEqual(out["merge_again"]["error"]["status"], 403)
        self.assertEqual(out["cancel"], ["cancelled", True])
        self.assertEqual(out["cancel_again"]["error"]["status"], 403)
        self.assertEqual(out["deleted_op"], "cancelled")
        self.assertEqual(out["gone"]["error"]["type"], "ResourceNotFoundError")
        self.assertEqual(out["gone"]["error"]["code"], "PendingCertificateNotFound")
        self.assertEqual(out["no_cert"]["error"]["code"], "CertificateNotFound")

    def test_import_pfx_and_pem(self):
        out = self.program(r'''
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
x = self_signed(k, "imported.test")
pfx_pw = pkcs12.serialize_key_and_certificates(b"i", k, x, None, serialization.BestAvailableEncryption(b"pw"))
c1 = cc.import_certificate("imppfx", pfx_pw, password="pw", tags={"src": "pfx"})
out["pfx"] = [c1.cer == x.public_bytes(serialization.Encoding.DER), c1.policy.subject,
              c1.policy.san_dns_names, str(c1.policy.content_type), c1.properties.tags]
out["wrong_pw"] = capture(lambda: cc.import_certificate("imppfx2", pfx_pw, password="nope"))
pfx_nopw = pkcs12.serialize_key_and_certificates(b"i", k, x, None, serialization.NoEncryption())
out["pfx_nopw"] = cc.import_certificate("imppfx3", pfx_nopw).properties.version is not None
e = ec.generate_private_key(ec.SECP256R1())
xe = self_signed(e, "pem.test")
pem = e.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                      serialization.NoEncryption()) + xe.public_bytes(serialization.Encoding.PEM)
c2 = cc.import_certificate("imppem", pem, policy=CertificatePolicy(content_type=CertificateContentType.pem))
out["pem"] = [c2.cer == xe.public_bytes(serialization.Encoding.DER), str(c2.policy.content_type),
              str(c2.policy.key_type)]
s = sc.get_secret("imppem")
out["pem_secret"] = [s.properties.content_type, s.value.startswith("-----BEGIN PRIVATE KEY-----")]
blob = cc.backup_certificate("imppem")
cc.begin_delete_certificate("imppem").result()
cc.purge_deleted_certificate("imppem")
r = cc.restore_certificate_backup(blob)
out["restored"] = [r.name, r.cer == c2.cer, r.properties.version == c2.properties.version,
                   sc.get_secret("imppem").properties.content_type]
out["garbage"] = capture(lambda: cc.import_certificate("bad", b"not a certificate"))
out["cert_only"] = capture(lambda: cc.import_certificate("bad", xe.public_bytes(serialization.Encoding.PEM)))
''')
        self.assertEqual(out["pfx"], [True, "CN=imported.test", ["imported.test"], "CertificateContentType.pkcs12",
                                      {"src": "pfx"}])
        self.assertEqual(out["wrong_pw"]["error"]["status"], 400)
        self.assertTrue(out["pfx_nopw"])
        self.assertEqual(out["pem"], [True, "CertificateContentType.pem", "KeyType.ec"])
        self.assertEqual(out["pem_secret"], ["application/x-pem-file", True])
        self.assertEqual(out["restored"], ["imppem", True, True, "application/x-pem-file"])
        self.assertEqual(out["garbage"]["error"]["status"], 400)
        self.assertEqual(out["cert_only"]["error"]["status"], 400)

    def test_policy_properties_lists_and_soft_delete(self):
        out = self.program(r'''
pol = CertificatePolicy.get_default()
for i in range(5):
    cc.begin_create_certificate("lst%d" % i, pol).result()
cc.begin_create_certificate("lst0", pol).result()
names = [p.name for p in cc.list_properties_of_certificates(max_page_size=2)]
out["names"] = sorted(n for n in names if n.startswith("lst"))
out["pages"] = sum(1 for w in wire if w["method"] == "GET" and "/certificates?" in w["url"] or "/certificates/?" in w["url"])
out["versions"] = len(list(cc.list_properties_of_certificate_versions("lst0", max_page_size=1)))
p = cc.get_certificate_policy("lst1")
out["default"] = [p.subject, p.issuer_name, p.key_size, p.validity_in_months, str(p.content_type), p.exportable]
p2 = cc.update_certificate_policy("lst1", CertificatePolicy(subject="CN=changed", validity_in_months=24))
out["updated_policy"] = [p2.subject, p2.validity_in_months, p2.issuer_name]
u = cc.update_certificate_properties("lst1", enabled=False, tags={"a": "b"})
out["props"] = [u.properties.enabled, u.properties.tags]
d = cc.begin_delete_certificate("lst2").result()
out["deleted"] = [d.name, d.recovery_id, d.scheduled_purge_date is not None]
out["deleted_get"] = cc.get_deleted_certificate("lst2").name
out["deleted_list"] = [c.name for c in cc.list_deleted_certificates()]
out["reuse"] = capture(lambda: cc.begin_create_certificate("lst2", pol))
out["secret_gone"] = capture(lambda: sc.get_secret("lst2"))
r = cc.begin_recover_deleted_certificate("lst2").result()
out["recovered"] = [r.name, r.policy is not None]
out["secret_back"] = sc.get_secret("lst2").properties.content_type
cc.begin_delete_certificate("lst3").result()
cc.purge_deleted_certificate("lst3")
out["purged"] = capture(lambda: cc.get_deleted_certificate("lst3"))
out["recreate"] = cc.begin_create_certificate("lst3", pol).result().name
''')
        self.assertEqual(out["names"], ["lst0", "lst1", "lst2", "lst3", "lst4"])
        self.assertEqual(out["versions"], 2)
        self.assertEqual(out["default"], ["CN=DefaultPolicy", "Self", 2048, 12, "CertificateContentType.pkcs12", True])
        self.assertEqual(out["updated_policy"], ["CN=changed", 24, "Self"])
        self.assertEqual(out["props"], [False, {"a": "b"}])
        self.assertEqual(out["deleted"][0], "lst2")
        self.assertEqual(out["deleted"][1], self.up.vault_url("dev") + "/deletedcertificates/lst2")
        self.assertTrue(out["deleted"][2])
        self.assertEqual(out["deleted_get"], "lst2")
        self.assertIn("lst2", out["deleted_list"])
        self.assertEqual(out["reuse"]["error"]["status"], 409)
        self.assertEqual(out["secret_gone"]["error"]["type"], "ResourceNotFoundError")
        self.assertEqual(out["recovered"], ["lst2", True])
        self.assertEqual(out["secret_back"], "application/x-pkcs12")
        self.assertEqual(out["purged"]["error"]["type"], "ResourceNotFoundError")
        self.assertEqual(out["recreate"], "lst3")

    def test_issuers_and_contacts(self):
        out = self.program(r'''
i = cc.create_issuer("myca", "Test", account_id="acct", enabled=True)
out["issuer"] = [i.name, i.provider, i.account_id, i.enabled]
out["get"] = cc.get_issuer("myca").provider
out["list"] = [p.name for p in cc.list_properties_of_issuers()]
out["update"] = cc.update_issuer("myca", provider="Other").provider
out["delete"] = cc.delete_issuer("myca").name
out["gone"] = capture(lambda: cc.get_issuer("myca"))
cs = cc.set_contacts([CertificateContact(email="a@example.test", name="A", phone="1")])
out["contacts"] = [(c.email, c.name, c.phone) for c in cs]
out["get_contacts"] = [c.email for c in cc.get_contacts()]
out["del_contacts"] = [c.email for c in cc.delete_contacts()]
out["no_issue"] = capture(lambda: cc.begin_create_certificate("viaca", CertificatePolicy(issuer_name="myca", subject="CN=x")))
''')
        self.assertEqual(out["issuer"], ["myca", "Test", "acct", True])
        self.assertEqual(out["get"], "Test")
        self.assertEqual(out["list"], ["myca"])
        self.assertEqual(out["update"], "Other")
        self.assertEqual(out["delete"], "myca")
        self.assertEqual(out["gone"]["error"]["status"], 404)
        self.assertEqual(out["contacts"], [["a@example.test", "A", "1"]])
        self.assertEqual(out["get_contacts"], ["a@example.test"])
        self.assertEqual(out["del_contacts"], ["a@example.test"])
        self.assertEqual(out["no_issue"]["error"]["status"], 400)
