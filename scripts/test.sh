#!/usr/bin/env bash
# The whole test suite: installs (as root, Debian packages) and starts the real components the
# tests use on loopback — etcd, Prometheus, node_exporter, OpenSSH server, Nix — runs every
# test, and stops what it started. Extra arguments go to `cargo test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${HOMEINFRA_TEST_BASE:-/tmp/homeinfra-test-env}
scripts/test-env.sh install
# Several runs may share one environment: each holds a shared lock while it tests; starting and
# stopping take it exclusively, so nobody stops the components under another run's tests, and
# the last run to leave stops what was started for it.
mkdir -p "$BASE"
exec 9>"$BASE.lock"
flock -x 9
if scripts/test-env.sh status "$BASE"; then
  echo "[test.sh] reusing the test environment already running in $BASE" >&2
else
  scripts/test-env.sh start "$BASE"
  touch "$BASE/.started-by-test-sh"
fi
flock -s 9
leave() {
  if [ -f "$BASE/.started-by-test-sh" ] && flock -n -x 9; then
    rm -f "$BASE/.started-by-test-sh"
    scripts/test-env.sh stop "$BASE"
  fi
}
trap leave EXIT
# shellcheck disable=SC1091
source "$BASE/env.sh"
cargo test --all-targets --no-fail-fast "$@"
