"""Control plane and CLI: ARM shapes, RBAC on writes, errors and exit codes."""
import json
import subprocess

from harness import MivaultTest, BIN

ROLE_GUIDS = {
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Reader": "21090545-7ca7-4776-b22c-e363652d74d2",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Crypto Officer": "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
}


class ControlTest(MivaultTest):
    def test_role_definitions_have_real_guids(self):
        defs = self.env.cli("role", "definition", "list")
        by_name = {d["properties"]["roleName"]: d for d in defs}
        for name, guid in ROLE_GUIDS.items():
            self.assertEqual(by_name[name]["name"], guid)
        officer = by_name["Key Vault Secrets Officer"]["properties"]["permissions"][0]
        self.assertEqual(officer["dataActions"], ["Microsoft.KeyVault/vaults/secrets/*"])

    def test_vm_identity_types(self):
        e = self.env
        e.cli("identity", "create", "--name", "u1")
        vm = e.vm("both", uai=["u1"])
        self.assertEqual(vm["identity"]["type"], "SystemAssigned, UserAssigned")
        self.assertEqual(len(vm["identity"]["userAssignedIdentities"]), 1)
        # mvj1.<secret>.sha256:<pin of the CA's public key> (docs/internal-protocol.md)
        self.assertRegex(vm["joinToken"], r"^mvj1\.[A-Za-z0-9_-]{43}\.sha256:[A-Za-z0-9_-]{43}$")
        vm = e.vm("none", system=False)
        self.assertEqual(vm["identity"]["type"], "None")
        self.assertNotIn("principalId", vm["identity"])
        vm = e.cli("vm", "identity", "assign", "--name", "none", "--system")
        self.assertEqual(vm["identity"]["type"], "SystemAssigned")
        self.assertIn("principalId", vm["identity"])
        vm = e.cli("vm", "identity", "remove", "--name", "none", "--system")
        self.assertEqual(vm["identity"]["type"], "None")
        names = [v["name"] for v in e.cli("vm", "list")]
        self.assertEqual(sorted(names), ["both", "none"])

    def test_role_assignment_lifecycle(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        p = vm["identity"]["principalId"]
        ra = e.grant(p, "Key Vault Secrets User", e.vault_scope("dev"))
        self.assertTrue(ra["properties"]["roleDefinitionId"].endswith(ROLE_GUIDS["Key Vault Secrets User"]))
        listed = e.cli("role", "assignment", "list", "--assignee", p)
        self.assertEqual([x["name"] for x in listed], [ra["name"]])
        r = e.run("role", "assignment", "create", "--assignee", p, "--role", "Key Vault Secrets User",
                  "--scope", e.vault_scope("dev"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("RoleAssignmentExists", r.stderr)
        e.cli("role", "assignment", "delete", "--ids", ra["id"])
        self.assertEqual(e.cli("role", "assignment", "list", "--assignee", p), [])

    def test_only_owner_may_change_the_control_plane(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        p = vm["identity"]["principalId"]
        e.grant(p, "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        tok = e.token(port, "https://management.core.windows.net/")
        path = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/evil?api-version=2022-07-01" % (e.sub, e.rg)
        r = e.https("PUT", path, token=tok, body={"location": "local", "properties": {}})
        self.assertAzureError(r, 403, "AuthorizationFailed")
        r = e.https("PUT", path, body={"location": "local", "properties": {}})
        self.assertEqual(r.status, 401)
        # a VM identity still sees its subscription (az login --identity needs it)
        r = e.https("GET", "/subscriptions?api-version=2019-11-01", token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"][0]["subscriptionId"], e.sub)

    def test_cli_errors_are_clear_and_nonzero(self):
        e = self.env
        r = e.run("vm", "show", "--name", "nope", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ResourceNotFound", r.stderr)
        self.assertEqual(r.stdout, "")
        r = e.run("vm", "create", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--name", r.stderr)
        r = subprocess.run([BIN, "nosuchverb"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = e.run("keyvault", "create", "--name", "a_b", check=False)
        self.assertNotEqual(r.returncode, 0)
        for verb in (["vm", "create"], ["keyvault", "secret", "set"], ["role", "assignment", "create"], ["up"], ["demo"]):
            r = subprocess.run([BIN] + verb + ["--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, verb)
            self.assertIn("usage: mivault " + " ".join(verb), r.stdout)

    def test_table_output(self):
        e = self.env
        e.vault("dev")
        r = e.run("keyvault", "list", "-o", "table")
        self.assertIn("vaultUri", r.stdout)
        self.assertIn("https://dev.vault.localhost:%d/" % e.server_port, r.stdout)

    def test_discovery_and_jwks(self):
        e = self.env
        d = e.https("GET", "/%s/.well-known/openid-configuration" % e.tenant).json()
        self.assertEqual(d["issuer"], "https://127.0.0.1:%d/%s/" % (e.server_port, e.tenant))
        keys = e.https("GET", "/%s/discovery/v2.0/keys" % e.tenant).json()["keys"]
        self.assertEqual(keys[0]["kty"], "RSA")
        self.assertEqual(keys[0]["e"], "AQAB")
        self.assertNotIn("=", keys[0]["n"])
        self.assertNotIn("d", keys[0])

    def test_workload_cli_verbs(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        import os
        env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % port)
        def run(*a):
            r = subprocess.run([BIN] + list(a) + ["--state", e.dir], capture_output=True, text=True, env=env, timeout=60)
            return r
        r = run("token", "get", "--resource", "https://vault.azure.net")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("accessToken", json.loads(r.stdout))
        r = run("keyvault", "secret", "set", "--vault-name", "dev", "--name", "c1", "--value", "cv")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "c1")
        self.assertEqual(json.loads(r.stdout)["value"], "cv")
        r = run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("SecretNotFound", r.stderr)
