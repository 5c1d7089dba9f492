"""The agent's IMDS endpoint, exactly as reference §1 describes it."""
import collections
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import BIN, MivaultTest


class ImdsTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        e.cli("identity", "create", "--name", "uai1")
        self.uai = e.cli("identity", "show", "--name", "uai1")
        vm = e.vm("vm1", uai=["uai1"])
        self.vm = vm
        _, self.port = e.start_agent("vm1", join=vm["joinToken"])

    def test_metadata_header_required_fast(self):
        e = self.env
        t = time.time()
        r = e.imds(self.port, "https://vault.azure.net", headers={})
        self.assertLess(time.time() - t, 0.3)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], "bad_request_102")
        # the JS probe: no query string at all
        r = e.imds(self.port, query={}, headers={})
        self.assertEqual(r.status, 400)
        self.assertIn("error", r.json())
        r = e.imds(self.port, "https://vault.azure.net", headers={"Metadata": "false"})
        self.assertEqual(r.status, 400)

    def raw(self, headers, host=None):
        """A token request with exactly these headers (repeats allowed) and Host."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.putrequest("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                     "https%3A%2F%2Fvault.azure.net", skip_host=host is not None)
        if host is not None:
            c.putheader("Host", host)
        for k, v in headers:
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        status, body = r.status, r.read()
        c.close()
        return status, json.loads(body)

    def test_proxy_headers_rejected(self):
        """Issue 8 point 6: Forwarded, X-Real-IP and Via are refused as X-Forwarded-For is."""
        for h, v in (("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=1.2.3.4"),
                     ("X-Real-IP", "1.2.3.4"), ("Via", "1.1 proxy"), ("x-real-ip", "")):
            status, body = self.raw([("Metadata", "true"), (h, v)])
            self.assertEqual(status, 400, h)
            self.assertEqual(body["error"], "invalid_request", h)
            self.assertIn("error_description", body)
        self.assertEqual(self.raw([("Metadata", "true")])[0], 200)

    def test_duplicate_metadata_rejected(self):
        for pair in (("true", "true"), ("true", "false"), ("false", "true")):
            status, body = self.raw([("Metadata", pair[0]), ("Metadata", pair[1])])
            self.assertEqual(status, 400, pair)
            self.assertEqual(body["error"], "invalid_request", pair)

    def test_foreign_host_rejected(self):
        """Issue 8 point 6: a DNS-rebinding page sends its own name as Host."""
        for host in ("evil.example:%d" % self.port, "evil.example", "127.0.0.1:1",
                     "127.0.0.1.evil.example:%d" % self.port):
            status, body = self.raw([("Metadata", "true")], host=host)
            self.assertEqual(status, 400, host)
            self.assertEqual(body["error"], "invalid_request", host)
        # every route, not only the token
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", "/metadata/instance?api-version=2021-02-01",
                  headers={"Metadata": "true", "Host": "evil.example:%d" % self.port})
        r = c.getresponse()
        self.assertEqual(r.status, 400)
        r.read()
        c.close()
        for host in ("127.0.0.1:%d" % self.port, "localhost:%d" % self.port,
                     "169.254.169.254:%d" % self.port):
            self.assertEqual(self.raw([("Metadata", "true")], host=host)[0], 200, host)

    def test_x_forwarded_for_rejected(self):
        r = self.env.imds(self.port, "https://vault.azure.net", headers={"Metadata": "true", "X-Forwarded-For": "1.2.3.4"})
        self.assertEqual(r.status, 400)
        self.assertIn("error", r.json())

    def test_api_version_checked(self):
        e = self.env
        for q in ({"resource": "https://vault.azure.net"},
                  {"resource": "https://vault.azure.net", "api-version": "2017-01-01"},
                  {"resource": "https://vault.azure.net", "api-version": "banana"}):
            r = e.imds(self.port, query=q)
            self.assertEqual(r.status, 400, q)
            self.assertIn("error", r.json())

    def test_missing_resource_and_duplicates(self):
        e = self.env
        r = e.imds(self.port, query={"api-version": "2018-02-01"})
        self.assertEqual(r.status, 400)
        r = e.imds(self.port, path="/metadata/identity/oauth2/token?api-version=2018-02-01&resource=a&resource=b", query={})
        self.assertEqual(r.status, 400)

    def test_fields_are_strings_and_resource_echoed_verbatim(self):
        e = self.env
        for res in ("https://vault.azure.net", "https://vault.azure.net/", "https://management.core.windows.net/"):
            r = e.imds(self.port, query={"api-version": "2018-02-01", "resource": res, "xms_cc": "cp1",
                                         "token_sha256_to_refresh": "abc", "bypass_cache": "true"},
                       headers={"Metadata": "true", "Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(r.status, 200, r.body)
            b = r.json()
            self.assertEqual(b["resource"], res)
            self.assertTrue(all(isinstance(v, str) for v in b.values()), b)
            self.assertEqual(b["token_type"], "Bearer")
            self.assertAlmostEqual(int(b["expires_on"]) - int(time.time()), int(b["expires_in"]), delta=5)
            self.assertTrue(r.header("Content-Type").startswith("application/json"))

    def test_trailing_slash_path(self):
        r = self.env.imds(self.port, "https://vault.azure.net", path="/metadata/identity/oauth2/token/")
        self.assertEqual(r.status, 200, r.body)

    def test_user_assigned_selection(self):
        e = self.env
        u = self.uai["properties"]
        from harness import jwt_parts
        for sel in ({"client_id": u["clientId"]}, {"object_id": u["principalId"]}, {"msi_res_id": self.uai["id"]}):
            q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
            q.update(sel)
            r = e.imds(self.port, query=q)
            self.assertEqual(r.status, 200, (sel, r.body))
            _, claims, _ = jwt_parts(r.json()["access_token"])
            self.assertEqual(claims["oid"], u["principalId"])
            self.assertEqual(claims["appid"], u["clientId"])
            self.assertEqual(r.json()["client_id"], u["clientId"])
            self.assertIn("userAssignedIdentities/uai1", claims["xms_mirid"])
        # no selector: the system-assigned identity
        _, claims, _ = jwt_parts(e.token(self.port, "https://vault.azure.net"))
        self.assertEqual(claims["oid"], self.vm["identity"]["principalId"])
        # unknown id, and two selectors
        q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net",
             "client_id": "00000000-0000-4000-8000-000000000000"}
        r = e.imds(self.port, query=q)
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error_description"], "Identity not found")
        q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net",
             "client_id": u["clientId"], "object_id": u["principalId"]}
        self.assertEqual(e.imds(self.port, query=q).status, 400)

    def test_cached_token_reused(self):
        e = self.env
        a = e.token(self.port, "https://vault.azure.net")
        b = e.token(self.port, "https://vault.azure.net")
        self.assertEqual(a, b)
        c = e.token(self.port, "https://vault.azure.net/")
        self.assertNotEqual(a, c)

    def test_wrong_method(self):
        # IMDS answers a verb other than GET with 405 (the reference's IMDS errors table).
        r = self.env.imds(self.port, "https://vault.azure.net", method="PUT", body=b"")
        self.assertEqual(r.status, 405, r.body)
        self.assertIn("error", r.json())

    def test_identity_info_and_versions(self):
        r = self.env.imds(self.port, path="/metadata/identity/info", query={"api-version": "2018-02-01"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["tenantId"], self.env.tenant)


class ImdsRateLimitTest(MivaultTest):
    """config.json imdsRateLimit (init/up --imds-rate-limit): token requests per second before
    429; 0 turns the limit off."""

    def agent_with_limit(self, limit):
        e = self.env
        path = os.path.join(e.dir, "config.json")
        with open(path) as f:
            c = json.load(f)
        c["imdsRateLimit"] = limit
        with open(path, "w") as f:
            json.dump(c, f)
        vm = e.vm("rl%d" % limit)
        _, port = e.start_agent("rl%d" % limit, join=vm["joinToken"])
        return port

    def burst(self, port, n):
        q = "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(
            {"api-version": "2018-02-01", "resource": "https://vault.azure.net"})
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        statuses = collections.Counter()
        retry_after = set()
        for _ in range(n):
            c.request("GET", q, headers={"Metadata": "true"})
            r = c.getresponse()
            r.read()
            statuses[r.status] += 1
            if r.status == 429:
                retry_after.add(r.getheader("Retry-After"))
        c.close()
        return statuses, retry_after

    def test_init_flag_writes_config(self):
        d = tempfile.mkdtemp(prefix="mivault-it-rl.")
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run([BIN, "init", "--imds-rate-limit", "0", "--state", d], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(d, "config.json")) as f:
            self.assertEqual(json.load(f)["imdsRateLimit"], 0)
        r = subprocess.run([BIN, "init", "--imds-rate-limit", "-1", "--state", os.path.join(d, "x")],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        # the default keeps IMDS-like protection: 200/s
        with open(os.path.join(self.env.dir, "config.json")) as f:
            self.assertEqual(json.load(f)["imdsRateLimit"], 200)

    def test_limit_answers_429(self):
        statuses, retry_after = self.burst(self.agent_with_limit(3), 20)
        self.assertGreaterEqual(statuses[200], 3, statuses)
        self.assertGreater(statuses[429], 0, statuses)
        self.assertEqual(set(statuses), {200, 429})
        self.assertEqual(retry_after, {"1"})

    def test_zero_turns_the_limit_off(self):
        statuses, _ = self.burst(self.agent_with_limit(0), 600)
        self.assertEqual(statuses, {200: 600})


class ImdsConcurrencyLimitTest(MivaultTest):
    """Issue 8 point 6, DOC-IMDS "Rate limiting": at most 5 concurrent token requests per VM,
    429 beyond, whatever the per-second limit (turned off here)."""

    def test_sixth_concurrent_miss_gets_429(self):
        e = self.env
        path = os.path.join(e.dir, "config.json")
        with open(path) as f:
            c = json.load(f)
        c["imdsRateLimit"] = 0
        with open(path, "w") as f:
            json.dump(c, f)
        vm = e.vm("ccvm")
        first, port = e.start_agent("ccvm", join=vm["joinToken"])
        e.stop(first)
        # The agent again, now pointed at an authority that accepts connections and never
        # answers: every miss waits (3 s) for it.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        self.addCleanup(hole.close)
        e.spawn("agent-ccvm", "agent", "--vm", "ccvm", "--listen", "127.0.0.1:%d" % port,
                "--server", "https://127.0.0.1:%d" % hole.getsockname()[1], port=port)
        n = 6
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(n)]
        for cn in conns:
            cn.connect()
        out = [None] * n
        go = threading.Barrier(n)

        def one(i):
            go.wait()
            q = urllib.parse.urlencode({"api-version": "2018-02-01", "resource": "https://r%d.example" % i})
            conns[i].request("GET", "/metadata/identity/oauth2/token?" + q, headers={"Metadata": "true"})
            r = conns[i].getresponse()
            out[i] = (r.status, r.getheader("Retry-After"), json.loads(r.read()))
            conns[i].close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = collections.Counter(o[0] for o in out if o)
        self.assertEqual(statuses, {500: 5, 429: 1}, out)
        busy = [o for o in out if o[0] == 429][0]
        self.assertEqual(busy[1], "1")
        self.assertEqual(busy[2]["error"], "too_many_requests")
        # the slots are given back once the misses are answered: a new one waits again (500),
        # it is not refused (429)
        self.assertEqual(e.imds(port, "https://vault.azure.net").status, 500)


class ImdsConcurrentMissTest(MivaultTest):
    """DESIGN §7: the agent's loops share one cache, and concurrent misses of one key share one
    authority request (the agent runs one loop per core, at most 2)."""

    def setUp(self):
        super().setUp()
        e = self.env
        e.cli("identity", "create", "--name", "cm1")
        self.uai = e.cli("identity", "show", "--name", "cm1")
        self.vm = e.vm("cmvm", uai=["cm1"])
        _, self.port = e.start_agent("cmvm", join=self.vm["joinToken"])

    def storm(self, query, n=5):
        """n requests released at once, each on its own connection (5: the most IMDS lets wait
        at once, DOC-IMDS; ImdsHeaderHostConcurrencyTest checks the 6th gets 429)."""
        url = "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(query)
        conns = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=30) for _ in range(n)]
        for c in conns:
            c.connect()
        go = threading.Barrier(n)
        out = [None] * n

        def one(i):
            go.wait()
            conns[i].request("GET", url, headers={"Metadata": "true"})
            r = conns[i].getresponse()
            out[i] = (r.status, r.read())
            conns[i].close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out

    def token_requests(self, principal, resource):
        n = 0
        with open(os.path.join(self.env.dir, "audit.log")) as f:
            for line in f:
                rec = json.loads(line)
                if rec["action"] == "token" and rec["principal"] == principal and rec["scope"] == resource:
                    n += 1
        return n

    def test_concurrent_misses_share_one_authority_request(self):
        u = self.uai["properties"]
        system = self.vm["identity"]["principalId"]
        cases = [({}, system, "https://vault.azure.net"),
                 ({}, system, "https://management.core.windows.net/"),
                 ({"client_id": u["clientId"]}, u["principalId"], "https://vault.azure.net"),
                 ({"object_id": u["principalId"].upper()}, u["principalId"], "https://vault.azure.net/")]
        for sel, principal, resource in cases:
            q = {"api-version": "2018-02-01", "resource": resource}
            q.update(sel)
            out = self.storm(q)
            self.assertEqual({s for s, _ in out}, {200}, (sel, resource, out[:2]))
            tokens = {json.loads(b)["access_token"] for _, b in out}
            self.assertEqual(len(tokens), 1, (sel, resource))
            self.assertEqual(self.token_requests(principal, resource), 1, (sel, resource))

    def test_concurrent_refusals_are_shared_too(self):
        q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net",
             "client_id": "00000000-0000-4000-8000-000000000000"}
        out = self.storm(q)
        self.assertEqual({s for s, _ in out}, {400})
        self.assertEqual({json.loads(b)["error_description"] for _, b in out}, {"Identity not found"})
