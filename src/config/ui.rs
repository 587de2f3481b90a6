//! The `[ui]` section (theme, key overrides, clock) and `[thresholds]` (what `assess` calls
//! a warning or critical).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[ui]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (built in or in `themes/`) or a path to a theme file.
    pub theme: Option<String>,
    /// Key overrides: key (e.g. `"x"`, `"ctrl-r"`, `"F5"`) → action name (e.g. `"refresh"`)
    /// in every layer, or a `[ui.keys.<layer>]` table of them for one layer.
    pub keys: BTreeMap<String, KeyOverride>,
    /// Clock tick.
    pub tick_ms: u64,
    /// The header's clock with seconds. Off (the default), it shows hours and minutes, and an
    /// idle dashboard draws a frame only when something it shows changes (about once a
    /// minute); on, a frame every second.
    pub clock_seconds: bool,
}

/// One entry of `[ui.keys]`: `key = "action"` (every layer that has the action), or a
/// `[ui.keys.<layer>]` table of `key = "action"` for that layer alone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum KeyOverride {
    Action(String),
    Layer(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for KeyOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyOverride;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an action name (e.g. \"quit\") or a table of key = \"action\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyOverride, E> {
                Ok(KeyOverride::Action(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyOverride, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.insert(k, v);
                }
                Ok(KeyOverride::Layer(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: None,
            keys: BTreeMap::new(),
            tick_ms: 1000,
            clock_seconds: false,
        }
    }
}

/// Health thresholds used by `assess`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// WAL fsync p99 above this is a warning (etcd advises under 10 ms).
    pub etcd_fsync_p99_warning_ms: f64,
    /// WAL fsync p99 above this is critical.
    pub etcd_fsync_p99_critical_ms: f64,
    /// Backend commit p99 above this is a warning.
    pub etcd_commit_p99_warning_ms: f64,
    /// Backend commit p99 above this is critical.
    pub etcd_commit_p99_critical_ms: f64,
    /// DB size above this share of the quota is a warning.
    pub etcd_db_quota_warning_pct: f64,
    /// DB size above this share of the quota is critical.
    pub etcd_db_quota_critical_pct: f64,
    /// This many leader changes within the window is a warning.
    pub etcd_leader_changes_warning: u64,
    /// The window for counting leader changes.
    pub etcd_leader_changes_window_mins: u64,
    /// Volumes configured with fewer replicas are a warning.
    pub longhorn_min_replicas: u32,
    /// A Longhorn disk fuller than this is a warning.
    pub longhorn_disk_warning_pct: f64,
    /// Backup is stale when older than this many times its recurring job interval.
    pub longhorn_backup_interval_factor: f64,
    /// A host's root filesystem fuller than this is a warning.
    pub host_disk_warning_pct: f64,
    /// A host's root filesystem fuller than this is critical.
    pub host_disk_critical_pct: f64,
    /// Data older than this many refresh intervals is reported as stale.
    pub stale_after_secs: u64,
    /// A certificate expiring within this many days is a warning (k3s renews its own at
    /// restart within 120 days of expiry since the May 2025 releases, 90 before).
    pub cert_warning_days: u64,
    /// A certificate expiring within this many days is critical.
    pub cert_critical_days: u64,
    /// A host clock further than this from this machine's is a warning.
    pub clock_offset_warning_ms: f64,
    /// k3s's etcd snapshot schedule (`etcd-snapshot-schedule-cron`, default every 12 h): the
    /// newest snapshot is stale past twice its interval.
    pub etcd_snapshot_cron: String,
    /// Snapshots are uploaded to S3 (`etcd-s3`): a snapshot without an S3 copy is a warning.
    pub etcd_snapshot_s3: bool,
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
            cert_warning_days: 90,
            cert_critical_days: 14,
            clock_offset_warning_ms: 1000.0,
            etcd_snapshot_cron: "0 */12 * * *".into(),
            etcd_snapshot_s3: false,
        }
    }
}
