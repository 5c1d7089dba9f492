"""test_federation_js.py: issue 10 with @azure/identity 4.13, unchanged (js/federation.js).

WorkloadIdentityCredential, ClientSecretCredential and ClientCertificateCredential with
disableInstanceDiscovery: true; ManagedIdentityCredential and DefaultAzureCredential with the
variables the AKS webhook injects (AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID,
AZURE_FEDERATED_TOKEN_FILE) and nothing else; certificate assertions signed PS256 with
x5t#S256 (msal-node's); refusals carry the AADSTS code in the SDK's error message."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat import CompatTest  # noqa: E402,F401  (puts tests/integration on the path)
from federation_fixture import FederationFixture  # noqa: E402
from test_js_sdk import MI_SOURCE_VARS, JsTest, ensure_node_modules  # noqa: E402


def setUpModule():
    ensure_node_modules()


class JsFederation(FederationFixture, JsTest):
    def token_file(self, token):
        path = os.path.join(self.tmp, "js-token-%d" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            f.write(token)
        return path

    def wi_env(self, token_file, client_id=None):
        env = {k: v for k, v in self.up.env.items() if k not in MI_SOURCE_VARS}
        env.update(AZURE_AUTHORITY_HOST=self.authority, AZURE_TENANT_ID=self.tenant,
                   AZURE_CLIENT_ID=client_id or self.uai["properties"]["clientId"],
                   AZURE_FEDERATED_TOKEN_FILE=token_file)
        return env

    def case(self, name, kind, **kw):
        c = {"name": name, "kind": kind, "tenantId": self.tenant, "authorityHost": self.authority,
             "secret": "js-" + name.lower()}
        c.update(kw)
        return c

    def assert_works(self, checks, name, oid, mirid=None):
        tok = self.ok(checks, name + ".token")
        self.assertEqual((tok["oid"], tok["idtyp"], tok["xms_mirid"]), (oid, "app", mirid))
        self.assertEqual(self.ok(checks, name + ".set"), "js-" + name.lower())
        self.assertEqual(self.ok(checks, name + ".get"), "via-" + name)

    def test_workload_identity_credentials(self):
        tf = self.token_file(self.issuer.kubernetes("apps", "web"))
        env = self.wi_env(tf)
        oid, mirid = self.uai["properties"]["principalId"], self.uai["id"]
        checks = self.node("federation.js", {"scope": self.scope, "cases": [
            self.case("wi", "wi", clientId=self.uai["properties"]["clientId"], tokenFile=tf)]}, env=env)
        self.assert_works(checks, "wi", oid, mirid)
        checks = self.node("federation.js", {"scope": self.scope, "cases": [self.case("mi", "mi")]}, env=env)
        self.assert_works(checks, "mi", oid, mirid)
        checks = self.node("federation.js", {"scope": self.scope, "cases": [self.case("dac", "dac")]}, env=env)
        self.assert_works(checks, "dac", oid, mirid)

    def test_client_secret_and_certificate(self):
        env = {k: v for k, v in self.up.env.items() if k not in MI_SOURCE_VARS}
        checks = self.node("federation.js", {"scope": self.scope, "cases": [
            self.case("secret", "secret", clientId=self.sp["appId"], clientSecret=self.sp["password"]),
            self.case("cert", "cert", clientId=self.sp["appId"], certificatePath=self.cert_pem)]}, env=env)
        self.assert_works(checks, "secret", self.sp["id"])
        self.assert_works(checks, "cert", self.sp["id"])

    def test_refusals_carry_the_aadsts_code(self):
        env = {k: v for k, v in self.up.env.items() if k not in MI_SOURCE_VARS}
        other = self.token_file(self.issuer.kubernetes("apps", "other"))
        old = self.token_file(self.issuer.kubernetes("apps", "web", now=int(time.time()) - 7200))
        tampered = self.token_file(self.issuer.kubernetes("apps", "web", tamper=True))
        cid = self.uai["properties"]["clientId"]
        checks = self.node("federation.js", {"scope": self.scope, "cases": [
            self.case("nomatch", "wi", clientId=cid, tokenFile=other, expectError=True),
            self.case("expired", "wi", clientId=cid, tokenFile=old, expectError=True),
            self.case("badsig", "wi", clientId=cid, tokenFile=tampered, expectError=True),
            self.case("unknown", "wi", clientId="00000000-0000-4000-8000-000000000001", tokenFile=other,
                      expectError=True),
            self.case("badsecret", "secret", clientId=self.sp["appId"], clientSecret="wrong", expectError=True),
        ]}, env=env)
        for name, code in (("nomatch", 70021), ("expired", 700024), ("badsig", 700027),
                           ("unknown", 700016), ("badsecret", 7000215)):
            e = self.ok(checks, name + ".error")
            self.assertIn("AADSTS%d" % code, e["message"], (name, e))
