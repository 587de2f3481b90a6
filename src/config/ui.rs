//! The `[ui]` section (theme, key overrides, clock) and `[thresholds]` (what `assess` calls
//! a warning or critical).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[ui]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (built in or in `themes/`) or a path to a theme file.
    pub theme: Option<String>,
    /// Key overrides: key (e.g. `"x"`, `"ctrl-r"`, `"F5"`) → action name (e.g. `"refresh"`).
    pub keys: BTreeMap<String, String>,
    /// Clock tick.
    pub tick_ms: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: None,
            keys: BTreeMap::new(),
            tick_ms: 1000,
        }
    }
}

/// Health thresholds used by `assess`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub etcd_fsync_p99_warning_ms: f64,
    pub etcd_fsync_p99_critical_ms: f64,
    pub etcd_commit_p99_warning_ms: f64,
    pub etcd_commit_p99_critical_ms: f64,
    pub etcd_db_quota_warning_pct: f64,
    pub etcd_db_quota_critical_pct: f64,
    pub etcd_leader_changes_warning: u64,
    pub etcd_leader_changes_window_mins: u64,
    pub longhorn_min_replicas: u32,
    pub longhorn_disk_warning_pct: f64,
    /// Backup is stale when older than this many times its recurring job interval.
    pub longhorn_backup_interval_factor: f64,
    pub host_disk_warning_pct: f64,
    pub host_disk_critical_pct: f64,
    /// Data older than this many refresh intervals is reported as stale.
    pub stale_after_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            etcd_fsync_p99_warning_ms: 10.0,
            etcd_fsync_p99_critical_ms: 100.0,
            etcd_commit_p99_warning_ms: 25.0,
            etcd_commit_p99_critical_ms: 250.0,
            etcd_db_quota_warning_pct: 80.0,
            etcd_db_quota_critical_pct: 95.0,
            etcd_leader_changes_warning: 4,
            etcd_leader_changes_window_mins: 15,
            longhorn_min_replicas: 2,
            longhorn_disk_warning_pct: 85.0,
            longhorn_backup_interval_factor: 2.0,
            host_disk_warning_pct: 85.0,
            host_disk_critical_pct: 95.0,
            stale_after_secs: 120,
        }
    }
}
