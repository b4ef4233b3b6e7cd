#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. Installs what the tests need on a
# fresh Debian machine (nats-server for the NATS tests), then checks formatting and
# lints, builds the daemon binary the end-to-end tests spawn, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked --bin cognate
cargo test --workspace --locked -- --test-threads "${COGNATE_TEST_THREADS:-2}"
