use jiff::Timestamp;

use crate::config::Thresholds;
use crate::model::{Finding, Severity, Snapshot, SourceStatus};

/// A failing source is a finding (never a crash); so is data gone stale.
pub(super) fn assess(snap: &Snapshot, now: Timestamp, th: &Thresholds, out: &mut Vec<Finding>) {
    let mut one = |name: &str, label: &str, st: &SourceStatus, severity: Severity| {
        if !st.configured {
            return;
        }
        if let Some(e) = &st.error {
            out.push(Finding::new(
                severity,
                format!("source.{name}.unreachable"),
                name,
                format!(
                    "{label} unreachable since {}: {}",
                    e.since.strftime("%H:%M:%S"),
                    e.message
                ),
            ));
        } else if let Some(ok) = st.last_ok {
            let age = now.as_second() - ok.as_second();
            if age > th.stale_after_secs as i64 {
                out.push(Finding::new(
                    Severity::Warning,
                    format!("source.{name}.stale"),
                    name,
                    format!("{label} data is {age} s old"),
                ));
            }
        }
    };
    one(
        "kubernetes",
        "Kubernetes API",
        &snap.cluster.status,
        Severity::Critical,
    );
    one("etcd", "etcd", &snap.etcd.status, Severity::Critical);
    one("mimir", "Mimir", &snap.mimir.status, Severity::Warning);
    one("loki", "Loki", &snap.loki.status, Severity::Warning);
    // Longhorn rides in the Kubernetes source's data but is its own source: its kinds may
    // fail while the nodes and pods are read.
    if let Some(c) = &snap.cluster.data
        && snap.cluster.status.error.is_none()
        && let Some(e) = &c.longhorn.error
    {
        out.push(Finding::new(
            Severity::Critical,
            "source.longhorn.unreachable",
            "longhorn",
            format!(
                "Longhorn unreachable since {}: {}",
                e.since.strftime("%H:%M:%S"),
                e.message
            ),
        ));
    }
    // One Mimir query failing while the others answer: its figures are missing, say which.
    if let Some(m) = &snap.mimir.data
        && snap.mimir.status.error.is_none()
    {
        for (name, since, why) in m.failing_queries() {
            let when = Timestamp::from_second(since)
                .map(|t| t.strftime("%H:%M:%S").to_string())
                .unwrap_or_default();
            out.push(Finding::new(
                Severity::Warning,
                "source.mimir.query_failed",
                name,
                format!("Mimir query {name} failing since {when}: {why}"),
            ));
        }
    }
    // Alertmanager is read with the metrics: the metrics may be there while it is not.
    if let Some(m) = &snap.mimir.data
        && snap.mimir.status.error.is_none()
        && let Some(e) = m
            .query_errors
            .get(crate::model::metrics::ALERTMANAGER_ERROR)
    {
        out.push(Finding::new(
            Severity::Warning,
            "source.alertmanager.unreachable",
            "alertmanager",
            format!("Alertmanager {e}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sourced;

    #[test]
    fn unreachable_and_stale_and_unconfigured() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let mut snap = Snapshot {
            etcd: Sourced::configured(),
            ..Default::default()
        };
        snap.etcd.record(Err("connection refused".into()), t0);
        snap.mimir = Sourced::configured();
        snap.mimir.record(Ok(Default::default()), t0);
        snap.loki = Sourced::not_configured("Loki: not configured — set [loki] url");
        let mut out = Vec::new();
        let now = Timestamp::from_second(1_000_000 + 500).unwrap();
        assess(&snap, now, &Thresholds::default(), &mut out);
        let codes: Vec<_> = out.iter().map(|f| (f.code.as_str(), f.severity)).collect();
        assert_eq!(
            codes,
            vec![
                ("source.etcd.unreachable", Severity::Critical),
                ("source.mimir.stale", Severity::Warning)
            ]
        );
        assert!(
            out[0].message.contains("connection refused"),
            "{}",
            out[0].message
        );
        assert_eq!(out[1].message, "Mimir data is 500 s old");
    }

    #[test]
    fn one_failing_mimir_query_is_a_warning_naming_it() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let mut m = crate::model::metrics::MetricsState {
            at: 1_000_060,
            ..Default::default()
        };
        m.query_errors
            .insert("net_tx".into(), "bad_data: unsupported function".into());
        m.query_failing_since.insert("net_tx".into(), 1_000_000);
        m.query_errors.insert(
            crate::model::metrics::ALERTMANAGER_ERROR.into(),
            "unreachable since 11:46:40: refused".into(),
        );
        let mut snap = Snapshot {
            mimir: Sourced::configured(),
            ..Default::default()
        };
        snap.mimir.record(Ok(std::sync::Arc::new(m)), t0);
        let mut out = Vec::new();
        assess(&snap, t0, &Thresholds::default(), &mut out);
        let q: Vec<_> = out
            .iter()
            .filter(|f| f.code == "source.mimir.query_failed")
            .collect();
        assert_eq!(q.len(), 1, "{out:?}");
        assert_eq!(q[0].severity, Severity::Warning);
        assert_eq!(q[0].subject, "net_tx");
        assert_eq!(
            q[0].message,
            format!(
                "Mimir query net_tx failing since {}: bad_data: unsupported function",
                t0.strftime("%H:%M:%S")
            )
        );
    }

    #[test]
    fn longhorn_unread_beside_good_nodes_is_a_source_that_could_not_be_read() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let mut c = crate::model::cluster::ClusterState::default();
        c.longhorn.error = Some(crate::model::cluster::LonghornError {
            since: t0,
            message: "Longhorn: cannot list volumes: 500".into(),
        });
        let mut snap = Snapshot {
            cluster: Sourced::configured(),
            ..Default::default()
        };
        snap.cluster.record(Ok(std::sync::Arc::new(c)), t0);
        let mut out = Vec::new();
        assess(&snap, t0, &Thresholds::default(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "source.longhorn.unreachable");
        assert!(
            out[0].message.starts_with("Longhorn unreachable since ")
                && out[0].message.ends_with("cannot list volumes: 500"),
            "{}",
            out[0].message
        );
        assert_eq!(
            crate::model::Status::of(&out),
            crate::model::Status::Unknown
        );
        // The whole API down: the Kubernetes source says so, not Longhorn twice.
        snap.cluster.record(Err("refused".into()), t0);
        let mut out = Vec::new();
        assess(&snap, t0, &Thresholds::default(), &mut out);
        let codes: Vec<_> = out.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, vec!["source.kubernetes.unreachable"]);
    }

    #[test]
    fn alertmanager_unread_beside_good_metrics_is_a_source_that_could_not_be_read() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let mut m = crate::model::metrics::MetricsState::default();
        m.query_errors.insert(
            crate::model::metrics::ALERTMANAGER_ERROR.into(),
            "unreachable since 11:46:40: no answer within 3 s".into(),
        );
        let mut snap = Snapshot {
            mimir: Sourced::configured(),
            ..Default::default()
        };
        snap.mimir.record(Ok(std::sync::Arc::new(m)), t0);
        let mut out = Vec::new();
        assess(&snap, t0, &Thresholds::default(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "source.alertmanager.unreachable");
        assert_eq!(
            out[0].message,
            "Alertmanager unreachable since 11:46:40: no answer within 3 s"
        );
        assert_eq!(
            crate::model::Status::of(&out),
            crate::model::Status::Unknown
        );
    }
}
