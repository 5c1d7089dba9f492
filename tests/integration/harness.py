"""harness.py: start real mivault processes on loopback and talk real HTTP(S) to them.

Each Env is a fresh state dir with its own free ports: `mivault init`, `mivault server`, and
agents started on demand. Logs of every child go to files in the state dir; on tearDown they are
scanned for sanitizer reports (ASan, UBSan, LeakSanitizer), which fail the test, and when the
test failed their last lines go to stderr (what CI prints is then enough to see why).

Store: SQLite in the state dir by default. Env(tc, pg=True) puts the store in a fresh
PostgreSQL database made on the server MIVAULT_TEST_PG_URL names (scripts/test.sh starts one);
MIVAULT_TEST_STORE=postgresql makes that the default for every Env, to run the whole suite on
PostgreSQL.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

BIN = os.environ.get("MIVAULT_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "release", "mivault")
BIN = os.path.abspath(BIN)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")
LOG_TAIL_LINES = 25


def test_failed(tc):
    """Whether tc has failed or errored so far (read from a cleanup: unittest's own result)."""
    result = getattr(getattr(tc, "_outcome", None), "result", None)
    if result is None:
        return False
    return any(t is tc for t, _ in list(result.failures) + list(result.errors))


PG_URL = os.environ.get("MIVAULT_TEST_PG_URL", "")
_pg_seq = [0]


def pg_sql(url, sql):
    """One statement through psql (the tests need no Python driver)."""
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql, r.stderr))
    return r.stdout.strip()


def pg_url_with_db(base, db):
    """base with its database replaced by db (query string kept)."""
    head, _, query = base.partition("?")
    scheme, _, rest = head.partition("://")
    hosts = rest.split("/", 1)[0]
    return "%s://%s/%s%s" % (scheme, hosts, db, "?" + query if query else "")


def pg_new_db():
    """A fresh empty database on MIVAULT_TEST_PG_URL: (name, url)."""
    _pg_seq[0] += 1
    name = "mvit_%d_%d" % (os.getpid(), _pg_seq[0])
    pg_sql(PG_URL, "CREATE DATABASE %s" % name)
    return name, pg_url_with_db(PG_URL, name)


def pg_drop_db(name):
    pg_sql(PG_URL, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token):
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)
    return (json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))), s)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class _Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and certificate checks for a given host name."""

    def __init__(self, sni, port, context):
        super().__init__(sni, port, context=context, timeout=30)
        self._sni = sni

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._sni)


class Env:
    def __init__(self, tc, threads=2, pg=None, init_args=(), **cfg):
        self.tc = tc
        self.dir = tempfile.mkdtemp(prefix="mivault-it.")
        self.server_port = free_port()
        self.agent_port = free_port()
        self.procs = []
        self.logs = []
        self.pg_db = self.store_url = None
        if pg is None:
            pg = os.environ.get("MIVAULT_TEST_STORE") == "postgresql"
        args = ["init", "--server-port", str(self.server_port), "--agent-port", str(self.agent_port),
                "--threads", str(threads)] + list(init_args)
        if pg:
            if not PG_URL:
                tc.skipTest("MIVAULT_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL)")
            self.pg_db, self.store_url = pg_new_db()
            args += ["--store", self.store_url]
        self.init = self.cli(*args)
        if cfg:
            path = os.path.join(self.dir, "config.json")
            with open(path) as f:
                c = json.load(f)
            c.update(cfg)
            with open(path, "w") as f:
                json.dump(c, f)
        self.tenant = self.init["tenantId"]
        self.sub = self.init["subscriptionId"]
        self.rg = self.init["resourceGroup"]
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        self.server = None

    # ---- processes ----
    def spawn(self, name, *args, port=None, nofile=None):
        """nofile: the child's RLIMIT_NOFILE (soft and hard), to make descriptor exhaustion cheap."""
        log = open(os.path.join(self.dir, "%s.%d.log" % (name, len(self.logs))), "w+")
        self.logs.append(log)
        pre = None
        if nofile:
            import resource
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        p = subprocess.Popen([BIN] + list(args) + ["--state", self.dir], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, preexec_fn=pre)
        self.procs.append(p)
        if port:
            wait_port(port, p)
        return p

    def start_server(self, listen_port=None, nofile=None):
        """`mivault server`; with listen_port, on 127.0.0.1:listen_port (--listen) instead."""
        if listen_port:
            self.server = self.spawn("server", "server", "--listen", "127.0.0.1:%d" % listen_port,
                                     port=listen_port, nofile=nofile)
        else:
            self.server = self.spawn("server", "server", port=self.server_port, nofile=nofile)
        return self.server

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.tc.fail("process did not stop on SIGTERM")

    def start_agent(self, vm, join=None, port=None, nofile=None):
        port = port or free_port()
        args = ["agent", "--vm", vm, "--listen", "127.0.0.1:%d" % port]
        if join:
            args += ["--join", join]
        p = self.spawn("agent-" + vm, *args, port=port, nofile=nofile)
        return p, port

    def close(self):
        for p in self.procs:
            self.stop(p)
        bad = []
        failed = test_failed(self.tc)
        for log in self.logs:
            log.flush()
            log.seek(0)
            text = log.read()
            if any(m in text for m in SANITIZER_MARKS):
                bad.append("%s:\n%s" % (log.name, text[-4000:]))
            elif failed and text:
                tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
                sys.stderr.write("\n--- %s: %s (last lines)\n%s\n" % (self.tc.id(), os.path.basename(log.name),
                                                                    tail[-3000:]))
            log.close()
        if bad:
            keep = self.dir
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            keep = None
        if self.pg_db:
            pg_drop_db(self.pg_db)
        if bad:
            self.tc.fail("sanitizer report in child logs (kept %s):\n%s" % (keep, "\n".join(bad)))

    # ---- CLI ----
    def run(self, *args, check=True):
        r = subprocess.run([BIN] + list(args) + ["--state", self.dir], capture_output=True, text=True, timeout=60)
        for m in SANITIZER_MARKS:
            if m in r.stderr:
                self.tc.fail("sanitizer report from `mivault %s`:\n%s" % (" ".join(args), r.stderr[-4000:]))
        if check and r.returncode != 0:
            self.tc.fail("`mivault %s` failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def cli(self, *args):
        out = self.run(*args).stdout
        return json.loads(out) if out.strip() else None

    # ---- resources ----
    def vm(self, name, system=True, uai=()):
        args = ["vm", "create", "--name", name]
        if system:
            args.append("--assign-identity")
        for u in uai:
            args += ["--user-assigned", u]
        return self.cli(*args)

    def vault(self, name, **kw):
        args = ["keyvault", "create", "--name", name]
        if kw.get("purge_protection"):
            args.append("--enable-purge-protection")
        if kw.get("days"):
            args += ["--retention-days", str(kw["days"])]
        return self.cli(*args)

    def grant(self, principal, role, scope):
        return self.cli("role", "assignment", "create", "--assignee", principal, "--role", role, "--scope", scope)

    def vault_scope(self, vault):
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s" % (self.sub, self.rg, vault)

    # ---- HTTP ----
    def imds(self, port, resource=None, headers=None, path="/metadata/identity/oauth2/token", query=None,
             method="GET", body=None):
        q = query
        if q is None:
            q = {"api-version": "2018-02-01"}
            if resource is not None:
                q["resource"] = resource
        h = {"Metadata": "true"} if headers is None else headers
        url = path + ("?" + urllib.parse.urlencode(q) if q else "")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request(method, url, body=body, headers=h)
        r = c.getresponse()
        res = Response(r.status, r.reason, r.getheaders(), r.read())
        c.close()
        return res

    def token(self, port, resource, **sel):
        q = {"api-version": "2018-02-01", "resource": resource}
        q.update(sel)
        r = self.imds(port, query=q)
        self.tc.assertEqual(r.status, 200, r.body)
        return r.json()["access_token"]

    def vault_host(self, vault):
        return "%s.vault.localhost" % vault

    def vault_resource(self):
        return "https://vault.localhost:%d" % self.server_port

    def https(self, method, path, host="127.0.0.1", body=None, headers=None, token=None, port=None):
        c = _Conn(host, port or self.server_port, self.ctx)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        res = Response(r.status, r.reason, r.getheaders(), r.read())
        c.close()
        return res

    def kv(self, method, vault, path, token=None, body=None, api="7.5", headers=None):
        sep = "&" if "?" in path else "?"
        p = path + (sep + "api-version=" + api if api else "")
        return self.https(method, p, host=self.vault_host(vault), body=body, token=token, headers=headers)


class MivaultTest(unittest.TestCase):
    """Base class: self.env is a fresh initialised state with a running server."""
    threads = 2

    def setUp(self):
        self.env = Env(self, threads=self.threads)
        self.addCleanup(self.env.close)
        self.env.start_server()

    def assertAzureError(self, r, status, code=None):
        self.assertEqual(r.status, status, r.body)
        self.assertIsNotNone(r.header("x-ms-request-id"))
        e = r.json()["error"]
        self.assertIsInstance(e["message"], str)
        if code:
            self.assertEqual(e["code"], code, r.body)
        return e
