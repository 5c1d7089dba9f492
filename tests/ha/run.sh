#!/usr/bin/env bash
# run.sh: the high-availability suite (tests/ha/test_ha.py): a pg_auto_failover formation, two
# mivault servers, haproxy and unchanged SDK clients, all on this machine. Like the compat suite it
# runs in a private mount namespace whose /etc/hosts names the balancer and the vault hosts, so
# the machine's own hosts file is never touched.
set -euo pipefail
cd "$(dirname "$0")"
hosts=$(mktemp)
trap 'rm -f "$hosts"' EXIT
{
  echo "127.0.0.1 localhost"
  echo "::1 localhost ip6-localhost"
  echo "127.0.0.1 mivault-lb.test vault.localhost havault.vault.localhost"
} > "$hosts"
chmod 644 "$hosts"
exec unshare -m bash -c "mount --bind '$hosts' /etc/hosts && exec /usr/bin/python3 -m unittest discover -s . -p 'test_*.py' -v"
