//! Compact views of Kubernetes and Longhorn objects, as the Kubernetes source keeps them.
//! Whole objects are never kept: a Pod is ~14–40 KB, a `PodRow` a few hundred bytes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What the cluster looks like right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// `gitVersion` of the API server, when known.
    pub server_version: Option<String>,
    pub nodes: Vec<NodeInfo>,
    /// Shared with the Kubernetes source's store: a new state clones no pod.
    pub pods: std::sync::Arc<Vec<PodRow>>,
    pub pdbs: Vec<PdbInfo>,
    pub longhorn: LonghornState,
    /// k3s's `ETCDSnapshotFile` records; `None` when the resource is not served (k3s before
    /// the November 2023 releases, or no embedded etcd).
    pub etcd_snapshots: Option<Vec<crate::model::recovery::EtcdSnapshot>>,
    /// cert-manager's `Certificate`s; `None` when cert-manager is not installed.
    pub certificates: Option<Vec<crate::model::recovery::ManagedCertificate>>,
}

impl ClusterState {
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Pods scheduled on a node.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodRow> + 'a {
        self.pods
            .iter()
            .filter(move |p| p.node.as_deref() == Some(node))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// `Ready` condition: `Some(true)` Ready, `Some(false)` NotReady, `None` Unknown.
    pub ready: Option<bool>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub kubelet_version: String,
    /// From `node-role.kubernetes.io/*` labels.
    pub roles: Vec<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub internal_ip: Option<String>,
    /// Conditions other than Ready that are True (MemoryPressure, DiskPressure, PIDPressure, ...).
    pub pressures: Vec<String>,
    pub created: Option<Timestamp>,
    /// The upgrade run that cordoned this node, from our annotation.
    pub cordoned_by_run: Option<String>,
    pub pod_capacity: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub phase: String,
    pub ready_containers: u16,
    pub total_containers: u16,
    pub restarts: u32,
    /// `DaemonSet`, `ReplicaSet`, `StatefulSet`, `Node` (mirror pods), ... or empty.
    pub owner_kind: String,
    pub owner_name: String,
    pub deleting: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdbInfo {
    pub namespace: String,
    pub name: String,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    /// `matchLabels` of the selector.
    pub selector: BTreeMap<String, String>,
}

/// What the API server serves of the `longhorn.io` group (API discovery, `/apis`): whether
/// Longhorn's CRDs are installed at all, decided from the server's list — never from a 404 of
/// one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LonghornApi {
    /// Not asked (yet).
    #[default]
    Unknown,
    /// Discovery failed: why.
    Error { message: String },
    /// The server serves no `longhorn.io` group: no Longhorn CRDs.
    NotServed,
    /// The versions of `longhorn.io` the server serves (`v1beta2`, ...).
    Served { versions: Vec<String> },
}

/// The version of Longhorn's API the app reads.
pub const LONGHORN_VERSION: &str = "v1beta2";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LonghornState {
    /// False when the Longhorn kinds answered 404 (what the dashboard shows as "not
    /// installed"); the upgrade guards decide from [`LonghornState::api`] instead.
    pub installed: bool,
    /// What discovery says of `longhorn.io`.
    #[serde(default)]
    pub api: LonghornApi,
    /// Where the kinds were read: `longhorn.io/<version>` ...
    #[serde(default)]
    pub version: String,
    /// ... in this namespace (`[kubernetes] longhorn_namespace`).
    #[serde(default)]
    pub namespace: String,
    /// Kinds that answered 404 there (`volumes`, `replicas`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_kinds: Vec<String>,
    pub volumes: Vec<Volume>,
    pub replicas: Vec<Replica>,
    pub nodes: Vec<LonghornNode>,
    pub backups: Vec<Backup>,
    pub backup_targets: Vec<BackupTarget>,
    pub recurring_jobs: Vec<RecurringJob>,
    /// Longhorn settings by name (e.g. `node-drain-policy`).
    pub settings: BTreeMap<String, String>,
    /// Longhorn's own source status: its kinds could not be read (hung, 500, garbage) while
    /// the rest of the API answers. The rows above are the last read; the nodes and pods are
    /// current. `None` when every Longhorn kind read well (or answered 404: not installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LonghornError>,
    /// The replica rebuilds the volumes' engines report (`engines.longhorn.io`,
    /// `status.rebuildStatus`), one row per replica being rebuilt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuilds: Vec<ReplicaRebuild>,
}

/// Why Longhorn's kinds cannot be read, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LonghornError {
    pub since: Timestamp,
    pub message: String,
}

/// One replica rebuild as a volume's Engine reports it: Longhorn's `Engine` CR keeps
/// `status.rebuildStatus`, a map from the replica's address (`tcp://10.42.1.5:10000`) to
/// `{isRebuilding, progress (0-100), state, error, fromReplicaAddress}`, and
/// `status.currentReplicaAddressMap` (replica name → address) to say which replica that is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRebuild {
    pub volume: String,
    /// The replica's name (from the engine's address map); its address when not found there.
    pub replica: String,
    pub address: String,
    /// 0-100.
    pub progress: u8,
    /// `in_progress`, `complete`, `error`, or empty.
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl LonghornState {
    /// Replicas grouped by volume name (one pass; use it when looking at every volume).
    pub fn replicas_by_volume(&self) -> std::collections::HashMap<&str, Vec<&Replica>> {
        let mut m: std::collections::HashMap<&str, Vec<&Replica>> =
            std::collections::HashMap::new();
        for r in &self.replicas {
            m.entry(r.volume.as_str()).or_default().push(r);
        }
        m
    }

    pub fn replicas_of<'a>(&'a self, volume: &'a str) -> impl Iterator<Item = &'a Replica> + 'a {
        self.replicas.iter().filter(move |r| r.volume == volume)
    }

    /// The rebuild the engines report for `replica` (by name), if one runs.
    pub fn rebuild_of(&self, replica: &str) -> Option<&ReplicaRebuild> {
        self.rebuilds.iter().find(|r| r.replica == replica)
    }

    /// The volumes with a replica rebuilding, in one pass over the replicas (asking
    /// [`Self::replicas_of`] per volume is quadratic: hundreds of volumes on every frame).
    pub fn rebuilding_volumes(&self) -> std::collections::HashSet<&str> {
        self.replicas
            .iter()
            .filter(|r| r.rebuilding)
            .map(|r| r.volume.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub size_bytes: u64,
    pub number_of_replicas: u32,
    /// `attached`, `detached`, `attaching`, ...
    pub state: String,
    /// `healthy`, `degraded`, `faulted`, `unknown`.
    pub robustness: String,
    pub encrypted: bool,
    pub last_backup: Option<String>,
    pub last_backup_at: Option<Timestamp>,
    /// Recurring job names and groups that apply (from `recurring-job*.longhorn.io` labels).
    pub recurring_jobs: Vec<String>,
    pub recurring_groups: Vec<String>,
    /// `namespace/name` of the PVC, when bound.
    pub pvc: Option<String>,
    /// Node the volume is attached to.
    pub attached_node: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub name: String,
    pub volume: String,
    pub node: String,
    /// `running`, `stopped`, `error`, ...
    pub current_state: String,
    /// `healthyAt` set, `failedAt` empty, and running.
    pub healthy: bool,
    /// Rebuilding (in `status` or the volume's rebuild status).
    pub rebuilding: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LonghornNode {
    pub name: String,
    pub ready: bool,
    pub schedulable: bool,
    pub disks: Vec<Disk>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub path: String,
    pub storage_maximum: u64,
    pub storage_available: u64,
    pub storage_scheduled: u64,
    pub schedulable: bool,
}

impl Disk {
    /// Percent of the disk in use.
    pub fn used_pct(&self) -> f64 {
        if self.storage_maximum == 0 {
            return 0.0;
        }
        let used = self.storage_maximum.saturating_sub(self.storage_available);
        used as f64 * 100.0 / self.storage_maximum as f64
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub name: String,
    pub volume: String,
    pub state: String,
    pub created: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTarget {
    pub name: String,
    pub url: String,
    pub available: bool,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurringJob {
    pub name: String,
    /// `backup`, `snapshot`, ...
    pub task: String,
    pub cron: String,
    pub groups: Vec<String>,
    pub retain: u32,
}
