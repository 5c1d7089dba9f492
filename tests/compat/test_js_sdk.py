"""@azure/identity 4 and @azure/keyvault-secrets 4 from npm, unchanged, against `mivault up`.

The npm packages are pinned by js/package-lock.json and installed with `npm ci` when
js/node_modules is missing or was not installed from this package.json + lockfile (a stamp file
records their digest). run.sh does it before entering the suite's mount namespace
(`python3 test_js_sdk.py --install`); setUpModule checks again. Each test runs one node process per group of
checks (js/*.js); it prints {"checks": {...}} and the assertions are made here. The node
processes get exactly env.sh's environment (compat.Up.env), except where a test deliberately
switches the managed-identity source (App Service, Cloud Shell) the way a user would.
"""
import base64
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import unittest
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat import CompatTest, Up  # noqa: E402
from harness import BIN  # noqa: E402  (compat put tests/integration on the path)

NODE = "/usr/bin/node"
NPM = "/usr/bin/npm"
JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
STAMP = os.path.join(JS_DIR, "node_modules", ".mivault-lock.sha256")
API_VERSION = "2025-07-01"  # @azure/keyvault-secrets 4.11's default service version
MI_SOURCE_VARS = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSAL_MANAGED_IDENTITY_ENDPOINT", "IDENTITY_ENDPOINT",
                  "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT")


def _lock_digest():
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(JS_DIR, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def ensure_node_modules():
    """`npm ci` unless node_modules was installed from exactly this package.json + lockfile."""
    for tool in (NODE, NPM):
        if not os.access(tool, os.X_OK):
            raise RuntimeError("%s is missing: the JS compatibility tests need Node.js >= 20 with npm" % tool)
    major = subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True,
                           timeout=30).stdout.strip()
    if not major.isdigit() or int(major) < 20:
        raise RuntimeError("%s is Node.js %s; @azure/identity 4.13 needs >= 20" % (NODE, major or "?"))
    digest = _lock_digest()
    try:
        with open(STAMP) as f:
            if f.read().strip() == digest:
                return
    except OSError:
        pass
    r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("npm ci failed in %s:\n%s%s" % (JS_DIR, r.stdout, r.stderr))
    with open(STAMP, "w") as f:
        f.write(digest + "\n")


def setUpModule():
    ensure_node_modules()


def vault_challenge(up):
    """The vault's 401 challenge: (authorization, resource), read the way the SDK reads it."""
    url = urllib.parse.urlsplit(up.env["MIVAULT_VAULT_URL"])
    ctx = ssl.create_default_context(cafile=up.env["NODE_EXTRA_CA_CERTS"])
    req = urllib.request.Request(up.env["MIVAULT_VAULT_URL"] + "/secrets?api-version=" + API_VERSION)
    try:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    except urllib.error.HTTPError as e:
        header = e.headers.get("WWW-Authenticate", "")
        params = dict(item.split("=", 1) for item in header[len("Bearer "):].split(", "))
        return params["authorization"].strip('"'), params["resource"].strip('"')
    raise AssertionError("no challenge from %s" % url.netloc)


def imds_token(up, resource, **ids):
    q = {"api-version": "2018-02-01", "resource": resource}
    q.update(ids)
    req = urllib.request.Request(up.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + "/metadata/identity/oauth2/token?" +
                                 urllib.parse.urlencode(q), headers={"Metadata": "true"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["access_token"]


def jwt_claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


class JsTest(CompatTest):
    """Helpers shared by the JS test classes (each class has its own `mivault up`)."""

    def node(self, script, args=None, env=None, timeout=180, prefix=()):
        argv = list(prefix) + [NODE, os.path.join(JS_DIR, script)]
        if args is not None:
            argv.append(json.dumps(args))
        r = subprocess.run(argv, cwd=JS_DIR, capture_output=True, text=True, env=env or self.up.env, timeout=timeout)
        self.assertEqual(r.returncode, 0, "%s failed:\n%s\n%s" % (script, r.stdout[-3000:], r.stderr[-3000:]))
        lines = r.stdout.strip().splitlines()
        self.assertTrue(lines, "%s printed nothing; stderr:\n%s" % (script, r.stderr[-3000:]))
        checks = json.loads(lines[-1])["checks"]
        dump = os.environ.get("MIVAULT_COMPAT_DUMP")  # a directory: keep each run's results to read
        if dump:
            with open(os.path.join(dump, "%s.%s.json" % (self.id().rsplit(".", 1)[-1], script)), "a") as f:
                f.write(json.dumps(checks, indent=1) + "\n")
        return checks

    def ok(self, checks, name):
        self.assertIn(name, checks)
        c = checks[name]
        self.assertTrue(c["ok"], "%s failed: %s" % (name, json.dumps(c.get("error"), indent=1)))
        return c["value"]

    def rest_error(self, checks, name, status, code, inner=None):
        e = self.ok(checks, name)
        self.assertEqual(e.get("name"), "RestError", json.dumps(e))
        self.assertEqual((e.get("statusCode"), e.get("code")), (status, code), json.dumps(e))
        if inner is not None:
            self.assertEqual(e.get("innerCode"), inner, json.dumps(e))
        return e

    def env_without_mi(self, **extra):
        env = {k: v for k, v in self.up.env.items() if k not in MI_SOURCE_VARS}
        env.update(extra)
        return env

    @classmethod
    def make_identity(cls, name, role=None, scope="vault:dev"):
        """A user-assigned identity attached to localvm, optionally granted `role` at `scope`."""
        ident = cls.up.cli("identity", "create", "--name", name)
        cls.up.cli("vm", "identity", "assign", "--name", "localvm", "--user-assigned", name)
        if role:
            cls.up.cli("role", "assignment", "create", "--assignee", ident["properties"]["principalId"],
                       "--role", role, "--scope", scope)
        return {"id": ident["id"], "clientId": ident["properties"]["clientId"],
                "objectId": ident["properties"]["principalId"]}

    @classmethod
    def system_principal(cls):
        return cls.up.cli("vm", "show", "--name", "localvm")["identity"]["principalId"]


class JsCredentialTest(JsTest):
    """ManagedIdentityCredential (system; user-assigned by clientId, objectId, resourceId) and
    DefaultAzureCredential over env.sh's IMDS, then the App Service and Cloud Shell sources."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.uai = cls.make_identity("jsuai", "Key Vault Secrets Officer")
        cls.system = cls.system_principal()
        cls.authorization, cls.resource = vault_challenge(cls.up)
        cls.scope = cls.resource + "/.default"

    def cases(self, tag, kinds):
        all_cases = {
            "system": {"kind": "mi"},
            "clientId": {"kind": "mi", "options": {"clientId": self.uai["clientId"]}},
            "objectId": {"kind": "mi", "options": {"objectId": self.uai["objectId"]}},
            "resourceId": {"kind": "mi", "options": {"resourceId": self.uai["id"]}},
            "dac": {"kind": "dac"},
        }
        return [dict(all_cases[k], name=k, secret="%s-%s" % (tag, k.lower())) for k in kinds]

    def assert_identity_works(self, checks, name, oid, tag):
        tok = self.ok(checks, name + ".token")
        self.assertEqual(tok["oid"], oid, name)
        self.assertEqual(tok["aud"], self.resource)
        if self.authorization:
            self.assertEqual(tok["iss"], self.authorization + "/")
        self.assertGreater(tok["secondsLeft"], 3600)
        props = self.ok(checks, name + ".set")
        self.assertEqual(props["name"], "%s-%s" % (tag, name.lower()))
        self.assertEqual(self.ok(checks, name + ".get"), "via-" + name)
        statuses = [(w["status"], w["auth"]) for w in self.ok(checks, name + ".wire")]
        self.assertEqual(statuses[:3], [(401, False), (200, True), (200, True)], name)

    def run_cases(self, tag, kinds, env=None, prefix=()):
        """msal-node caches managed-identity tokens per process across credential instances, so
        DefaultAzureCredential (system-assigned too) gets a process of its own."""
        checks = {}
        for group in (["dac"], [k for k in kinds if k != "dac"]):
            if group and group[0] in kinds:
                checks.update(self.node("identity.js", {"scope": self.scope, "cases": self.cases(tag, group)}, env=env,
                                        prefix=prefix))
        return checks

    def test_imds_system_and_user_assigned_and_default_credential(self):
        checks = self.run_cases("imds", ["system", "clientId", "objectId", "resourceId", "dac"])
        self.assert_identity_works(checks, "system", self.system, "imds")
        self.assertTrue(self.ok(checks, "system.token")["xms_mirid"].endswith("/virtualMachines/localvm"))
        for k in ("clientId", "objectId", "resourceId"):
            self.assert_identity_works(checks, k, self.uai["objectId"], "imds")
            tok = self.ok(checks, k + ".token")
            self.assertEqual(tok["appid"], self.uai["clientId"])
            self.assertEqual(tok["xms_mirid"].lower(), self.uai["id"].lower())
        # DefaultAzureCredential with env.sh alone: the managed identity, without delay (the JS
        # IMDS probe is skipped when AZURE_POD_IDENTITY_AUTHORITY_HOST is set, reference §1.4)
        self.assert_identity_works(checks, "dac", self.system, "imds")
        self.assertLess(self.ok(checks, "dac.elapsedMs"), 5000)

    def test_app_service_protocol(self):
        with open(os.path.join(self.up.dir, "agents", "localvm", "identity_header")) as f:
            header = f.read().strip()
        endpoint = self.up.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + "/msi/token"
        env = self.env_without_mi(IDENTITY_ENDPOINT=endpoint, IDENTITY_HEADER=header)
        checks = self.run_cases("appsvc", ["system", "clientId", "objectId", "resourceId", "dac"], env=env)
        self.assert_identity_works(checks, "system", self.system, "appsvc")
        for k in ("clientId", "objectId", "resourceId"):
            self.assert_identity_works(checks, k, self.uai["objectId"], "appsvc")
        self.assert_identity_works(checks, "dac", self.system, "appsvc")
        # the X-IDENTITY-HEADER is checked
        bad = self.env_without_mi(IDENTITY_ENDPOINT=endpoint, IDENTITY_HEADER="0" * len(header))
        checks = self.run_cases("appsvc-bad", ["system"], env=bad)
        err = checks["system.token"]
        self.assertFalse(err["ok"])
        self.assertEqual(err["error"]["name"], "CredentialUnavailableError", json.dumps(err))

    def test_cloud_shell_msi_endpoint_post(self):
        endpoint = self.up.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + "/metadata/identity/oauth2/token"
        env = self.env_without_mi(MSI_ENDPOINT=endpoint)
        checks = self.run_cases("cloudshell", ["system", "clientId", "dac"], env=env)
        self.assert_identity_works(checks, "system", self.system, "cloudshell")
        self.assert_identity_works(checks, "dac", self.system, "cloudshell")
        # @azure/identity refuses user-assigned identities with Cloud Shell, before any request
        err = checks["clientId.construct"]
        self.assertFalse(err["ok"])
        self.assertEqual(err["error"]["name"], "CredentialUnavailableError")
        self.assertIn("not supported for CloudShell", err["error"]["message"])


class JsSecretClientTest(JsTest):
    """SecretClient operations, soft delete, and errors as RestError statusCode + code."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        system = cls.system_principal()
        cls.up.cli("keyvault", "create", "--name", "jsvault", "--retention-days", "7")
        cls.up.cli("keyvault", "create", "--name", "jsprotect", "--enable-purge-protection")
        for v in ("jsvault", "jsprotect"):
            cls.up.cli("role", "assignment", "create", "--assignee", system, "--role", "Key Vault Secrets Officer",
                       "--scope", "vault:" + v)
        cls.norole = cls.make_identity("jsnorole")
        cls.reader = cls.make_identity("jsreader", "Key Vault Secrets User")
        cls.authorization, cls.resource = vault_challenge(cls.up)
        cls.vault_url = cls.up.env["MIVAULT_VAULT_URL"]

    def vault(self, name):
        u = urllib.parse.urlsplit(self.vault_url)
        return "https://%s.%s" % (name, u.netloc.split(".", 1)[1])

    def assert_paged(self, listing, first_path):
        """At most two items per page; every page but the last names an absolute nextLink on the
        vault's own host:port that carries api-version and maxresults, the SDK fetches exactly
        that URL, and the last page's nextLink is null. Returns the pages' item lists."""
        pages, requests = listing["pages"], listing["requests"]
        self.assertGreater(len(pages), 2)
        self.assertEqual(len(requests), len(pages))
        self.assertTrue(all(len(pg["names"]) <= 2 for pg in pages))
        first = urllib.parse.urlsplit(requests[0]["url"])
        self.assertEqual(first.path, first_path)
        self.assertEqual(urllib.parse.parse_qs(first.query).get("maxresults"), ["2"])
        netloc = urllib.parse.urlsplit(self.vault_url).netloc
        for req, nxt in zip(requests, requests[1:]):
            link = urllib.parse.urlsplit(req["nextLink"])
            self.assertEqual((link.scheme, link.netloc), ("https", netloc), req["nextLink"])
            q = urllib.parse.parse_qs(link.query)
            self.assertEqual(q.get("api-version"), [API_VERSION], req["nextLink"])
            self.assertEqual(q.get("maxresults"), ["2"], req["nextLink"])
            self.assertEqual(nxt["url"], req["nextLink"])
        self.assertIsNone(requests[-1]["nextLink"])
        return pages

    def test_secret_client_operations(self):
        p = "ops-"
        c = self.node("secrets.js", {"prefix": p, "otherVault": self.vault("jsvault"),
                                     "protectedVault": self.vault("jsprotect")})
        # set with content type, tags, enabled/nbf/exp; soft delete on by default (90 days)
        full = self.ok(c, "set.full")
        self.assertEqual(full["value"], "value-1")
        props = full["props"]
        self.assertEqual(props["contentType"], "text/plain")
        self.assertEqual(props["tags"], {"env": "compat", "team": "js"})
        self.assertIs(props["enabled"], True)
        self.assertEqual((props["notBefore"], props["expiresOn"]), (full["expect"]["nbf"], full["expect"]["exp"]))
        self.assertEqual((props["recoveryLevel"], props["recoverableDays"]), ("Recoverable+Purgeable", 90))
        self.assertRegex(props["version"], "^[0-9a-f]{32}$")
        self.assertEqual(props["vaultUrl"], self.vault_url)
        self.assertEqual(props["id"], "%s/secrets/%sfull/%s" % (self.vault_url, p, props["version"]))
        # get latest and by version
        latest = self.ok(c, "get.latest")
        self.assertEqual((latest["value"], latest["props"]["version"]), ("value-2", latest["v2"]))
        self.assertIsNone(latest["props"]["contentType"])
        byv = self.ok(c, "get.byVersion")
        self.assertEqual((byv["value"], byv["props"]["version"]), ("value-1", byv["v1"]))
        self.assertEqual(byv["props"]["tags"], {"env": "compat", "team": "js"})
        self.assertEqual(byv["props"]["expiresOn"], full["expect"]["exp"])
        # paging, two per page, following absolute nextLinks
        pages = self.assert_paged(self.ok(c, "list.secrets.pages"), "/secrets")
        names = [n for pg in pages for n in pg["names"] if n.startswith(p)]
        self.assertEqual(sorted(names), sorted([p + "full", p + "versions"] + [p + "page-%d" % i for i in range(5)]))
        listed = {s["name"]: s for s in self.ok(c, "list.secrets.all")}
        self.assertEqual(listed[p + "full"]["id"], "%s/secrets/%sfull" % (self.vault_url, p))
        vpages = self.assert_paged(self.ok(c, "list.versions.pages"), "/secrets/%sversions/versions" % p)
        self.assertEqual(sum(len(pg["versions"]) for pg in vpages), 5)
        self.assertEqual(len({v for pg in vpages for v in pg["versions"]}), 5)
        versions = self.ok(c, "list.versions.all")
        self.assertEqual({v["version"] for v in versions}, {byv["v1"], latest["v2"]})
        # update properties: a disabled version answers 403
        upd = self.ok(c, "update.version")
        self.assertEqual((upd["enabled"], upd["contentType"], upd["tags"]), (False, "application/json", {"updated": "yes"}))
        err = self.ok(c, "update.version.get")
        self.assertEqual((err["statusCode"], err["code"]), (403, "Forbidden"))
        self.assertEqual(err.get("innerCode"), "SecretDisabled")
        upl = self.ok(c, "update.latest")
        self.assertEqual((upl["tags"], upl["expiresOn"], upl["enabled"]), ({"latest": "1"}, full["expect"]["exp"], True))
        self.assertEqual(self.ok(c, "update.latest.get")["value"], "value-2")
        # delete: the poller finishes; visible at once under deletedsecrets, name reserved
        d = self.ok(c, "delete.poller")
        self.assertEqual(d["immediately"]["recoveryId"], "%s/deletedsecrets/%sdel" % (self.vault_url, p))
        self.assertEqual(d["result"]["tags"], {"keep": "me"})
        self.assertEqual((d["result"]["recoveryLevel"], d["result"]["recoverableDays"]), ("Recoverable+Purgeable", 90))
        self.assertEqual(d["scheduledPurgeDate"] - d["deletedOn"], 90 * 86400)
        self.rest_error(c, "delete.getSecret", 404, "SecretNotFound")
        self.rest_error(c, "delete.setSameName", 409, "Conflict", "ObjectIsDeletedButRecoverable")
        gd = self.ok(c, "delete.getDeleted")
        self.assertIsNone(gd["value"])
        self.assertEqual(gd["props"]["recoveryId"], d["immediately"]["recoveryId"])
        dpages = self.assert_paged(self.ok(c, "deleted.list.pages"), "/deletedsecrets")
        dnames = sorted(n for pg in dpages for n in pg["names"] if n.startswith(p))
        self.assertEqual(dnames, sorted([p + "del"] + [p + "gone-%d" % i for i in range(4)]))
        dall = {x["name"]: x for x in self.ok(c, "deleted.list.all")}
        self.assertEqual(dall[p + "gone-0"]["recoveryId"], "%s/deletedsecrets/%sgone-0" % (self.vault_url, p))
        # recover: the poller finishes, the secret is back and no longer under deletedsecrets
        rec = self.ok(c, "recover.poller")
        self.assertEqual(rec["name"], p + "del")
        self.assertEqual(self.ok(c, "recover.get")["value"], "to-delete")
        self.rest_error(c, "recover.getDeletedAfter", 404, "SecretNotFound")
        # purge (204) frees the name
        self.assertEqual(self.ok(c, "purge"), "undefined")
        self.rest_error(c, "purge.getDeletedAfter", 404, "SecretNotFound")
        self.assertEqual(self.ok(c, "purge.nameFree"), "reborn")
        # backup: opaque (the value is not in it); restore where the name is free, with all versions
        bk = self.ok(c, "backup")
        self.assertEqual(bk["type"], "[object Uint8Array]")
        self.assertFalse(bk["containsValue"])
        ro = self.ok(c, "restore.otherVault")
        self.assertEqual((ro["name"], ro["vaultUrl"]), (p + "bk", self.vault("jsvault")))
        rg = self.ok(c, "restore.otherVault.get")
        self.assertEqual(rg["value"], "bk-2")
        self.assertEqual(len(rg["versions"]), 2)
        self.rest_error(c, "restore.nameTaken", 409, "Conflict")
        rs = self.ok(c, "restore.sameVault")
        self.assertEqual(rs["value"], "bk-2")
        self.assertEqual(self.ok(c, "restore.tampered")["statusCode"], 400)
        # soft delete: retention per vault (7 days here), purge protection
        sd = self.ok(c, "softdelete.otherVault")
        self.assertEqual((sd["props"]["recoveryLevel"], sd["props"]["recoverableDays"]), ("CustomizedRecoverable+Purgeable", 7))
        self.assertEqual(sd["scheduledPurgeDate"] - sd["deletedOn"], 7 * 86400)
        pp = self.ok(c, "softdelete.protected")
        self.assertEqual((pp["set"]["recoveryLevel"], pp["set"]["recoverableDays"]), ("Recoverable", 90))
        err = self.ok(c, "softdelete.protected.purge")
        self.assertEqual(err["statusCode"], 403, json.dumps(err))
        self.assertEqual(self.ok(c, "softdelete.protected.recover")["name"], p + "pp")
        # every request carried the SDK's default api-version; one challenge for the whole run
        wire = self.ok(c, "wire")
        self.assertTrue(all(urllib.parse.parse_qs(urllib.parse.urlsplit(w["url"]).query).get("api-version") ==
                            [API_VERSION] for w in wire))
        self.assertEqual([w["auth"] for w in wire if w["status"] == 401], [False])

    def test_errors(self):
        base = jwt_claims(imds_token(self.up, self.resource))
        self.assertEqual(base["aud"], self.resource)
        other_tid = str(uuid.uuid4())
        variants = {
            "control": {},
            "otherIssuer": {"iss": "https://sts.windows.net/%s/" % base["tid"]},
            "otherTenant": {"iss": base["iss"].replace(base["tid"], other_tid), "tid": other_tid},
            "otherAudience": {"aud": "https://management.azure.com/"},
            "expired": {"iat": base["iat"] - 7200, "nbf": base["iat"] - 7200, "exp": base["iat"] - 3600},
        }
        tokens = {}
        for name, change in variants.items():
            claims = dict(base, **change)
            r = subprocess.run([BIN, "token", "mint", "--claims", json.dumps(claims),
                                "--state", self.up.dir], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            tokens[name] = r.stdout.strip()
        env = dict(self.up.env, MIVAULT_TEST_TOKENS=json.dumps(tokens))
        c = self.node("errors.js", {"prefix": "err-", "noRoleClientId": self.norole["clientId"],
                                    "readerClientId": self.reader["clientId"]}, env=env)
        # RBAC: no role at all; a Secrets User may read but not write or delete
        e = self.rest_error(c, "rbac.noRole.get", 403, "Forbidden", "ForbiddenByRbac")
        self.assertIn("oid=" + self.norole["objectId"], e["message"])
        self.rest_error(c, "rbac.noRole.list", 403, "Forbidden")  # the pager keeps no error details
        self.assertEqual(self.ok(c, "rbac.reader.get"), "here")
        e = self.rest_error(c, "rbac.reader.set", 403, "Forbidden", "ForbiddenByRbac")
        self.assertIn("secrets/setSecret/action", e["message"])
        self.rest_error(c, "rbac.reader.delete", 403, "Forbidden", "ForbiddenByRbac")
        # 404, 409, disabled
        e = self.rest_error(c, "notFound", 404, "SecretNotFound")
        self.assertIn("err-does-not-exist", e["message"])
        self.rest_error(c, "notFound.version", 404, "SecretNotFound")
        self.rest_error(c, "notFound.deleted", 404, "SecretNotFound")
        self.rest_error(c, "conflict.softDeleted", 409, "Conflict", "ObjectIsDeletedButRecoverable")
        self.rest_error(c, "disabled.get", 403, "Forbidden", "SecretDisabled")
        self.assertIs(self.ok(c, "disabled.listed")["enabled"], False)
        # tokens: a correctly signed control succeeds; each wrong one is a 401 the SDK surfaces
        ctl = self.ok(c, "token.control")
        self.assertEqual(ctl.get("value"), "here", json.dumps(ctl))
        for name, akv in (("otherIssuer", "AKV10032"), ("otherTenant", "AKV10032"), ("otherAudience", "AKV10022"),
                          ("expired", None)):
            r = self.ok(c, "token." + name)
            self.assertIn("error", r, name)
            err = r["error"]
            self.assertEqual((err.get("statusCode"), err.get("code")), (401, "Unauthorized"), name + json.dumps(err))
            if akv:
                self.assertIn(akv, err["message"], name)
            self.assertEqual([w["status"] for w in r["wire"]], [401, 401], name)


class JsThrottleTest(JsTest):
    """429 with Retry-After past a vault's limits; the SDK waits and its retry succeeds."""

    @classmethod
    def setUpClass(cls):
        cls.up = Up("--throttle-ops", "4", "--throttle-creates", "2")

    def test_throttled_requests_are_retried_after_retry_after(self):
        c = self.node("throttle.js", {"prefix": "thr-", "maxCalls": 12})
        for kind in ("creates", "reads"):
            r = self.ok(c, kind)
            self.assertIn(429, r["statuses"], kind)
            self.assertEqual(r["statuses"][-1], 200, kind)
            for ra in r["retryAfter"]:
                self.assertRegex(ra or "", r"^[1-9][0-9]?$", kind)
                self.assertLessEqual(int(ra), 10)
            self.assertTrue(all(isinstance(v, str) for v in r["results"]), kind)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip"), "needs root and iproute2 (ip netns)")
class JsImdsLinkLocalTest(JsCredentialTest):
    """IMDS at 169.254.169.254:80 with no identity variable at all (test_netns.NetnsUp): here
    DefaultAzureCredential sends its IMDS probe (a bare GET without query or Metadata header,
    reference §1.4) before the token request, and must get a fast answer."""

    @classmethod
    def setUpClass(cls):
        try:
            from test_netns import NetnsUp
        except ImportError as e:
            raise unittest.SkipTest("test_netns.NetnsUp not available: %s" % e)
        cls.up = NetnsUp()
        try:
            cls.uai = cls.make_identity("jsnsuai", "Key Vault Secrets Officer")
            cls.system = cls.system_principal()
            cls.authorization = None
            cls.resource = "https://" + urllib.parse.urlsplit(cls.up.env["MIVAULT_VAULT_URL"]).netloc.split(".", 1)[1]
            cls.scope = cls.resource + "/.default"
        except BaseException:
            cls.up.close()
            raise

    def test_imds_system_and_user_assigned_and_default_credential(self):
        for k in MI_SOURCE_VARS:
            self.assertNotIn(k, self.up.env)
        checks = self.run_cases("ns", ["system", "clientId", "objectId", "resourceId", "dac"], prefix=self.up.exec)
        self.assert_identity_works(checks, "system", self.system, "ns")
        for k in ("clientId", "objectId", "resourceId"):
            self.assert_identity_works(checks, k, self.uai["objectId"], "ns")
        self.assert_identity_works(checks, "dac", self.system, "ns")
        self.assertLess(self.ok(checks, "dac.elapsedMs"), 5000)

    test_app_service_protocol = None
    test_cloud_shell_msi_endpoint_post = None


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        ensure_node_modules()
    else:
        unittest.main()
