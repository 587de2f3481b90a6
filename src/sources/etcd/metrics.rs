//! etcd's Prometheus metrics: parse the few series etcd health needs from the text exposition
//! format, and turn histograms into quantiles over the bucket deltas between two scrapes.
//!
//! The computation ([`histogram_quantile`], [`MemberHistory::observe`]) is separate from the
//! scraping so the figures can come from a member's `/metrics` endpoint or from Mimir alike:
//! whoever has the data fills a [`DiskMetrics`] and calls [`DiskMetrics::apply`].
//!
//! The parser is hand-written on purpose: it reads only sample lines of six metric families
//! (no need for a general exposition-format library and its regex/chrono dependencies), and
//! handles quoted label values with escapes, `+Inf`/`NaN` values and optional timestamps.

use std::collections::VecDeque;

use jiff::Timestamp;

use crate::model::etcd::EtcdMember;

pub const WAL_FSYNC: &str = "etcd_disk_wal_fsync_duration_seconds";
pub const BACKEND_COMMIT: &str = "etcd_disk_backend_commit_duration_seconds";
pub const HAS_LEADER: &str = "etcd_server_has_leader";
pub const DB_TOTAL_SIZE: &str = "etcd_mvcc_db_total_size_in_bytes";
pub const QUOTA_BACKEND: &str = "etcd_server_quota_backend_bytes";
pub const LEADER_CHANGES: &str = "etcd_server_leader_changes_seen_total";
pub const SERVER_ID: &str = "etcd_server_id";
pub const PROCESS_START: &str = "process_start_time_seconds";

/// A cumulative histogram: `(upper bound "le", cumulative count)`, sorted by bound, `+Inf` last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    fn add(&mut self, le: f64, count: f64) {
        match self.buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => self.buckets.push((le, count)),
        }
    }

    fn sort(&mut self) {
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// Observations in the histogram (the `+Inf` bucket).
    pub fn total(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, c)| *c)
    }

    /// The histogram of what happened between `prev` and `self`: bucket-wise differences.
    /// `None` when the buckets differ or a count went down (the member restarted): then the
    /// current histogram on its own is all there is.
    pub fn delta(&self, prev: &Histogram) -> Option<Histogram> {
        if self.buckets.len() != prev.buckets.len() {
            return None;
        }
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for ((le, c), (ple, pc)) in self.buckets.iter().zip(&prev.buckets) {
            if le != ple || c < pc {
                return None;
            }
            buckets.push((*le, c - pc));
        }
        Some(Histogram { buckets })
    }

    /// The q-quantile in the histogram's unit, as Prometheus' `histogram_quantile` computes it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        histogram_quantile(q, &self.buckets)
    }
}

/// The q-quantile (0 ≤ q ≤ 1) of a cumulative histogram given as `(le, cumulative count)` sorted
/// by `le` with `+Inf` last, interpolating linearly inside the bucket, as Prometheus does.
/// `None` without observations, without a `+Inf` bucket, or for q outside [0, 1].
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) || buckets.len() < 2 {
        return None;
    }
    let &(last_le, total) = buckets.last()?;
    if last_le != f64::INFINITY || total.is_nan() || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    // Counts may be non-monotonic from scrape races; treat them as at least the previous.
    for (i, &(le, raw)) in buckets.iter().enumerate() {
        let count = raw.max(prev_count);
        if count >= rank {
            if le == f64::INFINITY {
                // Above the highest finite bound: that bound is the best we can say.
                return Some(buckets[i.saturating_sub(1)].0);
            }
            if i == 0 && le <= 0.0 {
                return Some(le);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev_le + (le - prev_le) * (rank - prev_count) / in_bucket);
        }
        prev_le = le;
        prev_count = count;
    }
    None
}

/// One scrape of a member's `/metrics`, reduced to what etcd health needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub has_leader: Option<bool>,
    pub db_total_size: Option<u64>,
    pub quota_backend: Option<u64>,
    pub leader_changes_total: Option<u64>,
    /// The member id the endpoint belongs to (`etcd_server_id{server_id="<hex>"}`).
    pub member_id: Option<u64>,
    /// When the etcd process started (unix seconds).
    pub process_start: Option<f64>,
}

/// Parse the Prometheus text exposition format, keeping only the series of [`Scrape`].
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(sample) = parse_line(line) else {
            continue;
        };
        let bucket_of = |family: &str| {
            sample
                .name
                .strip_prefix(family)
                .is_some_and(|rest| rest == "_bucket")
        };
        let le = || {
            sample
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .and_then(|(_, v)| parse_float(v))
        };
        if bucket_of(WAL_FSYNC) {
            if let Some(le) = le() {
                s.wal_fsync.add(le, sample.value);
            }
        } else if bucket_of(BACKEND_COMMIT) {
            if let Some(le) = le() {
                s.backend_commit.add(le, sample.value);
            }
        } else {
            match sample.name {
                HAS_LEADER => s.has_leader = Some(sample.value >= 1.0),
                DB_TOTAL_SIZE => s.db_total_size = as_u64(sample.value),
                QUOTA_BACKEND => s.quota_backend = as_u64(sample.value),
                LEADER_CHANGES => s.leader_changes_total = as_u64(sample.value),
                PROCESS_START => s.process_start = Some(sample.value),
                SERVER_ID if sample.value >= 1.0 => {
                    s.member_id = sample
                        .labels
                        .iter()
                        .find(|(k, _)| k == "server_id")
                        .and_then(|(_, v)| u64::from_str_radix(v, 16).ok());
                }
                _ => {}
            }
        }
    }
    s.wal_fsync.sort();
    s.backend_commit.sort();
    s
}

fn as_u64(v: f64) -> Option<u64> {
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

/// `name{k="v",...} value [timestamp]`.
fn parse_line(line: &str) -> Option<Sample<'_>> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let value = parse_float(rest.split_whitespace().next()?)?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Labels after the opening `{`, up to and including the closing `}`; returns the rest.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// Disk and leader figures of one member, whichever source they come from (the member's own
/// metrics endpoint, or Mimir).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskMetrics {
    pub wal_fsync_p99_ms: Option<f64>,
    pub backend_commit_p99_ms: Option<f64>,
    pub has_leader: Option<bool>,
    pub db_size_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    /// Leader changes within the window.
    pub leader_changes: Option<u64>,
}

impl DiskMetrics {
    /// Put the figures into a member; what the gateway already said (DB size, has leader) is
    /// kept.
    pub fn apply(&self, m: &mut EtcdMember) {
        m.wal_fsync_p99_ms = self.wal_fsync_p99_ms;
        m.backend_commit_p99_ms = self.backend_commit_p99_ms;
        if m.has_leader.is_none() {
            m.has_leader = self.has_leader;
        }
        if m.db_size_bytes.is_none() {
            m.db_size_bytes = self.db_size_bytes;
        }
        if self.quota_bytes.is_some() {
            m.quota_bytes = self.quota_bytes;
        }
        m.leader_changes = self.leader_changes;
    }
}

/// What we remember of one member's metrics between scrapes.
#[derive(Debug, Clone, Default)]
pub struct MemberHistory {
    prev: Option<Scrape>,
    /// `(when, etcd_server_leader_changes_seen_total)`, oldest first, within the window.
    leader_changes: VecDeque<(Timestamp, u64)>,
}

impl MemberHistory {
    /// Take a new scrape: p99s over the bucket deltas since the previous scrape (over the whole
    /// life of the member when there is no usable previous scrape or nothing happened since),
    /// leader changes within `window_secs`.
    pub fn observe(&mut self, scrape: Scrape, now: Timestamp, window_secs: i64) -> DiskMetrics {
        let p99_ms = |cur: &Histogram, prev: Option<&Histogram>| {
            let delta = prev.and_then(|p| cur.delta(p)).filter(|d| d.total() > 0.0);
            delta
                .as_ref()
                .unwrap_or(cur)
                .quantile(0.99)
                .map(|s| s * 1000.0)
                // A bucket bound of -Inf or NaN interpolates to nonsense: unknown, not a figure.
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
        };
        let prev = self.prev.as_ref();
        let wal = p99_ms(&scrape.wal_fsync, prev.map(|p| &p.wal_fsync));
        let commit = p99_ms(&scrape.backend_commit, prev.map(|p| &p.backend_commit));

        let leader_changes = scrape.leader_changes_total.and_then(|total| {
            // A member (re)started: its counter starts again.
            if self
                .leader_changes
                .back()
                .is_some_and(|&(_, last)| total < last)
                || self.prev.as_ref().map(|p| p.process_start) != Some(scrape.process_start)
            {
                self.leader_changes.clear();
            }
            self.leader_changes.push_back((now, total));
            while self
                .leader_changes
                .front()
                .is_some_and(|&(t, _)| now.as_second() - t.as_second() > window_secs)
            {
                self.leader_changes.pop_front();
            }
            let started_in_window = scrape
                .process_start
                .is_some_and(|s| now.as_second() as f64 - s <= window_secs as f64);
            if started_in_window {
                // Every change the process ever saw happened within the window.
                Some(total)
            } else {
                let &(first_t, first) = self.leader_changes.front()?;
                (first_t != now || self.leader_changes.len() > 1).then(|| total - first)
            }
        });

        let out = DiskMetrics {
            wal_fsync_p99_ms: wal,
            backend_commit_p99_ms: commit,
            has_leader: scrape.has_leader,
            db_size_bytes: scrape.db_total_size,
            quota_bytes: scrape.quota_backend,
            leader_changes,
        };
        self.prev = Some(scrape);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 7
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 7
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.004"} 8
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 8
etcd_disk_wal_fsync_duration_seconds_sum 0.004963084
etcd_disk_wal_fsync_duration_seconds_count 8
etcd_disk_backend_commit_duration_seconds_bucket{le="0.001"} 6
etcd_disk_backend_commit_duration_seconds_bucket{le="0.002"} 7
etcd_disk_backend_commit_duration_seconds_bucket{le="+Inf"} 7
etcd_debugging_disk_backend_commit_write_duration_seconds_bucket{le="0.001"} 99
etcd_debugging_mvcc_db_total_size_in_bytes 1
etcd_mvcc_db_total_size_in_bytes 20480
etcd_server_has_leader 1
etcd_server_id{server_id="323a8badd0d44087"} 1
etcd_server_leader_changes_seen_total 1
etcd_server_quota_backend_bytes 2.147483648e+09
process_start_time_seconds 1.79570087762e+09
weird{a="x,}\"y",le="0.1"} 5 1700000000000
"#;

    #[test]
    fn parses_the_series_etcd_health_needs() {
        let s = parse(SAMPLE);
        assert_eq!(
            s.wal_fsync.buckets,
            vec![
                (0.001, 7.0),
                (0.002, 7.0),
                (0.004, 8.0),
                (f64::INFINITY, 8.0)
            ]
        );
        assert_eq!(
            s.backend_commit.buckets,
            vec![(0.001, 6.0), (0.002, 7.0), (f64::INFINITY, 7.0)]
        );
        assert_eq!(s.has_leader, Some(true));
        assert_eq!(s.db_total_size, Some(20480));
        assert_eq!(s.quota_backend, Some(2_147_483_648));
        assert_eq!(s.leader_changes_total, Some(1));
        assert_eq!(s.member_id, Some(0x323a8badd0d44087));
        assert_eq!(s.process_start, Some(1.79570087762e9));
    }

    #[test]
    fn labels_with_escapes() {
        let l = parse_line(r#"m{a="x,}\"y\\",b="\n"} 5 1700000000000"#).unwrap();
        assert_eq!(l.name, "m");
        assert_eq!(
            l.labels,
            vec![
                ("a".to_string(), "x,}\"y\\".to_string()),
                ("b".to_string(), "\n".to_string())
            ]
        );
        assert_eq!(l.value, 5.0);
        assert!(parse_line("m{a=\"unterminated} 1").is_none());
        assert!(parse_line("m").is_none());
        assert!(parse_line("m NaN").unwrap().value.is_nan());
    }

    #[test]
    fn quantiles_like_prometheus() {
        const INF: f64 = f64::INFINITY;
        type Case = (&'static str, f64, &'static [(f64, f64)], Option<f64>);
        let cases: &[Case] = &[
            ("empty", 0.99, &[(0.1, 0.0), (INF, 0.0)], None),
            ("no +Inf bucket", 0.5, &[(0.1, 1.0), (0.2, 2.0)], None),
            ("q out of range", 1.5, &[(0.1, 1.0), (INF, 1.0)], None),
            // 100 observations, all in (0, 0.001]: p99 interpolates to 0.00099.
            (
                "first bucket",
                0.99,
                &[(0.001, 100.0), (0.002, 100.0), (INF, 100.0)],
                Some(0.00099),
            ),
            // 90 in the first, 10 in (0.001, 0.002]: rank 99 is 9/10 into the second.
            (
                "second bucket",
                0.99,
                &[(0.001, 90.0), (0.002, 100.0), (INF, 100.0)],
                Some(0.0019),
            ),
            (
                "median",
                0.5,
                &[(1.0, 50.0), (2.0, 100.0), (INF, 100.0)],
                Some(1.0),
            ),
            // Above the highest finite bound: that bound.
            (
                "in +Inf",
                0.99,
                &[(0.001, 10.0), (8.192, 50.0), (INF, 100.0)],
                Some(8.192),
            ),
            // Non-monotonic counts are clamped.
            (
                "non-monotonic",
                0.5,
                &[(1.0, 10.0), (2.0, 5.0), (INF, 10.0)],
                Some(0.5),
            ),
        ];
        for (name, q, buckets, want) in cases {
            let got = histogram_quantile(*q, buckets);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{name}: {g} != {w}"),
                _ => assert_eq!(got, *want, "{name}"),
            }
        }
    }

    fn hist(counts: &[f64]) -> Histogram {
        let les = [0.001, 0.01, 0.1, f64::INFINITY];
        Histogram {
            buckets: les.iter().copied().zip(counts.iter().copied()).collect(),
        }
    }

    #[test]
    fn deltas_between_scrapes() {
        let a = hist(&[100.0, 100.0, 100.0, 100.0]);
        let b = hist(&[100.0, 100.0, 110.0, 110.0]);
        let d = b.delta(&a).unwrap();
        assert_eq!(d.buckets[2], (0.1, 10.0));
        assert_eq!(d.total(), 10.0);
        // Over the life of the member the p99 is in the first bucket... over the last
        // interval, all 10 observations were slow.
        assert!(b.quantile(0.99).unwrap() > 0.01);
        assert!((d.quantile(0.99).unwrap() - 0.0991).abs() < 1e-9);
        // A restart (counts went down) or different buckets: no delta.
        assert!(a.delta(&b).is_none());
        assert!(hist(&[1.0, 1.0]).delta(&a).is_none());
    }

    fn scrape(fsync: &[f64], changes: u64, start: f64) -> Scrape {
        Scrape {
            wal_fsync: hist(fsync),
            backend_commit: hist(&[0.0, 0.0, 0.0, 0.0]),
            has_leader: Some(true),
            db_total_size: Some(4096),
            quota_backend: Some(8192),
            leader_changes_total: Some(changes),
            member_id: Some(1),
            process_start: Some(start),
        }
    }

    #[test]
    fn history_uses_deltas_and_windows_leader_changes() {
        let t = |s: i64| Timestamp::from_second(1_000_000 + s).unwrap();
        let window = 900;
        let start = 0.0; // long before the window
        let mut h = MemberHistory::default();

        // First scrape: lifetime histogram; leader changes unknown (one sample, old process).
        let m = h.observe(
            scrape(&[100.0, 100.0, 100.0, 100.0], 3, start),
            t(0),
            window,
        );
        assert!((m.wal_fsync_p99_ms.unwrap() - 0.99).abs() < 1e-9);
        assert_eq!(m.backend_commit_p99_ms, None);
        assert_eq!(m.leader_changes, None);
        assert_eq!((m.db_size_bytes, m.quota_bytes), (Some(4096), Some(8192)));

        // 10 slow fsyncs since: the delta shows them.
        let m = h.observe(
            scrape(&[100.0, 100.0, 110.0, 110.0], 5, start),
            t(10),
            window,
        );
        assert!((m.wal_fsync_p99_ms.unwrap() - 99.1).abs() < 1e-6);
        assert_eq!(m.leader_changes, Some(2));

        // Nothing happened since: back to the lifetime figure rather than nothing.
        let m = h.observe(
            scrape(&[100.0, 100.0, 110.0, 110.0], 6, start),
            t(500),
            window,
        );
        assert!(m.wal_fsync_p99_ms.unwrap() > 10.0);
        assert_eq!(m.leader_changes, Some(3));

        // The samples at t=0 and t=10 left the window.
        let m = h.observe(
            scrape(&[100.0, 100.0, 110.0, 110.0], 6, start),
            t(1000),
            window,
        );
        assert_eq!(m.leader_changes, Some(0));

        // The member restarted recently: all its changes are within the window.
        let restarted = (1_000_000 + 1100) as f64;
        let m = h.observe(scrape(&[1.0, 1.0, 1.0, 1.0], 1, restarted), t(1200), window);
        assert_eq!(m.leader_changes, Some(1));
        assert!((m.wal_fsync_p99_ms.unwrap() - 0.99).abs() < 1e-9);
    }

    #[test]
    fn disk_metrics_apply_keeps_gateway_db_size() {
        let mut m = EtcdMember {
            db_size_bytes: Some(10),
            has_leader: Some(true),
            ..Default::default()
        };
        DiskMetrics {
            wal_fsync_p99_ms: Some(1.0),
            db_size_bytes: Some(20),
            quota_bytes: Some(100),
            leader_changes: Some(2),
            ..Default::default()
        }
        .apply(&mut m);
        assert_eq!(m.db_size_bytes, Some(10));
        assert_eq!(m.has_leader, Some(true));
        assert_eq!(m.quota_bytes, Some(100));
        assert_eq!(m.wal_fsync_p99_ms, Some(1.0));
        assert_eq!(m.leader_changes, Some(2));
    }
}
