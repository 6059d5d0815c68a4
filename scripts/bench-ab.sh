#!/usr/bin/env bash
# A/B benchmark of two gateway binaries on the same box: alternating runs of
# scripts/bench.sh (A B, then B A, ...), so slow drifts of a noisy machine hit both alike.
# Each run measures nginx_proxy too, so every figure is also a same-run ratio to nginx.
#
# Usage: scripts/bench-ab.sh A_BIN B_BIN [RUNS] [scenario...]
#   RUNS       runs of each binary (default 6)
#   scenario   bench.sh scenarios besides nginx_proxy (default: passthrough full cached)
# Release binaries must exist (build them first; mock-upstream comes from this tree).
# Prints a markdown table (per scenario: median rps of A and B, median ratios to nginx,
# median of the per-pair B/A ratios) and writes it to bench/tmp/ab-<UTC time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [RUNS] [scenario...]" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2"); shift 2
RUNS=${1:-6}; [ $# -gt 0 ] && shift
SCENARIOS=("$@"); [ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(passthrough full cached)
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "missing $bin" >&2; exit 2; }; done
[ -x "$ROOT/target/release/mock-upstream" ] || cargo build --release -p cluster-tests --bin mock-upstream

mkdir -p "$ROOT/bench/tmp"
LIST=$ROOT/bench/tmp/ab-runs.txt; : >"$LIST"
run() { # run LABEL BIN: one bench.sh run; appends "LABEL PAIR json-path" to $LIST
  local out
  out=$(GATEWAY_BIN="$2" SKIP_BUILD=1 bash scripts/bench.sh nginx_proxy "${SCENARIOS[@]}" 2>/dev/null | tail -1)
  echo "$1 $3 $ROOT/${out#results: }" | awk '{ print $1, $2, $3 }' >>"$LIST"
}
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run A "$A" "$i"; run B "$B" "$i"; else run B "$B" "$i"; run A "$A" "$i"; fi
  echo "==> pair $i of $RUNS done" >&2
done

OUT=$ROOT/bench/tmp/ab-$(date -u +%Y-%m-%dT%H-%M-%SZ).md
python3 - "$LIST" "$A" "$B" "${SCENARIOS[@]}" >"$OUT" <<'PY'
import json, statistics, sys
runs_file, a_bin, b_bin, *scenarios = sys.argv[1:]
runs = {}  # (label, pair) -> {scenario: rps}
for line in open(runs_file):
    label, pair, path = line.split()
    data = json.load(open(path))
    runs[(label, pair)] = {r["scenario"]: r["rps"] for r in data["results"]}
pairs = sorted({p for _, p in runs}, key=int)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"A = `{a_bin}`, B = `{b_bin}`, {len(pairs)} alternating runs each\n")
print("| scenario | A rps | B rps | A vs nginx | B vs nginx | B/A (per pair) | B/A range |")
print("|---|---:|---:|---:|---:|---:|---|")
for s in scenarios:
    a = [runs[("A", p)][s] for p in pairs]
    b = [runs[("B", p)][s] for p in pairs]
    an = [runs[("A", p)][s] / runs[("A", p)]["nginx_proxy"] for p in pairs]
    bn = [runs[("B", p)][s] / runs[("B", p)]["nginx_proxy"] for p in pairs]
    ba = [x / y for x, y in zip(b, a)]
    print(f"| {s} | {med(a):.0f} | {med(b):.0f} | {med(an):.2f}x | {med(bn):.2f}x | {med(ba):.3f} | {min(ba):.2f}-{max(ba):.2f} |")
PY
cat "$OUT"
echo "table: ${OUT#$ROOT/}"
