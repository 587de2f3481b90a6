//! etcd rules: quorum and leader, members down, disk latency, DB size against the quota,
//! leader churn.

use crate::config::Thresholds;
use crate::model::etcd::{DEFAULT_QUOTA_BYTES, EtcdMember, EtcdState};
use crate::model::{Finding, Severity};

/// Subject of the cluster-wide etcd findings.
const CLUSTER: &str = "etcd";

pub(super) fn assess(etcd: &EtcdState, th: &Thresholds, out: &mut Vec<Finding>) {
    if etcd.members.is_empty() {
        return;
    }
    let quorum = etcd.quorum();
    let down: Vec<&EtcdMember> = etcd.members.iter().filter(|m| !m.healthy).collect();
    let down_names = down
        .iter()
        .map(|m| m.label())
        .collect::<Vec<_>>()
        .join(", ");

    if !quorum.holds() {
        out.push(Finding::new(
            Severity::Critical,
            "etcd.quorum_lost",
            CLUSTER,
            format!("{quorum}; down: {down_names} — the cluster cannot accept writes"),
        ));
    }
    for a in etcd.alarms() {
        let who = etcd
            .member(a.member_id)
            .map_or_else(|| format!("{:x}", a.member_id), EtcdMember::label);
        let what = match a.kind.as_str() {
            "NOSPACE" => {
                "the DB reached its quota: the cluster accepts no writes until it is compacted, defragmented and the alarm disarmed"
            }
            "CORRUPT" => {
                "data corruption detected: the member must be replaced from a healthy copy"
            }
            _ => "see `etcdctl alarm list`",
        };
        out.push(Finding::new(
            Severity::Critical,
            "etcd.alarm",
            who.clone(),
            format!("alarm {} raised on {who}: {what}", a.kind),
        ));
    }
    if etcd.leader.is_none() {
        out.push(Finding::new(
            Severity::Critical,
            "etcd.no_leader",
            CLUSTER,
            format!("no member reports a leader ({quorum})"),
        ));
    }
    for m in &down {
        let severity = if quorum.holds() || m.is_learner {
            Severity::Warning
        } else {
            Severity::Critical
        };
        let at = m
            .endpoint
            .as_deref()
            .or(m.client_urls.first().map(String::as_str))
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let why = m.error.as_deref().unwrap_or("not healthy");
        let tail = if m.is_learner {
            "a learner, it does not count towards quorum".to_string()
        } else {
            quorum.to_string()
        };
        out.push(Finding::new(
            severity,
            "etcd.member_down",
            m.label(),
            format!(
                "member {}{at} is {}: {why} — {tail}",
                m.label(),
                if m.reachable { "unhealthy" } else { "down" }
            ),
        ));
    }

    for m in &etcd.members {
        latency(
            m,
            "etcd.wal_fsync_slow",
            "WAL fsync",
            m.wal_fsync_p99_ms,
            th.etcd_fsync_p99_warning_ms,
            th.etcd_fsync_p99_critical_ms,
            out,
        );
        latency(
            m,
            "etcd.backend_commit_slow",
            "backend commit",
            m.backend_commit_p99_ms,
            th.etcd_commit_p99_warning_ms,
            th.etcd_commit_p99_critical_ms,
            out,
        );
        db_quota(m, th, out);
    }

    if let Some(changes) = etcd.leader_changes()
        && changes >= th.etcd_leader_changes_warning
    {
        out.push(Finding::new(
            Severity::Warning,
            "etcd.leader_changes",
            CLUSTER,
            format!(
                "{changes} leader changes in the last {} min (warning at {}): unstable network or slow disks",
                th.etcd_leader_changes_window_mins, th.etcd_leader_changes_warning
            ),
        ));
    }
}

fn latency(
    m: &EtcdMember,
    code: &str,
    what: &str,
    p99_ms: Option<f64>,
    warn: f64,
    crit: f64,
    out: &mut Vec<Finding>,
) {
    let Some(v) = p99_ms.filter(|v| v.is_finite()) else {
        return;
    };
    let (severity, limit) = if v >= crit {
        (Severity::Critical, crit)
    } else if v >= warn {
        (Severity::Warning, warn)
    } else {
        return;
    };
    out.push(Finding::new(
        severity,
        code,
        m.label(),
        format!(
            "{what} p99 on {} is {} ms ({severity} at {} ms): its disk is too slow for etcd",
            m.label(),
            fmt_ms(v),
            fmt_ms(limit)
        ),
    ));
}

fn db_quota(m: &EtcdMember, th: &Thresholds, out: &mut Vec<Finding>) {
    let Some(size) = m.db_size_bytes else {
        return;
    };
    let (quota, assumed) = match m.quota_bytes {
        Some(q) if q > 0 => (q, false),
        _ => (DEFAULT_QUOTA_BYTES, true),
    };
    let pct = size as f64 * 100.0 / quota as f64;
    let (severity, limit) = if pct >= th.etcd_db_quota_critical_pct {
        (Severity::Critical, th.etcd_db_quota_critical_pct)
    } else if pct >= th.etcd_db_quota_warning_pct {
        (Severity::Warning, th.etcd_db_quota_warning_pct)
    } else {
        return;
    };
    out.push(Finding::new(
        severity,
        "etcd.db_quota",
        m.label(),
        format!(
            "DB of {} is {} ({pct:.0} % of the {}{} quota, {severity} at {limit:.0} %): compact and defragment, or raise the quota",
            m.label(),
            fmt_bytes(size),
            if assumed { "assumed default " } else { "" },
            fmt_bytes(quota)
        ),
    ));
}

fn fmt_ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Bytes in binary units, one decimal: "1.5 GiB".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::etcd::Alarm;

    fn healthy(id: u64) -> EtcdMember {
        EtcdMember {
            id,
            name: format!("e{id}"),
            client_urls: vec![format!("http://127.0.0.1:2379{id}")],
            endpoint: Some(format!("http://127.0.0.1:2379{id}")),
            reachable: true,
            healthy: true,
            has_leader: Some(true),
            is_leader: id == 1,
            raft_index: Some(100),
            db_size_bytes: Some(20 * 1024 * 1024),
            quota_bytes: Some(DEFAULT_QUOTA_BYTES),
            wal_fsync_p99_ms: Some(2.0),
            backend_commit_p99_ms: Some(5.0),
            leader_changes: Some(1),
            ..Default::default()
        }
    }

    fn down(mut m: EtcdMember) -> EtcdMember {
        m.reachable = false;
        m.healthy = false;
        m.is_leader = false;
        m.error = Some("connection refused".into());
        m.raft_index = None;
        m.db_size_bytes = None;
        m.wal_fsync_p99_ms = None;
        m.backend_commit_p99_ms = None;
        m.leader_changes = None;
        m
    }

    fn cluster() -> EtcdState {
        EtcdState {
            members: (1..=3).map(healthy).collect(),
            leader: Some(1),
            cluster_id: Some(7),
            notes: Vec::new(),
        }
    }

    fn run(s: &EtcdState) -> Vec<Finding> {
        let mut out = Vec::new();
        assess(s, &Thresholds::default(), &mut out);
        out
    }

    type Case = (
        &'static str,
        fn(&mut EtcdState),
        &'static [(Severity, &'static str, &'static str)],
    );

    #[test]
    fn rules() {
        use Severity::{Critical as C, Warning as W};
        let cases: &[Case] = &[
            ("all healthy", |_| {}, &[]),
            ("no members: nothing to say", |s| s.members.clear(), &[]),
            (
                "one member down",
                |s| s.members[1] = down(s.members[1].clone()),
                &[(W, "etcd.member_down", "e2")],
            ),
            (
                "two members down",
                |s| {
                    s.members[1] = down(s.members[1].clone());
                    s.members[2] = down(s.members[2].clone());
                    s.members[0].healthy = false;
                    s.members[0].has_leader = Some(false);
                    s.members[0].error = Some("etcdserver: no leader".into());
                    s.leader = None;
                },
                &[
                    (C, "etcd.quorum_lost", "etcd"),
                    (C, "etcd.no_leader", "etcd"),
                    (C, "etcd.member_down", "e1"),
                    (C, "etcd.member_down", "e2"),
                    (C, "etcd.member_down", "e3"),
                ],
            ),
            (
                "no leader while all members answer",
                |s| s.leader = None,
                &[(C, "etcd.no_leader", "etcd")],
            ),
            (
                "learner down is only a warning and not quorum",
                |s| {
                    let mut l = down(healthy(4));
                    l.is_learner = true;
                    s.members.push(l);
                },
                &[(W, "etcd.member_down", "e4")],
            ),
            (
                "fsync just under warning",
                |s| s.members[0].wal_fsync_p99_ms = Some(9.99),
                &[],
            ),
            (
                "fsync warning at 10 ms",
                |s| s.members[0].wal_fsync_p99_ms = Some(10.0),
                &[(W, "etcd.wal_fsync_slow", "e1")],
            ),
            (
                "fsync critical at 100 ms",
                |s| s.members[2].wal_fsync_p99_ms = Some(100.0),
                &[(C, "etcd.wal_fsync_slow", "e3")],
            ),
            (
                "fsync NaN is no data",
                |s| s.members[2].wal_fsync_p99_ms = Some(f64::NAN),
                &[],
            ),
            (
                "commit warning at 25 ms",
                |s| s.members[1].backend_commit_p99_ms = Some(25.0),
                &[(W, "etcd.backend_commit_slow", "e2")],
            ),
            (
                "commit critical at 250 ms",
                |s| s.members[1].backend_commit_p99_ms = Some(300.0),
                &[(C, "etcd.backend_commit_slow", "e2")],
            ),
            (
                "commit under warning",
                |s| s.members[1].backend_commit_p99_ms = Some(24.9),
                &[],
            ),
            (
                "db at 80 % of quota",
                |s| {
                    s.members[0].quota_bytes = Some(1000);
                    s.members[0].db_size_bytes = Some(800);
                },
                &[(W, "etcd.db_quota", "e1")],
            ),
            (
                "db at 95 % of quota",
                |s| {
                    s.members[0].quota_bytes = Some(1000);
                    s.members[0].db_size_bytes = Some(950);
                },
                &[(C, "etcd.db_quota", "e1")],
            ),
            (
                "db under 80 %",
                |s| {
                    s.members[0].quota_bytes = Some(1000);
                    s.members[0].db_size_bytes = Some(799);
                },
                &[],
            ),
            (
                "db against the assumed default quota",
                |s| {
                    s.members[0].quota_bytes = None;
                    s.members[0].db_size_bytes = Some(DEFAULT_QUOTA_BYTES / 10 * 9);
                },
                &[(W, "etcd.db_quota", "e1")],
            ),
            (
                "a NOSPACE alarm, reported by every member, is one critical finding",
                |s| {
                    for m in &mut s.members {
                        m.alarms = vec![Alarm {
                            member_id: 2,
                            kind: "NOSPACE".into(),
                        }];
                    }
                },
                &[(C, "etcd.alarm", "e2")],
            ),
            (
                "3 leader changes",
                |s| s.members[0].leader_changes = Some(3),
                &[],
            ),
            (
                "4 leader changes",
                |s| s.members[2].leader_changes = Some(4),
                &[(W, "etcd.leader_changes", "etcd")],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut s = cluster();
            mutate(&mut s);
            let got = run(&s);
            let got: Vec<_> = got
                .iter()
                .map(|f| (f.severity, f.code.as_str(), f.subject.as_str()))
                .collect();
            assert_eq!(got, want.to_vec(), "case: {name}");
        }
    }

    #[test]
    fn messages_carry_the_arithmetic() {
        let mut s = cluster();
        s.members[1] = down(s.members[1].clone());
        let f = run(&s);
        assert_eq!(
            f[0].message,
            "member e2 (http://127.0.0.1:23792) is down: connection refused — 2/3 healthy — no further failure tolerated"
        );

        let mut s = cluster();
        s.members[1] = down(s.members[1].clone());
        s.members[2] = down(s.members[2].clone());
        s.members[0].healthy = false;
        s.leader = None;
        let f = run(&s);
        assert_eq!(
            f[0].message,
            "0/3 healthy — quorum lost (needs 2); down: e1, e2, e3 — the cluster cannot accept writes"
        );
        assert_eq!(
            f[1].message,
            "no member reports a leader (0/3 healthy — quorum lost (needs 2))"
        );

        let mut s = cluster();
        s.members[0].wal_fsync_p99_ms = Some(12.34);
        s.members[0].quota_bytes = Some(2 * 1024 * 1024 * 1024);
        s.members[0].db_size_bytes = Some(1946 * 1024 * 1024);
        let f = run(&s);
        assert_eq!(
            f[0].message,
            "WAL fsync p99 on e1 is 12 ms (warning at 10 ms): its disk is too slow for etcd"
        );
        assert_eq!(
            f[1].message,
            "DB of e1 is 1.9 GiB (95 % of the 2.0 GiB quota, critical at 95 %): compact and defragment, or raise the quota"
        );
        assert_eq!(fmt_bytes(512), "512 B");

        // A member that answers but knows no leader is unhealthy rather than down.
        let mut s = cluster();
        s.members[2].healthy = false;
        s.members[2].error = Some("etcdserver: no leader".into());
        let f = run(&s);
        assert_eq!(
            f[0].message,
            "member e3 (http://127.0.0.1:23793) is unhealthy: etcdserver: no leader — 2/3 healthy — no further failure tolerated"
        );
        assert_eq!(fmt_ms(2.345), "2.3");
    }
}
