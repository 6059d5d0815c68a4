#!/usr/bin/env bash
# Deployment smoke test (issue #11, SPEC §15), run by scripts/test.sh:
#
#   1. docker-compose.cluster.yml validates (`docker compose config`, or `docker-compose
#      config`; Debian's docker-compose package is installed with apt-get when neither
#      exists, and the test fails if it cannot be), with and without the sentinel profile;
#   2. scripts/cluster-up.sh (standalone Redis, debug binaries, a private run directory
#      and ports it picks itself: never 6379) starts the local cluster;
#   3. a request with the demo JWT through HAProxy answers 200 (and 401 without it);
#   4. scripts/cluster-down.sh stops it, and none of the processes it recorded, nor any
#      process mentioning the run directory, is left.
#
# On any failure the cluster is stopped (trap) and the last log lines are printed.
# Environment: GATEWAY_BIN, UPSTREAM_BIN (default target/debug/{gateway,mock-upstream},
# built with cargo when missing), KEEP_RUN=1 to keep the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
LOG_PREFIX="test-deploy: " DIE_NAME=test-deploy
fail() { die "$@"; }

# ---- 1. the compose file ------------------------------------------------------------------
COMPOSE=()
find_compose() {
  if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose)
  else return 1
  fi
}
if ! find_compose; then
  log "neither 'docker compose' nor docker-compose found: installing Debian's docker-compose"
  apt_install --no-install-recommends docker-compose ||
    fail "could not install docker-compose with apt-get: docker-compose.cluster.yml cannot be validated"
  find_compose || fail "docker-compose installed but not found on PATH"
fi
log "validating docker-compose.cluster.yml with '${COMPOSE[*]} config'"
"${COMPOSE[@]}" -f docker-compose.cluster.yml config -q ||
  fail "docker-compose.cluster.yml does not validate (${COMPOSE[*]} config)"
GATEWAY_REDIS_MODE=sentinel "${COMPOSE[@]}" -f docker-compose.cluster.yml --profile sentinel config -q ||
  fail "docker-compose.cluster.yml does not validate with --profile sentinel"
services=$("${COMPOSE[@]}" -f docker-compose.cluster.yml --profile sentinel config --services | sort | paste -sd' ' -)
for s in redis-primary redis-replica sentinel-1 sentinel-2 sentinel-3 gw-1 gw-2 gw-3 lb upstream-1 upstream-2 prometheus grafana; do
  [[ " $services " == *" $s "* ]] || fail "docker-compose.cluster.yml has no service $s (has: $services)"
done

# ---- 2. cluster-up --------------------------------------------------------------------------
GATEWAY_BIN=${GATEWAY_BIN:-$ROOT/target/debug/gateway}
UPSTREAM_BIN=${UPSTREAM_BIN:-$ROOT/target/debug/mock-upstream}
if [ ! -x "$GATEWAY_BIN" ] || [ ! -x "$UPSTREAM_BIN" ]; then
  log "cargo build (debug) gateway and mock-upstream"
  cargo build -q -p gateway --bin gateway -p cluster-tests --bin mock-upstream
fi
export GATEWAY_BIN UPSTREAM_BIN

RUN=$(mktemp -d "${TMPDIR:-/tmp}/gw-test-deploy.XXXXXX")
PIDS_COPY=$RUN.pids
UP_DONE=0
cleanup() {
  local rc=$?
  if [ -s "$RUN/pids" ]; then
    cp "$RUN/pids" "$PIDS_COPY" 2>/dev/null || true
    [ $rc = 0 ] || log "failed: stopping the cluster"
    bash "$ROOT/scripts/cluster-down.sh" --dir "$RUN" >/dev/null 2>&1 || true
  fi
  if [ $rc != 0 ] && [ -d "$RUN/logs" ]; then
    for f in "$RUN"/logs/*.log; do
      [ -s "$f" ] || continue
      printf -- '--- %s (last lines)\n' "${f#"$RUN"/}" >&2
      tail -n 10 "$f" >&2
    done
  fi
  if [ "${KEEP_RUN:-0}" = 1 ]; then log "run directory kept: $RUN"; else rm -rf "$RUN"; fi
  rm -f "$PIDS_COPY"
  exit $rc
}
on_exit cleanup

log "scripts/cluster-up.sh --redis standalone --dir $RUN"
bash scripts/cluster-up.sh --redis standalone --dir "$RUN" >"$RUN/urls.out" 2>"$RUN/cluster-up.err" || {
  cat "$RUN/cluster-up.err" >&2
  fail "scripts/cluster-up.sh failed"
}
UP_DONE=1
[ -s "$RUN/env" ] || fail "cluster-up.sh wrote no $RUN/env"
# shellcheck disable=SC1091
. "$RUN/env"
[ "$(head -n 1 "$RUN/urls.out")" = "$LB" ] || fail "cluster-up.sh did not print the load balancer URL first"
[ "$(grep -c . "$RUN/pids")" -ge 7 ] || fail "cluster-up.sh recorded fewer than 7 processes: $(cat "$RUN/pids")"
if grep -qE '(^|[^0-9])6379($|[^0-9])' "$RUN/urls.out"; then fail "cluster-up.sh used port 6379"; fi

# ---- 3. a request with a JWT through HAProxy ----------------------------------------------
[ -n "${TOKEN:-}" ] || fail "cluster-up.sh printed no demo JWT (TOKEN empty in $RUN/env)"
code() { curl -s -o "$RUN/body" -w '%{http_code}' --max-time 10 "$@" || true; }
status=$(code -H "Authorization: Bearer $TOKEN" "$LB/api/secure/hello")
[ "$status" = 200 ] || fail "GET $LB/api/secure/hello with the demo JWT answered $status: $(cat "$RUN/body")"
# mock-upstream (no recording) answers every request with the body "ok".
[ "$(cat "$RUN/body")" = ok ] || fail "the answer did not come from a mock upstream: $(cat "$RUN/body")"
status=$(code "$LB/api/secure/hello")
[ "$status" = 401 ] || fail "GET $LB/api/secure/hello without a token answered $status, not 401"
log "HAProxy -> gateway with a JWT: 200 (401 without it)"

# ---- 4. cluster-down leaves nothing -------------------------------------------------------
cp "$RUN/pids" "$PIDS_COPY"
log "scripts/cluster-down.sh --dir $RUN"
bash scripts/cluster-down.sh --dir "$RUN" >"$RUN/cluster-down.err" 2>&1 || {
  cat "$RUN/cluster-down.err" >&2
  fail "scripts/cluster-down.sh failed"
}
left=()
while read -r name pid start; do
  # The same pid with the same start time is the process cluster-up.sh started.
  if ours "$pid" "$start"; then
    left+=("$name:$pid")
  fi
done <"$PIDS_COPY"
[ ${#left[@]} = 0 ] || fail "processes left after cluster-down.sh: ${left[*]}"
# Anything else still running from this run (its config, logs and data live in $RUN).
stray=$(pgrep -f -- "$RUN" || true)
[ -z "$stray" ] || fail "processes mentioning $RUN left after cluster-down.sh: $(ps -o pid=,args= -p "${stray//$'\n'/,}")"
[ $UP_DONE = 1 ] || fail "cluster-up.sh did not complete"
log "ok: compose file valid, cluster up, JWT request 200 through HAProxy, nothing left after cluster-down"
