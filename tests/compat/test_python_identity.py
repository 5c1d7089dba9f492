"""Debian's python3-azure (azure-identity 1.13), unchanged: every way it finds a managed identity on
`mivault up`: IMDS with the system-assigned identity and with a user-assigned one chosen by client
id, object id and resource id; DefaultAzureCredential with nothing but env.sh (and its IMDS probe);
the App Service protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER). Tokens are checked by what they
say (oid/appid) and by what the vault lets them do.

azure-identity 1.13 sends `identity_config` verbatim as query parameters (imds.py, app_service.py),
so the IMDS spellings are object_id and msi_res_id (mi_res_id is App Service's; the agent takes
both), and App Service's are client_id, object_id/principal_id and mi_res_id.
"""
import os

from compat import CompatTest


class PythonIdentityTest(CompatTest):
    @classmethod
    def prepare(cls):
        up = cls.up
        # pyuser: Key Vault Secrets User on dev (may read, may not write); pynone: no role at all.
        cls.user = up.cli("identity", "create", "--name", "pyuser")
        cls.none = up.cli("identity", "create", "--name", "pynone")
        vm = up.cli("vm", "identity", "assign", "--name", "localvm", "--user-assigned", "pyuser",
                    "--user-assigned", "pynone")
        cls.vm_principal = vm["identity"]["principalId"]
        up.cli("role", "assignment", "create", "--assignee", cls.user["properties"]["principalId"],
               "--role", "Key Vault Secrets User", "--scope", "vault:dev")
        cls.vault_resource = "https://vault.localhost:%d" % up.server_port
        cls.scope = cls.vault_resource + "/.default"
        with open(os.path.join(up.dir, "agents", "localvm", "identity_header")) as f:
            cls.identity_header = f.read().strip()
        cls.agent = up.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
        up.cli("keyvault", "secret", "set", "--vault-name", "dev", "--name", "shared", "--value", "seeded",
               env=up.env)

    def app_service_env(self, header=None):
        """The environment of an App Service workload: the two variables, and no IMDS override."""
        env = dict(self.up.env)
        for k in ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSAL_MANAGED_IDENTITY_ENDPOINT"):
            env.pop(k, None)
        env["IDENTITY_ENDPOINT"] = self.agent + "/msi/token"
        env["IDENTITY_HEADER"] = header if header is not None else self.identity_header
        return env

    def assert_user_identity(self, res, label):
        """res: the report of SELECTOR_PROGRAM for one selector."""
        with self.subTest(label):
            self.assertNotIn("error", res, res)
            self.assertEqual(res["oid"], self.user["properties"]["principalId"])
            self.assertEqual(res["appid"], self.user["properties"]["clientId"])
            self.assertEqual(res["mirid"].lower(), self.user["id"].lower())
            self.assertEqual(res["get"], {"ok": "seeded"})
            # Secrets User: the vault refuses the write, which proves which identity signed in
            self.assertEqual(res["set"]["error"]["status"], 403, res)
            self.assertEqual(res["set"]["error"]["inner"], "ForbiddenByRbac")

    # ---- IMDS ----

    def test_system_assigned_identity(self):
        out = self.py_json('''
cred = ManagedIdentityCredential(raw_response_hook=hook)
t = cred.get_token(os.environ["SCOPE"])
c = claims(t.token)
out["claims"] = {k: c.get(k) for k in ("oid", "sub", "aud", "xms_mirid", "tid", "idtyp", "ver")}
out["expires_in"] = t.expires_on - time.time()
s = SecretClient(VAULT, cred)
s.set_secret("by-system", "sys")
out["value"] = s.get_secret("by-system").value
out["wire"] = wire
''', env=dict(self.up.env, SCOPE=self.scope))
        c = out["claims"]
        self.assertEqual(c["oid"], self.vm_principal)
        self.assertEqual(c["sub"], self.vm_principal)
        self.assertEqual(c["aud"], self.vault_resource)
        self.assertTrue(c["xms_mirid"].endswith("/providers/Microsoft.Compute/virtualMachines/localvm"), c)
        self.assertEqual((c["idtyp"], c["ver"]), ("app", "1.0"))
        self.assertGreater(out["expires_in"], 3600)
        self.assertEqual(out["value"], "sys")
        # one token request, with Metadata, to the agent's IMDS path, api-version 2018-02-01;
        # later get_token calls are served from the credential's cache
        imds = [w for w in out["wire"] if "/metadata/identity/oauth2/token" in w["url"]]
        self.assertEqual(len(imds), 1, out["wire"])
        self.assertEqual(imds[0]["status"], 200)
        self.assertEqual(imds[0]["metadata"], "true")
        self.assertIn("api-version=2018-02-01", imds[0]["url"])
        self.assertTrue(imds[0]["url"].startswith(self.agent + "/metadata/identity/oauth2/token?"))

    SELECTOR_PROGRAM = '''
sels = json.loads(os.environ["SELECTORS"])
for label, kwargs in sels.items():
    res = out[label] = {}
    try:
        cred = ManagedIdentityCredential(raw_response_hook=hook, **kwargs)
        c = claims(cred.get_token(os.environ["SCOPE"]).token)
        res.update(oid=c["oid"], appid=c["appid"], mirid=c["xms_mirid"])
        s = SecretClient(VAULT, cred)
        res["get"] = capture(lambda: s.get_secret("shared").value)
        res["set"] = capture(lambda: s.set_secret("by-" + label.replace("_", "-"), "x").name)
    except Exception as e:
        res["error"] = err(e)
    res["query"] = [w["url"].split("?", 1)[1] for w in wire if "/token" in w["url"]][-1:]
    wire.clear()
'''

    def test_user_assigned_identity_by_client_object_and_resource_id(self):
        u = self.user
        sels = {
            "client_id": {"client_id": u["properties"]["clientId"]},
            "object_id": {"identity_config": {"object_id": u["properties"]["principalId"]}},
            "msi_res_id": {"identity_config": {"msi_res_id": u["id"]}},
            "mi_res_id": {"identity_config": {"mi_res_id": u["id"]}},
            # ARM ids are case-insensitive
            "msi_res_id_lower": {"identity_config": {"msi_res_id": u["id"].lower()}},
        }
        import json
        out = self.py_json(self.SELECTOR_PROGRAM, env=dict(self.up.env, SCOPE=self.scope, SELECTORS=json.dumps(sels)))
        for label in sels:
            self.assert_user_identity(out[label], label)
        # what went on the wire: the selector as azure-identity 1.13 spells it
        self.assertIn("client_id=" + u["properties"]["clientId"], out["client_id"]["query"][0])
        self.assertIn("object_id=" + u["properties"]["principalId"], out["object_id"]["query"][0])
        self.assertIn("&msi_res_id=" + u["id"], out["msi_res_id"]["query"][0])
        self.assertIn("&mi_res_id=" + u["id"], out["mi_res_id"]["query"][0])

    def test_identity_without_role_is_refused_by_the_vault(self):
        out = self.py_json('''
cred = ManagedIdentityCredential(client_id=os.environ["CLIENT_ID"])
out["oid"] = claims(cred.get_token(os.environ["SCOPE"]).token)["oid"]
s = SecretClient(VAULT, cred)
out["get"] = capture(lambda: s.get_secret("shared").value)
out["list"] = capture(lambda: [p.name for p in s.list_properties_of_secrets()])
''', env=dict(self.up.env, SCOPE=self.scope, CLIENT_ID=self.none["properties"]["clientId"]))
        self.assertEqual(out["oid"], self.none["properties"]["principalId"])
        for op, action in (("get", "getSecret/action"), ("list", "readMetadata/action")):
            e = out[op]["error"]
            self.assertEqual((e["type"], e["status"], e["code"], e["inner"]),
                             ("HttpResponseError", 403, "Forbidden", "ForbiddenByRbac"), e)
            self.assertIn("Microsoft.KeyVault/vaults/secrets/" + action, e["message"])
            self.assertIn("oid=" + self.none["properties"]["principalId"], e["message"])

    def test_identity_not_on_the_vm_is_unavailable_at_once(self):
        # 400 "Identity not found" (never 404, which the SDK would retry for a minute)
        out = self.py_json('''
t0 = time.time()
cred = ManagedIdentityCredential(client_id="00000000-0000-4000-8000-000000000000", raw_response_hook=hook)
out["r"] = capture(lambda: cred.get_token(os.environ["SCOPE"]).token)
out["elapsed"] = time.time() - t0
out["statuses"] = [w["status"] for w in wire]
''', env=dict(self.up.env, SCOPE=self.scope))
        self.assertEqual(out["r"]["error"]["type"], "CredentialUnavailableError", out)
        self.assertIn("requested identity has not been assigned", out["r"]["error"]["message"])
        self.assertEqual(out["statuses"], [400])
        self.assertLess(out["elapsed"], 3)

    def test_default_azure_credential_with_env_sh_only(self):
        # DefaultAzureCredential() with no arguments: EnvironmentCredential is unavailable, then
        # ManagedIdentityCredential goes to the agent named by AZURE_POD_IDENTITY_AUTHORITY_HOST.
        out = self.py_json('''
t0 = time.time()
cred = DefaultAzureCredential()
s = SecretClient(VAULT, cred)
out["value"] = s.get_secret("shared").value
out["elapsed"] = time.time() - t0
out["oid"] = claims(cred.get_token(os.environ["SCOPE"]).token)["oid"]
''', env=dict(self.up.env, SCOPE=self.scope))
        self.assertEqual(out["value"], "seeded")
        self.assertEqual(out["oid"], self.vm_principal)
        self.assertLess(out["elapsed"], 3)

    def test_default_azure_credential_takes_azure_client_id(self):
        # DefaultAzureCredential passes AZURE_CLIENT_ID to ManagedIdentityCredential as client_id
        out = self.py_json('''
out["oid"] = claims(DefaultAzureCredential().get_token(os.environ["SCOPE"]).token)["oid"]
''', env=dict(self.up.env, SCOPE=self.scope, AZURE_CLIENT_ID=self.user["properties"]["clientId"]))
        self.assertEqual(out["oid"], self.user["properties"]["principalId"])

    def test_imds_probe_gets_a_fast_answer(self):
        # Without AZURE_POD_IDENTITY_AUTHORITY_HOST at construction, azure-identity 1.13 first
        # probes IMDS: the same token request without the Metadata header, 0.3 s connect timeout,
        # no retry; any HTTP answer counts as "IMDS is there". The host is read again per request,
        # so setting the variable after construction sends this unchanged probe to the agent (on a
        # VM it goes to 169.254.169.254).
        out = self.py_json('''
agent = os.environ.pop("AZURE_POD_IDENTITY_AUTHORITY_HOST")
starts = []
cred = ManagedIdentityCredential(raw_request_hook=lambda r: starts.append(time.time()), raw_response_hook=hook)
os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = agent
t0 = time.time()
out["token"] = bool(cred.get_token(os.environ["SCOPE"]).token)
out["elapsed"] = time.time() - t0
out["wire"] = [dict(w, latency=w["t"] - s) for w, s in zip(wire, starts)]
''', env=dict(self.up.env, SCOPE=self.scope))
        self.assertTrue(out["token"])
        probe, real = out["wire"]
        self.assertIsNone(probe["metadata"])
        self.assertEqual(probe["status"], 400)
        self.assertLess(probe["latency"], 0.3)
        self.assertEqual((real["metadata"], real["status"]), ("true", 200))
        self.assertLess(out["elapsed"], 2)

    # ---- App Service (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01) ----

    def test_app_service_protocol(self):
        u = self.user
        import json
        out = self.py_json('''
import logging
chosen = []
class Catch(logging.Handler):
    def emit(self, record):
        chosen.append(record.getMessage())
logging.getLogger("azure.identity._credentials.managed_identity").addHandler(Catch())
logging.getLogger("azure.identity._credentials.managed_identity").setLevel(logging.INFO)
cred = ManagedIdentityCredential(raw_response_hook=hook)
out["chosen"] = chosen
c = claims(cred.get_token(os.environ["SCOPE"]).token)
out["oid"] = c["oid"]
s = SecretClient(VAULT, cred)
s.set_secret("by-appservice", "app")
out["value"] = s.get_secret("by-appservice").value
out["wire"] = wire[:1]
wire.clear()
sels = json.loads(os.environ["SELECTORS"])
out["sel"] = {}
for label, kwargs in sels.items():
    try:
        c = claims(ManagedIdentityCredential(raw_response_hook=hook, **kwargs).get_token(os.environ["SCOPE"]).token)
        out["sel"][label] = {"oid": c["oid"], "query": wire[-1]["url"].split("?", 1)[1]}
    except Exception as e:
        out["sel"][label] = {"error": err(e)}
out["dac"] = claims(DefaultAzureCredential().get_token(os.environ["SCOPE"]).token)["oid"]
''', env=dict(self.app_service_env(), SCOPE=self.scope, SELECTORS=json.dumps({
            "client_id": {"client_id": u["properties"]["clientId"]},
            "object_id": {"identity_config": {"object_id": u["properties"]["principalId"]}},
            "principal_id": {"identity_config": {"principal_id": u["properties"]["principalId"]}},
            "mi_res_id": {"identity_config": {"mi_res_id": u["id"]}},
        })))
        self.assertIn("ManagedIdentityCredential will use App Service managed identity", out["chosen"])
        self.assertEqual(out["oid"], self.vm_principal)
        self.assertEqual(out["value"], "app")
        w = out["wire"][0]
        self.assertTrue(w["url"].startswith(self.agent + "/msi/token?"), w)
        self.assertIn("api-version=2019-08-01", w["url"])
        self.assertTrue(w["identity_header"])
        self.assertEqual(w["status"], 200)
        for label, res in out["sel"].items():
            with self.subTest(label):
                self.assertEqual(res.get("oid"), u["properties"]["principalId"], res)
                self.assertIn(label + "=", res["query"])
        self.assertEqual(out["dac"], self.vm_principal)

    def test_app_service_wrong_header_is_refused(self):
        out = self.py_json('''
t0 = time.time()
cred = ManagedIdentityCredential(raw_response_hook=hook)
out["r"] = capture(lambda: cred.get_token(os.environ["SCOPE"]).token)
out["elapsed"] = time.time() - t0
out["statuses"] = [w["status"] for w in wire]
''', env=dict(self.app_service_env(header="not-the-secret"), SCOPE=self.scope))
        e = out["r"]["error"]
        self.assertEqual(e["type"], "ClientAuthenticationError", e)
        self.assertIn("unauthorized_client", e["message"])
        self.assertNotIn(self.identity_header, e["message"])
        self.assertEqual(out["statuses"], [401])  # refused, not retried
        self.assertLess(out["elapsed"], 3)
