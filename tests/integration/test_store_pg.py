"""The PostgreSQL store with real processes (issue 7): `init --store URL`, a server on it, the
HTTPS API, a restart; and `store migrate` from an embedded SQLite installation. Needs
MIVAULT_TEST_PG_URL (scripts/test.sh starts a throw-away PostgreSQL); skipped without it."""
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
import unittest

from harness import BIN, PG_URL, Env, free_port, pg_new_db, pg_drop_db, pg_sql, wait_port


def config(e):
    with open(os.path.join(e.dir, "config.json")) as f:
        return json.load(f)


@unittest.skipUnless(PG_URL, "MIVAULT_TEST_PG_URL is not set")
class PostgresStoreTest(unittest.TestCase):
    def env(self, pg):
        e = Env(self, pg=pg)
        self.addCleanup(e.close)
        return e

    def workload(self, e, vault="dev", vm="vm1", uai=()):
        """A vault, a VM whose identity is Secrets Officer on it, its agent, and a token."""
        e.vault(vault)
        v = e.vm(vm, uai=uai)
        e.grant(v["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope(vault))
        e.grant(v["identity"]["principalId"], "Key Vault Crypto Officer", e.vault_scope(vault))
        _, port = e.start_agent(vm, join=v["joinToken"])
        return port, e.token(port, e.vault_resource())

    def test_server_on_postgresql_keeps_secrets_across_restart(self):
        e = self.env(pg=True)
        cfg = config(e)
        self.assertEqual(cfg["store"], e.store_url)
        self.assertFalse(os.path.exists(os.path.join(e.dir, "mivault.db")))
        e.start_server()
        port, tok = self.workload(e)
        r = e.kv("PUT", "dev", "/secrets/db-pass", token=tok, body={"value": "s3cr3t"})
        self.assertEqual(r.status, 200, r.body)
        version = r.json()["id"].rsplit("/", 1)[1]
        r = e.kv("GET", "dev", "/secrets/db-pass/", token=tok)
        self.assertEqual(r.json()["value"], "s3cr3t")
        # the rows are in PostgreSQL, the value sealed
        self.assertEqual(pg_sql(e.store_url, "SELECT count(*) FROM secrets"), "1")
        self.assertEqual(pg_sql(e.store_url, "SELECT position('s3cr3t' in encode(sealed, 'escape'))"
                                             " FROM secrets"), "0")

        e.stop(e.server)
        e.start_server()
        tok = e.token(port, e.vault_resource())
        r = e.kv("GET", "dev", "/secrets/db-pass/%s" % version, token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"], "s3cr3t")
        r = e.kv("PUT", "dev", "/secrets/db-pass", token=tok, body={"value": "v2"})
        self.assertEqual(r.status, 200, r.body)
        r = e.kv("GET", "dev", "/secrets/db-pass/versions", token=tok)
        self.assertEqual(len(r.json()["value"]), 2)
        # control-plane verbs of the state dir use PostgreSQL too
        names = [v["name"] for v in e.cli("keyvault", "list")]
        self.assertEqual(names, ["dev"])

    def test_store_migrate_moves_everything(self):
        e = self.env(pg=False)
        e.start_server()
        e.cli("identity", "create", "--name", "app-id")
        port, tok = self.workload(e, uai=["app-id"])
        for name, value in (("one", "v1"), ("one", "v2"), ("two", "t"), ("gone", "g")):
            r = e.kv("PUT", "dev", "/secrets/%s" % name, token=tok, body={"value": value})
            self.assertEqual(r.status, 200, r.body)
        self.assertEqual(e.kv("DELETE", "dev", "/secrets/gone", token=tok).status, 200)
        key = e.kv("POST", "dev", "/keys/k1/create", token=tok, body={"kty": "EC"}).json()
        r = e.kv("PUT", "dev", "/keys/k1/rotationpolicy", token=tok,
                 body={"lifetimeActions": [{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}}]})
        self.assertEqual(r.status, 200, r.body)
        # a certificate (its objects, secret and managed key come along)
        e.grant(e.cli("vm", "show", "--name", "vm1")["identity"]["principalId"], "Key Vault Administrator",
                e.vault_scope("dev"))
        tok = e.token(port, e.vault_resource())
        r = e.kv("POST", "dev", "/certificates/cert1/create", token=tok,
                 body={"policy": {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=m"}}})
        self.assertEqual(r.status, 202, r.body)
        cert = e.kv("GET", "dev", "/certificates/cert1/", token=tok).json()

        sp = e.cli("sp", "create", "--name", "ci")  # service principals and federated
        e.cli("identity", "federated-credential", "create", "--identity", "app-id", "--name", "k8s",
              "--issuer", "https://issuer.example", "--subject", "system:serviceaccount:a:b")
        e.cli("vm", "identity", "bind", "--name", "vm1", "--identity", "app-id", "--cgroup", "/app.slice")
        before = {
            "vm": e.cli("vm", "show", "--name", "vm1"),
            "identities": e.cli("identity", "list"),
            "roles": e.cli("role", "assignment", "list"),
            "vaults": e.cli("keyvault", "list"),
        }
        e.stop(e.server)  # a clean stop pins the audit chain's head in a checkpoint
        sq = sqlite3.connect(os.path.join(e.dir, "mivault.db"))
        checkpoints = sq.execute("SELECT seq, writer, records, head_hash, at, prev_hash, hash"
                                 " FROM audit_checkpoints ORDER BY seq").fetchall()
        jtis = sq.execute("SELECT count(*) FROM assertion_jti").fetchone()[0]
        sq.close()
        self.assertGreaterEqual(len(checkpoints), 1)

        db, url = pg_new_db()
        self.addCleanup(pg_drop_db, db)
        out = e.cli("store", "migrate", "--to", url)
        self.assertEqual(out["to"], "postgresql")
        self.assertEqual(out["rows"]["secrets"], 5)  # 4 set, 1 the certificate's
        self.assertEqual(out["rows"]["vm_uai"], 1)
        self.assertEqual(out["rows"]["vault_keys"], 2)  # k1 and the certificate's
        self.assertEqual(out["rows"]["key_policies"], 1)
        self.assertEqual(out["rows"]["cert_objects"], 3)  # version, policy, pending operation
        self.assertEqual(out["rows"]["audit_checkpoints"], len(checkpoints))
        self.assertEqual(out["rows"]["assertion_jti"], jtis)
        self.assertEqual(config(e)["store"], url)
        # the checkpoint chain came along row for row, and still anchors the log
        rows = pg_sql(url, "SELECT string_agg(concat_ws('|', seq, writer, records, head_hash, at, prev_hash,"
                           " hash), E'\\n' ORDER BY seq) FROM audit_checkpoints")
        self.assertEqual(rows, "\n".join("|".join(str(c) for c in row) for row in checkpoints))
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertEqual(v["checkpointChain"]["length"], len(checkpoints))
        self.assertEqual(v["writers"][0]["checkedCheckpoints"], len(checkpoints))
        # the audit anchors came along too: the writer's head
        self.assertEqual(out["rows"]["audit_heads"], 1)
        self.assertTrue(v["writers"][0]["headChecked"], v)

        e.start_server()
        tok = e.token(port, e.vault_resource())  # the agent's enrollment came along
        r = e.kv("GET", "dev", "/secrets/one/", token=tok)
        self.assertEqual(r.json()["value"], "v2")
        self.assertEqual(len(e.kv("GET", "dev", "/secrets/one/versions", token=tok).json()["value"]), 2)
        self.assertEqual(e.kv("GET", "dev", "/secrets/two/", token=tok).json()["value"], "t")
        self.assertEqual(e.kv("GET", "dev", "/deletedsecrets/gone", token=tok).status, 200)
        r = e.kv("POST", "dev", "/deletedsecrets/gone/recover", token=tok, body=b"")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(e.kv("GET", "dev", "/secrets/gone/", token=tok).json()["value"], "g")
        # the key came along, sealed private key included: it still signs
        self.assertEqual(e.kv("GET", "dev", "/keys/k1/", token=tok).json()["key"]["kid"], key["key"]["kid"])
        r = e.kv("POST", "dev", "/keys/k1//sign", token=tok, body={"alg": "ES256", "value": "A" * 43})
        self.assertEqual(r.status, 200, r.body)
        r = e.kv("GET", "dev", "/keys/k1/rotationpolicy", token=tok)
        self.assertEqual(r.json()["lifetimeActions"][0]["action"]["type"], "Rotate")
        self.assertEqual(e.cli("vm", "show", "--name", "vm1"), before["vm"])
        self.assertEqual(e.cli("identity", "list"), before["identities"])
        self.assertEqual(e.cli("role", "assignment", "list"), before["roles"])
        self.assertEqual(e.cli("keyvault", "list"), before["vaults"])
        self.assertEqual(e.kv("GET", "dev", "/certificates/cert1/", token=tok).json(), cert)
        self.assertEqual(e.kv("GET", "dev", "/secrets/cert1/", token=tok).json()["contentType"], "application/x-pkcs12")
        self.assertTrue(e.kv("GET", "dev", "/keys/cert1/", token=tok).json()["managed"])
        self.assertEqual(out["rows"]["app_credentials"], 1)
        self.assertEqual(out["rows"]["federated_credentials"], 1)
        self.assertEqual(out["rows"]["vm_bindings"], 1)
        self.assertEqual(e.cli("vm", "identity", "bindings", "--name", "vm1"),
                         [{"identity": "app-id", "cgroup": "/app.slice"}])
        form = {"client_id": sp["appId"], "grant_type": "client_credentials",
                "client_secret": sp["password"], "scope": "https://vault.azure.net/.default"}
        r = e.https("POST", "/%s/oauth2/v2.0/token" % e.tenant, body=urllib.parse.urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 200, r.body)  # the secret's hash came along
        fic = e.cli("identity", "federated-credential", "show", "--identity", "app-id", "--name", "k8s")
        self.assertEqual(fic["properties"]["subject"], "system:serviceaccount:a:b")
        r = e.kv("PUT", "dev", "/secrets/three", token=tok, body={"value": "new"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(pg_sql(url, "SELECT count(*) FROM secrets WHERE name = 'three'"), "1")
        e.stop(e.server)  # the chain goes on after the migrated checkpoints
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"], v)
        self.assertGreater(v["checkpointChain"]["length"], len(checkpoints))

        # a second installation cannot be migrated into a database that holds a tenant
        other = self.env(pg=False)
        r = other.run("store", "migrate", "--to", url, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already holds a tenant", r.stderr)
        self.assertNotIn("store", config(other))
        # and a state dir already on PostgreSQL is not migrated again
        r = e.run("store", "migrate", "--to", url, check=False)
        self.assertNotEqual(r.returncode, 0)
        # stopped while its database exists (the cleanup drops it first): a clean stop writes a
        # last audit checkpoint there
        e.stop(e.server)

    def test_init_names_an_unreachable_database(self):
        r = Env.run(_Bare(self), "init", "--store", "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2",
                    check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot connect to 127.0.0.1:1", r.stderr)


class _Bare:
    """Just enough of an Env for Env.run: a state dir and the test case."""

    def __init__(self, tc):
        import tempfile, shutil
        self.tc = tc
        self.dir = tempfile.mkdtemp(prefix="mivault-it.")
        tc.addCleanup(shutil.rmtree, self.dir, True)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(PG_URL, "MIVAULT_TEST_PG_URL is not set")
class SharedSigningKeysTest(unittest.TestCase):
    def kids(self, e):
        r = e.https("GET", "/%s/discovery/v2.0/keys" % e.tenant)
        self.assertEqual(r.status, 200, r.body)
        return {k["kid"] for k in r.json()["keys"]}

    def test_jwks_lists_a_key_another_server_added(self):
        """Server 1 publishes a signing key that server 2 created in the shared store after
        server 1 started (regression: the JWKS was built once at start-up)."""
        e1 = Env(self, pg=True)
        self.addCleanup(e1.close)
        e1.start_server()
        self.assertEqual(len(self.kids(e1)), 1)
        # the key server 1 signs with is retired (as a rotation would); a server that starts
        # now finds no current key and creates one
        pg_sql(e1.store_url, "UPDATE signing_keys SET retired = extract(epoch FROM now())::bigint")
        d2 = e1.dir + "-2"
        self.addCleanup(shutil.rmtree, d2, True)
        r = subprocess.run([BIN, "init", "--state", d2, "--store", e1.store_url, "--master-key",
                            os.path.join(e1.dir, "master.key")], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        port = free_port()
        p = subprocess.Popen([BIN, "server", "--state", d2, "--listen", "127.0.0.1:%d" % port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(p.wait)
        self.addCleanup(p.terminate)
        wait_port(port, p)
        both = set(pg_sql(e1.store_url, "SELECT kid FROM signing_keys").split())
        self.assertEqual(len(both), 2)
        deadline = time.time() + 5
        while self.kids(e1) != both:
            self.assertLess(time.time(), deadline, "server 1 never published the new key")
            time.sleep(0.2)


@unittest.skipUnless(PG_URL, "MIVAULT_TEST_PG_URL is not set")
class SharedSecretCacheTest(unittest.TestCase):
    """Each server caches the secrets it read (a GET costs no query); a write through another
    server must still be served at once, within the change feed's delay."""

    def test_a_new_version_written_through_another_server_is_served_by_this_one(self):
        e1 = Env(self, pg=True)
        self.addCleanup(e1.close)
        e1.start_server()
        e1.vault("dev")
        v = e1.vm("vm1")
        e1.grant(v["identity"]["principalId"], "Key Vault Secrets Officer", e1.vault_scope("dev"))
        _, aport = e1.start_agent("vm1", join=v["joinToken"])
        tok = e1.token(aport, "https://vault.azure.net")  # an audience every server accepts
        d2 = e1.dir + "-2"
        self.addCleanup(shutil.rmtree, d2, True)
        # one installation, one public URL (the balancer's in a real deployment)
        r = subprocess.run([BIN, "init", "--state", d2, "--store", e1.store_url, "--master-key",
                            os.path.join(e1.dir, "master.key"), "--public-url",
                            "https://127.0.0.1:%d" % e1.server_port], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        port2 = free_port()
        p = subprocess.Popen([BIN, "server", "--state", d2, "--listen", "127.0.0.1:%d" % port2],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(p.wait)
        self.addCleanup(p.terminate)
        wait_port(port2, p)

        def get(port):
            r = e1.https("GET", "/secrets/shared/?api-version=7.5", host=e1.vault_host("dev"), token=tok, port=port)
            self.assertEqual(r.status, 200, r.body)
            return r.json()["value"]

        def put(port, value):
            r = e1.https("PUT", "/secrets/shared?api-version=7.5", host=e1.vault_host("dev"), token=tok,
                         body={"value": value}, port=port)
            self.assertEqual(r.status, 200, r.body)

        put(e1.server_port, "one")
        for _ in range(5):  # both servers now hold it in their caches
            self.assertEqual(get(e1.server_port), "one")
            self.assertEqual(get(port2), "one")
        for i, (w, rd) in enumerate([(port2, e1.server_port), (e1.server_port, port2)] * 3):
            value = "v%d" % i
            put(w, value)
            t0 = time.time()
            while get(rd) != value:
                self.assertLess(time.time() - t0, 1.0, "a cached old version served 1 s after the write")
                time.sleep(0.01)
