use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::config::Thresholds;
use crate::model::cluster::{LonghornState, Replica, Volume};
use crate::model::{Finding, Severity};

/// Longhorn rules: volume robustness, replica placement, backups, backup target, encryption,
/// nodes and disks.
pub(super) fn assess(l: &LonghornState, th: &Thresholds, now: Timestamp, out: &mut Vec<Finding>) {
    let replicas = l.replicas_by_volume();
    for v in &l.volumes {
        let reps = replicas.get(v.name.as_str()).map_or(&[][..], Vec::as_slice);
        volume(l, v, reps, th, now, out);
    }
    for t in &l.backup_targets {
        if !t.url.is_empty() && !t.available {
            let why = if t.message.is_empty() {
                String::new()
            } else {
                format!(": {}", t.message)
            };
            out.push(Finding::new(
                Severity::Critical,
                "longhorn.backup_target_unavailable",
                &t.name,
                format!("backup target {} ({}) is unavailable{why}", t.name, t.url),
            ));
        }
    }
    for n in &l.nodes {
        if !n.ready {
            out.push(Finding::new(
                Severity::Warning,
                "longhorn.node_not_ready",
                &n.name,
                format!("Longhorn node {} is not ready", n.name),
            ));
        } else if !n.schedulable {
            out.push(Finding::new(
                Severity::Warning,
                "longhorn.node_unschedulable",
                &n.name,
                format!("Longhorn node {} does not accept new replicas", n.name),
            ));
        }
        for d in &n.disks {
            let pct = d.used_pct();
            if pct >= th.longhorn_disk_warning_pct {
                out.push(Finding::new(
                    Severity::Warning,
                    "longhorn.disk_full",
                    &n.name,
                    format!("Longhorn disk {} on {} is {pct:.0}% full", d.path, n.name),
                ));
            }
        }
    }
}

fn volume(
    l: &LonghornState,
    v: &Volume,
    replicas: &[&Replica],
    th: &Thresholds,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    let name = &v.name;
    let shown = match &v.pvc {
        Some(pvc) => format!("volume {name} ({pvc})"),
        None => format!("volume {name}"),
    };
    match v.robustness.as_str() {
        "healthy" => {}
        "degraded" => out.push(Finding::new(
            Severity::Warning,
            "longhorn.volume_degraded",
            name,
            format!("{shown} is degraded"),
        )),
        "faulted" => out.push(Finding::new(
            Severity::Critical,
            "longhorn.volume_faulted",
            name,
            format!("{shown} is faulted: no healthy replica"),
        )),
        // Longhorn reports detached volumes as "unknown": that is normal.
        _ if v.state == "detached" => {}
        other => out.push(Finding::new(
            Severity::Warning,
            "longhorn.volume_unknown",
            name,
            format!(
                "{shown} robustness is {}",
                if other.is_empty() {
                    "not reported"
                } else {
                    other
                }
            ),
        )),
    }
    if v.number_of_replicas < th.longhorn_min_replicas {
        out.push(Finding::new(
            Severity::Warning,
            "longhorn.few_replicas",
            name,
            format!(
                "{shown} has {} replica(s) configured (at least {} recommended)",
                v.number_of_replicas, th.longhorn_min_replicas
            ),
        ));
    }
    let healthy_nodes: BTreeSet<&str> = replicas
        .iter()
        .filter(|r| r.healthy)
        .map(|r| r.node.as_str())
        .collect();
    let healthy_count = replicas.iter().filter(|r| r.healthy).count();
    if healthy_count == 1 {
        let node = healthy_nodes.iter().next().copied().unwrap_or("?");
        out.push(Finding::new(
            Severity::Warning,
            "longhorn.last_replica",
            name,
            format!("{shown} has only one healthy replica, on {node}: that node must not go down"),
        ));
    } else if healthy_count > 1 && healthy_nodes.len() == 1 {
        let node = healthy_nodes.iter().next().copied().unwrap_or("?");
        out.push(Finding::new(
            Severity::Warning,
            "longhorn.replicas_one_node",
            name,
            format!("all {healthy_count} healthy replicas of {shown} are on {node}"),
        ));
    }
    if !v.encrypted {
        out.push(Finding::new(
            Severity::Info,
            "longhorn.unencrypted",
            name,
            format!("{shown} is not encrypted at rest"),
        ));
    }
    backup(l, v, &shown, th, now, out);
}

/// The shortest interval of the recurring backup jobs that apply to `v`, with the job's name.
pub(crate) fn backup_job(l: &LonghornState, v: &Volume) -> Option<(u64, String)> {
    // Longhorn applies the "default" group to volumes without any recurring-job label.
    let no_labels = v.recurring_jobs.is_empty() && v.recurring_groups.is_empty();
    l.recurring_jobs
        .iter()
        .filter(|j| j.task == "backup" || j.task == "backup-force-create")
        .filter(|j| {
            v.recurring_jobs.contains(&j.name)
                || j.groups.iter().any(|g| v.recurring_groups.contains(g))
                || (no_labels && j.groups.iter().any(|g| g == "default"))
        })
        .filter_map(|j| cron_interval_secs(&j.cron).map(|s| (s, j.name.clone())))
        .min()
}

/// Backup age against the interval of the backup jobs that apply to the volume.
fn backup(
    l: &LonghornState,
    v: &Volume,
    shown: &str,
    th: &Thresholds,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    let Some((interval, job)) = backup_job(l, v) else {
        return;
    };
    let limit = (interval as f64 * th.longhorn_backup_interval_factor) as i64;
    match v.last_backup_at {
        None => out.push(Finding::new(
            Severity::Warning,
            "longhorn.backup_stale",
            &v.name,
            format!("{shown} has never been backed up (recurring job {job})"),
        )),
        Some(t) if now.as_second() - t.as_second() > limit => out.push(Finding::new(
            Severity::Warning,
            "longhorn.backup_stale",
            &v.name,
            format!(
                "{shown}: last backup {} ago, more than {}× the interval of recurring job {job} ({})",
                human(now.as_second() - t.as_second()),
                th.longhorn_backup_interval_factor,
                human(interval as i64)
            ),
        )),
        Some(_) => {}
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    }
}

/// The longest gap between runs of a 5-field cron expression, roughly: enough to judge a
/// backup as stale. `None` when the expression is not understood.
pub fn cron_interval_secs(cron: &str) -> Option<u64> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    if f.len() != 5 {
        return match cron.trim() {
            "@hourly" => Some(3_600),
            "@daily" | "@midnight" => Some(86_400),
            "@weekly" => Some(7 * 86_400),
            "@monthly" => Some(31 * 86_400),
            "@yearly" | "@annually" => Some(366 * 86_400),
            _ => None,
        };
    }
    let (min, hour, dom, month, dow) = (f[0], f[1], f[2], f[3], f[4]);
    let step = |field: &str| -> Option<u64> {
        if field == "*" {
            Some(1)
        } else if let Some(n) = field.strip_prefix("*/") {
            n.parse().ok().filter(|n| *n > 0)
        } else {
            None
        }
    };
    let count = |field: &str| field.split(',').count() as u64;
    if month != "*" {
        return Some(366 * 86_400 / count(month).max(1));
    }
    if dom != "*" {
        return Some(31 * 86_400 / count(dom).max(1));
    }
    if dow != "*" {
        return Some(7 * 86_400 / count(dow).max(1));
    }
    if let Some(h) = step(hour) {
        if let Some(m) = step(min) {
            return Some(60 * m);
        }
        return Some(3_600 * h / count(min).max(1));
    }
    Some(86_400 / count(hour).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::{BackupTarget, Disk, LonghornNode, RecurringJob, Replica};

    const NOW: i64 = 1_800_000_000;

    fn vol(name: &str) -> Volume {
        Volume {
            name: name.into(),
            number_of_replicas: 3,
            state: "attached".into(),
            robustness: "healthy".into(),
            encrypted: true,
            ..Default::default()
        }
    }

    fn rep(vol: &str, node: &str, healthy: bool) -> Replica {
        Replica {
            name: format!("{vol}-{node}"),
            volume: vol.into(),
            node: node.into(),
            healthy,
            current_state: "running".into(),
            rebuilding: false,
        }
    }

    fn three(vol: &str) -> Vec<Replica> {
        vec![
            rep(vol, "n1", true),
            rep(vol, "n2", true),
            rep(vol, "n3", true),
        ]
    }

    fn run(l: LonghornState) -> Vec<(String, Severity, String)> {
        let mut out = Vec::new();
        assess(
            &l,
            &Thresholds::default(),
            Timestamp::from_second(NOW).unwrap(),
            &mut out,
        );
        out.into_iter()
            .map(|f| (f.code, f.severity, f.subject))
            .collect()
    }

    fn with(vols: Vec<Volume>, reps: Vec<Replica>) -> LonghornState {
        LonghornState {
            installed: true,
            volumes: vols,
            replicas: reps,
            ..Default::default()
        }
    }

    type Case = (
        &'static str,
        LonghornState,
        Vec<(&'static str, Severity, &'static str)>,
    );

    #[test]
    fn table() {
        let daily = RecurringJob {
            name: "backup-daily".into(),
            task: "backup".into(),
            cron: "0 2 * * *".into(),
            groups: vec!["default".into()],
            retain: 7,
        };
        let at = |age: i64| Some(Timestamp::from_second(NOW - age).unwrap());
        let cases: Vec<Case> = vec![
            ("healthy", with(vec![vol("v")], three("v")), vec![]),
            (
                "degraded",
                with(
                    vec![Volume {
                        robustness: "degraded".into(),
                        ..vol("v")
                    }],
                    vec![rep("v", "n1", true), rep("v", "n2", true)],
                ),
                vec![("longhorn.volume_degraded", Severity::Warning, "v")],
            ),
            (
                "faulted",
                with(
                    vec![Volume {
                        robustness: "faulted".into(),
                        ..vol("v")
                    }],
                    vec![],
                ),
                vec![("longhorn.volume_faulted", Severity::Critical, "v")],
            ),
            (
                "unknown attached",
                with(
                    vec![Volume {
                        robustness: "unknown".into(),
                        ..vol("v")
                    }],
                    three("v"),
                ),
                vec![("longhorn.volume_unknown", Severity::Warning, "v")],
            ),
            (
                "unknown detached is normal",
                with(
                    vec![Volume {
                        robustness: "unknown".into(),
                        state: "detached".into(),
                        ..vol("v")
                    }],
                    vec![],
                ),
                vec![],
            ),
            (
                "one replica configured",
                with(
                    vec![Volume {
                        number_of_replicas: 1,
                        ..vol("v")
                    }],
                    vec![rep("v", "n1", true)],
                ),
                vec![
                    ("longhorn.few_replicas", Severity::Warning, "v"),
                    ("longhorn.last_replica", Severity::Warning, "v"),
                ],
            ),
            (
                "last healthy replica",
                with(
                    vec![Volume {
                        robustness: "degraded".into(),
                        ..vol("v")
                    }],
                    vec![rep("v", "n1", true), rep("v", "n2", false)],
                ),
                vec![
                    ("longhorn.last_replica", Severity::Warning, "v"),
                    ("longhorn.volume_degraded", Severity::Warning, "v"),
                ],
            ),
            (
                "all healthy on one node",
                with(
                    vec![Volume {
                        number_of_replicas: 2,
                        ..vol("v")
                    }],
                    vec![
                        rep("v", "n1", true),
                        Replica {
                            name: "x".into(),
                            ..rep("v", "n1", true)
                        },
                    ],
                ),
                vec![("longhorn.replicas_one_node", Severity::Warning, "v")],
            ),
            (
                "unencrypted",
                with(
                    vec![Volume {
                        encrypted: false,
                        ..vol("v")
                    }],
                    three("v"),
                ),
                vec![("longhorn.unencrypted", Severity::Info, "v")],
            ),
            (
                "backup fresh",
                LonghornState {
                    recurring_jobs: vec![daily.clone()],
                    ..with(
                        vec![Volume {
                            last_backup_at: at(3_600),
                            ..vol("v")
                        }],
                        three("v"),
                    )
                },
                vec![],
            ),
            (
                "backup stale",
                LonghornState {
                    recurring_jobs: vec![daily.clone()],
                    ..with(
                        vec![Volume {
                            last_backup_at: at(3 * 86_400),
                            ..vol("v")
                        }],
                        three("v"),
                    )
                },
                vec![("longhorn.backup_stale", Severity::Warning, "v")],
            ),
            (
                "never backed up",
                LonghornState {
                    recurring_jobs: vec![daily.clone()],
                    ..with(vec![vol("v")], three("v"))
                },
                vec![("longhorn.backup_stale", Severity::Warning, "v")],
            ),
            (
                "job not applying",
                LonghornState {
                    recurring_jobs: vec![daily.clone()],
                    ..with(
                        vec![Volume {
                            recurring_jobs: vec!["other".into()],
                            ..vol("v")
                        }],
                        three("v"),
                    )
                },
                vec![],
            ),
            (
                "target down",
                LonghornState {
                    backup_targets: vec![BackupTarget {
                        name: "default".into(),
                        url: "s3://b@r/".into(),
                        available: false,
                        message: "timeout".into(),
                    }],
                    ..Default::default()
                },
                vec![(
                    "longhorn.backup_target_unavailable",
                    Severity::Critical,
                    "default",
                )],
            ),
            (
                "node and disk",
                LonghornState {
                    nodes: vec![
                        LonghornNode {
                            name: "n1".into(),
                            ready: false,
                            schedulable: true,
                            disks: vec![],
                        },
                        LonghornNode {
                            name: "n2".into(),
                            ready: true,
                            schedulable: false,
                            disks: vec![],
                        },
                        LonghornNode {
                            name: "n3".into(),
                            ready: true,
                            schedulable: true,
                            disks: vec![Disk {
                                path: "/d".into(),
                                storage_maximum: 100,
                                storage_available: 10,
                                ..Default::default()
                            }],
                        },
                    ],
                    ..Default::default()
                },
                vec![
                    ("longhorn.node_not_ready", Severity::Warning, "n1"),
                    ("longhorn.node_unschedulable", Severity::Warning, "n2"),
                    ("longhorn.disk_full", Severity::Warning, "n3"),
                ],
            ),
        ];
        for (name, l, want) in cases {
            let mut got = run(l);
            got.sort();
            let mut want: Vec<(String, Severity, String)> = want
                .into_iter()
                .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
                .collect();
            want.sort();
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn cron_intervals() {
        for (c, want) in [
            ("0 2 * * *", Some(86_400)),
            ("0 */6 * * *", Some(6 * 3_600)),
            ("*/15 * * * *", Some(900)),
            ("0 3 * * 0", Some(7 * 86_400)),
            ("0 1 1 * *", Some(31 * 86_400)),
            ("0 1,13 * * *", Some(43_200)),
            ("@daily", Some(86_400)),
            ("bogus", None),
            ("0 * * * *", Some(3_600)),
        ] {
            assert_eq!(cron_interval_secs(c), want, "{c}");
        }
    }
}
