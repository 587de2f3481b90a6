//! Metrics (Mimir, Prometheus API) and logs (Loki) as plain data: what the Metrics and Logs panes
//! draw and what `assess` reads. No I/O here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One sample: unix time in seconds and a value.
pub type Point = (i64, f64);

/// A per-host metric with its recent history (for a sparkline) and its current value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// The value at the time of the last refresh; `None` = no data now (target down, no series).
    pub current: Option<f64>,
    /// The last 30 minutes at 30 s steps, oldest first. Gaps are simply missing points.
    pub points: Vec<Point>,
}

impl MetricSeries {
    /// No current value: the pane shows "no data".
    pub fn is_no_data(&self) -> bool {
        self.current.is_none()
    }
}

/// What the Metrics pane shows for one inventory host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// CPU busy, percent of all cores.
    pub cpu_pct: MetricSeries,
    /// Memory used (total − available), percent.
    pub memory_pct: MetricSeries,
    /// Root filesystem used, percent.
    pub root_fs_pct: MetricSeries,
    /// Network receive, bytes per second (all physical interfaces).
    pub net_rx_bps: MetricSeries,
    /// Network transmit, bytes per second.
    pub net_tx_bps: MetricSeries,
}

impl HostMetrics {
    /// True when no metric of this host has a current value.
    pub fn is_no_data(&self) -> bool {
        self.cpu_pct.is_no_data()
            && self.memory_pct.is_no_data()
            && self.root_fs_pct.is_no_data()
            && self.net_rx_bps.is_no_data()
            && self.net_tx_bps.is_no_data()
    }
}

/// etcd health from metrics, per member (keyed by the member's `instance`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdMemberMetrics {
    /// The series' host label value (e.g. `10.0.0.11:2381`).
    pub instance: String,
    /// The inventory host id it maps to, when it does.
    pub host: Option<String>,
    pub wal_fsync_p99_ms: Option<f64>,
    pub backend_commit_p99_ms: Option<f64>,
    pub has_leader: Option<bool>,
    pub db_size_bytes: Option<f64>,
    pub quota_bytes: Option<f64>,
    /// Leader changes seen in the last 15 minutes.
    pub leader_changes: Option<f64>,
}

/// A firing alert (`ALERTS{alertstate="firing"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub name: String,
    /// The `severity` label, lower-cased; empty when the rule sets none.
    pub severity: String,
    /// The inventory host id it maps to, when it does.
    pub host: Option<String>,
    /// All labels but `__name__`, `alertname`, `alertstate`.
    pub labels: BTreeMap<String, String>,
    /// Silenced or inhibited in Alertmanager (only known with `[alertmanager] url`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silenced: bool,
}

/// Everything one Mimir refresh produced.
/// The key of [`MetricsState::query_errors`] that says why Alertmanager (`[alertmanager]`,
/// the alert list's source when set) could not be read: `unreachable since HH:MM:SS: …`.
pub const ALERTMANAGER_ERROR: &str = "alertmanager";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsState {
    /// Per inventory host id; every inventory host has an entry (maybe all "no data").
    pub hosts: BTreeMap<String, HostMetrics>,
    /// Per etcd member instance.
    pub etcd: BTreeMap<String, EtcdMemberMetrics>,
    pub alerts: Vec<Alert>,
    /// Label values seen that match no inventory host (for a hint in the pane).
    pub unmapped: Vec<String>,
    /// Queries that failed this round while others worked: query name → message.
    pub query_errors: BTreeMap<String, String>,
    /// Since when (unix seconds) each query of [`MetricsState::query_errors`] has been
    /// failing, across refreshes (Alertmanager's entry says it in its message).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_failing_since: BTreeMap<String, i64>,
    /// Evaluation time of this refresh (unix seconds).
    pub at: i64,
}

impl MetricsState {
    /// The same reading as `other` but for when it was taken: every figure equal, each series'
    /// points the same values the same time before their reading. What the panes draw and
    /// what `assess` reads are then the same.
    /// Figures are equal when they differ by no more than rounding (a rate over another
    /// window of a straight counter).
    pub fn same_reading(&self, other: &MetricsState) -> bool {
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        let opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => close(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let series = |a: &MetricSeries, b: &MetricSeries| {
            opt(a.current, b.current)
                && a.points.len() == b.points.len()
                && a.points
                    .iter()
                    .zip(&b.points)
                    .all(|(p, q)| self.at - p.0 == other.at - q.0 && close(p.1, q.1))
        };
        let member = |a: &EtcdMemberMetrics, b: &EtcdMemberMetrics| {
            a.instance == b.instance
                && a.host == b.host
                && a.has_leader == b.has_leader
                && opt(a.wal_fsync_p99_ms, b.wal_fsync_p99_ms)
                && opt(a.backend_commit_p99_ms, b.backend_commit_p99_ms)
                && opt(a.db_size_bytes, b.db_size_bytes)
                && opt(a.quota_bytes, b.quota_bytes)
                && opt(a.leader_changes, b.leader_changes)
        };
        let host = |a: &HostMetrics, b: &HostMetrics| {
            series(&a.cpu_pct, &b.cpu_pct)
                && series(&a.memory_pct, &b.memory_pct)
                && series(&a.root_fs_pct, &b.root_fs_pct)
                && series(&a.net_rx_bps, &b.net_rx_bps)
                && series(&a.net_tx_bps, &b.net_tx_bps)
        };
        self.etcd.len() == other.etcd.len()
            && self
                .etcd
                .iter()
                .zip(&other.etcd)
                .all(|((i, a), (j, b))| i == j && member(a, b))
            && self.alerts == other.alerts
            && self.unmapped == other.unmapped
            && self.query_errors == other.query_errors
            && self.query_failing_since == other.query_failing_since
            && self.hosts.len() == other.hosts.len()
            && self
                .hosts
                .iter()
                .zip(&other.hosts)
                .all(|((i, a), (j, b))| i == j && host(a, b))
    }

    /// The queries that failed this round while others worked, with since when (unix
    /// seconds, this round's time when unknown) and why; Alertmanager's entry left out (it
    /// is a source of its own).
    pub fn failing_queries(&self) -> impl Iterator<Item = (&str, i64, &str)> + '_ {
        self.query_errors
            .iter()
            .filter(|(name, _)| name.as_str() != ALERTMANAGER_ERROR)
            .map(|(name, msg)| {
                let since = self
                    .query_failing_since
                    .get(name)
                    .copied()
                    .unwrap_or(self.at);
                (name.as_str(), since, msg.as_str())
            })
    }

    pub fn host(&self, id: &str) -> Option<&HostMetrics> {
        self.hosts.get(id)
    }

    /// The etcd metrics of the member at `ip` (the `instance` label with its port stripped).
    pub fn etcd_at(&self, ip: &str) -> Option<&EtcdMemberMetrics> {
        self.etcd.values().find(|m| {
            let inst = m.instance.trim_start_matches('[');
            let host = match inst.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.trim_end_matches(']'),
                _ => inst,
            };
            host == ip
        })
    }

    /// Fill what the etcd gateway cannot tell (fsync/commit p99, leader changes) into its
    /// members, matched by the address of their first client URL. Values already there stay.
    pub fn fill_etcd(&self, etcd: &mut crate::model::etcd::EtcdState) {
        for m in &mut etcd.members {
            let Some(ip) = m.client_urls.first().and_then(|u| url_host(u)) else {
                continue;
            };
            let Some(x) = self.etcd_at(ip) else { continue };
            m.wal_fsync_p99_ms = m.wal_fsync_p99_ms.or(x.wal_fsync_p99_ms);
            m.backend_commit_p99_ms = m.backend_commit_p99_ms.or(x.backend_commit_p99_ms);
            m.leader_changes = m
                .leader_changes
                .or(x.leader_changes.map(|v| v.round().max(0.0) as u64));
        }
    }
}

/// `https://10.0.0.1:2379` → `10.0.0.1`; `http://[fe80::1]:2379` → `fe80::1`.
fn url_host(u: &str) -> Option<&str> {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let authority = rest.split('/').next()?;
    if let Some(r) = authority.strip_prefix('[') {
        return r.split(']').next();
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// How bad a log line looks, guessed from its text (for the level colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Unknown,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// Guess the level of a line: `level=error`, `"level":"warn"`, `E1126 …` (klog), `panic`, …
    pub fn guess(line: &str) -> LogLevel {
        let lower = line.to_ascii_lowercase();
        for (key, lvl) in [
            ("level=", 6usize),
            ("\"level\":\"", 9),
            ("lvl=", 4),
            ("severity=", 9),
        ] {
            if let Some(i) = lower.find(key) {
                let rest = lower[i + lvl..].trim_start_matches('"');
                if let Some(l) = Self::from_word(rest) {
                    return l;
                }
            }
        }
        // klog: `E1126 12:00:00.000000 …`
        let b = line.as_bytes();
        if b.len() > 5 && b[1..5].iter().all(u8::is_ascii_digit) {
            match b[0] {
                b'F' => return LogLevel::Critical,
                b'E' => return LogLevel::Error,
                b'W' => return LogLevel::Warning,
                b'I' => return LogLevel::Info,
                _ => {}
            }
        }
        if lower.contains("panic") || lower.contains("fatal") {
            LogLevel::Critical
        } else if lower.contains("error") || lower.contains("fail") {
            LogLevel::Error
        } else if lower.contains("warn") {
            LogLevel::Warning
        } else {
            LogLevel::Unknown
        }
    }

    fn from_word(w: &str) -> Option<LogLevel> {
        let word: String = w.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        Some(match word.as_str() {
            "debug" | "trace" => LogLevel::Debug,
            "info" | "notice" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warning,
            "error" | "err" => LogLevel::Error,
            "fatal" | "panic" | "critical" | "crit" | "emerg" | "alert" => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// One log line from Loki.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Nanoseconds since the epoch, as Loki sends them.
    pub ts_ns: i128,
    pub line: String,
    pub level: LogLevel,
    /// The stream's labels (shared by the lines of one stream).
    pub labels: Arc<BTreeMap<String, String>>,
}

impl LogLine {
    pub fn timestamp(&self) -> Option<Timestamp> {
        Timestamp::from_nanosecond(self.ts_ns).ok()
    }
}

/// The recent matching lines of one host, newest first, at most `cap` of them. Shared: the
/// Loki source keeps the state it sends, so the app's copy and the source's are one until a
/// host has new lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLogs {
    pub lines: Arc<VecDeque<LogLine>>,
    pub cap: usize,
}

impl HostLogs {
    pub fn new(cap: usize) -> Self {
        Self {
            lines: Arc::default(),
            cap,
        }
    }

    /// Merge lines (any order) into the newest-first list: duplicates (same timestamp and text)
    /// are skipped and the oldest lines beyond the cap are dropped.
    /// No new lines: nothing changes (the shared list is not copied).
    pub fn merge(&mut self, mut new: Vec<LogLine>) {
        if new.is_empty() && self.lines.len() <= self.cap {
            return;
        }
        new.sort_by_key(|l| std::cmp::Reverse(l.ts_ns));
        let mut merged: VecDeque<LogLine> =
            VecDeque::with_capacity((self.lines.len() + new.len()).min(self.cap));
        // The old lines, moved when nobody else holds them, else copied.
        let old = Arc::try_unwrap(std::mem::take(&mut self.lines)).unwrap_or_else(|a| (*a).clone());
        let mut old = old.into_iter().peekable();
        let mut new = new.into_iter().peekable();
        while merged.len() < self.cap {
            let take_new = match (new.peek(), old.peek()) {
                (Some(n), Some(o)) => n.ts_ns >= o.ts_ns,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_new { new.next() } else { old.next() };
            let Some(next) = next else { break };
            let dup = merged
                .iter()
                .rev()
                .take_while(|l| l.ts_ns == next.ts_ns)
                .any(|l| l.line == next.line && l.labels == next.labels);
            if !dup {
                merged.push_back(next);
            }
        }
        self.lines = Arc::new(merged);
    }
}

/// Everything the Loki source knows: recent lines per inventory host id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogsState {
    pub hosts: BTreeMap<String, HostLogs>,
    /// Hosts whose last query failed while others worked: host id → message.
    pub errors: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: i128, text: &str) -> LogLine {
        LogLine {
            ts_ns: ts,
            line: text.into(),
            level: LogLevel::guess(text),
            labels: Arc::new(BTreeMap::new()),
        }
    }

    #[test]
    fn merge_keeps_newest_first_dedups_and_caps() {
        let mut h = HostLogs::new(3);
        h.merge(vec![line(1, "a"), line(3, "c"), line(2, "b")]);
        assert_eq!(
            h.lines.iter().map(|l| l.ts_ns).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        h.merge(vec![line(3, "c"), line(4, "d")]);
        assert_eq!(
            h.lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            vec!["d", "c", "b"]
        );
    }

    #[test]
    fn a_sent_copy_shares_the_lines_until_new_ones_come() {
        let mut h = HostLogs::new(3);
        h.merge(vec![line(1, "a"), line(2, "b")]);
        let sent = h.clone();
        h.merge(Vec::new());
        assert!(
            Arc::ptr_eq(&h.lines, &sent.lines),
            "nothing new copied the lines"
        );
        h.merge(vec![line(3, "c")]);
        assert!(!Arc::ptr_eq(&h.lines, &sent.lines));
        let texts = |h: &HostLogs| h.lines.iter().map(|l| l.line.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&sent), ["b", "a"], "the sent copy is left as it was");
        assert_eq!(texts(&h), ["c", "b", "a"]);
    }

    #[test]
    fn fills_etcd_members_from_metrics() {
        let mut st = MetricsState::default();
        st.etcd.insert(
            "10.0.0.2:2381".into(),
            EtcdMemberMetrics {
                instance: "10.0.0.2:2381".into(),
                wal_fsync_p99_ms: Some(80.0),
                leader_changes: Some(2.0),
                ..Default::default()
            },
        );
        let mut e = crate::model::etcd::EtcdState::default();
        for ip in ["10.0.0.1", "10.0.0.2"] {
            e.members.push(crate::model::etcd::EtcdMember {
                client_urls: vec![format!("https://{ip}:2379")],
                ..Default::default()
            });
        }
        st.fill_etcd(&mut e);
        assert_eq!(e.members[0].wal_fsync_p99_ms, None);
        assert_eq!(e.members[1].wal_fsync_p99_ms, Some(80.0));
        assert_eq!(e.members[1].leader_changes, Some(2));
    }

    #[test]
    fn guesses_levels() {
        assert_eq!(
            LogLevel::guess("time=x level=error msg=boom"),
            LogLevel::Error
        );
        assert_eq!(
            LogLevel::guess(r#"{"level":"warn","msg":"slow fdatasync"}"#),
            LogLevel::Warning
        );
        assert_eq!(
            LogLevel::guess("E1126 12:00:00.000000 1 x.go:1] failed"),
            LogLevel::Error
        );
        assert_eq!(
            LogLevel::guess("kernel: BUG: panic in xyz"),
            LogLevel::Critical
        );
        assert_eq!(LogLevel::guess("all good"), LogLevel::Unknown);
    }
}
