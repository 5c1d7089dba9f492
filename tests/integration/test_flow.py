"""The six steps end to end, and the refusals at each step (issue 2 §8)."""
import json
import os
import subprocess
import time

from harness import MivaultTest, BIN, jwt_parts, pg_sql

SECRETS_OFFICER = "Key Vault Secrets Officer"


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


class FlowTest(MivaultTest):
    def setup_vm(self, name="vm1", role=SECRETS_OFFICER, vault="dev"):
        e = self.env
        e.vault(vault)
        vm = e.vm(name)
        principal = vm["identity"]["principalId"]
        if role:
            e.grant(principal, role, e.vault_scope(vault))
        _, port = e.start_agent(name, join=vm["joinToken"])
        return vm, principal, port

    def test_happy_path_token_then_secret(self):
        e = self.env
        vm, principal, port = self.setup_vm()
        r = e.imds(port, e.vault_resource())
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        for k in ("access_token", "expires_in", "expires_on", "resource", "token_type", "client_id", "not_before"):
            self.assertIsInstance(body[k], str, k)
        self.assertEqual(body["resource"], e.vault_resource())
        hdr, claims, _ = jwt_parts(body["access_token"])
        self.assertEqual(hdr["alg"], "RS256")
        self.assertEqual(claims["oid"], principal)
        self.assertEqual(claims["sub"], principal)
        self.assertEqual(claims["tid"], e.tenant)
        self.assertEqual(claims["aud"], e.vault_resource())
        self.assertEqual(claims["iss"], "https://127.0.0.1:%d/%s/" % (e.server_port, e.tenant))
        self.assertEqual(claims["idtyp"], "app")
        self.assertEqual(claims["ver"], "1.0")
        self.assertTrue(claims["xms_mirid"].endswith("/providers/Microsoft.Compute/virtualMachines/vm1"))
        self.assertEqual(int(body["expires_on"]), claims["exp"])
        tok = body["access_token"]
        # first request is body-less and unauthenticated: 401 challenge (reference §4.4)
        r = e.kv("PUT", "dev", "/secrets/db-password", body=b"")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"),
                         'Bearer authorization="https://127.0.0.1:%d/%s", resource="%s"'
                         % (e.server_port, e.tenant, e.vault_resource()))
        r = e.kv("PUT", "dev", "/secrets/db-password", token=tok, body={"value": "s3cret"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"], "s3cret")
        for path in ("/secrets/db-password/", "/secrets/db-password", "/secrets/DB-PASSWORD/"):
            r = e.kv("GET", "dev", path, token=tok)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["value"], "s3cret")
        # the value is encrypted at rest: not in the database file (or PostgreSQL's rows)
        if e.store_url:
            dump = pg_sql(e.store_url, "SELECT encode(sealed, 'escape') FROM secrets")
            self.assertTrue(dump)
            self.assertNotIn("s3cret", dump)
            return
        raw = read(os.path.join(e.dir, "mivault.db"), "rb")
        if os.path.exists(os.path.join(e.dir, "mivault.db-wal")):
            raw += read(os.path.join(e.dir, "mivault.db-wal"), "rb")
        self.assertNotIn(b"s3cret", raw)

    def test_identity_not_enabled_is_400_at_the_agent(self):
        e = self.env
        vm = e.vm("noid", system=False)
        _, port = e.start_agent("noid", join=vm["joinToken"])
        r = e.imds(port, "https://vault.azure.net")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.reason, "Bad Request")
        self.assertEqual(r.json(), {"error": "invalid_request", "error_description": "Identity not found"})

    def test_identity_without_role_is_403_at_the_vault(self):
        e = self.env
        _, principal, port = self.setup_vm(role=None)
        tok = e.token(port, e.vault_resource())
        r = e.kv("GET", "dev", "/secrets/x/", token=tok)
        err = self.assertAzureError(r, 403, "Forbidden")
        self.assertEqual(err["innererror"]["code"], "ForbiddenByRbac")
        self.assertIn(principal, err["message"])

    def test_secrets_user_cannot_set(self):
        e = self.env
        _, _, port = self.setup_vm(role="Key Vault Secrets User")
        tok = e.token(port, "https://vault.azure.net")
        r = e.kv("PUT", "dev", "/secrets/a", token=tok, body={"value": "v"})
        self.assertAzureError(r, 403, "Forbidden")
        r = e.kv("GET", "dev", "/secrets/a/", token=tok)
        self.assertAzureError(r, 404, "SecretNotFound")

    def test_token_for_another_audience_is_401(self):
        e = self.env
        _, _, port = self.setup_vm()
        tok = e.token(port, "https://management.azure.com/")
        r = e.kv("GET", "dev", "/secrets/x/", token=tok)
        err = self.assertAzureError(r, 401, "Unauthorized")
        self.assertIn("AKV10022", err["message"])
        self.assertIsNotNone(r.header("WWW-Authenticate"))

    def test_vm_delete_stops_tokens(self):
        e = self.env
        _, _, port = self.setup_vm()
        e.token(port, "https://vault.azure.net/other")
        e.cli("vm", "delete", "--name", "vm1")
        # a resource not yet cached: the authority must refuse
        r = e.imds(port, "https://vault.azure.net/new")
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json()["error_description"], "Identity not found")

    def test_join_token_is_one_time(self):
        e = self.env
        vm = e.vm("vm2")
        e.start_agent("vm2", join=vm["joinToken"])
        # a second agent (another state dir for its node key) with the same token
        other = os.path.join(e.dir, "other")
        os.makedirs(other)
        for f in ("config.json", "ca.pem", "ca-bundle.pem"):
            with open(os.path.join(e.dir, f), "rb") as src, open(os.path.join(other, f), "wb") as dst:
                dst.write(src.read())
        r = subprocess.run([BIN, "agent", "--vm", "vm2", "--join", vm["joinToken"], "--listen", "127.0.0.1:0",
                            "--state", other], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("join token", r.stderr.lower())

    def test_secret_survives_server_restart(self):
        e = self.env
        _, _, port = self.setup_vm()
        tok = e.token(port, e.vault_resource())
        r = e.kv("PUT", "dev", "/secrets/persist", token=tok, body={"value": "kept"})
        self.assertEqual(r.status, 200, r.body)
        e.stop(e.server)
        e.start_server()
        r = e.kv("GET", "dev", "/secrets/persist/", token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"], "kept")

    def test_secret_survives_kill_9(self):
        e = self.env
        _, _, port = self.setup_vm()
        tok = e.token(port, e.vault_resource())
        r = e.kv("PUT", "dev", "/secrets/durable", token=tok, body={"value": "on-disk"})
        self.assertEqual(r.status, 200, r.body)
        e.server.kill()
        e.server.wait()
        e.start_server()
        r = e.kv("GET", "dev", "/secrets/durable/", token=tok)
        self.assertEqual(r.json()["value"], "on-disk")

    def test_audit_log_records_decisions_and_chain_verifies(self):
        e = self.env
        _, _, port = self.setup_vm(role=None)
        tok = e.token(port, e.vault_resource())
        e.kv("GET", "dev", "/secrets/x/", token=tok)
        lines = [json.loads(l) for l in read(os.path.join(e.dir, "audit.log")).splitlines()]
        self.assertTrue(any(l["plane"] == "vault" and l["status"] == 403 for l in lines), lines[-3:])
        self.assertNotIn(tok, read(os.path.join(e.dir, "audit.log")))
        v = e.cli("audit", "verify")
        self.assertTrue(v["intact"])
        # tampering with a line breaks the chain
        p = os.path.join(e.dir, "audit.log")
        text = read(p).replace('"status":403', '"status":200', 1)
        with open(p, "w") as f:
            f.write(text)
        r = e.run("audit", "verify", check=False)
        self.assertNotEqual(r.returncode, 0)
