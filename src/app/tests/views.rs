//! Derived state is rebuilt when its inputs change, not per key or per frame.

use std::sync::Arc;

use crossterm::event::KeyCode;

use super::*;
use crate::model::metrics::LogsState;

fn builds(a: &App, p: Pane) -> usize {
    a.views.builds.get()[p.index()]
}

#[test]
fn moving_does_not_rebuild_the_table() {
    let mut a = app();
    key(&mut a, KeyCode::Char('j'));
    let hosts = builds(&a, Pane::Hosts);
    assert!(hosts >= 1);
    for c in "jjkkGg".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    // and drawing reads the same table
    let _ = a.table(Pane::Hosts);
    let _ = a.table(Pane::Hosts);
    assert_eq!(
        builds(&a, Pane::Hosts),
        hosts,
        "j/k only move the selection"
    );
    assert_eq!(a.pane(Pane::Hosts).selected, 0);
    // a change of what it shows rebuilds it, once
    a.update(Msg::Update(Update::Host {
        id: "instance_1".into(),
        result: Err("connection refused".into()),
    }));
    let _ = a.table(Pane::Hosts);
    let _ = a.table(Pane::Hosts);
    assert_eq!(builds(&a, Pane::Hosts), hosts + 1);
    // so does its filter
    for c in "/sat".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let n = builds(&a, Pane::Hosts);
    assert_eq!(a.table(Pane::Hosts).rows.len(), 1);
    let _ = a.table(Pane::Hosts);
    assert_eq!(builds(&a, Pane::Hosts), n + 1, "once for the new filter");
}

#[test]
fn the_logs_pane_follows_the_hosts_selection() {
    let mut a = app();
    let first = a.table(Pane::Logs).subtitle.clone();
    let n = builds(&a, Pane::Logs);
    let _ = a.table(Pane::Logs);
    assert_eq!(builds(&a, Pane::Logs), n);
    key(&mut a, KeyCode::Char('j'));
    let second = a.table(Pane::Logs).subtitle.clone();
    assert_ne!(first, second, "another host's lines");
    assert_eq!(builds(&a, Pane::Logs), n + 1);
    // a Loki refresh rebuilds the Logs pane and nothing else
    let hosts = builds(&a, Pane::Hosts);
    let etcd = builds(&a, Pane::Etcd);
    let _ = a.table(Pane::Etcd);
    let etcd = builds(&a, Pane::Etcd).max(etcd);
    a.update(Msg::Update(Update::Logs(Ok(
        Arc::new(LogsState::default()),
    ))));
    let _ = (
        a.table(Pane::Hosts),
        a.table(Pane::Etcd),
        a.table(Pane::Logs),
    );
    assert_eq!(builds(&a, Pane::Hosts), hosts);
    assert_eq!(builds(&a, Pane::Etcd), etcd);
    assert_eq!(builds(&a, Pane::Logs), n + 2);
}

#[test]
fn log_lines_do_not_run_assess_but_a_change_of_loki_s_health_does() {
    let mut a = app();
    a.snapshot.loki = crate::model::Sourced::configured();
    a.update(Msg::Update(Update::Logs(Ok(
        Arc::new(LogsState::default()),
    ))));
    let runs = a.views.assessments.get();
    for _ in 0..3 {
        a.update(Msg::Update(Update::Logs(Ok(
            Arc::new(LogsState::default()),
        ))));
    }
    assert_eq!(a.views.assessments.get(), runs, "lines are not assessed");
    a.update(Msg::Update(Update::Logs(Err("connection refused".into()))));
    assert_eq!(a.views.assessments.get(), runs + 1);
    assert!(
        a.findings
            .iter()
            .any(|f| f.code == "source.loki.unreachable"),
        "{:?}",
        a.findings
    );
    // every other source is assessed on each update
    a.update(Msg::Update(Update::Etcd(Err("refused".into()))));
    assert_eq!(a.views.assessments.get(), runs + 2);
    // the clock alone: looked at again every few seconds, not every tick
    let t = a.now.as_second();
    a.update(Msg::Tick(jiff::Timestamp::from_second(t + 1).unwrap()));
    assert_eq!(a.views.assessments.get(), runs + 2);
    a.update(Msg::Tick(
        jiff::Timestamp::from_second(t + crate::app::views::RECHECK_SECS).unwrap(),
    ));
    assert_eq!(a.views.assessments.get(), runs + 3);
}

#[test]
fn the_renderer_s_layout_sets_the_page() {
    let mut a = app();
    a.update(Msg::Layout(LayoutFacts {
        page_rows: 2,
        overlay_rows: None,
    }));
    key(&mut a, KeyCode::PageDown);
    assert_eq!(a.pane(Pane::Hosts).selected, 2);
    assert_eq!(a.page_rows, 2);
}

#[test]
fn an_answer_equal_to_the_one_held_costs_no_assessment_table_or_frame() {
    use crate::model::host::HostFacts;
    use crate::model::metrics::{HostMetrics, MetricSeries, MetricsState};
    let mut a = app();
    let facts = HostFacts {
        nixos_version: Some("25.05.1".into()),
        uptime_secs: Some(100_000),
        ..Default::default()
    };
    let host = |f: &HostFacts| {
        Msg::Update(Update::Host {
            id: "instance_1".into(),
            result: Ok(f.clone()),
        })
    };
    a.update(host(&facts));
    let _ = a.table(Pane::Hosts);
    let (runs, tables) = (a.views.assessments.get(), builds(&a, Pane::Hosts));
    let first_ok = a.snapshot.hosts["instance_1"].status.last_ok;
    a.now = jiff::Timestamp::from_second(a.now.as_second() + 3).unwrap();
    // Three seconds later: the uptime moved on, its `1d` did not.
    let later = HostFacts {
        uptime_secs: Some(100_003),
        load: Some([0.5, 0.4, 0.3]),
        ..facts.clone()
    };
    assert_eq!(a.update(host(&later)), Effect::None, "nothing to draw");
    let _ = a.table(Pane::Hosts);
    assert_eq!(a.views.assessments.get(), runs);
    assert_eq!(builds(&a, Pane::Hosts), tables);
    assert!(
        a.snapshot.hosts["instance_1"].status.last_ok > first_ok,
        "the answer still counts as fresh"
    );
    // Another answer is taken in, assessed and drawn.
    let newer = HostFacts {
        nixos_version: Some("25.05.2".into()),
        ..facts.clone()
    };
    assert_eq!(a.update(host(&newer)), Effect::Redraw);
    let _ = a.table(Pane::Hosts);
    assert_eq!(a.views.assessments.get(), runs + 1);
    assert_eq!(builds(&a, Pane::Hosts), tables + 1);
    // A failure after the same facts is a change too.
    let failed = Msg::Update(Update::Host {
        id: "instance_1".into(),
        result: Err("connection refused".into()),
    });
    assert_eq!(a.update(failed), Effect::Redraw);
    assert_eq!(a.views.assessments.get(), runs + 2);

    // Metrics: the same figures read 15 s later (every point 15 s later) change nothing; a
    // figure that moved does.
    let reading = |at: i64, cpu: f64| {
        let mut m = MetricsState {
            at,
            ..Default::default()
        };
        m.hosts.insert(
            "instance_1".into(),
            HostMetrics {
                cpu_pct: MetricSeries {
                    current: Some(cpu),
                    points: vec![(at - 60, 10.0), (at, cpu)],
                },
                ..Default::default()
            },
        );
        Msg::Update(Update::Metrics(Ok(Arc::new(m))))
    };
    a.update(reading(1_700_000_000, 12.5));
    let runs = a.views.assessments.get();
    assert_eq!(a.update(reading(1_700_000_015, 12.5)), Effect::None);
    assert_eq!(a.views.assessments.get(), runs);
    assert_eq!(a.update(reading(1_700_000_030, 13.0)), Effect::Redraw);
    assert_eq!(a.views.assessments.get(), runs + 1);
}

/// In the event loop's way (deferred), a burst of answers is assessed once, when the loop
/// settles the app before it draws or before a key: the key sees every answer assessed.
#[test]
fn a_burst_of_answers_is_assessed_once_when_the_loop_settles() {
    let mut a = app();
    a.defer_assessment();
    let runs = a.views.assessments.get();
    let ids: Vec<String> = a.inventory.hosts.iter().map(|h| h.id.clone()).collect();
    assert!(ids.len() >= 2);
    for id in &ids {
        let e = a.update(Msg::Update(Update::Host {
            id: id.clone(),
            result: Err("connection refused".into()),
        }));
        assert_eq!(e, Effect::Redraw, "each answer still asks for a frame");
    }
    assert_eq!(a.views.assessments.get(), runs, "not yet: the loop settles");
    a.settle();
    assert_eq!(a.views.assessments.get(), runs + 1, "once for the burst");
    for h in &a.inventory.hosts {
        assert!(
            a.findings
                .iter()
                .any(|f| f.code.starts_with("host.ssh_") && f.subject == h.id),
            "{}'s failure is in the findings: {:?}",
            h.hostname,
            a.findings
        );
    }
    a.settle();
    assert_eq!(
        a.views.assessments.get(),
        runs + 1,
        "nothing new, nothing to do"
    );
    // A key settles first: what it reads is assessed.
    a.update(Msg::Update(Update::Host {
        id: ids[0].clone(),
        result: Err("no route to host".into()),
    }));
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.views.assessments.get(), runs + 2);
}

/// A pane that shows ages by the clock is built again when an age it shows reads
/// differently, not every second: `1m` holds until the node is two minutes old.
#[test]
fn an_age_on_screen_rebuilds_its_table_when_it_reads_differently() {
    use crate::model::cluster::{ClusterState, NodeInfo};
    let mut a = app();
    let t0 = a.now;
    a.update(Msg::Update(Update::Cluster(Ok(Arc::new(ClusterState {
        nodes: vec![NodeInfo {
            name: "node1".into(),
            ready: Some(true),
            created: Some(jiff::Timestamp::from_second(t0.as_second() - 100).unwrap()),
            ..Default::default()
        }],
        ..Default::default()
    })))));
    let age = |a: &App| {
        let t = a.table(Pane::Nodes);
        let col = t
            .header
            .iter()
            .position(|h| *h == "AGE")
            .expect("AGE column");
        t.rows[0].cells[col].text.clone()
    };
    assert_eq!(age(&a), "1m");
    let built = builds(&a, Pane::Nodes);
    for s in 1..20 {
        a.now = jiff::Timestamp::from_second(t0.as_second() + s).unwrap();
        assert_eq!(age(&a), "1m");
    }
    assert_eq!(builds(&a, Pane::Nodes), built, "the same `1m` for 19 s");
    a.now = jiff::Timestamp::from_second(t0.as_second() + 20).unwrap();
    assert_eq!(age(&a), "2m", "two minutes old");
    assert_eq!(builds(&a, Pane::Nodes), built + 1);
}
