"""test_ha.py: two mivault servers behind haproxy on a two-node pg_auto_failover formation.

Everything is real: PostgreSQL 15 with a synchronous standby and its monitor (scripts/pg-formation.sh),
haproxy in TCP mode health-checking GET /healthz, two `mivault server` processes on one shared
database, an agent, and Debian's unchanged python3-azure SDK as the workload. Points 1-5 of the
scale-out contract (docs/ha.md):

  1. consistency across servers (writes, role assignments, signing keys, deletions)
  2. kill -9 of a server under SDK load: zero failed SDK operations
  3. kill -9 of the PostgreSQL primary under load: writes resume within 30 s, no acknowledged
     write lost, no duplicate secret version
  4. the agent serves cached tokens while no server answers (covered in the integration suite)
  5. one-time join tokens stay one-time across servers

Runs inside a private mount namespace (tests/ha/run.sh) whose /etc/hosts names the balancer and
the vault hosts.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import BIN, SANITIZER_MARKS, Response, _Conn, free_port, wait_port  # noqa: E402

import http.client  # noqa: E402
import ssl  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FORMATION = os.path.join(ROOT, "scripts", "pg-formation.sh")
PY = "/usr/bin/python3"
LB_HOST = "mivault-lb.test"
VAULT = "havault"


def free_base_port():
    """Three consecutive free ports for the formation (monitor, node1, node2)."""
    for _ in range(200):
        base = free_port()
        if base > 60000:
            continue
        ok = True
        for p in (base, base + 1, base + 2):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no three consecutive free ports")


def formation(*args, check=True, timeout=240):
    r = subprocess.run(["bash", FORMATION] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("pg-formation.sh %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout.strip()


# The workload: unchanged SDK code. Each worker writes its own secrets and reads them back; every
# acknowledged write is appended to the ack file as JSON (name, version, value) before the next
# one starts, and every failed SDK call to the failure file.
LOAD = r'''
import json, os, sys, threading, time
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
url, seconds, workers, tag, ack_path, fail_path = sys.argv[1:7]
seconds, workers = float(seconds), int(workers)
cred = ManagedIdentityCredential()
lock = threading.Lock()
ack = open(ack_path, "a", buffering=1)
fail = open(fail_path, "a", buffering=1)
end = time.time() + seconds
def work(w):
    c = SecretClient(url, cred)
    i = 0
    while time.time() < end:
        name = "%s-w%d-%d" % (tag, w, i)
        value = "v-%s-%d-%d" % (tag, w, i)
        t0 = time.time()
        try:
            s = c.set_secret(name, value)
            with lock:
                ack.write(json.dumps({"name": name, "version": s.properties.version, "value": value,
                                      "t0": t0, "t": time.time()}) + "\n")
            got = c.get_secret(name)
            if got.value != value:
                raise RuntimeError("read %r after writing %r" % (got.value, value))
        except Exception as e:  # noqa: BLE001 - every failure counts
            with lock:
                fail.write(json.dumps({"name": name, "t": time.time(), "error": repr(e)[:300]}) + "\n")
        i += 1
ts = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
for t in ts: t.start()
for t in ts: t.join()
'''


class Cluster:
    """A formation, two servers sharing it, haproxy in front, one agent."""

    def __init__(self):
        self.procs = {}
        self.logs = []
        self.dir = tempfile.mkdtemp(prefix="mivault-ha.")
        self.pgdir = os.path.join(self.dir, "pg")
        try:
            self._start()
        except BaseException:
            self.close()  # a failed start must not leave a formation, servers or haproxy behind
            raise

    def _start(self):
        os.chmod(self.dir, 0o755)
        self.pg_url = self.start_formation()
        self.lb_port = free_port()
        self.public = "https://%s:%d" % (LB_HOST, self.lb_port)
        self.s1 = os.path.join(self.dir, "s1")
        self.s2 = os.path.join(self.dir, "s2")
        self.ports = {"s1": free_port(), "s2": free_port()}
        self.cli_in(self.s1, "init", "--store", self.pg_url, "--public-url", self.public, "--threads", "2")
        self.cli_in(self.s2, "init", "--store", self.pg_url, "--public-url", self.public, "--threads", "2",
                    "--master-key", os.path.join(self.s1, "master.key"))
        for s in ("s1", "s2"):
            self.start_server(s)
        self.start_haproxy()
        self.ca = os.path.join(self.s1, "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)

    def start_formation(self, tries=3):
        """The formation's multi-host URL. A start that fails (a port taken between the check and
        the bind) is stopped, its monitor log shown, and tried again on other ports."""
        for attempt in range(tries):
            try:
                return formation("start", self.pgdir, str(free_base_port())).splitlines()[-1]
            except RuntimeError as e:
                log = os.path.join(self.pgdir, "monitor.log")
                tail = open(log).read()[-2000:] if os.path.exists(log) else ""
                print("\nformation start %d failed: %s\n%s" % (attempt + 1, e, tail), file=sys.stderr)
                formation("stop", self.pgdir, check=False)
                if attempt == tries - 1:
                    raise

    # ---- processes ----
    def spawn(self, name, argv):
        log = open(os.path.join(self.dir, "%s.%d.log" % (name, len(self.logs))), "w+")
        self.logs.append(log)
        p = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def start_server(self, s):
        d = getattr(self, s)
        p = self.spawn(s, [BIN, "server", "--state", d, "--listen", "127.0.0.1:%d" % self.ports[s]])
        wait_port(self.ports[s], p)
        return p

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(15)

    def start_haproxy(self):
        # TCP mode: TLS goes through to the servers untouched. /healthz over TLS every 500 ms; one
        # failed check takes a server out, a refused connect is retried on the other (redispatch).
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend mivault
    bind 127.0.0.1:%d
    default_backend servers
backend servers
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check check-ssl verify none inter 500ms fall 1 rise 2
    server s1 127.0.0.1:%d
    server s2 127.0.0.1:%d
""" % (self.lb_port, self.ports["s1"], self.ports["s2"]))
        p = self.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
        wait_port(self.lb_port, p)

    def start_agent(self, vm, join):
        self.agent_port = free_port()
        jf = os.path.join(self.dir, "join-" + vm)
        with open(jf, "w") as f:
            f.write(join)
        self.agent_dir = os.path.join(self.dir, "agent-" + vm)
        p = self.spawn("agent", [BIN, "agent", "--vm", vm, "--join-file", jf, "--server", self.public,
                                 "--listen", "127.0.0.1:%d" % self.agent_port, "--state", self.agent_dir])
        wait_port(self.agent_port, p)

    def close(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        bad = []
        for log in self.logs:
            log.flush()
            log.seek(0)
            text = log.read()
            if any(m in text for m in SANITIZER_MARKS):
                bad.append("%s:\n%s" % (log.name, text[-4000:]))
            log.close()
        formation("stop", self.pgdir, check=False)
        if not bad:
            shutil.rmtree(self.dir, ignore_errors=True)
        return bad

    # ---- CLI and HTTP ----
    def cli_in(self, d, *args, check=True):
        r = subprocess.run([BIN] + list(args) + ["--state", d], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("`mivault %s` failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def cli(self, *args):
        out = self.cli_in(self.s1, *args).stdout
        return json.loads(out) if out.strip() else None

    def https(self, server, method, path, host, token=None, body=None):
        """One HTTPS request straight to one server (s1, s2) or through the balancer (lb)."""
        port = self.lb_port if server == "lb" else self.ports[server]
        c = _Conn(host, port, self.ctx)
        h = {}
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        res = Response(r.status, r.reason, r.getheaders(), r.read())
        c.close()
        return res

    def kv(self, server, method, path, token, body=None):
        sep = "&" if "?" in path else "?"
        return self.https(server, method, path + sep + "api-version=7.5", "%s.vault.localhost" % VAULT,
                          token=token, body=body)

    def imds_token(self, resource, **sel):
        q = {"api-version": "2018-02-01", "resource": resource}
        q.update(sel)
        c = http.client.HTTPConnection("127.0.0.1", self.agent_port, timeout=30)
        c.request("GET", "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(q), headers={"Metadata": "true"})
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise AssertionError("IMDS %d: %s" % (r.status, body))
        return json.loads(body)["access_token"]

    def sdk_env(self):
        env = dict(os.environ)
        for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT",
                  "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
            env.pop(k, None)
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://127.0.0.1:%d" % self.agent_port
        bundle = os.path.join(self.agent_dir, "env.sh")
        # the CA bundle the agent wrote for this VM's workloads (system CAs + the pinned CA)
        with open(bundle) as f:
            for line in f:
                line = line.strip()
                if line.startswith("export REQUESTS_CA_BUNDLE="):
                    env["REQUESTS_CA_BUNDLE"] = line.split("=", 1)[1].strip("'\"")
        return env


class HaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster()
        try:
            cls.set_up_workload()
        except BaseException:
            cls.c.close()  # unittest does not call tearDownClass when setUpClass fails
            raise

    @classmethod
    def set_up_workload(cls):
        c = cls.c
        c.cli("keyvault", "create", "--name", VAULT)
        vm = c.cli("vm", "create", "--name", "havm", "--assign-identity")
        cls.vm_principal = vm["identity"]["principalId"]
        scope = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s" % (
            vm["id"].split("/")[2], vm["id"].split("/")[4], VAULT)
        cls.scope = scope
        c.cli("role", "assignment", "create", "--assignee", cls.vm_principal, "--role",
              "Key Vault Secrets Officer", "--scope", scope)
        c.start_agent("havm", vm["joinToken"])
        cls.resource = "https://vault.localhost:%d" % c.lb_port

    @classmethod
    def tearDownClass(cls):
        bad = cls.c.close()
        if bad:
            raise AssertionError("sanitizer report in child logs:\n" + "\n".join(bad))

    def setUp(self):
        # every test starts with both servers up and the formation settled
        for s in ("s1", "s2"):
            p = self.c.procs.get(s)
            if p is None or p.poll() is not None:
                self.c.start_server(s)
        formation("wait", self.c.pgdir, "120")
        self.wait_healthy("lb")

    def wait_healthy(self, server, limit=30):
        end = time.time() + limit
        while time.time() < end:
            try:
                if self.c.https(server, "GET", "/healthz", LB_HOST).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("%s not healthy within %ds" % (server, limit))

    def run_load(self, seconds, workers, tag, during=None):
        ack = os.path.join(self.c.dir, "ack-" + tag)
        fail = os.path.join(self.c.dir, "fail-" + tag)
        url = "https://%s.vault.localhost:%d" % (VAULT, self.c.lb_port)
        p = subprocess.Popen([PY, "-c", LOAD, url, str(seconds), str(workers), tag, ack, fail],
                             env=self.c.sdk_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        if during:
            during(t0)
        out, err = p.communicate(timeout=seconds + 240)
        self.assertEqual(p.returncode, 0, err[-3000:])
        return self.read_json_lines(ack), self.read_json_lines(fail)

    @staticmethod
    def read_json_lines(path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def check_all_acked(self, acks):
        """Every acknowledged write is there, with its value, as exactly one version."""
        token = self.c.imds_token(self.resource)
        for a in acks:
            r = self.c.kv("lb", "GET", "/secrets/%s" % a["name"], token)
            self.assertEqual(r.status, 200, "acknowledged write %s lost: %s" % (a["name"], r.body))
            self.assertEqual(r.json()["value"], a["value"])
            self.assertTrue(r.json()["id"].endswith("/" + a["version"]), r.body)
            v = self.c.kv("lb", "GET", "/secrets/%s/versions" % a["name"], token)
            self.assertEqual(v.status, 200, v.body)
            self.assertEqual(len(v.json()["value"]), 1, "%s has a duplicate version: %s" % (a["name"], v.body))

    # ---- 1. consistency ----
    def test_write_through_one_server_reads_through_the_other_at_once(self):
        token = self.c.imds_token(self.resource)
        for i in range(20):
            w, r = ("s1", "s2") if i % 2 == 0 else ("s2", "s1")
            put = self.c.kv(w, "PUT", "/secrets/consistent-%d" % i, token, {"value": "x%d" % i})
            self.assertEqual(put.status, 200, put.body)
            got = self.c.kv(r, "GET", "/secrets/consistent-%d" % i, token)
            self.assertEqual(got.status, 200, got.body)
            self.assertEqual(got.json()["value"], "x%d" % i)

    def mint(self, state_dir, **changes):
        """A token signed in state_dir with the claims of a real one, changed as given."""
        from harness import jwt_parts
        _, claims, _ = jwt_parts(self.c.imds_token(self.resource))
        claims.update(changes)
        return self.c.cli_in(state_dir, "token", "mint", "--claims", json.dumps(claims)).stdout.strip()

    def test_role_assignment_is_enforced_by_every_server_within_2s(self):
        ident = self.c.cli("identity", "create", "--name", "late-grant")
        pid = ident["properties"]["principalId"]
        token = self.mint(self.c.s1, oid=pid, sub=pid)
        for s in ("s1", "s2"):
            self.assertEqual(self.c.kv(s, "GET", "/secrets/consistent-0", token).status, 403)
        a = self.c.cli("role", "assignment", "create", "--assignee", pid, "--role",
                       "Key Vault Secrets User", "--scope", self.scope)
        t0 = time.time()
        for s in ("s1", "s2"):
            while self.c.kv(s, "GET", "/secrets/nothing-here", token).status == 403:
                self.assertLess(time.time() - t0, 2.0, "%s still refuses 2 s after the grant" % s)
                time.sleep(0.05)
        self.c.cli("role", "assignment", "delete", "--ids", a["id"])
        t0 = time.time()
        for s in ("s1", "s2"):
            while self.c.kv(s, "GET", "/secrets/nothing-here", token).status != 403:
                self.assertLess(time.time() - t0, 2.0, "%s still allows 2 s after the removal" % s)
                time.sleep(0.05)

    def test_tokens_signed_by_either_server_validate_on_both(self):
        # `token mint` signs with the key of the state dir it runs in: s2 joined later and has
        # its own signing key, which s1 must learn from the store.
        for signer in (self.c.s1, self.c.s2):
            token = self.mint(signer)
            for s in ("s1", "s2"):
                r = self.c.kv(s, "GET", "/secrets/nothing-here", token)
                self.assertEqual(r.status, 404, "%s refused a token signed in %s: %s" % (s, signer, r.body))

    def test_join_token_is_one_time_across_servers(self):
        vm = self.c.cli("vm", "create", "--name", "onetime", "--assign-identity")
        jt = vm["joinToken"]
        d1 = os.path.join(self.c.dir, "onetime-a")
        d2 = os.path.join(self.c.dir, "onetime-b")
        ok = 0
        for d, s in ((d1, "s1"), (d2, "s2")):
            jf = os.path.join(self.c.dir, "jt-" + s)
            with open(jf, "w") as f:
                f.write(jt)
            port = free_port()
            p = subprocess.Popen([BIN, "agent", "--vm", "onetime", "--join-file", jf, "--server",
                                  "https://%s:%d" % (LB_HOST, self.c.ports[s]), "--listen", "127.0.0.1:%d" % port,
                                  "--state", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                wait_port(port, p, timeout=15)
                ok += 1
            except RuntimeError:
                pass
            finally:
                if p.poll() is None:
                    p.terminate()
                p.communicate(timeout=15)
        self.assertEqual(ok, 1, "a join token enrolled %d agents" % ok)

    # ---- 2. server loss ----
    def test_kill_9_of_a_server_under_sdk_load_fails_no_operation(self):
        def during(t0):
            time.sleep(4)
            self.c.kill("s1")
        acks, fails = self.run_load(12, 4, "srvloss", during)
        self.assertEqual(fails, [], "failed SDK operations: %s" % fails[:5])
        self.assertGreater(len(acks), 20)
        self.assertTrue(any(a["t"] > time.time() - 6 for a in acks), "no write after the kill")
        self.check_all_acked(acks)

    # ---- 3. database failover ----
    def test_kill_9_of_the_primary_loses_no_acknowledged_write(self):
        killed = {}

        def during(t0):
            time.sleep(4)
            killed["t"] = float(formation("kill-primary", self.c.pgdir).split()[1])
        acks, fails = self.run_load(40, 4, "pgfail", during)
        kt = killed["t"]
        # The outage as the workload saw it: the longest pause between acknowledged writes
        # around the kill (a write in flight at the kill may still be acknowledged right after it).
        ts = sorted(a["t"] for a in acks)
        self.assertTrue(any(t > kt for t in ts), "no write acknowledged after the primary was killed")
        pause = max(b - a for a, b in zip(ts, ts[1:]) if b > kt - 1)
        resumed = min(a["t"] for a in acks if a["t0"] > kt) - kt
        self.assertLess(pause, 30.0, "writes paused for %.1f s" % pause)
        print("\nfailover: writes paused %.2f s; the first write started after kill -9 of the primary was "
              "acknowledged %.2f s after it; %d writes acknowledged, %d SDK calls failed"
              % (pause, resumed, len(acks), len(fails)), file=sys.stderr)
        self.assertEqual(fails, [], "failed SDK operations: %s" % fails[:5])
        # servers were not restarted: they reconnected by themselves
        for s in ("s1", "s2"):
            self.assertIsNone(self.c.procs[s].poll(), "%s exited" % s)
        self.check_all_acked(acks)
        # the old primary rejoins as a standby so later tests have a synchronous pair again
        self.c_restart_old_primary()

    def c_restart_old_primary(self):
        states = formation("state", self.c.pgdir)
        for line in states.splitlines():
            name, _port, cur, _assigned = line.split("|")
            if cur in ("demoted", "draining", "demote_timeout") or cur not in ("primary", "secondary", "wait_primary"):
                formation("restart-node", self.c.pgdir, name.replace("node", ""))
        formation("wait", self.c.pgdir, "120")


if __name__ == "__main__":
    unittest.main()
