#!/usr/bin/env bash
# RSS of the dashboard while every simulator face flaps (down and up every 2 s), issue 18:
# the real binary in tmux against the simulator for SECS seconds (default 600), then the RSS
# before and after (the issue asks within 10 %). The CI suite runs the same test for 45 s with
# a loose bound.
#
#   scripts/fault-rss.sh          # 10 minutes
#   SECS=120 scripts/fault-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HOMEINFRA_FLAP_SECS="${SECS:-600}"
cargo test --test tui the_dashboard_stays_up_and_bounded_while_every_face_flaps -- --nocapture 2>&1 \
  | grep -E '^RSS|panicked|test result'
