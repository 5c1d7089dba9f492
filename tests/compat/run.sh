#!/usr/bin/env bash
# run.sh: the compatibility suite. Unchanged official Azure clients against a real `mivault up`.
# Vault names under *.localhost need a hosts-file line; rather than touch the machine's
# /etc/hosts, the suite runs in a private mount namespace with its own hosts file bound over it.
set -euo pipefail
cd "$(dirname "$0")"
# The JS clients come from npm (pinned by js/package-lock.json): install them here, before the
# namespace, so that npm resolves the registry with the machine's own name service.
/usr/bin/python3 test_js_sdk.py --install
hosts=$(mktemp)
trap 'rm -f "$hosts"' EXIT
{
  echo "127.0.0.1 localhost"
  echo "::1 localhost ip6-localhost"
  printf '127.0.0.1 vault.localhost'
  for v in dev other compat jsvault jsprotect azvault; do printf ' %s.vault.localhost' "$v"; done
  echo
} > "$hosts"
exec unshare -m bash -c "mount --bind '$hosts' /etc/hosts && exec /usr/bin/python3 -m unittest discover -s . -p 'test_*.py' -v"
