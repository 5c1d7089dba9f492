"""`mivault keyvault key ...` (issue 9, Also): the CLI as a workload on a VM, through libmivault's
key operations (mv_key_sign ...: IMDS token, the vault's challenge). Signatures are checked locally with the public
JWK that `key show` prints; encrypt/decrypt and wrap/unwrap round-trip; errors exit 1 with the
vault's code, usage errors exit 2."""
import base64
import hashlib
import json
import os
import subprocess

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from harness import BIN, MivaultTest


def b64u_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def public_key(jwk):
    if jwk["kty"].startswith("RSA"):
        return rsa.RSAPublicNumbers(b64u_int(jwk["e"]), b64u_int(jwk["n"])).public_key()
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
             "P-256K": ec.SECP256K1()}[jwk["crv"]]
    return ec.EllipticCurvePublicNumbers(b64u_int(jwk["x"]), b64u_int(jwk["y"]), curve).public_key()


class CliKeysTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Administrator", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        self.envvars = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % port)

    def run_cli(self, *a):
        r = subprocess.run([BIN] + list(a) + ["--state", self.env.dir], capture_output=True, text=True,
                           env=self.envvars, timeout=60)
        for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(m, r.stderr)
        return r

    def key(self, *a):
        r = self.run_cli("keyvault", "key", *a)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def test_create_show_list_rotate_delete_recover_purge(self):
        k = self.key("create", "--vault-name", "dev", "--name", "k1", "--kty", "RSA", "--size", "3072",
                     "--ops", "sign", "verify", "--tags", "env=test", "team=a", "--expires", "2030-01-01T00:00:00Z")
        self.assertEqual(k["name"], "k1")
        self.assertEqual(k["key"]["kty"], "RSA")
        self.assertEqual(sorted(k["key"]["key_ops"]), ["sign", "verify"])
        self.assertEqual(k["tags"], {"env": "test", "team": "a"})
        self.assertEqual(k["attributes"]["exp"], 1893456000)
        self.assertNotIn("d", k["key"])
        self.assertEqual(public_key(k["key"]).key_size, 3072)
        ec_key = self.key("create", "--vault-name", "dev", "--name", "e1", "--kty", "EC", "--curve", "P-384")
        self.assertEqual(ec_key["key"]["crv"], "P-384")
        shown = self.key("show", "--vault-name", "dev", "--name", "k1")
        self.assertEqual(shown["key"]["kid"], k["key"]["kid"])
        ver = k["key"]["kid"].rsplit("/", 1)[1]
        self.assertEqual(self.key("show", "--vault-name", "dev", "--name", "k1", "--version", ver)["key"]["n"],
                         k["key"]["n"])
        rotated = self.key("rotate", "--vault-name", "dev", "--name", "k1")
        self.assertNotEqual(rotated["key"]["kid"], k["key"]["kid"])
        self.assertEqual(len(self.key("list-versions", "--vault-name", "dev", "--name", "k1")), 2)
        names = sorted(i["name"] for i in self.key("list", "--vault-name", "dev"))
        self.assertEqual(names, ["e1", "k1"])
        table = self.run_cli("keyvault", "key", "list", "--vault-name", "dev", "-o", "table").stdout
        self.assertIn("created", table)
        self.assertRegex(table, r"k1 .* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        shown = self.run_cli("keyvault", "key", "show", "--vault-name", "dev", "--name", "k1", "--version", ver,
                             "-o", "table").stdout
        self.assertIn("2030-01-01T00:00:00Z", shown)  # exp of the first version, in ISO 8601
        deleted = self.key("delete", "--vault-name", "dev", "--name", "k1")
        self.assertEqual(deleted["name"], "k1")
        self.assertIn("recoveryId", deleted)
        self.assertEqual([d["name"] for d in self.key("list-deleted", "--vault-name", "dev")], ["k1"])
        r = self.run_cli("keyvault", "key", "show", "--vault-name", "dev", "--name", "k1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("KeyNotFound", r.stderr)
        self.assertEqual(self.key("recover", "--vault-name", "dev", "--name", "k1")["name"], "k1")
        self.key("delete", "--vault-name", "dev", "--name", "e1")
        self.assertIsNone(self.key("purge", "--vault-name", "dev", "--name", "e1"))
        self.assertEqual(self.key("list-deleted", "--vault-name", "dev"), [])

    def test_sign_verify_locally_every_alg(self):
        self.key("create", "--vault-name", "dev", "--name", "r", "--kty", "RSA")
        cases = [("r", "RS256", hashes.SHA256()), ("r", "PS384", hashes.SHA384()), ("r", "RS512", hashes.SHA512())]
        for crv, alg, h in (("P-256", "ES256", hashes.SHA256()), ("P-384", "ES384", hashes.SHA384()),
                            ("P-521", "ES512", hashes.SHA512()), ("P-256K", "ES256K", hashes.SHA256())):
            name = "ec-" + crv.replace("-", "")
            self.key("create", "--vault-name", "dev", "--name", name, "--kty", "EC", "--curve", crv)
            cases.append((name, alg, h))
        msg = b"mivault signs this"
        for name, alg, h in cases:
            with self.subTest(alg=alg):
                jwk = self.key("show", "--vault-name", "dev", "--name", name)["key"]
                digest = hashlib.new(h.name, msg).digest()
                out = self.key("sign", "--vault-name", "dev", "--name", name, "--algorithm", alg,
                               "--digest", base64.b64encode(digest).decode())
                self.assertEqual(out["algorithm"], alg)
                sig = base64.b64decode(out["result"])
                pub = public_key(jwk)
                if alg.startswith("ES"):
                    half = len(sig) // 2
                    der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
                    pub.verify(der, msg, ec.ECDSA(h))
                elif alg.startswith("PS"):
                    pub.verify(sig, msg, padding.PSS(padding.MGF1(h), h.digest_size), h)
                else:
                    pub.verify(sig, msg, padding.PKCS1v15(), h)
                ok = self.key("verify", "--vault-name", "dev", "--name", name, "--algorithm", alg,
                              "--digest", base64.b64encode(digest).decode(), "--signature", out["result"])
                self.assertTrue(ok["isValid"])
                bad = bytes([sig[0] ^ 1]) + sig[1:]
                ok = self.key("verify", "--vault-name", "dev", "--name", name, "--algorithm", alg,
                              "--digest", base64.b64encode(digest).decode(),
                              "--signature", base64.b64encode(bad).decode())
                self.assertFalse(ok["isValid"])

    def test_encrypt_decrypt_wrap_unwrap(self):
        k = self.key("create", "--vault-name", "dev", "--name", "enc", "--kty", "RSA")
        pub = public_key(k["key"])
        for alg in ("RSA-OAEP", "RSA-OAEP-256", "RSA1_5"):
            with self.subTest(alg=alg):
                ct = self.key("encrypt", "--vault-name", "dev", "--name", "enc", "--algorithm", alg,
                              "--value", "hello world", "--data-type", "plaintext")["result"]
                pt = self.key("decrypt", "--vault-name", "dev", "--name", "enc", "--algorithm", alg,
                              "--value", ct, "--data-type", "plaintext")["result"]
                self.assertEqual(pt, "hello world")
                dek = os.urandom(32)
                wrapped = self.key("wrap", "--vault-name", "dev", "--name", "enc", "--algorithm", alg,
                                   "--value", base64.b64encode(dek).decode())["result"]
                un = self.key("unwrap", "--vault-name", "dev", "--name", "enc", "--algorithm", alg,
                              "--value", wrapped)["result"]
                self.assertEqual(base64.b64decode(un), dek)
        # Locally encrypted with the public JWK, decrypted by the vault.
        ct = pub.encrypt(b"from outside", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
        pt = self.key("decrypt", "--vault-name", "dev", "--name", "enc", "--algorithm", "RSA-OAEP-256",
                      "--value", base64.b64encode(ct).decode())["result"]
        self.assertEqual(base64.b64decode(pt), b"from outside")

    def test_backup_restore_rotation_policy_show_deleted(self):
        k = self.key("create", "--vault-name", "dev", "--name", "bk", "--kty", "EC")
        f = os.path.join(self.env.dir, "bk.backup")
        self.assertIsNone(self.key("backup", "--vault-name", "dev", "--name", "bk", "--file", f))
        self.assertEqual(os.stat(f).st_mode & 0o777, 0o600)
        self.key("delete", "--vault-name", "dev", "--name", "bk")
        self.assertEqual(self.key("show-deleted", "--vault-name", "dev", "--name", "bk")["name"], "bk")
        r = self.run_cli("keyvault", "key", "restore", "--vault-name", "dev", "--file", f)
        self.assertEqual(r.returncode, 1)  # the name is soft-deleted
        self.assertIn("ObjectIsDeletedButRecoverable", r.stderr)
        self.key("purge", "--vault-name", "dev", "--name", "bk")
        restored = self.key("restore", "--vault-name", "dev", "--file", f)
        self.assertEqual(restored["key"]["kid"], k["key"]["kid"])
        pol = self.key("rotation-policy", "show", "--vault-name", "dev", "--name", "bk")
        self.assertEqual(pol["lifetimeActions"], [])

    def test_set_attributes(self):
        self.key("create", "--vault-name", "dev", "--name", "sa", "--kty", "EC")
        d = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
        k = self.key("set-attributes", "--vault-name", "dev", "--name", "sa", "--enabled", "false",
                     "--tags", "state=off")
        self.assertFalse(k["attributes"]["enabled"])
        self.assertEqual(k["tags"], {"state": "off"})
        r = self.run_cli("keyvault", "key", "sign", "--vault-name", "dev", "--name", "sa", "--algorithm", "ES256",
                         "--digest", d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("KeyDisabled", r.stderr)
        k = self.key("set-attributes", "--vault-name", "dev", "--name", "sa", "--enabled", "true", "--ops", "verify")
        self.assertEqual(k["key"]["key_ops"], ["verify"])
        r = self.run_cli("keyvault", "key", "sign", "--vault-name", "dev", "--name", "sa", "--algorithm", "ES256",
                         "--digest", d)
        self.assertIn("KeyOperationForbidden", r.stderr)
        r = self.run_cli("keyvault", "key", "set-attributes", "--vault-name", "dev", "--name", "sa",
                         "--enabled", "maybe")
        self.assertEqual(r.returncode, 2)

    def test_import_jwk_file(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="mivault-keys.")
        priv = ec.generate_private_key(ec.SECP256R1())
        n = priv.private_numbers()

        def b64u(i, size=32):
            return base64.urlsafe_b64encode(i.to_bytes(size, "big")).rstrip(b"=").decode()

        jwk = {"kty": "EC", "crv": "P-256", "x": b64u(n.public_numbers.x), "y": b64u(n.public_numbers.y),
               "d": b64u(n.private_value)}
        path = os.path.join(tmp, "k.json")
        with open(path, "w") as f:
            json.dump(jwk, f)
        k = self.key("import", "--vault-name", "dev", "--name", "imp", "--file", path, "--tags", "src=jwk",
                     "--ops", "sign", "verify")
        self.assertEqual(k["name"], "imp")
        self.assertEqual(k["key"]["x"], jwk["x"])
        self.assertNotIn("d", k["key"])
        self.assertEqual(k["tags"], {"src": "jwk"})
        self.assertEqual(sorted(k["key"]["key_ops"]), ["sign", "verify"])
        # the vault signs with the imported private key: the local public key verifies it
        digest = hashlib.sha256(b"imported").digest()
        sig = self.key("sign", "--vault-name", "dev", "--name", "imp", "--algorithm", "ES256",
                       "--digest", base64.b64encode(digest).decode())
        raw = base64.b64decode(sig["result"])
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
        priv.public_key().verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                                      int.from_bytes(raw[32:], "big")),
                                 digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        # {"key": JWK} works too, and makes a new version; --disabled
        with open(path, "w") as f:
            json.dump({"key": jwk}, f)
        k2 = self.key("import", "--vault-name", "dev", "--name", "imp", "--file", path, "--disabled")
        self.assertNotEqual(k2["key"]["kid"], k["key"]["kid"])
        self.assertFalse(k2["attributes"]["enabled"])
        # a bad JWK: the vault's BadParameter, exit 1; not a JWK / no file / unknown option: exit 2
        with open(path, "w") as f:
            json.dump({"kty": "EC", "crv": "P-256", "x": jwk["x"]}, f)
        r = self.run_cli("keyvault", "key", "import", "--vault-name", "dev", "--name", "imp", "--file", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("BadParameter", r.stderr)
        with open(path, "w") as f:
            f.write("[1]")
        for args in (["--file", path], ["--file", os.path.join(tmp, "missing.json")], [],
                     ["--file", path, "--pem-file", path], ["--file", path, "--protection", "cloud"]):
            with self.subTest(args=args):
                r = self.run_cli("keyvault", "key", "import", "--vault-name", "dev", "--name", "imp", *args)
                self.assertIn(r.returncode, (1, 2) if "missing.json" in str(args) else (2,), r.stderr)
        self.assertEqual(len(self.key("list-versions", "--vault-name", "dev", "--name", "imp")), 2)

    def test_errors_and_usage(self):
        self.key("create", "--vault-name", "dev", "--name", "so", "--kty", "RSA", "--ops", "sign")
        r = self.run_cli("keyvault", "key", "encrypt", "--vault-name", "dev", "--name", "so", "--algorithm",
                         "RSA-OAEP", "--value", "aGk=")
        self.assertEqual(r.returncode, 1)
        self.assertIn("KeyOperationForbidden", r.stderr)
        r = self.run_cli("keyvault", "key", "create", "--vault-name", "dev", "--name", "small", "--size", "1024")
        self.assertEqual(r.returncode, 1)
        self.assertIn("BadParameter", r.stderr)
        r = self.run_cli("keyvault", "key", "sign", "--vault-name", "dev", "--name", "so", "--algorithm", "RS256",
                         "--digest", base64.b64encode(b"short").decode())
        self.assertEqual(r.returncode, 1)
        self.assertIn("BadParameter", r.stderr)
        for args in (["create", "--vault-name", "dev", "--name", "x", "--bogus", "1"],
                     ["create", "--vault-name", "dev", "--name", "bad_name"],
                     ["create", "--vault-name", "dev", "--name", "x", "--expires", "tomorrow"],
                     ["sign", "--vault-name", "dev", "--name", "so", "--algorithm", "RS256", "--digest", "!!"],
                     ["show", "--vault-name", "dev"]):
            with self.subTest(args=args):
                r = self.run_cli("keyvault", "key", *args)
                self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
