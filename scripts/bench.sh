#!/usr/bin/env bash
# Benchmarks (DESIGN.md "Benchmarks"): builds release binaries, starts a mock upstream,
# nginx as a plain reverse proxy (the peer) and the gateway, then runs wrk scenarios one
# after another in the same run with the same parameters. Writes
# bench/results/<UTC date-time>.json and .md and prints the table.
#
# Usage: scripts/bench.sh [scenario...]      (default: every wrk scenario; `registry` and
#        `circuit` measure cluster propagation instead)
#
# Environment overrides:
#   DURATION=10s  CONNECTIONS=32  THREADS=1  WARMUP=3s   wrk parameters
#   SKIP_BUILD=1                                          do not run cargo build
#   GATEWAY_BIN=path                                      the gateway binary to measure
#                                                         (default target/release/gateway;
#                                                         scripts/bench-ab.sh sets it)
#   HOLD=1      start everything, print the scenario URLs and the token, then wait (for
#               profiling by hand: perf, strace, callgrind); Ctrl-C stops it all
#   ACCESS_LOG=1  the main gateway node logs every request too (to bench/tmp, JSON), as
#               the *_log scenarios' node does (scripts/bench-callgrind.sh uses it)
#
# Production settings (issue 26): the *_log scenarios run against nginx with
# `access_log ... buffer=64k flush=1s` (nginx_proxy_log) and a gateway node with its access
# log on, to a file in bench/tmp (same disk), analytics on; their "vs nginx" ratios are
# against nginx_proxy_log.
#
# Loopback only. Everything it starts is stopped on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-3s}

IMPLEMENTED=(direct nginx_proxy passthrough jwt full full_no_analytics cached cached_l2 three_nodes express_full queue_async queue_sync
  nginx_proxy_log passthrough_log full_log cached_log)
DEFAULT_SCENARIOS=(direct nginx_proxy passthrough jwt full full_no_analytics cached cached_l2 three_nodes express_full
  nginx_proxy_log passthrough_log full_log cached_log)

# Planned scenarios and the feature each one waits for (none at the moment).
declare -A PLANNED=()

# ---- cluster propagation (not wrk scenarios) ---------------------------------------------
# run_propagation NAME BIN COUNT WHAT: builds and runs a propagation benchmark binary of
# cluster-tests (registry-bench, circuit-bench) and stores its JSON summary.
run_propagation() {
  local name=$1 bin=$2 count=$3 what=$4 out stamp
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release (gateway, $bin)"
    cargo build --release -p gateway --bin gateway
    cargo build --release -p cluster-tests --bin "$bin"
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server is needed (scripts/test.sh installs it)"
  stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
  log "$name: $what"
  out=$(GATEWAY_BIN="$ROOT/target/release/gateway" "$ROOT/target/release/$bin" "$count") \
    || die "$name bench failed: $out"
  mkdir -p "$ROOT/bench/results"
  printf '{"date": "%s", "git_commit": "%s", "cpu_count": %s, "result": %s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse HEAD 2>/dev/null || echo unknown)" "$(nproc)" "$out" \
    >"$ROOT/bench/results/$stamp-$name.json"
  echo "$name: $out"
  echo "results: bench/results/$stamp-$name.json"
}
REST=()
for s in "$@"; do
  case $s in
    registry) run_propagation registry registry-bench "${CHANGES:-1000}" \
      "${CHANGES:-1000} changes on node A, time until routable on node C" ;;
    circuit) run_propagation circuit circuit-bench "${TRIPS:-100}" \
      "${TRIPS:-100} breakers opened through node A, time until node C reports them open" ;;
    *) REST+=("$s") ;;
  esac
done
if [ $# -gt 0 ] && [ ${#REST[@]} -eq 0 ]; then exit 0; fi
set -- "${REST[@]}"

# ---- scenario selection ---------------------------------------------------------------
if [ $# -eq 0 ]; then set -- "${DEFAULT_SCENARIOS[@]}"; fi
SCENARIOS=()
SKIPPED=()
for s in "$@"; do
  if printf '%s\n' "${IMPLEMENTED[@]}" | grep -qx -- "$s"; then
    SCENARIOS+=("$s")
  elif [ -n "${PLANNED[$s]+x}" ]; then
    echo "$s: skipped: needs ${PLANNED[$s]}"
    SKIPPED+=("$s")
  else
    die "unknown scenario '$s' (known: ${IMPLEMENTED[*]} ${!PLANNED[*]})"
  fi
done
if [ ${#SCENARIOS[@]} -eq 0 ]; then
  echo "nothing to run"
  exit 0
fi
want() { printf '%s\n' "${SCENARIOS[@]}" | grep -qx -- "$1"; }
NEED_NGINX=0; NEED_GATEWAY=0
want nginx_proxy && NEED_NGINX=1
want passthrough && NEED_GATEWAY=1
want jwt && NEED_GATEWAY=1
want full && NEED_GATEWAY=1
want cached && NEED_GATEWAY=1
NEED_REDIS=0; NEED_EXPRESS=0; NEED_CLUSTER=0
want full && NEED_REDIS=1
want cached && NEED_REDIS=1
want three_nodes && { NEED_GATEWAY=1; NEED_REDIS=1; NEED_CLUSTER=1; }
want queue_async && { NEED_GATEWAY=1; NEED_REDIS=1; }
NEED_QUIET=0
want full_no_analytics && { NEED_GATEWAY=1; NEED_REDIS=1; NEED_QUIET=1; }
NEED_L2=0
want cached_l2 && { NEED_GATEWAY=1; NEED_REDIS=1; NEED_L2=1; }
want queue_sync && { NEED_GATEWAY=1; NEED_REDIS=1; }
want express_full && { NEED_REDIS=1; NEED_EXPRESS=1; }
NEED_LOGGED=0
want nginx_proxy_log && NEED_NGINX=1
want passthrough_log && { NEED_GATEWAY=1; NEED_LOGGED=1; }
want full_log && { NEED_GATEWAY=1; NEED_REDIS=1; NEED_LOGGED=1; }
want cached_log && { NEED_GATEWAY=1; NEED_REDIS=1; NEED_LOGGED=1; }

# ---- tools ----------------------------------------------------------------------------
command -v curl >/dev/null 2>&1 || { log "installing curl"; apt_install_or_die curl; }
command -v wrk >/dev/null 2>&1 || { log "installing wrk"; apt_install_or_die wrk; }
if [ $NEED_CLUSTER = 1 ] && ! command -v haproxy >/dev/null 2>&1; then
  log "installing haproxy"
  apt_install_or_die haproxy
  as_root systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
if [ $NEED_NGINX = 1 ]; then
  if ! have nginx; then
    log "installing nginx"
    apt_install nginx-light || apt_install_or_die nginx
  fi
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release (gateway, mock-upstream)"
  cargo build --release -p gateway --bin gateway
  cargo build --release -p cluster-tests --bin mock-upstream
fi
GATEWAY_BIN=${GATEWAY_BIN:-$ROOT/target/release/gateway}
UPSTREAM_BIN=$ROOT/target/release/mock-upstream
[ -x "$UPSTREAM_BIN" ] || die "missing $UPSTREAM_BIN"
[ $NEED_GATEWAY = 0 ] || [ -x "$GATEWAY_BIN" ] || die "missing $GATEWAY_BIN"

# ---- process management ---------------------------------------------------------------
TMP=$ROOT/bench/tmp
LOG_DIR=$TMP
mkdir -p "$TMP"
PIDS=()
WRK_PID=
cleanup() {
  local rc=$?
  [ -z "$WRK_PID" ] || kill "$WRK_PID" 2>/dev/null || true
  stop_pids "${PIDS[@]}"
  exit $rc
}
on_exit cleanup

# wait_http URL NAME PID: until URL answers 200 (30 s), failing if PID dies.
wait_http() { wait_until 30 "$2" "$3" http_ok "$1"; }

HDR=()
# check_ok URL NAME: one request must return 200 with body "ok" (sends HDR's headers).
check_ok() {
  local body code
  body=$(curl -s --max-time 5 "${HDR[@]}" -w '\n%{http_code}' "$1" || true)
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  [ "$code" = 200 ] || die "$2: GET $1 returned HTTP $code (body: ${body:0:200})"
  [ "$body" = ok ] || log "warning: $2: unexpected body '${body:0:80}'"
}

pick_port UPSTREAM_PORT 18090
log "starting mock-upstream on 127.0.0.1:$UPSTREAM_PORT (1 worker)"
"$UPSTREAM_BIN" "$UPSTREAM_PORT" 1 >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UPSTREAM_PORT/" upstream "$!"

if [ $NEED_NGINX = 1 ]; then
  pick_port NGINX_PORT 18070
  pick_port NGINX_LOG_PORT 18071
  NGX=$TMP/nginx
  rm -rf "$NGX"
  mkdir -p "$NGX/logs" "$NGX/temp"
  cat >"$NGX/nginx.conf" <<EOF
# Generated by scripts/bench.sh: nginx as a plain reverse proxy, one worker.
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NGX/temp/client_body;
  proxy_temp_path $NGX/temp/proxy;
  fastcgi_temp_path $NGX/temp/fastcgi;
  uwsgi_temp_path $NGX/temp/uwsgi;
  scgi_temp_path $NGX/temp/scgi;
  upstream bench_upstream {
    server 127.0.0.1:$UPSTREAM_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  # nginx_proxy_log: the same proxy with production logging (buffered combined lines).
  server {
    listen 127.0.0.1:$NGINX_LOG_PORT;
    access_log $NGX/logs/access.log combined buffer=64k flush=1s;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  log "starting nginx on 127.0.0.1:$NGINX_PORT (1 worker, prefix $NGX)"
  "$NGINX_BIN" -p "$NGX" -e "$NGX/logs/error.log" -c nginx.conf -g 'daemon off;' >"$TMP/nginx.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$NGINX_PORT/" nginx "$!"
fi

JWT_SECRET=bench-$(date +%s)-$RANDOM-$(random_hex)
# An HS256 token for the JWT scenarios.
BENCH_TOKEN=$(hs256_jwt "$JWT_SECRET" bench bench 3600)

REDIS_CONF=""
if [ $NEED_REDIS = 1 ]; then
  command -v redis-server >/dev/null 2>&1 || { log "installing redis-server"; apt_install_or_die redis-server; }
  pick_port REDIS_PORT 18379
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  wait_until 5 redis "$!" redis_ping "$REDIS_PORT"
  REDIS_CONF="[redis]
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
command_timeout = \"250ms\""
fi

if [ $NEED_EXPRESS = 1 ]; then
  command -v node >/dev/null 2>&1 || { log "installing nodejs and npm"; apt_install_or_die nodejs npm; }
  if [ ! -d "$ROOT/bench/express/node_modules" ]; then
    log "npm install (bench/express: express, ioredis, jsonwebtoken, http-proxy-middleware)"
    (cd "$ROOT/bench/express" && npm install --silent --no-audit --no-fund >/dev/null) || die "npm install failed"
  fi
  pick_port EXPRESS_PORT 18060
  log "starting the seed-style Express gateway on 127.0.0.1:$EXPRESS_PORT"
  PORT=$EXPRESS_PORT UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" JWT_SECRET=$JWT_SECRET \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$ROOT/bench/express/gateway.js" >"$TMP/express.log" 2>&1 &
  PIDS+=($!)
  wait_until 10 express "$!" http_ok "http://127.0.0.1:$EXPRESS_PORT/bench" -H "Authorization: Bearer $BENCH_TOKEN"
fi

if [ $NEED_GATEWAY = 1 ]; then
  pick_port GATEWAY_PORT 18080
  pick_port ADMIN_PORT 18081
  cat >"$TMP/gateway.toml" <<EOF
# Generated by scripts/bench.sh: passthrough (no auth, no limit), one worker.
[node]
id = "bench"
listen = "127.0.0.1:$GATEWAY_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
workers = 1

[log]
$([ "${ACCESS_LOG:-0}" = 1 ] && printf 'access_log = true\naccess_log_file = "%s"' "$TMP/gateway-access.log" || echo "access_log = false")
format = "json"
level = "warn"

$REDIS_CONF

[auth.jwt]
algorithms = ["HS256"]
[[auth.jwt.keys]]
kid = "bench"
secret = "$JWT_SECRET"

# full: a limit high enough never to refuse; every request still costs its Redis decision.
[rate_limit.policies.bench]
algorithm = "sliding_window"
limit = 1000000000
window = "1m"
key = "consumer"
failure_mode = "open"

[[services]]
name = "bench"
prefix = "/"
strip_prefix = false
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]

# jwt: the same upstream behind JWT verification only.
[[services]]
name = "jwt"
prefix = "/jwt"
auth = "jwt"
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]

# full: JWT + a sliding-window limit decided in Redis (when Redis runs) + proxy.
[[services]]
name = "secure"
prefix = "/secure"
auth = "jwt"
rate_limit = "$([ $NEED_REDIS = 1 ] && echo bench || echo none)"
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]

# cached: the full pipeline with the response cache in front of the proxy (hits).
[[services]]
name = "cached"
prefix = "/cached"
auth = "jwt"
rate_limit = "$([ $NEED_REDIS = 1 ] && echo bench || echo none)"
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]
[services.cache]
ttl = "10m"

# queue_async: jobs accepted per second (202); workers drain them meanwhile.
[[services]]
name = "qasync"
prefix = "/queue-async"
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]
[services.queue]
match = ["POST /queue-async/*"]
mode = "async"
rate = "1000000/1s"
concurrency = 8
max_depth = 100000000
result_ttl = "5m"

# queue_sync: end-to-end latency of a synchronous job at low load (one connection).
[[services]]
name = "qsync"
prefix = "/queue-sync"
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]
[services.queue]
match = ["POST /queue-sync/*"]
mode = "sync"
wait = "5s"
rate = "1000000/1s"
concurrency = 8
result_ttl = "5m"
EOF
  log "starting gateway on 127.0.0.1:$GATEWAY_PORT (admin $ADMIN_PORT, 1 worker)"
  "$GATEWAY_BIN" --config "$TMP/gateway.toml" >"$TMP/gateway.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=($GATEWAY_PID)
  wait_http "http://127.0.0.1:$ADMIN_PORT/ready" gateway "$GATEWAY_PID"
fi

# start_node NAME PORT ADMIN CONFIG [VAR=VALUE...]: one more gateway (node id bench-NAME)
# on CONFIG with the environment overrides given, its listeners on PORT and ADMIN,
# logging to gateway-NAME.log.
start_node() {
  local name=$1 port=$2 admin=$3 config=$4 pid
  shift 4
  log "starting gateway ($name) on 127.0.0.1:$port (admin $admin)"
  env "$@" GATEWAY__NODE__ID=bench-$name GATEWAY__NODE__LISTEN=127.0.0.1:$port GATEWAY__NODE__ADMIN_LISTEN=127.0.0.1:$admin \
    "$GATEWAY_BIN" --config "$config" >"$TMP/gateway-$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$admin/ready" "gateway-$name" "$pid"
}

# start_variant NAME PORTVAR ADMINVAR BASE TOML [VAR=VALUE...]: a second node on the same
# config plus the TOML lines appended and the environment overrides given (a variant of
# one setting, measured next to the main node).
start_variant() {
  local name=$1 port_var=$2 admin_var=$3 base=$4 extra=$5
  shift 5
  pick_port "$port_var" "$base"
  pick_port "$admin_var" $((base + 1))
  { cat "$TMP/gateway.toml"; printf '
%s
' "$extra"; } >"$TMP/gateway-$name.toml"
  start_node "$name" "${!port_var}" "${!admin_var}" "$TMP/gateway-$name.toml" "$@"
}
# full_no_analytics: the same node with analytics off, to price the analytics pipeline.
[ $NEED_QUIET = 0 ] || start_variant quiet QUIET_PORT QUIET_ADMIN 18088 $'[analytics]\nenabled = false'
# cached_l2: the same node with L1 off, so every hit is read from Redis (L2).
[ $NEED_L2 = 0 ] || start_variant l2 L2_PORT L2_ADMIN 18091 $'[cache]\nl1_capacity = "0"'
# *_log: the same node with its access log on (JSON, to a file on the same disk as nginx's).
LOGGED_FILE=$TMP/gateway-logged-access.log
if [ $NEED_LOGGED = 1 ]; then
  rm -f "$LOGGED_FILE"
  start_variant logged LOGGED_PORT LOGGED_ADMIN 18093 "" \
    GATEWAY__LOG__ACCESS_LOG=true GATEWAY__LOG__ACCESS_LOG_FILE="$LOGGED_FILE"
fi

if [ $NEED_CLUSTER = 1 ]; then
  # three_nodes: two more nodes on the same config and Redis, HAProxy round robin in front.
  NODE_PORTS=("$GATEWAY_PORT")
  for n in 2 3; do
    pick_port NODE_PORT 18082
    pick_port NODE_ADMIN 18085
    start_node "$n" "$NODE_PORT" "$NODE_ADMIN" "$TMP/gateway.toml"
    NODE_PORTS+=("$NODE_PORT")
  done
  pick_port HAPROXY_PORT 18075
  {
    echo "global"
    echo "  maxconn 4096"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 2s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "  option http-keep-alive"
    echo "frontend lb"
    echo "  bind 127.0.0.1:$HAPROXY_PORT"
    echo "  default_backend nodes"
    echo "backend nodes"
    echo "  balance roundrobin"
    for i in "${!NODE_PORTS[@]}"; do echo "  server gw$i 127.0.0.1:${NODE_PORTS[$i]}"; done
  } >"$TMP/haproxy.cfg"
  log "starting haproxy on 127.0.0.1:$HAPROXY_PORT in front of ${NODE_PORTS[*]}"
  haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$HAPROXY_PORT/bench" haproxy "$!"
fi

url_for() {
  case $1 in
    direct) echo "http://127.0.0.1:$UPSTREAM_PORT/bench" ;;
    nginx_proxy) echo "http://127.0.0.1:$NGINX_PORT/bench" ;;
    passthrough) echo "http://127.0.0.1:$GATEWAY_PORT/bench" ;;
    jwt) echo "http://127.0.0.1:$GATEWAY_PORT/jwt/bench" ;;
    full) echo "http://127.0.0.1:$GATEWAY_PORT/secure/bench" ;;
    cached) echo "http://127.0.0.1:$GATEWAY_PORT/cached/bench" ;;
    full_no_analytics) echo "http://127.0.0.1:$QUIET_PORT/secure/bench" ;;
    cached_l2) echo "http://127.0.0.1:$L2_PORT/cached/bench" ;;
    three_nodes) echo "http://127.0.0.1:$HAPROXY_PORT/secure/bench" ;;
    queue_async) echo "http://127.0.0.1:$GATEWAY_PORT/queue-async/bench" ;;
    queue_sync) echo "http://127.0.0.1:$GATEWAY_PORT/queue-sync/bench" ;;
    express_full) echo "http://127.0.0.1:$EXPRESS_PORT/bench" ;;
    nginx_proxy_log) echo "http://127.0.0.1:$NGINX_LOG_PORT/bench" ;;
    passthrough_log) echo "http://127.0.0.1:$LOGGED_PORT/bench" ;;
    full_log) echo "http://127.0.0.1:$LOGGED_PORT/secure/bench" ;;
    cached_log) echo "http://127.0.0.1:$LOGGED_PORT/cached/bench" ;;
  esac
}

if [ "${HOLD:-0}" = 1 ]; then
  for s in "${SCENARIOS[@]}"; do echo "$s: $(url_for "$s")"; done
  echo "token: $BENCH_TOKEN"
  echo "gateway pid: ${GATEWAY_PID:-none}; redis port: ${REDIS_PORT:-none}; config: $TMP/gateway.toml"
  echo "holding (HOLD=1): Ctrl-C or kill $$ stops everything"
  sleep infinity &
  wait $! || true
  exit 0
fi

# ---- wrk runs -------------------------------------------------------------------------
# to_ms VALUE: wrk latency ("812.00us", "1.23ms", "1.01s", "2.00m") -> milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u);
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1;
    if (f < 0) exit 1;
    printf "%.3f", n * f }'
}

# run_wrk OUT ARGS...: wrk in the background so a signal interrupts `wait` at once and the
# EXIT trap (which also stops wrk) runs without waiting for the test to end.
run_wrk() {
  local out=$1; shift
  wrk "$@" >"$out" 2>&1 &
  WRK_PID=$!
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=
  return $rc
}

# 1/5/15-minute load average before the runs: anything else busy on the box skews numbers.
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
declare -A RPS P50 P99 NON2XX SOCKERR
FAILED=()
LOGGED_SENT=0 # requests wrk and curl counted as answered by the *_log node
for s in "${SCENARIOS[@]}"; do
  url=$(url_for "$s")
  HDR=()
  case $s in jwt | full | full_no_analytics | cached | cached_l2 | three_nodes | express_full | full_log | cached_log) HDR=(-H "Authorization: Bearer $BENCH_TOKEN") ;; esac
  conns=$CONNECTIONS
  case $s in
    queue_async | queue_sync)
      # POST with a small JSON body; queue_sync measures latency at low load.
      printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' >"$TMP/post.lua"
      HDR=(-s "$TMP/post.lua")
      want_code=202
      [ "$s" = queue_sync ] && { conns=1; want_code=200; }
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -d '{}' "$url" || true)
      [ "$code" = "$want_code" ] || die "$s: POST $url returned HTTP $code (want $want_code)"
      ;;
    *) check_ok "$url" "$s" ;;
  esac
  case $s in passthrough_log | full_log | cached_log) LOGGED_SENT=$((LOGGED_SENT + 1)) ;; esac
  log "$s: warm-up wrk -t$THREADS -c$conns -d$WARMUP $url"
  run_wrk "$TMP/$s.warmup.txt" "${HDR[@]}" -t"$THREADS" -c"$conns" -d"$WARMUP" "$url" \
    || die "$s: wrk warm-up failed: $(cat "$TMP/$s.warmup.txt")"
  log "$s: wrk -t$THREADS -c$conns -d$DURATION --latency $url"
  out=$TMP/$s.wrk.txt
  [ "$s" != full ] || [ $NEED_REDIS = 0 ] || redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
  run_wrk "$out" "${HDR[@]}" -t"$THREADS" -c"$conns" -d"$DURATION" --latency "$url" \
    || die "$s: wrk failed: $(cat "$out")"
  sed 's/^/    /' "$out" >&2

  RPS[$s]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  case $s in
    passthrough_log | full_log | cached_log)
      for f in "$TMP/$s.warmup.txt" "$out"; do
        LOGGED_SENT=$((LOGGED_SENT + $(awk '/requests in/ { print $1 }' "$f")))
      done ;;
  esac
  if [ "$s" = full ] && [ $NEED_REDIS = 1 ]; then
    reqs=$(awk '/requests in/ { print $1 }' "$out")
    # Round trips only: commands a script runs inside Redis are counted in commandstats
    # too, but cost no extra round trip (the membership heartbeat adds ~3 per second).
    # At most 1 per request: the decisions one worker gathers in an event-loop turn share
    # one script call (actors/src/ratelimit/batch.rs), so under load it is well below 1.
    cmds=$(redis-cli -p "$REDIS_PORT" info commandstats | awk -F'[:=,]' '/^cmdstat_(evalsha|eval):/ { n += $3 } END { print n + 0 }')
    REDIS_PER_REQUEST=$(awk -v c="$cmds" -v r="$reqs" 'BEGIN { if (r > 0) printf "%.3f", c / r; else print "null" }')
    log "full: $cmds Redis script calls for $reqs requests ($REDIS_PER_REQUEST per request, at most 1)"
  fi
  p50=$(awk '$1 == "50%" { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  [ -n "${RPS[$s]}" ] && [ -n "$p50" ] && [ -n "$p99" ] || die "$s: cannot parse wrk output ($out)"
  P50[$s]=$(to_ms "$p50") || die "$s: bad latency '$p50'"
  P99[$s]=$(to_ms "$p99") || die "$s: bad latency '$p99'"
  NON2XX[$s]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  NON2XX[$s]=${NON2XX[$s]:-0}
  SOCKERR[$s]=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
  SOCKERR[$s]=${SOCKERR[$s]:-0}
  if [ "${NON2XX[$s]}" != 0 ]; then
    printf '\n!!! %s: %s non-2xx/3xx responses from %s\n' "$s" "${NON2XX[$s]}" "$url" >&2
    FAILED+=("$s: ${NON2XX[$s]} non-2xx responses")
  fi
  if [ "${SOCKERR[$s]}" != 0 ]; then
    printf '\n!!! %s: %s socket errors: %s\n' "$s" "${SOCKERR[$s]}" "$(grep 'Socket errors' "$out")" >&2
    FAILED+=("$s: ${SOCKERR[$s]} socket errors")
  fi
  if [ "$s" = passthrough ] && ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    FAILED+=("passthrough: gateway process died")
  fi
done

# The *_log node's access log: one whole JSON line per request (a request wrk cut off at
# the end of a run may still be answered and logged: at most CONNECTIONS per wrk run more),
# and nothing dropped.
LOG_CHECK=""
if [ $NEED_LOGGED = 1 ]; then
  sleep 1.5 # the writer flushes every second
  read -r LOG_LINES LOG_TORN < <(python3 - "$LOGGED_FILE" <<'PY'
import json, sys
lines = torn = 0
with open(sys.argv[1], "rb") as f:
    for raw in f:
        lines += 1
        try:
            v = json.loads(raw)
            if v.get("target") != "access":
                torn += 1
        except ValueError:
            torn += 1
print(lines, torn)
PY
  )
  LOG_DROPPED=$(curl -s "http://127.0.0.1:$LOGGED_ADMIN/metrics" | awk '/^gateway_access_log_dropped_total/ { print $2 }')
  LOG_CHECK="access log of the *_log node: $LOG_LINES lines for $LOGGED_SENT answered requests counted (wrk runs cut off at most $CONNECTIONS each), $LOG_TORN torn or invalid, gateway_access_log_dropped_total ${LOG_DROPPED:-missing}"
  log "$LOG_CHECK"
  [ "$LOG_TORN" = 0 ] || FAILED+=("access log: $LOG_TORN torn lines")
  [ "${LOG_DROPPED:-x}" = 0 ] || FAILED+=("access log: ${LOG_DROPPED:-no} dropped lines")
  [ "$LOG_LINES" -ge "$LOGGED_SENT" ] || FAILED+=("access log: $LOG_LINES lines for $LOGGED_SENT requests")
fi

# ---- results --------------------------------------------------------------------------
ratio() { # ratio A B -> A/B with 3 decimals, or null when B is missing/zero
  if [ -z "${2:-}" ]; then echo null; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "null"; else printf "%.3f", a / b }'
}
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=false
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || DIRTY=true
CPUS=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
NGINX_VERSION=$([ $NEED_NGINX = 1 ] && "$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //' || echo "")
WRK_VERSION=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
NG_RPS=${RPS[nginx_proxy]:-}
NG_P99=${P99[nginx_proxy]:-}
# peer S: the nginx scenario S is compared with (nginx with its access log for *_log).
peer() {
  case $1 in
    passthrough_log | full_log | cached_log) echo nginx_proxy_log ;;
    *) echo nginx_proxy ;;
  esac
}

RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
JSON=$RESULTS/$STAMP.json
MD=$RESULTS/$STAMP.md

{
  echo "{"
  echo "  \"date\": \"$DATE\","
  echo "  \"git_commit\": \"$COMMIT\","
  echo "  \"git_dirty\": $DIRTY,"
  echo "  \"cpu_count\": $CPUS,"
  echo "  \"cpu_model\": $(json_str "$CPU_MODEL"),"
  echo "  \"wrk\": {\"version\": $(json_str "$WRK_VERSION"), \"threads\": $THREADS, \"connections\": $CONNECTIONS, \"duration\": \"$DURATION\", \"warmup\": \"$WARMUP\"},"
  echo "  \"loadavg_at_start\": \"$LOAD_AT_START\","
  echo "  \"nginx_version\": $(json_str "$NGINX_VERSION"),"
  echo "  \"setup\": \"mock-upstream 1 worker; nginx worker_processes 1, keepalive 64; gateway workers 1, access_log off; *_log: nginx access_log buffer=64k flush=1s, gateway access log on to a file, compared with nginx_proxy_log\","
  printf '  "skipped": ['
  sep=""; for s in "${SKIPPED[@]}"; do printf '%s"%s"' "$sep" "$s"; sep=", "; done
  echo "],"
  echo "  \"results\": ["
  n=${#SCENARIOS[@]}; i=0
  for s in "${SCENARIOS[@]}"; do
    i=$((i + 1))
    p=$(peer "$s")
    printf '    {"scenario": "%s", "rps": %s, "p50_ms": %s, "p99_ms": %s, "peer": "%s", "ratio_rps_vs_nginx": %s, "ratio_p99_vs_nginx": %s, "non_2xx": %s, "socket_errors": %s}%s\n' \
      "$s" "${RPS[$s]}" "${P50[$s]}" "${P99[$s]}" "$p" "$(ratio "${RPS[$s]}" "${RPS[$p]:-}")" \
      "$(ratio "${P99[$s]}" "${P99[$p]:-}")" "${NON2XX[$s]}" "${SOCKERR[$s]}" "$([ $i -lt $n ] && echo ,)"
  done
  echo "  ]"
  echo "}"
} >"$JSON"

{
  echo "# Benchmark $DATE"
  echo
  echo "commit \`${COMMIT:0:12}\`$([ $DIRTY = true ] && echo ' (dirty tree)'), $CPUS CPUs ($CPU_MODEL),"
  echo "\`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` after a $WARMUP warm-up; loopback; mock upstream, nginx and gateway each with 1 worker;"
  echo "load average at start: $LOAD_AT_START."
  echo
  echo "| scenario | rps | p50 ms | p99 ms | rps vs nginx | p99 vs nginx | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for s in "${SCENARIOS[@]}"; do
    p=$(peer "$s")
    r=$(ratio "${RPS[$s]}" "${RPS[$p]:-}"); q=$(ratio "${P99[$s]}" "${P99[$p]:-}")
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$s" "${RPS[$s]}" "${P50[$s]}" "${P99[$s]}" \
      "${r/null/-}" "${q/null/-}" "$((NON2XX[$s] + SOCKERR[$s]))"
  done
  for s in "${SKIPPED[@]}"; do printf '| %s | skipped: needs %s | | | | | |\n' "$s" "${PLANNED[$s]}"; done
  if want jwt && want passthrough; then
    jwt_ok=$(awk -v a="${RPS[jwt]}" -v b="${RPS[passthrough]}" 'BEGIN { print (a >= 0.9 * b) ? "met" : "NOT met" }')
    echo
    echo "JWT verification cost (jwt vs passthrough): rps $jwt_ok for >= 0.9 x ($(ratio "${RPS[jwt]}" "${RPS[passthrough]}") x)"
  fi
  if want full && [ -n "$NG_RPS" ]; then
    full_ok=$(awk -v a="${RPS[full]}" -v b="$NG_RPS" 'BEGIN { print (a >= 0.5 * b) ? "met" : "NOT met" }')
    echo "full (JWT + Redis sliding window) vs nginx_proxy: rps $full_ok for >= 0.5 x ($(ratio "${RPS[full]}" "$NG_RPS") x); Redis script calls (round trips) per request: ${REDIS_PER_REQUEST:-n/a} (at most 1)"
  fi
  if want full && want express_full; then
    ex_ok=$(awk -v a="${RPS[full]}" -v b="${RPS[express_full]}" 'BEGIN { print (a >= 15 * b) ? "met" : "NOT met" }')
    echo "full vs express_full (seed-style Express gateway): rps $ex_ok for >= 15 x ($(ratio "${RPS[full]}" "${RPS[express_full]}") x)"
  fi
  if want passthrough && [ -n "$NG_RPS" ]; then
    rps_ok=$(awk -v a="${RPS[passthrough]}" -v b="$NG_RPS" 'BEGIN { print (a >= 0.8 * b) ? "met" : "NOT met" }')
    p99_ok=$(awk -v a="${P99[passthrough]}" -v b="$NG_P99" 'BEGIN { print (a <= 1.5 * b) ? "met" : "NOT met" }')
    echo
    echo "Targets (passthrough vs nginx_proxy):"
    echo "- rps >= 0.8 x nginx: $rps_ok ($(ratio "${RPS[passthrough]}" "$NG_RPS") x)"
    echo "- p99 <= 1.5 x nginx: $p99_ok ($(ratio "${P99[passthrough]}" "$NG_P99") x)"
  fi
  if want nginx_proxy_log; then
    echo
    echo "Production settings (issue 26; *_log rows are compared with nginx_proxy_log):"
    target() { # target NAME A B MIN: "NAME: met|NOT met for >= MIN x (A/B x)"
      local q; q=$(ratio "${RPS[$2]:-}" "${RPS[$3]:-}")
      [ "$q" = null ] || echo "- $1: $(awk -v q="$q" -v m="$4" 'BEGIN { print (q >= m) ? "met" : "NOT met" }') for >= $4 x ($q x)"
    }
    target "passthrough_log vs nginx_proxy_log" passthrough_log nginx_proxy_log 0.9
    target "full_log vs nginx_proxy_log" full_log nginx_proxy_log 0.6
    target "cached_log vs nginx_proxy_log" cached_log nginx_proxy_log 1.0
    target "access log cost, passthrough_log vs passthrough (< 10 %)" passthrough_log passthrough 0.9
    target "access log cost, full_log vs full (< 10 %)" full_log full 0.9
    target "nginx's own log cost, nginx_proxy_log vs nginx_proxy" nginx_proxy_log nginx_proxy 0
    [ -z "$LOG_CHECK" ] || echo "- $LOG_CHECK"
  fi
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo
    echo "**ERRORS:** $(printf '%s; ' "${FAILED[@]}")"
  fi
} >"$MD"

echo
cat "$MD"
echo
echo "results: ${JSON#$ROOT/} ${MD#$ROOT/}"

if [ ${#FAILED[@]} -gt 0 ]; then
  die "errors during the run: $(printf '%s; ' "${FAILED[@]}") (numbers are not trustworthy)"
fi
