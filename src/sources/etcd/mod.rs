//! etcd through its JSON gateway, plus each member's metrics endpoint (cluster-health issue).
//!
//! Every poll asks every endpoint, in parallel and each call bounded by `timeout_ms`, for its
//! status, the member list and `/health`, and scrapes every metrics URL. A member in the
//! member list that does not answer its status is down; members whose advertised client URL
//! was not among the endpoints are asked there. Disk latency p99s are computed over the bucket
//! deltas between two consecutive scrapes of the same metrics URL ([`metrics::MemberHistory`]).
//!
//! Figures from Mimir instead: clear [`Settings::metrics_urls`] so nothing is scraped, then
//! put a [`metrics::DiskMetrics`] into each member found with
//! [`EtcdState::member_at_mut`](crate::model::etcd::EtcdState::member_at_mut) (by the
//! `instance` label) using [`metrics::DiskMetrics::apply`].
//!
//! Entry points: [`spawn`] / [`spawn_with`] (the TUI's source task), [`poll_once`] and
//! [`gather_once`] (`check`), [`Poller`] (tests, upgrade guard re-checks).

//!
//! Here: the settings, the source task and `check`'s entry points; `client` (the TLS client),
//! `poller` (one poll), `merge` (answers into the state), `gateway` (the JSON API) and
//! `metrics` (the metrics endpoint) hold the rest.

mod client;
pub mod gateway;
mod merge;
pub mod metrics;
mod poller;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

pub use self::client::build_client;
use self::gateway::normalize;
pub use self::poller::Poller;
use crate::config::{EtcdConfig, K3S_ETCD_TLS_DIR, Thresholds};
use crate::inventory::Inventory;
use crate::model::Sourced;
use crate::model::etcd::EtcdState;
use crate::sources::{Update, UpdateTx};

/// The longest wait between polls while etcd keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// TLS files for the gateway; all optional (plain http, or https with the system's roots).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Everything the etcd source needs, resolved from the config and the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub metrics_urls: Vec<String>,
    pub tls: TlsFiles,
    pub timeout: Duration,
    pub refresh: Duration,
    /// The window for counting leader changes.
    pub leader_window: Duration,
}

impl Settings {
    /// Endpoints from `[etcd] endpoints`, else `https://<ip>:2379` of every init/server host;
    /// metrics from `[etcd] metrics_urls`, else `http://<ip>:2381/metrics`; TLS files from the
    /// config, else k3s' etcd client certificates when they exist.
    pub fn new(cfg: &EtcdConfig, inv: &Inventory) -> Self {
        let endpoints = if cfg.endpoints.is_empty() {
            inv.control_planes()
                .map(|h| format!("https://{}:2379", h.ip))
                .collect()
        } else {
            cfg.endpoints.iter().map(|e| normalize(e)).collect()
        };
        let metrics_urls = if cfg.metrics_urls.is_empty() {
            inv.control_planes()
                .map(|h| format!("http://{}:2381/metrics", h.ip))
                .collect()
        } else {
            cfg.metrics_urls
                .iter()
                .map(|e| e.trim().to_string())
                .collect()
        };
        let k3s = |name: &str| {
            let p = Path::new(K3S_ETCD_TLS_DIR).join(name);
            p.exists().then_some(p)
        };
        let tls = TlsFiles {
            ca_file: cfg.ca_file.clone().or_else(|| k3s("server-ca.crt")),
            cert_file: cfg.cert_file.clone().or_else(|| k3s("client.crt")),
            key_file: cfg.key_file.clone().or_else(|| k3s("client.key")),
        };
        let th = Thresholds::default();
        Self {
            endpoints,
            metrics_urls,
            tls,
            timeout: gateway::clamp_timeout(cfg.timeout_ms),
            refresh: Duration::from_secs(cfg.refresh_secs.max(1)),
            leader_window: Duration::from_secs(th.etcd_leader_changes_window_mins * 60),
        }
    }

    /// Count leader changes over `[thresholds] etcd_leader_changes_window_mins` minutes.
    pub fn with_leader_window_mins(mut self, mins: u64) -> Self {
        self.leader_window = Duration::from_secs(mins.max(1) * 60);
        self
    }
}

/// Poll etcd once (for `check`). Disk latencies are then over each member's whole life (one
/// scrape has no previous one to take deltas from), leader changes known only for members
/// that started within the window.
pub async fn poll_once(cfg: &EtcdConfig, inv: &Inventory) -> Result<EtcdState, String> {
    Poller::new(Settings::new(cfg, inv))
        .poll(Timestamp::now())
        .await
}

/// The etcd part of `check`: not configured when `[etcd] enabled = false` or there is
/// nothing to ask; else one poll bounded by `timeout`, recorded at `now`.
pub async fn gather_once(
    cfg: &EtcdConfig,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<EtcdState> {
    if !cfg.enabled {
        return Sourced::not_configured("etcd: disabled ([etcd] enabled = false)");
    }
    let settings = Settings::new(cfg, inv);
    if settings.endpoints.is_empty() {
        return Sourced::not_configured(
            "etcd: no endpoints — set [etcd] endpoints or give hosts the role init/server",
        );
    }
    let mut out = Sourced::configured();
    let result =
        match tokio::time::timeout(timeout, Poller::new(settings).poll(Timestamp::now())).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {} s",
                timeout.as_secs_f64().ceil()
            )),
        };
    out.record(result, Timestamp::now());
    out
}

/// Start the etcd source: polls every `refresh_secs`, sends `Update::Etcd`, backs off
/// (doubling up to a minute) while polls fail, and ends when the receiver is gone.
pub fn spawn(cfg: &EtcdConfig, inv: &Inventory, tx: UpdateTx) -> tokio::task::JoinHandle<()> {
    spawn_with(Settings::new(cfg, inv), tx)
}

/// [`spawn`] with explicit settings (e.g. the leader-change window from `[thresholds]`).
pub fn spawn_with(settings: Settings, tx: UpdateTx) -> tokio::task::JoinHandle<()> {
    spawn_refreshable(
        settings,
        tx,
        std::sync::Arc::new(tokio::sync::Notify::new()),
    )
}

/// [`spawn_with`], polling at once whenever `now` is notified (the dashboard's refresh key).
pub fn spawn_refreshable(
    settings: Settings,
    tx: UpdateTx,
    now: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let refresh = settings.refresh;
        let mut poller = Poller::new(settings);
        let mut failures: u32 = 0;
        loop {
            let result = poller.poll(Timestamp::now()).await;
            let delay = match &result {
                Ok(_) => {
                    failures = 0;
                    refresh
                }
                Err(e) => {
                    tracing::debug!(error = %e, "etcd poll failed");
                    failures = failures.saturating_add(1);
                    // A client that could not be built is rebuilt next time.
                    poller.gateway = None;
                    backoff(refresh, failures)
                }
            };
            if tx.send(Update::Etcd(result)).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = now.notified() => {}
            }
        }
    })
}

/// The wait after `failures` failed polls in a row: the refresh interval doubled each time,
/// at most a minute (never less than the refresh interval).
pub fn backoff(refresh: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(6);
    refresh.saturating_mul(factor).min(MAX_BACKOFF.max(refresh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory;

    const HOSTS: &str = r#"{
      "a": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
      "b": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"server","region":"r","zone":"z","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24},
      "c": {"hostname":"node4","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"192.0.2.14","gateway":"192.0.2.1","maskLength":24}
    }"#;

    #[test]
    fn defaults_from_inventory() {
        let inv = inventory::parse(Path::new("hosts.json"), HOSTS).unwrap();
        let s = Settings::new(&EtcdConfig::default(), &inv);
        assert_eq!(
            s.endpoints,
            vec!["https://192.0.2.11:2379", "https://192.0.2.12:2379"]
        );
        assert_eq!(
            s.metrics_urls,
            vec![
                "http://192.0.2.11:2381/metrics",
                "http://192.0.2.12:2381/metrics"
            ]
        );
        assert_eq!(s.timeout, Duration::from_millis(1000));
        assert_eq!(s.leader_window, Duration::from_secs(15 * 60));
        let cfg = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379/".into()],
            ca_file: Some("/x/ca.crt".into()),
            ..Default::default()
        };
        let s = Settings::new(&cfg, &inv).with_leader_window_mins(5);
        assert_eq!(s.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(s.tls.ca_file.as_deref(), Some(Path::new("/x/ca.crt")));
        assert_eq!(s.leader_window, Duration::from_secs(300));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let r = Duration::from_secs(5);
        let got: Vec<u64> = (1..=6).map(|f| backoff(r, f).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(Duration::from_secs(90), 3).as_secs(), 90);
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_naming_the_endpoints() {
        // Port 1 on loopback: nothing listens there.
        let cfg = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:1".into()],
            timeout_ms: 300,
            ..Default::default()
        };
        let e = poll_once(&cfg, &Inventory::default()).await.unwrap_err();
        assert!(
            e.starts_with("no etcd endpoint answered: http://127.0.0.1:1: "),
            "{e}"
        );
        let cfg = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            timeout_ms: 300,
            ..Default::default()
        };
        let e = poll_once(&cfg, &Inventory::default()).await.unwrap_err();
        assert!(
            e.starts_with("no etcd endpoint answered: http://127.0.0.1:1, http://127.0.0.1:2: "),
            "{e}"
        );
        let e = poll_once(&EtcdConfig::default(), &Inventory::default())
            .await
            .unwrap_err();
        assert!(e.starts_with("no etcd endpoints"), "{e}");

        let cfg = EtcdConfig {
            endpoints: vec!["https://127.0.0.1:1".into()],
            timeout_ms: 300,
            ..Default::default()
        };
        let e = poll_once(&cfg, &Inventory::default()).await.unwrap_err();
        assert!(
            e.ends_with("set [etcd] ca_file, cert_file and key_file"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn gather_once_for_check() {
        let t = Duration::from_secs(2);
        let off = EtcdConfig {
            enabled: false,
            ..Default::default()
        };
        let s = gather_once(&off, &Inventory::default(), t).await;
        assert!(!s.status.configured && s.status.note.is_some());
        let s = gather_once(&EtcdConfig::default(), &Inventory::default(), t).await;
        assert!(!s.status.configured);
        let dead = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:1".into()],
            ..Default::default()
        };
        let s = gather_once(&dead, &Inventory::default(), t).await;
        assert!(s.status.configured && s.data.is_none());
        let e = s.status.error.unwrap().message;
        assert!(e.starts_with("no etcd endpoint answered"), "{e}");
    }
}
