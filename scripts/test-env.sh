#!/usr/bin/env bash
# The real components homeinfra-tui's tests use, on loopback only.
#   scripts/test-env.sh install        Debian packages (root; skipped when present)
#   scripts/test-env.sh start [BASE]   start etcd x3, node_exporter, Prometheus, Alertmanager (with a
#                                      second Prometheus whose rules fire into it), sshd, nix
#   scripts/test-env.sh stop  [BASE]   stop exactly what `start` started (by PID)
#   scripts/test-env.sh status [BASE]  exit 0 when they are up
# `start` writes $BASE/env.sh with HOMEINFRA_TEST_* variables for the tests.
set -euo pipefail
CMD=${1:-}
BASE=${2:-${HOMEINFRA_TEST_BASE:-/tmp/homeinfra-test-env}}

log() { printf '[test-env] %s\n' "$*" >&2; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2; local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then log "TIMEOUT waiting for $what"; return 1; fi; sleep 0.2
  done; log "ready: $what"
}

PACKAGES=(etcd-server etcd-client prometheus prometheus-node-exporter prometheus-alertmanager openssh-server nix-bin tmux sudo curl ca-certificates nftables iptables fail2ban)

do_install() {
  local missing=()
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "packages present"; return 0; fi
  if [ "$(id -u)" != 0 ]; then log "missing packages (${missing[*]}) and not root: cannot install"; return 1; fi
  export DEBIAN_FRONTEND=noninteractive
  # No init system: keep dpkg from starting daemons on default ports.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi
  log "installing ${missing[*]}"
  apt-get update -qq
  # Never install kubernetes-client: /usr/bin/kubectl belongs to the preinstalled kubectl package.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_etcd() {
  local cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
  for i in 1 2 3; do
    mkdir -p "$BASE/etcd/data$i"
    etcd --name "e$i" --data-dir "$BASE/etcd/data$i" \
      --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
      --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
      --listen-metrics-urls "http://127.0.0.1:2381$i" \
      --initial-cluster "$cluster" --initial-cluster-token homeinfra-test --initial-cluster-state new \
      --heartbeat-interval 100 --election-timeout 1000 \
      --logger zap --log-outputs "$BASE/logs/etcd-e$i.log" >"$BASE/logs/etcd-e$i.out" 2>&1 &
    echo $! > "$BASE/pids/etcd-e$i.pid"
  done
}

start_metrics() {
  prometheus-node-exporter --web.listen-address=127.0.0.1:19100 --no-collector.systemd \
    >"$BASE/logs/node-exporter.log" 2>&1 &
  echo $! > "$BASE/pids/node-exporter.pid"
  mkdir -p "$BASE/prometheus"
  cat > "$BASE/prometheus/prometheus.yml" <<'P'
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: etcd
    static_configs: [{targets: ['127.0.0.1:23811', '127.0.0.1:23812', '127.0.0.1:23813']}]
  - job_name: node
    static_configs: [{targets: ['127.0.0.1:19100']}]
  - job_name: prometheus
    metrics_path: /prometheus/metrics
    static_configs: [{targets: ['127.0.0.1:19090']}]
P
  prometheus --config.file="$BASE/prometheus/prometheus.yml" --storage.tsdb.path="$BASE/prometheus/data" \
    --web.listen-address=127.0.0.1:19090 --web.route-prefix=/prometheus \
    --web.external-url=http://127.0.0.1:19090/prometheus --web.enable-lifecycle \
    >"$BASE/logs/prometheus.log" 2>&1 &
  echo $! > "$BASE/pids/prometheus.pid"
}

# Alertmanager on 127.0.0.1:19093, fed by a second Prometheus (19091, so the shared one on
# 19090 keeps no alert rules) whose rules always fire: one alert per test "node"
# (am-node1..am-node4, on the `node`, `instance` or `host` label) at warning and critical.
start_alertmanager() {
  mkdir -p "$BASE/alertmanager" "$BASE/prometheus-alerting"
  cat > "$BASE/alertmanager/alertmanager.yml" <<'A'
route: {receiver: "null", group_wait: 1s, group_interval: 1s}
receivers: [{name: "null"}]
A
  prometheus-alertmanager --config.file="$BASE/alertmanager/alertmanager.yml" \
    --storage.path="$BASE/alertmanager/data" --web.listen-address=127.0.0.1:19093 \
    --cluster.listen-address= >"$BASE/logs/alertmanager.log" 2>&1 &
  echo $! > "$BASE/pids/alertmanager.pid"
  cat > "$BASE/prometheus-alerting/rules.yml" <<'R'
groups:
- name: homeinfra-test
  interval: 1s
  rules:
  - alert: HomeinfraTestNodeWarning
    expr: vector(1)
    labels: {severity: warning, node: am-node1}
  - alert: HomeinfraTestNodeCritical
    expr: vector(1)
    labels: {severity: critical, node: am-node2}
  - alert: HomeinfraTestInstanceCritical
    expr: vector(1)
    labels: {severity: critical, instance: "am-node3:9100"}
  - alert: HomeinfraTestHostCritical
    expr: vector(1)
    labels: {severity: critical, host: am-node4}
R
  cat > "$BASE/prometheus-alerting/prometheus.yml" <<'P'
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['127.0.0.1:19093']}]}]
P
  prometheus --config.file="$BASE/prometheus-alerting/prometheus.yml" \
    --storage.tsdb.path="$BASE/prometheus-alerting/data" --web.listen-address=127.0.0.1:19091 \
    --rules.alert.resend-delay=1s \
    >"$BASE/logs/prometheus-alerting.log" 2>&1 &
  echo $! > "$BASE/pids/prometheus-alerting.pid"
}

start_sshd() {
  mkdir -p "$BASE/ssh" && chmod 755 "$BASE/ssh"
  # Debian has a system group 'operator' (gid 37); reuse it. Never `userdel -r operator`.
  if ! id operator >/dev/null 2>&1; then
    if getent group operator >/dev/null; then useradd -m -s /bin/bash -g operator operator
    else useradd -m -s /bin/bash -U operator; fi
  fi
  usermod -p '*' operator   # unlocked, no password: key login only (UsePAM no)
  [ -f "$BASE/ssh/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C homeinfra-test-host -f "$BASE/ssh/ssh_host_ed25519_key"
  [ -f "$BASE/ssh/id_operator" ] || ssh-keygen -q -t ed25519 -N '' -C homeinfra-test-client -f "$BASE/ssh/id_operator"
  install -d -m 700 -o operator -g operator /home/operator/.ssh
  install -m 600 -o operator -g operator "$BASE/ssh/id_operator.pub" /home/operator/.ssh/authorized_keys
  echo "[127.0.0.1]:2222 $(cut -d' ' -f1,2 "$BASE/ssh/ssh_host_ed25519_key.pub")" > "$BASE/ssh/known_hosts"
  cat > "$BASE/ssh/sshd_config" <<S
Port 2222
ListenAddress 127.0.0.1
HostKey $BASE/ssh/ssh_host_ed25519_key
PidFile $BASE/ssh/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes yes
AllowUsers operator
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
S
  mkdir -p -m 0755 /run/sshd
  /usr/sbin/sshd -t -f "$BASE/ssh/sshd_config"
  /usr/sbin/sshd -D -e -f "$BASE/ssh/sshd_config" >"$BASE/logs/sshd.log" 2>&1 &
  echo $! > "$BASE/pids/sshd.pid"
}

start_nix() {
  mkdir -p "$BASE/nix"
  cat > "$BASE/nix/nix.conf" <<'C'
build-users-group =
sandbox = false
substituters =
experimental-features = nix-command
C
  export NIX_CONF_DIR="$BASE/nix"
  # nix-daemon lets non-root users (operator over SSH) read the store.
  nix-daemon >"$BASE/logs/nix-daemon.log" 2>&1 &
  echo $! > "$BASE/pids/nix-daemon.pid"
  for _ in $(seq 50); do NIX_REMOTE=daemon nix store ping >/dev/null 2>&1 && break; sleep 0.1; done
}

do_start() {
  mkdir -p "$BASE"/{pids,logs}
  if ls "$BASE"/pids/*.pid >/dev/null 2>&1; then log "stopping leftovers first"; do_stop; fi
  start_etcd
  start_metrics
  start_alertmanager
  start_sshd
  start_nix
  export ETCDCTL_API=3
  wait_for 30 "etcd cluster healthy" etcdctl --endpoints=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 --command-timeout=2s endpoint health
  wait_for 15 "node_exporter" curl -sf http://127.0.0.1:19100/metrics
  wait_for 15 "prometheus ready" curl -sf http://127.0.0.1:19090/prometheus/-/ready
  wait_for 15 "alertmanager ready" curl -sf http://127.0.0.1:19093/-/ready
  wait_for 30 "alerts firing into alertmanager" sh -c "curl -sf http://127.0.0.1:19093/api/v2/alerts | grep -q HomeinfraTestHostCritical"
  local ssh="ssh -p 2222 -i $BASE/ssh/id_operator -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$BASE/ssh/known_hosts -o ConnectTimeout=5"
  wait_for 15 "sshd key login" $ssh operator@127.0.0.1 true
  cat > "$BASE/env.sh" <<E
export HOMEINFRA_TEST_BASE=$BASE
export HOMEINFRA_TEST_ETCD_ENDPOINTS=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793
export HOMEINFRA_TEST_ETCD_METRICS=http://127.0.0.1:23811/metrics,http://127.0.0.1:23812/metrics,http://127.0.0.1:23813/metrics
export HOMEINFRA_TEST_PROM_URL=http://127.0.0.1:19090/prometheus
export HOMEINFRA_TEST_ALERTMANAGER_URL=http://127.0.0.1:19093
export HOMEINFRA_TEST_SSH_HOST=127.0.0.1 HOMEINFRA_TEST_SSH_PORT=2222 HOMEINFRA_TEST_SSH_USER=operator
export HOMEINFRA_TEST_SSH_KEY=$BASE/ssh/id_operator HOMEINFRA_TEST_SSH_KNOWN_HOSTS=$BASE/ssh/known_hosts
export HOMEINFRA_TEST_NIX_CONF_DIR=$BASE/nix
export HOMEINFRA_TEST_PIDDIR=$BASE/pids
E
  log "all services ready; source $BASE/env.sh"
}

do_stop() {
  local pids=()
  for f in "$BASE"/pids/*.pid; do
    [ -e "$f" ] || continue; local pid; pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid"); rm -f "$f"
  done
  # PID 1 is no init here: killed children stay zombies. Wait for "gone or zombie".
  local end=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while st=$(ps -o stat= -p "$pid" 2>/dev/null) && [ "${st:0:1}" != Z ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
  done
  rm -rf "$BASE/etcd" "$BASE/prometheus/data" "$BASE/prometheus-alerting/data" "$BASE/alertmanager/data"
}

do_status() { # are the services of $BASE up? (used to reuse a running environment)
  [ -f "$BASE/env.sh" ] || return 1
  # A loaded machine answers slowly: try a few times before calling a service down.
  local try
  for try in 1 2 3; do
    if curl -sf -m 10 http://127.0.0.1:23791/health >/dev/null 2>&1 &&
      curl -sf -m 10 http://127.0.0.1:19090/prometheus/-/ready >/dev/null 2>&1 &&
      curl -sf -m 10 http://127.0.0.1:19093/-/ready >/dev/null 2>&1 &&
      (exec 3<>/dev/tcp/127.0.0.1/2222) 2>/dev/null; then
      return 0
    fi
    [ "$try" = 3 ] || sleep 2
  done
  return 1
}

case "$CMD" in
  install) do_install ;;
  status) do_status ;;
  start) do_start ;;
  stop) do_stop ;;
  *) echo "usage: $0 install|start|stop|status [BASE]" >&2; exit 2 ;;
esac
