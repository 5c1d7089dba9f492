"""Debian's python3-azure (azure-keyvault-keys 4.8.0b3, api-version 7.4-preview.1), unchanged, with
ManagedIdentityCredential: KeyClient (create RSA/EC, import, get latest and by version, list and
versions over several pages, update, the delete and recover pollers, purge) and CryptographyClient
(every signing algorithm, encrypt/decrypt and wrap/unwrap with the three RSA algorithms, both from a
KeyVaultKey and from a key id). Signatures are also verified locally with the public JWK by
`cryptography`, without the SDK.

localvm's identity is Key Vault Crypto Officer on dev; `cse` is a second identity with only Crypto
Service Encryption User (it may read keys and wrap/unwrap, nothing else).
"""
from compat import CompatTest

KEYS_PRELUDE = r'''
import hashlib
from azure.keyvault.keys import KeyClient, KeyCurveName, KeyType, KeyOperation
from azure.keyvault.keys.crypto import (CryptographyClient, EncryptionAlgorithm, KeyWrapAlgorithm,
                                        SignatureAlgorithm)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

cred = ManagedIdentityCredential()
kc = KeyClient(VAULT, cred, raw_response_hook=hook)

def local_pub(jwk):
    i = lambda b: int.from_bytes(b, "big")
    if str(jwk.kty).upper().startswith("RSA"):
        return rsa.RSAPublicNumbers(i(jwk.e), i(jwk.n)).public_key()
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
             "P-256K": ec.SECP256K1()}[str(jwk.crv)]
    return ec.EllipticCurvePublicNumbers(i(jwk.x), i(jwk.y), curve).public_key()

HASHES = {"256": (hashlib.sha256, hashes.SHA256()), "384": (hashlib.sha384, hashes.SHA384()),
          "512": (hashlib.sha512, hashes.SHA512())}

def hash_of(alg):
    return HASHES["256" if alg.endswith("256K") else alg[2:5]]

def verify_local(jwk, alg, digest, sig):
    pub, h = local_pub(jwk), hash_of(alg)[1]
    try:
        if alg.startswith("RS"):
            pub.verify(sig, digest, padding.PKCS1v15(), Prehashed(h))
        elif alg.startswith("PS"):
            pub.verify(sig, digest, padding.PSS(mgf=padding.MGF1(h), salt_length=len(digest)), Prehashed(h))
        else:
            n = len(sig) // 2
            pub.verify(encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big")),
                       digest, ec.ECDSA(Prehashed(h)))
        return True
    except Exception:
        return False
'''


class PythonKeysTest(CompatTest):
    @classmethod
    def prepare(cls):
        up = cls.up
        principal = up.cli("vm", "show", "--name", "localvm")["identity"]["principalId"]
        up.cli("role", "assignment", "create", "--assignee", principal, "--role", "Key Vault Crypto Officer",
               "--scope", "vault:dev")

    def client_program(self, code):
        return self.py_json(KEYS_PRELUDE + code, env=self.up.env, timeout=300)

    def test_key_client_lifecycle(self):
        out = self.client_program('''
r = kc.create_rsa_key("pyrsa", size=3072, tags={"a": "b"})
out["rsa"] = {"kty": str(r.key_type), "n": len(r.key.n), "ops": [str(o) for o in r.key_operations],
              "tags": r.properties.tags, "version": r.properties.version, "enabled": r.properties.enabled,
              "level": r.properties.recovery_level, "has_d": r.key.d is not None}
e = kc.create_ec_key("pyec", curve=KeyCurveName.p_384)
out["ec"] = {"kty": str(e.key_type), "crv": str(e.key.crv), "x": len(e.key.x)}
e2 = kc.create_ec_key("pyec", curve="P-256K")
out["latest"] = kc.get_key("pyec").properties.version == e2.properties.version
out["by_version"] = str(kc.get_key("pyec", e.properties.version).key.crv)
out["case"] = kc.get_key("PYEC").name
for i in range(3):
    kc.create_ec_key("page%d" % i)
out["names"] = sorted(p.name for p in kc.list_properties_of_keys(max_page_size=2) if not p.name.startswith("cr-"))
out["versions"] = len(list(kc.list_properties_of_key_versions("pyec", max_page_size=1)))
u = kc.update_key_properties("pyrsa", enabled=False, tags={"x": "y"}, key_operations=["sign", "verify"])
out["update"] = {"enabled": u.properties.enabled, "tags": u.properties.tags,
                 "ops": [str(o) for o in u.key_operations]}
try:
    kc.get_key("missing")
except ResourceNotFoundError as ex:
    out["missing"] = err(ex)
try:
    kc.create_rsa_key("small", size=1024)
except HttpResponseError as ex:
    out["small"] = err(ex)
d = kc.begin_delete_key("page0").result()
out["deleted"] = {"id": d.recovery_id, "purge": d.scheduled_purge_date is not None}
out["deleted_get"] = kc.get_deleted_key("page0").name
out["deleted_list"] = [k.name for k in kc.list_deleted_keys() if k.name.startswith("page")]
try:
    kc.create_ec_key("page0")
except ResourceExistsError as ex:
    out["conflict"] = err(ex)
out["recovered"] = kc.begin_recover_deleted_key("page0").result().name
kc.begin_delete_key("page1").result()
kc.purge_deleted_key("page1")
out["purged"] = [k.name for k in kc.list_deleted_keys() if k.name.startswith("page")]
_k = ec.generate_private_key(ec.SECP256R1())
PRIV = {"x": _k.public_key().public_numbers().x.to_bytes(32, "big"),
        "y": _k.public_key().public_numbers().y.to_bytes(32, "big"),
        "d": _k.private_numbers().private_value.to_bytes(32, "big")}
imported = kc.import_key("pyimp", __import__("azure.keyvault.keys", fromlist=["JsonWebKey"]).JsonWebKey(
    kty="EC", crv="P-256", x=PRIV_EC["x"], y=PRIV_EC["y"], d=PRIV_EC["d"], key_ops=["sign", "verify"]))
out["imported"] = {"x": imported.key.x == PRIV["x"], "d": imported.key.d}
'''.replace("PRIV_EC", "PRIV"))
        self.assertEqual(out["rsa"]["kty"], "RSA")
        self.assertEqual(out["rsa"]["n"], 384)
        self.assertEqual(out["rsa"]["ops"], ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
        self.assertEqual(out["rsa"]["tags"], {"a": "b"})
        self.assertFalse(out["rsa"]["has_d"])
        self.assertEqual(out["rsa"]["level"], "Recoverable+Purgeable")
        self.assertEqual(out["ec"], {"kty": "EC", "crv": "P-384", "x": 48})
        self.assertTrue(out["latest"])
        self.assertEqual(out["by_version"], "P-384")
        self.assertEqual(out["case"], "pyec")
        self.assertEqual(out["names"], ["page0", "page1", "page2", "pyec", "pyrsa"])
        self.assertEqual(out["versions"], 2)
        self.assertEqual(out["update"], {"enabled": False, "tags": {"x": "y"}, "ops": ["sign", "verify"]})
        self.assertEqual(out["missing"]["code"], "KeyNotFound")
        self.assertEqual(out["small"]["status"], 400)
        self.assertTrue(out["deleted"]["id"].endswith("/deletedkeys/page0"))
        self.assertEqual(out["deleted_get"], "page0")
        self.assertEqual(out["deleted_list"], ["page0"])
        self.assertEqual(out["conflict"]["status"], 409)
        self.assertEqual(out["recovered"], "page0")
        self.assertEqual(out["purged"], [])
        self.assertEqual(out["imported"], {"x": True, "d": None})

    def test_cryptography_client_every_algorithm(self):
        out = self.client_program('''
res = {}
rk = kc.create_rsa_key("cr-rsa")
for source in ("key", "id"):
    cc = CryptographyClient(rk if source == "key" else rk.id, cred, raw_response_hook=hook)
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        d = hash_of(alg)[0](b"payload").digest()
        s = cc.sign(alg, d)
        res["%s/%s" % (source, alg)] = [cc.verify(alg, d, s.signature).is_valid,
                                        verify_local(rk.key, alg, d, s.signature),
                                        cc.verify(alg, d, bytes(len(s.signature))).is_valid]
    for alg in ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256"):
        pt = os.urandom(32)
        ct = cc.encrypt(alg, pt)
        w = cc.wrap_key(alg, pt)
        res["%s/%s" % (source, alg)] = [cc.decrypt(alg, ct.ciphertext).plaintext == pt,
                                        cc.unwrap_key(alg, w.encrypted_key).key == pt]
for crv, alg in (("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512"), ("P-256K", "ES256K")):
    ek = kc.create_ec_key("cr-" + crv.replace("-", ""), curve=crv)
    for source in ("key", "id"):
        cc = CryptographyClient(ek if source == "key" else ek.id, cred, raw_response_hook=hook)
        d = hash_of(alg)[0](b"payload").digest()
        s = cc.sign(alg, d)
        res["%s/%s" % (source, alg)] = [cc.verify(alg, d, s.signature).is_valid,
                                        verify_local(ek.key, alg, d, s.signature)]
out["res"] = res
# key_ops enforced by the server when the client falls back to it
lim = kc.create_rsa_key("cr-lim", key_operations=["sign", "verify"])
try:
    CryptographyClient(lim.id, cred).decrypt("RSA-OAEP", bytes(256))
except HttpResponseError as ex:
    out["forbidden"] = err(ex)
try:
    CryptographyClient(kc.get_key("cr-P256").id, cred).sign("ES256", b"x" * 43)
except HttpResponseError as ex:
    out["digest"] = err(ex)
out["paths"] = sorted({w["url"].split("?")[0].rsplit("/", 1)[1] for w in wire if w["method"] == "POST"})
''')
        for k, v in out["res"].items():
            if k.endswith(("RSA1_5", "OAEP", "OAEP-256")):
                self.assertEqual(v, [True, True], k)
            elif k.split("/")[1].startswith("ES"):
                self.assertEqual(v, [True, True], k)
            else:
                self.assertEqual(v, [True, True, False], k)
        self.assertEqual(len(out["res"]), 2 * 9 + 2 * 4)
        self.assertEqual(out["forbidden"]["status"], 403)
        self.assertEqual(out["forbidden"]["inner"], "KeyOperationForbidden")
        self.assertEqual(out["digest"]["status"], 400)
        self.assertEqual(out["digest"]["code"], "BadParameter")
        for op in ("sign", "decrypt", "unwrapkey", "create"):
            self.assertIn(op, out["paths"])
