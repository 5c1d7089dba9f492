"""Vault input validation, limits, shapes and soft delete (issue 2 §6, §8)."""
import socket
import ssl
import time

from harness import MivaultTest


class VaultTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])
        self.tok = e.token(self.port, e.vault_resource())

    def kv(self, method, path, **kw):
        return self.env.kv(method, "dev", path, token=self.tok, **kw)

    def assertNothingStored(self, name):
        r = self.kv("GET", "/secrets/%s/" % name)
        self.assertAzureError(r, 404, "SecretNotFound")

    def test_malformed_json_is_400(self):
        for body in (b"{", b"[]", b'{"value": 5}', b'{"value":"a","value":"b"}', b'{"valu":"x"}', b"\xff\xfe"):
            r = self.kv("PUT", "/secrets/bad", body=body, headers={"Content-Type": "application/json"})
            self.assertAzureError(r, 400, "BadParameter")
        self.assertNothingStored("bad")

    def test_value_over_25k_is_400(self):
        r = self.kv("PUT", "/secrets/big", body={"value": "x" * (25 * 1024 + 1)})
        self.assertAzureError(r, 400, "BadParameter")
        self.assertNothingStored("big")
        r = self.kv("PUT", "/secrets/big", body={"value": "x" * (25 * 1024)})
        self.assertEqual(r.status, 200)

    def test_invalid_name_is_400(self):
        for name in ("a_b", "a.b", "x" * 128, "%C3%A9t%C3%A9"):
            r = self.kv("PUT", "/secrets/" + name, body={"value": "v"})
            self.assertEqual(r.status, 400, (name, r.body))
            self.assertEqual(r.json()["error"]["code"], "BadParameter")
        r = self.kv("GET", "/secrets")
        self.assertEqual(r.json()["value"], [])

    def test_unknown_api_version_is_400(self):
        r = self.kv("PUT", "/secrets/v", body={"value": "v"}, api="1999-01-01")
        self.assertAzureError(r, 400, "BadParameter")
        r = self.kv("PUT", "/secrets/v", body={"value": "v"}, api=None)
        self.assertAzureError(r, 400, "BadParameter")
        self.assertNothingStored("v")
        for api in ("7.0", "7.3", "7.4", "7.5", "7.6", "2025-07-01"):
            self.assertEqual(self.kv("GET", "/secrets", api=api).status, 200, api)

    def test_oversized_request_refused_without_reading_it(self):
        e = self.env
        sock = socket.create_connection(("127.0.0.1", e.server_port))
        s = e.ctx.wrap_socket(sock, server_hostname="dev.vault.localhost")
        req = ("PUT /secrets/huge?api-version=7.5 HTTP/1.1\r\nHost: dev.vault.localhost:%d\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
               % (e.server_port, self.tok)).encode()
        s.sendall(req + b'{"value":"')
        s.settimeout(5)
        t = time.time()
        data = s.recv(4096)
        self.assertLess(time.time() - t, 3)
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:100])
        s.close()
        self.assertNothingStored("huge")

    def test_versions_and_by_version(self):
        a = self.kv("PUT", "/secrets/multi", body={"value": "one"}).json()
        b = self.kv("PUT", "/secrets/multi", body={"value": "two", "contentType": "text/plain",
                                                   "tags": {"env": "test"}}).json()
        self.assertNotEqual(a["id"], b["id"])
        va = a["id"].rsplit("/", 1)[1]
        self.assertRegex(va, "^[0-9a-f]{32}$")
        self.assertTrue(a["id"].startswith("https://dev.vault.localhost:%d/secrets/multi/" % self.env.server_port))
        self.assertEqual(self.kv("GET", "/secrets/multi/" + va).json()["value"], "one")
        latest = self.kv("GET", "/secrets/multi/").json()
        self.assertEqual(latest["value"], "two")
        self.assertEqual(latest["contentType"], "text/plain")
        self.assertEqual(latest["tags"], {"env": "test"})
        attrs = latest["attributes"]
        self.assertIs(attrs["enabled"], True)
        self.assertIsInstance(attrs["created"], int)
        self.assertEqual(attrs["recoveryLevel"], "Recoverable+Purgeable")
        self.assertEqual(attrs["recoverableDays"], 90)
        r = self.kv("GET", "/secrets/multi/" + "0" * 32)
        self.assertAzureError(r, 404, "SecretNotFound")

    def test_list_paging_with_nextlink(self):
        names = ["s%02d" % i for i in range(7)]
        for n in names:
            self.assertEqual(self.kv("PUT", "/secrets/" + n, body={"value": n}).status, 200)
        seen = []
        r = self.kv("GET", "/secrets?maxresults=3")
        pages = 0
        while True:
            self.assertEqual(r.status, 200, r.body)
            page = r.json()
            pages += 1
            for item in page["value"]:
                self.assertNotIn("value", item)
                seen.append(item["id"].rsplit("/", 1)[1])
            if not page["nextLink"]:
                break
            link = page["nextLink"]
            prefix = "https://dev.vault.localhost:%d" % self.env.server_port
            self.assertTrue(link.startswith(prefix + "/secrets?"), link)
            self.assertIn("api-version=", link)
            r = self.env.https("GET", link[len(prefix):], host="dev.vault.localhost", token=self.tok)
        self.assertEqual(sorted(seen), names)
        self.assertEqual(pages, 3)
        r = self.kv("GET", "/secrets?maxresults=26")
        self.assertAzureError(r, 400, "BadParameter")

    def test_delete_recover_purge(self):
        self.kv("PUT", "/secrets/gone", body={"value": "v"})
        r = self.kv("DELETE", "/secrets/gone")
        self.assertEqual(r.status, 200, r.body)
        d = r.json()
        self.assertTrue(d["recoveryId"].endswith("/deletedsecrets/gone"))
        self.assertIsInstance(d["scheduledPurgeDate"], int)
        self.assertNotIn("value", d)
        self.assertAzureError(self.kv("GET", "/secrets/gone/"), 404, "SecretNotFound")
        self.assertEqual(self.kv("GET", "/deletedsecrets/gone").status, 200)
        e = self.assertAzureError(self.kv("PUT", "/secrets/gone", body={"value": "x"}), 409, "Conflict")
        self.assertEqual(e["innererror"]["code"], "ObjectIsDeletedButRecoverable")
        self.assertEqual(self.kv("POST", "/deletedsecrets/gone/recover", body=b"").status, 200)
        self.assertEqual(self.kv("GET", "/secrets/gone/").json()["value"], "v")
        self.kv("DELETE", "/secrets/gone")
        r = self.kv("DELETE", "/deletedsecrets/gone")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertEqual(self.kv("PUT", "/secrets/gone", body={"value": "new"}).status, 200)

    def test_disabled_secret_is_403(self):
        self.kv("PUT", "/secrets/off", body={"value": "v", "attributes": {"enabled": False}})
        e = self.assertAzureError(self.kv("GET", "/secrets/off/"), 403, "Forbidden")
        self.assertEqual(e["innererror"]["code"], "SecretDisabled")

    def test_every_reply_has_request_id(self):
        r = self.env.kv("GET", "dev", "/secrets")
        self.assertEqual(r.status, 401)
        self.assertRegex(r.header("x-ms-request-id") or "", "^[0-9a-f-]{36}$")

    def test_unknown_vault_is_404_after_auth(self):
        r = self.env.kv("GET", "nosuch", "/secrets", token=self.tok)
        self.assertEqual(r.status, 404, r.body)
        r = self.env.kv("GET", "nosuch", "/secrets")
        self.assertEqual(r.status, 401)
