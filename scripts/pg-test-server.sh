#!/usr/bin/env bash
# pg-test-server.sh start|stop|url DIR: a throw-away PostgreSQL 15 for the tests.
#   start  initdb into DIR/data (owned by the postgres OS user: initdb and postgres refuse root),
#          trust auth on loopback only, fsync=on, a free TCP port on 127.0.0.1; waits until it
#          accepts connections, then prints its URL (also in DIR/url)
#   url    prints the URL of a running server
#   stop   fast shutdown, then removes DIR
# The URL names the maintenance database `postgres`; tests create their own databases from it.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
case "$dir" in /*|'') ;; *) dir=$PWD/$dir ;; esac
cd / # the postgres user may not enter the caller's directory (a 0700 temp checkout, as in CI)
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
bin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    port=$(free_port)
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-instructions \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=on -c max_connections=200 -c shared_buffers=32MB" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres" | as_pg tee "$dir/url"
    ;;
  url) cat "$dir/url" ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start|stop|url DIR" >&2; exit 2 ;;
esac
