"""test_service_principals.py: issue 10, service principals against real processes.

`mivault sp create|list|show|delete` and `sp credential reset` (secret / certificate); the v2
token endpoint with client_secret and with certificate client assertions (RS256 + x5t as MSAL
Python signs, PS256 + x5t#S256 as msal-node signs), replay of an assertion refused; every
refusal in Entra's shape (AADSTS code in error_description and error_codes, timestamp,
trace_id, correlation_id); the token's v1 claims (appid, oid, tid, idtyp app, no xms_mirid),
and the vault treating a service principal like any principal once it holds a role."""
import base64
import datetime
import hashlib
import json
import os
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from harness import Env, MivaultTest, b64url, jwt_parts

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
VAULT_SCOPE_SUFFIX = "/.default"


def make_cert(cn="sp-test", key=None):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return key, cert


def cert_assertion(key, cert, client_id, aud, alg="RS256", lifetime=600, jti=None, now=None,
                   thumb=None):
    der = cert.public_bytes(serialization.Encoding.DER)
    hdr = {"alg": alg, "typ": "JWT"}
    if thumb != "none":
        if alg.startswith("PS") or thumb == "s256":
            hdr["x5t#S256"] = b64url(hashlib.sha256(der).digest())
        else:
            hdr["x5t"] = b64url(hashlib.sha1(der).digest())
    now = int(time.time()) if now is None else now
    claims = {"aud": aud, "iss": client_id, "sub": client_id, "iat": now, "nbf": now,
              "exp": now + lifetime, "jti": jti or str(uuid.uuid4())}
    h = b64url(json.dumps(hdr).encode())
    p = b64url(json.dumps(claims).encode())
    pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if alg == "PS256"
           else padding.PKCS1v15())
    sig = key.sign((h + "." + p).encode(), pad, hashes.SHA256())
    return h + "." + p + "." + b64url(sig)


class ServicePrincipals(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        self.sp = e.cli("sp", "create", "--name", "ci-deployer")
        self.endpoint = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (e.server_port, e.tenant)

    def token(self, form, query=""):
        path = "/%s/oauth2/v2.0/token%s" % (self.env.tenant, query)
        return self.env.https("POST", path, body=urllib.parse.urlencode(form), headers=FORM)

    def secret_form(self, secret, client_id=None, scope="https://vault.azure.net/.default"):
        # the fields MSAL Python sends, extras included (they are ignored)
        return {"client_id": client_id or self.sp["appId"], "grant_type": "client_credentials",
                "client_info": "1", "client_secret": secret,
                "claims": json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}}),
                "scope": scope}

    def assertAad(self, r, status, error, code):
        self.assertEqual(r.status, status, r.body)
        j = r.json()
        self.assertEqual(j["error"], error, j)
        self.assertEqual(j["error_codes"], [code], j)
        self.assertTrue(j["error_description"].startswith("AADSTS%d: " % code), j)
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIsInstance(j[k], str)
        self.assertRegex(j["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
        self.assertIn("\r\nTrace ID: " + j["trace_id"], j["error_description"])
        return j

    def test_create_shape_and_secret_shown_once(self):
        sp, e = self.sp, self.env
        self.assertEqual(sp["tenant"], e.tenant)
        self.assertEqual(sp["displayName"], "ci-deployer")
        self.assertEqual(len(sp["password"]), 40)
        uuid.UUID(sp["appId"])
        uuid.UUID(sp["id"])
        shown = e.cli("sp", "show", "--id", sp["appId"])
        self.assertNotIn("password", shown)
        self.assertEqual(shown["passwordCredentials"][0]["hint"], sp["password"][:3])
        self.assertEqual([s["appId"] for s in e.cli("sp", "list")], [sp["appId"]])
        # only the hash of the secret is stored
        db = os.path.join(e.dir, "mivault.db")
        if not e.store_url:
            raw = b""
            for path in (db, db + "-wal"):
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        raw += f.read()
            self.assertNotIn(sp["password"].encode(), raw)
            self.assertIn(hashlib.sha256(sp["password"].encode()).hexdigest().encode(), raw)

    def test_secret_token_claims_and_vault_rbac(self):
        sp, e = self.sp, self.env
        r = self.token(self.secret_form(sp["password"]), "?client-request-id=" + str(uuid.uuid4()))
        self.assertEqual(r.status, 200, r.body)
        j = r.json()
        self.assertEqual(j["token_type"], "Bearer")
        self.assertIsInstance(j["expires_in"], int)
        c = jwt_parts(j["access_token"])[1]
        self.assertEqual(c["appid"], sp["appId"])
        self.assertEqual(c["oid"], sp["id"])
        self.assertEqual(c["sub"], sp["id"])
        self.assertEqual(c["tid"], e.tenant)
        self.assertEqual(c["idtyp"], "app")
        self.assertEqual(c["ver"], "1.0")
        self.assertNotIn("xms_mirid", c)
        # the vault: 403 without a role, 200 with one, like a managed identity
        e.vault("spv")
        tok = self.token(self.secret_form(sp["password"], scope=e.vault_resource() + "/.default")).json()["access_token"]
        r = e.kv("PUT", "spv", "/secrets/s1", token=tok, body={"value": "v"})
        self.assertEqual(r.status, 403, r.body)
        e.grant(sp["id"], "Key Vault Secrets Officer", e.vault_scope("spv"))
        r = e.kv("PUT", "spv", "/secrets/s1", token=tok, body={"value": "v"})
        self.assertEqual(r.status, 200, r.body)

    def test_secret_refusals(self):
        sp = self.sp
        j = self.assertAad(self.token(self.secret_form("x" * 40)), 401, "invalid_client", 7000215)
        self.assertIn(sp["appId"], j["error_description"])
        unknown = str(uuid.uuid4())
        crid = str(uuid.uuid4())
        j = self.assertAad(self.token(self.secret_form(sp["password"], unknown), "?client-request-id=" + crid),
                           400, "unauthorized_client", 700016)
        self.assertIn("Application with identifier '%s' was not found in the directory '%s'"
                      % (unknown, self.env.tenant), j["error_description"])
        self.assertEqual(j["correlation_id"], crid)
        form = self.secret_form(sp["password"])
        del form["client_id"]
        self.assertAad(self.token(form), 400, "invalid_request", 900144)
        # a second secret works too; deleting the principal ends both
        second = self.env.cli("sp", "credential", "reset", "--id", sp["appId"])["password"]
        self.assertEqual(self.token(self.secret_form(second)).status, 200)
        self.assertEqual(self.token(self.secret_form(sp["password"])).status, 200)
        self.env.cli("sp", "delete", "--id", sp["appId"])
        self.assertAad(self.token(self.secret_form(second)), 400, "unauthorized_client", 700016)
        self.assertEqual(self.env.cli("sp", "list"), [])

    def test_expired_secret(self):
        e, sp = self.env, self.sp
        if e.store_url:
            from harness import pg_sql
            pg_sql(e.store_url, "UPDATE app_credentials SET expires = 1")
        else:
            import sqlite3
            db = sqlite3.connect(os.path.join(e.dir, "mivault.db"))
            db.execute("UPDATE app_credentials SET expires = 1")
            db.commit()
            db.close()
        j = self.assertAad(self.token(self.secret_form(sp["password"])), 401, "invalid_client", 7000222)
        self.assertIn("expired", j["error_description"])
        # a wrong secret is still 7000215
        self.assertAad(self.token(self.secret_form("y" * 40)), 401, "invalid_client", 7000215)

    def test_certificate_rs256_and_ps256(self):
        e, sp = self.env, self.sp
        key, cert = make_cert()
        pem = os.path.join(e.dir, "sp-cert.pem")
        with open(pem, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        out = e.cli("sp", "credential", "reset", "--id", sp["appId"], "--cert-file", pem)
        self.assertNotIn("password", out)
        thumb = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
        self.assertEqual(out["keyCredentials"][0]["thumbprint"], thumb)

        def form(a):
            return {"client_id": sp["appId"], "grant_type": "client_credentials",
                    "scope": "https://vault.azure.net/.default",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": a, "x-client-SKU": "msal.js.node", "client-request-id": str(uuid.uuid4())}

        for alg in ("RS256", "PS256"):
            a = cert_assertion(key, cert, sp["appId"], self.endpoint, alg=alg)
            r = self.token(form(a))
            self.assertEqual(r.status, 200, (alg, r.body))
            c = jwt_parts(r.json()["access_token"])[1]
            self.assertEqual(c["appid"], sp["appId"])
            # an assertion is good for one token per resource (MSAL reuses one for 10 minutes
            # across resources)
            self.assertEqual(self.token(form(a)).status, 401)
            other = dict(form(a), scope="https://management.core.windows.net//.default")
            self.assertEqual(self.token(other).status, 200, r.body)
            self.assertEqual(self.token(other).status, 401)
        # MSAL Python's NumericDates are reals (time.time() + 600)
        now = time.time()
        hdr = {"alg": "RS256", "typ": "JWT",
               "x5t": b64url(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest())}
        claims = {"aud": self.endpoint, "iss": sp["appId"], "sub": sp["appId"], "iat": now,
                  "exp": now + 600, "jti": str(uuid.uuid4())}
        h, p = b64url(json.dumps(hdr).encode()), b64url(json.dumps(claims).encode())
        sig = key.sign((h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
        self.assertEqual(self.token(form(h + "." + p + "." + b64url(sig))).status, 200)
        # x5t#S256 with RS256 is fine too
        self.assertEqual(self.token(form(cert_assertion(key, cert, sp["appId"], self.endpoint, thumb="s256"))).status, 200)
        # refusals
        other_key, other_cert = make_cert("other")
        self.assertAad(self.token(form(cert_assertion(other_key, other_cert, sp["appId"], self.endpoint))),
                       401, "invalid_client", 700027)  # not registered
        forged = cert_assertion(other_key, cert, sp["appId"], self.endpoint)  # right x5t, wrong key
        self.assertAad(self.token(form(forged)), 401, "invalid_client", 700027)
        old = cert_assertion(key, cert, sp["appId"], self.endpoint, now=int(time.time()) - 3600)
        j = self.assertAad(self.token(form(old)), 401, "invalid_client", 700024)
        self.assertIn("Client assertion is not within its valid time range", j["error_description"])
        wrong_aud = cert_assertion(key, cert, sp["appId"], "https://elsewhere.example/token")
        self.assertAad(self.token(form(wrong_aud)), 401, "invalid_client", 50027)
        # a certificate that is not RSA-2048+ or not PEM is refused at registration
        bad = os.path.join(e.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("not a certificate")
        r = e.run("sp", "credential", "reset", "--id", sp["appId"], "--cert-file", bad, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("InvalidCertificate", r.stderr)

    def test_discovery_v2_same_origin(self):
        e = self.env
        r = e.https("GET", "/%s/v2.0/.well-known/openid-configuration" % e.tenant)
        d = r.json()
        origin = "https://127.0.0.1:%d/" % e.server_port
        for k in ("issuer", "token_endpoint", "authorization_endpoint", "jwks_uri"):
            self.assertTrue(d[k].startswith(origin), (k, d[k]))
        self.assertIn("PS256", d["token_endpoint_auth_signing_alg_values_supported"])
        self.assertIn("client_secret_post", d["token_endpoint_auth_methods_supported"])

    def test_role_assignment_and_delete_cleanup(self):
        e, sp = self.env, self.sp
        ra = e.grant(sp["id"], "Reader", "subscription")
        self.assertEqual(ra["properties"]["principalId"], sp["id"])
        e.cli("sp", "delete", "--id", sp["appId"])
        left = e.cli("role", "assignment", "list", "--assignee", sp["id"])
        self.assertEqual(left, [])
        r = e.run("sp", "show", "--id", sp["appId"], check=False)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
