//! The `[upgrade]` section: how the rolling upgrade switches, reboots, waits and guards, and
//! its maintenance window.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When the upgrade reboots a host whose boot files changed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RebootPolicy {
    Auto,
    Ask,
    Never,
}

/// Where `nixos-rebuild switch` runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// `sudo nixos-rebuild switch --flake <flake>#<host>` on the host over SSH.
    Remote,
    /// `nixos-rebuild switch --flake <path>#<host> --target-host ... --use-remote-sudo` here.
    Local,
}

/// The etcd snapshot taken before the first control plane of a run (`[upgrade] pre_snapshot`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PreSnapshot {
    /// A snapshot that fails refuses the run before any node is touched.
    #[default]
    Require,
    /// A snapshot that fails is a warning (journal, live view); the run goes on.
    Try,
    /// No snapshot.
    Off,
}

impl PreSnapshot {
    pub fn as_str(self) -> &'static str {
        match self {
            PreSnapshot::Require => "require",
            PreSnapshot::Try => "try",
            PreSnapshot::Off => "off",
        }
    }
}

/// Whether a reboot boots the new generation once before it becomes the default
/// (`[upgrade] boot_once`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootOnce {
    /// A node whose boot loader cannot boot an entry once is refused (its guard says so).
    Require,
    /// Boot once where the boot loader can; elsewhere reboot straight into the new generation
    /// (the plan says so per node).
    #[default]
    Prefer,
    /// Reboot straight into the new generation everywhere.
    Off,
}

impl BootOnce {
    pub fn as_str(self) -> &'static str {
        match self {
            BootOnce::Require => "require",
            BootOnce::Prefer => "prefer",
            BootOnce::Off => "off",
        }
    }
}

/// `[upgrade]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// Flake reference the hosts can reach; defaults to `[nix] flake`.
    pub flake: Option<String>,
    /// `remote`: `nixos-rebuild switch` on the host over SSH; `local`: here, with `--target-host`.
    pub switch: SwitchMode,
    /// `auto`: reboot when kernel, initrd or modules changed; `ask`: ask first; `never`.
    pub reboot: RebootPolicy,
    /// Host ids in the order to upgrade; default agents, then servers, the etcd leader last.
    pub order: Vec<String>,
    /// Give up a drain (the node stays cordoned) after this long.
    pub drain_timeout_secs: u64,
    /// Grace period for evicted pods (default: each pod's own).
    pub eviction_grace_secs: Option<i64>,
    /// Evict pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// Give up the switch after this long.
    pub switch_timeout_secs: u64,
    /// How long the new system has to be confirmed (a new SSH connection and the node
    /// healthy) after it is activated; past this the host's own revert timer re-activates the
    /// previous system.
    pub confirm_timeout_secs: u64,
    /// How long a rebooting host may stay away.
    pub reboot_timeout_secs: u64,
    /// How long the node may take to be Ready again.
    pub ready_timeout_secs: u64,
    /// How long its etcd member may take to be healthy and caught up.
    pub etcd_timeout_secs: u64,
    /// How long Longhorn may take to rebuild replicas after the node.
    pub longhorn_timeout_secs: u64,
    /// Soak time after each node before the next one starts.
    pub settle_secs: u64,
    /// Refuse while an alert of at least this severity fires.
    pub block_on_alert_severity: String,
    /// Extra PromQL gates: the upgrade refuses while any returns a series.
    pub gates: Vec<String>,
    /// `"HH:MM-HH:MM"` local time (e.g. `"01:00-05:00"`); empty = any time.
    pub maintenance_window: Option<String>,
    /// Where run journals are kept (default `$XDG_STATE_HOME/homeinfra-tui/runs`).
    pub journal_dir: Option<PathBuf>,
    /// Switch command run on the host over SSH (`switch = "remote"`); `{flake}`, `{host}`
    /// (hostname) and `{id}` (inventory id) are replaced.
    pub switch_command: String,
    /// Switch command run here (`switch = "local"`); also `{target}` (`user@address`).
    pub local_switch_command: String,
    /// Rollback command run on the host when it does not come back healthy.
    pub rollback_command: String,
    /// Reboot command run on the host.
    pub reboot_command: String,
    /// How often the wait loops (drain, reboot, health) look again.
    pub poll_secs: u64,
    /// An etcd member counts as caught up below this raft index lag.
    pub etcd_max_lag: u64,
    /// `nixos-upgrade.timer` due within this many seconds counts as "due during the run".
    pub auto_upgrade_horizon_secs: u64,
    /// Duration of the upgrade lock's Lease (renewed at a third of it).
    pub lock_duration_secs: u64,
    /// Guards this cluster has no data for, as the operator states it: `"longhorn"` (no
    /// Longhorn: degraded-volume, last-replica), `"etcd"` (etcd not monitored: etcd-no-leader,
    /// etcd-member-down, etcd-quorum), `"alerts"` (no Mimir/Prometheus: alert-firing),
    /// `"auto-upgrade"` (no nixos-upgrade state: auto-upgrade), `"k3s-skew"` (the hosts'
    /// deployed systems cannot be diffed, so the plan's k3s version change is not checked: no
    /// skip, downgrade or agent-ahead refusal; the cluster's mixed minors are still checked).
    /// Every plan shows them as skipped. Without this, a guard that cannot see its data
    /// refuses.
    pub skip_guards: Vec<String>,
    /// Before the first control plane of a run, `k3s etcd-snapshot save --name
    /// homeinfra-<run id>` on a healthy server: `"require"` (a failed snapshot refuses the
    /// run), `"try"` (a failure is a warning), `"off"`.
    pub pre_snapshot: PreSnapshot,
    /// `prefer` (default): a reboot boots the new generation once (systemd-boot one-shot,
    /// GRUB's grub-reboot), the previous one staying the default until the node is healthy on
    /// it; hosts whose loader cannot reboot straight into it. `require`: refuse those hosts.
    /// `off`: never boot once.
    pub boot_once: BootOnce,
    /// How long the snapshot (the command, then its `ETCDSnapshotFile` ready) may take.
    pub pre_snapshot_timeout_secs: u64,
}

/// The names `[upgrade] skip_guards` takes, and the guards each one skips.
pub const SKIPPABLE_GUARDS: &[(&str, &[&str])] = &[
    ("longhorn", &["degraded-volume", "last-replica"]),
    (
        "etcd",
        &["etcd-no-leader", "etcd-member-down", "etcd-quorum"],
    ),
    ("alerts", &["alert-firing"]),
    ("auto-upgrade", &["auto-upgrade"]),
    ("k3s-skew", &["k3s-skew"]),
];

impl Default for UpgradeConfig {
    fn default() -> Self {
        Self {
            flake: None,
            switch: SwitchMode::Remote,
            reboot: RebootPolicy::Auto,
            order: Vec::new(),
            drain_timeout_secs: 600,
            eviction_grace_secs: None,
            delete_emptydir_data: true,
            switch_timeout_secs: 1800,
            confirm_timeout_secs: 120,
            reboot_timeout_secs: 600,
            ready_timeout_secs: 600,
            etcd_timeout_secs: 300,
            longhorn_timeout_secs: 1800,
            settle_secs: 30,
            block_on_alert_severity: "critical".into(),
            gates: Vec::new(),
            maintenance_window: None,
            journal_dir: None,
            switch_command: "sudo nixos-rebuild switch --flake {flake}#{host}".into(),
            local_switch_command:
                "nixos-rebuild switch --flake {flake}#{host} --target-host {target} --use-remote-sudo"
                    .into(),
            rollback_command: "sudo nixos-rebuild switch --rollback".into(),
            reboot_command: "sudo systemctl reboot".into(),
            poll_secs: 5,
            etcd_max_lag: 1000,
            auto_upgrade_horizon_secs: 3 * 3600,
            lock_duration_secs: 60,
            skip_guards: Vec::new(),
            pre_snapshot: PreSnapshot::Require,
            boot_once: BootOnce::Prefer,
            pre_snapshot_timeout_secs: 300,
        }
    }
}

/// Parse `"HH:MM-HH:MM"` into minutes since midnight.
pub fn parse_window(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('-')?;
    let hm = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    Some((hm(a)?, hm(b)?))
}
