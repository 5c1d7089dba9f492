#!/usr/bin/env bash
# run.sh [--smoke] [bench.py options]: the benchmark of issue 4 (docs/benchmarks.md).
# Installs what it needs (Debian: nginx-light wrk linux-perf valgrind python3-cryptography through
# scripts/install-deps.sh bench; npm: oidc-provider from bench/oidc's lockfile), builds the release
# binary, then runs bench/bench.py, which prints the table. `make bench` runs this.
#   --smoke      1 round of 2 s per load, tiny scale: checks the suite works (CI-sized)
#   --profile    instead of the table: callgrind profiles of the three hot paths (bench/profile.py)
#   --pg         the PostgreSQL rows of issue 7 (bench/pg.py): GET on PostgreSQL vs SQLite, PUT vs
#                pgbench on a pg_auto_failover formation, and kill -9 of the primary under load
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh bench
if [ ! -d bench/oidc/node_modules/oidc-provider ]; then
  (cd bench/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi
make -s -j"$(nproc)"
if [ "${1:-}" = "--pg" ]; then
  shift
  exec python3 bench/pg.py "$@"
fi
if [ "${1:-}" = "--profile" ]; then
  shift
  exec python3 bench/profile.py "$@"
fi
exec python3 bench/bench.py "$@"
