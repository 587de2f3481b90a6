//! The simulator's Loki face: `/loki/api/v1/query_range` over generated k3s, etcd and kernel log
//! lines per host. LogQL: a stream selector (`=`, `!=`, `=~`, `!~`) and line filters (`|=`,
//! `!=`, `|~`, `!~`); anything else (parsers, metric queries) is refused with HTTP 400 and a
//! plain-text message, as Loki does. Answers have Loki's exact JSON shape.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use regex::Regex;
use serde_json::json;

pub type Labels = BTreeMap<String, String>;

/// Where the Loki face reads log streams from.
pub trait LogSource: Send + Sync + 'static {
    /// Every stream's labels.
    fn streams(&self) -> Vec<Labels>;
    /// The lines of one stream in `[start_ns, end_ns]`, oldest first.
    fn lines(&self, stream: &Labels, start_ns: i128, end_ns: i128) -> Vec<(i128, String)>;
}

// ---------------------------------------------------------------- LogQL (a subset)

#[derive(Debug, Clone)]
enum LabelOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug, Clone)]
enum LineFilter {
    Contains(String),
    NotContains(String),
    Re(Regex),
    NotRe(Regex),
}

/// A parsed log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    matchers: Vec<(String, LabelOp)>,
    filters: Vec<LineFilter>,
}

impl LogQuery {
    pub fn matches_stream(&self, l: &Labels) -> bool {
        self.matchers.iter().all(|(k, op)| {
            let v = l.get(k).map(String::as_str).unwrap_or("");
            match op {
                LabelOp::Eq(x) => v == x,
                LabelOp::Ne(x) => v != x,
                LabelOp::Re(r) => r.is_match(v),
                LabelOp::NotRe(r) => !r.is_match(v),
            }
        })
    }

    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| match f {
            LineFilter::Contains(s) => line.contains(s.as_str()),
            LineFilter::NotContains(s) => !line.contains(s.as_str()),
            LineFilter::Re(r) => r.is_match(line),
            LineFilter::NotRe(r) => !r.is_match(line),
        })
    }
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(char::is_whitespace) {
            self.i += self.s[self.i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn err(&self, what: &str) -> String {
        format!("parse error at line 1, col {}: {what}", self.i + 1)
    }
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.i..];
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err("syntax error: expected a label name"));
        }
        self.i += n;
        Ok(rest[..n].to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.i..];
        if let Some(r) = rest.strip_prefix('`') {
            let end = r
                .find('`')
                .ok_or_else(|| self.err("unterminated raw string"))?;
            self.i += end + 2;
            return Ok(r[..end].to_string());
        }
        let Some(r) = rest.strip_prefix('"') else {
            return Err(self.err("syntax error: expected a string"));
        };
        let mut out = String::new();
        let mut it = r.char_indices();
        while let Some((j, c)) = it.next() {
            match c {
                '"' => {
                    self.i += j + 2;
                    return Ok(out);
                }
                '\\' => match it.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.err("unterminated string"))
    }
}

fn regex(s: &str, anchored: bool) -> Result<Regex, String> {
    let src = if anchored {
        format!("^(?:{s})$")
    } else {
        s.to_string()
    };
    Regex::new(&src).map_err(|e| format!("invalid regex {s:?}: {e}"))
}

/// Parse the LogQL subset; the error reads like Loki's.
pub fn parse_logql(q: &str) -> Result<LogQuery, String> {
    let mut lx = Lexer { s: q, i: 0 };
    if !lx.eat("{") {
        return Err(lx.err(
            "syntax error: only log queries with a stream selector are supported by the simulator",
        ));
    }
    let mut matchers = Vec::new();
    loop {
        if lx.eat("}") {
            break;
        }
        if !matchers.is_empty() && !lx.eat(",") {
            return Err(lx.err("syntax error: expected , or }"));
        }
        let name = lx.ident()?;
        let op = if lx.eat("=~") {
            LabelOp::Re(regex(&lx.string()?, true)?)
        } else if lx.eat("!~") {
            LabelOp::NotRe(regex(&lx.string()?, true)?)
        } else if lx.eat("!=") {
            LabelOp::Ne(lx.string()?)
        } else if lx.eat("=") {
            LabelOp::Eq(lx.string()?)
        } else {
            return Err(lx.err("syntax error: expected =, !=, =~ or !~"));
        };
        matchers.push((name, op));
    }
    if !matchers.iter().any(|(_, op)| match op {
        LabelOp::Eq(v) => !v.is_empty(),
        LabelOp::Re(r) => !r.is_match(""),
        _ => false,
    }) {
        return Err(
            "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
                .into(),
        );
    }
    let mut filters = Vec::new();
    loop {
        lx.ws();
        if lx.i >= q.len() {
            break;
        }
        let f = if lx.eat("|=") {
            LineFilter::Contains(lx.string()?)
        } else if lx.eat("|~") {
            LineFilter::Re(regex(&lx.string()?, false)?)
        } else if lx.eat("!=") {
            LineFilter::NotContains(lx.string()?)
        } else if lx.eat("!~") {
            LineFilter::NotRe(regex(&lx.string()?, false)?)
        } else {
            return Err(lx.err(
                "syntax error: only line filters (|=, !=, |~, !~) are supported by the simulator",
            ));
        };
        filters.push(f);
    }
    Ok(LogQuery { matchers, filters })
}

// ---------------------------------------------------------------- HTTP

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

// ---------------------------------------------------------------- generated logs

/// One host of the generated log fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHost {
    pub hostname: String,
    pub control_plane: bool,
}

#[derive(Debug, Clone, Default)]
struct Knobs {
    /// Hostname whose etcd logs slow fdatasync warnings.
    slow_disk: Option<String>,
    /// Hostnames that log nothing (down).
    down: Vec<String>,
}

/// Deterministic k3s / etcd / kernel lines per host: a line every few seconds per stream, about
/// one in eight of them an error, failure or (rarely) a panic.
pub struct LogGenerator {
    hosts: Vec<LogHost>,
    knobs: RwLock<Knobs>,
}

impl std::fmt::Debug for LogGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGenerator")
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

const K3S_LINES: &[&str] = &[
    "level=info msg=\"Tunnel server egress proxy mode: agent\"",
    "I1126 {hms}.000000    {pid} event.go:389] \"Event occurred\" object=\"kube-system/coredns\" reason=\"ScalingReplicaSet\"",
    "level=info msg=\"Connecting to proxy\" url=\"wss://127.0.0.1:6443/v1-k3s/connect\"",
    "I1126 {hms}.000000    {pid} controller.go:615] quota admission added evaluator for: leases.coordination.k8s.io",
    "level=info msg=\"Reconciling bootstrap data between datastore and disk\"",
    "I1126 {hms}.000000    {pid} kubelet.go:2421] \"SyncLoop UPDATE\" source=\"api\" pods=[\"longhorn-system/instance-manager\"]",
    "level=warning msg=\"Proxy error: write failed: io: read/write on closed pipe\"",
    "E1126 {hms}.000000    {pid} pod_workers.go:1298] \"Error syncing pod, skipping\" err=\"failed to \\\"StartContainer\\\" with CrashLoopBackOff\"",
];
const ETCD_LINES: &[&str] = &[
    "{\"level\":\"info\",\"msg\":\"saved snapshot\",\"snapshot-index\":{n}}",
    "{\"level\":\"info\",\"msg\":\"compacted raft logs\",\"index\":{n}}",
    "{\"level\":\"info\",\"msg\":\"finished scheduled compaction\",\"compact-revision\":{n}}",
    "{\"level\":\"warn\",\"msg\":\"apply request took too long\",\"took\":\"112ms\",\"expected-duration\":\"100ms\"}",
    "{\"level\":\"info\",\"msg\":\"store.index: compact {n}\"}",
    "{\"level\":\"error\",\"msg\":\"failed to send out heartbeat on time\",\"heartbeat-interval\":\"100ms\"}",
];
const KERNEL_LINES: &[&str] = &[
    "kernel: eth0: Link is Up - 1Gbps/Full - flow control rx/tx",
    "kernel: EXT4-fs (sda2): mounted filesystem with ordered data mode",
    "kernel: cni0: port 2(veth{n}) entered forwarding state",
    "kernel: nf_conntrack: default automatic helper assignment has been turned off",
    "kernel: usb 1-1: new high-speed USB device number {n} using xhci_hcd",
    "kernel: ata1.00: failed command: READ FPDMA QUEUED",
    "kernel: I/O error, dev sda, sector {n} op 0x0:(READ)",
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl LogGenerator {
    pub fn new(hosts: Vec<LogHost>) -> Self {
        Self {
            hosts,
            knobs: RwLock::new(Knobs::default()),
        }
    }

    /// The hosts of an inventory.
    pub fn from_inventory(inv: &crate::inventory::Inventory) -> Self {
        Self::new(
            inv.hosts
                .iter()
                .map(|h| LogHost {
                    hostname: h.hostname.clone(),
                    control_plane: h.role.is_control_plane(),
                })
                .collect(),
        )
    }

    /// One member's etcd complains about slow fdatasync (matches the metrics' slow-disk knob).
    pub fn set_slow_disk(&self, hostname: Option<String>) {
        if let Ok(mut k) = self.knobs.write() {
            k.slow_disk = hostname;
        }
    }

    /// A host that is down logs nothing.
    pub fn set_down(&self, hostname: &str, down: bool) {
        if let Ok(mut k) = self.knobs.write() {
            k.down.retain(|h| h != hostname);
            if down {
                k.down.push(hostname.to_string());
            }
        }
    }

    fn stream(host: &str, unit: &str, job: &str) -> Labels {
        [
            ("host", host),
            ("job", job),
            ("unit", unit),
            ("service_name", unit.trim_end_matches(".service")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl LogSource for LogGenerator {
    fn streams(&self) -> Vec<Labels> {
        let mut out = Vec::new();
        for h in &self.hosts {
            out.push(Self::stream(&h.hostname, "k3s.service", "systemd-journal"));
            out.push(Self::stream(&h.hostname, "kernel", "systemd-journal"));
            if h.control_plane {
                out.push(Self::stream(&h.hostname, "etcd", "systemd-journal"));
            }
        }
        out
    }

    fn lines(&self, stream: &Labels, start_ns: i128, end_ns: i128) -> Vec<(i128, String)> {
        let host = stream.get("host").map(String::as_str).unwrap_or("");
        let unit = stream.get("unit").map(String::as_str).unwrap_or("");
        let knobs = self.knobs.read().map(|k| k.clone()).unwrap_or_default();
        if knobs.down.iter().any(|d| d == host) {
            return Vec::new();
        }
        let (period_s, templates): (i128, &[&str]) = match unit {
            "k3s.service" => (7, K3S_LINES),
            "etcd" => (11, ETCD_LINES),
            _ => (23, KERNEL_LINES),
        };
        let slow = knobs.slow_disk.as_deref() == Some(host) && unit == "etcd";
        let seed = hash_str(host) ^ hash_str(unit);
        let period = period_s * 1_000_000_000;
        let offset = (seed % 1_000_000_000) as i128;
        let mut k = (start_ns - offset).div_euclid(period);
        let mut out = Vec::new();
        loop {
            let t = k * period + offset;
            if t > end_ns {
                break;
            }
            if t >= start_ns {
                let r = mix(seed ^ k as u64);
                // Mostly the first (benign) templates; errors less often.
                let n = templates.len() as u64;
                let idx = if r.is_multiple_of(8) {
                    (n - 1 - (r >> 8) % 2) as usize
                } else {
                    ((r >> 8) % (n - 2)) as usize
                };
                let secs = (t / 1_000_000_000) as i64;
                let hms = jiff::Timestamp::from_second(secs)
                    .map(|ts| ts.strftime("%H:%M:%S").to_string())
                    .unwrap_or_default();
                let mut line = templates[idx]
                    .replace("{hms}", &hms)
                    .replace("{pid}", &(1000 + seed % 9000).to_string())
                    .replace("{n}", &(k.rem_euclid(1_000_000)).to_string());
                if slow && r.is_multiple_of(2) {
                    line = "{\"level\":\"warn\",\"msg\":\"slow fdatasync\",\"took\":\"1.2s\",\"expected-duration\":\"1s\"}".to_string();
                }
                if unit == "kernel" && r.is_multiple_of(997) {
                    line =
                        "kernel: Kernel panic - not syncing: Fatal exception in interrupt".into();
                }
                out.push((t, line));
            }
            k += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logql_subset() {
        let q =
            parse_logql(r#"{host="node1", unit=~"k3s.*"} |~ "(?i)(error|fail|panic)" != "debug""#)
                .unwrap();
        let l: Labels = [("host", "node1"), ("unit", "k3s.service")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(q.matches_stream(&l));
        assert!(q.matches_line("E1126 Error syncing pod"));
        assert!(!q.matches_line("all good"));
        assert!(!q.matches_line("debug: failed"));
        assert!(parse_logql(r#"{host!="x"}"#).is_err());
        assert!(parse_logql(r#"rate({host="x"}[5m])"#).is_err());
        assert!(parse_logql(r#"{host="x"} | json"#).is_err());
        let q = parse_logql(r#"{host=~"node[12]"} |= `fail` !~ "heartbeat""#).unwrap();
        assert!(q.matches_line("failed command"));
        assert!(!q.matches_line("failed to send out heartbeat"));
    }

    #[test]
    fn generated_lines_are_deterministic_and_in_window() {
        let g = LogGenerator::new(vec![LogHost {
            hostname: "node1".into(),
            control_plane: true,
        }]);
        let s = g.streams();
        assert_eq!(s.len(), 3);
        let a = g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000);
        let b = g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000);
        assert_eq!(a, b);
        assert!(a.len() >= 80 && a.len() <= 90, "{}", a.len());
        assert!(a.iter().any(|(_, l)| l.to_lowercase().contains("fail")));
        g.set_down("node1", true);
        assert!(
            g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000)
                .is_empty()
        );
    }
}
