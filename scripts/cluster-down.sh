#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started, and nothing else: the processes recorded in
# the run directory's `pids` file (name, pid and start time, so a recycled pid is never
# signalled). Load balancer first, then the gateways (SIGTERM: they drain and leave the
# membership), upstreams and Redis; SIGKILL for anything still alive after 15 s.
#
# Usage: scripts/cluster-down.sh [--dir DIR] [--purge]
#   --dir DIR   run directory given to cluster-up.sh (default .cluster/; env CLUSTER_DIR)
#   --purge     also delete the run directory (logs, generated config, Redis data)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUN=${CLUSTER_DIR:-$ROOT/.cluster}
PURGE=0
while [ $# -gt 0 ]; do
  case $1 in
    --dir) RUN=${2:-}; shift 2 ;;
    --dir=*) RUN=${1#--dir=}; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'cluster-down.sh: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
done

if [ ! -s "$RUN/pids" ]; then
  log "nothing to stop (no $RUN/pids)"
  if [ $PURGE = 1 ] && [ -d "$RUN" ]; then rm -rf "$RUN"; fi
  exit 0
fi

# Stop in groups, reverse start order within each: LB, gateways, upstreams, Redis.
mapfile -t ENTRIES < <(tac "$RUN/pids")
group_of() {
  case $1 in
    haproxy) echo 0 ;;
    gw-*) echo 1 ;;
    upstream-*) echo 2 ;;
    sentinel-*) echo 3 ;;
    *) echo 4 ;;
  esac
}
for group in 0 1 2 3 4; do
  waiting=()
  for entry in "${ENTRIES[@]}"; do
    read -r name pid start <<<"$entry"
    [ "$(group_of "$name")" = "$group" ] || continue
    if ours "$pid" "$start"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      waiting+=("$name:$pid:$start")
    fi
  done
  [ ${#waiting[@]} -gt 0 ] || continue
  for _ in $(seq 150); do
    left=0
    for w in "${waiting[@]}"; do
      IFS=: read -r name pid start <<<"$w"
      if ours "$pid" "$start" && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then left=1; fi
    done
    [ $left = 1 ] || break
    sleep 0.1
  done
  for w in "${waiting[@]}"; do
    IFS=: read -r name pid start <<<"$w"
    if ours "$pid" "$start" && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
      log "$name (pid $pid) still running after 15 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
done

# The processes outlived cluster-up.sh, so init reaps them: give it a moment, so that
# nothing of ours (not even an exited <defunct> entry) is listed when this returns.
for _ in $(seq 100); do
  left=0
  for entry in "${ENTRIES[@]}"; do
    read -r name pid start <<<"$entry"
    if ours "$pid" "$start"; then left=1; fi
  done
  [ $left = 1 ] || break
  sleep 0.1
done

rm -f "$RUN/pids"
if [ $PURGE = 1 ]; then
  rm -rf "$RUN"
  log "stopped; removed $RUN"
else
  log "stopped; logs and generated config kept in $RUN"
fi
