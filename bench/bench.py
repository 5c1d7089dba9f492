"""bench.py: mivault's hot paths against references measured in the same run (issue 4).

Started by bench/run.sh, which installs what is needed and builds first. Every row is a pair run
interleaved, A B A B ... for --rounds rounds, and the table shows medians; ratios are computed per
round (A and B measured seconds apart) and their median is reported. Throughput counts only 2xx
responses. Latencies are wrk's (microseconds internally, printed in ms).

Rows (docs/benchmarks.md has the method and the recorded results):
  agent   GET /metadata/identity/oauth2/token (cached)  vs nginx `return 200` HTTP, same body
  get     vault GET /secrets/{name}/ over TLS            vs nginx `return 200` HTTPS, same body/cert
  token   authority client_credentials + private_key_jwt vs oidc-provider, and openssl speed rsa2048
  put     vault PUT /secrets/{name}, then a kill -9 mid-run and a check of acknowledged writes
  scale   vault GET with 1,000,000 secrets + 100,000 role assignments vs 1,000 secrets
  memory  `mivault up` idle RSS; server RSS under the GET load

Processes started here are stopped by pid at exit. Nothing outside the work directory is written
except results under build/bench/.
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WRK_DIR = os.path.join(HERE, "wrk")
CLK_TCK = os.sysconf("SC_CLK_TCK")
OFFICER = "Key Vault Secrets Officer"
STARTED = []  # Popen objects we own, stopped at exit


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process %s exited (%s) before listening" % (proc.args, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def spawn(args, logfile, **kw):
    f = open(logfile, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    STARTED.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def stop_all():
    for p in reversed(STARTED):
        stop(p)


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def cpu_split(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pss_mb(pid):
    """Proportional set size: shared pages (the binary, libraries) split between sharers."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def children(pid):
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


class RssSampler:
    """Peak RSS of a pid while a load runs (sampled every 0.2 s)."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            self._stop.wait(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


# ---------------------------------------------------------------- wrk

def wrk(url, script, args=(), conns=64, threads=2, duration=10, headers=(), pid=None, timeout="10s"):
    """Runs wrk; returns its WRKJSON summary plus ok (2xx) count, rps, and the CPU seconds and
    peak RSS of `pid` (the server under test) over the run."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--timeout", timeout,
           "-s", os.path.join(WRK_DIR, script)]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    if args:
        cmd += ["--"] + [str(a) for a in args]
    env = dict(os.environ, BENCH_WRK_DIR=WRK_DIR)
    cpu0 = cpu_split(pid) if pid else None
    sampler = RssSampler(pid) if pid else None
    if sampler:
        sampler.__enter__()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 120)
    finally:
        if sampler:
            sampler.__exit__()
    line = [x for x in r.stdout.splitlines() if x.startswith("WRKJSON ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("wrk failed (%d): %s %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    s = json.loads(line[0][len("WRKJSON "):])
    secs = s["duration_us"] / 1e6
    s["ok"] = s["requests"] - s["status"]
    s["rps"] = s["ok"] / secs
    s["all_rps"] = s["requests"] / secs
    s["stderr"] = r.stderr.strip()
    if pid:
        u1, k1 = cpu_split(pid)
        s["cpu_user"], s["cpu_sys"] = u1 - cpu0[0], k1 - cpu0[1]
        s["cpu"] = s["cpu_user"] + s["cpu_sys"]
        s["rss_peak_mb"] = sampler.peak
    return s


def openssl_rsa_sign_rate(seconds):
    r = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "rsa2048"], capture_output=True,
                       text=True, check=True)
    for line in r.stdout.splitlines():
        if line.startswith("rsa 2048 bits"):
            nums = [x for x in line.split()[3:] if not x.endswith("s")]
            return float(nums[0])
    raise RuntimeError("cannot parse openssl speed output:\n" + r.stdout)


def openssl_ecdsa_verify_rate(seconds):
    """P-256 ECDSA verifications per second of one core (the client assertion's ES256 check)."""
    r = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"], capture_output=True,
                       text=True, check=True)
    for line in r.stdout.splitlines():
        if "ecdsa (nistp256)" in line:
            nums = [x for x in line.split()[4:] if not x.endswith("s")]
            return float(nums[1])
    raise RuntimeError("cannot parse openssl speed output:\n" + r.stdout)


# ---------------------------------------------------------------- JOSE helpers

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class AssertionSigner:
    """RFC 7523 client assertions (ES256) with the state's admin key."""

    def __init__(self, key_file, client_id):
        with open(key_file, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)
        self.client_id = client_id
        self.head = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())

    def sign(self, aud, lifetime=540):
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": aud, "iat": now, "nbf": now,
                  "exp": now + lifetime, "jti": b64url(os.urandom(16))}
        msg = self.head + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        r, s = decode_dss_signature(self.key.sign(msg.encode(), ec.ECDSA(hashes.SHA256())))
        return msg + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def form(self, aud, resource):
        return urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.sign(aud), "resource": resource})

    def pool(self, path, n, aud, resource):
        with open(path, "w") as f:
            for _ in range(n):
                f.write(self.form(aud, resource) + "\n")


# ---------------------------------------------------------------- mivault

class Mivault:
    """One state dir: `mivault init` + `mivault server`, or `mivault up` (server + agent)."""

    def __init__(self, work, name, binary):
        self.bin = binary
        self.dir = os.path.join(work, name)
        self.name = name
        self.server_port = free_port()
        self.agent_port = free_port()
        self.up = self.server = self.agent = None
        self.logfile = os.path.join(work, name + ".log")

    # -- processes
    def init(self):
        self.run("init", "--server-port", str(self.server_port), "--agent-port", str(self.agent_port),
                 "--throttle-ops", "0", "--throttle-creates", "0")
        self._load_ids()

    def start_server(self):
        p = spawn([self.bin, "server", "--state", self.dir], self.logfile)
        wait_port(self.server_port, p)
        self.server = p
        return p

    def start_up(self):
        self.up = spawn([self.bin, "up", "--state", self.dir, "--server-port", str(self.server_port),
                         "--agent-port", str(self.agent_port), "--throttle-ops", "0",
                         "--throttle-creates", "0", "--imds-rate-limit", "0"], self.logfile)
        env_sh = os.path.join(self.dir, "env.sh")
        end = time.time() + 60
        while not os.path.exists(env_sh):
            if self.up.poll() is not None or time.time() > end:
                raise RuntimeError("mivault up failed, see %s" % self.logfile)
            time.sleep(0.1)
        # The server and the agent are threads of `up` (one process) unless it started them
        # as children (older trees, or up --imds-address for the agent).
        self.server_pid_ = self.agent_pid = self.up.pid
        for c in children(self.up.pid):
            argv = cmdline(c)
            if b"server" in argv:
                self.server_pid_ = c
            elif b"agent" in argv:
                self.agent_pid = c
        self._load_ids()

    @property
    def server_pid(self):
        return self.server.pid if self.server else self.server_pid_

    def up_pids(self):
        return sorted({self.up.pid, self.server_pid_, self.agent_pid})

    def _load_ids(self):
        with open(os.path.join(self.dir, "admin.json")) as f:
            a = json.load(f)
        self.tenant, self.sub, self.rg = a["tenantId"], a["subscriptionId"], a["resourceGroup"]
        self.admin_client = a["clientId"]
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))

    def run(self, *args):
        r = subprocess.run([self.bin] + list(args) + ["--state", self.dir], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError("mivault %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def cli(self, *args):
        out = self.run(*args)
        return json.loads(out) if out.strip() else None

    # -- names and URLs
    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.server_port

    @property
    def vault_resource(self):
        return "https://vault.localhost:%d" % self.server_port

    def vault_host(self, vault):
        return "%s.vault.localhost:%d" % (vault, self.server_port)

    def vault_scope(self, vault):
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s" % (
            self.sub, self.rg, vault)

    @property
    def issuer(self):
        return "%s/%s/" % (self.url, self.tenant)

    @property
    def token_path(self):
        return "/%s/oauth2/v2.0/token" % self.tenant

    # -- setup
    def ensure_vault(self, vault):
        try:
            self.cli("keyvault", "show", "--name", vault)
        except RuntimeError:
            self.cli("keyvault", "create", "--name", vault)

    def tokens(self, vault, principals, per_principal, path):
        """`principals` user-assigned identities, each granted Secrets Officer on the vault, and
        per_principal distinct tokens for each (minted with the tenant's signing key, the claims
        the authority issues: src/authority/issue.c). Written one per line to path."""
        toks = []
        now = int(time.time())
        for k in range(principals):
            ident = self.cli("identity", "create", "--name", "bench%d" % k)
            pid, cid = ident["properties"]["principalId"], ident["properties"]["clientId"]
            self.cli("role", "assignment", "create", "--assignee", pid, "--role", OFFICER,
                     "--scope", self.vault_scope(vault))
            for _ in range(per_principal):
                claims = {"aud": self.vault_resource, "iss": self.issuer, "iat": now, "nbf": now,
                          "exp": now + 86400, "aio": b64url(os.urandom(24)), "appid": cid, "appidacr": "2",
                          "idp": self.issuer, "idtyp": "app", "oid": pid, "rh": b64url(os.urandom(24)),
                          "sub": pid, "tid": self.tenant, "uti": b64url(os.urandom(16)), "ver": "1.0",
                          "xms_mirid": ident["id"]}
                toks.append(self.run("token", "mint", "--claims", json.dumps(claims)).strip())
        with open(path, "w") as f:
            f.write("\n".join(toks) + "\n")
        return toks

    def load(self, vault, secrets, assignments=0):
        r = subprocess.run([sys.executable, os.path.join(HERE, "load_scale.py"), "--state", self.dir, "--vault",
                            vault, "--secrets", str(secrets), "--assignments", str(assignments)],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    # -- single requests (checks before loads)
    def https(self, method, path, host, headers=None, body=None):
        c = _Conn(host.split(":")[0], self.server_port, self.ctx)
        h = {"Host": host}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        cipher = c.sock.cipher() if c.sock else None
        c.close()
        return r.status, data, cipher

    def vault_get(self, vault, name, token):
        return self.https("GET", "/secrets/%s/?api-version=7.5" % name, self.vault_host(vault),
                          {"Authorization": "Bearer " + token})


class _Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and certificate checks for a given host name."""

    def __init__(self, sni, port, context):
        super().__init__(sni, port, context=context, timeout=30)

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def imds_get(port, resource):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(
        {"api-version": "2018-02-01", "resource": resource}), headers={"Metadata": "true"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


# ---------------------------------------------------------------- nginx and oidc-provider

def nginx_body(b):
    # nginx's return text: single-quoted; '$' would start a variable. Same size either way.
    return b.decode().replace("\\", "_").replace("$", "_").replace("'", "_")


def start_nginx(work, http_port, https_port, http_body, https_body, cert, key):
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes %(workers)d;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type application/json;
  client_body_temp_path %(d)s/tmp;
  server { listen 127.0.0.1:%(hp)d; location / { return 200 '%(hb)s'; } }
  server {
    listen 127.0.0.1:%(sp)d ssl;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    location / { return 200 '%(sb)s'; }
  }
}
""" % {"workers": os.cpu_count(), "d": d, "hp": http_port, "sp": https_port, "hb": nginx_body(http_body),
       "sb": nginx_body(https_body), "cert": cert, "key": key})
    p = spawn(["nginx", "-p", d, "-c", conf, "-g", "daemon off;"], os.path.join(d, "out.log"))
    wait_port(http_port, p)
    wait_port(https_port, p)
    return p


def start_oidc(work, port, st, resource):
    pub = os.path.join(work, "admin-pub.pem")
    subprocess.run(["openssl", "pkey", "-in", os.path.join(st.dir, "admin.key"), "-pubout", "-out", pub],
                   check=True, capture_output=True)
    p = spawn(["node", os.path.join(HERE, "oidc", "server.mjs"), str(port), os.path.join(st.dir, "server.pem"),
               os.path.join(st.dir, "server.key"), st.admin_client, pub, resource],
              os.path.join(work, "oidc.log"), env=dict(os.environ, NODE_ENV="production"))
    wait_port(port, p)
    return p


# ---------------------------------------------------------------- rows

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pair_rounds(rounds, a, b, label_a, label_b):
    """A B A B ...: a() and b() each return a wrk summary; returns the lists."""
    ra, rb = [], []
    for i in range(rounds):
        ra.append(a())
        log("  round %d %s: %.0f/s p99 %.2f ms" % (i + 1, label_a, ra[-1]["rps"], ra[-1]["p99_us"] / 1000))
        rb.append(b())
        log("  round %d %s: %.0f/s p99 %.2f ms" % (i + 1, label_b, rb[-1]["rps"], rb[-1]["p99_us"] / 1000))
    return ra, rb


def summarize(runs):
    return {"rps": med([r["rps"] for r in runs]), "p50_ms": med([r["p50_us"] for r in runs]) / 1000,
            "p99_ms": med([r["p99_us"] for r in runs]) / 1000, "non2xx": sum(r["status"] for r in runs),
            "sock_errors": sum(r["connect"] + r["read"] + r["write"] + r["timeout"] for r in runs),
            "all_rps": med([r["all_rps"] for r in runs]), "runs": runs}


def ratio_med(a, b, key="rps"):
    return med([x[key] / y[key] if y[key] else None for x, y in zip(a, b)])


def row_agent(o, up, nginx_port):
    log("row agent: cached token from the agent vs nginx HTTP")
    q = "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(
        {"api-version": "2018-02-01", "resource": up.vault_resource})
    args = dict(conns=64, duration=o.duration, headers=["Metadata: true"])
    a, b = pair_rounds(o.rounds, lambda: wrk("http://127.0.0.1:%d%s" % (up.agent_port, q), "static.lua",
                                             pid=up.agent_pid, **args),
                       lambda: wrk("http://127.0.0.1:%d%s" % (nginx_port, q), "static.lua", **args),
                       "agent", "nginx-http")
    return {"a": summarize(a), "b": summarize(b), "ratio": ratio_med(a, b)}


def get_load(st, vault, tokens_file, nsecrets, duration, conns=64):
    return wrk(st.url, "vault_get.lua", [tokens_file, st.vault_host(vault), nsecrets, "s", 2], conns=conns,
               duration=duration, pid=st.server_pid)


def row_get(o, up, tokens_file, nsecrets, nginx_port):
    log("row get: vault GET over TLS vs nginx HTTPS")
    a, b = pair_rounds(o.rounds, lambda: get_load(up, "dev", tokens_file, nsecrets, o.duration),
                       lambda: wrk("https://127.0.0.1:%d" % nginx_port, "vault_get.lua",
                                   [tokens_file, up.vault_host("dev"), nsecrets, "s", 2], conns=64,
                                   duration=o.duration),
                       "mivault", "nginx-https")
    return {"a": summarize(a), "b": summarize(b), "ratio": ratio_med(a, b),
            "rss_peak_mb": max(r["rss_peak_mb"] for r in a)}


def row_token(o, work, up, signer, oidc_port):
    log("row token: authority vs oidc-provider vs openssl speed rsa2048")
    resource = up.vault_resource
    oidc_url = "https://127.0.0.1:%d" % oidc_port
    oidc = start_oidc(work, oidc_port, up, resource)
    pool_n = max(2000, o.pool_per_sec * o.duration)
    mv, od, speed, ecv = [], [], [], []
    try:
        for i in range(o.rounds):
            t0 = time.time()
            signer.pool(os.path.join(work, "pool-mv"), pool_n, up.url + up.token_path, resource)
            signer.pool(os.path.join(work, "pool-oidc"), pool_n, oidc_url, resource)
            log("  round %d: 2 x %d assertions in %.1f s" % (i + 1, pool_n, time.time() - t0))
            r = wrk(up.url, "token_post.lua", [os.path.join(work, "pool-mv"), up.token_path,
                                               "127.0.0.1:%d" % up.server_port, 2],
                    conns=32, duration=o.duration, pid=up.server_pid)
            r["per_cpu"] = r["ok"] / r["cpu"] if r["cpu"] else None
            mv.append(r)
            log("  round %d mivault: %.0f tokens/s, %.0f per CPU-s, p99 %.2f ms" % (
                i + 1, r["rps"], r["per_cpu"] or 0, r["p99_us"] / 1000))
            r = wrk(oidc_url, "token_post.lua", [os.path.join(work, "pool-oidc"), "/token",
                                                 "127.0.0.1:%d" % oidc_port, 2],
                    conns=32, duration=o.duration, pid=oidc.pid)
            r["per_cpu"] = r["ok"] / r["cpu"] if r["cpu"] else None
            od.append(r)
            log("  round %d oidc-provider: %.0f tokens/s, %.0f per CPU-s, p99 %.2f ms" % (
                i + 1, r["rps"], r["per_cpu"] or 0, r["p99_us"] / 1000))
            speed.append(openssl_rsa_sign_rate(o.speed_seconds))
            log("  round %d openssl speed rsa2048: %.0f signs/s" % (i + 1, speed[-1]))
            ecv.append(openssl_ecdsa_verify_rate(o.speed_seconds))
            log("  round %d openssl speed ecdsap256: %.0f verifies/s" % (i + 1, ecv[-1]))
    finally:
        stop(oidc)
    out = {"a": summarize(mv), "b": summarize(od), "openssl_signs": med(speed), "openssl_runs": speed,
           "ratio": ratio_med(mv, od),
           "per_cpu_a": med([r["per_cpu"] for r in mv]), "per_cpu_b": med([r["per_cpu"] for r in od]),
           "ratio_cpu_a": med([r["per_cpu"] / s if r["per_cpu"] else None for r, s in zip(mv, speed)]),
           "ratio_cpu_b": med([r["per_cpu"] / s if r["per_cpu"] else None for r, s in zip(od, speed)]),
           "pool": pool_n}
    # The floor of a token's cost: one RS256 sign (the token) + one ES256 verify (the client
    # assertion); as tokens per CPU-s, 1 / (1/signs + 1/verifies), from the same round's speeds.
    ceil = [1.0 / (1.0 / s + 1.0 / v) for s, v in zip(speed, ecv)]
    out.update({"openssl_ecdsa_verifies": med(ecv), "openssl_ecdsa_runs": ecv, "ceiling": med(ceil),
                "ceiling_ratio": med([c / s for c, s in zip(ceil, speed)]),
                "ratio_ceiling_a": med([r["per_cpu"] / c if r["per_cpu"] else None for r, c in zip(mv, ceil)])})
    return out


def put_load(st, tokens_file, tag, acks, duration):
    return wrk(st.url, "vault_put.lua", [tokens_file, st.vault_host("put"), tag, acks, 2], conns=32,
               duration=duration, pid=st.server_pid)


def row_put(o, work, binary):
    log("row put: durable PUT, then kill -9 mid-run")
    st = Mivault(work, "put", binary)
    st.init()
    st.start_server()
    st.ensure_vault("put")
    tokens_file = os.path.join(work, "tokens-put")
    st.tokens("put", 4, 8, tokens_file)
    acks = os.path.join(work, "acks")
    os.makedirs(acks, exist_ok=True)
    runs = []
    for i in range(o.rounds):
        runs.append(put_load(st, tokens_file, "r%d" % i, acks, o.duration))
        log("  round %d: %.0f writes/s p99 %.2f ms" % (i + 1, runs[-1]["rps"], runs[-1]["p99_us"] / 1000))
    # kill -9 in the middle of a run, then restart and look for every acknowledged write
    kill_d = max(o.duration, 4)
    box = {}
    t = threading.Thread(target=lambda: box.update(r=wrk(st.url, "vault_put.lua",
                                                         [tokens_file, st.vault_host("put"), "k", acks, 2],
                                                         conns=32, duration=kill_d)))
    t.start()
    time.sleep(kill_d / 2.0)
    st.server.send_signal(signal.SIGKILL)
    st.server.wait()
    t.join()
    st.start_server()
    acked = set()
    for fn in os.listdir(acks):
        if fn.startswith("acks.k."):
            with open(os.path.join(acks, fn)) as f:
                for line in f:
                    name, ver = line.split()
                    acked.add((name.lower(), ver.lower()))
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(st.dir, "mivault.db"), uri=True)
    present = set((n.lower(), v.lower()) for n, v in db.execute(
        "SELECT name, version FROM secrets WHERE vault = 'put' AND name LIKE 'k%'"))
    db.close()
    lost = sorted(acked - present)
    # and through the API: a sample of the acknowledged writes must be served after the restart
    tok = open(tokens_file).readline().strip()
    sample = sorted(acked)[:: max(1, len(acked) // 100)][:100]
    bad_api = 0
    for name, ver in sample:
        status, body, _ = st.https("GET", "/secrets/%s/%s?api-version=7.5" % (name, ver), st.vault_host("put"),
                                   {"Authorization": "Bearer " + tok})
        if status != 200 or json.loads(body).get("value") != "v" * 48:
            bad_api += 1
    log("  kill -9: %d acknowledged before the kill, %d lost, %d unacknowledged rows present, "
        "%d/%d API checks failed" % (len(acked), len(lost), len(present - acked), bad_api, len(sample)))
    stop(st.server)
    return {"a": summarize(runs), "acked": len(acked), "lost": len(lost), "lost_sample": lost[:5],
            "extra": len(present - acked), "api_checked": len(sample), "api_bad": bad_api,
            "kill_run_rps_before": box["r"]["ok"] / (kill_d / 2.0) if "r" in box else None}


def row_scale(o, work, binary, small, small_tokens, small_n):
    log("row scale: %d secrets + %d role assignments vs %d secrets" % (o.scale_secrets, o.scale_assignments,
                                                                       small_n))
    st = Mivault(work, "scale", binary)
    st.init()
    st.start_server()
    st.ensure_vault("dev")
    tokens_file = os.path.join(work, "tokens-scale")
    toks = st.tokens("dev", 8, 8, tokens_file)
    stop(st.server)
    t0 = time.time()
    load = st.load("dev", o.scale_secrets, o.scale_assignments)
    load["wall_s"] = round(time.time() - t0, 2)
    log("  loaded in %.1f s (%s)" % (load["wall_s"], load))
    st.start_server()
    status, body, _ = st.vault_get("dev", "s%07d" % (o.scale_secrets - 1), toks[0])
    if status != 200:
        raise RuntimeError("scale GET check failed: %d %s" % (status, body[:300]))
    a, b = pair_rounds(o.rounds, lambda: get_load(st, "dev", tokens_file, o.scale_secrets, o.duration),
                       lambda: get_load(small, "dev", small_tokens, small_n, o.duration),
                       "%d secrets" % o.scale_secrets, "%d secrets" % small_n)
    rss = max(r["rss_peak_mb"] for r in a)
    stop(st.server)
    dbsize = sum(os.path.getsize(os.path.join(st.dir, f)) for f in os.listdir(st.dir) if f.startswith("mivault.db"))
    return {"a": summarize(a), "b": summarize(b), "ratio": ratio_med(a, b), "load": load,
            "rss_peak_mb": rss, "db_mb": dbsize / 1e6}


# ---------------------------------------------------------------- table

def fmt_rps(x):
    return "-" if x is None else ("%.0f" % x)


def fmt_ms(x):
    return "-" if x is None else ("%.2f" % x)


def table(R, o):
    lines = []
    add = lines.append
    add("| path | mivault /s | p50 ms | p99 ms | reference | ref /s | ref p50 | ref p99 | ratio (median) | target |")
    add("|---|---:|---:|---:|---|---:|---:|---:|---:|---|")

    def row(name, r, ref, ratio, target):
        a, b = r["a"], r.get("b")
        add("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt_rps(a["rps"]), fmt_ms(a["p50_ms"]), fmt_ms(a["p99_ms"]), ref,
            fmt_rps(b["rps"]) if b else "-", fmt_ms(b["p50_ms"]) if b else "-", fmt_ms(b["p99_ms"]) if b else "-",
            "-" if ratio is None else "%.2f" % ratio, target))
    if "agent" in R:
        row("agent: cached token (HTTP, c64)", R["agent"], "nginx HTTP", R["agent"]["ratio"], ">= 0.5")
    if "get" in R:
        row("vault GET (TLS, c64)", R["get"], "nginx HTTPS", R["get"]["ratio"], ">= 0.45, p99 < 5 ms")
    if "token" in R:
        t = R["token"]
        row("authority token (TLS, c32): throughput", t, "oidc-provider", t["ratio"], ">= 1.5")
        add("| authority token: tokens per CPU-s | %s | | | openssl speed rsa2048 signs/s (1 core) | %s | | | %s | >= 0.8 |" % (
            fmt_rps(t["per_cpu_a"]), fmt_rps(t["openssl_signs"]),
            "-" if t["ratio_cpu_a"] is None else "%.2f" % t["ratio_cpu_a"]))
        if t.get("ceiling"):
            add("| authority token: tokens per CPU-s vs the floor of 1 RSA-2048 sign + 1 P-256 verify "
                "(openssl speed; %.0f verifies/s) | %s | | | that floor, tokens per CPU-s | %s | | | %.2f | "
                "(the floor is %.2f x signs/s) |" % (
                    t["openssl_ecdsa_verifies"], fmt_rps(t["per_cpu_a"]), fmt_rps(t["ceiling"]),
                    t["ratio_ceiling_a"] or 0, t["ceiling_ratio"]))
        add("| oidc-provider: tokens per CPU-s | %s | | | openssl speed rsa2048 | %s | | | %s | (0.57 measured in the issue) |" % (
            fmt_rps(t["per_cpu_b"]), fmt_rps(t["openssl_signs"]),
            "-" if t["ratio_cpu_b"] is None else "%.2f" % t["ratio_cpu_b"]))
    if "put" in R:
        p = R["put"]
        row("vault PUT, durable (TLS, c32)", p, "-", None, ">= 3000/s")
        add("| PUT kill -9 mid-run | %d acked | | | lost after restart | %d | | | | 0 |" % (p["acked"], p["lost"]))
    if "scale" in R:
        s = R["scale"]
        row("scale: GET, %s secrets + %s assignments" % (o.scale_secrets, o.scale_assignments), s,
            "GET, %d secrets" % R["small_n"], s["ratio"], ">= 0.8")
        add("| scale: bulk load (bench/load_scale.py) | %.1f s | | | | | | | | reasonable |" % s["load"]["wall_s"])
    if "memory" in R:
        m = R["memory"]
        add("| memory: `mivault up` idle RSS, sum over its processes (PSS sum) | %.1f MB (%.1f) | | | | | | | | < 30 MB |" % (
            m["up_idle_mb"], m["up_idle_pss_mb"]))
        if "get_peak_mb" in m:
            add("| memory: server RSS under the GET load (peak) | %.1f MB | | | | | | | | < 100 MB |" % m["get_peak_mb"])
        if m.get("scale_peak_mb"):
            add("| memory: server RSS under the scale GET load (peak) | %.1f MB | | | | | | | | |" % m["scale_peak_mb"])
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="mivault benchmarks (issue 4)")
    ap.add_argument("--smoke", action="store_true", help="1 round, 2 s each, tiny scale (CI)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rows", default="agent,get,token,put,scale")
    ap.add_argument("--scale-secrets", type=int, default=1000000)
    ap.add_argument("--scale-assignments", type=int, default=100000)
    ap.add_argument("--speed-seconds", type=int, default=5)
    ap.add_argument("--pool-per-sec", type=int, default=5000, help="assertions generated per second of run")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "mivault"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    o = ap.parse_args()
    if o.smoke:
        o.rounds, o.duration, o.speed_seconds = 1, 2, 1
        o.scale_secrets, o.scale_assignments = 5000, 500
    rows = set(o.rows.split(","))
    small_n = 1000
    t_start = time.time()
    work = tempfile.mkdtemp(prefix="mivault-bench.")
    os.chmod(work, 0o711)  # as root the server drops to the mivault user, which must reach its state
    binary = os.path.join(work, "mivault")
    shutil.copy2(o.bin, binary)  # the tree may be rebuilt while we run
    log("work dir %s, %d cores, %d round(s) of %d s" % (work, os.cpu_count(), o.rounds, o.duration))
    R = {"cores": os.cpu_count(), "rounds": o.rounds, "duration": o.duration, "small_n": small_n,
         "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": git_head(), "loadavg_start": loadavg()}
    try:
        up = Mivault(work, "up", binary)
        up.start_up()
        time.sleep(3)
        R["memory"] = {"up_idle_mb": sum(rss_mb(p) for p in up.up_pids()),
                       "up_idle_pss_mb": sum(pss_mb(p) for p in up.up_pids()),
                       "up_idle_each_mb": {cmdline(p)[1].decode(): rss_mb(p) for p in up.up_pids()}}
        log("mivault up idle RSS %.1f MB %s" % (R["memory"]["up_idle_mb"], R["memory"]["up_idle_each_mb"]))
        up.load("dev", small_n)
        tokens_file = os.path.join(work, "tokens-up")
        toks = up.tokens("dev", 8, 8, tokens_file)
        status, agent_body = imds_get(up.agent_port, up.vault_resource)
        if status != 200:
            raise RuntimeError("agent check failed: %d %s" % (status, agent_body[:300]))
        status, get_body, cipher = up.vault_get("dev", "s0000000", toks[0])
        if status != 200:
            raise RuntimeError("vault GET check failed: %d %s" % (status, get_body[:300]))
        R["tls"] = cipher
        R["bodies"] = {"agent": len(agent_body), "get": len(get_body)}
        ng_http, ng_https = free_port(), free_port()
        nginx = start_nginx(work, ng_http, ng_https, agent_body, get_body, os.path.join(up.dir, "server.pem"),
                            os.path.join(up.dir, "server.key"))
        if "agent" in rows:
            R["agent"] = row_agent(o, up, ng_http)
        if "get" in rows:
            R["get"] = row_get(o, up, tokens_file, small_n, ng_https)
            R["memory"]["get_peak_mb"] = R["get"]["rss_peak_mb"]
        stop(nginx)
        if "token" in rows:
            R["token"] = row_token(o, work, up, AssertionSigner(os.path.join(up.dir, "admin.key"), up.admin_client),
                                   free_port())
        if "put" in rows:
            R["put"] = row_put(o, work, binary)
        if "scale" in rows:
            R["scale"] = row_scale(o, work, binary, up, tokens_file, small_n)
            R["memory"]["scale_peak_mb"] = R["scale"]["rss_peak_mb"]
        R["memory"]["server_after_mb"] = rss_mb(up.server_pid)
        stop(up.up)
    finally:
        stop_all()
    R["elapsed_s"] = round(time.time() - t_start, 1)
    R["loadavg_end"] = loadavg()
    md = table(R, o)
    print()
    print(md)
    print()
    notes(R)
    outdir = os.path.join(ROOT, "build", "bench")
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-smoke" if o.smoke else "")
    with open(os.path.join(outdir, "results-%s.json" % stamp), "w") as f:
        json.dump(R, f, indent=1, default=str)
    with open(os.path.join(outdir, "results-%s.md" % stamp), "w") as f:
        f.write(md + "\n")
    log("results in build/bench/results-%s.{json,md}; %.0f s in all" % (stamp, R["elapsed_s"]))
    if not o.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def notes(R):
    """Facts the table hides: error counts, CPU split, sizes."""
    out = []
    out.append("cores: %d; rounds: %d x %d s; TLS: %s; body sizes: %s; load average %s at start, %s at end" % (
        R["cores"], R["rounds"], R["duration"], R.get("tls"), R.get("bodies"), R["loadavg_start"],
        R.get("loadavg_end")))
    for k in ("agent", "get", "token", "put", "scale"):
        if k not in R:
            continue
        for side in ("a", "b"):
            s = R[k].get(side)
            if not s:
                continue
            cpu = [r for r in s["runs"] if "cpu" in r]
            extra = ""
            if cpu:
                u = sum(r["cpu_user"] for r in cpu)
                k_ = sum(r["cpu_sys"] for r in cpu)
                extra = ", server CPU %.0f%% user / %.0f%% sys, %.2f cores busy" % (
                    100 * u / (u + k_ or 1), 100 * k_ / (u + k_ or 1),
                    (u + k_) / sum(r["duration_us"] / 1e6 for r in cpu))
            out.append("%s/%s: non-2xx %d, socket errors %d, all responses %.0f/s%s" % (
                k, side, s["non2xx"], s["sock_errors"], s["all_rps"], extra))
    if "put" in R:
        p = R["put"]
        out.append("put kill -9: acked %d, lost %d, unacked-but-stored %d, API re-read %d/%d bad" % (
            p["acked"], p["lost"], p["extra"], p["api_bad"], p["api_checked"]))
    if "scale" in R:
        out.append("scale: load %s, db %.0f MB" % (R["scale"]["load"], R["scale"]["db_mb"]))
    if "memory" in R:
        out.append("memory: %s" % {k: (round(v, 1) if isinstance(v, float) else v) for k, v in R["memory"].items()})
    for line in out:
        print("  " + line)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def git_head():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
