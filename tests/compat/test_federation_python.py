"""test_federation_python.py: issue 10 with Debian's azure-identity 1.13, unchanged.

Workload identity federation: with AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_FEDERATED_TOKEN_FILE set (what the AKS webhook injects, here holding a token of the test
OIDC issuer), DefaultAzureCredential() and ManagedIdentityCredential() read a secret. Service
principals: ClientSecretCredential and CertificateCredential with the SDK's custom-cloud switch
(instance_discovery=False). Refusals surface the AADSTS code in ClientAuthenticationError."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat import CompatTest  # noqa: E402
from federation_fixture import FederationFixture  # noqa: E402

WI_CODE = r"""
from azure.identity import ClientSecretCredential, CertificateCredential
mode = os.environ["MODE"]
scope = os.environ["SCOPE"]
def cred():
    if mode == "dac":
        return DefaultAzureCredential()
    if mode == "mi":
        return ManagedIdentityCredential()
    if mode == "secret":
        return ClientSecretCredential(os.environ["T"], os.environ["APP"], os.environ["SECRET"],
                                      authority=os.environ["AUTH"], instance_discovery=False)
    return CertificateCredential(os.environ["T"], os.environ["APP"], os.environ["CERT"],
                                 authority=os.environ["AUTH"], instance_discovery=False)
c = cred()
out["token"] = capture(lambda: claims(c.get_token(scope).token))
client = SecretClient(VAULT, c)
out["set"] = capture(lambda: client.set_secret(os.environ["NAME"], "via-" + mode).name)
out["get"] = capture(lambda: client.get_secret(os.environ["NAME"]).value)
"""


class PythonFederation(FederationFixture, CompatTest):
    def wi_env(self, token, client_id=None):
        path = os.path.join(self.tmp, "azure-identity-token-%d" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            f.write(token)
        env = dict(self.up.env, AZURE_AUTHORITY_HOST=self.authority, AZURE_TENANT_ID=self.tenant,
                   AZURE_CLIENT_ID=client_id or self.uai["properties"]["clientId"],
                   AZURE_FEDERATED_TOKEN_FILE=path)
        # no IMDS: the token exchange is the only way in
        for k in ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSAL_MANAGED_IDENTITY_ENDPOINT", "IDENTITY_ENDPOINT"):
            env.pop(k, None)
        return env

    def run_mode(self, mode, env, name):
        env = dict(env, MODE=mode, SCOPE=self.vault_scope(), NAME=name, T=self.tenant,
                   APP=self.sp["appId"], SECRET=self.sp["password"], CERT=self.cert_pem,
                   AUTH=self.authority)
        return self.py_json(WI_CODE, env=env)

    def vault_scope(self):
        return self.scope

    def assert_ok(self, out, mode, oid, mirid=None):
        self.assertIn("ok", out["token"], out)
        c = out["token"]["ok"]
        self.assertEqual(c["oid"], oid)
        self.assertEqual(c.get("xms_mirid"), mirid)
        self.assertEqual(out["set"], {"ok": "py-" + mode}, out)
        self.assertEqual(out["get"], {"ok": "via-" + mode}, out)

    def test_workload_identity_default_and_managed_identity_credential(self):
        env = self.wi_env(self.issuer.kubernetes("apps", "web"))
        for mode in ("dac", "mi"):
            out = self.run_mode(mode, env, "py-" + mode)
            self.assert_ok(out, mode, self.uai["properties"]["principalId"], self.uai["id"])

    def test_client_secret_and_certificate(self):
        for mode in ("secret", "cert"):
            out = self.run_mode(mode, dict(self.up.env), "py-" + mode)
            self.assert_ok(out, mode, self.sp["id"])

    def test_refusals_carry_the_aadsts_code(self):
        out = self.run_mode("mi", self.wi_env(self.issuer.kubernetes("apps", "other")), "py-x")
        e = out["token"]["error"]
        self.assertEqual(e["type"], "ClientAuthenticationError", e)
        self.assertIn("AADSTS70021", e["message"])
        self.assertIn("system:serviceaccount:apps:other", e["message"])
        old = self.issuer.kubernetes("apps", "web", now=int(__import__("time").time()) - 7200)
        e = self.run_mode("mi", self.wi_env(old), "py-x")["token"]["error"]
        self.assertIn("AADSTS700024", e["message"])
        e = self.run_mode("mi", self.wi_env(self.issuer.kubernetes("apps", "web", tamper=True)), "py-x")["token"]["error"]
        self.assertIn("AADSTS700027", e["message"])
        e = self.run_mode("mi", self.wi_env(self.issuer.kubernetes("apps", "web"),
                                            client_id="00000000-0000-4000-8000-000000000001"), "py-x")["token"]["error"]
        self.assertIn("AADSTS700016", e["message"])
        env = dict(self.up.env)
        out = self.py_json(WI_CODE.replace('os.environ["SECRET"]', '"wrong-secret"'),
                           env=dict(env, MODE="secret", SCOPE=self.scope, NAME="py-x", T=self.tenant,
                                    APP=self.sp["appId"], SECRET="x", CERT=self.cert_pem, AUTH=self.authority))
        e = out["token"]["error"]
        self.assertEqual(e["type"], "ClientAuthenticationError", e)
        self.assertIn("AADSTS7000215", e["message"])
