#!/usr/bin/env bash
# The whole test suite: installs (as root, Debian packages) and starts the real components the
# tests use on loopback — etcd, Prometheus, node_exporter, OpenSSH server, Nix — runs every
# test, and stops what it started. Extra arguments go to `cargo test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${HOMEINFRA_TEST_BASE:-/tmp/homeinfra-test-env}
scripts/test-env.sh install
if scripts/test-env.sh status "$BASE"; then
  echo "[test.sh] reusing the test environment already running in $BASE" >&2
else
  trap 'scripts/test-env.sh stop "$BASE"' EXIT
  scripts/test-env.sh start "$BASE"
fi
# shellcheck disable=SC1091
source "$BASE/env.sh"
cargo test --all-targets --no-fail-fast "$@"
