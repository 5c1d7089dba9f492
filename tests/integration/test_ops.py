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
            names.append(line[2:28].strip())
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


if __name__ == "__main__":
    unittest.main()
