//! Loki: the recent matching log lines of every inventory host, via
//! `/loki/api/v1/query_range` (direction backward, a time window, a line limit). There is no
//! maintained Loki client crate, so this is plain reqwest. Memory is bounded: at most `lines`
//! lines per host, the oldest dropped. After the first round only lines newer than the newest
//! one already held are asked for.
//!
//! When the template selects the host by one label matcher (`{host="{hostname}"}`, the
//! default), hosts are asked in batches (`{host=~"node1|node2|…"}`, the limit `lines` per
//! host, at most Loki's default 5000 entries a query), each line attributed by its stream's
//! label value: 8 queries for 200 hosts instead of 200. A batch that hits its limit may have
//! crowded a quiet host's older lines out: the hosts it gave fewer than `lines` lines are asked
//! alone, so what each host holds is what its own query gives.

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

/// Loki's default `max_entries_limit_per_query`: a batch's limit stays within it.
const MAX_ENTRIES_PER_QUERY: usize = 5000;

/// A template that selects the host by exactly one label matcher, `LABEL="{placeholder}"`,
/// inside its stream selector (and names no placeholder elsewhere): hosts can be asked
/// together with `LABEL=~"a|b|…"`, each line's host read back from its stream's `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTemplate {
    /// The text before the matcher, the label, the text after it.
    before: String,
    pub label: String,
    after: String,
    /// `{hostname}`, `{id}` or `{ip}`.
    placeholder: &'static str,
}

const PLACEHOLDERS: [&str; 3] = ["{hostname}", "{id}", "{ip}"];

impl BatchTemplate {
    /// `None` when the template is not of that shape (each host is then asked alone).
    pub fn of(template: &str) -> Option<Self> {
        let mut found = None;
        for ph in PLACEHOLDERS {
            for (at, _) in template.match_indices(ph) {
                if found.is_some() {
                    return None;
                }
                found = Some((at, ph));
            }
        }
        let (at, placeholder) = found?;
        // `LABEL="` right before, `"` right after, inside the first `{…}`.
        let head = template[..at].strip_suffix('"')?;
        let head = head.trim_end().strip_suffix('=')?;
        let head = head.trim_end();
        let label_start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let label = &head[label_start..];
        if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let before = &head[..label_start];
        let open = before.trim_start().strip_prefix('{')?;
        if open.contains('}') || open.contains('|') {
            return None;
        }
        let rest = template[at + placeholder.len()..].strip_prefix('"')?;
        // The selector must still be open here: its `}` comes before any pipeline stage.
        let close = rest.find('}')?;
        if rest[..close].contains('|') {
            return None;
        }
        Some(Self {
            before: before.to_string(),
            label: label.to_string(),
            after: rest.to_string(),
            placeholder,
        })
    }

    /// The value the template puts in for `host`.
    pub fn value(&self, host: &Host) -> String {
        match self.placeholder {
            "{hostname}" => host.hostname.clone(),
            "{id}" => host.id.clone(),
            _ => host.ip.to_string(),
        }
    }

    /// The query for several hosts' values: `LABEL=~"v1|v2"`, each value matched literally.
    pub fn query(&self, values: &[String]) -> String {
        let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
        // A LogQL double-quoted string: backslashes and quotes escaped.
        let re = alternatives
            .join("|")
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        format!("{}{}=~\"{re}\"{}", self.before, self.label, self.after)
    }
}

/// Split a batch's lines among its hosts by their stream's `label` value; a host keeps only
/// lines from its own start on (a batch asks from the earliest start of its hosts).
fn attribute(
    lines: Vec<LogLine>,
    label: &str,
    hosts: &[(String, String, i128)],
) -> Vec<(String, Vec<LogLine>)> {
    let mut out: Vec<(String, Vec<LogLine>)> = hosts
        .iter()
        .map(|(id, _, _)| (id.clone(), Vec::new()))
        .collect();
    let by_value: std::collections::HashMap<&str, Vec<usize>> =
        hosts
            .iter()
            .enumerate()
            .fold(Default::default(), |mut m, (i, (_, v, _))| {
                m.entry(v.as_str()).or_insert_with(Vec::new).push(i);
                m
            });
    for line in lines {
        let Some(ix) = line
            .labels
            .get(label)
            .and_then(|v| by_value.get(v.as_str()))
        else {
            continue;
        };
        for &i in ix {
            if line.ts_ns >= hosts[i].2 {
                out[i].1.push(line.clone());
            }
        }
    }
    out
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
}

/// The streams of an answer already known to hold streams: read straight from the body (no
/// `serde_json::Value` tree of a batch's thousands of lines in between).
#[derive(Deserialize)]
struct StreamsResp {
    data: StreamsData,
}

#[derive(Deserialize)]
struct StreamsData {
    result: Vec<RespStream>,
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
    let streams: Vec<RespStream> = serde_json::from_slice::<StreamsResp>(body)
        .map_err(|e| format!("Loki: unexpected answer: {e}"))?
        .data
        .result;
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
        let start_of = |h: &Host| {
            let newest = state
                .hosts
                .get(&h.id)
                .and_then(|l| l.lines.front())
                .map(|l| l.ts_ns + 1);
            newest.unwrap_or(0).max(now_ns - self.window_ns)
        };
        let results = match BatchTemplate::of(&self.template).filter(|_| inv.hosts.len() > 1) {
            Some(batch) => {
                let hosts: Vec<(String, String, i128)> = inv
                    .hosts
                    .iter()
                    .map(|h| (h.id.clone(), batch.value(h), start_of(h)))
                    .collect();
                self.batched(&batch, &hosts, inv, now_ns).await
            }
            None => {
                let jobs: Vec<(String, String, i128)> = inv
                    .hosts
                    .iter()
                    .map(|h| (h.id.clone(), render_query(&self.template, h), start_of(h)))
                    .collect();
                self.alone(jobs, now_ns).await
            }
        };
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

/// One host's lines from a batch (id, lines or the batch's error, crowded out).
type BatchAnswer = (String, Result<Vec<LogLine>, String>, bool);

impl Loki {
    /// Each host's own query (id, query, start), a few at once.
    async fn alone(
        &self,
        jobs: Vec<(String, String, i128)>,
        now_ns: i128,
    ) -> Vec<(String, Result<Vec<LogLine>, String>)> {
        futures::stream::iter(jobs)
            .map(|(id, q, start)| {
                let this = self.clone();
                async move {
                    let r = this.query_range(&q, start, now_ns, this.lines).await;
                    (id, r)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    /// One batch's query: each host's lines, and whether the batch's limit may have crowded
    /// it out (the batch came back full and gave it fewer than `lines`).
    async fn one_batch(
        &self,
        batch: &BatchTemplate,
        chunk: &[(String, String, i128)],
        now_ns: i128,
    ) -> Vec<BatchAnswer> {
        let values: Vec<String> = chunk.iter().map(|(_, v, _)| v.clone()).collect();
        let start = chunk.iter().map(|(_, _, s)| *s).min().unwrap_or(now_ns);
        let limit = self.lines * chunk.len();
        match self
            .query_range(&batch.query(&values), start, now_ns, limit)
            .await
        {
            Ok(lines) => {
                let full = lines.len() >= limit;
                attribute(lines, &batch.label, chunk)
                    .into_iter()
                    .map(|(id, l)| {
                        let crowded = full && l.len() < self.lines;
                        (id, Ok(l), crowded)
                    })
                    .collect()
            }
            Err(e) => chunk
                .iter()
                .map(|(id, _, _)| (id.clone(), Err(e.clone()), false))
                .collect(),
        }
    }

    /// The hosts (id, label value, start) asked in batches; a batch that hit its limit has
    /// the hosts it gave fewer than `lines` lines asked alone.
    async fn batched(
        &self,
        batch: &BatchTemplate,
        hosts: &[(String, String, i128)],
        inv: &Inventory,
        now_ns: i128,
    ) -> Vec<(String, Result<Vec<LogLine>, String>)> {
        let per_query = (MAX_ENTRIES_PER_QUERY / self.lines).max(1);
        let chunks: Vec<Vec<(String, String, i128)>> =
            hosts.chunks(per_query).map(<[_]>::to_vec).collect();
        let answers: Vec<Vec<BatchAnswer>> = futures::stream::iter(chunks)
            .map(|chunk| {
                let this = self.clone();
                let batch = batch.clone();
                async move { this.one_batch(&batch, &chunk, now_ns).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(hosts.len());
        let mut again = Vec::new();
        for (id, r, crowded) in answers.into_iter().flatten() {
            match (crowded, inv.host(&id)) {
                (true, Some(h)) => {
                    let start = hosts
                        .iter()
                        .find(|(i, _, _)| *i == id)
                        .map_or(now_ns, |(_, _, s)| *s);
                    again.push((id, render_query(&self.template, h), start));
                }
                _ => out.push((id, r)),
            }
        }
        if !again.is_empty() {
            out.extend(self.alone(again, now_ns).await);
        }
        out
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::inventory::Role;
    use crate::sim::loki::{Labels, LogSource};

    /// Fixed streams: per hostname, lines at the given seconds; counts the queries.
    struct Fixed {
        lines: Vec<(&'static str, Vec<i128>)>,
        queries: AtomicUsize,
    }

    impl LogSource for Fixed {
        fn streams(&self) -> Vec<Labels> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            self.lines
                .iter()
                .map(|(h, _)| Labels::from([("host".to_string(), h.to_string())]))
                .collect()
        }

        fn lines(&self, stream: &Labels, start_ns: i128, end_ns: i128) -> Vec<(i128, String)> {
            let host = stream.get("host").map(String::as_str).unwrap_or("");
            self.lines
                .iter()
                .filter(|(h, _)| *h == host)
                .flat_map(|(h, ts)| {
                    ts.iter()
                        .map(move |t| (*t * 1_000_000_000, format!("{h} error at {t}")))
                })
                .filter(|(t, _)| (start_ns..=end_ns).contains(t))
                .collect()
        }
    }

    fn inv(names: &[&str]) -> Inventory {
        Inventory {
            hosts: names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let mut h = crate::testing::host(
                        &format!("instance_{i}"),
                        Role::Agent,
                        [192, 0, 2, 10 + i as u8],
                    );
                    h.hostname = n.to_string();
                    h
                })
                .collect(),
            ..Default::default()
        }
    }

    async fn serve(src: Arc<Fixed>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = crate::sim::loki::router(src);
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    }

    /// A Loki serving `lines` (host, timestamps), and one refresh of `hosts` at `now` through
    /// it with `[loki] lines = limit`: the source, its config, the hosts, the state, the server.
    async fn refreshed(
        lines: Vec<(&'static str, Vec<i128>)>,
        limit: Option<usize>,
        hosts: &[&str],
        now: i128,
    ) -> (Loki, LokiConfig, Inventory, LogsState, Arc<Fixed>) {
        let src = Arc::new(Fixed {
            lines,
            queries: AtomicUsize::new(0),
        });
        let mut cfg = LokiConfig {
            url: Some(serve(src.clone()).await),
            ..Default::default()
        };
        if let Some(n) = limit {
            cfg.lines = n;
        }
        let loki = Loki::new(&cfg).unwrap();
        let inv = inv(hosts);
        let mut state = LogsState::default();
        loki.refresh(&inv, &mut state, now * 1_000_000_000)
            .await
            .unwrap();
        (loki, cfg, inv, state, src)
    }

    fn texts(state: &LogsState, id: &str) -> Vec<String> {
        state.hosts[id]
            .lines
            .iter()
            .map(|l| l.line.clone())
            .collect()
    }

    #[test]
    fn templates_that_batch() {
        let b = BatchTemplate::of(r#"{host="{hostname}"} |~ "(?i)(error|fail|panic)""#).unwrap();
        assert_eq!(b.label, "host");
        assert_eq!(
            b.query(&["node1".into(), "node1.lan".into()]),
            r#"{host=~"node1|node1\\.lan"} |~ "(?i)(error|fail|panic)""#
        );
        let b =
            BatchTemplate::of(r#"{job="systemd-journal", instance = "{ip}", unit!="x"}"#).unwrap();
        assert_eq!(
            b.query(&["192.0.2.1".into()]),
            r#"{job="systemd-journal", instance=~"192\\.0\\.2\\.1", unit!="x"}"#
        );
        for one_by_one in [
            r#"{host=~"{hostname}"}"#,
            r#"{host="{hostname}"} |= "{id}""#,
            r#"{job="x"} |= "{hostname}""#,
            r#"{job="x"} | label_format a="{hostname}""#,
            r#"{host="{hostname}.lan"}"#,
            r#"{job="all"}"#,
        ] {
            assert_eq!(BatchTemplate::of(one_by_one), None, "{one_by_one}");
        }
    }

    /// Hosts whose names are prefixes of each other (and one whose dot a regex would read as
    /// any character): each line lands on its own host, in one query, as each host's own
    /// query gives it.
    #[tokio::test]
    async fn batched_queries_attribute_lines_to_the_right_host() {
        let now = 10_000i128;
        let lines = vec![
            ("node1", vec![now - 30, now - 20]),
            ("node10", vec![now - 25]),
            ("node1.lan", vec![now - 10]),
            ("node1xlan", vec![now - 5]),
        ];
        let hosts = ["node1", "node10", "node1.lan", "node100"];
        let (loki, cfg, inv, state, src) = refreshed(lines, None, &hosts, now).await;
        assert_eq!(
            src.queries.load(Ordering::SeqCst),
            1,
            "one query for four hosts"
        );
        assert_eq!(
            texts(&state, "instance_0"),
            ["node1 error at 9980", "node1 error at 9970"]
        );
        assert_eq!(texts(&state, "instance_1"), ["node10 error at 9975"]);
        assert_eq!(texts(&state, "instance_2"), ["node1.lan error at 9990"]);
        assert!(texts(&state, "instance_3").is_empty());
        assert!(state.errors.is_empty(), "{:?}", state.errors);

        // What each host's own query gives is the same.
        let jobs = inv
            .hosts
            .iter()
            .map(|h| (h.id.clone(), render_query(&cfg.query_template, h), 0))
            .collect();
        let mut alone = loki.alone(jobs, now * 1_000_000_000).await;
        alone.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, lines) in alone {
            let mut got: Vec<String> = lines.unwrap().into_iter().map(|l| l.line).collect();
            got.sort_by(|a, b| b.cmp(a));
            assert_eq!(got, texts(&state, &id), "{id}");
        }
    }

    /// A noisy host fills a batch's limit: the quiet host it crowded out is asked alone and
    /// still gets its lines; the noisy one keeps its newest `lines`.
    #[tokio::test]
    async fn a_batch_at_its_limit_asks_the_crowded_hosts_alone() {
        let now = 10_000i128;
        let lines = vec![
            ("quiet", vec![now - 100, now - 90]),
            ("noisy", (1..=10).map(|i| now - i).collect()),
        ];
        let (_, _, _, state, src) = refreshed(lines, Some(3), &["quiet", "noisy"], now).await;
        assert_eq!(
            src.queries.load(Ordering::SeqCst),
            2,
            "the batch, then quiet alone"
        );
        assert_eq!(
            texts(&state, "instance_0"),
            ["quiet error at 9910", "quiet error at 9900"]
        );
        assert_eq!(
            texts(&state, "instance_1"),
            [
                "noisy error at 9999",
                "noisy error at 9998",
                "noisy error at 9997"
            ]
        );
    }
}
