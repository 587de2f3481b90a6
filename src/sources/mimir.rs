//! Mimir (or any Prometheus-compatible API): per-host CPU, memory, root filesystem and network
//! history, etcd latency per member, and firing alerts.
//!
//! All PromQL lives in [`DEFAULT_QUERIES`]; `[mimir] queries` overrides any of them by name.
//! One refresh runs every query once, concurrently; the next refresh starts only after the
//! previous one finished, so a query is never in flight twice. Credentials go into the HTTP
//! client's default headers (marked sensitive) and never into messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use prometheus_http_query::response::Data;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Update, UpdateTx};
use crate::config::{HttpAuth, MimirConfig};
use crate::inventory::Inventory;
use crate::model::Sourced;
use crate::model::metrics::{
    Alert, EtcdMemberMetrics, HostMetrics, MetricSeries, MetricsState, Point,
};

/// How a query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `query_range` over the sparkline window; the last step is the current value.
    HostRange,
    /// An instant query per etcd member.
    EtcdInstant,
    /// An instant query whose series are alerts.
    Alerts,
}

/// A named default query.
#[derive(Debug, Clone, Copy)]
pub struct QueryDef {
    pub name: &'static str,
    pub kind: QueryKind,
    pub promql: &'static str,
}

/// Every PromQL query the app runs, by name. Override with `[mimir] queries.<name>`.
/// Rates keep a value for their whole window after a target dies; `and on (instance) up == 1`
/// turns a dead exporter into "no data" at once.
pub const DEFAULT_QUERIES: &[QueryDef] = &[
    QueryDef {
        name: "cpu",
        kind: QueryKind::HostRange,
        promql: r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "memory",
        kind: QueryKind::HostRange,
        promql: "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    },
    QueryDef {
        name: "root_fs",
        kind: QueryKind::HostRange,
        promql: r#"100 * (1 - node_filesystem_avail_bytes{mountpoint="/",fstype!="rootfs"} / node_filesystem_size_bytes{mountpoint="/",fstype!="rootfs"})"#,
    },
    QueryDef {
        name: "net_rx",
        kind: QueryKind::HostRange,
        promql: r#"sum by (instance) (rate(node_network_receive_bytes_total{device!~"lo|veth.*|cni.*|flannel.*|cali.*|docker.*|br-.*|virbr.*|ifb.*|tun.*|tap.*|lxc.*|kube-.*"}[2m])) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "net_tx",
        kind: QueryKind::HostRange,
        promql: r#"sum by (instance) (rate(node_network_transmit_bytes_total{device!~"lo|veth.*|cni.*|flannel.*|cali.*|docker.*|br-.*|virbr.*|ifb.*|tun.*|tap.*|lxc.*|kube-.*"}[2m])) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "etcd_wal_fsync_p99",
        kind: QueryKind::EtcdInstant,
        promql: "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))",
    },
    QueryDef {
        name: "etcd_backend_commit_p99",
        kind: QueryKind::EtcdInstant,
        promql: "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket[5m])))",
    },
    QueryDef {
        name: "etcd_has_leader",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_server_has_leader)",
    },
    QueryDef {
        name: "etcd_db_size",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_mvcc_db_total_size_in_bytes)",
    },
    QueryDef {
        name: "etcd_quota",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_server_quota_backend_bytes)",
    },
    QueryDef {
        name: "etcd_leader_changes",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (increase(etcd_server_leader_changes_seen_total[15m]))",
    },
    QueryDef {
        name: "alerts",
        kind: QueryKind::Alerts,
        promql: r#"ALERTS{alertstate="firing"}"#,
    },
];

/// The sparkline window and step.
pub const RANGE_SECS: i64 = 30 * 60;
pub const STEP_SECS: i64 = 30;

/// The queries in effect: defaults with `[mimir] queries` applied. Unknown names are an error
/// listing the known ones.
pub fn effective_queries(cfg: &MimirConfig) -> Result<Vec<(QueryDef, String)>> {
    for name in cfg.queries.keys() {
        if !DEFAULT_QUERIES.iter().any(|q| q.name == name) {
            let known: Vec<&str> = DEFAULT_QUERIES.iter().map(|q| q.name).collect();
            return Err(eyre!(
                "[mimir] queries.{name}: unknown query name (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(DEFAULT_QUERIES
        .iter()
        .map(|q| {
            let promql = cfg
                .queries
                .get(q.name)
                .cloned()
                .unwrap_or_else(|| q.promql.to_string());
            (*q, promql)
        })
        .collect())
}

/// Read a secret from a file (trailing newline trimmed); the error names the file, never the
/// content.
fn read_secret_file(path: &std::path::Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read {what} file {}", path.display()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// An HTTP client for Mimir or Loki: tenant and credentials as default headers, CA, timeout.
/// `section` names the config section in messages (`mimir`, `loki`).
pub fn http_client(
    section: &str,
    tenant: Option<&str>,
    auth: &HttpAuth,
    timeout: Duration,
) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HeaderMap::new();
    if let Some(t) = tenant.filter(|t| !t.is_empty()) {
        let v = HeaderValue::from_str(t)
            .map_err(|_| eyre!("[{section}] tenant: not a valid HTTP header value"))?;
        headers.insert(HeaderName::from_static("x-scope-orgid"), v);
    }
    let mut authz: Option<String> = None;
    if let Some(user) = &auth.basic_auth_user {
        let password = match (
            &auth.basic_auth_password_file,
            &auth.basic_auth_password_env,
        ) {
            (Some(f), _) => read_secret_file(f, &format!("[{section}] basic_auth_password"))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                eyre!("[{section}] basic_auth_password_env: environment variable {var} is not set")
            })?,
            (None, None) => {
                return Err(eyre!(
                    "[{section}] basic_auth_user is set but neither basic_auth_password_file nor basic_auth_password_env"
                ));
            }
        };
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        authz = Some(format!("Basic {token}"));
    } else if let Some(f) = &auth.bearer_token_file {
        let token = read_secret_file(f, &format!("[{section}] bearer_token"))?;
        authz = Some(format!("Bearer {token}"));
    }
    if let Some(a) = authz {
        let mut v = HeaderValue::from_str(&a).map_err(|_| {
            eyre!("[{section}] credentials contain characters not allowed in HTTP headers")
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .no_proxy();
    if let Some(ca) = &auth.ca_file {
        let pem = std::fs::read(ca)
            .wrap_err_with(|| format!("cannot read [{section}] ca_file {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            eyre!(
                "[{section}] ca_file {}: not a PEM certificate bundle: {e}",
                ca.display()
            )
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| eyre!("cannot build the HTTP client for [{section}]: {e}"))
}

/// `scheme://host:port` of a URL, for messages (no user info, no path).
pub(crate) fn url_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "the configured URL".into(),
    }
}

/// The innermost cause of an error chain (e.g. "Connection refused (os error 111)"), which never
/// carries the URL.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Why a query failed, sorted into what the pane says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Unauthorized,
    /// Prometheus answered with an error (bad PromQL, timeout, …): its message.
    Prometheus {
        bad_data: bool,
        message: String,
    },
    /// Could not talk to it at all.
    Unreachable(String),
    /// It answered, but not in the Prometheus API shape.
    Other(String),
}

/// The message shown for an unauthorized answer (Mimir or Loki).
pub const UNAUTHORIZED: &str = "Mimir: unauthorized (check [mimir] credentials)";

impl QueryError {
    fn from_lib(e: prometheus_http_query::Error, origin: &str) -> Self {
        use prometheus_http_query::Error as E;
        match e {
            E::Prometheus(p) => QueryError::Prometheus {
                bad_data: p.is_bad_data(),
                message: p.message().to_string(),
            },
            E::Client(c) => {
                let inner = c.inner();
                if let Some(status) = inner.and_then(|r| r.status()) {
                    if status.as_u16() == 401 || status.as_u16() == 403 {
                        return QueryError::Unauthorized;
                    }
                    return QueryError::Other(format!("{origin} answered HTTP {status}"));
                }
                match inner {
                    Some(r) if r.is_timeout() => {
                        QueryError::Unreachable(format!("{origin}: request timed out"))
                    }
                    Some(r) if r.is_connect() || r.is_request() => {
                        QueryError::Unreachable(format!("{origin}: {}", root_cause(r)))
                    }
                    Some(r) => QueryError::Other(format!("{origin}: {c}: {}", root_cause(r))),
                    None => QueryError::Other(format!("{origin}: {c}")),
                }
            }
            other => QueryError::Other(format!("{origin}: {other}")),
        }
    }

    pub fn message(&self) -> String {
        match self {
            QueryError::Unauthorized => UNAUTHORIZED.to_string(),
            QueryError::Prometheus { message, .. } => message.clone(),
            QueryError::Unreachable(m) | QueryError::Other(m) => m.clone(),
        }
    }
}

/// A Mimir client with the effective queries.
#[derive(Clone)]
pub struct Mimir {
    client: prometheus_http_query::Client,
    origin: String,
    queries: Arc<Vec<(QueryDef, String)>>,
    host_label: String,
}

impl std::fmt::Debug for Mimir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mimir")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Mimir {
    /// Build from `[mimir]`; fails when no URL is set, a secret file is unreadable or a query
    /// override has an unknown name.
    pub fn new(cfg: &MimirConfig) -> Result<Self> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| eyre!("[mimir] url is not set"))?;
        // prometheus-http-query breaks on a trailing slash (`/prometheus//api/v1/query`).
        let url = url.trim_end_matches('/');
        let http = http_client(
            "mimir",
            cfg.tenant.as_deref(),
            &cfg.auth,
            Duration::from_secs(cfg.timeout_secs.max(1)),
        )?;
        let client = prometheus_http_query::Client::from(http, url)
            .map_err(|e| eyre!("[mimir] url: {e}"))?;
        Ok(Self {
            client,
            origin: url_origin(url),
            queries: Arc::new(effective_queries(cfg)?),
            host_label: cfg.host_label.clone(),
        })
    }

    pub fn queries(&self) -> &[(QueryDef, String)] {
        &self.queries
    }

    /// Ask the server to evaluate every query once. An invalid query is an error naming the
    /// query and Prometheus's message. When the server cannot be asked, queries are checked with
    /// the local parser instead (and the server's state is left to the pane).
    pub async fn validate(&self) -> Result<()> {
        let checks = self.queries.iter().map(|(def, promql)| async move {
            let r = self.client.query(promql).get().await;
            (def.name, promql, r)
        });
        for (name, promql, r) in futures::future::join_all(checks).await {
            match r.map_err(|e| QueryError::from_lib(e, &self.origin)) {
                Ok(_) => {}
                Err(QueryError::Prometheus {
                    bad_data: true,
                    message,
                }) => {
                    return Err(eyre!(
                        "[mimir] query \"{name}\" is invalid: {message} (query: {promql})"
                    ));
                }
                Err(_) => {
                    if let Err(message) = promql_parser::parser::parse(promql) {
                        return Err(eyre!(
                            "[mimir] query \"{name}\" is invalid: {message} (query: {promql})"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    async fn run_one(&self, def: QueryDef, promql: &str, now: i64) -> Result<Data, QueryError> {
        let r = match def.kind {
            QueryKind::HostRange => {
                self.client
                    .query_range(promql, now - RANGE_SECS, now, STEP_SECS as f64)
                    .get()
                    .await
            }
            QueryKind::EtcdInstant | QueryKind::Alerts => {
                self.client.query(promql).at(now).get().await
            }
        };
        r.map(|res| res.into_inner().0)
            .map_err(|e| QueryError::from_lib(e, &self.origin))
    }

    /// One refresh at `now` (unix seconds): every query once, concurrently.
    pub async fn refresh(&self, inv: &Inventory, now: i64) -> Result<MetricsState, String> {
        let runs = self
            .queries
            .iter()
            .map(|(def, promql)| async move { (*def, self.run_one(*def, promql, now).await) });
        let results = futures::future::join_all(runs).await;
        let index = HostIndex::new(inv);
        let mut state = MetricsState {
            at: now,
            hosts: inv
                .hosts
                .iter()
                .map(|h| (h.id.clone(), HostMetrics::default()))
                .collect(),
            ..Default::default()
        };
        let mut unmapped = std::collections::BTreeSet::new();
        let mut first_error: Option<QueryError> = None;
        let mut ok = 0usize;
        for (def, r) in results {
            match r {
                Ok(data) => {
                    ok += 1;
                    apply(
                        &mut state,
                        def,
                        data,
                        &index,
                        &self.host_label,
                        now,
                        &mut unmapped,
                    );
                }
                Err(e) => {
                    if matches!(e, QueryError::Unauthorized) {
                        return Err(UNAUTHORIZED.to_string());
                    }
                    state.query_errors.insert(def.name.to_string(), e.message());
                    first_error.get_or_insert(e);
                }
            }
        }
        if ok == 0
            && let Some(e) = first_error
        {
            return Err(e.message());
        }
        state.unmapped = unmapped.into_iter().collect();
        Ok(state)
    }
}

/// Finds the inventory host of a series by ip, hostname (full or short) or id.
pub struct HostIndex {
    by_key: HashMap<String, String>,
}

impl HostIndex {
    pub fn new(inv: &Inventory) -> Self {
        let mut by_key = HashMap::new();
        for h in &inv.hosts {
            by_key.insert(h.id.clone(), h.id.clone());
            by_key.insert(h.hostname.to_ascii_lowercase(), h.id.clone());
            by_key.insert(h.ip.to_string(), h.id.clone());
        }
        Self { by_key }
    }

    /// The host id for one label value (`10.0.0.11:9100`, `node1`, `node1.lan`, `[::1]:9100`).
    pub fn lookup(&self, value: &str) -> Option<&str> {
        let v = strip_port(value).to_ascii_lowercase();
        if let Some(id) = self.by_key.get(&v) {
            return Some(id);
        }
        if v.parse::<std::net::IpAddr>().is_err()
            && let Some((short, _)) = v.split_once('.')
        {
            return self.by_key.get(short).map(String::as_str);
        }
        None
    }

    /// The host of a series: the configured label first, then `nodename`.
    pub fn host_of(&self, labels: &HashMap<String, String>, host_label: &str) -> Option<&str> {
        [host_label, "nodename"]
            .iter()
            .filter_map(|l| labels.get(*l))
            .find_map(|v| self.lookup(v))
    }
}

/// `10.0.0.1:9100` → `10.0.0.1`, `[fe80::1]:9100` → `fe80::1`, `node1:9100` → `node1`;
/// a bare IPv6 address stays as it is.
pub fn strip_port(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if v.matches(':').count() == 1
        && let Some((host, port)) = v.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return host;
    }
    v
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn apply(
    state: &mut MetricsState,
    def: QueryDef,
    data: Data,
    index: &HostIndex,
    host_label: &str,
    now: i64,
    unmapped: &mut std::collections::BTreeSet<String>,
) {
    let label_of = |m: &HashMap<String, String>| {
        m.get(host_label)
            .or_else(|| m.get("nodename"))
            .cloned()
            .unwrap_or_default()
    };
    match (def.kind, data) {
        (QueryKind::HostRange, Data::Matrix(series)) => {
            // Several series on one host: rates add up, percentages take the maximum.
            let additive = def.name.starts_with("net_");
            let mut per_host: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
            for s in series {
                let Some(id) = index.host_of(s.metric(), host_label) else {
                    unmapped.insert(label_of(s.metric()));
                    continue;
                };
                let pts = per_host.entry(id.to_string()).or_default();
                for smp in s.samples() {
                    let Some(v) = finite(smp.value()) else {
                        continue;
                    };
                    let t = smp.timestamp().round() as i64;
                    pts.entry(t)
                        .and_modify(|old| *old = if additive { *old + v } else { old.max(v) })
                        .or_insert(v);
                }
            }
            for (id, pts) in per_host {
                let points: Vec<Point> = pts.into_iter().collect();
                let current = points
                    .last()
                    .filter(|(t, _)| (now - t).abs() <= 1)
                    .map(|(_, v)| *v);
                let series = MetricSeries { current, points };
                if let Some(h) = state.hosts.get_mut(&id) {
                    match def.name {
                        "cpu" => h.cpu_pct = series,
                        "memory" => h.memory_pct = series,
                        "root_fs" => h.root_fs_pct = series,
                        "net_rx" => h.net_rx_bps = series,
                        "net_tx" => h.net_tx_bps = series,
                        _ => {}
                    }
                }
            }
        }
        (QueryKind::EtcdInstant, Data::Vector(vs)) => {
            for v in vs {
                let instance = label_of(v.metric());
                let host = index.host_of(v.metric(), host_label).map(str::to_string);
                let m = state
                    .etcd
                    .entry(instance.clone())
                    .or_insert_with(|| EtcdMemberMetrics {
                        instance,
                        host,
                        ..Default::default()
                    });
                let val = finite(v.sample().value());
                match def.name {
                    "etcd_wal_fsync_p99" => m.wal_fsync_p99_ms = val.map(|s| s * 1000.0),
                    "etcd_backend_commit_p99" => m.backend_commit_p99_ms = val.map(|s| s * 1000.0),
                    "etcd_has_leader" => m.has_leader = val.map(|x| x >= 1.0),
                    "etcd_db_size" => m.db_size_bytes = val,
                    "etcd_quota" => m.quota_bytes = val,
                    "etcd_leader_changes" => m.leader_changes = val,
                    _ => {}
                }
            }
        }
        (QueryKind::Alerts, Data::Vector(vs)) => {
            for v in vs {
                let labels: BTreeMap<String, String> = v
                    .metric()
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "alertname" | "alertstate"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                state.alerts.push(Alert {
                    name: v.metric().get("alertname").cloned().unwrap_or_default(),
                    severity: v
                        .metric()
                        .get("severity")
                        .map(|s| s.to_ascii_lowercase())
                        .unwrap_or_default(),
                    host: index.host_of(v.metric(), host_label).map(str::to_string),
                    labels,
                });
            }
            state
                .alerts
                .sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        }
        (_, _) => {
            state.query_errors.insert(
                def.name.to_string(),
                "unexpected result type (expected a vector or a range of a vector)".into(),
            );
        }
    }
}

pub use crate::model::assess::alert_findings;

/// For startup: build the client and have the server check every query. An invalid override
/// is an error naming the query and Prometheus's message; an unreachable server is not (the
/// pane reports it), but then the queries are still checked by the local parser.
pub async fn check_config(cfg: &MimirConfig) -> Result<()> {
    Mimir::new(cfg)?.validate().await
}

/// The running Mimir source: wake it for an immediate refresh, or abort it.
#[derive(Debug)]
pub struct MimirHandle {
    pub task: JoinHandle<()>,
    wake: Arc<Notify>,
}

impl MimirHandle {
    /// Refresh as soon as the current round (if any) is done; repeated calls coalesce.
    pub fn refresh_now(&self) {
        self.wake.notify_one();
    }
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Run the Mimir source: one refresh every `refresh_secs` (backing off up to 4× on failure),
/// each sending `Update::Metrics`. A config problem is sent once as an error and ends the task.
pub fn spawn(cfg: MimirConfig, inv: Arc<Inventory>, tx: UpdateTx) -> MimirHandle {
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    let task = tokio::spawn(async move {
        let mimir = match Mimir::new(&cfg) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx.send(Update::Metrics(Err(format!("{e}")))).await;
                return;
            }
        };
        // An invalid query override is a configuration error: said once, then the task ends.
        if let Err(e) = mimir.validate().await {
            let _ = tx.send(Update::Metrics(Err(format!("{e}")))).await;
            return;
        }
        let base = Duration::from_secs(cfg.refresh_secs.max(1));
        let mut failures = 0u32;
        loop {
            let r = mimir.refresh(&inv, unix_now()).await.map(Arc::new);
            failures = if r.is_ok() { 0 } else { (failures + 1).min(2) };
            if tx.send(Update::Metrics(r)).await.is_err() {
                return;
            }
            let wait = base * (1 << failures);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = w.notified() => {}
            }
        }
    });
    MimirHandle { task, wake }
}

/// One refresh for `check`, bounded by `timeout`.
pub async fn gather_once(
    cfg: &MimirConfig,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<Arc<MetricsState>> {
    if cfg.url.is_none() {
        return Sourced::not_configured("Mimir: not configured — set [mimir] url");
    }
    let mut s = Sourced::configured();
    let now = jiff::Timestamp::now();
    let r = match Mimir::new(cfg) {
        Ok(m) => match tokio::time::timeout(timeout, m.refresh(inv, now.as_second())).await {
            Ok(r) => r.map(Arc::new),
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        },
        Err(e) => Err(format!("{e}")),
    };
    s.record(r, now);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use std::path::Path;

    fn inv() -> Inventory {
        crate::inventory::parse(
            Path::new("hosts.json"),
            r#"{
              "instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
              "instance_2": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24}
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(strip_port("node1:9100"), "node1");
        assert_eq!(strip_port("[fe80::1]:9100"), "fe80::1");
        assert_eq!(strip_port("fe80::1"), "fe80::1");
        assert_eq!(strip_port("node1"), "node1");
    }

    #[test]
    fn maps_series_to_hosts() {
        let idx = HostIndex::new(&inv());
        assert_eq!(idx.lookup("192.0.2.11:9100"), Some("instance_1"));
        assert_eq!(idx.lookup("node2:9100"), Some("instance_2"));
        assert_eq!(idx.lookup("NODE2.lan"), Some("instance_2"));
        assert_eq!(idx.lookup("192.0.2.99:9100"), None);
        let mut labels = HashMap::new();
        labels.insert("instance".to_string(), "10.9.9.9:9100".to_string());
        labels.insert("nodename".to_string(), "node1".to_string());
        assert_eq!(idx.host_of(&labels, "instance"), Some("instance_1"));
    }

    #[test]
    fn overrides_and_unknown_names() {
        let mut cfg = MimirConfig::default();
        cfg.queries.insert("cpu".into(), "vector(1)".into());
        let q = effective_queries(&cfg).unwrap();
        assert_eq!(
            q.iter().find(|(d, _)| d.name == "cpu").unwrap().1,
            "vector(1)"
        );
        cfg.queries.insert("cpuu".into(), "x".into());
        let e = effective_queries(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("queries.cpuu") && e.contains("known: cpu"),
            "{e}"
        );
    }

    #[test]
    fn default_queries_parse() {
        for q in DEFAULT_QUERIES {
            promql_parser::parser::parse(q.promql).unwrap();
        }
    }

    #[test]
    fn alerts_become_findings() {
        let st = MetricsState {
            alerts: vec![
                Alert {
                    name: "NodeDown".into(),
                    severity: "critical".into(),
                    host: Some("instance_1".into()),
                    labels: BTreeMap::new(),
                },
                Alert {
                    name: "Watchdog".into(),
                    severity: "none".into(),
                    host: None,
                    labels: BTreeMap::new(),
                },
            ],
            ..Default::default()
        };
        let f = alert_findings(&st);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].subject, "instance_1");
        assert_eq!(f[0].code, "alert.NodeDown");
        assert_eq!(f[1].severity, Severity::Info);
    }

    #[test]
    fn secrets_stay_out_of_errors() {
        let auth = HttpAuth {
            basic_auth_user: Some("u".into()),
            basic_auth_password_env: Some("HOMEINFRA_SURELY_UNSET_VAR".into()),
            ..Default::default()
        };
        let e = http_client("mimir", None, &auth, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOMEINFRA_SURELY_UNSET_VAR"), "{e}");
    }
}
