//! The outside world of the engine, as traits: the cluster (nodes, pods, eviction, the lock's
//! Lease), the hosts (commands, boot state, reboot), the health inputs of the guards, and the
//! clock. Real implementations are in `live`, in-memory fakes in `fake`.
//!
//! Reading and writing are separate traits: [`ClusterRead`]/[`HostRead`] (with the health and
//! the clock: a [`ReadWorld`]) for plans, dry runs and every wait, [`ClusterWrite`]/
//! [`HostWrite`] (a [`Writers`], built from the write capability [`Writes`]) for cordon,
//! eviction, the Lease, switch, rollback and reboot. A read-only world has no write method.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::base::Writes;
use crate::inventory::Host;
use crate::model::cluster::{ClusterState, ReplicaRebuild};
use crate::model::etcd::EtcdState;
use crate::model::recovery::EtcdSnapshot;
pub use crate::probes::bootloader::Bootloader;
pub use crate::probes::revert::RevertTimer;

/// What the engine needs to know about a node right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `Some(true)` Ready, `Some(false)` NotReady, `None` unknown.
    pub ready: Option<bool>,
    pub unschedulable: bool,
    /// The run id of our `homeinfra-tui/cordoned-by` annotation.
    pub cordoned_by: Option<String>,
    pub kubelet_version: String,
    /// `status.nodeInfo.bootID` as the kubelet last reported it (empty: not reported). A new
    /// value means the kubelet of a new boot has written the status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_id: String,
    /// When the `Ready` condition last changed (`lastTransitionTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_changed: Option<Timestamp>,
    /// When the kubelet last reported the `Ready` condition (`lastHeartbeatTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_heartbeat: Option<Timestamp>,
}

/// A pod as the drain sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainPod {
    pub namespace: String,
    pub name: String,
    /// Owned by a DaemonSet (or another per-node controller such as Longhorn's
    /// InstanceManager): never evicted (it would come straight back).
    pub daemonset: bool,
    /// A static (mirror) pod: the kubelet owns it.
    pub mirror: bool,
    pub uses_empty_dir: bool,
    /// Already terminating.
    pub deleting: bool,
    /// Its labels (to find the PodDisruptionBudget that blocks it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl DrainPod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The answer to one eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Accepted: the pod will terminate.
    Accepted,
    /// The pod is already gone.
    Gone,
    /// 429: a PodDisruptionBudget does not allow it now.
    Blocked {
        /// `namespace/name` of the PDB, when it could be found.
        pdb: Option<String>,
        message: String,
    },
}

/// The lock's Lease, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `user@machine pid run-id`.
    pub holder: String,
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    pub duration_secs: i32,
    /// Optimistic concurrency: the write fails with `Conflict` when it changed meanwhile.
    pub resource_version: Option<String>,
}

/// The result of a Lease write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseWrite {
    Done,
    /// Someone else wrote it first (409).
    Conflict,
}

/// Kubernetes as the engine reads it (no method here changes anything).
pub trait ClusterRead: Send + Sync {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>>;
    fn pods_on<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<DrainPod>>>;
    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>>;
    /// k3s's `ETCDSnapshotFile` (`k3s.cattle.io/v1`) of a snapshot: the one whose
    /// `spec.snapshotName` is `name`, or (k3s names the file `<name>-<node>-<unix seconds>`)
    /// starts with `<name>-`; the newest when several do. `None`: no such record (yet).
    fn etcd_snapshot_file<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<EtcdSnapshot>>>;
    /// Longhorn's settings (`settings.longhorn.io`: name → its top-level `value`).
    fn longhorn_settings(&self) -> BoxFuture<'_, Result<BTreeMap<String, String>>>;
    /// The replica rebuilds running now, as the volumes' Engines report them
    /// (`engines.longhorn.io` `status.rebuildStatus`).
    fn longhorn_rebuilds(&self) -> BoxFuture<'_, Result<Vec<ReplicaRebuild>>>;
}

/// Whether an `ETCDSnapshotFile`'s file name belongs to snapshot `name` (the file itself, or
/// `<name>-<node>-<unix seconds>` as k3s names it).
pub fn snapshot_matches(snapshot_name: &str, name: &str) -> bool {
    snapshot_name == name
        || snapshot_name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The newest of the records of snapshot `name` (see [`ClusterRead::etcd_snapshot_file`]).
pub fn newest_snapshot<'a>(
    list: impl IntoIterator<Item = &'a EtcdSnapshot>,
    name: &str,
) -> Option<EtcdSnapshot> {
    list.into_iter()
        .filter(|s| !s.is_s3() && snapshot_matches(&s.snapshot_name, name))
        .max_by_key(|s| s.created)
        .cloned()
}

/// Kubernetes as the engine changes it. The real implementation (`live::KubeWriter`) is
/// built only from a [`Writes`].
pub trait ClusterWrite: Send + Sync {
    /// Mark unschedulable and annotate with the run id.
    fn cordon<'a>(&'a self, node: &'a str, run_id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Mark schedulable and drop our annotation.
    fn uncordon<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<()>>;
    fn evict<'a>(
        &'a self,
        pod: &'a DrainPod,
        grace_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Eviction>>;
    fn create_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>>;
    /// Replace the Lease if its resource version is still `rec.resource_version`.
    fn update_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>>;
    fn delete_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>>;
}

/// How a command is run for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// On the host over SSH (a shell command line).
    Remote(String),
    /// Here, as a child process (`sh -c`), e.g. `nixos-rebuild --target-host`.
    Local(String),
}

impl CommandSpec {
    pub fn text(&self) -> &str {
        match self {
            CommandSpec::Remote(c) | CommandSpec::Local(c) => c,
        }
    }
}

/// A host's booted vs current system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootState {
    pub booted_system: Option<String>,
    pub current_system: Option<String>,
    /// Kernel, initrd or kernel modules differ; `None` when unknown.
    pub reboot_needed: Option<bool>,
    pub reasons: Vec<String>,
    /// The current system's kernel (`readlink -f /run/current-system/kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_kernel: Option<String>,
}

/// `nixos-upgrade.service` and its timer on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoUpgrade {
    /// The service runs right now (`None`: unknown).
    pub running: Option<bool>,
    /// When the timer fires next (`None`: not scheduled, or no timer).
    pub next_run: Option<Timestamp>,
    /// The timer exists at all.
    pub timer_present: bool,
}

/// The hosts as the engine reads them: the read-only probes of `crate::probes`.
pub trait HostRead: Send + Sync {
    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>>;
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): it changes on every boot.
    fn boot_id<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String>>;
    /// Can we log in right now (a short probe)?
    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool>;
    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>>;
    /// The k3s version the host now runs (`v1.30.4+k3s1`), to expect on the node.
    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>>;
    /// Log in anew, any kept connection to the host closed first: proves that sshd and the
    /// network work right now (the confirm of a new system).
    fn fresh_login<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool>;
    /// The state of the host's revert timer `unit` (`homeinfra-revert-<run>`).
    fn revert_timer<'a>(
        &'a self,
        host: &'a Host,
        unit: &'a str,
    ) -> BoxFuture<'a, Result<RevertTimer>>;
    /// The host's boot loader, its entries, default and one-shot entry, and the system
    /// profile's newest generation.
    fn bootloader<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Bootloader>>;
}

/// The hosts as the engine changes them: the switch, the rollback, the reboot. The real
/// implementation (`live::SshWriter`) is built only from a [`Writes`].
pub trait HostWrite: Send + Sync {
    /// Run a command; every output line goes to `lines`; returns the exit status.
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>>;
    /// Ask for a reboot (the connection may drop while it runs: that is not an error).
    fn reboot<'a>(&'a self, host: &'a Host, command: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// One Alertmanager silence a run made for a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSilence {
    pub id: String,
    /// Its matcher, as Alertmanager shows it (`instance=~"node3(:[0-9]+)?"`).
    pub matcher: String,
}

/// Alertmanager silences, as a run makes them: short-lived, extended while the node is in
/// progress, expired after. The real one (`live::AmSilencer`) is built only from a [`Writes`].
pub trait SilenceWrite: Send + Sync {
    /// The matchers `host`'s silences have (one silence each).
    fn matchers(&self, host: &Host) -> Vec<String>;
    /// How long a silence lasts from its creation or last extension.
    fn duration(&self) -> Duration;
    /// Create `host`'s silences, ending [`Self::duration`] from now.
    fn create<'a>(
        &'a self,
        host: &'a Host,
        comment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeSilence>, String>>;
    /// Move a silence's end to [`Self::duration`] from now; its id afterwards (a new one when
    /// Alertmanager had to replace it).
    fn extend<'a>(&'a self, id: &'a str, comment: &'a str)
    -> BoxFuture<'a, Result<String, String>>;
    /// End a silence now.
    fn expire<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub name: String,
    pub severity: String,
    /// What it is about (instance, node, ...), for the message.
    pub subject: String,
}

/// An extra PromQL gate's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    pub query: String,
    /// Number of series returned, or why the query failed.
    pub series: Result<usize, String>,
}

/// Everything the guards and the health waits read, gathered at once.
#[derive(Debug, Clone)]
pub struct HealthInputs {
    pub cluster: Result<ClusterState, String>,
    /// `None` when etcd is not monitored (`[etcd] enabled = false`, or nothing to ask).
    pub etcd: Option<Result<EtcdState, String>>,
    /// `None` when no metrics backend is configured (`[mimir] url`).
    pub alerts: Option<Result<Vec<Alert>, String>>,
    pub gates: Vec<GateResult>,
    /// When each input was read (the world's clock): data older than its source's refresh
    /// plus a margin counts as not seen.
    pub read_at: ReadTimes,
}

/// When each of the [`HealthInputs`] was read (`None`: not read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadTimes {
    pub cluster: Option<Timestamp>,
    pub etcd: Option<Timestamp>,
    pub metrics: Option<Timestamp>,
}

/// Gathers [`HealthInputs`] (the same sources the dashboard and `check` read).
pub trait HealthProvider: Send + Sync {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs>;
}

/// Time, so tests and the benchmark run without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Everything the engine reads: enough for a plan, a dry run, a preflight — and nothing that
/// could change the cluster or a host. `--read-only` only ever builds this.
#[derive(Clone)]
pub struct ReadWorld {
    pub cluster: Arc<dyn ClusterRead>,
    pub hosts: Arc<dyn HostRead>,
    pub health: Arc<dyn HealthProvider>,
    pub clock: Arc<dyn Clock>,
}

/// What changes the cluster and the hosts, with the capability it was built from.
#[derive(Clone)]
pub struct Writers {
    pub cluster: Arc<dyn ClusterWrite>,
    pub hosts: Arc<dyn HostWrite>,
    /// Alertmanager silences (`None`: no `[alertmanager] url`, or silences off).
    pub silences: Option<Arc<dyn SilenceWrite>>,
    writes: Writes,
}

impl Writers {
    /// The writers of a run; only a holder of [`Writes`] can put them together.
    pub fn new(writes: &Writes, cluster: Arc<dyn ClusterWrite>, hosts: Arc<dyn HostWrite>) -> Self {
        Self {
            cluster,
            hosts,
            silences: None,
            writes: writes.clone(),
        }
    }

    /// With silences for each node a run works on.
    pub fn with_silences(mut self, s: Option<Arc<dyn SilenceWrite>>) -> Self {
        self.silences = s;
        self
    }

    /// The capability these writers were built from (for the journal).
    pub fn writes(&self) -> &Writes {
        &self.writes
    }
}

/// Everything a run talks to: the reads, and the writers.
#[derive(Clone)]
pub struct World {
    pub read: ReadWorld,
    pub write: Writers,
}

/// Cordon a node through any [`ClusterWrite`] (the engine's own step).
pub async fn cordon_with(cluster: &dyn ClusterWrite, node: &str, run_id: &str) -> Result<()> {
    cluster.cordon(node, run_id).await
}

/// Uncordon a node through any [`ClusterWrite`] (drops our annotation too).
pub async fn uncordon_with(cluster: &dyn ClusterWrite, node: &str) -> Result<()> {
    cluster.uncordon(node).await
}
