//! Against REAL components on 127.0.0.1 (scripts/test-env.sh): etcd, Prometheus, node_exporter, OpenSSH server, Nix. A missing component skips loudly, and fails with CI=true.

#[path = "../common/mod.rs"]
mod common;

mod alertmanager_real;
mod etcd_real;
mod metrics_honesty;
mod metrics_own_prometheus;
mod metrics_prometheus;
mod nix_closure_diff;
mod ssh_client;
mod ssh_facts;
mod ssh_posture;
mod ssh_recovery;
mod ssh_source;
mod upgrade_boot_once;
mod upgrade_revert;
mod upgrade_ssh;
