#!/usr/bin/env bash
# pg-formation.sh: a throw-away pg_auto_failover formation (a monitor and two PostgreSQL nodes
# with a synchronous standby) on this machine, the way the HA tests and docs/ha.md run one.
#
#   pg-formation.sh start DIR [BASEPORT]   monitor on BASEPORT, nodes on BASEPORT+1, BASEPORT+2;
#                                          prints the formation's multi-host URI and writes it to
#                                          DIR/uri once a primary and a secondary are in place
#   pg-formation.sh uri DIR                the multi-host URI (target_session_attrs=read-write)
#   pg-formation.sh state DIR              the monitor's view: node, port, current/assigned state
#   pg-formation.sh primary DIR            the port of the current primary
#   pg-formation.sh wait DIR [SECONDS]     wait until one primary and one secondary are settled
#   pg-formation.sh kill-primary DIR       kill -9 the primary's postmaster, its processes and its
#                                          keeper; prints the node's number and the time of the kill
#   pg-formation.sh restart-node DIR N     start node N's keeper again (it rejoins as a standby)
#   pg-formation.sh stop DIR               stop everything started under DIR and remove DIR
#
# Runs as root and drops to the `postgres` user (initdb refuses root). The monitor's timings are
# lowered so an unplanned failover takes seconds, not the default ~30 s (see docs/ha.md).
set -euo pipefail
cmd=${1:?usage: pg-formation.sh start|uri|state|primary|wait|kill-primary|restart-node|stop DIR}
R=${2:?DIR}
case "$R" in /*) ;; *) R=$PWD/$R ;; esac
BIN=/usr/lib/postgresql/15/bin
# The postgres user may not enter the caller's directory (a checkout in a 0700 temp dir, as CI
# has): everything below uses absolute paths, so work from /.
cd /

as_pg() {
  runuser -u postgres -- env -i PATH="$BIN:/usr/bin:/bin" HOME="$R" PG_CONFIG="$BIN/pg_config" \
    XDG_CONFIG_HOME="$R/cfg" XDG_DATA_HOME="$R/share" XDG_RUNTIME_DIR="$R/run" "$@"
}
monitor_uri() { as_pg pg_autoctl show uri --pgdata "$R/monitor" --formation monitor 2>/dev/null; }
mon_sql() { as_pg psql "$(cat "$R/monitor.uri")" -Atqc "$1"; }
mon_admin() { as_pg psql -h localhost -p "$(cat "$R/baseport")" -U postgres -d pg_auto_failover -Atqc "$1"; }
# one line per node: name|port|current_group_state|assigned_group_state
node_states() {
  mon_sql "select nodename, nodeport, current_group_state, assigned_group_state
           from pgautofailover.current_state('default') order by nodename" | tr -s ' '
}
settled() {
  local s; s=$(node_states 2>/dev/null) || return 1
  [ "$(grep -c '|primary|primary$' <<<"$s")" = 1 ] && [ "$(grep -c '|secondary|secondary$' <<<"$s")" = 1 ]
}
wait_settled() {
  local limit=${1:-120} t=0
  until settled; do
    t=$((t + 1)); [ $t -le $((limit * 2)) ] || { echo "pg-formation: not settled after ${limit}s" >&2; node_states >&2 || true; return 1; }
    sleep 0.5
  done
}
start_node() {  # N: start (or restart) node N's keeper in the background
  local i=$1 port=$(( $(cat "$R/baseport") + $1 ))
  as_pg PGDATA="$R/node$i" PGPORT=$port pg_autoctl create postgres --hostname localhost \
    --ssl-self-signed --auth trust --pg-hba-lan --monitor "$(cat "$R/monitor.uri")" --name node$i \
    --dbname mivault --replication-quorum true --candidate-priority 50 --run \
    >>"$R/node$i.log" 2>&1 &
  echo $! >"$R/node$i.pid"
}

case "$cmd" in
start)
  base=${3:-5500}
  command -v pg_autoctl >/dev/null || { echo "pg-formation: pg_autoctl missing (apt-get install postgresql-15-auto-failover pg-auto-failover-cli)" >&2; exit 1; }
  mkdir -p "$R"; chown postgres:postgres "$R"; chmod 700 "$R"
  echo "$base" >"$R/baseport"
  as_pg mkdir -p "$R/cfg" "$R/share" "$R/run"
  as_pg PGDATA="$R/monitor" PGPORT=$base pg_autoctl create monitor --hostname localhost \
    --ssl-self-signed --auth trust --run >"$R/monitor.log" 2>&1 &
  echo $! >"$R/monitor.pid"
  # `pg_autoctl show uri` creates the same state directories as `create` does at its start, and
  # the two racing make `create` fail ("Failed to create state directory ...: File exists"):
  # ask for the URI only once the monitor says it is initialised.
  for _ in $(seq 1 240); do
    grep -q "Monitor has been successfully initialized" "$R/monitor.log" 2>/dev/null && break
    kill -0 "$(cat "$R/monitor.pid")" 2>/dev/null || break
    sleep 0.5
  done
  for _ in $(seq 1 240); do monitor_uri >"$R/monitor.uri" && [ -s "$R/monitor.uri" ] && break; sleep 0.5; done
  [ -s "$R/monitor.uri" ] || { echo "pg-formation: monitor did not start (see $R/monitor.log)" >&2; exit 1; }
  until mon_sql "select 1" >/dev/null 2>&1; do sleep 0.5; done
  # Fast failure detection: a test (and a small site) wants seconds, not half a minute.
  for kv in health_check_period=1000 health_check_timeout=1000 health_check_max_retries=1 \
            health_check_retry_delay=500 node_considered_unhealthy_timeout=3000 primary_demote_timeout=5000; do
    mon_admin "alter system set pgautofailover.${kv%%=*} = ${kv#*=}" >/dev/null
  done
  mon_admin "select pg_reload_conf()" >/dev/null
  for i in 1 2; do
    start_node $i
    # node1 must register first to become the primary.
    for _ in $(seq 1 240); do
      [ "$(mon_sql "select count(*) from pgautofailover.current_state('default')" 2>/dev/null)" = "$i" ] && break
      sleep 0.5
    done
  done
  # pg_basebackup of node2 waits for a spread checkpoint on node1 (~90 s on an idle node); an
  # immediate CHECKPOINT request makes the running one finish at once.
  for _ in $(seq 1 360); do
    settled && break
    as_pg psql -h localhost -p $((base + 1)) -U postgres -d postgres -Atqc checkpoint >/dev/null 2>&1 || true
    sleep 0.5
  done
  wait_settled 180
  # The formation's URI names no user; the nodes trust the postgres superuser on loopback.
  as_pg pg_autoctl show uri --pgdata "$R/monitor" --formation default |
    sed 's#^postgres://#postgres://postgres@#' | tee "$R/uri"
  ;;
uri) cat "$R/uri" ;;
state) node_states ;;
primary) node_states | awk -F'|' '$3=="primary"||$3=="wait_primary"||$3=="single"{print $2; exit}' ;;
wait) wait_settled "${3:-120}" ;;
kill-primary)
  port=$("$0" primary "$R")
  i=$(( port - $(cat "$R/baseport") ))
  # The postmaster's pid is the first line of postmaster.pid; the keeper is our saved pid. Its
  # backends, walsender and the rest go down in the same instant, as on a machine that died
  # (a postmaster killed alone leaves its backends finishing what they were doing).
  pm=$(head -1 "$R/node$i/postmaster.pid")
  kids=$(pgrep -P "$pm" | tr '\n' ' ')
  killed_at=$(date +%s.%N)
  kill -9 "$(cat "$R/node$i.pid")" "$pm" $kids 2>/dev/null || true
  # the keeper's children (supervisor, node-active) must go too, as on a machine that died
  pkill -9 -f -- "--pgdata $R/node$i" 2>/dev/null || true
  pkill -9 -f -- "PGDATA=$R/node$i" 2>/dev/null || true
  echo "$i $killed_at"
  ;;
restart-node) start_node "$3" ;;
stop)
  for n in node1 node2 monitor; do
    [ -d "$R/$n" ] && as_pg pg_autoctl stop --pgdata "$R/$n" --immediate >/dev/null 2>&1 || true
  done
  sleep 0.5
  for f in "$R"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  for n in node1 node2 monitor; do
    [ -f "$R/$n/postmaster.pid" ] && kill -9 "$(head -1 "$R/$n/postmaster.pid")" 2>/dev/null || true
  done
  rm -rf "$R"
  ;;
*) echo "pg-formation: unknown command $cmd" >&2; exit 2 ;;
esac
