//! Mimir (or any Prometheus-compatible API): per-host CPU, memory, root filesystem and network
//! history, etcd latency per member, and firing alerts.
//!
//! All PromQL lives in [`DEFAULT_QUERIES`]; `[mimir] queries` overrides any of them by name.
//! One refresh runs every query once, concurrently; the next refresh starts only after the
//! previous one finished, so a query is never in flight twice. Credentials go into the HTTP
//! client's default headers (marked sensitive) and never into messages.//!
//! The client and the source task are here; `queries` (the PromQL), `error` (failures sorted
//! for the pane), `hosts` (series → hosts) and `apply` (answers → state) hold the rest; the HTTP
//! client is [`super::http`]'s.

mod apply;
mod decode;
mod error;
mod hosts;
mod queries;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use prometheus_http_query::response::Data;

pub use self::apply::apply;
pub use self::decode::parse as decode_answer;
pub use self::error::{QueryError, UNAUTHORIZED};
pub use self::hosts::{HostIndex, strip_port};
pub use self::queries::{
    DEFAULT_QUERIES, QueryDef, QueryKind, RANGE_SECS, STEP_SECS, effective_queries,
};
use super::alertmanager::Alertmanager;
use super::http::{http_client, url_origin};
use super::refresh::{self, Backoff, RefreshHandle};
use super::{Update, UpdateTx};
use crate::config::MimirConfig;
use crate::inventory::Inventory;
use crate::model::Sourced;
use crate::model::metrics::{HostMetrics, MetricsState};

/// A Mimir client with the effective queries.
#[derive(Clone)]
pub struct Mimir {
    client: prometheus_http_query::Client,
    origin: String,
    queries: Arc<Vec<(QueryDef, String)>>,
    host_label: String,
    /// With `[alertmanager] url`: the alert list comes from it (silenced ones marked).
    alertmanager: Option<Alertmanager>,
    /// How long one request may take (`[mimir] timeout_secs`); Alertmanager's read is bounded
    /// by it too, so a hung Alertmanager costs the alert list, not the metrics.
    timeout: Duration,
    /// Since when (unix seconds) Alertmanager has not answered, across refreshes.
    am_failing_since: Arc<std::sync::Mutex<Option<i64>>>,
    /// Since when (unix seconds) each failing query has been failing, across refreshes.
    queries_failing_since: Arc<std::sync::Mutex<BTreeMap<String, i64>>>,
    /// The per-host queries as instant queries at `now` ([`Mimir::current_only`]).
    current_only: bool,
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
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let http = http_client("mimir", cfg.tenant.as_deref(), &cfg.auth, timeout)?;
        let client = prometheus_http_query::Client::from(http, url).map_err(|e| {
            eyre!(
                "[mimir] url {}: {}",
                url_origin(url),
                super::http::redact_userinfo(&e.to_string())
            )
        })?;
        Ok(Self {
            client,
            origin: url_origin(url),
            queries: Arc::new(effective_queries(cfg)?),
            host_label: cfg.host_label.clone(),
            alertmanager: None,
            timeout,
            am_failing_since: Arc::new(std::sync::Mutex::new(None)),
            queries_failing_since: Default::default(),
            current_only: false,
        })
    }

    /// Ask the per-host queries for their value now only (instant queries at `now`), not
    /// their sparkline window: each host's series is that one point, its `current` what the
    /// range query's last step gives. For `check`, which judges only current values: the
    /// server evaluates one step instead of 61.
    pub fn current_only(mut self) -> Self {
        self.current_only = true;
        self
    }

    /// Take the alert list from Alertmanager (every alert it holds, silenced and inhibited ones
    /// marked) instead of Prometheus's `ALERTS`.
    pub fn with_alertmanager(mut self, am: Option<Alertmanager>) -> Self {
        self.alertmanager = am;
        self
    }

    /// The effective queries: defaults with the overrides applied.
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

    /// One instant query now: the label sets of the series it returns (a scalar counts as one
    /// series without labels). For the upgrade guards (firing alerts, PromQL gates): the same
    /// client, tenant, credentials and CA as the dashboard; the error names only the server's
    /// origin, never its credentials.
    pub async fn instant_series(
        &self,
        promql: &str,
    ) -> Result<Vec<std::collections::BTreeMap<String, String>>, String> {
        let r = self
            .client
            .query(promql)
            .get()
            .await
            .map_err(|e| QueryError::from_lib(e, &self.origin).message())?;
        Ok(match r.data() {
            Data::Vector(v) => v
                .iter()
                .map(|s| s.metric().clone().into_iter().collect())
                .collect(),
            Data::Matrix(m) => m
                .iter()
                .map(|s| s.metric().clone().into_iter().collect())
                .collect(),
            Data::Scalar(_) => vec![Default::default()],
        })
    }

    /// Where it asks, for messages: `scheme://host:port`, no credentials, no path.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Run one query at `now`.
    async fn run_one(&self, def: QueryDef, promql: &str, now: i64) -> Result<Data, QueryError> {
        let lib = |e| QueryError::from_lib(e, &self.origin);
        let range = matches!(def.kind, QueryKind::HostRange) && !self.current_only;
        let ask = if range {
            Ask::Range(
                self.client
                    .query_range(promql, now - RANGE_SECS, now, STEP_SECS as f64),
            )
        } else {
            Ask::Instant(self.client.query(promql).at(now))
        };
        let raw = ask.clone().raw().await.map_err(lib)?;
        if let Some(data) = decode::success(raw, range, &self.origin).await? {
            return Ok(data);
        }
        // Not a plain success (an error status, another shape): the library's own reading of
        // the same query says what it is.
        ask.read().await.map(|res| res.into_inner().0).map_err(lib)
    }

    /// One refresh at `now` (unix seconds): every query once, concurrently.
    pub async fn refresh(&self, inv: &Inventory, now: i64) -> Result<MetricsState, String> {
        let runs = self
            .queries
            .iter()
            .map(|(def, promql)| async move { (*def, self.run_one(*def, promql, now).await) });
        // Alertmanager is read beside the queries, within the same request timeout.
        let alerts_read = async {
            let am = self.alertmanager.as_ref()?;
            Some(
                match tokio::time::timeout(self.timeout, am.alerts(true)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "Alertmanager {}: no answer within {} s",
                        am.origin(),
                        self.timeout.as_secs()
                    )),
                },
            )
        };
        let (results, am_alerts) =
            futures::future::join(futures::future::join_all(runs), alerts_read).await;
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
        if let Some(r) = am_alerts {
            let mut since = self
                .am_failing_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match r {
                Ok(list) => {
                    *since = None;
                    state.query_errors.remove("alerts");
                    state.alerts = list
                        .into_iter()
                        .map(|a| {
                            let labels: std::collections::HashMap<String, String> =
                                a.labels.clone().into_iter().collect();
                            crate::model::metrics::Alert {
                                name: a.name().to_string(),
                                severity: a.severity(),
                                host: index.host_of(&labels, &self.host_label).map(str::to_string),
                                silenced: a.muted(),
                                labels: a
                                    .labels
                                    .into_iter()
                                    .filter(|(k, _)| k != "alertname")
                                    .collect(),
                            }
                        })
                        .collect();
                }
                Err(e) => {
                    let at = *since.get_or_insert(now);
                    let hms = jiff::Timestamp::from_second(at)
                        .map(|t| t.strftime("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    state.query_errors.insert(
                        crate::model::metrics::ALERTMANAGER_ERROR.into(),
                        format!("unreachable since {hms}: {e}"),
                    );
                }
            }
        }
        {
            let mut since = self
                .queries_failing_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            since.retain(|name, _| state.query_errors.contains_key(name));
            for name in state.query_errors.keys() {
                if name != crate::model::metrics::ALERTMANAGER_ERROR {
                    since.entry(name.clone()).or_insert(now);
                }
            }
            state.query_failing_since = since.clone();
        }
        Ok(state)
    }
}

pub use crate::model::assess::alert_findings;

/// One query as built, to send once more when its answer needs the library's reading.
#[derive(Clone)]
enum Ask {
    Range(prometheus_http_query::RangeQueryBuilder),
    Instant(prometheus_http_query::InstantQueryBuilder),
}

impl Ask {
    /// The answer as it came.
    async fn raw(self) -> Result<reqwest::Response, prometheus_http_query::Error> {
        match self {
            Ask::Range(q) => q.get_raw().await,
            Ask::Instant(q) => q.get_raw().await,
        }
    }

    /// The answer read by the library (its errors named as it names them).
    async fn read(
        self,
    ) -> Result<prometheus_http_query::response::PromqlResult, prometheus_http_query::Error> {
        match self {
            Ask::Range(q) => q.get().await,
            Ask::Instant(q) => q.get().await,
        }
    }
}

/// For startup: build the client and have the server check each `[mimir.queries]` override
/// (the built-in queries are known good: with no override nothing is asked, and the first
/// frame does not wait on the server). An invalid override is an error naming the query and
/// Prometheus's message; an unreachable server is not (the pane reports it), but then the
/// overrides are still checked by the local parser.
pub async fn check_config(cfg: &MimirConfig) -> Result<()> {
    let mut m = Mimir::new(cfg)?;
    let overridden = m
        .queries
        .iter()
        .filter(|(def, _)| cfg.queries.contains_key(def.name))
        .cloned()
        .collect::<Vec<_>>();
    m.queries = Arc::new(overridden);
    if m.queries.is_empty() {
        return Ok(());
    }
    m.validate().await
}

/// The running Mimir source.
pub type MimirHandle = RefreshHandle;

/// Now, in unix seconds.
fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Run the Mimir source: one refresh every `refresh_secs` (backing off up to 4× on failure),
/// each sending `Update::Metrics`. A config problem is sent once as an error and ends the task.
pub fn spawn(cfg: MimirConfig, inv: Arc<Inventory>, tx: UpdateTx) -> MimirHandle {
    spawn_with(cfg, None, inv, tx)
}

/// [`spawn`], the alert list from Alertmanager when `am` is given (`[alertmanager]`).
pub fn spawn_with(
    cfg: MimirConfig,
    am: Option<crate::config::AlertmanagerConfig>,
    inv: Arc<Inventory>,
    tx: UpdateTx,
) -> MimirHandle {
    refresh::spawn(move |wake| async move {
        let am = match am
            .as_ref()
            .filter(|a| a.url.is_some())
            .map(Alertmanager::new)
        {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                let _ = tx.send(Update::Metrics(Err(format!("{e}")))).await;
                return;
            }
        };
        let mimir = match Mimir::new(&cfg) {
            Ok(m) => m.with_alertmanager(am),
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
        let mut pace = Backoff::new(Duration::from_secs(cfg.refresh_secs.max(1)));
        loop {
            let r = mimir.refresh(&inv, unix_now()).await.map(Arc::new);
            let ok = r.is_ok();
            if tx.send(Update::Metrics(r)).await.is_err() {
                return;
            }
            pace.wait(ok, &wake).await;
        }
    })
}

/// One refresh for `check`, bounded by `timeout`.
pub async fn gather_once(
    cfg: &MimirConfig,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<Arc<MetricsState>> {
    gather_once_with(cfg, None, inv, timeout).await
}

/// [`gather_once`], the alert list from Alertmanager when `am` has a URL.
pub async fn gather_once_with(
    cfg: &MimirConfig,
    am: Option<&crate::config::AlertmanagerConfig>,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<Arc<MetricsState>> {
    gather(cfg, am, inv, timeout, false).await
}

/// [`gather_once_with`] for `check`: the per-host figures as their value now only
/// ([`Mimir::current_only`]; no sparkline history).
pub async fn gather_current_with(
    cfg: &MimirConfig,
    am: Option<&crate::config::AlertmanagerConfig>,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<Arc<MetricsState>> {
    gather(cfg, am, inv, timeout, true).await
}

async fn gather(
    cfg: &MimirConfig,
    am: Option<&crate::config::AlertmanagerConfig>,
    inv: &Inventory,
    timeout: Duration,
    current_only: bool,
) -> Sourced<Arc<MetricsState>> {
    if cfg.url.is_none() {
        return Sourced::not_configured("Mimir: not configured — set [mimir] url");
    }
    let mut s = Sourced::configured();
    let now = jiff::Timestamp::now();
    let am = match am.filter(|a| a.url.is_some()).map(Alertmanager::new) {
        None => Ok(None),
        Some(Ok(a)) => Ok(Some(a)),
        Some(Err(e)) => Err(format!("{e}")),
    };
    let r = match Mimir::new(cfg).and_then(|m| {
        let m = if current_only { m.current_only() } else { m };
        am.clone()
            .map(|a| m.with_alertmanager(a))
            .map_err(|e| eyre!(e))
    }) {
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
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Severity;
    use crate::model::metrics::Alert;

    /// `check`'s instant queries give each host the value the dashboard's range queries end
    /// on, every other figure the same (against the simulator's Prometheus face).
    #[tokio::test]
    async fn current_only_gives_the_range_queries_last_values() {
        let inv = crate::inventory::Inventory {
            hosts: (1..=12u8)
                .map(|i| {
                    let role = if i <= 3 {
                        crate::inventory::Role::Server
                    } else {
                        crate::inventory::Role::Agent
                    };
                    let mut h = crate::testing::host(&format!("node{i}"), role, [192, 0, 2, i]);
                    h.id = format!("instance_{i}");
                    h
                })
                .collect(),
            ..Default::default()
        };
        let (_, app) = crate::sim::promql::for_inventory(&inv);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = MimirConfig {
            url: Some(format!("http://{}/prometheus", l.local_addr().unwrap())),
            ..Default::default()
        };
        tokio::spawn(async move { axum::serve(l, app).await });
        let now = jiff::Timestamp::now().as_second();
        let full = Mimir::new(&cfg).unwrap().refresh(&inv, now).await.unwrap();
        let current = Mimir::new(&cfg)
            .unwrap()
            .current_only()
            .refresh(&inv, now)
            .await
            .unwrap();
        assert!(
            current.query_errors.is_empty(),
            "{:?}",
            current.query_errors
        );
        assert_eq!(current.hosts.len(), 12);
        for (id, h) in &full.hosts {
            let c = &current.hosts[id];
            for (name, f, c) in [
                ("cpu", &h.cpu_pct, &c.cpu_pct),
                ("memory", &h.memory_pct, &c.memory_pct),
                ("root_fs", &h.root_fs_pct, &c.root_fs_pct),
                ("net_rx", &h.net_rx_bps, &c.net_rx_bps),
                ("net_tx", &h.net_tx_bps, &c.net_tx_bps),
            ] {
                assert!(f.current.is_some(), "{id} {name}");
                assert_eq!(c.current, f.current, "{id} {name}");
                assert_eq!(c.points.len(), 1, "{id} {name}");
                assert!(f.points.len() > 1, "{id} {name}");
            }
        }
        assert_eq!(current.etcd, full.etcd);
        assert_eq!(current.alerts, full.alerts);
        assert_eq!(current.unmapped, full.unmapped);
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
                    ..Default::default()
                },
                Alert {
                    name: "Watchdog".into(),
                    severity: "none".into(),
                    host: None,
                    labels: BTreeMap::new(),
                    ..Default::default()
                },
                Alert {
                    name: "HostDown".into(),
                    severity: "critical".into(),
                    host: Some("instance_2".into()),
                    labels: BTreeMap::new(),
                    silenced: true,
                },
            ],
            ..Default::default()
        };
        let f = alert_findings(&st);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].subject, "instance_1");
        assert_eq!(f[0].code, "alert.NodeDown");
        assert_eq!(f[1].severity, Severity::Info);
        // Silenced in Alertmanager: said so, and no longer a critical finding.
        assert_eq!(f[2].severity, Severity::Info);
        assert!(f[2].message.ends_with("— silenced"), "{}", f[2].message);
    }
}
