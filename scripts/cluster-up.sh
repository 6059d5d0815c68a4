#!/usr/bin/env bash
# Starts the topology of docker-compose.cluster.yml as local processes, without Docker:
# Redis, three `gateway` nodes, HAProxy in front of them (health-checking /ready; when no
# node is ready, e.g. Redis down, it sends traffic to the live ones) and two mock
# upstreams, all on free loopback ports. Prints every URL on a line of its own on
# stdout (load balancer first, then the nodes, their admin listeners, the upstreams and
# Redis); progress, the admin token and example requests go to stderr.
#
# Usage: scripts/cluster-up.sh [--redis standalone|sentinel|cluster] [--dir DIR] [--build]
#
#   --redis standalone   one redis-server (default)
#   --redis sentinel     primary + replica + three sentinels; gateways use mode = "sentinel"
#   --redis cluster      six redis-server --cluster-enabled (3 masters + 3 replicas);
#                        gateways use mode = "cluster"
#   --dir DIR            run directory for pids, ports, logs and generated config
#                        (default .cluster/; env CLUSTER_DIR)
#   --build              cargo build --release the gateway and mock-upstream first
#
# Environment: GATEWAY_ADMIN_TOKEN, JWT_SECRET (generated when unset), GATEWAY_BIN,
# UPSTREAM_BIN (default: the newest of target/release and target/debug, built with cargo
# when neither exists), WORKERS (actix workers per node, default 1).
#
# Installs haproxy / redis-server with apt-get when missing (sudo when not root).
# Stop everything it started with scripts/cluster-down.sh (same --dir).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

REDIS_MODE=standalone
RUN=${CLUSTER_DIR:-$ROOT/.cluster}
BUILD=0
while [ $# -gt 0 ]; do
  case $1 in
    --redis) REDIS_MODE=${2:-}; shift 2 ;;
    --redis=*) REDIS_MODE=${1#--redis=}; shift ;;
    --dir) RUN=${2:-}; shift 2 ;;
    --dir=*) RUN=${1#--dir=}; shift ;;
    --build) BUILD=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'cluster-up.sh: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
done
case $REDIS_MODE in
  standalone | sentinel | cluster) ;;
  *) printf 'cluster-up.sh: --redis must be standalone, sentinel or cluster (got %s)\n' "$REDIS_MODE" >&2; exit 2 ;;
esac
[ -n "$RUN" ] || { echo "cluster-up.sh: --dir needs a directory" >&2; exit 2; }
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
WORKERS=${WORKERS:-1}
NODES=(gw-1 gw-2 gw-3)

# ---- an earlier run ---------------------------------------------------------------------
if [ -s "$RUN/pids" ]; then
  while read -r name pid start; do
    if ours "$pid" "$start"; then
      die "a cluster from $RUN is still running ($name, pid $pid): run scripts/cluster-down.sh first"
    fi
  done <"$RUN/pids"
fi
rm -rf "${RUN:?}/logs" "${RUN:?}/redis" "$RUN/pids" "$RUN/env" "$RUN/urls" "$RUN"/*.toml "$RUN"/*.cfg "$RUN"/*.yml
mkdir -p "$RUN/logs" "$RUN/redis"
chmod 700 "$RUN"
: >"$RUN/pids"

# ---- tools --------------------------------------------------------------------------------
APT_LOG=$RUN/logs/apt.log
have curl || { log "installing curl"; apt_install_or_die curl; }
if ! have redis-server || ! have redis-cli; then log "installing redis-server"; apt_install_or_die redis-server; fi
have haproxy || { log "installing haproxy"; apt_install_or_die haproxy; }
HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)
REDIS_SERVER_BIN=$(command -v redis-server || echo /usr/sbin/redis-server)

# pick_bin VAR NAME PACKAGE: $VAR if set, else the newest of target/{release,debug}/NAME.
pick_bin() {
  local var=$1 name=$2 cur=${!1:-} r=$ROOT/target/release/$2 d=$ROOT/target/debug/$2
  if [ -n "$cur" ]; then
    [ -x "$cur" ] || die "$var=$cur is not executable"
    return
  fi
  if [ -x "$r" ] && { [ ! -x "$d" ] || [ "$r" -nt "$d" ]; }; then cur=$r
  elif [ -x "$d" ]; then cur=$d
  fi
  printf -v "$var" '%s' "$cur"
}
if [ $BUILD = 1 ]; then
  log "cargo build --release (gateway, mock-upstream)"
  cargo build --release -p gateway --bin gateway >&2
  cargo build --release -p cluster-tests --bin mock-upstream >&2
fi
pick_bin GATEWAY_BIN gateway
pick_bin UPSTREAM_BIN mock-upstream
if [ -z "$GATEWAY_BIN" ] || [ -z "$UPSTREAM_BIN" ]; then
  have cargo || die "no gateway / mock-upstream binary under target/ and no cargo to build them"
  log "cargo build --release (gateway, mock-upstream): no binaries under target/ yet"
  cargo build --release -p gateway --bin gateway >&2
  cargo build --release -p cluster-tests --bin mock-upstream >&2
  GATEWAY_BIN=$ROOT/target/release/gateway
  UPSTREAM_BIN=$ROOT/target/release/mock-upstream
fi
log "gateway: ${GATEWAY_BIN#"$ROOT"/}, upstream: ${UPSTREAM_BIN#"$ROOT"/}"

# ---- helpers ------------------------------------------------------------------------------
# On any failure before the end, stop what this run started.
STARTED=0
stop_started() {
  local rc=$?
  if [ $STARTED = 0 ] && [ -s "$RUN/pids" ]; then
    log "startup failed: stopping what was started (logs stay in $RUN/logs)"
    bash "$ROOT/scripts/cluster-down.sh" --dir "$RUN" >&2 || true
  fi
  exit $rc
}
on_exit stop_started

# spawn NAME CMD...: run CMD in its own session (survives this script and the terminal),
# output to logs/NAME.log, and record "NAME PID STARTTIME" for cluster-down.sh.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$RUN/logs/$name.log" 2>&1 &
  local pid=$! start=""
  for _ in 1 2 3 4 5; do
    start=$(proc_start "$pid")
    [ -z "$start" ] || break
    sleep 0.05
  done
  [ -n "$start" ] || die "$name exited at once (see $RUN/logs/$name.log)"
  echo "$name $pid $start" >>"$RUN/pids"
  LAST_PID=$pid
}
LOG_DIR=$RUN/logs
# join_list A B C -> "A, B, C"
join_list() { local IFS=,; local s="$*"; printf '%s' "${s//,/, }"; }

redis_start() { # redis_start NAME PORT EXTRA_ARGS...
  local name=$1 port=$2; shift 2
  mkdir -p "$RUN/redis/$name"
  spawn "$name" "$REDIS_SERVER_BIN" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$RUN/redis/$name" --daemonize no "$@"
  wait_until 10 "$name" "$LAST_PID" redis_ping "$port"
}

# ---- Redis --------------------------------------------------------------------------------
REDIS_URLS=()
case $REDIS_MODE in
  standalone)
    pick_port REDIS_PORT 16379
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis_start redis "$REDIS_PORT"
    REDIS_URLS=("redis://127.0.0.1:$REDIS_PORT/0")
    REDIS_TOML="[redis]
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
mode = \"standalone\""
    ;;
  sentinel)
    pick_port REDIS_PORT 16379
    pick_port REPLICA_PORT $((REDIS_PORT + 1))
    log "starting redis primary on 127.0.0.1:$REDIS_PORT and replica on 127.0.0.1:$REPLICA_PORT"
    redis_start redis-primary "$REDIS_PORT"
    redis_start redis-replica "$REPLICA_PORT" --replicaof 127.0.0.1 "$REDIS_PORT"
    wait_until 15 redis-replica "" sh -c \
      "redis-cli -p $REPLICA_PORT info replication | grep -q '^master_link_status:up'"
    SENTINEL_PORTS=()
    SENTINEL_URLS=()
    for i in 1 2 3; do
      pick_port sp $((26378 + i))
      SENTINEL_PORTS+=("$sp")
      SENTINEL_URLS+=("\"redis://127.0.0.1:$sp\"")
      d=$RUN/redis/sentinel-$i
      mkdir -p "$d"
      # Sentinel rewrites its config file: it lives in the run directory.
      cat >"$d/sentinel.conf" <<EOF
port $sp
bind 127.0.0.1
daemonize no
dir $d
sentinel monitor mymaster 127.0.0.1 $REDIS_PORT 2
sentinel down-after-milliseconds mymaster 3000
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
EOF
      log "starting redis sentinel $i on 127.0.0.1:$sp"
      spawn "sentinel-$i" "$REDIS_SERVER_BIN" "$d/sentinel.conf" --sentinel
      wait_until 10 "sentinel-$i" "$LAST_PID" redis_ping "$sp"
    done
    log "waiting for the sentinels to find each other (quorum 2 of 3)"
    wait_until 30 sentinel-1 "" sh -c "redis-cli -p ${SENTINEL_PORTS[0]} sentinel ckquorum mymaster | grep -q '^OK'"
    master=$(redis-cli -p "${SENTINEL_PORTS[0]}" sentinel get-master-addr-by-name mymaster | paste -sd: -)
    log "sentinels agree: master mymaster at $master"
    REDIS_URLS=("redis://127.0.0.1:$REDIS_PORT/0" "redis://127.0.0.1:$REPLICA_PORT/0")
    for sp in "${SENTINEL_PORTS[@]}"; do REDIS_URLS+=("redis://127.0.0.1:$sp"); done
    REDIS_TOML="[redis]
# In sentinel mode the master's address comes from the sentinels; the URL gives the
# scheme, credentials and database (its host is the master at start).
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
mode = \"sentinel\"
master_name = \"mymaster\"
sentinels = [$(join_list "${SENTINEL_URLS[@]}")]"
    ;;
  cluster)
    CLUSTER_PORTS=()
    CLUSTER_NODES=()
    for i in 1 2 3 4 5 6; do
      pick_port cp $((17000 + i)) 10000 # the cluster bus listens on port + 10000
      CLUSTER_PORTS+=("$cp")
    done
    log "starting six cluster-enabled redis-server on 127.0.0.1:${CLUSTER_PORTS[*]}"
    i=0
    for cp in "${CLUSTER_PORTS[@]}"; do
      i=$((i + 1))
      redis_start "redis-$i" "$cp" --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 5000
      CLUSTER_NODES+=("\"redis://127.0.0.1:$cp\"")
      REDIS_URLS+=("redis://127.0.0.1:$cp")
    done
    log "redis-cli --cluster create (3 masters, 1 replica each)"
    addrs=()
    for cp in "${CLUSTER_PORTS[@]}"; do addrs+=("127.0.0.1:$cp"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$RUN/logs/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed (see $RUN/logs/cluster-create.log)"
    for cp in "${CLUSTER_PORTS[@]}"; do
      wait_until 30 "redis-cluster:$cp" "" sh -c "redis-cli -p $cp cluster info | grep -q '^cluster_state:ok'"
    done
    log "redis cluster state ok: $(redis-cli -p "${CLUSTER_PORTS[0]}" cluster info | grep -E '^cluster_(size|known_nodes)' | tr -d '\r' | paste -sd' ' -)"
    REDIS_TOML="[redis]
# In cluster mode the seed nodes below are used; the URL gives scheme and credentials.
url = \"redis://127.0.0.1:${CLUSTER_PORTS[0]}\"
mode = \"cluster\"
nodes = [$(join_list "${CLUSTER_NODES[@]}")]"
    ;;
esac

# ---- upstreams ----------------------------------------------------------------------------
UPSTREAM_PORTS=()
for i in 1 2; do
  pick_port up $((13000 + i))
  UPSTREAM_PORTS+=("$up")
  log "starting mock-upstream $i on 127.0.0.1:$up"
  spawn "upstream-$i" "$UPSTREAM_BIN" "$up" 1
  wait_until 15 "upstream-$i" "$LAST_PID" http_ok "http://127.0.0.1:$up/health"
done

# ---- gateway nodes ------------------------------------------------------------------------
ADMIN_TOKEN=${GATEWAY_ADMIN_TOKEN:-$(random_hex)}
JWT_SECRET=${JWT_SECRET:-$(random_hex)}

NODE_PORTS=()
ADMIN_PORTS=()
for i in 1 2 3; do
  pick_port np $((18000 + i))
  NODE_PORTS+=("$np")
done
for i in 1 2 3; do
  pick_port ap $((19900 + i))
  ADMIN_PORTS+=("$ap")
done

CONFIG=$RUN/gateway.toml
cat >"$CONFIG" <<EOF
# Generated by scripts/cluster-up.sh (--redis $REDIS_MODE). One file for the three nodes:
# node.id, node.listen and node.admin_listen come from GATEWAY__NODE__* per process, the
# admin token and the JWT secret from the environment.
[node]
listen = "127.0.0.1:${NODE_PORTS[0]}"
admin_listen = "127.0.0.1:${ADMIN_PORTS[0]}"
workers = $WORKERS
trusted_proxies = ["127.0.0.1/32"]   # HAProxy adds X-Forwarded-For
shutdown_grace = "5s"

[log]
format = "pretty"
access_log = true

$REDIS_TOML
command_timeout = "250ms"
key_prefix = "gw:"

[admin]
token = { env = "GATEWAY_ADMIN_TOKEN" }

[auth.jwt]
algorithms = ["HS256"]
role_claim = "role"
[[auth.jwt.keys]]
kid = "demo"
secret = { env = "JWT_SECRET" }

# Anonymous demo traffic: 60 requests a minute per client address, cluster-wide.
[rate_limit.policies.per_ip]
algorithm = "sliding_window"
limit = 60
window = "1m"
key = "ip"

[rate_limit.policies.default]
algorithm = "sliding_window"
limit = 100
window = "1m"
key = "consumer"

[rate_limit.policies.premium]
algorithm = "token_bucket"
limit = 1000
window = "1m"
burst = 100
key = "consumer"

[rate_limit.tiers]
free = "default"
premium = "premium"

# curl \$LB/api/echo/hello: no credentials, limited per IP, round robin over both upstreams.
[[services]]
name = "echo"
endpoints = ["http://127.0.0.1:${UPSTREAM_PORTS[0]}", "http://127.0.0.1:${UPSTREAM_PORTS[1]}"]
auth = "none"
rate_limit = "per_ip"
timeout = "5s"
[services.health_check]
path = "/health"
interval = "2s"
[services.circuit_breaker]
consecutive_failures = 5
open_for = "10s"

# curl -H "Authorization: Bearer \$TOKEN" \$LB/api/secure/hello: JWT, limit by tier.
[[services]]
name = "secure"
endpoints = ["http://127.0.0.1:${UPSTREAM_PORTS[0]}", "http://127.0.0.1:${UPSTREAM_PORTS[1]}"]
auth = "jwt"
rate_limit = "default"
timeout = "5s"

# curl \$LB/api/cached/hello twice: the second answer comes from the cache.
[[services]]
name = "cached"
endpoints = ["http://127.0.0.1:${UPSTREAM_PORTS[0]}", "http://127.0.0.1:${UPSTREAM_PORTS[1]}"]
auth = "none"
rate_limit = "per_ip"
[services.cache]
ttl = "30s"
scope = "shared"
EOF

NODE_PIDS=()
i=0
for node in "${NODES[@]}"; do
  np=${NODE_PORTS[$i]} ap=${ADMIN_PORTS[$i]}
  i=$((i + 1))
  log "starting gateway $node on 127.0.0.1:$np (admin 127.0.0.1:$ap)"
  spawn "$node" env GATEWAY__NODE__ID="$node" GATEWAY__NODE__LISTEN="127.0.0.1:$np" \
    GATEWAY__NODE__ADMIN_LISTEN="127.0.0.1:$ap" GATEWAY_ADMIN_TOKEN="$ADMIN_TOKEN" JWT_SECRET="$JWT_SECRET" \
    "$GATEWAY_BIN" --config "$CONFIG"
  NODE_PIDS+=("$LAST_PID")
done
i=0
for node in "${NODES[@]}"; do
  wait_until 60 "$node" "${NODE_PIDS[$i]}" http_ok "http://127.0.0.1:${ADMIN_PORTS[$i]}/ready"
  i=$((i + 1))
done

# ---- load balancer ------------------------------------------------------------------------
pick_port LB_PORT 18000
pick_port STATS_PORT 18404
cat >"$RUN/haproxy.cfg" <<EOF
# Generated by scripts/cluster-up.sh: HAProxy in front of the three gateway nodes.
global
    maxconn 4096

defaults
    mode http
    option forwardfor
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s

frontend gateway
    bind 127.0.0.1:$LB_PORT
    use_backend gateway_nodes if { nbsrv(gateway_nodes) gt 0 }
    default_backend gateway_live

# Ready nodes (/ready 200): the normal rotation.
backend gateway_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
$(for j in 0 1 2; do printf '    server %s 127.0.0.1:%s check\n' "${NODES[$j]}" "${NODE_PORTS[$j]}"; done)

# Live nodes (/health 200), used only while no node is ready (Redis down cluster-wide):
# they serve from their last registry snapshot with the failure-mode fallbacks.
backend gateway_live
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
$(for j in 0 1 2; do printf '    server %s 127.0.0.1:%s check\n' "${NODES[$j]}" "${NODE_PORTS[$j]}"; done)

listen stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /
    stats refresh 5s
EOF
"$HAPROXY_BIN" -c -q -f "$RUN/haproxy.cfg" >"$RUN/logs/haproxy-check.log" 2>&1 ||
  die "haproxy rejected $RUN/haproxy.cfg: $(cat "$RUN/logs/haproxy-check.log")"
log "starting haproxy on 127.0.0.1:$LB_PORT (stats 127.0.0.1:$STATS_PORT)"
spawn haproxy "$HAPROXY_BIN" -db -f "$RUN/haproxy.cfg"
LB=http://127.0.0.1:$LB_PORT
wait_until 20 haproxy "$LAST_PID" http_ok "$LB/api/echo/hello"
# Membership (GET /admin/nodes, and the node count behind failure_mode = "local") is
# complete after the first heartbeats: wait for all three nodes.
nodes_seen() {
  [ "$(curl -s --max-time 1 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:${ADMIN_PORTS[0]}/admin/nodes" |
    grep -o '"id"' | wc -l)" -ge ${#NODES[@]} ]
}
for _ in $(seq 100); do nodes_seen && break; sleep 0.1; done
nodes_seen || log "warning: GET /admin/nodes does not list all ${#NODES[@]} nodes yet"

# A Prometheus scrape config for this run (admin listeners serve /metrics without a token).
{
  echo "# Generated by scripts/cluster-up.sh: prometheus --config.file=$RUN/prometheus.yml"
  echo "global: {scrape_interval: 5s}"
  echo "scrape_configs:"
  echo "  - job_name: gateway"
  echo "    honor_labels: true"
  echo "    static_configs:"
  for j in 0 1 2; do
    echo "      - {targets: [\"127.0.0.1:${ADMIN_PORTS[$j]}\"], labels: {node: ${NODES[$j]}}}"
  done
} >"$RUN/prometheus.yml"

# ---- a demo JWT ---------------------------------------------------------------------------
DEMO_JWT=""
if have python3; then DEMO_JWT=$(hs256_jwt "$JWT_SECRET" demo demo-user $((24 * 3600)) iat); fi

# ---- state and output ---------------------------------------------------------------------
URLS=("$LB")
for np in "${NODE_PORTS[@]}"; do URLS+=("http://127.0.0.1:$np"); done
for ap in "${ADMIN_PORTS[@]}"; do URLS+=("http://127.0.0.1:$ap"); done
for up in "${UPSTREAM_PORTS[@]}"; do URLS+=("http://127.0.0.1:$up"); done
URLS+=("${REDIS_URLS[@]}")
printf '%s\n' "${URLS[@]}" >"$RUN/urls"

{
  echo "# Generated by scripts/cluster-up.sh: source it to talk to the cluster."
  echo "REDIS_MODE=$REDIS_MODE"
  echo "LB=$LB"
  echo "HAPROXY_STATS=http://127.0.0.1:$STATS_PORT"
  j=0
  for node in "${NODES[@]}"; do
    v=${node//-/_}; v=${v^^}
    echo "${v}_URL=http://127.0.0.1:${NODE_PORTS[$j]}"
    echo "${v}_ADMIN=http://127.0.0.1:${ADMIN_PORTS[$j]}"
    j=$((j + 1))
  done
  echo "ADMIN=http://127.0.0.1:${ADMIN_PORTS[0]}"
  echo "UPSTREAM_1=http://127.0.0.1:${UPSTREAM_PORTS[0]}"
  echo "UPSTREAM_2=http://127.0.0.1:${UPSTREAM_PORTS[1]}"
  echo "REDIS_URLS=\"${REDIS_URLS[*]}\""
  echo "GATEWAY_ADMIN_TOKEN=$ADMIN_TOKEN"
  echo "JWT_SECRET=$JWT_SECRET"
  echo "TOKEN=$DEMO_JWT"
} >"$RUN/env"
chmod 600 "$RUN/env"
STARTED=1

cat >&2 <<EOF

Cluster up (redis: $REDIS_MODE). URLs, one per line on stdout: load balancer, nodes gw-1..3,
their admin listeners, upstreams, redis. State, logs and config: ${RUN#"$ROOT"/}/
EOF
printf '%s\n' "${URLS[@]}"
cat >&2 <<EOF

admin token: $ADMIN_TOKEN
demo JWT (sub demo-user, role free, HS256 kid demo, 24 h): ${DEMO_JWT:-"(python3 missing)"}
haproxy stats: http://127.0.0.1:$STATS_PORT/

Try:
  curl -i $LB/api/echo/hello
  curl -i -H "Authorization: Bearer ${DEMO_JWT:-\$TOKEN}" $LB/api/secure/hello
  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:${ADMIN_PORTS[0]}/admin/nodes
  curl -s http://127.0.0.1:${ADMIN_PORTS[0]}/metrics | grep ^gateway_
  source ${RUN#"$ROOT"/}/env     # LB, ADMIN, GATEWAY_ADMIN_TOKEN, TOKEN, ...
Stop: scripts/cluster-down.sh$([ "$RUN" = "$ROOT/.cluster" ] || printf ' --dir %s' "$RUN")
EOF
