#!/usr/bin/env bash
# Measure the simulator at scale: start `homeinfra-tui sim --nodes N`, then report its RSS
# and how long a full `list pods` takes (JSON and kubectl's Table), over loopback.
#
#   scripts/sim-scale.sh [--nodes 500] [--runs 10] [--bin target/release/homeinfra-tui]
set -euo pipefail

NODES=500
RUNS=10
BIN=target/release/homeinfra-tui
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release first, or pass --bin)" >&2; exit 2; }

DIR=$(mktemp -d)
OUT="$DIR/stdout"
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

START=$(date +%s.%N)
"$BIN" sim --dir "$DIR" --nodes "$NODES" >"$OUT" 2>"$DIR/stderr" &
PID=$!
for _ in $(seq 1 600); do
  grep -q '^ready$' "$OUT" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/stderr" >&2; exit 1; }
  sleep 0.1
done
READY=$(date +%s.%N)
API=$(awk '/server:/ {print $2}' "$DIR/kubeconfig")
TOKEN=$(cat "$DIR/token")

rss() { awk -v k="$1:" '$1 == k {print int($2 / 1024)}' "/proc/$PID/status"; }

time_list() { # $1 = Accept header
  local t
  t=$(curl -s -o "$DIR/body" -w '%{time_total}' --cacert "$DIR/ca.crt" \
      -H "Authorization: Bearer $TOKEN" -H "Accept: $1" "$API/api/v1/pods")
  echo "$t"
}

stats() { sort -n | awk '{a[NR]=$1} END {printf "min %.0f ms, median %.0f ms, max %.0f ms", a[1]*1000, a[int((NR+1)/2)]*1000, a[NR]*1000}'; }

echo "nodes: $NODES  (startup to ready: $(echo "$READY - $START" | bc) s)"
echo "RSS after start: $(rss VmRSS) MiB"
JSON=$(for _ in $(seq 1 "$RUNS"); do time_list "application/json"; done | stats)
PODS=$(python3 -c "import json,sys; print(len(json.load(open('$DIR/body'))['items']))")
SIZE=$(du -k "$DIR/body" | cut -f1)
echo "list pods (JSON, $PODS pods, $((SIZE / 1024)) MiB): $JSON"
TABLE=$(for _ in $(seq 1 "$RUNS"); do time_list "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"; done | stats)
echo "list pods (Table, as kubectl get pods -A): $TABLE"
if command -v kubectl >/dev/null; then
  KHOME="$DIR/home"; mkdir -p "$KHOME"
  HOME="$KHOME" KUBECONFIG="$DIR/kubeconfig" kubectl get nodes >/dev/null # warm the discovery cache
  KUBECTL=$(for _ in $(seq 1 "$RUNS"); do
    s=$(date +%s.%N)
    HOME="$KHOME" KUBECONFIG="$DIR/kubeconfig" kubectl get pods -A --no-headers | wc -l >/dev/null
    echo "$(date +%s.%N) - $s" | bc
  done | stats)
  echo "kubectl get pods -A (pages of 500, whole command): $KUBECTL"
fi
echo "RSS after the lists: $(rss VmRSS) MiB (peak $(rss VmHWM) MiB)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
