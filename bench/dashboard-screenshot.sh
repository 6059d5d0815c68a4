#!/usr/bin/env bash
# Starts a memory-mode gateway with a mock upstream, sends mixed traffic (successes, 5xx,
# rate-limit breaches, cache hits, two consumers), then drives /admin/dashboard in
# headless Chromium (bench/dashboard-screenshot.mjs): it must ask for the token, draw
# non-empty charts and log no console errors. Writes bench/results/dashboard.png.
# Needs: chromium (apt-get install chromium), node >= 20, a debug build of gateway and
# mock-upstream (cargo build -p gateway -p cluster-tests --bins).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN=${BIN:-target/debug}
TOKEN=dash-demo-token
dir=$(mktemp -d)
base=$(( 20000 + RANDOM % 10000 ))
pick_port up_port "$base"; pick_port gw_port "$base"; pick_port admin_port "$base"
cat > "$dir/gw.toml" <<TOML
[node]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
workers = 1
[admin]
token = "$TOKEN"
[log]
access_log = false
[auth.api_key]
header = "X-API-Key"
[rate_limit.policies.tight]
limit = 20
window = "1h"
key = "consumer"
[[services]]
name = "users"
auth = "api_key"
endpoints = ["http://127.0.0.1:$up_port"]
rate_limit = "tight"
[[services]]
name = "catalog"
endpoints = ["http://127.0.0.1:$up_port"]
[services.cache]
ttl = "60s"
TOML
"$BIN/mock-upstream" "$up_port" >/dev/null 2>&1 & up_pid=$!
"$BIN/gateway" --config "$dir/gw.toml" >"$dir/gateway.log" 2>&1 & gw_pid=$!
cleanup() {
  local rc=$?
  stop_pids "$up_pid" "$gw_pid"
  rm -rf "$dir"
  exit $rc
}
on_exit cleanup
LOG_DIR=$dir wait_until 10 gateway "$gw_pid" http_ok "http://127.0.0.1:$admin_port/ready"
admin=(-s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json')
key_of() {
  curl "${admin[@]}" -X POST "http://127.0.0.1:$admin_port/admin/consumers" -d "{\"id\":\"$1\"}" >/dev/null
  curl "${admin[@]}" -X POST "http://127.0.0.1:$admin_port/admin/consumers/$1/keys" -d '{}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
alice=$(key_of alice); bob=$(key_of bob)
for i in $(seq 60); do
  curl -s -o /dev/null -H "X-API-Key: $alice" "http://127.0.0.1:$gw_port/api/users/$i"
  curl -s -o /dev/null -H "X-API-Key: $bob" -H 'x-mock-status: 503' "http://127.0.0.1:$gw_port/api/users/$i/orders"
  curl -s -o /dev/null "http://127.0.0.1:$gw_port/api/catalog/items"
done
curl -s -o /dev/null "http://127.0.0.1:$gw_port/api/nowhere"
mkdir -p bench/results
node --experimental-websocket bench/dashboard-screenshot.mjs "http://127.0.0.1:$admin_port/admin/dashboard" "$TOKEN" bench/results/dashboard.png
