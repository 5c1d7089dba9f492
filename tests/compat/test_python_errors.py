"""Debian's python3-azure, unchanged: the error paths as the SDK surfaces them, with Azure's codes,
and the 429 throttle that the SDK's retry policy rides out by honouring Retry-After.

401s come from tokens that are correctly signed but wrong: a credential class in the program hands
the unchanged SecretClient (challenge verification on) a token minted by `mivault token mint` from
a real token's claims with one claim changed, or a real IMDS token for another resource.
"""
import json
import time

from compat import CompatTest


class PythonErrorsTest(CompatTest):
    @classmethod
    def prepare(cls):
        up = cls.up
        cls.reader = up.cli("identity", "create", "--name", "pyreader")
        cls.nobody = up.cli("identity", "create", "--name", "pynobody")
        up.cli("vm", "identity", "assign", "--name", "localvm", "--user-assigned", "pyreader",
               "--user-assigned", "pynobody")
        up.cli("role", "assignment", "create", "--assignee", cls.reader["properties"]["principalId"],
               "--role", "Key Vault Secrets User", "--scope", "vault:dev")
        cls.resource = "https://vault.localhost:%d" % up.server_port

    def program(self, code, **env):
        return self.py_json('''
cred = ManagedIdentityCredential()
c = SecretClient(VAULT, cred, raw_response_hook=hook)
''' + code, env=dict(self.up.env, **env))

    def assertError(self, res, typ, status, code, inner=None):
        self.assertIn("error", res, res)
        e = res["error"]
        self.assertEqual((e["type"], e["status"], e["code"]), (typ, status, code), e)
        if inner:
            self.assertEqual(e["inner"], inner, e)
        return e

    def test_403_for_an_identity_without_a_role_and_for_a_reader_that_writes(self):
        out = self.program('''
c.set_secret("exists", "v")
nobody = SecretClient(VAULT, ManagedIdentityCredential(client_id=os.environ["NOBODY"]))
reader = SecretClient(VAULT, ManagedIdentityCredential(client_id=os.environ["READER"]))
out["nobody_get"] = capture(lambda: nobody.get_secret("exists").value)
out["reader_get"] = capture(lambda: reader.get_secret("exists").value)
out["reader_list"] = capture(lambda: len(list(reader.list_properties_of_secrets())))
out["reader_set"] = capture(lambda: reader.set_secret("exists", "w").value)
out["reader_delete"] = capture(lambda: reader.begin_delete_secret("exists").result().name)
''', NOBODY=self.nobody["properties"]["clientId"], READER=self.reader["properties"]["clientId"])
        e = self.assertError(out["nobody_get"], "HttpResponseError", 403, "Forbidden", "ForbiddenByRbac")
        self.assertIn("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'", e["message"])
        self.assertIn("oid=" + self.nobody["properties"]["principalId"], e["message"])
        self.assertEqual(out["reader_get"], {"ok": "v"})
        self.assertGreaterEqual(out["reader_list"]["ok"], 1)
        e = self.assertError(out["reader_set"], "HttpResponseError", 403, "Forbidden", "ForbiddenByRbac")
        self.assertIn("Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'", e["message"])
        self.assertIn("/vaults/dev/secrets/exists'", e["message"])
        e = self.assertError(out["reader_delete"], "HttpResponseError", 403, "Forbidden", "ForbiddenByRbac")
        self.assertIn("secrets/delete'", e["message"])

    def test_404_409_and_403_disabled(self):
        out = self.program('''
out["missing"] = capture(lambda: c.get_secret("never-set").value)
out["missing_version"] = capture(lambda: c.get_secret("never-set", "0" * 32).value)
out["missing_deleted"] = capture(lambda: c.get_deleted_secret("never-set").name)
out["missing_delete"] = capture(lambda: c.begin_delete_secret("never-set").result().name)
c.set_secret("soft", "v")
c.begin_delete_secret("soft").wait()
out["conflict"] = capture(lambda: c.set_secret("soft", "again").value)
c.set_secret("off", "hidden", enabled=False)
out["disabled"] = capture(lambda: c.get_secret("off").value)
out["disabled_props"] = [p.enabled for p in c.list_properties_of_secret_versions("off")]
''')
        for k in ("missing", "missing_version", "missing_deleted", "missing_delete"):
            with self.subTest(k):
                e = self.assertError(out[k], "ResourceNotFoundError", 404, "SecretNotFound")
                self.assertIn("never-set", e["message"])
        e = self.assertError(out["conflict"], "ResourceExistsError", 409, "Conflict", "ObjectIsDeletedButRecoverable")
        self.assertIn("deleted but recoverable state", e["message"])
        e = self.assertError(out["disabled"], "HttpResponseError", 403, "Forbidden", "SecretDisabled")
        self.assertNotIn("hidden", e["message"])
        self.assertEqual(out["disabled_props"], [False])

    def test_400_for_a_tampered_backup(self):
        out = self.program('''
c.set_secret("bk", "v")
blob = bytearray(c.backup_secret("bk"))
blob[len(blob) // 2] ^= 1
out["tampered"] = capture(lambda: c.restore_secret_backup(bytes(blob)).name)
out["garbage"] = capture(lambda: c.restore_secret_backup(b"not a backup").name)
''')
        self.assertError(out["tampered"], "HttpResponseError", 400, "BadParameter")
        self.assertError(out["garbage"], "HttpResponseError", 400, "BadParameter")

    def test_401_for_another_issuer_another_audience_or_an_expired_token(self):
        real = self.up.cli("token", "get", "--resource", self.resource)["accessToken"]
        import base64
        p = real.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

        def mint(**over):
            c = dict(claims)
            c.update(over)
            return self.up.cli_text("token", "mint", "--claims", json.dumps(c))

        now = int(time.time())
        tokens = {
            "control": mint(),  # the same claims re-signed: accepted, so only the changed claim matters below
            "issuer": mint(iss="https://sts.windows.net/%s/" % claims["tid"]),
            "tenant": mint(iss=claims["iss"].replace(claims["tid"], "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                           tid="72f988bf-86f1-41af-91ab-2d7cd011db47"),
            "audience": mint(aud="https://storage.azure.com/"),
            # DESIGN: the vault also takes Key Vault's public audience, as tokens for Azure carry it
            "azure_audience": mint(aud="https://vault.azure.net"),
            "expired": mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        }
        out = self.program('''
class Fixed:
    """A TokenCredential that always returns the same token, whatever it is asked for."""
    def __init__(self, token):
        self.token, self.scopes = token, []
    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

c.set_secret("target", "v")
tokens = json.loads(os.environ["TOKENS"])
# a real token from the agent, for Azure Resource Manager instead of the vault
tokens["arm"] = cred.get_token("https://management.core.windows.net//.default").token
for label, tok in tokens.items():
    f = Fixed(tok)
    k = SecretClient(VAULT, f)
    r = out[label] = capture(lambda: k.get_secret("target").value)
    r["scopes"] = f.scopes
''', TOKENS=json.dumps(tokens))
        self.assertEqual(out["control"]["ok"], "v")
        self.assertEqual(out["control"]["scopes"], [[self.resource + "/.default"]])
        self.assertEqual(out["azure_audience"]["ok"], "v")
        for label, fragment in (("issuer", "AKV10032: Invalid issuer"), ("tenant", "AKV10032: Invalid issuer"),
                                ("audience", "AKV10022: Invalid audience"), ("arm", "AKV10022: Invalid audience"),
                                ("expired", "AKV10017: The token has expired")):
            with self.subTest(label):
                e = self.assertError(out[label], "ClientAuthenticationError", 401, "Unauthorized")
                self.assertIn(fragment, e["message"])
        self.assertIn("found: https://management.core.windows.net/.", out["arm"]["error"]["message"])


class PythonThrottleTest(CompatTest):
    """A second `mivault up` with low limits: 5 transactions and 2 creates per vault per 10 s."""
    OPS, CREATES = 5, 2

    up_args = ("--throttle-ops", str(OPS), "--throttle-creates", str(CREATES))

    @classmethod
    def prepare(cls):
        principal = cls.up.cli("vm", "show", "--name", "localvm")["identity"]["principalId"]
        cls.up.cli("keyvault", "create", "--name", "other")
        cls.up.cli("role", "assignment", "create", "--assignee", principal, "--role", "Key Vault Secrets Officer",
                   "--scope", "vault:other")

    def test_429_with_retry_after_then_the_sdk_retries_and_succeeds(self):
        # Both limits are exceeded in the same 10-second window by two threads; each request gets
        # 429 with Retry-After (the seconds left in the window), sleeps that long inside the SDK's
        # retry policy and succeeds in the next window. The cost is one wait of at most 10 s.
        out = self.py_json('''
cred = ManagedIdentityCredential()
c = SecretClient(VAULT, cred, raw_response_hook=hook)
o = SecretClient(vault_url("other"), cred, raw_response_hook=hook)
c.set_secret("seed", "v")          # challenge and token first (one create)
o.set_secret("elsewhere", "v")
# leave at least 3 s of the current window for the burst
phase = time.time() % 10
if phase > 7:
    time.sleep(10.05 - phase)
wire.clear()
results = {}
def creates():
    results["creates"] = [c.set_secret("burst-%d" % i, "v").name for i in range(int(os.environ["CREATES"]) + 1)]
def reads():
    results["reads"] = [c.get_secret("seed").value for i in range(int(os.environ["OPS"]) + 1)]
threads = [threading.Thread(target=creates), threading.Thread(target=reads)]
t0 = time.time()
for t in threads:
    t.start()
# while dev's requests wait out their Retry-After, the other vault is not throttled
while sum(1 for w in list(wire) if w["status"] == 429) < 2 and time.time() - t0 < 5:
    time.sleep(0.01)
window = int(time.time() // 10)
out["other"] = o.get_secret("elsewhere").value
out["other_same_window"] = int(time.time() // 10) == window
for t in threads:
    t.join()
out["elapsed"] = time.time() - t0
out["results"] = results
out["wire"] = wire
''', env=dict(self.up.env, OPS=str(self.OPS), CREATES=str(self.CREATES)), timeout=60)
        self.assertEqual(out["results"]["reads"], ["v"] * (self.OPS + 1))
        self.assertEqual(len(out["results"]["creates"]), self.CREATES + 1)
        wire = out["wire"]
        throttled = [w for w in wire if w["status"] == 429]
        self.assertEqual(sorted(w["method"] for w in throttled), ["GET", "PUT"], throttled)
        for w in throttled:
            ra = int(w["retry_after"])
            self.assertTrue(1 <= ra <= 10, w)
            # the SDK waited at least Retry-After, then the same request succeeded
            again = [x for x in wire if x["url"] == w["url"] and x["method"] == w["method"] and x["t"] > w["t"]]
            self.assertTrue(again, w)
            self.assertEqual(again[0]["status"], 200)
            self.assertGreaterEqual(again[0]["t"] - w["t"], ra - 1)
            self.assertGreaterEqual(int(again[0]["t"] // 10), int(w["t"] // 10) + 1)  # next window
        self.assertEqual(out["other"], "v")
        if out["other_same_window"]:
            other = [w for w in wire if "//other." in w["url"]]
            self.assertEqual([w["status"] for w in other], [200])
        self.assertLess(out["elapsed"], 15)
        # the server's view: never more than the limits admitted in one window
        per_window = {}
        for a in self.up.audit():
            if a["plane"] == "vault" and a["status"] == 200 and "/vaults/dev" in a["scope"]:
                key = (a["time"] // 10, a["action"].endswith("setSecret/action"))
                per_window[key] = per_window.get(key, 0) + 1
        for (win, is_create), n in per_window.items():
            self.assertLessEqual(n, self.CREATES if is_create else self.OPS, (win, is_create))
        self.assertTrue(any(a["status"] == 429 for a in self.up.audit()))
