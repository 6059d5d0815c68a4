#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test (unit tests plus the
# black-box tests that start real gateway processes, mock upstreams and redis-server).
# Installs what the tests run (redis-server, openssl, haproxy, curl, python3, chromium,
# nodejs) through apt-get when it is missing; scripts/test-deploy.sh installs the compose
# tool.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Tests start their own redis-server and haproxy, and generate keys and certificates with
# openssl; the deployment smoke test (scripts/test-deploy.sh) needs curl and python3.
missing=()
have redis-server || missing+=(redis-server)
have openssl || missing+=(openssl)
have haproxy || missing+=(haproxy)
have curl || missing+=(curl)
have python3 || missing+=(python3)
# The dashboard is checked in a real headless browser driven by node (bench/dashboard-screenshot.sh).
have chromium || missing+=(chromium)
have node || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  # apt_install keeps Debian's maintainer scripts from starting system-wide redis /
  # haproxy services (a redis on 6379 may be someone else's).
  apt_install_or_die "${missing[@]}"
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build -p gateway (the binary the black-box tests run)"
cargo build -p gateway
echo "==> cargo test --workspace"
cargo test --workspace
echo "==> scripts/test-deploy.sh (compose file, cluster-up -> JWT request via HAProxy -> cluster-down)"
bash scripts/test-deploy.sh
echo "==> bench/dashboard-screenshot.sh (the dashboard in headless Chromium: token first, charts drawn, no console errors)"
cargo build -q -p cluster-tests --bin mock-upstream
bash bench/dashboard-screenshot.sh
echo "==> scripts/schemathesis.sh (the admin API of a real node against its OpenAPI document)"
bash scripts/schemathesis.sh
echo "==> scripts/fuzz.sh (cargo-fuzz: every target for FUZZ_SECONDS, default 60)"
bash scripts/fuzz.sh
