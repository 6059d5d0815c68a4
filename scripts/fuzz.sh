#!/usr/bin/env bash
# Fuzzing stage (README "Security"): builds the cargo-fuzz crate in fuzz/ (every target in
# one build) and runs each target for FUZZ_SECONDS (default 60) from its committed seed
# corpus (fuzz/corpus/<target>/; what a run adds goes to the git-ignored
# fuzz/corpus-run/<target>/). Fails when a target crashes: the input is saved under
# fuzz/artifacts/<target>/ and replayed with
#   cargo +nightly fuzz run --fuzz-dir fuzz -s "$FUZZ_SANITIZER" <target> <artifact>
# After fixing the bug, copy the input into fuzz/corpus/<target>/.
#
# Targets: h1_head (upstream response heads), chunked (chunked bodies), config
# (Config::from_toml + validate), jwt (verification with an HMAC and an RSA key),
# admin_body (admin service/consumer/key/instance/revocation bodies).
#
# Installs cargo-fuzz (crates.io) when missing. Uses the nightly toolchain when rustup
# has one, else the stable one with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags).
# FUZZ_TARGETS picks targets (space-separated); FUZZ_SANITIZER: address (default) or none.
#
# Build flags: release with debug assertions and overflow checks (cargo-fuzz's default,
# spelled out), AddressSanitizer. Measured on the 2-core box (2026-12-03), shared with
# three other engineers' builds (load average ~7):
#   cold build of fuzz/ (all 5 targets, the whole dependency tree instrumented):
#     29 min wall, 15.3 min user CPU -> about 9-10 min wall on an otherwise idle 2-core box
#   warm (nothing changed): 3 s; after a gateway change: a few minutes (gateway + targets)
#   runs: 5 targets x FUZZ_SECONDS (60) = 5 min, plus ~1 s each to load the seed corpus
# So the stage adds ~15 min to a cold CI run on an idle box. `-s none` would save only
# ASan's share of codegen (the instrumentation for coverage stays), while most of the
# build is the dependency tree itself (actix, awc, rustls, redis, jsonwebtoken); ASan
# stays on: it guards the unsafe code the parsers reach (httparse's uninit header slots).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
read -r -a targets <<<"${FUZZ_TARGETS:-h1_head chunked config jwt admin_body}"

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  cargo=(cargo +nightly)
else
  echo "==> no nightly toolchain: using $(rustc --version) with RUSTC_BOOTSTRAP=1"
  cargo=(cargo)
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

flags=(--fuzz-dir fuzz -s "$sanitizer" --debug-assertions)
start=$(date +%s)
echo "==> cargo fuzz build (${flags[*]})"
"${cargo[@]}" fuzz build "${flags[@]}"
echo "    built in $(($(date +%s) - start)) s"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
  echo "==> fuzz $t for ${seconds}s"
  if ! "${cargo[@]}" fuzz run "${flags[@]}" "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"fuzz/artifacts/$t/run.log" 2>&1; then
    tail -40 "fuzz/artifacts/$t/run.log" >&2
    echo "!!! fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
    failed+=("$t")
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "fuzz/artifacts/$t/run.log" | sed 's/^/    /' || true
  fi
done
echo "==> fuzz stage: $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "!!! crashed: ${failed[*]}" >&2
  exit 1
fi
