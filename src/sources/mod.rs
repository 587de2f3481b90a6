//! Data sources: async tasks that own their connections, back off on failure and send
//! `Update` messages to the one inbox. Nothing here draws.

pub mod etcd;
pub mod ssh;

use std::sync::Arc;

use crate::model::cluster::ClusterState;
use crate::model::etcd::EtcdState;
use crate::model::host::HostFacts;

/// A message from a source to the owner of the state.
// Host facts are a few hundred bytes, sent once per host and refresh: not worth a box.
#[allow(clippy::large_enum_variant)]
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
}

/// Where sources send their updates.
pub type UpdateTx = tokio::sync::mpsc::Sender<Update>;

/// Poll every configured source once, each bounded by `timeout`, for `check`.
/// With `--offline` no source is contacted.
pub async fn gather_once(
    ctx: &crate::commands::Context,
    timeout: std::time::Duration,
) -> crate::model::Snapshot {
    let mut snap = crate::model::Snapshot::default();
    if ctx.global.offline {
        return snap;
    }
    snap.hosts = ssh::gather_once(&ctx.config.ssh, &ctx.inventory, timeout).await;
    snap
}
