//! Loki: the recent matching log lines of every inventory host, via
//! `/loki/api/v1/query_range` (direction backward, a time window, a line limit). There is no
//! maintained Loki client crate, so this is plain reqwest. Memory is bounded: at most `lines`
//! lines per host, the oldest dropped. After the first round only lines newer than the newest
//! one already held are asked for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use futures::StreamExt;
use serde::Deserialize;

use super::http::{http_client, root_cause, url_origin};
use super::refresh::{self, Backoff, RefreshHandle};
use super::{Update, UpdateTx};
use crate::config::LokiConfig;
use crate::inventory::{Host, Inventory};
use crate::model::Sourced;
use crate::model::metrics::{HostLogs, LogLevel, LogLine, LogsState};

/// The message shown for an unauthorized answer.
pub const UNAUTHORIZED: &str = "Loki: unauthorized (check [loki] credentials)";

/// How many hosts are queried at once.
const CONCURRENCY: usize = 8;

/// The per-host LogQL: `{hostname}`, `{id}` and `{ip}` replaced.
pub fn render_query(template: &str, host: &Host) -> String {
    template
        .replace("{hostname}", &host.hostname)
        .replace("{id}", &host.id)
        .replace("{ip}", &host.ip.to_string())
}

#[derive(Deserialize)]
struct Resp {
    status: String,
    #[serde(default)]
    data: Option<RespData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct RespData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RespStream {
    stream: BTreeMap<String, String>,
    values: Vec<(String, String)>,
}

/// Parse a `query_range` answer into lines (any order). Errors are Loki's own message (its
/// errors are plain text or JSON, depending on version and proxy); 401/403 read as
/// [`UNAUTHORIZED`].
pub fn parse_response(status: u16, body: &[u8]) -> Result<Vec<LogLine>, String> {
    if status == 401 || status == 403 {
        return Err(UNAUTHORIZED.to_string());
    }
    let text = || {
        let t = String::from_utf8_lossy(body).trim().to_string();
        if t.is_empty() {
            format!("Loki answered HTTP {status}")
        } else {
            let t: String = t.chars().take(300).collect();
            format!("Loki: {t}")
        }
    };
    let resp: Resp = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) if !(200..300).contains(&status) => {
            let _ = e;
            return Err(text());
        }
        Err(e) => return Err(format!("Loki: unexpected answer: {e}")),
    };
    if resp.status != "success" || !(200..300).contains(&status) {
        let msg = resp
            .error
            .or(resp.message)
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(format!("Loki: {msg}"));
    }
    let Some(data) = resp.data else {
        return Err("Loki: answer without data".into());
    };
    if data.result_type != "streams" {
        return Err(format!(
            "Loki: expected log streams, got a {} (is the query a metric query?)",
            data.result_type
        ));
    }
    let streams: Vec<RespStream> =
        serde_json::from_value(data.result).map_err(|e| format!("Loki: unexpected answer: {e}"))?;
    let mut out = Vec::new();
    for s in streams {
        let labels = Arc::new(s.stream);
        for (ts, line) in s.values {
            let ts_ns: i128 = ts
                .parse()
                .map_err(|_| format!("Loki: bad timestamp {ts:?}"))?;
            out.push(LogLine {
                ts_ns,
                level: LogLevel::guess(&line),
                line,
                labels: labels.clone(),
            });
        }
    }
    Ok(out)
}

/// A Loki client.
#[derive(Clone)]
pub struct Loki {
    http: reqwest::Client,
    base: String,
    origin: String,
    template: String,
    lines: usize,
    window_ns: i128,
}

impl std::fmt::Debug for Loki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loki")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Loki {
    pub fn new(cfg: &LokiConfig) -> Result<Self> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| eyre!("[loki] url is not set"))?
            .trim_end_matches('/');
        let http = http_client(
            "loki",
            cfg.tenant.as_deref(),
            &cfg.auth,
            Duration::from_secs(cfg.timeout_secs.max(1)),
        )?;
        Ok(Self {
            http,
            base: url.to_string(),
            origin: url_origin(url),
            template: cfg.query_template.clone(),
            lines: cfg.lines.max(1),
            window_ns: cfg.window_mins.max(1) as i128 * 60 * 1_000_000_000,
        })
    }

    /// One `query_range`, newest first, at most `limit` lines.
    pub async fn query_range(
        &self,
        query: &str,
        start_ns: i128,
        end_ns: i128,
        limit: usize,
    ) -> Result<Vec<LogLine>, String> {
        let resp = self
            .http
            .get(format!("{}/loki/api/v1/query_range", self.base))
            .query(&[
                ("query", query.to_string()),
                ("start", start_ns.to_string()),
                ("end", end_ns.to_string()),
                ("limit", limit.to_string()),
                ("direction", "backward".to_string()),
            ])
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("{}: request timed out", self.origin)
                } else {
                    format!("{}: {}", self.origin, root_cause(&e))
                }
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{}: {}", self.origin, root_cause(&e)))?;
        parse_response(status, &body)
    }

    /// Refresh every host of `inv` into `state`; hosts already known are asked only for lines
    /// newer than their newest. Fails as a whole only when every host failed.
    pub async fn refresh(
        &self,
        inv: &Inventory,
        state: &mut LogsState,
        now_ns: i128,
    ) -> Result<(), String> {
        let jobs: Vec<(String, String, i128)> = inv
            .hosts
            .iter()
            .map(|h| {
                let newest = state
                    .hosts
                    .get(&h.id)
                    .and_then(|l| l.lines.front())
                    .map(|l| l.ts_ns + 1);
                let start = newest.unwrap_or(0).max(now_ns - self.window_ns);
                (h.id.clone(), render_query(&self.template, h), start)
            })
            .collect();
        let results: Vec<(String, Result<Vec<LogLine>, String>)> = futures::stream::iter(jobs)
            .map(|(id, q, start)| {
                let this = self.clone();
                async move {
                    let r = this.query_range(&q, start, now_ns, this.lines).await;
                    (id, r)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut first_err = None;
        let mut ok = 0;
        state.errors.clear();
        for (id, r) in results {
            match r {
                Ok(lines) => {
                    ok += 1;
                    state
                        .hosts
                        .entry(id)
                        .or_insert_with(|| HostLogs::new(self.lines))
                        .merge(lines);
                }
                Err(e) => {
                    if e == UNAUTHORIZED {
                        return Err(e);
                    }
                    state.errors.insert(id, e.clone());
                    first_err.get_or_insert(e);
                }
            }
        }
        // Hosts gone from the inventory are forgotten.
        state.hosts.retain(|id, _| inv.host(id).is_some());
        match first_err {
            Some(e) if ok == 0 && !inv.hosts.is_empty() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Now, in unix nanoseconds.
fn now_ns() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

/// The running Loki source.
pub type LokiHandle = RefreshHandle;

/// Run the Loki source: a refresh every `refresh_secs` (backing off up to 4× on failure), each
/// sending `Update::Logs` with the whole bounded state.
pub fn spawn(cfg: LokiConfig, inv: Arc<Inventory>, tx: UpdateTx) -> LokiHandle {
    refresh::spawn(move |wake| async move {
        let loki = match Loki::new(&cfg) {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Update::Logs(Err(format!("{e}")))).await;
                return;
            }
        };
        let mut pace = Backoff::new(Duration::from_secs(cfg.refresh_secs.max(1)));
        let mut state = LogsState::default();
        loop {
            let r = loki.refresh(&inv, &mut state, now_ns()).await;
            let ok = r.is_ok();
            let msg = r.map(|()| Arc::new(state.clone()));
            if tx.send(Update::Logs(msg)).await.is_err() {
                return;
            }
            pace.wait(ok, &wake).await;
        }
    })
}

/// One refresh for `check`, bounded by `timeout`.
pub async fn gather_once(
    cfg: &LokiConfig,
    inv: &Inventory,
    timeout: Duration,
) -> Sourced<Arc<LogsState>> {
    if cfg.url.is_none() {
        return Sourced::not_configured("Loki: not configured — set [loki] url");
    }
    let mut s = Sourced::configured();
    let now = jiff::Timestamp::now();
    let r = match Loki::new(cfg) {
        Ok(l) => {
            let mut state = LogsState::default();
            match tokio::time::timeout(timeout, l.refresh(inv, &mut state, now.as_nanosecond()))
                .await
            {
                Ok(Ok(())) => Ok(Arc::new(state)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
            }
        }
        Err(e) => Err(format!("{e}")),
    };
    s.record(r, now);
    s
}
