//! Every PromQL query the Mimir source runs, by name, and the overrides of `[mimir] queries`.

use color_eyre::eyre::{Result, eyre};

use crate::config::MimirConfig;

/// How a query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `query_range` over the sparkline window; the last step is the current value.
    HostRange,
    /// An instant query per etcd member.
    EtcdInstant,
    /// An instant query whose series are alerts.
    Alerts,
}

/// A named default query.
#[derive(Debug, Clone, Copy)]
pub struct QueryDef {
    pub name: &'static str,
    pub kind: QueryKind,
    pub promql: &'static str,
}

/// Every PromQL query the app runs, by name. Override with `[mimir] queries.<name>`.
/// Rates keep a value for their whole window after a target dies; `and on (instance) up == 1`
/// turns a dead exporter into "no data" at once.
pub const DEFAULT_QUERIES: &[QueryDef] = &[
    QueryDef {
        name: "cpu",
        kind: QueryKind::HostRange,
        promql: r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m]))) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "memory",
        kind: QueryKind::HostRange,
        promql: "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    },
    QueryDef {
        name: "root_fs",
        kind: QueryKind::HostRange,
        promql: r#"100 * (1 - node_filesystem_avail_bytes{mountpoint="/",fstype!="rootfs"} / node_filesystem_size_bytes{mountpoint="/",fstype!="rootfs"})"#,
    },
    QueryDef {
        name: "net_rx",
        kind: QueryKind::HostRange,
        promql: r#"sum by (instance) (rate(node_network_receive_bytes_total{device!~"lo|veth.*|cni.*|flannel.*|cali.*|docker.*|br-.*|virbr.*|ifb.*|tun.*|tap.*|lxc.*|kube-.*"}[2m])) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "net_tx",
        kind: QueryKind::HostRange,
        promql: r#"sum by (instance) (rate(node_network_transmit_bytes_total{device!~"lo|veth.*|cni.*|flannel.*|cali.*|docker.*|br-.*|virbr.*|ifb.*|tun.*|tap.*|lxc.*|kube-.*"}[2m])) and on (instance) up == 1"#,
    },
    QueryDef {
        name: "etcd_wal_fsync_p99",
        kind: QueryKind::EtcdInstant,
        promql: "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))",
    },
    QueryDef {
        name: "etcd_backend_commit_p99",
        kind: QueryKind::EtcdInstant,
        promql: "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket[5m])))",
    },
    QueryDef {
        name: "etcd_has_leader",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_server_has_leader)",
    },
    QueryDef {
        name: "etcd_db_size",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_mvcc_db_total_size_in_bytes)",
    },
    QueryDef {
        name: "etcd_quota",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (etcd_server_quota_backend_bytes)",
    },
    QueryDef {
        name: "etcd_leader_changes",
        kind: QueryKind::EtcdInstant,
        promql: "max by (instance) (increase(etcd_server_leader_changes_seen_total[15m]))",
    },
    QueryDef {
        name: "alerts",
        kind: QueryKind::Alerts,
        promql: r#"ALERTS{alertstate="firing"}"#,
    },
];

/// The sparkline window and step.
pub const RANGE_SECS: i64 = 30 * 60;
/// The step of the sparkline queries, in seconds.
pub const STEP_SECS: i64 = 30;

/// The queries in effect: defaults with `[mimir] queries` applied. Unknown names are an error
/// listing the known ones.
pub fn effective_queries(cfg: &MimirConfig) -> Result<Vec<(QueryDef, String)>> {
    for name in cfg.queries.keys() {
        if !DEFAULT_QUERIES.iter().any(|q| q.name == name) {
            let known: Vec<&str> = DEFAULT_QUERIES.iter().map(|q| q.name).collect();
            return Err(eyre!(
                "[mimir] queries.{name}: unknown query name (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(DEFAULT_QUERIES
        .iter()
        .map(|q| {
            let promql = cfg
                .queries
                .get(q.name)
                .cloned()
                .unwrap_or_else(|| q.promql.to_string());
            (*q, promql)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_unknown_names() {
        let mut cfg = MimirConfig::default();
        cfg.queries.insert("cpu".into(), "vector(1)".into());
        let q = effective_queries(&cfg).unwrap();
        assert_eq!(
            q.iter().find(|(d, _)| d.name == "cpu").unwrap().1,
            "vector(1)"
        );
        cfg.queries.insert("cpuu".into(), "x".into());
        let e = effective_queries(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("queries.cpuu") && e.contains("known: cpu"),
            "{e}"
        );
    }

    #[test]
    fn default_queries_parse() {
        for q in DEFAULT_QUERIES {
            promql_parser::parser::parse(q.promql).unwrap();
        }
    }
}
