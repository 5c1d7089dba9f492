"""test_federation.py: issue 10, workload identity federation against real processes.

A test OIDC issuer (oidc_issuer.py, HTTPS with its own CA handed to `mivault server
--trust-ca`) mints Kubernetes- and GitHub-style tokens (also the immutable
repo:OWNER@ID/REPO@ID form); a user-assigned identity trusts them through federated identity
credentials (`mivault identity federated-credential …`, the ARM resource with Entra's rules) and
the v2 token endpoint exchanges them. Every refusal is checked in Entra's shape: 70021 (with the
presented issuer/subject/audience), 700024, 700027, 5002738 (ES256), 50166 (issuer down),
700016. The issuer's keys are cached and re-fetched once for an unknown kid."""
import json
import os
import shutil
import tempfile
import time
import urllib.parse
import uuid

from harness import Env, MivaultTest, jwt_parts
from oidc_issuer import Issuer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FIC_API = "2023-01-31"


class Federation(MivaultTest):
    def setUp(self):
        self.idir = tempfile.mkdtemp(prefix="mivault-issuer.")
        self.addCleanup(shutil.rmtree, self.idir, True)
        self.issuer = Issuer(self.idir, path="/cluster1")
        self.addCleanup(self.issuer.close)
        self.env = Env(self, threads=2)
        self.addCleanup(self.env.close)
        e = self.env
        e.server = e.spawn("server", "server", "--trust-ca", self.issuer.ca_file, port=e.server_port)
        self.uai = e.cli("identity", "create", "--name", "workload")
        self.cid = self.uai["properties"]["clientId"]

    def fic(self, name, subject, issuer=None, audience=None, identity="workload"):
        args = ["identity", "federated-credential", "create", "--identity", identity, "--name", name,
                "--issuer", issuer or self.issuer.url, "--subject", subject]
        if audience:
            args += ["--audience", audience]
        return self.env.cli(*args)

    def exchange(self, assertion, client_id=None, scope="https://vault.azure.net/.default"):
        form = {"client_id": client_id or self.cid, "grant_type": "client_credentials",
                "scope": scope, "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
        return self.env.https("POST", "/%s/oauth2/v2.0/token" % self.env.tenant,
                              body=urllib.parse.urlencode(form), headers=FORM)

    def assertAad(self, r, status, error, code):
        self.assertEqual(r.status, status, r.body)
        j = r.json()
        self.assertEqual((j["error"], j["error_codes"]), (error, [code]), j)
        self.assertTrue(j["error_description"].startswith("AADSTS%d: " % code), j)
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(k, j)
        return j

    def arm(self, method, name=None, body=None, api=FIC_API, identity="workload"):
        e = self.env
        path = ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/%s/federatedIdentityCredentials" % (e.sub, e.rg, identity))
        if name:
            path += "/" + name
        return e.https(method, path + "?api-version=" + api, body=body, token=self.admin_token())

    def admin_token(self):
        if not hasattr(self, "_admin"):
            from test_assertions import admin_of, assertion, token_request
            cid, key = admin_of(self.env)
            aud = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.env.server_port, self.env.tenant)
            r = token_request(self.env, cid, assertion(key, cid, aud))
            self._admin = r.json()["access_token"]
        return self._admin

    def test_kubernetes_exchange_and_claims(self):
        e = self.env
        out = self.fic("k8s", "system:serviceaccount:apps:web")
        self.assertEqual(out["properties"]["audiences"], ["api://AzureADTokenExchange"])
        self.assertEqual(out["type"],
                         "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials")
        r = self.exchange(self.issuer.kubernetes("apps", "web"))
        self.assertEqual(r.status, 200, r.body)
        c = jwt_parts(r.json()["access_token"])[1]
        self.assertEqual(c["appid"], self.cid)
        self.assertEqual(c["oid"], self.uai["properties"]["principalId"])
        self.assertEqual(c["idtyp"], "app")
        self.assertEqual(c["tid"], e.tenant)
        self.assertEqual(c["xms_mirid"], self.uai["id"])
        # one projected token serves several requests (the SDKs re-read the file every 5 min)
        tok = self.issuer.kubernetes("apps", "web")
        self.assertEqual(self.exchange(tok).status, 200)
        self.assertEqual(self.exchange(tok, scope="https://management.core.windows.net//.default").status, 200)
        # cached: one discovery and one JWKS fetch for all of that
        self.assertEqual(self.issuer.hits, {"discovery": 1, "jwks": 1})
        # the vault authorizes it like any identity
        e.vault("fedv")
        vt = self.exchange(tok, scope=e.vault_resource() + "/.default").json()["access_token"]
        self.assertEqual(e.kv("PUT", "fedv", "/secrets/a", token=vt, body={"value": "x"}).status, 403)
        e.grant(self.uai["properties"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("fedv"))
        self.assertEqual(e.kv("PUT", "fedv", "/secrets/a", token=vt, body={"value": "x"}).status, 200)

    def test_github_subjects_exact_match(self):
        self.fic("gh-main", "repo:octo-org/octo-repo:ref:refs/heads/main")
        self.fic("gh-immutable", "repo:octo-org@123456/octo-repo@456789:ref:refs/heads/main")
        self.fic("gh-env", "repo:octo-org/octo-repo:environment:prod")
        for sub in ("repo:octo-org/octo-repo:ref:refs/heads/main",
                    "repo:octo-org@123456/octo-repo@456789:ref:refs/heads/main",
                    "repo:octo-org/octo-repo:environment:prod"):
            self.assertEqual(self.exchange(self.issuer.github(sub)).status, 200, sub)
        # byte-exact: case, a trailing space, another branch, a pull request
        for sub in ("repo:Octo-org/octo-repo:ref:refs/heads/main",
                    "repo:octo-org/octo-repo:ref:refs/heads/main ",
                    "repo:octo-org/octo-repo:ref:refs/heads/dev",
                    "repo:octo-org@123456/octo-repo@456789:pull_request"):
            j = self.assertAad(self.exchange(self.issuer.github(sub)), 400, "invalid_request", 70021)
            self.assertIn("Assertion Subject: '%s'" % sub, j["error_description"])
        # RS384/RS512/PS256 are RSA too
        for alg in ("RS384", "RS512", "PS256", "PS512"):
            tok = self.issuer.github("repo:octo-org/octo-repo:environment:prod", alg=alg)
            self.assertEqual(self.exchange(tok).status, 200, alg)

    def test_refusals(self):
        iss = self.issuer
        self.fic("k8s", "system:serviceaccount:apps:web")
        # no matching record: issuer, subject and audience in the text
        j = self.assertAad(self.exchange(iss.kubernetes("apps", "other")), 400, "invalid_request", 70021)
        self.assertIn("No matching federated identity record found for presented assertion. "
                      "Assertion Issuer: '%s'. Assertion Subject: 'system:serviceaccount:apps:other'. "
                      "Assertion Audience: 'api://AzureADTokenExchange'." % iss.url,
                      j["error_description"])
        self.assertAad(self.exchange(iss.kubernetes("apps", "web", aud="api://other")), 400,
                       "invalid_request", 70021)
        self.assertAad(self.exchange(iss.kubernetes("apps", "web", iss=iss.url + "/")), 400,
                       "invalid_request", 70021)
        # time range (Entra's 5 minutes of skew)
        old = iss.kubernetes("apps", "web", now=int(time.time()) - 7200)
        j = self.assertAad(self.exchange(old), 401, "invalid_client", 700024)
        self.assertIn("Client assertion is not within its valid time range", j["error_description"])
        early = iss.kubernetes("apps", "web", now=int(time.time()) + 900)
        self.assertAad(self.exchange(early), 401, "invalid_client", 700024)
        skewed = iss.kubernetes("apps", "web", now=int(time.time()) + 120)
        self.assertEqual(self.exchange(skewed).status, 200)
        # signature
        self.assertAad(self.exchange(iss.kubernetes("apps", "web", tamper=True)), 401,
                       "invalid_client", 700027)
        # ES256 is not accepted (Entra: RSA only)
        iss.add_key("ec1", kind="ec")
        j = self.assertAad(self.exchange(iss.kubernetes("apps", "web", kid="ec1", alg="ES256")), 401,
                           "invalid_client", 5002738)
        # unknown client
        self.assertAad(self.exchange(iss.kubernetes("apps", "web"), client_id=str(uuid.uuid4())), 400,
                       "unauthorized_client", 700016)

    def test_unknown_kid_refetched_once(self):
        iss = self.issuer
        self.fic("k8s", "system:serviceaccount:apps:web")
        self.assertEqual(self.exchange(iss.kubernetes("apps", "web")).status, 200)
        self.assertEqual(iss.hits["jwks"], 1)
        # a key the issuer does not publish: one re-fetch, then 700027
        iss.add_key("k2", publish=False)
        self.assertAad(self.exchange(iss.kubernetes("apps", "web", kid="k2")), 401, "invalid_client", 700027)
        self.assertEqual(iss.hits["jwks"], 2)
        # again at once: no further fetch (at most one per 10 s per issuer)
        self.assertAad(self.exchange(iss.kubernetes("apps", "web", kid="k2")), 401, "invalid_client", 700027)
        self.assertEqual(iss.hits["jwks"], 2)
        # rotated in: found after the re-fetch window
        iss.published.add("k3")
        iss.add_key("k3")
        time.sleep(10.5)
        self.assertEqual(self.exchange(iss.kubernetes("apps", "web", kid="k3")).status, 200)
        self.assertEqual(iss.hits["jwks"], 3)

    def test_issuer_unreachable_and_untrusted(self):
        # an issuer nobody answers for
        self.fic("gone", "system:serviceaccount:a:b", issuer="https://127.0.0.1:1/nowhere")
        tok = self.issuer.mint("system:serviceaccount:a:b", iss="https://127.0.0.1:1/nowhere")
        self.assertAad(self.exchange(tok), 401, "invalid_client", 50166)
        # a server without --trust-ca does not trust the issuer's CA
        e = Env(self, threads=1)
        self.addCleanup(e.close)
        e.start_server()
        uai = e.cli("identity", "create", "--name", "w2")
        e.cli("identity", "federated-credential", "create", "--identity", "w2", "--name", "kkk",
              "--issuer", self.issuer.url, "--subject", "system:serviceaccount:apps:web")
        form = {"client_id": uai["properties"]["clientId"], "grant_type": "client_credentials",
                "scope": "https://vault.azure.net/.default", "client_assertion_type": JWT_BEARER,
                "client_assertion": self.issuer.kubernetes("apps", "web")}
        r = e.https("POST", "/%s/oauth2/v2.0/token" % e.tenant, body=urllib.parse.urlencode(form), headers=FORM)
        self.assertAad(r, 401, "invalid_client", 50166)

    def test_arm_rules(self):
        e = self.env
        body = {"properties": {"issuer": self.issuer.url, "subject": "s1",
                               "audiences": ["api://AzureADTokenExchange"]}}
        r = self.arm("PUT", "fic1", body)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["id"], self.uai["id"] + "/federatedIdentityCredentials/fic1")
        self.assertEqual(self.arm("PUT", "fic1", body).status, 200)  # update
        # (issuer, subject) unique per identity
        self.assertAzureError(self.arm("PUT", "fic2", body), 400, "BadRequest")
        # exactly one audience
        for auds in ([], ["a", "b"]):
            b = {"properties": dict(body["properties"], subject="s9", audiences=auds)}
            e_ = self.assertAzureError(self.arm("PUT", "fic9", b), 400, "BadRequest")
            self.assertIn("exactly 1 audience", e_["message"])
        # empty properties, a bad name, whitespace, an Entra issuer, http
        self.assertAzureError(self.arm("PUT", "fic9", {"properties": {}}), 400, "BadRequest")
        self.assertAzureError(self.arm("PUT", "-bad", body), 400, "BadRequest")
        self.assertAzureError(self.arm("PUT", "ab", body), 400, "BadRequest")
        for iss in (" " + self.issuer.url, "http://example.com",
                    "https://login.microsoftonline.com/t/v2.0"):
            b = {"properties": dict(body["properties"], issuer=iss, subject="s8")}
            self.assertAzureError(self.arm("PUT", "fic8", b), 400, "BadRequest")
        # the parent must exist; api-version
        self.assertAzureError(self.arm("PUT", "fic1", body, identity="nope"), 404)
        self.assertAzureError(self.arm("PUT", "fic3", body, api="2018-11-30"), 400,
                              "InvalidApiVersionParameter")
        # at most 20 per identity
        for i in range(2, 21):
            b = {"properties": dict(body["properties"], subject="s%d" % i)}
            self.assertEqual(self.arm("PUT", "fic%d" % i, b).status, 201)
        b = {"properties": dict(body["properties"], subject="s21")}
        e_ = self.assertAzureError(self.arm("PUT", "fic21", b), 400, "BadRequest")
        self.assertIn("maximum of 20", e_["message"])
        # list / show / delete, CLI and ARM
        self.assertEqual(len(e.cli("identity", "federated-credential", "list", "--identity", "workload")), 20)
        shown = e.cli("identity", "federated-credential", "show", "--identity", "workload", "--name", "fic1")
        self.assertEqual(shown["properties"]["subject"], "s1")
        e.cli("identity", "federated-credential", "delete", "--identity", "workload", "--name", "fic1")
        self.assertEqual(self.arm("GET", "fic1").status, 404)
        self.assertEqual(self.arm("DELETE", "fic1").status, 204)
        # deleting the identity deletes its credentials
        e.cli("identity", "delete", "--name", "workload")
        e.cli("identity", "create", "--name", "workload")
        self.assertEqual(self.arm("GET").json()["value"], [])


if __name__ == "__main__":
    import unittest
    unittest.main()
