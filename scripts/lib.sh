# shellcheck shell=bash
# Helpers shared by the scripts in scripts/ and bench/. Source it after `set -euo pipefail`
# and the `cd` to the repository:
#
#   cd "$(dirname "$0")/.."
#   . scripts/lib.sh
#
# It sets ROOT (the repository) and defines functions; it starts nothing, traps nothing
# and changes no directory. Settings it reads: LOG_PREFIX (log), DIE_NAME (die), APT_LOG
# (apt_install), LOG_DIR (wait_until).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- messages -----------------------------------------------------------------------------
# log MSG...: "==> MSG" on stderr, after LOG_PREFIX when set.
log() { printf '==> %s%s\n' "${LOG_PREFIX:-}" "$*" >&2; }
# die MSG...: "!!! NAME: MSG" on stderr and exit 1; NAME is DIE_NAME or the script's file name.
die() { printf '\n!!! %s: %s\n' "${DIE_NAME:-${0##*/}}" "$*" >&2; exit 1; }

# ---- tools --------------------------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# have CMD: CMD is on PATH or in /usr/sbin (where Debian puts redis-server, haproxy, nginx).
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# apt_install [APT-GET OPTIONS] PKG...: `apt-get install -y` as root (sudo otherwise), with
# `apt-get update` first, once per script run. Debian's maintainer scripts may not start
# services meanwhile (a policy-rc.d that says no for the install): a system redis on 6379
# may be someone else's. Output goes to APT_LOG when set (stdout to /dev/null otherwise).
# Returns apt-get's status; apt_install_or_die exits with a message instead.
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  local policy=/usr/sbin/policy-rc.d added=0 rc=0
  if [ ! -e $policy ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    added=1
  fi
  if [ -n "${APT_LOG:-}" ]; then
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >"$APT_LOG" 2>&1 || rc=$?
  else
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null || rc=$?
  fi
  [ $added = 0 ] || as_root rm -f $policy
  return $rc
}
apt_install_or_die() { apt_install "$@" || die "apt-get install $* failed${APT_LOG:+ (see $APT_LOG)}"; }

# ---- ports --------------------------------------------------------------------------------
# port_in_use PORT: something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# pick_port VAR BASE [OFFSET]: set VAR to the first port >= BASE that nothing listens on,
# that this script has not taken already, and (with OFFSET) whose port + OFFSET is free
# too (a Redis Cluster node's bus port).
TAKEN=" "
pick_port() {
  local p=$2 off=${3:-}
  while port_in_use "$p" || [[ $TAKEN == *" $p "* ]] ||
    { [ -n "$off" ] && { port_in_use $((p + off)) || [[ $TAKEN == *" $((p + off)) "* ]]; }; }; do
    p=$((p + 1))
  done
  TAKEN+="$p "
  [ -z "$off" ] || TAKEN+="$((p + off)) "
  printf -v "$1" '%s' "$p"
}

# ---- waiting ------------------------------------------------------------------------------
# wait_until SECONDS NAME PID CMD...: run CMD every 0.1 s until it succeeds; die when PID
# (unless empty) exits first or SECONDS pass, showing the end of LOG_DIR/NAME.log.
wait_until() {
  local secs=$1 name=$2 pid=$3; shift 3
  local i log=${LOG_DIR:-.}/$name.log
  for ((i = 0; i < secs * 10; i++)); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      die "$name exited during startup; last lines of $log:
$(tail -n 15 "$log" 2>/dev/null)"
    fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$name not ready after ${secs}s; last lines of $log:
$(tail -n 15 "$log" 2>/dev/null)"
}
# http_ok URL [CURL ARGS...]: URL answers 200 within 1 s.
http_ok() {
  local url=$1; shift
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)" = 200 ]
}
# redis_ping PORT: the redis-server on 127.0.0.1:PORT answers PONG.
redis_ping() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

# ---- processes ----------------------------------------------------------------------------
# on_exit FUNC: run FUNC when the script exits; SIGINT and SIGTERM exit through it (130, 143).
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
# proc_start PID: the process's start time (field 22 of /proc/PID/stat), empty when gone.
proc_start() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null || true; }
# ours PID START: PID is still the process that started at START (not a recycled pid).
ours() { [ "$(proc_start "$1")" = "$2" ]; }
# stop_pids PID...: SIGTERM to each, up to 5 s for each to exit, then SIGKILL; reaps them.
stop_pids() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# ---- secrets ------------------------------------------------------------------------------
# random_hex: 32 random hex digits.
random_hex() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
# hs256_jwt SECRET KID SUB TTL_SECONDS [iat]: an HS256 token (role "free", expiring in
# TTL_SECONDS, with an `iat` claim when the fifth argument is given), signed with
# python3's standard library only.
hs256_jwt() {
  JWT_SECRET=$1 JWT_KID=$2 JWT_SUB=$3 JWT_TTL=$4 JWT_IAT=${5:-} python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
env = os.environ
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
claims = {"sub": env["JWT_SUB"], "role": "free"}
if env["JWT_IAT"]:
    claims["iat"] = now
claims["exp"] = now + int(env["JWT_TTL"])
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": env["JWT_KID"]}).encode())
body = b64(json.dumps(claims).encode())
sig = b64(hmac.new(env["JWT_SECRET"].encode(), head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())
PY
}
