"""test_assertions.py: issue 8 points 10 and 11 against real processes.

A client assertion is good for one token (RFC 7523 §3 item 7): its jti is remembered in the
store until it expires, so a replay is refused with invalid_client, also by another server on
the same PostgreSQL database. Enrollment needs a proof that the agent holds the private key of
the public key it enrolls, and enrolling a VM again revokes its earlier node key."""
import base64
import json
import os
import sqlite3
import subprocess
import time
import unittest
import urllib.parse
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from harness import BIN, PG_URL, Env, MivaultTest, b64url, free_port, pg_sql

ARM_SCOPE = "https://management.core.windows.net//.default"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def es256(key, claims):
    h = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    r, s = utils.decode_dss_signature(key.sign((h + "." + p).encode(), ec.ECDSA(hashes.SHA256())))
    return h + "." + p + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def public_jwk(key):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url(n.x.to_bytes(32, "big")),
            "y": b64url(n.y.to_bytes(32, "big"))}


def assertion(key, client_id, aud, jti=None, lifetime=300):
    now = int(time.time())
    return es256(key, {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "nbf": now,
                       "exp": now + lifetime, "jti": jti or str(uuid.uuid4())})


def token_request(env, client_id, a, port=None, host="127.0.0.1", scope=ARM_SCOPE, **extra):
    form = {"grant_type": "client_credentials", "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": a, "scope": scope}
    form.update(extra)
    return env.https("POST", "/%s/oauth2/v2.0/token" % env.tenant, host=host, port=port,
                     body=urllib.parse.urlencode(form), headers=FORM)


def admin_of(env):
    with open(os.path.join(env.dir, "admin.json")) as f:
        cid = json.load(f)["clientId"]
    with open(os.path.join(env.dir, "admin.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cid, key


def join_hash(join):
    import hashlib
    return hashlib.sha256(join.split(".sha256:")[0].encode()).hexdigest()


class ReplayTest(MivaultTest):
    def setUp(self):
        super().setUp()
        self.cid, self.key = admin_of(self.env)
        self.aud = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.env.server_port, self.env.tenant)

    def test_replayed_assertion_refused(self):
        e = self.env
        a = assertion(self.key, self.cid, self.aud)
        r = token_request(e, self.cid, a)
        self.assertEqual(r.status, 200, r.body)
        r = token_request(e, self.cid, a)
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(r.json()["error"], "invalid_client")
        # the same assertion for another resource is still a replay
        r = token_request(e, self.cid, a, scope="https://vault.azure.net/.default")
        self.assertEqual(r.json()["error"], "invalid_client")
        # a fresh assertion (new jti) is fine
        r = token_request(e, self.cid, assertion(self.key, self.cid, self.aud))
        self.assertEqual(r.status, 200, r.body)

    def test_replay_refused_after_restart(self):
        e = self.env
        a = assertion(self.key, self.cid, self.aud)
        self.assertEqual(token_request(e, self.cid, a).status, 200)
        e.stop(e.server)
        e.start_server()
        r = token_request(e, self.cid, a)
        self.assertEqual(r.status, 401, r.body)

    def test_refused_assertion_does_not_burn_its_jti(self):
        # A jti is recorded only once the assertion verified: a forged one cannot block it.
        e = self.env
        jti = str(uuid.uuid4())
        other = ec.generate_private_key(ec.SECP256R1())
        r = token_request(e, self.cid, assertion(other, self.cid, self.aud, jti=jti))
        self.assertEqual(r.status, 401, r.body)
        r = token_request(e, self.cid, assertion(self.key, self.cid, self.aud, jti=jti))
        self.assertEqual(r.status, 200, r.body)

    def test_agent_tokens_still_flow(self):
        # The agent makes a fresh assertion per request: many fetches, no refusals.
        e = self.env
        vm = e.vm("vm1")
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        for res in ("https://vault.azure.net", "https://management.azure.com/",
                    "https://storage.azure.com/"):
            e.token(port, res)


@unittest.skipUnless(PG_URL, "MIVAULT_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL)")
class ReplayAcrossServersTest(unittest.TestCase):
    """Two servers on one PostgreSQL database: an assertion spent on one is refused by the other."""

    def setUp(self):
        self.pub = free_port()
        self.url = "https://mv.test:%d" % self.pub
        self.e1 = Env(self, pg=True, init_args=("--public-url", self.url))
        self.addCleanup(self.e1.close)
        self.p1 = free_port()
        self.e1.start_server(listen_port=self.p1)
        self.dir2 = self.e1.dir + "-2"
        r = subprocess.run([BIN, "init", "--state", self.dir2, "--store", self.e1.store_url,
                            "--master-key", os.path.join(self.e1.dir, "master.key"),
                            "--public-url", self.url], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.p2 = free_port()
        log = open(self.dir2 + ".log", "w")
        self.s2 = subprocess.Popen([BIN, "server", "--state", self.dir2, "--listen",
                                    "127.0.0.1:%d" % self.p2], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: (self.e1.stop(self.s2), log.close()))
        from harness import wait_port
        wait_port(self.p2, self.s2)

    def test_replay_on_the_other_server_refused(self):
        e = self.e1
        cid, key = admin_of(e)
        aud = "%s/%s/oauth2/v2.0/token" % (self.url, e.tenant)
        for first, second in ((self.p1, self.p2), (self.p2, self.p1)):
            a = assertion(key, cid, aud)
            r = token_request(e, cid, a, port=first, host="mv.test")
            self.assertEqual(r.status, 200, r.body)
            r = token_request(e, cid, a, port=second, host="mv.test")
            self.assertEqual(r.status, 401, r.body)
            self.assertEqual(r.json()["error"], "invalid_client")


class EnrollProofTest(MivaultTest):
    def setUp(self):
        super().setUp()
        self.aud = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.env.server_port, self.env.tenant)

    def enroll(self, join, jwk, proof=None):
        body = {"joinToken": join, "publicKey": jwk}
        if proof is not None:
            body["proof"] = proof
        return self.env.https("POST", "/mivault/enroll", body=body)

    def proof(self, key, join):
        return es256(key, {"purpose": "mivault-enroll", "joinTokenSha256": join_hash(join)})

    def node_token(self, key, cid):
        return token_request(self.env, cid, assertion(key, cid, self.aud),
                             scope="https://vault.azure.net/.default")

    def test_unproven_key_refused(self):
        join = self.env.vm("vm1")["joinToken"]
        victim = ec.generate_private_key(ec.SECP256R1())  # whose public key is enrolled
        mine = ec.generate_private_key(ec.SECP256R1())
        jwk = public_jwk(victim)
        for proof in (None, "", "x.y.z", self.proof(mine, join),
                      es256(victim, {"purpose": "mivault-enroll", "joinTokenSha256": "0" * 64}),
                      es256(victim, {"purpose": "other", "joinTokenSha256": join_hash(join)})):
            r = self.enroll(join, jwk, proof)
            self.assertEqual(r.status, 400, (proof, r.body))
            self.assertEqual(r.json()["error"], "invalid_request")
        # none of those spent the token: the key's holder enrolls with it
        r = self.enroll(join, jwk, self.proof(victim, join))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.node_token(victim, r.json()["clientId"]).status, 200)

    def test_reenrollment_revokes_the_old_key(self):
        e = self.env
        join1 = e.vm("vm1")["joinToken"]
        k1 = ec.generate_private_key(ec.SECP256R1())
        r = self.enroll(join1, public_jwk(k1), self.proof(k1, join1))
        self.assertEqual(r.status, 200, r.body)
        c1 = r.json()["clientId"]
        self.assertEqual(self.node_token(k1, c1).status, 200)

        join2 = e.cli("vm", "join-token", "--name", "vm1")["joinToken"]
        k2 = ec.generate_private_key(ec.SECP256R1())
        r = self.enroll(join2, public_jwk(k2), self.proof(k2, join2))
        self.assertEqual(r.status, 200, r.body)
        c2 = r.json()["clientId"]
        r = self.node_token(k1, c1)
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(r.json()["error"], "invalid_client")
        self.assertEqual(self.node_token(k2, c2).status, 200)
        # spent tokens are gone from the store
        sql = "SELECT count(*) FROM join_tokens WHERE used <> 0"
        if e.store_url:
            self.assertEqual(pg_sql(e.store_url, sql).strip(), "0")
        else:
            c = sqlite3.connect(os.path.join(e.dir, "mivault.db"))
            self.assertEqual(c.execute(sql).fetchone()[0], 0)
            c.close()

    def test_agent_of_this_build_enrolls_and_reenrolls(self):
        e = self.env
        vm = e.vm("vm1")
        p, port = e.start_agent("vm1", join=vm["joinToken"])
        e.token(port, "https://vault.azure.net")
        e.stop(p)
        join2 = e.cli("vm", "join-token", "--name", "vm1")["joinToken"]
        _, port = e.start_agent("vm1", join=join2)
        e.token(port, "https://management.azure.com/")


if __name__ == "__main__":
    unittest.main()
