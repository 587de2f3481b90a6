//! The outside world of the engine, as traits: the cluster (nodes, pods, eviction, the lock's
//! Lease), the hosts (commands, boot state, reboot), the health inputs of the guards, and the
//! clock. Real implementations are in `live`, in-memory fakes in `fake`.

use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::inventory::Host;
use crate::model::cluster::ClusterState;
use crate::model::etcd::EtcdState;

/// What the engine needs to know about a node right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `Some(true)` Ready, `Some(false)` NotReady, `None` unknown.
    pub ready: Option<bool>,
    pub unschedulable: bool,
    /// The run id of our `homeinfra-tui/cordoned-by` annotation.
    pub cordoned_by: Option<String>,
    pub kubelet_version: String,
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

/// Kubernetes, as the engine uses it.
pub trait ClusterOps: Send + Sync {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>>;
    /// Mark unschedulable and annotate with the run id.
    fn cordon<'a>(&'a self, node: &'a str, run_id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Mark schedulable and drop our annotation.
    fn uncordon<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<()>>;
    fn pods_on<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<DrainPod>>>;
    fn evict<'a>(
        &'a self,
        pod: &'a DrainPod,
        grace_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Eviction>>;
    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>>;
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

/// The hosts, as the engine uses them.
pub trait HostOps: Send + Sync {
    /// Run a command; every output line goes to `lines`; returns the exit status.
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>>;
    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>>;
    /// Ask for a reboot (the connection may drop while it runs: that is not an error).
    fn reboot<'a>(&'a self, host: &'a Host, command: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Can we log in right now (a short probe)?
    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool>;
    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>>;
    /// The k3s version the host now runs (`v1.30.4+k3s1`), to expect on the node.
    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>>;
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
    /// `None` when etcd is not configured (no control planes).
    pub etcd: Option<Result<EtcdState, String>>,
    /// `None` when no metrics backend is configured.
    pub alerts: Option<Result<Vec<Alert>, String>>,
    pub gates: Vec<GateResult>,
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

/// Everything the engine talks to.
#[derive(Clone)]
pub struct World {
    pub cluster: Arc<dyn ClusterOps>,
    pub hosts: Arc<dyn HostOps>,
    pub health: Arc<dyn HealthProvider>,
    pub clock: Arc<dyn Clock>,
}

/// Cordon a node through any [`ClusterOps`] (the engine's own step).
pub async fn cordon_with(cluster: &dyn ClusterOps, node: &str, run_id: &str) -> Result<()> {
    cluster.cordon(node, run_id).await
}

/// Uncordon a node through any [`ClusterOps`] (drops our annotation too).
pub async fn uncordon_with(cluster: &dyn ClusterOps, node: &str) -> Result<()> {
    cluster.uncordon(node).await
}
