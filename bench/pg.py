"""pg.py: mivault on PostgreSQL against its references, measured in the same run (issue 7).

Started by bench/run.sh --pg (which installs and builds first). A pg_auto_failover formation (a
monitor and two nodes, the primary with a synchronous standby: scripts/pg-formation.sh) serves
every PostgreSQL row. Rows:

  get       vault GET by a PostgreSQL-backed server  vs  the same GET on a SQLite-backed server
  put       durable PUT on PostgreSQL (sync standby)  vs  pgbench running a one-row upsert at the
            same concurrency against the same formation (the database's own ceiling)
  failover  kill -9 of the primary under PUT load: the pause in acknowledged writes, the time from
            the kill to the first acknowledged write started after it, and writes lost (must be 0)

Pairs are interleaved A B A B for --rounds rounds; medians and per-round ratios as in bench.py.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import Mivault, free_port, log, med, pair_rounds, ratio_med, stop, summarize, wrk  # noqa: E402

ROOT = bench.ROOT
FORMATION = os.path.join(ROOT, "scripts", "pg-formation.sh")
PGBIN = "/usr/lib/postgresql/15/bin"
VALUE = "v" * 48


def formation(*args):
    r = subprocess.run(["bash", FORMATION] + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("pg-formation.sh %s: %s %s" % (" ".join(map(str, args)), r.stdout, r.stderr))
    return r.stdout.strip()


def free_base_port():
    for _ in range(200):
        base = free_port()
        if base > 60000:
            continue
        try:
            for p in (base, base + 1, base + 2):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                s.close()
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


class PgMivault(Mivault):
    """A server whose store is the formation."""

    def __init__(self, work, name, binary, url):
        super().__init__(work, name, binary)
        self.store_url = url

    def init(self):
        self.run("init", "--server-port", str(self.server_port), "--agent-port", str(self.agent_port),
                 "--throttle-ops", "0", "--throttle-creates", "0", "--store", self.store_url)
        self._load_ids()


def fill(st, token, n):
    """n secrets s0000000.. through the API (the PostgreSQL server has no direct loader)."""
    c = bench._Conn(st.vault_host("dev").split(":")[0], st.server_port, st.ctx)
    body = json.dumps({"value": VALUE})
    for i in range(n):
        c.request("PUT", "/secrets/s%07d?api-version=7.5" % i, body=body,
                  headers={"Host": st.vault_host("dev"), "Authorization": "Bearer " + token,
                           "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("fill: PUT %d -> %d" % (i, r.status))
    c.close()


def setup(st, work, name, nsecrets):
    st.init()
    st.start_server()
    st.ensure_vault("dev")
    st.ensure_vault("put")
    tokens_file = os.path.join(work, "tokens-" + name)
    toks = st.tokens("dev", 4, 8, tokens_file)
    for v in ("put",):
        for k in range(4):
            pid = st.cli("identity", "show", "--name", "bench%d" % k)["properties"]["principalId"]
            st.cli("role", "assignment", "create", "--assignee", pid, "--role", bench.OFFICER,
                   "--scope", st.vault_scope(v))
    fill(st, toks[0], nsecrets)
    return tokens_file, toks


def get_load(st, tokens_file, nsecrets, duration, conns=64):
    return wrk(st.url, "vault_get.lua", [tokens_file, st.vault_host("dev"), nsecrets, "s", 2], conns=conns,
               duration=duration, pid=st.server_pid)


def row_get(o, sq, pgm, sq_tokens, pg_tokens, n):
    log("row get: vault GET, PostgreSQL-backed server vs SQLite-backed server")
    a, b = pair_rounds(o.rounds, lambda: get_load(pgm, pg_tokens, n, o.duration),
                       lambda: get_load(sq, sq_tokens, n, o.duration), "postgresql", "sqlite")
    return {"a": summarize(a), "b": summarize(b), "ratio": ratio_med(a, b)}


def pgbench(o, port, conns, acks_dir):
    """pgbench: a one-row upsert like a secret PUT, on the formation's primary."""
    script = os.path.join(acks_dir, "upsert.sql")
    with open(script, "w") as f:
        f.write("\\set k random(1, 1000000)\n"
                "INSERT INTO bench_kv (k, v, ver) VALUES (:k, repeat('x', 200), 1)\n"
                "  ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, ver = bench_kv.ver + 1;\n")
    os.chmod(acks_dir, 0o755)
    os.chmod(script, 0o644)
    r = subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/pgbench", "-n", "-h", "127.0.0.1", "-p",
                        str(port), "-U", "postgres", "-f", script, "-M", "prepared", "-c", str(conns), "-j", "1",
                        "-T", str(o.duration), "mivault"], capture_output=True, text=True, timeout=o.duration + 120)
    if r.returncode != 0:
        raise RuntimeError("pgbench: %s %s" % (r.stdout[-1500:], r.stderr[-1500:]))
    tps = lat = None
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        if line.startswith("latency average = "):
            lat = float(line.split()[3])
    return {"rps": tps, "p50_us": (lat or 0) * 1000, "p99_us": (lat or 0) * 1000, "status": 0, "connect": 0,
            "read": 0, "write": 0, "timeout": 0, "all_rps": tps}


def row_put(o, pgm, pg_tokens, primary_port, work):
    log("row put: durable PUT on PostgreSQL (sync standby) vs pgbench upsert, %d connections each" % o.put_conns)
    subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/psql", "-h", "127.0.0.1", "-p", str(primary_port),
                    "-U", "postgres", "-d", "mivault", "-qc",
                    "CREATE TABLE IF NOT EXISTS bench_kv (k int PRIMARY KEY, v text NOT NULL, ver int NOT NULL)"],
                   check=True, capture_output=True)
    acks = os.path.join(work, "acks-pg")
    os.makedirs(acks, exist_ok=True)
    n = [0]

    def put():
        n[0] += 1
        return wrk(pgm.url, "vault_put.lua", [pg_tokens, pgm.vault_host("put"), "p%d" % n[0], acks, 2],
                   conns=o.put_conns, duration=o.duration, pid=pgm.server_pid)

    a, b = pair_rounds(o.rounds, put, lambda: pgbench(o, primary_port, o.put_conns, acks), "mivault-put",
                       "pgbench-upsert")
    return {"a": summarize(a), "b": summarize(b), "ratio": ratio_med(a, b), "conns": o.put_conns}


class PutLoad:
    """Threads that PUT new secrets through one server over keep-alive TLS, recording every
    acknowledged write with the time its request started (t0) and was acknowledged (t)."""

    def __init__(self, st, token, tag, threads=8):
        self.st, self.token, self.tag = st, token, tag
        self.acks, self.errors = [], 0
        self.lock = threading.Lock()
        self.stop_at = None
        self.threads = [threading.Thread(target=self.work, args=(i,)) for i in range(threads)]

    def conn(self):
        return bench._Conn(self.st.vault_host("put").split(":")[0], self.st.server_port, self.st.ctx)

    def work(self, w):
        c, i = None, 0
        while time.time() < self.stop_at:
            name = "%s-w%d-%d" % (self.tag, w, i)
            t0 = time.time()
            try:
                c = c or self.conn()
                c.request("PUT", "/secrets/%s?api-version=7.5" % name, body=json.dumps({"value": VALUE}),
                          headers={"Host": self.st.vault_host("put"), "Authorization": "Bearer " + self.token,
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status == 200:
                    ver = json.loads(body)["id"].rsplit("/", 1)[1]
                    with self.lock:
                        self.acks.append((name, ver, t0, time.time()))
                    i += 1
                else:
                    with self.lock:
                        self.errors += 1
                    time.sleep(0.05)  # the same name is retried: a 5xx wrote nothing
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.errors += 1
                c = None
                time.sleep(0.05)

    def run(self, seconds):
        self.stop_at = time.time() + seconds
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()


def row_failover(o, pgm, token, pgdir):
    log("row failover: kill -9 of the primary under PUT load, %d time(s)" % o.failovers)
    runs = []
    for k in range(o.failovers):
        formation("wait", pgdir, 180)
        load = PutLoad(pgm, token, "f%d" % k)
        load.run(o.failover_seconds)
        time.sleep(o.failover_seconds / 4.0)
        kt = float(formation("kill-primary", pgdir).split()[1])  # when the kill was sent
        load.join()
        ts = sorted(a[3] for a in load.acks)
        pause = max((b - a for a, b in zip(ts, ts[1:]) if b > kt - 1), default=None)
        after = [a[3] - kt for a in load.acks if a[2] > kt]
        # every acknowledged write, in the database the formation now serves
        url = formation("uri", pgdir)
        rows = subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/psql", url, "-Atc",
                               "SELECT name || ' ' || version FROM secrets WHERE vault = 'put' AND name LIKE "
                               "'f%d-%%'" % k], capture_output=True, text=True, check=True).stdout.split("\n")
        present = {tuple(x.split()) for x in rows if x.strip()}
        acked = {(a[0], a[1]) for a in load.acks}
        lost = acked - present
        dup = len(present) - len({n for n, _ in present})
        r = {"acked": len(acked), "lost": len(lost), "duplicates": dup, "pause_s": pause,
             "first_new_ack_s": min(after) if after else None, "errors": load.errors}
        log("  failover %d: pause %.2f s, first new write acknowledged %.2f s after the kill, %d acknowledged, "
            "%d lost, %d duplicate versions, %d failed requests (retried)" % (
                k + 1, pause or -1, r["first_new_ack_s"] or -1, len(acked), len(lost), dup, load.errors))
        runs.append(r)
        # the old primary rejoins as the standby
        for line in formation("state", pgdir).splitlines():
            name, _port, cur, _assigned = line.split("|")
            if cur not in ("primary", "secondary", "wait_primary"):
                formation("restart-node", pgdir, name.replace("node", ""))
        formation("wait", pgdir, 180)
    return {"runs": runs, "pause_s": med([r["pause_s"] for r in runs]),
            "first_new_ack_s": med([r["first_new_ack_s"] for r in runs]),
            "lost": sum(r["lost"] for r in runs), "duplicates": sum(r["duplicates"] for r in runs)}


def main():
    ap = argparse.ArgumentParser(description="mivault on PostgreSQL (issue 7)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rows", default="get,put,failover")
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--put-conns", type=int, default=16)
    ap.add_argument("--failovers", type=int, default=3)
    ap.add_argument("--failover-seconds", type=int, default=30)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "mivault"))
    o = ap.parse_args()
    if o.smoke:
        o.rounds, o.duration, o.secrets, o.failovers, o.failover_seconds = 1, 2, 100, 1, 16
    rows = set(o.rows.split(","))
    work = tempfile.mkdtemp(prefix="mivault-bench-pg.")
    os.chmod(work, 0o755)
    binary = os.path.join(work, "mivault")
    shutil.copy2(o.bin, binary)
    pgdir = os.path.join(work, "pg")
    R = {"cores": os.cpu_count(), "rounds": o.rounds, "duration": o.duration, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
         "commit": bench.git_head()}
    try:
        log("starting a pg_auto_failover formation (monitor + primary + synchronous standby)")
        url = formation("start", pgdir, free_base_port()).splitlines()[-1]
        primary = int(formation("primary", pgdir))
        sq = Mivault(work, "sq", binary)
        sq_tokens, _ = setup(sq, work, "sq", o.secrets)
        pgm = PgMivault(work, "pgm", binary, url)
        pg_tokens, pg_toks = setup(pgm, work, "pgm", o.secrets)
        if "get" in rows:
            R["get"] = row_get(o, sq, pgm, sq_tokens, pg_tokens, o.secrets)
        stop(sq.server)
        if "put" in rows:
            R["put"] = row_put(o, pgm, pg_tokens, primary, work)
        if "failover" in rows:
            R["failover"] = row_failover(o, pgm, pg_toks[0], pgdir)
    finally:
        bench.stop_all()
        subprocess.run(["bash", FORMATION, "stop", pgdir], capture_output=True)
    print("\nmivault on PostgreSQL, %d cores, commit %s, %s" % (R["cores"], R["commit"], R["date"]))
    if "get" in R:
        g = R["get"]
        print("get       PostgreSQL %.0f/s (p99 %.2f ms)  SQLite %.0f/s (p99 %.2f ms)  ratio %.2f  (target >= 0.8)" % (
            g["a"]["rps"], g["a"]["p99_ms"], g["b"]["rps"], g["b"]["p99_ms"], g["ratio"]))
    if "put" in R:
        p = R["put"]
        print("put       mivault %.0f writes/s (p99 %.2f ms)  pgbench upsert %.0f tps  ratio %.2f  at %d connections"
              "  (target >= 0.5)" % (p["a"]["rps"], p["a"]["p99_ms"], p["b"]["rps"], p["ratio"], p["conns"]))
    if "failover" in R:
        f = R["failover"]
        print("failover  pause in acknowledged writes %.2f s (median of %d), first new write acknowledged %.2f s"
              " after kill -9, %d lost, %d duplicate versions" % (f["pause_s"], len(f["runs"]),
                                                                   f["first_new_ack_s"], f["lost"], f["duplicates"]))
    out = os.path.join(ROOT, "build", "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "pg.json"), "w") as fh:
        json.dump(R, fh, indent=2, default=str)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
