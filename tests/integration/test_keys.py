"""Key Vault keys on real processes (issue 9, docs/keys.md): create/import/get/list/update,
soft delete, the operations with every algorithm (signatures checked with the public JWK by
python `cryptography`), and the errors of the reference."""
import base64
import hashlib
import os
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from harness import Env, MivaultTest, free_port


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def intb(s):
    return int.from_bytes(unb64u(s), "big")


def public_key(jwk):
    if jwk["kty"].startswith("RSA"):
        return rsa.RSAPublicNumbers(intb(jwk["e"]), intb(jwk["n"])).public_key()
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
             "P-256K": ec.SECP256K1()}[jwk["crv"]]
    return ec.EllipticCurvePublicNumbers(intb(jwk["x"]), intb(jwk["y"]), curve).public_key()


HASH = {"256": (hashes.SHA256(), hashlib.sha256), "384": (hashes.SHA384(), hashlib.sha384),
        "512": (hashes.SHA512(), hashlib.sha512)}


def verify_local(jwk, alg, digest, sig):
    """Verifies a Key Vault signature with the public JWK only; raises if invalid."""
    pub = public_key(jwk)
    h = HASH[alg[2:5] if not alg.endswith("K") else "256"][0]
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    if alg.startswith("RS"):
        pub.verify(sig, digest, padding.PKCS1v15(), Prehashed(h))
    elif alg.startswith("PS"):
        pub.verify(sig, digest, padding.PSS(mgf=padding.MGF1(h), salt_length=len(digest)), Prehashed(h))
    else:
        n = len(sig) // 2
        der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
        pub.verify(der, digest, ec.ECDSA(Prehashed(h)))


class KeysTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Crypto Officer", e.vault_scope("dev"))
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(self.port, e.vault_resource())

    def kv(self, method, path, **kw):
        return self.env.kv(method, "dev", path, token=self.tok, **kw)

    def create(self, name, **body):
        r = self.kv("POST", "/keys/%s/create" % name, body=body)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def op(self, name, version, op, body, status=200):
        r = self.kv("POST", "/keys/%s/%s/%s" % (name, version, op), body=body)
        self.assertEqual(r.status, status, r.body)
        return r.json()

    def test_api_versions_of_the_sdks(self):
        for api in ("7.4-preview.1", "7.4", "7.5", "7.6", "2025-07-01"):
            self.assertEqual(self.kv("GET", "/keys", api=api).status, 200, api)

    def test_create_shapes_and_no_private_material(self):
        k = self.create("r1", kty="RSA", tags={"purpose": "test"})
        key = k["key"]
        self.assertEqual(key["kty"], "RSA")
        self.assertEqual(key["key_ops"], ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
        self.assertEqual(key["e"], "AQAB")
        self.assertEqual(len(unb64u(key["n"])), 256)
        self.assertRegex(key["kid"], r"^https://dev\.vault\.localhost:%d/keys/r1/[0-9a-f]{32}$" % self.env.server_port)
        for priv in ("d", "p", "q", "dp", "dq", "qi", "k"):
            self.assertNotIn(priv, key)
        self.assertEqual(k["tags"], {"purpose": "test"})
        a = k["attributes"]
        self.assertTrue(a["enabled"])
        self.assertIsInstance(a["created"], int)
        self.assertEqual(a["recoveryLevel"], "Recoverable+Purgeable")
        for size in (3072, 4096):
            k = self.create("r%d" % size, kty="RSA", key_size=size)
            self.assertEqual(len(unb64u(k["key"]["n"])), size // 8)
        for crv, n in (("P-256", 32), ("P-384", 48), ("P-521", 66), ("P-256K", 32)):
            k = self.create("e" + crv.replace("-", ""), kty="EC", crv=crv)
            self.assertEqual(k["key"]["crv"], crv)
            self.assertEqual(k["key"]["key_ops"], ["sign", "verify"])
            self.assertEqual(len(unb64u(k["key"]["x"])), n)
            self.assertEqual(len(unb64u(k["key"]["y"])), n)
            self.assertNotIn("d", k["key"])
        k = self.create("hsm", kty="RSA-HSM", key_ops=["sign", "verify"])
        self.assertEqual(k["key"]["kty"], "RSA-HSM")
        self.assertEqual(k["key"]["key_ops"], ["sign", "verify"])

    def test_create_errors(self):
        r = self.kv("POST", "/keys/small/create", body={"kty": "RSA", "key_size": 1024})
        self.assertAzureError(r, 400, "BadParameter")
        for body in ({"kty": "oct"}, {}, {"kty": "EC", "crv": "P-192"}, {"kty": "RSA", "key_size": 2049},
                     {"kty": "RSA", "key_ops": ["fly"]}, {"kty": "EC", "key_ops": ["encrypt"]}):
            r = self.kv("POST", "/keys/bad/create", body=body)
            self.assertAzureError(r, 400, "BadParameter")
        self.assertAzureError(self.kv("GET", "/keys/bad"), 404, "KeyNotFound")
        self.assertAzureError(self.kv("GET", "/keys/small/"), 404, "KeyNotFound")

    def test_get_latest_versions_list_paging_update(self):
        a = self.create("multi", kty="EC")
        b = self.create("multi", kty="EC")
        va, vb = (x["key"]["kid"].rsplit("/", 1)[1] for x in (a, b))
        for path in ("/keys/multi", "/keys/multi/", "/keys/MULTI/"):
            self.assertEqual(self.kv("GET", path).json()["key"]["kid"], b["key"]["kid"], path)
        self.assertEqual(self.kv("GET", "/keys/multi/" + va).json()["key"]["x"], a["key"]["x"])
        self.assertAzureError(self.kv("GET", "/keys/multi/" + "0" * 32), 404, "KeyNotFound")
        vers = self.kv("GET", "/keys/multi/versions").json()
        self.assertEqual(sorted(i["kid"].rsplit("/", 1)[1] for i in vers["value"]), sorted([va, vb]))
        self.assertIsNone(vers["nextLink"])
        for i in range(3):
            self.create("p%d" % i, kty="EC")
        names, url = [], "/keys?maxresults=2"
        while url:
            r = self.env.kv("GET", "dev", url, token=self.tok, api=None if "api-version" in url else "7.5")
            page = r.json()
            for item in page["value"]:
                self.assertNotIn("key", item)
                self.assertEqual(item["kid"].count("/"), 4)  # https://host/keys/name: no version
                names.append(item["kid"].rsplit("/", 1)[1])
            nl = page["nextLink"]
            url = nl[nl.index("/keys"):] if nl else None
        self.assertEqual(names, ["multi", "p0", "p1", "p2"])
        u = self.kv("PATCH", "/keys/multi/", body={"key_ops": ["verify"], "tags": {"t": "1"},
                                                   "attributes": {"enabled": False}}).json()
        self.assertEqual(u["key"]["key_ops"], ["verify"])
        self.assertEqual(u["tags"], {"t": "1"})
        self.assertFalse(u["attributes"]["enabled"])
        self.assertEqual(u["key"]["x"], b["key"]["x"])

    def test_import_rsa_and_ec(self):
        priv = rsa.generate_private_key(65537, 2048)
        n = priv.private_numbers()
        pub = n.public_numbers
        jwk = {"kty": "RSA", "n": b64u(pub.n.to_bytes(256, "big")), "e": b64u(pub.e.to_bytes(3, "big")),
               "d": b64u(n.d.to_bytes(256, "big")), "p": b64u(n.p.to_bytes(128, "big")),
               "q": b64u(n.q.to_bytes(128, "big")), "dp": b64u(n.dmp1.to_bytes(128, "big")),
               "dq": b64u(n.dmq1.to_bytes(128, "big")), "qi": b64u(n.iqmp.to_bytes(128, "big"))}
        r = self.kv("PUT", "/keys/imp", body={"key": jwk, "Hsm": False})
        self.assertEqual(r.status, 200, r.body)
        k = r.json()
        self.assertEqual(k["key"]["n"], jwk["n"])
        self.assertNotIn("d", k["key"])
        digest = hashlib.sha256(b"hello").digest()
        sig = self.op("imp", "", "sign", {"alg": "RS256", "value": b64u(digest)})
        priv.public_key().verify(unb64u(sig["value"]), b"hello", padding.PKCS1v15(), hashes.SHA256())
        ecp = ec.generate_private_key(ec.SECP384R1())
        en = ecp.private_numbers()
        ejwk = {"kty": "EC", "crv": "P-384", "x": b64u(en.public_numbers.x.to_bytes(48, "big")),
                "y": b64u(en.public_numbers.y.to_bytes(48, "big")), "d": b64u(en.private_value.to_bytes(48, "big"))}
        k = self.kv("PUT", "/keys/impec", body={"key": ejwk}).json()
        self.assertEqual(k["key"]["crv"], "P-384")
        bad = dict(jwk, d=b64u((n.d + 2).to_bytes(256, "big")))
        self.assertAzureError(self.kv("PUT", "/keys/bad", body={"key": bad}), 400, "BadParameter")
        small = rsa.generate_private_key(65537, 1024).private_numbers()
        sjwk = {"kty": "RSA", "n": b64u(small.public_numbers.n.to_bytes(128, "big")), "e": "AQAB",
                "d": b64u(small.d.to_bytes(128, "big"))}
        self.assertAzureError(self.kv("PUT", "/keys/bad", body={"key": sjwk}), 400, "BadParameter")
        self.assertAzureError(self.kv("PUT", "/keys/bad", body={"key": {"kty": "oct", "k": "AAAA"}}), 400, "BadParameter")
        for ops in ([1], ["fly"], "sign", [None]):
            self.assertAzureError(self.kv("PUT", "/keys/bad", body={"key": dict(ejwk, key_ops=ops)}), 400, "BadParameter")
        k = self.kv("PUT", "/keys/impops", body={"key": dict(ejwk, key_ops=["verify"])}).json()
        self.assertEqual(k["key"]["key_ops"], ["verify"])
        self.assertAzureError(self.kv("GET", "/keys/bad"), 404, "KeyNotFound")

    def test_sign_verify_every_algorithm(self):
        rk = self.create("rs", kty="RSA")
        v = rk["key"]["kid"].rsplit("/", 1)[1]
        for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            h = HASH[alg[2:]][1]
            digest = h(b"data").digest()
            # latest via an empty version segment (pitfall 1), and by version
            for ver in ("", v):
                res = self.op("rs", ver, "sign", {"alg": alg, "value": b64u(digest)})
                self.assertEqual(res["kid"], rk["key"]["kid"])
                sig = unb64u(res["value"])
                verify_local(rk["key"], alg, digest, sig)
                ok = self.op("rs", ver, "verify", {"alg": alg, "digest": b64u(digest), "value": res["value"]})
                self.assertEqual(ok, {"value": True})
                bad = bytearray(sig)
                bad[5] ^= 1
                ok = self.op("rs", ver, "verify", {"alg": alg, "digest": b64u(digest), "value": b64u(bytes(bad))})
                self.assertEqual(ok, {"value": False})
        for crv, alg in (("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512"), ("P-256K", "ES256K")):
            name = "ec" + crv.replace("-", "")
            k = self.create(name, kty="EC", crv=crv)
            h = HASH["256" if alg.endswith(("256", "256K")) else alg[2:5]][1]
            digest = h(b"data").digest()
            res = self.op(name, "", "sign", {"alg": alg, "value": b64u(digest)})
            sig = unb64u(res["value"])
            self.assertEqual(len(sig), 2 * len(unb64u(k["key"]["x"])))
            verify_local(k["key"], alg, digest, sig)
            self.assertEqual(self.op(name, "", "verify", {"alg": alg, "digest": b64u(digest), "value": res["value"]}),
                             {"value": True})
        # digest length and algorithm/key mismatches
        r = self.kv("POST", "/keys/ecP256//sign", body={"alg": "ES256", "value": b64u(b"x" * 43)})
        self.assertAzureError(r, 400, "BadParameter")
        self.assertIn("Invalid length of 'value': 43 bytes. ES256 requires 32 bytes", r.json()["error"]["message"])
        r = self.kv("POST", "/keys/ecP256//sign", body={"alg": "ES256K", "value": b64u(b"x" * 32)})
        self.assertAzureError(r, 400, "BadParameter")
        self.assertIn("can only be used with curve 'P-256K'", r.json()["error"]["message"])
        r = self.kv("POST", "/keys/rs//sign", body={"alg": "ES256", "value": b64u(b"x" * 32)})
        self.assertAzureError(r, 400, "BadParameter")
        r = self.kv("POST", "/keys/rs//sign", body={"alg": "XX", "value": b64u(b"x" * 32)})
        self.assertAzureError(r, 400, "BadParameter")

    def test_encrypt_decrypt_wrap_unwrap(self):
        k = self.create("enc", kty="RSA")
        pub = public_key(k["key"])
        for alg in ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256"):
            for enc_op, dec_op in (("encrypt", "decrypt"), ("wrapkey", "unwrapkey")):
                pt = os.urandom(32)
                ct = self.op("enc", "", enc_op, {"alg": alg, "value": b64u(pt)})
                self.assertEqual(ct["kid"], k["key"]["kid"])
                self.assertEqual(unb64u(self.op("enc", "", dec_op, {"alg": alg, "value": ct["value"]})["value"]), pt)
            # ciphertext made locally with the public JWK decrypts on the server
            pad = {"RSA1_5": padding.PKCS1v15(),
                   "RSA-OAEP": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),
                   "RSA-OAEP-256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)}[alg]
            ct = pub.encrypt(b"local secret", pad)
            self.assertEqual(unb64u(self.op("enc", "", "decrypt", {"alg": alg, "value": b64u(ct)})["value"]),
                             b"local secret")
        ek = self.create("ecenc", kty="EC")
        r = self.kv("POST", "/keys/ecenc//encrypt", body={"alg": "RSA-OAEP", "value": b64u(b"x")})
        self.assertAzureError(r, 403, "Forbidden")  # not in key_ops
        self.assertEqual(r.json()["error"]["innererror"]["code"], "KeyOperationForbidden")
        del ek

    def test_path_words_case_insensitive(self):
        """lowkey-vault and some SDKs send wrapKey, unwrapKey, rotationPolicy, deletedKeys (pitfall 21)."""
        self.create("cs", kty="RSA")
        w = self.op("cs", "", "wrapKey", {"alg": "RSA-OAEP", "value": b64u(b"k" * 16)})
        self.assertEqual(unb64u(self.op("cs", "", "unwrapKey", {"alg": "RSA-OAEP", "value": w["value"]})["value"]),
                         b"k" * 16)
        self.assertEqual(self.kv("GET", "/keys/cs/rotationPolicy").status, 200)
        self.assertEqual(self.kv("GET", "/Keys/CS/").status, 200)
        self.kv("DELETE", "/keys/cs")
        self.assertEqual(self.kv("GET", "/deletedKeys/cs").status, 200)
        self.assertAzureError(self.kv("GET", "/keys/cs/x/y/z"), 404, "NotFound")
        self.assertAzureError(self.kv("PUT", "/keys/cs/rotate", body={}), 405, "MethodNotAllowed")

    def test_key_ops_disabled_and_dates(self):
        self.create("lim", kty="RSA", key_ops=["sign", "verify"])
        r = self.kv("POST", "/keys/lim//decrypt", body={"alg": "RSA-OAEP", "value": b64u(b"x" * 256)})
        self.assertAzureError(r, 403, "Forbidden")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "KeyOperationForbidden")
        self.assertEqual(r.json()["error"]["message"], "Operation decrypt is not permitted on this key.")
        self.create("off", kty="RSA", attributes={"enabled": False})
        r = self.kv("POST", "/keys/off//sign", body={"alg": "RS256", "value": b64u(b"x" * 32)})
        self.assertAzureError(r, 403, "Forbidden")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "KeyDisabled")
        # expired: encrypt/wrap/sign refused, decrypt/unwrap/verify still work (pitfall 8)
        k = self.create("old", kty="RSA")
        digest = b64u(hashlib.sha256(b"d").digest())
        sig = self.op("old", "", "sign", {"alg": "RS256", "value": digest})["value"]
        ct = self.op("old", "", "encrypt", {"alg": "RSA-OAEP", "value": b64u(b"pt")})["value"]
        wr = self.op("old", "", "wrapkey", {"alg": "RSA-OAEP", "value": b64u(b"k" * 16)})["value"]
        self.kv("PATCH", "/keys/old/", body={"attributes": {"exp": int(time.time()) - 10}})
        for op, body in (("sign", {"alg": "RS256", "value": digest}),
                         ("encrypt", {"alg": "RSA-OAEP", "value": b64u(b"pt")}),
                         ("wrapkey", {"alg": "RSA-OAEP", "value": b64u(b"k")})):
            self.assertAzureError(self.kv("POST", "/keys/old//" + op, body=body), 403, "Forbidden")
        self.assertEqual(unb64u(self.op("old", "", "decrypt", {"alg": "RSA-OAEP", "value": ct})["value"]), b"pt")
        self.assertEqual(unb64u(self.op("old", "", "unwrapkey", {"alg": "RSA-OAEP", "value": wr})["value"]), b"k" * 16)
        self.assertTrue(self.op("old", "", "verify", {"alg": "RS256", "digest": digest, "value": sig})["value"])
        self.create("later", kty="EC", attributes={"nbf": int(time.time()) + 3600})
        r = self.kv("POST", "/keys/later//sign", body={"alg": "ES256", "value": digest})
        self.assertAzureError(r, 403, "Forbidden")
        self.assertAzureError(self.kv("POST", "/keys/nope//sign", body={"alg": "RS256", "value": digest}),
                              404, "KeyNotFound")
        for body in (b"{", {"alg": "RS256"}, {"value": digest}, {"alg": "RS256", "value": "!!"}):
            r = self.kv("POST", "/keys/old//sign", body=body)
            self.assertAzureError(r, 400, "BadParameter")
        del k

    def test_soft_delete_recover_purge(self):
        k = self.create("gone", kty="EC")
        d = self.kv("DELETE", "/keys/gone")
        self.assertEqual(d.status, 200, d.body)
        d = d.json()
        self.assertEqual(d["recoveryId"], "https://dev.vault.localhost:%d/deletedkeys/gone" % self.env.server_port)
        self.assertIsInstance(d["deletedDate"], int)
        self.assertGreater(d["scheduledPurgeDate"], d["deletedDate"])
        self.assertEqual(d["key"]["kid"], k["key"]["kid"])
        self.assertAzureError(self.kv("GET", "/keys/gone/"), 404, "KeyNotFound")
        self.assertEqual(self.kv("GET", "/deletedkeys/gone").json()["recoveryId"], d["recoveryId"])
        listed = self.kv("GET", "/deletedkeys").json()["value"]
        self.assertEqual([i["recoveryId"] for i in listed], [d["recoveryId"]])
        self.assertNotIn("key", listed[0])
        r = self.kv("POST", "/keys/gone/create", body={"kty": "EC"})
        self.assertAzureError(r, 409, "Conflict")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable")
        rec = self.kv("POST", "/deletedkeys/gone/recover")
        self.assertEqual(rec.status, 200, rec.body)
        self.assertEqual(rec.json()["key"]["kid"], k["key"]["kid"])
        self.assertEqual(self.kv("GET", "/keys/gone/").status, 200)
        self.kv("DELETE", "/keys/gone")
        self.assertEqual(self.kv("DELETE", "/deletedkeys/gone").status, 204)
        self.assertAzureError(self.kv("GET", "/deletedkeys/gone"), 404, "KeyNotFound")
        self.assertEqual(self.kv("POST", "/keys/gone/create", body={"kty": "EC"}).status, 200)
        self.assertAzureError(self.kv("DELETE", "/keys/nothere"), 404, "KeyNotFound")

    def test_private_key_not_in_store_or_audit_in_clear(self):
        priv = ec.generate_private_key(ec.SECP256R1())
        en = priv.private_numbers()
        d = en.private_value.to_bytes(32, "big")
        jwk = {"kty": "EC", "crv": "P-256", "x": b64u(en.public_numbers.x.to_bytes(32, "big")),
               "y": b64u(en.public_numbers.y.to_bytes(32, "big")), "d": b64u(d)}
        self.assertEqual(self.kv("PUT", "/keys/sealed", body={"key": jwk}).status, 200)
        for root, _, files in os.walk(self.env.dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                self.assertNotIn(d, data, f)
                self.assertNotIn(jwk["d"].encode(), data, f)


class KeysRbacTest(MivaultTest):
    """The built-in key roles at vault and at key scope (reference §4)."""

    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        self.vms = {}
        for vm in ("officer", "user", "cse", "reader", "scoped"):
            v = e.vm(vm)
            _, port = e.start_agent(vm, join=v["joinToken"])
            self.vms[vm] = (v["identity"]["principalId"], port)
        scope = e.vault_scope("dev")
        e.grant(self.vms["officer"][0], "Key Vault Crypto Officer", scope)
        e.grant(self.vms["user"][0], "Key Vault Crypto User", scope)
        e.grant(self.vms["cse"][0], "Key Vault Crypto Service Encryption User", scope)
        e.grant(self.vms["reader"][0], "Key Vault Reader", scope)
        e.grant(self.vms["scoped"][0], "Key Vault Crypto User", "key:dev/mine")  # = scope + "/keys/mine"
        self.tok = {vm: e.token(port, e.vault_resource()) for vm, (_, port) in self.vms.items()}

    def kv(self, who, method, path, **kw):
        return self.env.kv(method, "dev", path, token=self.tok[who], **kw)

    def test_roles(self):
        for name in ("k1", "mine"):
            self.assertEqual(self.kv("officer", "POST", "/keys/%s/create" % name, body={"kty": "RSA"}).status, 200)
        digest = b64u(hashlib.sha256(b"x").digest())
        sign = {"alg": "RS256", "value": digest}
        wrap = {"alg": "RSA-OAEP", "value": b64u(b"k" * 16)}
        # Crypto User: read and use, not create/delete
        self.assertEqual(self.kv("user", "POST", "/keys/k1//sign", body=sign).status, 200)
        self.assertEqual(self.kv("user", "GET", "/keys/k1/").status, 200)
        r = self.kv("user", "POST", "/keys/k2/create", body={"kty": "RSA"})
        self.assertAzureError(r, 403, "Forbidden")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "ForbiddenByRbac")
        self.assertAzureError(self.kv("user", "DELETE", "/keys/k1"), 403, "Forbidden")
        # Crypto Service Encryption User: read, wrap, unwrap only
        self.assertEqual(self.kv("cse", "GET", "/keys/k1/").status, 200)
        w = self.kv("cse", "POST", "/keys/k1//wrapkey", body=wrap)
        self.assertEqual(w.status, 200)
        self.assertAzureError(self.kv("cse", "POST", "/keys/k1//sign", body=sign), 403, "Forbidden")
        self.assertAzureError(self.kv("cse", "POST", "/keys/k1//encrypt", body=wrap), 403, "Forbidden")
        # Reader: metadata only
        self.assertEqual(self.kv("reader", "GET", "/keys").status, 200)
        self.assertEqual(self.kv("reader", "GET", "/keys/k1/").status, 200)
        self.assertAzureError(self.kv("reader", "POST", "/keys/k1//sign", body=sign), 403, "Forbidden")
        # key scope: only that key
        self.assertEqual(self.kv("scoped", "POST", "/keys/mine//sign", body=sign).status, 200)
        self.assertAzureError(self.kv("scoped", "POST", "/keys/k1//sign", body=sign), 403, "Forbidden")
        # rotation policies: Crypto User may not read them (pitfall 22), Reader and Officer may
        self.assertAzureError(self.kv("user", "GET", "/keys/k1/rotationpolicy"), 403, "Forbidden")
        self.assertEqual(self.kv("reader", "GET", "/keys/k1/rotationpolicy").status, 200)
        self.assertAzureError(self.kv("reader", "PUT", "/keys/k1/rotationpolicy", body={"lifetimeActions": []}),
                              403, "Forbidden")
        self.assertEqual(self.kv("officer", "PUT", "/keys/k1/rotationpolicy", body={"lifetimeActions": []}).status, 200)
        self.assertAzureError(self.kv("user", "POST", "/keys/k1/rotate"), 403, "Forbidden")
        self.assertEqual(self.kv("user", "POST", "/keys/k1/backup").status, 200)
        # Officer: delete and purge
        self.assertEqual(self.kv("officer", "DELETE", "/keys/k1").status, 200)
        self.assertEqual(self.kv("officer", "DELETE", "/deletedkeys/k1").status, 204)


class KeysBackupRotationTest(MivaultTest):
    """Backup/restore, rotate, rotation policies and the scheduler (docs/keys.md "Rotation")."""

    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        e.vault("other")
        vm = e.vm("vm1")
        for v in ("dev", "other"):
            e.grant(vm["identity"]["principalId"], "Key Vault Crypto Officer", e.vault_scope(v))
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(self.port, e.vault_resource())

    def kv(self, method, path, vault="dev", **kw):
        return self.env.kv(method, vault, path, token=self.tok, **kw)

    def versions(self, name):
        return sorted((i["attributes"]["created"], i["kid"].rsplit("/", 1)[1])
                      for i in self.kv("GET", "/keys/%s/versions" % name).json()["value"])

    def test_backup_restore(self):
        a = self.kv("POST", "/keys/bk/create", body={"kty": "RSA", "tags": {"x": "1"}}).json()
        b = self.kv("POST", "/keys/bk/create", body={"kty": "RSA", "key_ops": ["sign", "verify"]}).json()
        blob = self.kv("POST", "/keys/bk/backup")
        self.assertEqual(blob.status, 200, blob.body)
        value = blob.json()["value"]
        self.assertNotIn("=", value)
        self.assertAzureError(self.kv("POST", "/keys/restore", body={"value": value}), 409, "Conflict")
        # into another vault: same versions, same material, latest stays latest
        r = self.kv("POST", "/keys/restore", vault="other", body={"value": value})
        self.assertEqual(r.status, 200, r.body)
        got = r.json()
        self.assertEqual(got["key"]["n"], b["key"]["n"])
        self.assertEqual(got["key"]["key_ops"], ["sign", "verify"])
        self.assertTrue(got["key"]["kid"].endswith(b["key"]["kid"].rsplit("/", 1)[1]))
        old = self.kv("GET", "/keys/bk/" + a["key"]["kid"].rsplit("/", 1)[1], vault="other").json()
        self.assertEqual(old["key"]["n"], a["key"]["n"])
        self.assertEqual(old["tags"], {"x": "1"})
        digest = b64u(hashlib.sha256(b"r").digest())
        sig = self.kv("POST", "/keys/bk//sign", vault="other", body={"alg": "RS256", "value": digest}).json()
        verify_local(b["key"], "RS256", unb64u(digest), unb64u(sig["value"]))
        # tampered or foreign blobs, and the soft-deleted name
        bad = value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
        self.assertAzureError(self.kv("POST", "/keys/restore", body={"value": bad}), 400, "BadParameter")
        self.assertAzureError(self.kv("POST", "/keys/restore", body={"value": "abc"}), 400, "BadParameter")
        sec = self.kv("POST", "/keys/bk/backup").json()["value"]
        self.kv("DELETE", "/keys/bk")
        r = self.kv("POST", "/keys/restore", body={"value": sec})
        self.assertAzureError(r, 409, "Conflict")
        self.assertEqual(r.json()["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable")
        self.assertEqual(self.kv("DELETE", "/deletedkeys/bk").status, 204)
        self.assertEqual(self.kv("POST", "/keys/restore", body={"value": sec}).status, 200)
        self.assertAzureError(self.kv("POST", "/keys/none/backup"), 404, "KeyNotFound")

    def test_rotate_and_policy(self):
        k = self.kv("POST", "/keys/rot/create", body={"kty": "EC", "crv": "P-384", "tags": {"t": "1"}}).json()
        p = self.kv("GET", "/keys/rot/rotationpolicy")
        self.assertEqual(p.status, 200, p.body)
        self.assertEqual(p.json()["lifetimeActions"], [])
        self.assertTrue(p.json()["id"].endswith("/keys/rot/rotationpolicy"))
        body = {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "rotate"}},
                                    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "NOTIFY"}}],
                "attributes": {"expiryTime": "P2Y"}}
        r = self.kv("PUT", "/keys/rot/rotationpolicy", body=body)
        self.assertEqual(r.status, 200, r.body)
        pol = r.json()
        self.assertEqual([a["action"]["type"] for a in pol["lifetimeActions"]], ["Rotate", "Notify"])
        self.assertEqual(pol["attributes"]["expiryTime"], "P2Y")
        self.assertIsInstance(pol["attributes"]["created"], int)
        self.assertEqual(self.kv("GET", "/keys/ROT/rotationpolicy").json()["lifetimeActions"], pol["lifetimeActions"])
        r = self.kv("POST", "/keys/rot/rotate")
        self.assertEqual(r.status, 200, r.body)
        n = r.json()
        self.assertNotEqual(n["key"]["kid"], k["key"]["kid"])
        self.assertEqual(n["key"]["crv"], "P-384")
        self.assertNotEqual(n["key"]["x"], k["key"]["x"])
        self.assertEqual(n["tags"], {"t": "1"})
        self.assertAlmostEqual(n["attributes"]["exp"] - n["attributes"]["created"], 2 * 365 * 86400, delta=2)
        self.assertEqual(self.kv("GET", "/keys/rot/").json()["key"]["kid"], n["key"]["kid"])
        for bad in ({"lifetimeActions": [{"trigger": {"timeAfterCreate": "90 days"}, "action": {"type": "Rotate"}}]},
                    {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Explode"}}]},
                    {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Notify"}}]},
                    {"lifetimeActions": [{"trigger": {}, "action": {"type": "Rotate"}}]},
                    {"attributes": {"expiryTime": "PXD"}}):
            self.assertAzureError(self.kv("PUT", "/keys/rot/rotationpolicy", body=bad), 400, "BadParameter")
        self.assertAzureError(self.kv("GET", "/keys/none/rotationpolicy"), 404, "KeyNotFound")
        self.assertAzureError(self.kv("POST", "/keys/none/rotate"), 404, "KeyNotFound")

    def test_scheduler_rotates_once_with_two_servers(self):
        """A policy of PT8S (mivault accepts durations of seconds; Azure's minimum is 7 days): the
        scheduler of either server rotates the key once per due period, never twice."""
        e = self.env
        e.start_server(listen_port=free_port())  # a second server on the same store
        k = self.kv("POST", "/keys/auto/create", body={"kty": "RSA"}).json()
        t0 = k["attributes"]["created"]
        r = self.kv("PUT", "/keys/auto/rotationpolicy", body={
            "lifetimeActions": [{"trigger": {"timeAfterCreate": "PT8S"}, "action": {"type": "Rotate"}}],
            "attributes": {"expiryTime": "P30D"}})
        self.assertEqual(r.status, 200, r.body)
        # due at t0+8; ticks every 5 s: rotated by t0+13; the next one is not due before t0+16
        time.sleep(max(0, t0 + 15 - time.time()))
        v = self.versions("auto")
        self.assertEqual(len(v), 2, v)
        self.assertGreaterEqual(v[1][0], t0 + 8)
        latest = self.kv("GET", "/keys/auto/").json()
        self.assertEqual(latest["key"]["kid"].rsplit("/", 1)[1], v[1][1])
        self.assertAlmostEqual(latest["attributes"]["exp"], v[1][0] + 30 * 86400, delta=1)


class KeysCliTest(MivaultTest):
    """`mivault keyvault key ...` as a workload (libmivault's key client: mv_key_*)."""

    def test_cli_verbs(self):
        import json as _json
        import subprocess
        from harness import BIN
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Administrator", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % port)

        def run(*a):
            return subprocess.run([BIN, "keyvault", "key"] + list(a) + ["--vault-name", "dev", "--state", e.dir],
                                  capture_output=True, text=True, env=env, timeout=60)

        r = run("create", "--name", "ck", "--kty", "EC", "--curve", "P-384")
        self.assertEqual(r.returncode, 0, r.stderr)
        k = _json.loads(r.stdout)
        self.assertEqual((k["name"], k["key"]["crv"]), ("ck", "P-384"))
        self.assertNotIn("d", k["key"])
        r = run("create", "--name", "cr", "--size", "3072")
        self.assertEqual(len(unb64u(_json.loads(r.stdout)["key"]["n"])), 384)
        r = run("show", "--name", "ck")
        self.assertEqual(_json.loads(r.stdout)["key"]["kid"], k["key"]["kid"])
        r = run("list", "-o", "table")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ck", r.stdout)
        self.assertIn("cr", r.stdout)
        # az's flags (docs/cli.md): --algorithm, --digest, --signature, --value; base64 in, and
        # {"algorithm", "kid", "result"} / {"algorithm", "isValid"} out.
        digest = b64u(hashlib.sha384(b"cli").digest())
        r = run("sign", "--name", "ck", "--algorithm", "ES384", "--digest", digest)
        self.assertEqual(r.returncode, 0, r.stderr)
        sig = _json.loads(r.stdout)
        self.assertEqual(sig["kid"], k["key"]["kid"].rsplit("/", 1)[0])
        sig_b64 = sig["result"]
        verify_local(k["key"], "ES384", unb64u(digest), base64.b64decode(sig_b64))
        r = run("verify", "--name", "ck", "--algorithm", "ES384", "--digest", digest, "--signature", sig_b64)
        self.assertIs(_json.loads(r.stdout)["isValid"], True)
        ct = _json.loads(run("encrypt", "--name", "cr", "--algorithm", "RSA-OAEP-256", "--value", b64u(b"hello")).stdout)
        pt = _json.loads(run("decrypt", "--name", "cr", "--algorithm", "RSA-OAEP-256", "--value", ct["result"]).stdout)
        self.assertEqual(base64.b64decode(pt["result"]), b"hello")
        r = run("sign", "--name", "ck", "--algorithm", "ES256", "--digest", digest)
        self.assertEqual(r.returncode, 1)
        self.assertIn("BadParameter", r.stderr)
        r = run("delete", "--name", "ck")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(_json.loads(r.stdout)["recoveryId"].endswith("/deletedkeys/ck"))
        r = run("show", "--name", "ck")
        self.assertEqual(r.returncode, 1)
        self.assertIn("KeyNotFound", r.stderr)
        r = run("show", "--name", "bad_name")
        self.assertNotEqual(r.returncode, 0)
        # the secret list shares the pager with the key list (client_list)
        tok = e.token(port, e.vault_resource())
        for i in range(30):
            self.assertEqual(e.kv("PUT", "dev", "/secrets/s%02d" % i, token=tok, body={"value": "v"}).status, 200)
        r = subprocess.run([BIN, "keyvault", "secret", "list", "--vault-name", "dev", "--state", e.dir],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(_json.loads(r.stdout)), 30)


class KeyGenerationOffTheLoopTest(MivaultTest):
    """Key generation runs on the server's offload threads (src/http/offload.c), not on the loop
    that received the request: with one loop thread, requests keep being served while RSA-4096
    keys (about a second each) are generated. Generated inline, every other request on that loop
    waited for a whole generation: about one GET per key created got through."""
    def setUp(self):
        # One loop thread; no throttle: thousands of GETs in a few seconds are the point here
        # (Azure's per-vault limits would answer 429 after the first few hundred).
        self.env = Env(self, threads=1, init_args=("--throttle-ops", "0", "--throttle-creates", "0"))
        self.addCleanup(self.env.close)
        self.env.start_server()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Administrator", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(port, e.vault_resource())

    def served_while(self, calls):
        """Runs calls (each returns an HTTP status) at once and GETs a secret until they are all
        answered; returns their statuses and the number of GETs served meanwhile."""
        e = self.env
        r = e.kv("PUT", "dev", "/secrets/probe", token=self.tok, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)
        results = []
        ts = [threading.Thread(target=lambda f=f: results.append(f())) for f in calls]
        for t in ts:
            t.start()
        gets = 0
        while any(t.is_alive() for t in ts):
            r = e.kv("GET", "dev", "/secrets/probe", token=self.tok)
            self.assertEqual(r.status, 200, r.body)
            gets += 1
        for t in ts:
            t.join()
        return results, gets

    def post(self, path, body):
        return self.env.kv("POST", "dev", path, token=self.tok, body=body).status

    def test_other_requests_are_served_while_keys_are_generated(self):
        n = 6
        results, gets = self.served_while(
            [lambda i=i: self.post("/keys/big%d/create" % i, {"kty": "RSA", "key_size": 4096}) for i in range(n)])
        self.assertEqual(results, [200] * n)
        # Inline: about one GET per key (each waits for the generation in progress). Off the
        # loop: as many as the GETs' own speed allows while the keys are made.
        self.assertGreaterEqual(gets, 4 * n, "%d GETs during %d RSA-4096 creates" % (gets, n))
        # rotations make their keys off the loop too, each like its key's latest version
        results, gets = self.served_while(
            [lambda i=i: self.post("/keys/big%d/rotate" % i, {}) for i in range(n)])
        self.assertEqual(results, [200] * n)
        self.assertGreaterEqual(gets, 4 * n, "%d GETs during %d RSA-4096 rotations" % (gets, n))
        for i in range(n):
            r = self.env.kv("GET", "dev", "/keys/big%d/versions" % i, token=self.tok)
            self.assertEqual(len(r.json()["value"]), 2, r.body)
            self.assertEqual(len(unb64u(self.env.kv("GET", "dev", "/keys/big%d" % i, token=self.tok)
                                        .json()["key"]["n"])), 512)

    def test_completions_write_while_reads_share_the_loop_snapshot(self):
        """Regression (a CI failure, SQLite): a create's completion ran as its own event of the
        loop, sometimes in an iteration where a GET had opened the loop's read snapshot (a read
        transaction on the same connection). The certificate's BEGIN IMMEDIATE then failed inside
        it: 500. A completion must end the snapshot before it writes."""
        e = self.env
        r = e.kv("PUT", "dev", "/secrets/probe", token=self.tok, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)
        stop = threading.Event()
        bad = []

        def reads():
            while not stop.is_set():
                r = e.kv("GET", "dev", "/secrets/probe", token=self.tok)
                if r.status != 200:
                    bad.append(r.status)
        readers = [threading.Thread(target=reads) for _ in range(4)]
        for t in readers:
            t.start()
        try:
            policy = {"issuer": {"name": "Self"}, "key_props": {"kty": "EC", "crv": "P-256"},
                      "x509_props": {"subject": "CN=fast.test"}}
            got = [self.post("/certificates/f%d/create" % i, {"policy": policy}) for i in range(40)]
            keys = [self.post("/keys/k%d/create" % i, {"kty": "EC", "crv": "P-256"}) for i in range(20)]
        finally:
            stop.set()
            for t in readers:
                t.join()
        self.assertEqual(got, [202] * 40)
        self.assertEqual(keys, [200] * 20)
        self.assertEqual(bad, [])
        for i in range(20):  # each create was committed, not left in a read transaction
            self.assertEqual(e.kv("GET", "dev", "/keys/k%d" % i, token=self.tok).status, 200)

    def test_other_requests_are_served_while_certificate_keys_are_generated(self):
        n = 4
        policy = {"issuer": {"name": "Self"}, "key_props": {"kty": "RSA", "key_size": 4096},
                  "x509_props": {"subject": "CN=big.test"}}
        results, gets = self.served_while(
            [lambda i=i: self.post("/certificates/c%d/create" % i, {"policy": policy}) for i in range(n)])
        self.assertEqual(results, [202] * n)
        self.assertGreaterEqual(gets, 4 * n, "%d GETs during %d RSA-4096 certificate creates" % (gets, n))
        for i in range(n):
            r = self.env.kv("GET", "dev", "/certificates/c%d" % i, token=self.tok)
            self.assertEqual(r.status, 200, r.body)
            self.assertTrue(r.json()["cer"])
