use std::collections::BTreeMap;

use crate::config::Thresholds;
use crate::inventory::Inventory;
use crate::model::cluster::ClusterState;
use crate::model::{Finding, Severity};

/// Node rules: readiness, pressure, cordons, version skew, inventory ↔ cluster.
pub(super) fn assess(c: &ClusterState, inv: &Inventory, _th: &Thresholds, out: &mut Vec<Finding>) {
    // The reference version: the API server's, else the most common kubelet version.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &c.nodes {
        if !n.kubelet_version.is_empty() {
            *counts.entry(n.kubelet_version.as_str()).or_default() += 1;
        }
    }
    let common = counts
        .iter()
        .max_by_key(|(v, n)| (**n, *v))
        .map(|(v, _)| v.to_string());
    let reference = c
        .server_version
        .clone()
        .filter(|v| counts.contains_key(v.as_str()))
        .or(common);

    for n in &c.nodes {
        match n.ready {
            Some(true) => {}
            Some(false) => out.push(Finding::new(
                Severity::Critical,
                "node.not_ready",
                &n.name,
                format!("node {} is NotReady", n.name),
            )),
            None => out.push(Finding::new(
                Severity::Critical,
                "node.not_ready",
                &n.name,
                format!(
                    "node {} Ready condition is Unknown (kubelet stopped reporting)",
                    n.name
                ),
            )),
        }
        for p in &n.pressures {
            out.push(Finding::new(
                Severity::Warning,
                "node.pressure",
                &n.name,
                format!("node {} reports {p}", n.name),
            ));
        }
        if n.unschedulable {
            let by = n
                .cordoned_by_run
                .as_ref()
                .map(|r| match r.strip_prefix("manual-") {
                    Some(who) => format!(" by hand ({who})"),
                    // A one-node maintenance's run (`homeinfra-tui drain`).
                    None if r.starts_with("drain-") => format!(" for maintenance (run {r})"),
                    None => format!(" by upgrade run {r}"),
                })
                .unwrap_or_default();
            out.push(Finding::new(
                Severity::Info,
                "node.cordoned",
                &n.name,
                format!("node {} is cordoned{by}", n.name),
            ));
        }
        if let Some(r) = &reference
            && !n.kubelet_version.is_empty()
            && &n.kubelet_version != r
        {
            out.push(Finding::new(
                Severity::Warning,
                "node.version_skew",
                &n.name,
                format!(
                    "node {} runs kubelet {}, the cluster runs {r}",
                    n.name, n.kubelet_version
                ),
            ));
        }
        if inv.by_name(&n.name).is_none() {
            out.push(Finding::new(
                Severity::Warning,
                "node.not_in_inventory",
                &n.name,
                format!("node {} is not in {}", n.name, inventory_name(inv)),
            ));
        }
    }
    for h in &inv.hosts {
        if c.node(&h.hostname).is_none() && c.node(&h.id).is_none() {
            out.push(Finding::new(
                Severity::Warning,
                "node.missing",
                &h.id,
                format!("host {} ({}) has no Kubernetes node", h.id, h.hostname),
            ));
        }
    }
}

fn inventory_name(inv: &Inventory) -> String {
    inv.path
        .file_name()
        .map_or("the inventory".to_string(), |f| {
            f.to_string_lossy().into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::NodeInfo;

    fn inv() -> Inventory {
        crate::inventory::parse(
            std::path::Path::new("hosts.json"),
            r#"{"h1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"127.0.0.11","gateway":"127.0.0.1","maskLength":8},
                "h2": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"127.0.0.12","gateway":"127.0.0.1","maskLength":8}}"#,
        )
        .unwrap()
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: Some(true),
            kubelet_version: "v1.31.4+k3s1".into(),
            ..Default::default()
        }
    }

    fn codes(c: ClusterState) -> Vec<(String, Severity, String)> {
        let mut out = Vec::new();
        assess(&c, &inv(), &Thresholds::default(), &mut out);
        out.into_iter()
            .map(|f| (f.code, f.severity, f.subject))
            .collect()
    }

    fn st(nodes: Vec<NodeInfo>) -> ClusterState {
        ClusterState {
            nodes,
            ..Default::default()
        }
    }

    type Case = (
        &'static str,
        ClusterState,
        Vec<(&'static str, Severity, &'static str)>,
    );

    #[test]
    fn table() {
        let healthy = st(vec![node("node1"), node("node2")]);
        let cases: Vec<Case> = vec![
            ("healthy", healthy.clone(), vec![]),
            (
                "not ready",
                st(vec![
                    NodeInfo {
                        ready: Some(false),
                        ..node("node1")
                    },
                    node("node2"),
                ]),
                vec![("node.not_ready", Severity::Critical, "node1")],
            ),
            (
                "unknown",
                st(vec![
                    NodeInfo {
                        ready: None,
                        ..node("node1")
                    },
                    node("node2"),
                ]),
                vec![("node.not_ready", Severity::Critical, "node1")],
            ),
            (
                "pressure",
                st(vec![
                    NodeInfo {
                        pressures: vec!["DiskPressure".into()],
                        ..node("node1")
                    },
                    node("node2"),
                ]),
                vec![("node.pressure", Severity::Warning, "node1")],
            ),
            (
                "cordoned",
                st(vec![
                    node("node1"),
                    NodeInfo {
                        unschedulable: true,
                        ..node("node2")
                    },
                ]),
                vec![("node.cordoned", Severity::Info, "node2")],
            ),
            (
                "skew",
                ClusterState {
                    server_version: Some("v1.31.4+k3s1".into()),
                    nodes: vec![
                        node("node1"),
                        NodeInfo {
                            kubelet_version: "v1.30.2+k3s1".into(),
                            ..node("node2")
                        },
                    ],
                    ..Default::default()
                },
                vec![("node.version_skew", Severity::Warning, "node2")],
            ),
            (
                "missing node",
                st(vec![node("node1")]),
                vec![("node.missing", Severity::Warning, "h2")],
            ),
            (
                "extra node",
                st(vec![node("node1"), node("node2"), node("stray")]),
                vec![("node.not_in_inventory", Severity::Warning, "stray")],
            ),
        ];
        for (name, c, want) in cases {
            let want: Vec<(String, Severity, String)> = want
                .into_iter()
                .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
                .collect();
            assert_eq!(codes(c), want, "case {name}");
        }
    }

    #[test]
    fn messages_read_well() {
        let mut out = Vec::new();
        let c = st(vec![
            node("node1"),
            NodeInfo {
                unschedulable: true,
                cordoned_by_run: Some("r42".into()),
                ..node("node2")
            },
        ]);
        assess(&c, &inv(), &Thresholds::default(), &mut out);
        assert_eq!(out[0].message, "node node2 is cordoned by upgrade run r42");
        let mut out = Vec::new();
        let c = st(vec![
            node("node1"),
            NodeInfo {
                unschedulable: true,
                cordoned_by_run: Some("drain-20261202-0101".into()),
                ..node("node2")
            },
        ]);
        assess(&c, &inv(), &Thresholds::default(), &mut out);
        assert_eq!(
            out[0].message,
            "node node2 is cordoned for maintenance (run drain-20261202-0101)"
        );
        let mut out = Vec::new();
        assess(
            &st(vec![node("node1")]),
            &inv(),
            &Thresholds::default(),
            &mut out,
        );
        assert_eq!(out[0].message, "host h2 (node2) has no Kubernetes node");
    }
}
