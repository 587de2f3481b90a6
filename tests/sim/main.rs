//! Everything against the simulated homelab (src/sim): its faces through the app's own clients and stock kubectl, scenarios, the upgrade against it.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod health_sim;
mod metrics_sim_face;
mod recovery_sim;
mod sim_etcd;
mod sim_kubectl;
mod sim_scenarios;
mod sim_ssh;
mod sim_watch;
mod upgrade_boot_once;
mod upgrade_pacing;
mod upgrade_rollback;
mod upgrade_safety;
mod upgrade_sim;
mod watch_faults;
