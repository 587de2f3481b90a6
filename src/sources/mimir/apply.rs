//! Folding query answers into the metrics state: per-host sparklines (several series on one
//! host add up for rates, take the maximum for percentages), etcd member figures, firing alerts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prometheus_http_query::response::Data;

use super::hosts::HostIndex;
use super::queries::{QueryDef, QueryKind};
use crate::model::metrics::{Alert, EtcdMemberMetrics, MetricSeries, MetricsState, Point};

/// A value, unless NaN or infinite.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// One host's series of the per-host query `name`.
fn set_host_series(state: &mut MetricsState, id: &str, name: &str, series: MetricSeries) {
    if let Some(h) = state.hosts.get_mut(id) {
        match name {
            "cpu" => h.cpu_pct = series,
            "memory" => h.memory_pct = series,
            "root_fs" => h.root_fs_pct = series,
            "net_rx" => h.net_rx_bps = series,
            "net_tx" => h.net_tx_bps = series,
            _ => {}
        }
    }
}

/// Put the answer `data` to query `def` into `state`; series of no known host are noted in
/// `unmapped`.
pub fn apply(
    state: &mut MetricsState,
    def: QueryDef,
    data: Data,
    index: &HostIndex,
    host_label: &str,
    now: i64,
    unmapped: &mut BTreeSet<String>,
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
                set_host_series(state, &id, def.name, series);
            }
        }
        // A per-host query asked as an instant query (`Mimir::current_only`): one point.
        (QueryKind::HostRange, Data::Vector(vs)) => {
            let additive = def.name.starts_with("net_");
            let mut per_host: BTreeMap<String, (i64, f64)> = BTreeMap::new();
            for v in vs {
                let Some(id) = index.host_of(v.metric(), host_label) else {
                    unmapped.insert(label_of(v.metric()));
                    continue;
                };
                let Some(x) = finite(v.sample().value()) else {
                    continue;
                };
                let t = v.sample().timestamp().round() as i64;
                per_host
                    .entry(id.to_string())
                    .and_modify(|(_, old)| *old = if additive { *old + x } else { old.max(x) })
                    .or_insert((t, x));
            }
            for (id, (t, x)) in per_host {
                let series = MetricSeries {
                    current: ((now - t).abs() <= 1).then_some(x),
                    points: vec![(t, x)],
                };
                set_host_series(state, &id, def.name, series);
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
                    silenced: false,
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
