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
# HOMEINFRA_BIN=target/debug/homeinfra-tui uses another build (default: the release binary,
# built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=screenshots
SOCK=homeinfra-shots-$$
BIN=${HOMEINFRA_BIN:-target/release/homeinfra-tui}

if [ "${1:-}" = "--install" ]; then
  apt-get install -y --no-install-recommends tmux aha chromium fonts-dejavu-core
  exit 0
fi
for p in tmux aha chromium; do
  command -v "$p" >/dev/null || { echo "screenshots: $p missing (scripts/screenshots.sh --install)" >&2; exit 1; }
done
if [ ! -x "$BIN" ]; then
  [ -z "${HOMEINFRA_BIN:-}" ] || { echo "screenshots: $BIN is not an executable" >&2; exit 1; }
  cargo build --release
fi
HOME_DIR=$(mktemp -d)
trap 't kill-server 2>/dev/null || true; rm -rf "$HOME_DIR"' EXIT

# A tmux server per screen (a new server on a socket just killed may fail to start).
N=0
t() { tmux -L "$SOCK-$N" "$@"; }

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
  N=$((N + 1))
  t -f /dev/null new-session -d -s shot -x "$1" -y "$2" \
    "env HOME=$HOME_DIR XDG_STATE_HOME=$HOME_DIR/state XDG_CONFIG_HOME=$HOME_DIR/cfg TERM=tmux-256color COLORTERM=truecolor $BIN $3 demo --speed 4 $4"
  t set-option -g default-terminal tmux-256color
  t set-option -ga terminal-overrides ",*:Tc"
  wait_for "demo (simulated homelab)" 60
  wait_for "etcd 3/3" 60 # the health line has its data
  sleep 3 # let every source report once
}

# aha knows the 256 colours but not 24-bit ones, and draws the bright 16 (8-15, 90-97,
# 100-107) through a CSS filter that also lightens the background. So each SGR's colours
# become colours of the 256 above 15: `38;2;R;G;B` the nearest (the grey ramp for greys,
# else the 6×6×6 cube), a bright one its usual shade.
truecolor_to_256() {
  perl -pe 'BEGIN {
      @bright = (244, 203, 114, 227, 111, 213, 87, 255);
      sub lvl { my $v = shift; $v < 48 ? 0 : $v < 115 ? 1 : int(($v - 35) / 40) }
      sub c256 {
        my ($r, $g, $b) = @_;
        if (abs($r - $g) < 12 && abs($g - $b) < 12) {
          my $v = int(($r + $g + $b) / 3);
          return 16 if $v < 8;
          return 231 if $v > 246;
          return 232 + int(($v - 8) / 10 + 0.5);
        }
        16 + 36 * lvl($r) + 6 * lvl($g) + lvl($b)
      }
      sub sgr {
        my @p = split /;/, shift, -1;
        my @out;
        while (@p) {
          my $c = shift @p;
          if (($c eq "38" || $c eq "48") && @p && $p[0] eq "2" && @p >= 4) {
            shift @p;
            push @out, $c, 5, c256(splice(@p, 0, 3));
          } elsif (($c eq "38" || $c eq "48") && @p >= 2 && $p[0] eq "5") {
            shift @p;
            my $n = shift @p;
            push @out, $c, 5, ($n >= 8 && $n <= 15) ? $bright[$n - 8] : $n;
          } elsif ($c =~ /^\d+$/ && $c >= 90 && $c <= 97) {
            push @out, 38, 5, $bright[$c - 90];
          } elsif ($c =~ /^\d+$/ && $c >= 100 && $c <= 107) {
            push @out, 48, 5, $bright[$c - 100];
          } else {
            push @out, $c;
          }
        }
        join ";", @out
      }
    }
    s/\e\[([0-9;]*)m/"\e[" . sgr($1) . "m"/ge'
}

render() { # render NAME COLS ROWS [light]: the terminal's own colours dark, or light
  local name=$1 cols=$2 rows=$3 bg="#101418" fg="#d0d0d0"
  [ "${4:-}" != light ] || { bg="#fbfbf8"; fg="#202020"; }
  t capture-pane -e -p -t shot > "$OUT/$name.ansi"
  t capture-pane -p -t shot > "$OUT/$name.txt"
  local html="$HOME_DIR/$name.html"
  {
    echo "<!DOCTYPE html><html><head><meta charset=utf-8><style>"
    echo "body{margin:0;background:$bg}pre{margin:8px;font:14px/17px 'DejaVu Sans Mono',monospace;color:$fg}"
    # (backgrounds fill the whole line height: no stripes between the lines)
    echo "pre span{padding:1px 0}"
    echo "</style></head><body><pre>"
    truecolor_to_256 < "$OUT/$name.ansi" | aha --no-header
    echo "</pre></body></html>"
  } > "$html"
  # 14px DejaVu Sans Mono: 8.43 px a cell, 17 px a line.
  local w=$(((cols + 1) * 843 / 100 + 16)) h=$((rows * 17 + 16))
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$HOME_DIR/chromium" --hide-scrollbars \
    --window-size="$w,$h" --screenshot="$OUT/$name.png" "file://$html" >/dev/null 2>&1
  echo "screenshots: $OUT/$name.png (${cols}x${rows})"
}

screen() {
  case "$1" in
    healthy)   start 200 60 "" "";                                        render healthy 200 60 ;;
    small)     start 80 24 "" "";                                         render small-80x24 80 24 ;;
    degraded)  start 200 60 "" "--scenario slow-disk --scenario degraded-volume"
               wait_for "degraded" 30; keys 4;                            render degraded 200 60 ;;
    diff)      start 160 45 "" ""; keys 1 j d; wait_for "Reboot required" 90
               sleep 1;                                                   render diff 160 45 ;;
    upgrade)   # The run beside live health while a control plane reboots (after the agent).
               start 140 45 "" ""; keys U; wait_for "Dry run: nothing has changed" 90
               keys y; wait_for "Start the rolling upgrade" 30; keys y
               wait_for "no further failure tolerated" 240; wait_for "NotReady" 30 || true
               sleep 0.5;                                                 render upgrade 140 45 ;;
    help)      start 120 40 "" ""; keys "?"; wait_for "any key closes" 10; render help 120 40 ;;
    light)     start 160 45 "--theme light" "";                           render light 160 45 light ;;
    *) echo "screenshots: unknown screen $1" >&2; return 1 ;;
  esac
}

mkdir -p "$OUT"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(healthy small degraded diff upgrade help light)
for n in "${names[@]}"; do screen "$n"; done
