#!/usr/bin/env bash
# check-layers.sh: every folder of src/ is a layer (DESIGN §9, docs/tour.md); a file includes
# only its own layer and the layers before it. Fails, naming file:line, on an include of a
# later layer or of another layer on the same step, and on a folder of src/ missing from the
# order below (a new layer must be placed). Run by `make check-style`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Lowest first; layers on one line are one step and may not include each other.
order=(
  "common"
  "crypto"
  "http"
  "store"
  "state"
  "token"
  "rbac"
  "audit"
  "authority"
  "arm vault"
  "server agent client"
  "cli"
)

declare -A rank
for i in "${!order[@]}"; do
  for layer in ${order[$i]}; do
    rank[$layer]=$i
  done
done

fail=0
for dir in src/*/; do
  layer=$(basename "$dir")
  if [ -z "${rank[$layer]+x}" ]; then
    echo "check-layers: src/$layer/ is not in the layer order of scripts/check-layers.sh"
    fail=1
  fi
done

# Includes are rooted at src/ ("vault/vault.h"); others (<...>, "mivault/...") are not layers.
while IFS=: read -r file line text; do
  from=${file#src/}
  from=${from%%/*}
  to=${text#*\"}
  to=${to%%/*}
  [ -n "${rank[$to]+x}" ] && [ -n "${rank[$from]+x}" ] || continue
  [ "$to" = "$from" ] && continue
  if [ "${rank[$to]}" -ge "${rank[$from]}" ]; then
    echo "$file:$line: $from/ includes $to/ (${text#\#include }), not a lower layer"
    fail=1
  fi
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z0-9_]+/' src --include='*.c' --include='*.h' \
           | sed -E 's/^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]+/\1:\2:#include /')

if [ "$fail" -ne 0 ]; then
  echo "check-layers: upward include (see DESIGN §9 and docs/tour.md for the order)"
  exit 1
fi
