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

pub mod gateway;
pub mod metrics;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;

use crate::config::{EtcdConfig, K3S_ETCD_TLS_DIR, Thresholds};
use crate::inventory::Inventory;
use crate::model::Sourced;
use crate::model::etcd::{Alarm, EtcdMember, EtcdState, url_host};
use crate::sources::{Update, UpdateTx};
use gateway::{Gateway, HealthResponse, MemberListResponse, StatusResponse, normalize};
use metrics::MemberHistory;

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

/// Read a file for TLS with a message that names it.
fn read_tls_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (k3s keeps it readable by root only: run as root or copy it and set [etcd] "
        } else {
            ""
        };
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("{hint}{what}_file)")
        };
        format!("cannot read etcd {what} file {}: {e}{hint}", path.display())
    })
}

/// An HTTP client with the etcd CA (only that CA is trusted when given) and client
/// certificate. Uses rustls with ring.
pub fn build_client(tls: &TlsFiles, timeout: Duration) -> Result<reqwest::Client, String> {
    // The process-wide provider may already be installed (by main, or a previous call).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("homeinfra-tui/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca_file {
        let pem = read_tls_file("ca", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("etcd ca file {}: {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "etcd ca file {}: no PEM certificate in it",
                ca.display()
            ));
        }
        b = b.tls_certs_only(certs);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read_tls_file("cert", cert)?;
            pem.push(b'\n');
            pem.extend(read_tls_file("key", key)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "etcd client certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            b = b.identity(id);
        }
        (None, None) => {}
        (Some(_), None) => return Err("[etcd] cert_file is set but key_file is not".into()),
        (None, Some(_)) => return Err("[etcd] key_file is set but cert_file is not".into()),
    }
    b.build()
        .map_err(|e| format!("cannot build the etcd HTTP client: {e}"))
}

/// What one endpoint answered in one poll.
struct EndpointReply {
    endpoint: String,
    status: Result<StatusResponse, String>,
    members: Option<Result<MemberListResponse, String>>,
    health: Result<HealthResponse, String>,
}

async fn ask(gw: &Gateway, endpoint: String, with_member_list: bool) -> EndpointReply {
    let list = async {
        if with_member_list {
            Some(gw.member_list(&endpoint).await)
        } else {
            None
        }
    };
    let (status, members, health) = tokio::join!(gw.status(&endpoint), list, gw.health(&endpoint));
    EndpointReply {
        endpoint,
        status,
        members,
        health,
    }
}

/// Polls etcd; keeps the previous metrics scrape of every member between polls.
pub struct Poller {
    settings: Settings,
    gateway: Option<Gateway>,
    histories: HashMap<String, MemberHistory>,
    /// The last member list read, for polls where no member serves it.
    last_list: Option<(Timestamp, MemberListResponse)>,
}

impl Poller {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            gateway: None,
            histories: HashMap::new(),
            last_list: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The gateway client, built on first use (and again after a failure: the TLS files may
    /// appear or be fixed while we run).
    fn gateway(&mut self) -> Result<Gateway, String> {
        if let Some(gw) = &self.gateway {
            return Ok(gw.clone());
        }
        let gw = Gateway::new(build_client(&self.settings.tls, self.settings.timeout)?);
        self.gateway = Some(gw.clone());
        Ok(gw)
    }

    /// One poll of every endpoint and metrics URL. `Err` only when no endpoint answered at
    /// all (or none is configured); members that do not answer are down in an `Ok` state.
    pub async fn poll(&mut self, now: Timestamp) -> Result<EtcdState, String> {
        if self.settings.endpoints.is_empty() {
            return Err(
                "no etcd endpoints: set [etcd] endpoints or give hosts the role init/server".into(),
            );
        }
        let gw = self.gateway()?;
        let asks = join_all(
            self.settings
                .endpoints
                .iter()
                .map(|e| ask(&gw, e.clone(), true)),
        );
        let scrapes = join_all(self.settings.metrics_urls.iter().map(|u| {
            let gw = gw.clone();
            let u = u.clone();
            async move {
                let r = gw.metrics_text(&u).await;
                (u, r)
            }
        }));
        let (mut replies, scrapes) = tokio::join!(asks, scrapes);

        // The member list: from a member that knows a leader if possible.
        let fresh = replies
            .iter()
            .filter(|r| r.status.as_ref().is_ok_and(|s| s.leader_id().is_some()))
            .chain(replies.iter())
            .find_map(|r| r.members.as_ref().and_then(|m| m.as_ref().ok()))
            .cloned();

        if fresh.is_none() && replies.iter().all(|r| r.status.is_err()) {
            let errors = replies.iter().map(|r| {
                let e = r.status.as_ref().err().map_or("", String::as_str);
                (r.endpoint.as_str(), e)
            });
            let mut msg = format!("no etcd endpoint answered: {}", summarize_errors(errors));
            if self.settings.tls == TlsFiles::default()
                && self
                    .settings
                    .endpoints
                    .iter()
                    .any(|e| e.starts_with("https://"))
            {
                msg.push_str(&format!(
                    "; no TLS files are configured and k3s' are not in {K3S_ETCD_TLS_DIR}: set [etcd] ca_file, cert_file and key_file"
                ));
            }
            return Err(msg);
        }

        let mut state = EtcdState::default();
        let list = match fresh {
            Some(l) => {
                self.last_list = Some((now, l.clone()));
                Some(l)
            }
            None => {
                let why = replies
                    .iter()
                    .find_map(|r| r.members.as_ref().and_then(|m| m.as_ref().err()))
                    .cloned()
                    .unwrap_or_default();
                // Newer etcd serves the member list only with quorum: the last one we read
                // still says who should be there.
                match &self.last_list {
                    Some((when, l)) => {
                        state.notes.push(format!(
                            "the member list could not be read ({why}); using the one read at {}",
                            when.strftime("%H:%M:%S")
                        ));
                        Some(l.clone())
                    }
                    None => {
                        state
                            .notes
                            .push(format!("the member list could not be read: {why}"));
                        None
                    }
                }
            }
        };
        if let Some(l) = &list {
            state.cluster_id = l.header.cluster_id;
            for m in &l.members {
                state.members.push(EtcdMember {
                    id: m.id.unwrap_or(0),
                    name: m.name.clone(),
                    client_urls: m.client_urls.iter().map(|u| normalize(u)).collect(),
                    is_learner: m.is_learner,
                    error: Some("did not answer".into()),
                    ..Default::default()
                });
            }
        }

        // Members nobody answered for whose client URLs we did not ask: ask those too.
        let asked: Vec<String> = replies.iter().map(|r| r.endpoint.clone()).collect();
        let answered: Vec<u64> = replies
            .iter()
            .filter_map(|r| r.status.as_ref().ok()?.header.member_id)
            .collect();
        let extra: Vec<String> = state
            .members
            .iter()
            .filter(|m| !answered.contains(&m.id))
            .filter(|m| !m.client_urls.iter().any(|u| asked.contains(u)))
            .filter_map(|m| m.client_urls.first().cloned())
            .collect();
        if !extra.is_empty() {
            replies.extend(join_all(extra.into_iter().map(|e| ask(&gw, e, false))).await);
        }

        for r in &replies {
            merge_reply(&mut state, r, list.is_some());
        }

        // The leader: as reported by the member with the highest term.
        state.leader = replies
            .iter()
            .filter_map(|r| r.status.as_ref().ok())
            .filter(|s| s.leader_id().is_some())
            .max_by_key(|s| s.raft_term.unwrap_or(0))
            .and_then(StatusResponse::leader_id);
        for m in &mut state.members {
            m.is_leader = m.reachable && Some(m.id) == state.leader;
        }

        self.apply_metrics(&mut state, scrapes, now);
        state.compute_index_lag();
        Ok(state)
    }

    fn apply_metrics(
        &mut self,
        state: &mut EtcdState,
        scrapes: Vec<(String, Result<String, String>)>,
        now: Timestamp,
    ) {
        let window = self.settings.leader_window.as_secs() as i64;
        for (i, (url, result)) in scrapes.into_iter().enumerate() {
            let text = match result {
                Ok(t) => t,
                Err(e) => {
                    // A dead member's metrics are gone too; only say so for live ones.
                    if self
                        .metrics_owner(state, &url, i, None)
                        .is_some_and(|m| m.reachable)
                    {
                        state.notes.push(format!("metrics {url}: {e}"));
                    }
                    continue;
                }
            };
            let scrape = metrics::parse(&text);
            let Some(idx) = self.metrics_owner_index(state, &url, i, scrape.member_id) else {
                state
                    .notes
                    .push(format!("metrics {url}: no member of the member list"));
                continue;
            };
            let figures = self
                .histories
                .entry(url.clone())
                .or_default()
                .observe(scrape, now, window);
            let m = &mut state.members[idx];
            figures.apply(m);
            m.metrics_url = Some(url);
        }
    }

    fn metrics_owner<'a>(
        &self,
        state: &'a EtcdState,
        url: &str,
        i: usize,
        id: Option<u64>,
    ) -> Option<&'a EtcdMember> {
        self.metrics_owner_index(state, url, i, id)
            .map(|idx| &state.members[idx])
    }

    /// Which member a metrics URL belongs to: by the id it reports, else the endpoint at the
    /// same position in the configuration, else the member whose client URL has its host.
    fn metrics_owner_index(
        &self,
        state: &EtcdState,
        url: &str,
        i: usize,
        id: Option<u64>,
    ) -> Option<usize> {
        if let Some(id) = id
            && let Some(idx) = state.members.iter().position(|m| m.id == id)
        {
            return Some(idx);
        }
        if self.settings.metrics_urls.len() == self.settings.endpoints.len()
            && let Some(ep) = self.settings.endpoints.get(i)
            && let Some(idx) = state.members.iter().position(|m| {
                m.endpoint.as_deref() == Some(ep.as_str()) || m.client_urls.contains(ep)
            })
        {
            return Some(idx);
        }
        let host = url_host(url)?;
        let mut on_host = state
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.client_urls.iter().any(|u| url_host(u) == Some(host)));
        match (on_host.next(), on_host.next()) {
            (Some((idx, _)), None) => Some(idx),
            _ => None,
        }
    }
}

/// `a, b: connection refused; c: timed out`, with a hint for TLS problems.
fn summarize_errors<'a>(errors: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for (endpoint, e) in errors {
        match groups.iter_mut().find(|(_, g)| *g == e) {
            Some((eps, _)) => eps.push(endpoint),
            None => groups.push((vec![endpoint], e)),
        }
    }
    let mut out: Vec<String> = groups
        .iter()
        .map(|(eps, e)| format!("{}: {e}", eps.join(", ")))
        .collect();
    let all = out.join("; ");
    if all.contains("UnknownIssuer") || all.contains("NotValidForName") {
        out.push(
            "the server certificate is not signed by the CA we trust or not for this address: check [etcd] ca_file and endpoints".into(),
        );
    } else if all.contains("BadCertificate") || all.contains("CertificateRequired") {
        out.push(
            "the server did not accept our client certificate (or we sent none): check [etcd] cert_file and key_file".into(),
        );
    }
    out.join("; ")
}

/// Fold one endpoint's answers into the state.
fn merge_reply(state: &mut EtcdState, r: &EndpointReply, list_known: bool) {
    match &r.status {
        Ok(s) => {
            if state.cluster_id.is_none() {
                state.cluster_id = s.header.cluster_id;
            }
            let id = s.header.member_id.unwrap_or(0);
            let idx = match state.members.iter().position(|m| m.id == id) {
                Some(idx) => idx,
                None => {
                    if list_known {
                        state.notes.push(format!(
                            "{} answered as member {id:x}, which is not in the member list",
                            r.endpoint
                        ));
                    }
                    state.members.push(EtcdMember {
                        id,
                        name: r.endpoint.clone(),
                        client_urls: vec![r.endpoint.clone()],
                        is_learner: s.is_learner,
                        ..Default::default()
                    });
                    state.members.len() - 1
                }
            };
            let m = &mut state.members[idx];
            if m.reachable {
                return; // Already heard from it through another endpoint.
            }
            m.endpoint = Some(r.endpoint.clone());
            m.reachable = true;
            m.version = s.version.clone();
            m.raft_term = s.raft_term;
            m.raft_index = s.raft_index;
            m.db_size_bytes = s.db_size;
            m.db_size_in_use_bytes = s.db_size_in_use;
            if s.db_size_quota.is_some() {
                m.quota_bytes = s.db_size_quota;
            }
            m.has_leader = Some(s.leader_id().is_some());
            let health = r.health.as_ref().ok();
            // Alarms are the cluster's, not this member's health: kept apart.
            let mut problems: Vec<String> = Vec::new();
            m.alarms.clear();
            for e in &s.errors {
                match Alarm::parse(e) {
                    Some(a) => m.alarms.push(a),
                    None => problems.push(e.clone()),
                }
            }
            if s.leader_id().is_none() && !problems.iter().any(|e| e.contains("no leader")) {
                problems.push("no leader".into());
            }
            if let Some(h) = health
                && !h.healthy()
                && problems.is_empty()
            {
                problems.push(if h.reason.is_empty() {
                    "/health says unhealthy".into()
                } else {
                    format!("/health says unhealthy: {}", h.reason)
                });
            }
            m.healthy = problems.is_empty();
            m.error = (!problems.is_empty()).then(|| problems.join("; "));
        }
        Err(e) => {
            if let Some(m) = state
                .members
                .iter_mut()
                .find(|m| !m.reachable && m.client_urls.contains(&r.endpoint))
            {
                // The member behind this endpoint, by its client URL.
                m.endpoint = Some(r.endpoint.clone());
                m.error = Some(e.clone());
            } else if !list_known {
                // No member list to tell who this is: a member that is down.
                state.members.push(EtcdMember {
                    name: r.endpoint.clone(),
                    client_urls: vec![r.endpoint.clone()],
                    endpoint: Some(r.endpoint.clone()),
                    error: Some(e.clone()),
                    ..Default::default()
                });
            } else if !state
                .members
                .iter()
                .any(|m| m.client_urls.contains(&r.endpoint))
            {
                state.notes.push(format!("{}: {e}", r.endpoint));
            }
        }
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

    #[test]
    fn tls_file_errors_name_the_file() {
        let tls = TlsFiles {
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..Default::default()
        };
        let e = build_client(&tls, Duration::from_secs(1)).unwrap_err();
        assert!(
            e.starts_with("cannot read etcd ca file /nonexistent/ca.crt:"),
            "{e}"
        );
        let tls = TlsFiles {
            cert_file: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(
            build_client(&tls, Duration::from_secs(1)).unwrap_err(),
            "[etcd] cert_file is set but key_file is not"
        );
    }

    #[test]
    fn errors_are_grouped_with_hints() {
        let e = summarize_errors(
            [
                ("https://a:2379", "invalid peer certificate: UnknownIssuer"),
                ("https://b:2379", "timed out"),
                ("https://c:2379", "invalid peer certificate: UnknownIssuer"),
            ]
            .into_iter(),
        );
        assert_eq!(
            e,
            "https://a:2379, https://c:2379: invalid peer certificate: UnknownIssuer; \
             https://b:2379: timed out; the server certificate is not signed by the CA we \
             trust or not for this address: check [etcd] ca_file and endpoints"
        );
        let e = summarize_errors(
            [("https://a:2379", "received fatal alert: BadCertificate")].into_iter(),
        );
        assert!(e.ends_with("check [etcd] cert_file and key_file"), "{e}");
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
