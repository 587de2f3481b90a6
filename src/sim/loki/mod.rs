//! The simulator's Loki face: `/loki/api/v1/query_range` over generated k3s, etcd and kernel log
//! lines per host. LogQL: a stream selector (`=`, `!=`, `=~`, `!~`) and line filters (`|=`,
//! `!=`, `|~`, `!~`); anything else (parsers, metric queries) is refused with HTTP 400 and a
//! plain-text message, as Loki does. Answers have Loki's exact JSON shape.//!
//! The HTTP face is here; `logql` parses queries, `generator` makes the lines.

mod generator;
mod logql;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use self::generator::{LogGenerator, LogHost};
pub use self::logql::{LogQuery, parse_logql};

/// A stream's label set.
pub type Labels = BTreeMap<String, String>;

/// Where the Loki face reads log streams from.
pub trait LogSource: Send + Sync + 'static {
    /// Every stream's labels.
    fn streams(&self) -> Vec<Labels>;
    /// The lines of one stream in `[start_ns, end_ns]`, oldest first.
    fn lines(&self, stream: &Labels, start_ns: i128, end_ns: i128) -> Vec<(i128, String)>;
}

fn plain_error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// Loki's time parameter: nanoseconds, (fractional) seconds, or RFC 3339.
fn parse_time_ns(s: &str) -> Option<i128> {
    if let Ok(n) = s.parse::<i128>() {
        // Loki reads plain integers as nanoseconds.
        return Some(n);
    }
    if let Ok(f) = s.parse::<f64>() {
        return f.is_finite().then_some((f * 1e9) as i128);
    }
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_nanosecond())
}

/// The Loki query API over `source`: `GET /loki/api/v1/query_range` and `/loki/api/v1/labels`
/// (everything under `/loki/`, so it merges with the sim's other faces).
pub fn router(source: Arc<dyn LogSource>) -> Router {
    Router::new()
        .route("/loki/api/v1/query_range", get(query_range))
        .route("/loki/api/v1/labels", get(labels))
        .with_state(source)
}

async fn labels(State(src): State<Arc<dyn LogSource>>) -> Response {
    let mut names: Vec<String> = src
        .streams()
        .iter()
        .flat_map(|l| l.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    axum::Json(json!({"status": "success", "data": names})).into_response()
}

async fn query_range(State(src): State<Arc<dyn LogSource>>, RawQuery(raw): RawQuery) -> Response {
    let ps: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let p = |n: &str| ps.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let Some(q) = p("query") else {
        return plain_error(StatusCode::BAD_REQUEST, "query parameter is required");
    };
    let query = match parse_logql(q) {
        Ok(x) => x,
        Err(e) => return plain_error(StatusCode::BAD_REQUEST, &e),
    };
    let now = jiff::Timestamp::now().as_nanosecond();
    let end = match p("end").map(parse_time_ns) {
        None => now,
        Some(Some(t)) => t,
        Some(None) => return plain_error(StatusCode::BAD_REQUEST, "invalid end parameter"),
    };
    let start = match p("start").map(parse_time_ns) {
        None => end - 3_600_000_000_000,
        Some(Some(t)) => t,
        Some(None) => return plain_error(StatusCode::BAD_REQUEST, "invalid start parameter"),
    };
    if end < start {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "end timestamp must not be before or equal to start time",
        );
    }
    let limit: usize = match p("limit").map(str::parse) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => return plain_error(StatusCode::BAD_REQUEST, "invalid limit parameter"),
    };
    let backward = match p("direction") {
        None | Some("backward") | Some("BACKWARD") => true,
        Some("forward") | Some("FORWARD") => false,
        Some(_) => return plain_error(StatusCode::BAD_REQUEST, "invalid direction parameter"),
    };
    let started = std::time::Instant::now();
    // Every matching entry, then the `limit` newest (backward) or oldest (forward) overall.
    // Loki's end is exclusive.
    let mut entries: Vec<(i128, usize, String)> = Vec::new();
    let streams: Vec<Labels> = src
        .streams()
        .into_iter()
        .filter(|l| query.matches_stream(l))
        .collect();
    let mut scanned = 0usize;
    let mut bytes = 0usize;
    for (i, l) in streams.iter().enumerate() {
        for (t, line) in src.lines(l, start, end - 1) {
            scanned += 1;
            bytes += line.len();
            if query.matches_line(&line) {
                entries.push((t, i, line));
            }
        }
    }
    if backward {
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    } else {
        entries.sort_by_key(|e| e.0);
    }
    entries.truncate(limit);
    let mut per_stream: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for (t, i, line) in entries {
        per_stream.entry(i).or_default().push((t.to_string(), line));
    }
    let result: Vec<_> = per_stream
        .into_iter()
        .map(|(i, values)| json!({"stream": streams[i], "values": values}))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let body = json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": result,
            "stats": {
                "summary": {
                    "bytesProcessedPerSecond": if secs > 0.0 { (bytes as f64 / secs) as u64 } else { 0 },
                    "linesProcessedPerSecond": if secs > 0.0 { (scanned as f64 / secs) as u64 } else { 0 },
                    "totalBytesProcessed": bytes,
                    "totalLinesProcessed": scanned,
                    "execTime": secs,
                    "queueTime": 0,
                    "subqueries": 0,
                    "totalEntriesReturned": result.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum::<usize>(),
                }
            }
        }
    });
    axum::Json(body).into_response()
}

/// The Loki face for an inventory's fleet: the log generator (knobs: slow disk, down hosts) and
/// the router to mount. Point `[loki] url` at `http://<addr>`.
pub fn for_inventory(inv: &crate::inventory::Inventory) -> (Arc<LogGenerator>, Router) {
    let g = Arc::new(LogGenerator::from_inventory(inv));
    let r = router(g.clone());
    (g, r)
}
