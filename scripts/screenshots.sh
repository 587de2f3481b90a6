#!/usr/bin/env bash
# Renders the demo's key screens to PNG with their real colours, for the README:
#   scripts/screenshots.sh [NAME...]      (default: every screen below)
# Each screen runs the release binary's `demo` in tmux at a fixed size, presses its keys,
# captures the pane with its colours (`tmux capture-pane -e`), converts the ANSI text to HTML
# with `aha` and renders that with headless Chromium. Writes screenshots/NAME.png, NAME.ansi
# (the capture, colours kept) and NAME.txt (plain). Loopback only: the demo's simulated
# homelab listens on 127.0.0.x.
#
# Needs (Debian): tmux aha chromium fonts-dejavu-core — `scripts/screenshots.sh --install`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=screenshots
SOCK=homeinfra-shots-$$
BIN=target/release/homeinfra-tui

if [ "${1:-}" = "--install" ]; then
  apt-get install -y --no-install-recommends tmux aha chromium fonts-dejavu-core
  exit 0
fi
for p in tmux aha chromium; do
  command -v "$p" >/dev/null || { echo "screenshots: $p missing (scripts/screenshots.sh --install)" >&2; exit 1; }
done
[ -x "$BIN" ] || cargo build --release
HOME_DIR=$(mktemp -d)
trap 'tmux -L "$SOCK" kill-server 2>/dev/null || true; rm -rf "$HOME_DIR"' EXIT

t() { tmux -L "$SOCK" "$@"; }

# wait_for TEXT [SECONDS]: until the pane shows TEXT.
wait_for() {
  local end=$((SECONDS + ${2:-30}))
  until t capture-pane -p -t shot | grep -qF -- "$1"; do
    if [ $SECONDS -ge $end ]; then
      echo "screenshots: timed out waiting for \"$1\"; the pane shows:" >&2
      t capture-pane -p -t shot >&2
      return 1
    fi
    sleep 0.3
  done
}

keys() { for k in "$@"; do t send-keys -t shot "$k"; sleep 0.4; done; }

# shot NAME COLS ROWS "DEMO ARGS" KEYS... — start, settle, press keys, capture, render.
start() { # start COLS ROWS ARGS
  t kill-server 2>/dev/null || true
  t -f /dev/null new-session -d -s shot -x "$1" -y "$2" \
    "env HOME=$HOME_DIR XDG_STATE_HOME=$HOME_DIR/state XDG_CONFIG_HOME=$HOME_DIR/cfg TERM=tmux-256color COLORTERM=truecolor $BIN $3 demo --speed 4 $4"
  t set-option -g default-terminal tmux-256color
  t set-option -ga terminal-overrides ",*:Tc"
  wait_for "Findings" 60
  sleep 3 # let every source report once
}

render() { # render NAME COLS ROWS
  local name=$1 cols=$2 rows=$3
  t capture-pane -e -p -t shot > "$OUT/$name.ansi"
  t capture-pane -p -t shot > "$OUT/$name.txt"
  local html="$HOME_DIR/$name.html"
  {
    echo "<!DOCTYPE html><html><head><meta charset=utf-8><style>"
    echo "body{margin:0;background:#101418}pre{margin:8px;font:14px/17px 'DejaVu Sans Mono',monospace;color:#d0d0d0}"
    echo "</style></head><body><pre>"
    aha --no-header < "$OUT/$name.ansi"
    echo "</pre></body></html>"
  } > "$html"
  # 14px DejaVu Sans Mono: 8.43 px a cell, 17 px a line.
  local w=$((cols * 843 / 100 + 16)) h=$((rows * 17 + 16))
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$HOME_DIR/chromium" --hide-scrollbars \
    --window-size="$w,$h" --screenshot="$OUT/$name.png" "file://$html" >/dev/null 2>&1
  echo "screenshots: $OUT/$name.png (${cols}x${rows})"
}

screen() {
  case "$1" in
    healthy)          start 200 60 "" "";                                           render healthy 200 60 ;;
    small)            start 80 24 "" "";                                            render small-80x24 80 24 ;;
    degraded)         start 200 60 "" "--scenario slow-disk --scenario degraded-volume"
                      keys 4;                                                       render degraded 200 60 ;;
    diff)             start 160 45 "" ""; keys 1 j d; wait_for "Reboot" 30 || true; sleep 2
                                                                                    render diff 160 45 ;;
    upgrade)          start 200 60 "" ""; keys U; wait_for "y start" 60; keys y y
                      wait_for "drain" 90 || true; sleep 4;                         render upgrade 200 60 ;;
    help)             start 120 40 "" ""; keys "?";                                 render help 120 40 ;;
    light)            start 160 45 "--theme light" "";                              render light 160 45 ;;
    *) echo "screenshots: unknown screen $1" >&2; return 1 ;;
  esac
}

mkdir -p "$OUT"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(healthy small degraded diff upgrade help light)
for n in "${names[@]}"; do screen "$n"; done
