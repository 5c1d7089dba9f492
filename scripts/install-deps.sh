#!/usr/bin/env bash
# install-deps.sh [build|test|bench]: install the Debian packages mivault needs, checking first so a
# second run is quick (dpkg-query only; apt-get runs only when something is missing).
set -euo pipefail
kind=${1:-build}
pkgs=(build-essential pkg-config libssl-dev libevent-dev libjansson-dev libcurl4-openssl-dev
      libsqlite3-dev libpq-dev openssl ca-certificates curl)
case "$kind" in
  test)  pkgs+=(libcmocka-dev python3 python3-azure python3-cryptography azure-cli nodejs iproute2 libclang-rt-14-dev clang
               postgresql-15 postgresql-15-auto-failover pg-auto-failover-cli haproxy
               prometheus systemd dpkg-dev fakeroot man-db lintian) ;;
  bench) pkgs+=(nginx-light wrk linux-perf valgrind nodejs python3 python3-cryptography
               postgresql-15 postgresql-contrib postgresql-15-auto-failover pg-auto-failover-cli) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/lists/partial/.mivault-updated
if [ ! -e "$stamp" ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e partial -e lock)" ]; then
  $SUDO apt-get update -qq && $SUDO touch "$stamp" || true
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
