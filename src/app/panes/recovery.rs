//! The Recovery pane (8): could the cluster be rebuilt right now? One row per item (etcd
//! snapshots, Longhorn backups, certificates, secrets, clocks, etcd housekeeping) with its
//! age or expiry, target and verdict — the rows `check` judges from
//! (`model::assess::recovery_rows`).

use super::{App, Cell, Row, Table, Tone};
use crate::model::recovery::Verdict;

fn tone(v: Verdict) -> Tone {
    match v {
        Verdict::Ok => Tone::Ok,
        Verdict::Info => Tone::Info,
        Verdict::Warning => Tone::Warning,
        Verdict::Critical => Tone::Critical,
        Verdict::Unknown => Tone::Muted,
    }
}

pub(super) fn table(app: &App) -> Table {
    let rows = crate::model::assess::recovery_rows(
        &app.snapshot,
        &app.inventory,
        &app.config.thresholds,
        app.now,
    );
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|r| Row {
            key: format!("{}/{}", r.item.label(), r.target),
            aliases: vec![r.subject.clone()],
            cells: vec![
                Cell::new(r.item.label()),
                Cell::new(&r.target),
                Cell::new(&r.when),
                Cell::toned(r.verdict.as_str(), tone(r.verdict)),
                Cell::new(&r.note),
            ],
        })
        .collect();
    let mut t = Table {
        drop_order: vec![0, 0, 1, 0, 0],
        ..Table::new(
            vec!["ITEM", "TARGET", "WHEN", "VERDICT", "NOTE"],
            vec![15, 22, 14, 8, 30],
            rows,
        )
    };
    if t.rows.is_empty() {
        t.note = Some((
            "waiting for the cluster, etcd and the hosts (recovery needs their data)…".into(),
            Tone::Muted,
        ));
    }
    t
}
