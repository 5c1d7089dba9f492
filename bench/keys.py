#!/usr/bin/env python3
"""keys.py: the keys row of issue 9 (docs/benchmarks.md "Keys"): POST /keys/k//sign with an
RSA-2048 key and a P-256 key, 32 connections, against `openssl speed` on the same machine in the
same run. The comparison is per CPU-second: the server's signatures per second of CPU it used
(user + system, all its loops) over openssl's single-core signs per second, so the number of cores
and other load on the machine cancel out. Target: >= 0.7 for RSA-2048.

    python3 bench/keys.py [--rounds N] [--duration S] [--conns C]

Uses bench.py's helpers (state dir, minted tokens, wrk with WRKJSON summaries, CPU accounting).
Prints a table and writes build/bench/keys-<time>.{md,json}."""
import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def openssl_speed(alg, seconds, marker, col):
    """Single-core rate from `openssl speed`: the col-th number of the line containing marker."""
    r = subprocess.run(["openssl", "speed", "-seconds", str(seconds), alg], capture_output=True, text=True,
                       check=True)
    for line in r.stdout.splitlines():
        if marker in line and "/s" not in line:
            nums = [x for x in line.split() if x.replace(".", "", 1).isdigit()]
            return float(nums[col])
    raise RuntimeError("cannot parse openssl speed %s:\n%s" % (alg, r.stdout))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--speed-seconds", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(bench.ROOT, "build", "release", "mivault"))
    o = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mivault-bench-keys.")
    os.chmod(work, 0o711)  # as root the server drops to the mivault user, which must reach its state
    binary = os.path.join(work, "mivault")
    shutil.copy2(o.bin, binary)
    R = {"cores": os.cpu_count(), "rounds": o.rounds, "duration": o.duration, "conns": o.conns,
         "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": bench.git_head(),
         "loadavg_start": bench.loadavg()}
    try:
        st = bench.Mivault(work, "keys", binary)
        st.init()
        st.start_server()
        st.ensure_vault("keys")
        bench.OFFICER = "Key Vault Crypto Officer"  # the role tokens() grants its identities
        tokens_file = os.path.join(work, "tokens")
        toks = st.tokens("keys", 4, 8, tokens_file)
        host = st.vault_host("keys")
        auth = {"Authorization": "Bearer " + toks[0], "Content-Type": "application/json"}
        for name, body in (("rsa", {"kty": "RSA", "key_size": 2048}), ("ec", {"kty": "EC", "crv": "P-256"})):
            status, data, _ = st.https("POST", "/keys/%s/create?api-version=7.5" % name, host, auth,
                                       json.dumps(body))
            if status != 200:
                raise RuntimeError("create %s: %d %s" % (name, status, data[:300]))
        digest = base64.urlsafe_b64encode(hashlib.sha256(b"bench").digest()).rstrip(b"=").decode()
        for name, alg, speed_alg, marker, col in (("rsa", "RS256", "rsa2048", "rsa 2048 bits", 1),
                                                  ("ec", "ES256", "ecdsap256", "ecdsa (nistp256)", 1)):
            status, data, _ = st.https("POST", "/keys/%s//sign?api-version=7.5" % name, host, auth,
                                       json.dumps({"alg": alg, "value": digest}))
            if status != 200:
                raise RuntimeError("sign %s: %d %s" % (name, status, data[:300]))
            runs, speeds = [], []
            for i in range(o.rounds):
                r = bench.wrk(st.url, "vault_sign.lua", [tokens_file, host, name, alg, digest, 2], conns=o.conns,
                              duration=o.duration, pid=st.server.pid)
                r["per_cpu"] = r["ok"] / r["cpu"] if r["cpu"] else None
                runs.append(r)
                speeds.append(openssl_speed(speed_alg, o.speed_seconds, marker, col))
                bench.log("  %s round %d: %.0f signs/s, %.0f per CPU-s (%.2f CPU-s/s), p99 %.2f ms, "
                          "non-2xx %d; openssl speed %s: %.0f signs/s" % (
                              alg, i + 1, r["rps"], r["per_cpu"] or 0, r["cpu"] / (r["duration_us"] / 1e6),
                              r["p99_us"] / 1000, r["status"], speed_alg, speeds[-1]))
            ratios = [r["per_cpu"] / s for r, s in zip(runs, speeds) if r["per_cpu"]]
            R[name] = {"alg": alg, "rps": bench.med([r["rps"] for r in runs]),
                       "per_cpu": bench.med([r["per_cpu"] for r in runs]), "openssl": bench.med(speeds),
                       "ratio": bench.med(ratios), "ratios": ratios,
                       "p99_ms": bench.med([r["p99_us"] / 1000 for r in runs]),
                       "errors": sum(r["status"] + r["timeout"] for r in runs)}
    finally:
        bench.stop_all()
    R["loadavg_end"] = bench.loadavg()
    lines = ["| row | mivault | openssl speed (1 core, same run) | ratio per CPU-second | target |",
             "|---|---|---|---|---|"]
    for name, label, target in (("rsa", "sign RS256, RSA-2048", 0.7), ("ec", "sign ES256, P-256", None)):
        x = R[name]
        lines.append("| %s, c%d | %.0f signs/s, %.0f per CPU-s, p99 %.1f ms | %.0f signs/s | **%.2f** (rounds: %s) | %s |" % (
            label, o.conns, x["rps"], x["per_cpu"], x["p99_ms"], x["openssl"], x["ratio"],
            ", ".join("%.2f" % v for v in x["ratios"]),
            ("≥ %.1f: %s" % (target, "met" if x["ratio"] >= target else "**not met**")) if target else "—"))
    md = "\n".join(lines)
    print(md)
    print("cores %d; load average %s at start, %s at end; %d non-2xx" % (
        R["cores"], R["loadavg_start"], R["loadavg_end"], R["rsa"]["errors"] + R["ec"]["errors"]))
    outdir = os.path.join(bench.ROOT, "build", "bench")
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(outdir, "keys-%s.json" % stamp), "w") as f:
        json.dump(R, f, indent=1, default=str)
    with open(os.path.join(outdir, "keys-%s.md" % stamp), "w") as f:
        f.write(md + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
