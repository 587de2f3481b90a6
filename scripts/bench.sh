#!/usr/bin/env bash
# The end-to-end benchmark: the release binary against `sim --nodes N` (4, 200, 500; frozen
# and moving) in its own process, the dashboard at 200x60 under a PTY that counts its bytes,
# and `check --json`. Prints a markdown table and saves JSON (target/bench/results.json).
#
#   scripts/bench.sh            every case (about 10 minutes)
#   scripts/bench.sh --quick    200 nodes, frozen only (for iterating)
#   scripts/bench.sh --save     also copy the JSON and table to benches/results/ (committed)
#   scripts/bench.sh --sim-scale   also the simulator's own list latency and RSS at 500 nodes
#   scripts/bench.sh --ssh-fast --per-source --runs 3 ...   see scripts/bench.py --help
#
# Builds the release binary first unless --binary is given. The criterion benches (frame,
# assess, facts parser, Mimir decoding) are separate: cargo bench --bench main.
set -euo pipefail
cd "$(dirname "$0")/.."

SAVE=0
SIM_SCALE=0
ARGS=()
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --save) SAVE=1; shift ;;
    --sim-scale) SIM_SCALE=1; shift ;;
    --binary) BIN=$2; ARGS+=(--binary "$2"); shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release --quiet
fi
mkdir -p target/bench
python3 scripts/bench.py --out target/bench/results.json "${ARGS[@]}" | tee target/bench/results.md
if [ "$SIM_SCALE" = 1 ]; then
  scripts/sim-scale.sh --nodes 500 --bin "${BIN:-target/release/homeinfra-tui}"
fi
if [ "$SAVE" = 1 ]; then
  mkdir -p benches/results
  cp target/bench/results.json benches/results/latest.json
  python3 scripts/bench.py --table benches/results/latest.json > benches/results/latest.md
  echo "saved benches/results/latest.json and latest.md"
fi
