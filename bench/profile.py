"""profile.py: callgrind profiles of the three hot paths (`bash bench/run.sh --profile`).

perf's hardware counters are not available on these VMs (`perf stat -e instructions true` says
<not supported>), so this uses valgrind --tool=callgrind: instruction counts, exact and
repeatable, but blind to time spent in the kernel and waiting (fsync, syscalls): the benchmark's
user/sys CPU split covers those.

For each path the process under test runs under callgrind with instrumentation off during startup
(--instr-atstart=no) and on only while the load runs (callgrind_control -i on/off), so the
counts are the hot path's own:
  agent   `mivault agent`, paced keep-alive GETs of a cached token (below the agent's 200/s
          IMDS rate limit, so every request is a real cached-token answer, no 429)
  get     `mivault server`, wrk -c8 GET /secrets/{name}/ over TLS, 64 distinct tokens
  token   `mivault server`, wrk -c8 client_credentials + private_key_jwt (ES256 assertion)
  sign    `mivault server`, wrk -c8 POST /keys/ec//sign, ES256 with a P-256 key (bench/keys.py's
          row; not in the default --paths: ask for it with --paths get,sign)
Writes build/bench/profile-<path>.{out,txt}: the raw callgrind file and a summary with the
instruction count per request, the top functions (self and inclusive) and the cost per shared
object. Options: --seconds N (load per path, default 20), --paths agent,get,token[,sign],
--from-start (no callgrind_control: for when vgdb cannot reach the server, e.g. it blocks while the
server idles in epoll_wait after dropping to the mivault user).
"""
import argparse
import base64
import collections
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

OUT = os.path.join(bench.ROOT, "build", "bench")


FROM_START = False  # --from-start: instrument everything, no callgrind_control


def callgrind(args, out, logfile):
    if os.geteuid() == 0:
        # as root the server drops to the mivault user before callgrind writes its file at exit:
        # give that user the file, or it stays empty
        import pwd
        open(out, "w").close()
        os.chmod(out, 0o644)
        u = pwd.getpwnam("mivault")
        os.chown(out, u.pw_uid, u.pw_gid)
    return bench.spawn(["valgrind", "--tool=callgrind", "--instr-atstart=" + ("yes" if FROM_START else "no"),
                        "--callgrind-out-file=" + out, "--separate-threads=no"] + args, logfile)


def collect(pid, on):
    if FROM_START:
        return
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], check=True, capture_output=True)


def self_by_object(path):
    """Exclusive instruction counts per shared object and per function from a callgrind file
    (cost lines right after a calls= line are inclusive call costs and are skipped)."""
    names = {"ob": {}, "fn": {}}
    by_ob, by_fn = collections.Counter(), collections.Counter()
    ob = fn = "?"
    skip_next = False
    pos_fields = 1
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("positions:"):
                pos_fields = len(line.split()) - 1
                continue
            m = re.match(r"^(ob|fn|cob|cfn|cfi|cfl|fl|fi|fe)=(?:\((\d+)\))?\s*(.*)$", line.rstrip("\n"))
            if m:
                kind, ident, name = m.groups()
                base = "ob" if kind in ("ob", "cob") else "fn" if kind in ("fn", "cfn") else None
                if base and ident is not None:
                    if name:
                        names[base][ident] = name
                    else:
                        name = names[base].get(ident, "?")
                if kind == "ob":
                    ob = name
                elif kind == "fn":
                    fn = name
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > pos_fields:
                    c = int(parts[pos_fields])
                    by_ob[os.path.basename(ob)] += c
                    by_fn[(os.path.basename(ob), fn)] += c
    return by_ob, by_fn


def summarize(name, out, requests):
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99", out], capture_output=True,
                         text=True).stdout
    by_ob, by_fn = self_by_object(out)
    total = sum(by_ob.values()) or 1
    lines = ["# profile: %s" % name, "",
             "requests served while collecting: %d; instructions: %d; per request: %.0f" % (
                 requests, total, total / max(1, requests)), "",
             "## self cost by shared object", ""]
    for ob, c in by_ob.most_common(12):
        lines.append("%6.2f%%  %s" % (100.0 * c / total, ob))
    lines += ["", "## top functions by self cost", ""]
    for (ob, fn), c in by_fn.most_common(30):
        lines.append("%6.2f%%  %-60s %s" % (100.0 * c / total, fn[:60], ob))
    lines += ["", "## inclusive (callgrind_annotate --inclusive=yes), first 60 lines", ""]
    lines += ann.splitlines()[:90]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "profile-%s.txt" % name), "w") as f:
        f.write(text)
    print(text[:6000])


def paced_imds(port, resource, seconds, rate):
    q = "/metadata/identity/oauth2/token?" + urllib.parse.urlencode({"api-version": "2018-02-01",
                                                                     "resource": resource})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = bad = 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        c.request("GET", q, headers={"Metadata": "true"})
        r = c.getresponse()
        r.read()
        n += 1
        bad += r.status != 200
        delay = t0 + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
    c.close()
    if bad:
        print("agent profile: %d of %d requests were not 200" % (bad, n), file=sys.stderr)
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--paths", default="agent,get,token")
    ap.add_argument("--bin", default=os.path.join(bench.ROOT, "build", "release", "mivault"))
    ap.add_argument("--from-start", action="store_true",
                    help="instrument from the start instead of callgrind_control -i on/off (the totals then "
                         "include start-up: read the per-call inclusive counts of the handlers)")
    o = ap.parse_args()
    global FROM_START
    FROM_START = o.from_start
    paths = o.paths.split(",")
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mivault-profile.")
    os.chmod(work, 0o711)  # as root the server drops to the mivault user, which must reach its state
    binary = os.path.join(work, "mivault")
    shutil.copy2(o.bin, binary)
    try:
        st = bench.Mivault(work, "prof", binary)
        st.init()
        st.start_server()
        st.ensure_vault("dev")
        st.load("dev", 1000)
        tokens_file = os.path.join(work, "tokens")
        if "sign" in paths:  # the identities also need the keys data actions
            bench.OFFICER = "Key Vault Administrator"
        toks = st.tokens("dev", 8, 8, tokens_file)
        digest = base64.urlsafe_b64encode(hashlib.sha256(b"bench").digest()).rstrip(b"=").decode()
        vm = st.cli("vm", "create", "--name", "pvm", "--assign-identity")
        join = vm.get("joinToken") if isinstance(vm, dict) else None
        if not join:
            join = st.cli("vm", "join-token", "--name", "pvm")["joinToken"]
        bench.stop(st.server)

        if "agent" in paths:
            # The server runs normally; the agent under callgrind.
            st.start_server()
            out = os.path.join(OUT, "profile-agent.out")
            ap_ = callgrind([binary, "agent", "--vm", "pvm", "--join", join, "--listen",
                             "127.0.0.1:%d" % st.agent_port, "--state", st.dir], out,
                            os.path.join(work, "agent-vg.log"))
            bench.wait_port(st.agent_port, ap_, timeout=120)
            bench.imds_get(st.agent_port, st.vault_resource)  # fills the cache
            collect(ap_.pid, True)
            n = paced_imds(st.agent_port, st.vault_resource, o.seconds, 150)
            collect(ap_.pid, False)
            bench.stop(ap_, timeout=120)
            bench.stop(st.server)
            summarize("agent", out, n)

        for name in ("get", "token", "sign"):
            if name not in paths:
                continue
            out = os.path.join(OUT, "profile-%s.out" % name)
            sp = callgrind([binary, "server", "--state", st.dir], out, os.path.join(work, name + "-vg.log"))
            bench.wait_port(st.server_port, sp, timeout=120)
            st.server = sp
            if name == "get":
                args = [tokens_file, st.vault_host("dev"), 1000, "s", 1]
                script = "vault_get.lua"
            elif name == "sign":
                host = st.vault_host("dev")
                auth = {"Authorization": "Bearer " + toks[0], "Content-Type": "application/json"}
                status, data, _ = st.https("POST", "/keys/ec/create?api-version=7.5", host, auth,
                                           json.dumps({"kty": "EC", "crv": "P-256"}))
                if status != 200:
                    raise RuntimeError("create ec: %d %s" % (status, data[:300]))
                args = [tokens_file, host, "ec", "ES256", digest, 1]
                script = "vault_sign.lua"
            else:
                signer = bench.AssertionSigner(os.path.join(st.dir, "admin.key"), st.admin_client)
                pool = os.path.join(work, "pool")
                signer.pool(pool, 5000, st.url + st.token_path, st.vault_resource)
                args = [pool, st.token_path, "127.0.0.1:%d" % st.server_port, 1]
                script = "token_post.lua"
            # warm up (TLS handshakes, caches) outside the collection window
            bench.wrk(st.url, script, args, conns=8, threads=1, duration=3, timeout="30s")
            collect(sp.pid, True)
            r = bench.wrk(st.url, script, args, conns=8, threads=1, duration=o.seconds, timeout="30s")
            collect(sp.pid, False)
            bench.stop(sp, timeout=120)
            st.server = None
            summarize(name, out, r["ok"])
    finally:
        bench.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
