//! Data sources: async tasks that own their connections, back off on failure and send
//! `Update` messages to the one inbox. Nothing here draws.

pub mod alertmanager;
pub mod etcd;
pub mod http;
pub mod kubernetes;
pub mod loki;
pub mod mimir;
pub mod refresh;
pub mod ssh;
pub mod tls;

use std::sync::Arc;

use crate::model::cluster::ClusterState;
use crate::model::etcd::EtcdState;
use crate::model::host::HostFacts;
use crate::model::metrics::{LogsState, MetricsState};

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
    /// A Mimir refresh (per-host metrics, etcd latency, alerts).
    Metrics(Result<Arc<MetricsState>, String>),
    /// A Loki refresh: recent matching lines of every host.
    Logs(Result<Arc<LogsState>, String>),
}

/// Where sources send their updates.
pub type UpdateTx = tokio::sync::mpsc::Sender<Update>;

/// The snapshot before any source reported: which sources are configured, and why not.
pub fn initial_snapshot(ctx: &crate::base::Env) -> crate::model::Snapshot {
    use crate::model::{Snapshot, Sourced};
    let cfg = &ctx.config;
    let offline = ctx.offline;
    fn source<T>(
        offline: bool,
        name: &str,
        enabled: bool,
        configured: bool,
        how: &str,
    ) -> Sourced<T> {
        if offline {
            Sourced::not_configured(format!("{name}: offline (--offline) — no network"))
        } else if !enabled {
            Sourced::not_configured(format!("{name}: disabled in the config"))
        } else if !configured {
            Sourced::not_configured(format!("{name}: not configured — set {how}"))
        } else {
            Sourced::configured()
        }
    }
    Snapshot {
        cluster: source(
            offline,
            "Kubernetes",
            cfg.kubernetes.enabled,
            kubernetes::config_available(&cfg.kubernetes),
            "[kubernetes] kubeconfig or KUBECONFIG",
        ),
        etcd: source(offline, "etcd", cfg.etcd.enabled, true, "[etcd] endpoints"),
        mimir: source(
            offline,
            "Mimir",
            true,
            cfg.mimir.url.is_some(),
            "[mimir] url",
        ),
        loki: source(offline, "Loki", true, cfg.loki.url.is_some(), "[loki] url"),
        hosts: Default::default(),
    }
}

/// Running source tasks; dropping this stops them.
#[derive(Default)]
pub struct Sources {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Polling sources poll at once when notified.
    refresh: std::sync::Arc<tokio::sync::Notify>,
    mimir: Option<mimir::MimirHandle>,
    loki: Option<loki::LokiHandle>,
}

impl Sources {
    /// Ask every polling source for fresh data now (the refresh key).
    pub fn refresh(&self) {
        self.refresh.notify_waiters();
        if let Some(m) = &self.mimir {
            m.refresh_now();
        }
        if let Some(l) = &self.loki {
            l.refresh_now();
        }
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(m) = &self.mimir {
            m.task.abort();
        }
        if let Some(l) = &self.loki {
            l.task.abort();
        }
    }
}

/// Start every configured source (none with `--offline`).
pub fn spawn_all(ctx: &crate::base::Env, tx: UpdateTx) -> Sources {
    let mut sources = Sources::default();
    if ctx.offline {
        return sources;
    }
    let cfg = &ctx.config;
    let snap = initial_snapshot(ctx);
    if snap.cluster.status.configured {
        sources
            .tasks
            .push(kubernetes::spawn(cfg.kubernetes.clone(), tx.clone()));
    }
    if snap.etcd.status.configured {
        let settings = etcd::Settings::new(&cfg.etcd, &ctx.inventory)
            .with_leader_window_mins(cfg.thresholds.etcd_leader_changes_window_mins);
        let refresh = sources.refresh.clone();
        sources
            .tasks
            .push(etcd::spawn_refreshable(settings, tx.clone(), refresh));
    }
    if cfg.ssh.enabled {
        sources.tasks.push(ssh::spawn_with(
            &cfg.ssh,
            Some(&cfg.recovery),
            &ctx.inventory,
            tx.clone(),
        ));
    }
    let inv = Arc::new(ctx.inventory.clone());
    if snap.mimir.status.configured {
        sources.mimir = Some(mimir::spawn_with(
            cfg.mimir.clone(),
            Some(cfg.alertmanager.clone()),
            inv.clone(),
            tx.clone(),
        ));
    }
    if snap.loki.status.configured {
        sources.loki = Some(loki::spawn(cfg.loki.clone(), inv, tx));
    }
    sources
}

/// Poll every configured source once, each bounded by `timeout`, for `check`.
/// With `--offline` no source is contacted.
pub async fn gather_once(
    ctx: &crate::base::Env,
    timeout: std::time::Duration,
) -> crate::model::Snapshot {
    let mut snap = initial_snapshot(ctx);
    if ctx.offline {
        return snap;
    }
    let now = jiff::Timestamp::now();
    let cfg = &ctx.config;
    let no_answer = |what: &str| format!("{what}: no answer within {} s", timeout.as_secs());
    let kube = async {
        if !snap.cluster.status.configured {
            return None;
        }
        let r = tokio::time::timeout(timeout, kubernetes::poll_once(&cfg.kubernetes)).await;
        Some(match r {
            Ok(r) => r.map(Arc::new),
            Err(_) => Err(no_answer("Kubernetes API")),
        })
    };
    let etcd = async {
        if !snap.etcd.status.configured {
            return None;
        }
        Some(etcd::gather_once(&cfg.etcd, &ctx.inventory, timeout).await)
    };
    let hosts = ssh::gather_once_with(&cfg.ssh, Some(&cfg.recovery), &ctx.inventory, timeout);
    let metrics = async {
        if !snap.mimir.status.configured {
            return None;
        }
        Some(
            // `check` judges current values only: no sparkline history asked.
            mimir::gather_current_with(
                &cfg.mimir,
                Some(&cfg.alertmanager),
                &ctx.inventory,
                timeout,
            )
            .await,
        )
    };
    let logs = async {
        if !snap.loki.status.configured {
            return None;
        }
        Some(loki::gather_once(&cfg.loki, &ctx.inventory, timeout).await)
    };
    let (kube, etcd, hosts, metrics, logs) = tokio::join!(kube, etcd, hosts, metrics, logs);
    if let Some(m) = metrics {
        snap.mimir = m;
    }
    if let Some(l) = logs {
        snap.loki = l;
    }
    if let Some(r) = kube {
        snap.cluster.record(r, now);
    }
    if let Some(e) = etcd {
        snap.etcd = e;
    }
    snap.hosts = hosts;
    snap.merge_metrics();
    snap
}
