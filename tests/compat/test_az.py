"""Debian's azure-cli 2.45 (`/usr/bin/az`), unchanged, against `mivault up`.

What az does (reference §7): `az cloud register` reads mivault's `/metadata/endpoints` (ARM's
cloud metadata document), `az login --identity` gets a token for the cloud's
active_directory_resource_id from the managed-identity endpoint, decodes its `tid`, and lists
subscriptions with `GET {arm}/subscriptions?api-version=2019-11-01` over HTTPS (trusting the local
CA through env.sh's REQUESTS_CA_BUNDLE); `az account get-access-token` gets a token for another
resource the same way.

az 2.45 reaches managed identity only at http://169.254.169.254:80 or, when MSI_ENDPOINT is set,
by the Cloud-Shell style `POST $MSI_ENDPOINT` (form body `resource=…[&client_id|object_id|
msi_res_id=…]`, header `Metadata: true`). This file covers the MSI_ENDPOINT path, with the agent's
own token URL as MSI_ENDPOINT; test_netns.py covers 169.254.169.254 inside a network namespace.

az is slow to start and prints warnings on stderr, so every test runs few commands, and all of
them share one config dir (AZURE_CONFIG_DIR, so the machine's ~/.azure is never touched) in which
the cloud is registered once.
"""
import base64
import configparser
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from compat import CompatTest

AZ = "/usr/bin/az"
VAULT_RESOURCE = "https://vault.azure.net"
# az's default login resource; mivault's /metadata/endpoints gives it as audiences[0].
ARM_RESOURCE = "https://management.core.windows.net/"


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Az:
    """Runs /usr/bin/az with its own config dir and the given environment (plus `extra`)."""

    def __init__(self, env, prefix=()):
        self.dir = tempfile.mkdtemp(prefix="mivault-az.")
        self.prefix = list(prefix)
        self.env = dict(env)
        self.env.update({
            "AZURE_CONFIG_DIR": self.dir,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
        })
        # a proxy of the machine must not see loopback or link-local traffic
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            self.env.pop(k, None)

    def run(self, *args, extra=None, timeout=180):
        env = dict(self.env)
        env.update(extra or {})
        return subprocess.run(self.prefix + [AZ] + list(args) + ["--only-show-errors"], capture_output=True,
                              text=True, env=env, timeout=timeout)

    def ok(self, tc, *args, extra=None):
        r = self.run(*args, extra=extra)
        tc.assertEqual(r.returncode, 0, "az %s failed:\n%s" % (" ".join(args), r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def register_cloud(self, server_url, vault_suffix):
        """`az cloud register` with only the ARM endpoint and the Key Vault suffix: az reads the rest
        from {arm}/metadata/endpoints. The ARM URL ends in '/' as az's own clouds spell it, so
        msrestazure asks for `//metadata/endpoints`."""
        r = self.run("cloud", "register", "--name", "mivault", "--endpoint-resource-manager", server_url + "/",
                     "--suffix-keyvault-dns", vault_suffix)
        if r.returncode == 0:
            r = self.run("cloud", "set", "--name", "mivault")
        if r.returncode != 0:
            raise RuntimeError("az cloud register/set failed:\n" + r.stderr)

    def clouds_config(self):
        c = configparser.ConfigParser()
        c.read(os.path.join(self.dir, "clouds.config"))
        return c

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def facts(cli, vm="localvm"):
    """Tenant, subscription and the VM's system-assigned principal, from the control plane."""
    v = cli("vm", "show", "--name", vm)
    sub = v["id"].split("/")[2]
    return {"tenant": v["identity"]["tenantId"], "sub": sub, "principal": v["identity"]["principalId"],
            "vm_id": v["id"]}


def create_uai(cli, name):
    u = cli("identity", "create", "--name", name)
    return {"id": u["id"], "client": u["properties"]["clientId"], "principal": u["properties"]["principalId"]}


class AzChecks:
    """Assertions on az's output shared with test_netns.py."""

    def check_login(self, out, f, user_name, info):
        self.assertIsInstance(out, list)
        self.assertEqual(len(out), 1, out)
        a = out[0]
        self.assertEqual(a["environmentName"], "mivault")
        self.assertEqual(a["id"], f["sub"])
        self.assertEqual(a["name"], "mivault")  # displayName from GET /subscriptions
        self.assertEqual(a["state"], "Enabled")
        self.assertEqual(a["tenantId"], f["tenant"])  # the token's tid (az decodes it)
        self.assertEqual(a["homeTenantId"], f["tenant"])
        self.assertTrue(a["isDefault"])
        self.assertEqual(a["user"], {"assignedIdentityInfo": info, "name": user_name, "type": "servicePrincipal"})

    def check_access_token(self, out, f, oid, appid=None, mirid=None):
        """`az account get-access-token --resource https://vault.azure.net` (2.45's fields)."""
        self.assertEqual(set(out), {"accessToken", "expiresOn", "subscription", "tenant", "tokenType"})
        self.assertEqual(out["tokenType"], "Bearer")
        self.assertEqual(out["subscription"], f["sub"])
        self.assertEqual(out["tenant"], f["tenant"])
        c = jwt_claims(out["accessToken"])
        self.assertEqual(c["aud"], VAULT_RESOURCE)
        self.assertEqual(c["oid"], oid)
        self.assertEqual(c["sub"], oid)
        self.assertEqual(c["tid"], f["tenant"])
        self.assertEqual(c["idtyp"], "app")
        if appid:
            self.assertEqual(c["appid"], appid)
        if mirid:
            self.assertEqual(c["xms_mirid"], mirid)
        # az prints exp as a local time without zone
        self.assertEqual(out["expiresOn"],
                         datetime.datetime.fromtimestamp(c["exp"]).strftime("%Y-%m-%d %H:%M:%S.%f"))
        self.assertGreater(c["exp"] - c["iat"], 3600)


class AzCliTest(CompatTest, AzChecks):
    """az over the Cloud-Shell MSI_ENDPOINT POST to the agent."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        up = cls.up
        cls.az = None
        try:
            cls.f = facts(up.cli)
            cls.uai = create_uai(up.cli, "azuai")
            cls.bare = create_uai(up.cli, "aznorole")
            up.cli("vm", "identity", "assign", "--name", "localvm", "--user-assigned", cls.uai["id"],
                   "--user-assigned", cls.bare["id"])
            # a role inside the subscription makes it visible to the identity (GET /subscriptions)
            up.cli("role", "assignment", "create", "--assignee", cls.uai["principal"], "--role",
                   "Key Vault Secrets User", "--scope", "vault:dev")
            agent = up.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
            cls.msi = {"MSI_ENDPOINT": agent + "/metadata/identity/oauth2/token"}
            cls.az = Az(up.env)
            cls.az.register_cloud("https://127.0.0.1:%d" % up.server_port, ".vault.localhost:%d" % up.server_port)
        except BaseException:
            if cls.az:
                cls.az.close()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.az.close()
        super().tearDownClass()

    def login(self, *args):
        return self.az.ok(self, "login", "--identity", *args, extra=self.msi)

    def vault_token(self):
        return self.az.ok(self, "account", "get-access-token", "--resource", VAULT_RESOURCE, extra=self.msi)

    def test_cloud_register_reads_metadata_endpoints(self):
        c = self.az.clouds_config()["mivault"]
        server = "https://127.0.0.1:%d" % self.up.server_port
        self.assertEqual(c["endpoint_resource_manager"], server + "/")
        self.assertEqual(c["endpoint_active_directory"], server)  # authentication.loginEndpoint
        self.assertEqual(c["endpoint_active_directory_resource_id"], ARM_RESOURCE)  # audiences[0]
        self.assertTrue(c["endpoint_active_directory_graph_resource_id"])  # graphEndpoint
        self.assertEqual(c["suffix_keyvault_dns"], ".vault.localhost:%d" % self.up.server_port)

    def test_login_system_assigned_and_vault_token(self):
        self.check_login(self.login(), self.f, "systemAssignedIdentity", "MSI")
        self.check_access_token(self.vault_token(), self.f, self.f["principal"], mirid=self.f["vm_id"])

    def test_login_user_assigned_by_client_id_and_vault_token(self):
        u = self.uai
        self.check_login(self.login("--username", u["client"]), self.f, "userAssignedIdentity",
                         "MSIClient-" + u["client"])
        self.check_access_token(self.vault_token(), self.f, u["principal"], appid=u["client"], mirid=u["id"])

    def test_login_user_assigned_by_resource_id_and_vault_token(self):
        u = self.uai
        self.check_login(self.login("--username", u["id"]), self.f, "userAssignedIdentity", "MSIResource-" + u["id"])
        self.check_access_token(self.vault_token(), self.f, u["principal"], appid=u["client"], mirid=u["id"])

    def test_login_by_object_id_is_not_possible_over_msi_endpoint(self):
        """az 2.45 limitation, not mivault's: --username tries client_id first and moves on to
        object_id only on an error that reads 'http error: 400, reason: Bad Request'; on the
        MSI_ENDPOINT path its error handler reads the wrong attribute of the requests response
        and reports '<Response [400]>' instead, so an object id never gets its second try.
        (The same object id works at 169.254.169.254: test_netns.py.)"""
        r = self.az.run("login", "--identity", "--username", self.uai["principal"], extra=self.msi)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("<Response [400]>", r.stderr)

    def test_login_identity_without_roles_needs_allow_no_subscriptions(self):
        """GET /subscriptions answers an identity with no role inside the subscription with an
        empty list; az then stores a tenant-level account."""
        out = self.login("--username", self.bare["client"], "--allow-no-subscriptions")
        self.assertEqual(len(out), 1, out)
        self.assertEqual(out[0]["id"], self.f["tenant"])
        self.assertEqual(out[0]["name"], "N/A(tenant level account)")
        self.assertEqual(out[0]["user"]["assignedIdentityInfo"], "MSIClient-" + self.bare["client"])


if __name__ == "__main__":
    unittest.main()
