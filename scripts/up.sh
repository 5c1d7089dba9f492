#!/usr/bin/env bash
# up.sh: install what the build needs, build, and run `mivault up` (the embedded default:
# SQLite, a server, vault `dev`, VM `localvm` and its agent on this machine). Extra arguments
# go to `mivault up` (e.g. --state DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build
make -j"$(nproc)" >/dev/null
exec build/release/mivault up "$@"
