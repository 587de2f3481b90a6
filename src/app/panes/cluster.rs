//! Nodes, etcd and Longhorn panes.

use std::collections::HashMap;

use super::{App, Cell, Row, Table, Tone, age, bytes, source_note};

/// The Nodes pane's cordon column: `cordoned`, the maintenance of the run attached (`in
/// maintenance (drained by …, since …)`), or a maintenance whose engine is gone.
fn cordon_text(
    n: &crate::model::cluster::NodeInfo,
    m: Option<&crate::model::Maintenance>,
    interrupted: Option<&str>,
) -> String {
    if !n.unschedulable {
        return String::new();
    }
    if let Some(text) = m.and_then(|m| m.nodes.get(&n.name)) {
        return text.clone();
    }
    match n.cordoned_by_run.as_deref() {
        Some(r) if interrupted == Some(r) => {
            "cordoned · maintenance's engine gone (c uncordons)".into()
        }
        Some(r) if crate::operations::upgrade::drain::is_drain_run(r) => {
            format!("cordoned by maintenance {r}")
        }
        _ => "cordoned".into(),
    }
}

pub(super) fn nodes(app: &App) -> Table {
    let c = &app.snapshot.cluster;
    let rows = c
        .data
        .as_ref()
        .map(|cl| {
            // One pass over pods and hosts, not one per node.
            let mut pods_per_node: HashMap<&str, usize> = HashMap::new();
            for p in cl.pods.iter() {
                if let Some(n) = p.node.as_deref() {
                    *pods_per_node.entry(n).or_default() += 1;
                }
            }
            let host_ids: HashMap<&str, &str> = app
                .inventory
                .hosts
                .iter()
                .map(|h| (h.hostname.as_str(), h.id.as_str()))
                .collect();
            let maintenance = app.maintenance();
            cl.nodes
                .iter()
                .map(|n| {
                    let (ready, tone) = match n.ready {
                        Some(true) => ("Ready", Tone::Ok),
                        Some(false) => ("NotReady", Tone::Critical),
                        None => ("Unknown", Tone::Warning),
                    };
                    let pods = pods_per_node.get(n.name.as_str()).copied().unwrap_or(0);
                    let aliases = host_ids
                        .get(n.name.as_str())
                        .map(|id| vec![id.to_string()])
                        .unwrap_or_default();
                    let mut status = ready.to_string();
                    for p in &n.pressures {
                        status.push(',');
                        status.push_str(p);
                    }
                    Row {
                        key: n.name.clone(),
                        aliases,
                        cells: vec![
                            Cell::new(&n.name),
                            Cell::new(n.roles.join(",")),
                            Cell::new(n.zone.clone().unwrap_or_default()),
                            Cell::toned(
                                status,
                                if n.pressures.is_empty() {
                                    tone
                                } else {
                                    Tone::Warning
                                },
                            ),
                            Cell::toned(
                                cordon_text(
                                    n,
                                    maintenance.as_ref(),
                                    app.upgrade.interrupted.as_ref().map(|i| i.run_id.as_str()),
                                ),
                                Tone::Warning,
                            ),
                            Cell::new(&n.kubelet_version),
                            Cell::new(pods.to_string()),
                            Cell::new(n.created.map(|t| age(app.now, t)).unwrap_or_default()),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        drop_order: vec![0, 3, 4, 0, 0, 2, 1, 5],
        note: source_note(
            &c.status,
            "Kubernetes",
            "[kubernetes] kubeconfig (or KUBECONFIG)",
            c.data.is_some(),
        ),
        ..Table::new(
            vec![
                "NAME", "ROLES", "ZONE", "STATUS", "SCHED", "VERSION", "PODS", "AGE",
            ],
            vec![12, 26, 8, 9, 8, 14, 5, 5],
            rows,
        )
    }
}

pub(super) fn etcd(app: &App) -> Table {
    let e = &app.snapshot.etcd;
    let rows = e
        .data
        .as_ref()
        .map(|st| {
            st.members
                .iter()
                .map(|m| {
                    let ms = |v: Option<f64>| {
                        v.map(|x| format!("{x:.1} ms"))
                            .unwrap_or_else(|| "–".into())
                    };
                    let db = match (m.db_size_bytes, m.quota_bytes) {
                        (Some(d), Some(q)) if q > 0 => format!(
                            "{} / {} {:.0}%",
                            bytes(d),
                            bytes(q),
                            d as f64 * 100.0 / q as f64
                        ),
                        (Some(d), _) => bytes(d),
                        _ => "–".into(),
                    };
                    let lag = m
                        .raft_index_lag
                        .map_or_else(|| "–".to_string(), |l| l.to_string());
                    Row {
                        key: m.name.clone(),
                        aliases: vec![format!("{:x}", m.id)],
                        cells: vec![
                            Cell::new(format!("{}{}", m.name, if m.is_leader { " ★" } else { "" })),
                            Cell::new(
                                m.endpoint
                                    .clone()
                                    .or_else(|| m.client_urls.first().cloned())
                                    .unwrap_or_default(),
                            ),
                            if m.healthy {
                                Cell::toned("healthy", Tone::Ok)
                            } else {
                                Cell::toned("down", Tone::Critical)
                            },
                            Cell::new(db),
                            Cell::new(ms(m.wal_fsync_p99_ms)),
                            Cell::new(ms(m.backend_commit_p99_ms)),
                            Cell::new(lag),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let subtitle = e.data.as_ref().map(|st| {
        let q = st.quorum();
        let tone = if !q.holds() {
            Tone::Critical
        } else if q.tolerates() == 0 {
            Tone::Warning
        } else {
            Tone::Ok
        };
        (crate::model::etcd::quorum_summary(st), tone)
    });
    Table {
        drop_order: vec![0, 3, 0, 2, 0, 1, 4],
        note: source_note(&e.status, "etcd", "[etcd] endpoints", e.data.is_some()),
        subtitle,
        ..Table::new(
            vec![
                "MEMBER",
                "ENDPOINT",
                "HEALTH",
                "DB / QUOTA",
                "FSYNC p99",
                "COMMIT p99",
                "LAG",
            ],
            vec![14, 24, 8, 24, 10, 10, 5],
            rows,
        )
    }
}

pub(super) fn longhorn(app: &App) -> Table {
    let c = &app.snapshot.cluster;
    let rows = c
        .data
        .as_ref()
        .map(|cl| {
            let replicas = cl.longhorn.replicas_by_volume();
            cl.longhorn
                .volumes
                .iter()
                .map(|v| {
                    let tone = match v.robustness.as_str() {
                        "healthy" => Tone::Ok,
                        "degraded" => Tone::Warning,
                        "faulted" => Tone::Critical,
                        _ => Tone::Warning,
                    };
                    let mut placement: Vec<String> = replicas
                        .get(v.name.as_str())
                        .into_iter()
                        .flatten()
                        .map(|r| format!("{}{}", r.node, if r.healthy { "" } else { "✗" }))
                        .collect();
                    placement.sort();
                    Row {
                        key: v.name.clone(),
                        aliases: v.pvc.clone().into_iter().collect(),
                        cells: vec![
                            Cell::new(&v.name),
                            Cell::new(v.pvc.clone().unwrap_or_default()),
                            Cell::toned(&v.robustness, tone),
                            Cell::new(format!("{}×", v.number_of_replicas)),
                            Cell::new(placement.join(" ")),
                            Cell::new(bytes(v.size_bytes)),
                            Cell::new(
                                v.last_backup_at
                                    .map(|t| age(app.now, t))
                                    .unwrap_or_else(|| "never".into()),
                            ),
                            Cell::toned(
                                if v.encrypted { "yes" } else { "no" },
                                if v.encrypted {
                                    Tone::Normal
                                } else {
                                    Tone::Muted
                                },
                            ),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let note = source_note(
        &c.status,
        "Kubernetes",
        "[kubernetes] kubeconfig (or KUBECONFIG)",
        c.data.is_some(),
    )
    .or_else(|| {
        // Longhorn's own status: the rows are the last read, the other panes stay current.
        let e = c.data.as_ref()?.longhorn.error.as_ref()?;
        Some((
            format!(
                "Longhorn unreachable since {}: {}",
                e.since.to_zoned(app.tz.clone()).strftime("%H:%M:%S"),
                e.message
            ),
            Tone::Critical,
        ))
    })
    .or_else(|| {
        c.data
            .as_ref()
            .filter(|cl| !cl.longhorn.installed)
            .map(|_| {
                (
                    "Longhorn: not installed in this cluster (no longhorn.io CRDs)".to_string(),
                    Tone::Muted,
                )
            })
    });
    Table {
        drop_order: vec![5, 0, 0, 3, 1, 2, 0, 4],
        note,
        ..Table::new(
            vec![
                "VOLUME",
                "PVC",
                "ROBUSTNESS",
                "REPL",
                "PLACEMENT",
                "SIZE",
                "BACKUP",
                "ENC",
            ],
            vec![16, 24, 10, 4, 20, 8, 7, 3],
            rows,
        )
    }
}
