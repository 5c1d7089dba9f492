"""Debian's python3-azure (azure-keyvault-secrets 4.7.0b1, api-version 7.3), unchanged, with
ManagedIdentityCredential: every SecretClient operation, paging across several pages, the pollers,
backup/restore, and soft delete as Azure has it (recoveryLevel/recoverableDays, custom retention,
purge protection, names reserved while deleted).

Vaults of this class's `mivault up`: dev (default retention 90 days), other (--retention-days 7),
compat (--enable-purge-protection). localvm's identity is Secrets Officer on all three.
A response hook (a documented azure-core option) records what went over the wire.
"""
from compat import CompatTest

DAY = 86400


class PythonSecretsTest(CompatTest):
    @classmethod
    def prepare(cls):
        up = cls.up
        up.cli("keyvault", "create", "--name", "other", "--retention-days", "7")
        up.cli("keyvault", "create", "--name", "compat", "--enable-purge-protection")
        principal = up.cli("vm", "show", "--name", "localvm")["identity"]["principalId"]
        for v in ("other", "compat"):
            up.cli("role", "assignment", "create", "--assignee", principal, "--role", "Key Vault Secrets Officer",
                   "--scope", "vault:" + v)

    def client_program(self, code, **env):
        return self.py_json('''
cred = ManagedIdentityCredential()
c = SecretClient(VAULT, cred, raw_response_hook=hook)
''' + code, env=dict(self.up.env, **env))

    def test_set_with_attributes_then_get_latest_and_by_version(self):
        out = self.client_program('''
now = int(time.time())
nbf = datetime.datetime.fromtimestamp(now - 3600, datetime.timezone.utc)
exp = datetime.datetime.fromtimestamp(now + 30 * 86400, datetime.timezone.utc)
s1 = c.set_secret("full", "value-1", content_type="text/plain", tags={"env": "test", "owner": "py"},
                  enabled=True, not_before=nbf, expires_on=exp)
p = s1.properties
out["set"] = {"value": s1.value, "ct": p.content_type, "tags": p.tags, "enabled": p.enabled,
              "nbf": int(p.not_before.timestamp()), "exp": int(p.expires_on.timestamp()),
              "created": int(p.created_on.timestamp()), "level": p.recovery_level, "days": p.recoverable_days,
              "version": p.version, "id": s1.id, "vault_url": p.vault_url, "name": s1.name}
out["now"], out["nbf"], out["exp"] = now, int(nbf.timestamp()), int(exp.timestamp())
s2 = c.set_secret("full", "value-2")
out["v2"] = s2.properties.version
g = c.get_secret("full")
out["latest"] = {"value": g.value, "version": g.properties.version, "ct": g.properties.content_type,
                 "tags": g.properties.tags}
g1 = c.get_secret("full", p.version)
out["by_version"] = {"value": g1.value, "ct": g1.properties.content_type, "tags": g1.properties.tags,
                     "nbf": int(g1.properties.not_before.timestamp())}
out["case"] = c.get_secret("FULL").value
# a 25 KiB value whatever its characters (json.dumps sends non-ASCII as \\uXXXX)
big = "\\u00e9" * 12800
out["big"] = c.get_secret(c.set_secret("big", big).name).value == big
out["paths"] = [(w["method"], w["url"].split("?")[0].split(":", 2)[2]) for w in wire if w["status"] == 200][:4]
''')
        s = out["set"]
        self.assertEqual(s["value"], "value-1")
        self.assertEqual(s["ct"], "text/plain")
        self.assertEqual(s["tags"], {"env": "test", "owner": "py"})
        self.assertTrue(s["enabled"])
        self.assertEqual((s["nbf"], s["exp"]), (out["nbf"], out["exp"]))
        self.assertLessEqual(abs(s["created"] - out["now"]), 5)
        self.assertEqual((s["level"], s["days"]), ("Recoverable+Purgeable", 90))
        self.assertRegex(s["version"], "^[0-9a-f]{32}$")
        self.assertEqual(s["id"], self.up.vault_url("dev") + "/secrets/full/" + s["version"])
        self.assertEqual(s["vault_url"], self.up.vault_url("dev"))
        self.assertEqual(out["latest"], {"value": "value-2", "version": out["v2"], "ct": None, "tags": None})
        self.assertEqual(out["by_version"], {"value": "value-1", "ct": "text/plain",
                                             "tags": {"env": "test", "owner": "py"}, "nbf": out["nbf"]})
        self.assertEqual(out["case"], "value-2")
        self.assertTrue(out["big"])
        # "get latest" is GET /secrets/{name}/ (trailing slash), by version /secrets/{name}/{version}
        port = str(self.up.server_port)
        self.assertEqual(out["paths"], [["PUT", port + "/secrets/full"], ["PUT", port + "/secrets/full"],
                                        ["GET", port + "/secrets/full/"],
                                        ["GET", port + "/secrets/full/" + s["version"]]])

    def test_list_secrets_and_versions_across_pages(self):
        before = len(self.up.audit())
        out = self.client_program('''
names = ["page-%02d" % i for i in range(8)]
for n in names:
    c.set_secret(n, "x", tags={"n": n})
for i in range(7):
    c.set_secret("versioned", "v%d" % i)
wire.clear()
pager = c.list_properties_of_secrets(max_page_size=3).by_page()
out["pages"], out["links"] = [], []
for page in pager:
    out["pages"].append([p.name for p in page])
    out["links"].append(pager.continuation_token)
out["secret_requests"] = [w["url"] for w in wire if w["status"] == 200]
out["all"] = [p.name for p in c.list_properties_of_secrets()]
out["item"] = [{"id": p.id, "version": p.version, "tags": p.tags, "enabled": p.enabled, "level": p.recovery_level}
               for p in c.list_properties_of_secrets() if p.name == "page-03"]
pager = c.list_properties_of_secret_versions("versioned", max_page_size=2).by_page()
out["vpages"] = [[p.version for p in page] for page in pager]
out["versions_set"] = sorted(p.version for p in c.list_properties_of_secret_versions("versioned"))
''')
        pages = out["pages"]
        listed = [n for p in pages for n in p]
        self.assertGreaterEqual(len(pages), 3)
        self.assertTrue(all(1 <= len(p) <= 3 for p in pages), pages)
        self.assertEqual(len(listed), len(set(listed)), "a name listed twice across pages")
        self.assertEqual(sorted(listed), sorted(out["all"]))
        self.assertTrue(set("page-%02d" % i for i in range(8)) <= set(listed))
        # absolute nextLinks on the vault's own host:port, carrying api-version, maxresults and a
        # $skiptoken; the last page says null; each page was one request
        links = out["links"]
        self.assertIsNone(links[-1])
        for link in links[:-1]:
            self.assertTrue(link.startswith(self.up.vault_url("dev") + "/secrets?"), link)
            for part in ("api-version=", "maxresults=3", "$skiptoken="):
                self.assertIn(part, link)
        self.assertEqual(len(out["secret_requests"]), len(pages))
        self.assertIn("maxresults=3", out["secret_requests"][0])
        item = out["item"][0]
        self.assertEqual(item["id"], self.up.vault_url("dev") + "/secrets/page-03")  # items: no version
        self.assertEqual((item["version"], item["tags"], item["enabled"], item["level"]),
                         (None, {"n": "page-03"}, True, "Recoverable+Purgeable"))
        vpages = out["vpages"]
        self.assertEqual([len(p) for p in vpages], [2, 2, 2, 1])
        self.assertEqual(sorted(v for p in vpages for v in p), out["versions_set"])
        self.assertEqual(len(set(out["versions_set"])), 7)
        # the server saw the same number of list requests (audit: readMetadata, 200)
        lists = [a for a in self.up.audit()[before:]
                 if a["action"].endswith("/secrets/readMetadata/action") and a["status"] == 200]
        self.assertGreaterEqual(len(lists), len(pages) + 1 + len(vpages) + 1)

    def test_update_properties_latest_and_by_version(self):
        out = self.client_program('''
v1 = c.set_secret("upd", "one", content_type="a", tags={"k": "1"}).properties.version
v2 = c.set_secret("upd", "two").properties.version
exp = datetime.datetime.fromtimestamp(int(time.time()) + 7 * 86400, datetime.timezone.utc)
u = c.update_secret_properties("upd", content_type="application/json", tags={"k": "2"}, expires_on=exp)
out["latest"] = {"version": u.version, "ct": u.content_type, "tags": u.tags, "exp": int(u.expires_on.timestamp())}
out["exp"] = int(exp.timestamp())
u1 = c.update_secret_properties("upd", v1, enabled=False)
out["v1"] = {"version": u1.version, "enabled": u1.enabled, "ct": u1.content_type, "tags": u1.tags}
out["v1_get"] = capture(lambda: c.get_secret("upd", v1).value)
g = c.get_secret("upd")
out["get"] = {"value": g.value, "ct": g.properties.content_type, "tags": g.properties.tags}
out["versions"] = {p.version: p.enabled for p in c.list_properties_of_secret_versions("upd")}
out["v1id"], out["v2id"] = v1, v2
out["patch"] = [w["url"].split("?")[0].rsplit("/secrets/", 1)[1] for w in wire if w["method"] == "PATCH" and w["status"] == 200]
''')
        self.assertEqual(out["latest"], {"version": out["v2id"], "ct": "application/json", "tags": {"k": "2"},
                                         "exp": out["exp"]})
        self.assertEqual(out["v1"], {"version": out["v1id"], "enabled": False, "ct": "a", "tags": {"k": "1"}})
        e = out["v1_get"]["error"]
        self.assertEqual((e["status"], e["code"], e["inner"]), (403, "Forbidden", "SecretDisabled"))
        self.assertEqual(out["get"], {"value": "two", "ct": "application/json", "tags": {"k": "2"}})
        self.assertEqual(out["versions"], {out["v1id"]: False, out["v2id"]: True})
        self.assertEqual(out["patch"], ["upd/", "upd/" + out["v1id"]])  # latest = trailing slash

    def test_delete_recover_purge_with_pollers(self):
        out = self.client_program('''
for n in ("del-a", "del-b", "del-c"):
    c.set_secret(n, "secret-" + n, tags={"t": n})
wire.clear()
t0 = time.time()
poller = c.begin_delete_secret("del-a")
poller.wait()
out["delete"] = {"elapsed": time.time() - t0, "done": poller.done(), "recovery_id": poller.result().recovery_id,
                 "name": poller.result().name}
out["delete_wire"] = [(w["method"], w["url"].split("?")[0].split("/", 3)[3], w["status"]) for w in wire]
out["gone"] = capture(lambda: c.get_secret("del-a").value)
d = c.get_deleted_secret("del-a")
out["deleted"] = {"name": d.name, "rid": d.recovery_id, "deleted": int(d.deleted_date.timestamp()),
                  "purge": int(d.scheduled_purge_date.timestamp()), "level": d.properties.recovery_level,
                  "days": d.properties.recoverable_days, "tags": d.properties.tags}
out["now"] = int(time.time())
for n in ("del-b", "del-c"):
    c.begin_delete_secret(n).wait()
pager = c.list_deleted_secrets(max_page_size=2).by_page()
out["deleted_pages"] = [[(x.name, x.recovery_id, x.deleted_date is not None) for x in page] for page in pager]
wire.clear()
t0 = time.time()
poller = c.begin_recover_deleted_secret("del-a")
poller.wait()
out["recover"] = {"elapsed": time.time() - t0, "done": poller.done(), "name": poller.result().name}
out["recover_wire"] = [(w["method"], w["url"].split("?")[0].split("/", 3)[3], w["status"]) for w in wire]
out["recovered"] = c.get_secret("del-a").value
out["not_deleted"] = capture(lambda: c.get_deleted_secret("del-a").name)
wire.clear()
out["purge"] = capture(lambda: c.purge_deleted_secret("del-b"))
out["purge_status"] = [w["status"] for w in wire]
out["purged"] = capture(lambda: c.get_deleted_secret("del-b").name)
out["reuse"] = c.set_secret("del-b", "fresh").value
''')
        d = out["delete"]
        self.assertTrue(d["done"])
        self.assertEqual(d["name"], "del-a")
        self.assertEqual(d["recovery_id"], self.up.vault_url("dev") + "/deletedsecrets/del-a")
        # visible at once under /deletedsecrets: the poller's first GET is a 200, no sleep
        self.assertEqual([tuple(w) for w in out["delete_wire"]],
                         [("DELETE", "secrets/del-a", 200), ("GET", "deletedsecrets/del-a", 200)])
        self.assertLess(d["elapsed"], 1.5)
        self.assertEqual(out["gone"]["error"]["code"], "SecretNotFound")
        dd = out["deleted"]
        self.assertEqual((dd["name"], dd["rid"], dd["level"], dd["days"], dd["tags"]),
                         ("del-a", d["recovery_id"], "Recoverable+Purgeable", 90, {"t": "del-a"}))
        self.assertLessEqual(abs(dd["deleted"] - out["now"]), 5)
        self.assertEqual(dd["purge"] - dd["deleted"], 90 * DAY)
        pages = out["deleted_pages"]
        self.assertGreaterEqual(len(pages), 2)
        self.assertTrue(all(len(p) <= 2 for p in pages))
        flat = {x[0]: x for p in pages for x in p}
        self.assertEqual(set(flat), {"del-a", "del-b", "del-c"})
        self.assertEqual(flat["del-c"][1], self.up.vault_url("dev") + "/deletedsecrets/del-c")
        r = out["recover"]
        self.assertEqual((r["done"], r["name"]), (True, "del-a"))
        self.assertEqual([tuple(w) for w in out["recover_wire"]],
                         [("POST", "deletedsecrets/del-a/recover", 200), ("GET", "secrets/del-a/", 200)])
        self.assertLess(r["elapsed"], 1.5)
        self.assertEqual(out["recovered"], "secret-del-a")
        self.assertEqual(out["not_deleted"]["error"]["status"], 404)
        self.assertEqual(out["purge"], {"ok": None})
        self.assertEqual(out["purge_status"], [204])
        self.assertEqual(out["purged"]["error"]["code"], "SecretNotFound")
        self.assertEqual(out["reuse"], "fresh")

    def test_backup_and_restore(self):
        out = self.client_program('''
c.set_secret("bk", "first", content_type="ct", tags={"a": "b"})
c.set_secret("bk", "second-value-xyz")
versions = sorted(p.version for p in c.list_properties_of_secret_versions("bk"))
blob = c.backup_secret("bk")
out["blob_len"] = len(blob)
out["opaque"] = b"second-value-xyz" not in blob and b"first" not in blob
out["exists"] = capture(lambda: c.restore_secret_backup(blob).name)
# into another vault, where the name is free
o = SecretClient(vault_url("other"), cred)
r = o.restore_secret_backup(blob)
out["other"] = {"name": r.name, "id": r.id, "level": r.recovery_level, "days": r.recoverable_days,
                "value": o.get_secret("bk").value,
                "versions": sorted(p.version for p in o.list_properties_of_secret_versions("bk"))}
out["versions"] = versions
# into the same vault once the name is free again: delete, purge, restore
c.begin_delete_secret("bk").wait()
out["while_deleted"] = capture(lambda: c.restore_secret_backup(blob).name)
c.purge_deleted_secret("bk")
r = c.restore_secret_backup(blob)
g = c.get_secret("bk")
out["same"] = {"name": r.name, "value": g.value, "ct": g.properties.content_type,
               "versions": sorted(p.version for p in c.list_properties_of_secret_versions("bk"))}
first = [p for p in c.list_properties_of_secret_versions("bk") if p.version != g.properties.version][0]
fv = c.get_secret("bk", first.version)
out["first"] = {"value": fv.value, "ct": fv.properties.content_type, "tags": fv.properties.tags}
''')
        self.assertTrue(out["opaque"])
        e = out["exists"]["error"]
        self.assertEqual((e["type"], e["status"], e["code"]), ("ResourceExistsError", 409, "Conflict"))
        o = out["other"]
        self.assertEqual((o["name"], o["value"], o["versions"]), ("bk", "second-value-xyz", out["versions"]))
        self.assertTrue(o["id"].startswith(self.up.vault_url("other") + "/secrets/bk/"))
        self.assertEqual((o["level"], o["days"]), ("CustomizedRecoverable+Purgeable", 7))  # the target vault's
        e = out["while_deleted"]["error"]
        self.assertEqual((e["status"], e["code"]), (409, "Conflict"), e)
        s = out["same"]
        self.assertEqual((s["name"], s["value"], s["versions"]), ("bk", "second-value-xyz", out["versions"]))
        self.assertEqual(out["first"], {"value": "first", "ct": "ct", "tags": {"a": "b"}})

    def test_soft_delete_custom_retention_and_names_reserved(self):
        out = self.client_program('''
o = SecretClient(vault_url("other"), cred)
s = o.set_secret("short", "x")
out["set"] = [s.properties.recovery_level, s.properties.recoverable_days]
g = o.get_secret("short")
out["get"] = [g.properties.recovery_level, g.properties.recoverable_days]
d = o.begin_delete_secret("short").result()
out["deleted"] = [d.properties.recovery_level, d.properties.recoverable_days,
                  int(d.scheduled_purge_date.timestamp()) - int(d.deleted_date.timestamp())]
out["reserved_set"] = capture(lambda: o.set_secret("short", "again").name)
out["reserved_set_case"] = capture(lambda: o.set_secret("SHORT", "again").name)
out["listed"] = [x.name for x in o.list_deleted_secrets()]
out["live"] = [x.name for x in o.list_properties_of_secrets()]
''')
        self.assertEqual(out["set"], ["CustomizedRecoverable+Purgeable", 7])
        self.assertEqual(out["get"], ["CustomizedRecoverable+Purgeable", 7])
        self.assertEqual(out["deleted"], ["CustomizedRecoverable+Purgeable", 7, 7 * DAY])
        for k in ("reserved_set", "reserved_set_case"):
            e = out[k]["error"]
            self.assertEqual((e["type"], e["status"], e["code"], e["inner"]),
                             ("ResourceExistsError", 409, "Conflict", "ObjectIsDeletedButRecoverable"), e)
        self.assertIn("short", out["listed"])
        self.assertNotIn("short", out["live"])

    def test_purge_protection(self):
        out = self.client_program('''
p = SecretClient(vault_url("compat"), cred)
s = p.set_secret("kept", "x")
out["level"] = [s.properties.recovery_level, s.properties.recoverable_days]
d = p.begin_delete_secret("kept")
d.wait()
out["deleted"] = d.result().recovery_id
out["purge"] = capture(lambda: p.purge_deleted_secret("kept"))
out["still_deleted"] = p.get_deleted_secret("kept").name
out["reserved"] = capture(lambda: p.set_secret("kept", "y").name)
r = p.begin_recover_deleted_secret("kept")
r.wait()
out["recovered"] = p.get_secret("kept").value
''')
        self.assertEqual(out["level"], ["Recoverable", 90])
        self.assertTrue(out["deleted"].endswith("/deletedsecrets/kept"))
        e = out["purge"]["error"]
        self.assertEqual((e["type"], e["status"], e["code"]), ("HttpResponseError", 403, "Forbidden"), e)
        self.assertIn("purge protection is enabled", e["message"])
        self.assertEqual(out["still_deleted"], "kept")
        self.assertEqual(out["reserved"]["error"]["status"], 409)
        self.assertEqual(out["recovered"], "x")

    def test_every_api_version_of_the_sdk(self):
        out = self.client_program('''
from azure.keyvault.secrets import ApiVersion
for v in ApiVersion:
    k = SecretClient(VAULT, cred, api_version=v.value)
    k.set_secret("apiv", v.value)
    out[v.value] = [k.get_secret("apiv").value, len(list(k.list_properties_of_secret_versions("apiv"))) > 0]
''')
        self.assertIn("7.3", out)
        for v, res in out.items():
            self.assertEqual(res, [v, True], v)
