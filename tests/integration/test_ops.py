"""test_ops.py: what an operator relies on (docs/operations.md): `--version`, strict options
(every verb refuses an option it does not know, exit 2 with its usage), flags on an existing
state (run-time flags apply, init-only ones are refused by name), logs (one line per event,
--log-format json, no token or secret), -o table times, and the metrics listener."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Env, SANITIZER_MARKS, free_port, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(*args, timeout=60, env=None):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def verbs():
    """Every verb `mivault --help` lists."""
    out = run("--help").stdout
    names = []
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            names.append(line[2:].split("  ")[0].strip())  # a long name stands alone
    return names


class Up:
    """`mivault up` on a state dir, with its log; wait() until env.sh exists."""

    def __init__(self, tc, state, *args, env_sh_fresh=True):
        self.tc, self.state = tc, state
        self.log = open(os.path.join(state if os.path.isdir(state) else "/tmp", "up.%d.log" % free_port()), "w+")
        env_sh = os.path.join(state, "env.sh")
        if env_sh_fresh and os.path.exists(env_sh):
            os.unlink(env_sh)
        self.proc = subprocess.Popen([BIN, "up", "--state", state] + list(args), stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        end = time.time() + 60
        while not os.path.exists(env_sh):
            if self.proc.poll() is not None or time.time() > end:
                tc.fail("mivault up did not start: " + self.text())
            time.sleep(0.1)
        self.env = dict(os.environ)
        with open(env_sh) as f:
            for line in f:
                m = re.match(r"export (\w+)='(.*)'$", line.strip())
                if m:
                    self.env[m.group(1)] = m.group(2)

    def text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        text = self.text()
        self.log.close()
        self.tc.assertFalse(any(m in text for m in SANITIZER_MARKS), text)
        return text


class CliTest(unittest.TestCase):
    def test_version(self):
        with open(os.path.join(ROOT, "VERSION")) as f:
            v = f.read().strip()
        r = run("--version")
        self.assertEqual((r.returncode, r.stdout), (0, "mivault %s\n" % v))

    def test_every_verb_refuses_an_unknown_option(self):
        names = verbs()
        self.assertGreater(len(names), 30)
        state = tempfile.mkdtemp(prefix="mivault-ops.")
        try:
            for name in names:
                for bad in (["--frobnicate", "x"], ["--frobnicate=x"], ["--frobnicate"]):
                    r = run(*(name.split() + bad + ["--state", state]))
                    self.assertEqual(r.returncode, 2, (name, bad, r.stderr))
                    self.assertIn("unknown option '--frobnicate'", r.stderr, name)
                    self.assertIn("usage: mivault " + name, r.stderr, name)
                    self.assertEqual(r.stdout, "", name)
            # nothing ran: no state was made
            self.assertEqual(os.listdir(state), [])
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_known_options_still_parse(self):
        r = run("vm", "list", "--help")
        self.assertEqual(r.returncode, 0)
        r = run("keyvault", "secret", "show", "--vault-name", "v", "--name", "n", "--version", "x", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("up", "--log-format", "xml", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)  # --help wins
        r = run("server", "--log-format", "xml", "--state", "/nonexistent")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-format takes 'text' or 'json'", r.stderr)


class ExistingStateTest(unittest.TestCase):
    """Flags given to `init`/`up` on a state dir that exists."""

    def setUp(self):
        self.env = Env(self)
        self.addCleanup(self.env.close)

    def config(self):
        with open(os.path.join(self.env.dir, "config.json")) as f:
            return json.load(f)

    def test_init_only_flags_are_refused_by_name(self):
        e = self.env
        before = self.config()
        for flag, value in (("--server-port", str(free_port())), ("--agent-port", str(free_port())),
                            ("--vault-suffix", "vault.example"), ("--public-url", "https://other.example:9443"),
                            ("--store", "postgresql://u@127.0.0.1:1/db")):
            for verb in ("init", "up"):
                r = e.run(verb, flag, value, check=False)
                if flag == "--store":  # state_init refuses it first, and names the way to move a store
                    self.assertNotEqual(r.returncode, 0)
                    self.assertIn("already uses another store; `mivault store migrate` moves it", r.stderr)
                    continue
                self.assertEqual(r.returncode, 2, (verb, flag, r.stderr))
                self.assertIn("%s cannot change on the existing state" % flag, r.stderr)
        self.assertEqual(self.config(), before)
        # repeating what the state holds is fine
        r = e.run("init", "--server-port", str(e.server_port), "--agent-port", str(e.agent_port))
        self.assertEqual(r.returncode, 0)

    def test_runtime_flags_apply_to_an_existing_state(self):
        """`up --state DIR --throttle-ops N` on an existing DIR serves with N (it was ignored)."""
        e = self.env
        self.assertNotEqual(self.config()["throttleOps"], 1)
        up = Up(self, e.dir, "--throttle-ops", "1", "--imds-rate-limit", "0")
        try:
            self.assertEqual(self.config()["throttleOps"], 1)
            self.assertEqual(self.config()["imdsRateLimit"], 0)
            self.assertIn("--throttle-ops 1 applies to the existing state", up.text())
            tok = e.token(e.agent_port, e.vault_resource())
            r1 = e.kv("GET", "dev", "/secrets", token=tok)
            r2 = e.kv("GET", "dev", "/secrets", token=tok)
            self.assertEqual(r1.status, 200, r1.body)
            self.assertEqual(r2.status, 429, r2.body)
        finally:
            up.stop()
        up = Up(self, e.dir, "--throttle-ops", "0")
        try:
            self.assertEqual(self.config()["throttleOps"], 0)
            tok = e.token(e.agent_port, e.vault_resource())
            for _ in range(5):
                r = e.kv("GET", "dev", "/secrets", token=tok)
                self.assertEqual(r.status, 200, r.body)
        finally:
            up.stop()


SECRETS_OFFICER = "Key Vault Secrets Officer"


class LogsTest(unittest.TestCase):
    """A whole flow with --verbose logs: every line one event, JSON when asked, and no token,
    secret value, join token or key anywhere in them."""

    def setUp(self):
        self.env = Env(self)
        self.addCleanup(self.env.close)

    def spawn(self, name, *args, port):
        """A child whose stderr (its log) has a file of its own; stdout (a verb's output) is not
        a log."""
        e = self.env
        log = open(os.path.join(e.dir, "%s.stderr.log" % name), "w+")
        p = subprocess.Popen([BIN] + list(args) + ["--state", e.dir], stdout=subprocess.DEVNULL, stderr=log,
                             stdin=subprocess.DEVNULL)
        e.procs.append(p)
        e.logs.append(log)
        wait_port(port, p)

    def flow(self, fmt):
        e = self.env
        self.spawn("server", "server", "--verbose", "--log-format", fmt, port=e.server_port)
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], SECRETS_OFFICER, e.vault_scope("dev"))
        self.spawn("agent", "agent", "--vm", "vm1", "--join", vm["joinToken"], "--listen",
                "127.0.0.1:%d" % e.agent_port, "--verbose", "--log-format", fmt, port=e.agent_port)
        tok = e.token(e.agent_port, e.vault_resource())
        value = "very-secret-value-%d" % free_port()
        r = e.kv("PUT", "dev", "/secrets/db", token=tok, body={"value": value})
        self.assertEqual(r.status, 200, r.body)
        r = e.kv("GET", "dev", "/secrets/db", token=tok)
        self.assertEqual(r.json()["value"], value)
        e.kv("GET", "dev", "/secrets/db", token=tok + "x")  # a bad token is logged about, not logged
        table = e.run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "db", "-o", "table").stdout
        for p in list(e.procs):
            e.stop(p)
        texts = []
        for log in e.logs:
            log.flush()
            log.seek(0)
            texts.append(log.read())
        with open(os.path.join(e.dir, "admin.key")) as f:
            admin_key = f.read()
        key_body = "".join(admin_key.strip().splitlines()[1:-1])[:64]
        for text in texts:
            for needle in (tok, tok.split(".")[2], value, vm["joinToken"], vm["joinToken"].split(".")[1], key_body):
                self.assertNotIn(needle, text)
        return [t for t in texts if t.strip()], table

    def test_json_lines(self):
        texts, _ = self.flow("json")
        n = 0
        for text in texts:
            for line in text.splitlines():
                rec = json.loads(line)  # every line is one JSON object
                self.assertEqual(sorted(rec), ["level", "msg", "pid", "time"])
                self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertIn(rec["level"], ("debug", "info", "warn", "error"))
                n += 1
        self.assertGreater(n, 5)
        # a verb's own error is a JSON line too then
        r = run("server", "--log-format", "json", "--state", os.path.join(self.env.dir, "missing"))
        self.assertEqual(r.returncode, 1)
        rec = json.loads(r.stderr.strip().splitlines()[-1])
        self.assertEqual(rec["level"], "error")
        self.assertIn("no mivault state", rec["msg"])

    def test_text_lines_and_table_times(self):
        texts, table = self.flow("text")
        for text in texts:
            for line in text.splitlines():
                self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ mivault (debug|info|warn|error): ")
        # -o table: times in ISO 8601, not Unix seconds
        rows = table.splitlines()
        self.assertIn("updated", rows[0])
        self.assertRegex(rows[2], r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertNotRegex(rows[2], r"\b1\d{9}\b")


def http_get(port, path, method="GET"):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    headers = dict((k.lower(), v) for k, v in r.getheaders())
    c.close()
    return r.status, headers, body


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in ms.items() if n == name and want <= set(ls))


@unittest.skipUnless(shutil.which("promtool"), "promtool (Debian: prometheus) is not installed")
class MetricsTest(unittest.TestCase):
    """--metrics-listen on server, agent and up: /metrics is valid Prometheus text (promtool) and
    counts what happened; /healthz answers there."""

    def setUp(self):
        self.env = Env(self)
        self.addCleanup(self.env.close)

    def scrape(self, port):
        status, headers, body = http_get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + body[:3000])
        self.assertEqual((r.stdout + r.stderr).strip(), "")  # no lint warning either
        return parse_metrics(body)

    def test_server_and_agent(self):
        e = self.env
        sm, am = free_port(), free_port()
        e.spawn("server", "server", "--metrics-listen", "127.0.0.1:%d" % sm, port=e.server_port)
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], SECRETS_OFFICER, e.vault_scope("dev"))
        e.spawn("agent", "agent", "--vm", "vm1", "--join", vm["joinToken"], "--listen", "127.0.0.1:%d" % e.agent_port,
                "--metrics-listen", "127.0.0.1:%d" % am, port=e.agent_port)
        tok = e.token(e.agent_port, e.vault_resource())
        e.token(e.agent_port, e.vault_resource())  # from the agent's cache
        r = e.imds(e.agent_port, e.vault_resource(), headers={})  # no Metadata header: refused
        self.assertEqual(r.status, 400)
        self.assertEqual(e.kv("PUT", "dev", "/secrets/a", token=tok, body={"value": "v"}).status, 200)
        for _ in range(3):
            self.assertEqual(e.kv("GET", "dev", "/secrets/a", token=tok).status, 200)
        self.assertEqual(e.kv("GET", "dev", "/secrets/nope", token=tok).status, 404)
        self.assertEqual(e.kv("GET", "dev", "/secrets/a", token=tok + "x").status, 401)
        r = e.https("POST", "/%s/oauth2/token" % e.tenant, body="grant_type=client_credentials&client_id=nobody",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status // 100, 4)

        s = self.scrape(sm)
        self.assertEqual(metric(s, "mivault_http_requests_total", plane="vault", route="secrets/{n}", method="GET",
                                status="200"), 3)
        self.assertEqual(metric(s, "mivault_http_requests_total", plane="vault", route="secrets/{n}", method="GET",
                                status="404"), 1)
        self.assertEqual(metric(s, "mivault_http_requests_total", plane="vault", route="secrets/{n}", method="PUT",
                                status="200"), 1)
        self.assertGreaterEqual(metric(s, "mivault_http_requests_total", plane="arm", method="PUT", status="201"), 3)
        self.assertEqual(metric(s, "mivault_http_request_duration_seconds_count", plane="vault", route="secrets/{n}"),
                         6)
        self.assertGreaterEqual(metric(s, "mivault_tokens_issued_total", issuer="authority"), 1)
        self.assertGreaterEqual(metric(s, "mivault_tokens_refused_total", issuer="authority"), 1)
        self.assertGreaterEqual(metric(s, "mivault_cache_hits_total", cache="vault_token"), 3)
        self.assertGreaterEqual(metric(s, "mivault_cache_misses_total", cache="vault_token"), 1)
        self.assertGreater(metric(s, "mivault_cache_hit_ratio", cache="vault_token"), 0)
        self.assertGreaterEqual(metric(s, "mivault_store_operation_duration_seconds_count", op="write_batch"), 1)
        self.assertGreaterEqual(metric(s, "mivault_store_operation_duration_seconds_count", op="secret_get"), 1)
        self.assertEqual(metric(s, "mivault_store_errors_total"), 0)
        self.assertEqual(metric(s, "mivault_audit_write_failures_total"), 0)
        self.assertGreater(metric(s, "process_resident_memory_bytes"), 0)
        self.assertGreater(metric(s, "process_open_fds"), 0)
        self.assertGreater(metric(s, "process_cpu_seconds_total"), 0)

        a = self.scrape(am)
        self.assertEqual(metric(a, "mivault_tokens_issued_total", issuer="imds"), 2)
        self.assertEqual(metric(a, "mivault_tokens_refused_total", issuer="imds", reason="bad_request_102"), 1)
        hits = metric(a, "mivault_cache_hits_total", cache="imds_token")
        misses = metric(a, "mivault_cache_misses_total", cache="imds_token")
        self.assertGreaterEqual(hits, 1)  # the second token
        self.assertGreaterEqual(misses, 1)  # the first
        self.assertAlmostEqual(metric(a, "mivault_cache_hit_ratio", cache="imds_token"), hits / (hits + misses), 5)
        self.assertEqual(metric(a, "mivault_imds_throttled_total"), 0)
        self.assertEqual(metric(a, "mivault_http_requests_total", plane="imds",
                                route="/metadata/identity/oauth2/token", status="200"), 2)

        for port, what in ((sm, "server"), (am, "agent")):
            status, headers, body = http_get(port, "/healthz")
            self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}), what)
            self.assertEqual(http_get(port, "/nope")[0], 404)
            self.assertEqual(http_get(port, "/metrics", method="POST")[0], 405)
        # the server's own listener answers /healthz too
        self.assertEqual(e.https("GET", "/healthz").status, 200)

    def test_imds_429s_are_counted_in_up(self):
        e = self.env
        mp = free_port()
        up = Up(self, e.dir, "--imds-rate-limit", "1", "--metrics-listen", "127.0.0.1:%d" % mp)
        try:
            codes = [e.imds(e.agent_port, e.vault_resource()).status for _ in range(8)]
            self.assertIn(429, codes)
            m = self.scrape(mp)
            self.assertEqual(metric(m, "mivault_imds_throttled_total"), codes.count(429))
            self.assertEqual(metric(m, "mivault_http_requests_total", plane="imds", status="429"), codes.count(429))
            # up runs server and agent in one process: both planes in one scrape
            self.assertGreater(metric(m, "mivault_http_requests_total", plane="arm"), 0)
            self.assertEqual(http_get(mp, "/healthz")[0], 200)
        finally:
            up.stop()

    def test_bad_metrics_listen(self):
        r = run("server", "--metrics-listen", "nope", "--state", self.env.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--metrics-listen", r.stderr)


if __name__ == "__main__":
    unittest.main()
