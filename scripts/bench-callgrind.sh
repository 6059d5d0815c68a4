#!/usr/bin/env bash
# Instructions per request, counted by callgrind: a figure that does not move with the
# load on the box (wrk's requests/s do), for A/B comparisons on a busy or noisy machine.
# Starts bench.sh's setup (HOLD=1) with the gateway under `valgrind --tool=callgrind`,
# sends WARM requests then N counted requests per scenario on one keep-alive connection
# (counters zeroed and dumped around the N with callgrind_control), and prints
# instructions per request. It measures CPU work in the gateway process only (user space,
# all threads), not latency and not the kernel's share.
#
# Usage: scripts/bench-callgrind.sh GATEWAY_BIN [N] [scenario...]
#   N          counted requests per scenario (default 2000)
#   scenario   any of passthrough jwt full cached (default: passthrough full cached)
# Needs release binaries (mock-upstream from this tree) and valgrind (apt-get install).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -ge 1 ] || { echo "usage: $0 GATEWAY_BIN [N] [scenario...]" >&2; exit 2; }
BIN=$(realpath "$1"); shift
N=${1:-2000}; [ $# -gt 0 ] && shift
SCENARIOS=("$@"); [ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(passthrough full cached)
WARM=${WARM:-300}
command -v valgrind >/dev/null || apt_install_or_die valgrind

OUT=$ROOT/bench/tmp/callgrind
rm -rf "$OUT"; mkdir -p "$OUT"
cat >"$OUT/gateway-under-callgrind" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$OUT/cg.out.%p "$BIN" "\$@" 2>$OUT/valgrind.log
WRAP
chmod +x "$OUT/gateway-under-callgrind"

GATEWAY_BIN=$OUT/gateway-under-callgrind SKIP_BUILD=1 HOLD=1 bash scripts/bench.sh "${SCENARIOS[@]}" >"$OUT/hold.log" 2>&1 &
HOLD_PID=$!
trap 'kill $HOLD_PID 2>/dev/null; wait $HOLD_PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^holding' "$OUT/hold.log" && break; kill -0 $HOLD_PID 2>/dev/null || { cat "$OUT/hold.log"; exit 1; }; sleep 0.2; done
grep -q '^holding' "$OUT/hold.log" || { cat "$OUT/hold.log"; echo "setup not ready" >&2; exit 1; }
PID=$(awk '/^gateway pid:/ { sub(/;/, "", $3); print $3 }' "$OUT/hold.log")
TOKEN=$(awk '/^token:/ { print $2 }' "$OUT/hold.log")

echo "| scenario | instructions per request |"
echo "|---|---:|"
for s in "${SCENARIOS[@]}"; do
  url=$(awk -v s="$s:" '$1 == s { print $2 }' "$OUT/hold.log")
  send() { python3 - "$url" "$TOKEN" "$1" <<'PY'
import http.client, sys, urllib.parse
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(u.hostname, u.port)
path = u.path + ("?" + u.query if u.query else "")
for _ in range(n):
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{url}: status {r.status}")
PY
  }
  send "$WARM"
  callgrind_control -z "$PID" >/dev/null 2>&1
  send "$N"
  callgrind_control -d "$s" "$PID" >/dev/null 2>&1
  dump=$(ls -t "$OUT"/cg.out."$PID".* | head -1)
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  printf '| %s | %s |\n' "$s" "$(awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f", t / n }')"
done
