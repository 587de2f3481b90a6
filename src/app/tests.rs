use std::path::Path;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::model::cluster::{ClusterState, NodeInfo};
use crate::model::{Severity, Sourced};

fn inv() -> Inventory {
    let text = include_str!("../../hosts.json");
    crate::inventory::parse(Path::new("hosts.json"), text).unwrap()
}

fn app() -> App {
    App::new(
        inv(),
        Config::default(),
        Keymap::default(),
        Snapshot::default(),
        "test".into(),
        false,
        Timestamp::from_second(1_700_000_000).unwrap(),
    )
}

fn key(app: &mut App, c: KeyCode) -> Effect {
    app.update(Msg::Key(KeyEvent::new(c, KeyModifiers::NONE)))
}

/// The task an effect hands to the registry.
fn task(e: &Effect) -> &crate::tasks::Task {
    match e {
        Effect::Start(t) => t,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn reply(app: &mut App, id: crate::tasks::TaskId, event: crate::tasks::TaskEvent) -> Effect {
    app.update(Msg::Task(crate::tasks::TaskMsg { id, event }))
}

#[test]
fn focus_cycles_with_tab_and_digits() {
    let mut a = app();
    assert_eq!(a.focus, Pane::Hosts);
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.focus, Pane::Nodes);
    key(&mut a, KeyCode::BackTab);
    key(&mut a, KeyCode::BackTab);
    assert_eq!(a.focus, Pane::Recovery);
    key(&mut a, KeyCode::BackTab);
    assert_eq!(a.focus, Pane::Findings);
    key(&mut a, KeyCode::Char('8'));
    assert_eq!(a.focus, Pane::Recovery);
    key(&mut a, KeyCode::Char('3'));
    assert_eq!(a.focus, Pane::Etcd);
}

#[test]
fn movement_is_clamped() {
    let mut a = app();
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.pane(Pane::Hosts).selected, 2);
    key(&mut a, KeyCode::Char('G'));
    assert_eq!(a.pane(Pane::Hosts).selected, 3);
    key(&mut a, KeyCode::Down);
    assert_eq!(a.pane(Pane::Hosts).selected, 3);
    key(&mut a, KeyCode::Char('g'));
    key(&mut a, KeyCode::Up);
    assert_eq!(a.pane(Pane::Hosts).selected, 0);
    a.page_rows = 2;
    key(&mut a, KeyCode::PageDown);
    assert_eq!(a.pane(Pane::Hosts).selected, 2);
}

#[test]
fn filter_typing_and_clearing() {
    let mut a = app();
    key(&mut a, KeyCode::Char('/'));
    assert_eq!(a.mode, Mode::Filtering);
    for c in "sat".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    // 'q' while filtering is text, not quit
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Redraw);
    key(&mut a, KeyCode::Backspace);
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.mode, Mode::Normal);
    let t = panes::table(&a, Pane::Hosts);
    assert_eq!((t.rows.len(), t.total), (1, 4));
    assert_eq!(t.rows[0].key, "satellite_1");
    key(&mut a, KeyCode::Esc);
    assert_eq!(panes::table(&a, Pane::Hosts).rows.len(), 4);
}

#[test]
fn enter_opens_detail_and_esc_goes_back() {
    let mut a = app();
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.mode, Mode::Detail("instance_2".into()));
    let d = panes::detail(&a, Pane::Hosts, "instance_2");
    assert!(
        d.contains(&("hostname".to_string(), "node2".to_string())),
        "{d:?}"
    );
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn help_toggles_and_any_key_closes() {
    let mut a = app();
    key(&mut a, KeyCode::Char('?'));
    assert_eq!(a.mode, Mode::Help);
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.mode, Mode::Normal);
    assert_eq!(
        a.pane(Pane::Hosts).selected,
        0,
        "the closing key does nothing else"
    );
    key(&mut a, KeyCode::Char('?'));
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Quit);
}

#[test]
fn quit_keys() {
    let mut a = app();
    assert_eq!(
        a.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL
        ))),
        Effect::Quit
    );
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Quit);
    assert_eq!(key(&mut a, KeyCode::Char('r')), Effect::Refresh);
}

#[test]
fn tick_redraws_only_when_the_second_changes() {
    let mut a = app();
    let t = a.now;
    assert_eq!(a.update(Msg::Tick(t)), Effect::None);
    assert_eq!(
        a.update(Msg::Tick(
            Timestamp::from_second(t.as_second() + 1).unwrap()
        )),
        Effect::Redraw
    );
}

#[test]
fn source_update_reassesses_and_findings_jump_to_subject() {
    let mut a = app();
    a.snapshot.cluster = Sourced::configured();
    a.update(Msg::Update(Update::Cluster(Err(
        "connection refused".into()
    ))));
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "source.kubernetes.unreachable")
        .unwrap();
    assert_eq!(f.severity, Severity::Critical);
    a.update(Msg::Update(Update::Cluster(Ok(Arc::new(ClusterState {
        nodes: vec![NodeInfo {
            name: "node1".into(),
            ready: Some(true),
            ..Default::default()
        }],
        ..Default::default()
    })))));
    assert!(
        a.findings
            .iter()
            .all(|f| f.code != "source.kubernetes.unreachable")
    );
    assert_eq!(panes::table(&a, Pane::Nodes).rows.len(), 1);
    // a finding about a host jumps to the Hosts pane and selects that host
    a.findings = vec![Finding::new(
        Severity::Warning,
        "host.reboot_needed",
        "node3",
        "m",
    )];
    a.invalidate();
    key(&mut a, KeyCode::Char('7'));
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.focus, Pane::Hosts);
    assert_eq!(a.selected_key(Pane::Hosts).as_deref(), Some("instance_3"));
}

#[test]
fn host_detail_shows_facts_and_posture_and_scrolls() {
    use crate::model::host::{Fail2ban, HostFacts, Posture};
    let mut a = app();
    let facts = HostFacts {
        nixos_version: Some("24.05.20240601.abcdef".into()),
        generation: Some(42),
        reboot_needed: Some(true),
        reboot_reasons: vec!["kernel".into()],
        failed_units: Some(vec!["nfs-mountd.service".into()]),
        posture: Posture {
            fail2ban: Some(Fail2ban::Running {
                jails: vec!["sshd".into()],
                banned: 2,
            }),
            k3s_token_present: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut src = Sourced::configured();
    src.record(Ok(facts), a.now);
    a.snapshot.hosts.insert("instance_1".into(), src);
    let d = panes::detail(&a, Pane::Hosts, "instance_1");
    let get = |k: &str| {
        d.iter()
            .find(|(l, _)| l == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("generation"), "42");
    assert_eq!(get("reboot needed"), "yes — kernel changed");
    assert_eq!(get("failed units"), "nfs-mountd.service");
    assert_eq!(get("fail2ban"), "running, 2 banned, jails: sshd");
    assert_eq!(get("k3s token secret"), "MISSING");
    assert_eq!(get("sshd settings"), "unknown");
    assert!(get("ssh state").starts_with("connected"), "{d:?}");
    // the Hosts pane shows the badges
    let t = panes::table(&a, Pane::Hosts);
    assert_eq!(t.rows[0].cells.last().unwrap().text, "reboot, 1 failed");
    // j/k scroll the detail view instead of moving the selection under it
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.detail_scroll, 2);
    assert_eq!(a.pane(Pane::Hosts).selected, 0);
}

#[test]
fn diff_cache_is_keyed_by_deployed_system_and_lock() {
    use crate::tasks::{Job, TaskEvent};
    let mut a = app();
    assert!(!a.diff_is_fresh("instance_1", Some("l1")));
    let started = a.start_diff("instance_1", Some("l1".into()));
    let id = task(&started).id;
    assert!(
        a.diff_is_fresh("instance_1", Some("l2")),
        "a running diff is not restarted"
    );
    reply(&mut a, id, TaskEvent::Diff(Err("boom".into())));
    assert!(a.diff_is_fresh("instance_1", Some("l1")));
    assert!(
        !a.diff_is_fresh("instance_1", Some("l2")),
        "a new lock makes it stale"
    );
    // a new deployed system makes it stale too
    let mut src = Sourced::configured();
    src.record(
        Ok(crate::model::host::HostFacts {
            current_system: Some("/nix/store/x".into()),
            ..Default::default()
        }),
        a.now,
    );
    a.snapshot.hosts.insert("instance_1".into(), src);
    assert!(!a.diff_is_fresh("instance_1", Some("l1")));
    // d on a host opens the view and reads the lock (a task) before deciding
    let opened = key(&mut a, KeyCode::Char('d'));
    let read = task(&opened);
    assert_eq!(
        read.job,
        Job::LockFingerprint {
            host: "instance_1".into()
        }
    );
    assert_eq!(a.mode, Mode::Diff("instance_1".into()));
    // stale: the diff runs, against the deployed system, with the lock it was read with
    let read = read.id;
    let run = reply(&mut a, read, TaskEvent::Lock(Some("l1".into())));
    assert_eq!(
        task(&run).job,
        Job::Diff {
            host: "instance_1".into(),
            deployed: Some("/nix/store/x".into())
        }
    );
    assert!(a.diffs["instance_1"].running);
    assert!(a.diff_is_fresh("instance_1", Some("l1")));
}

#[test]
fn lock_fingerprint_follows_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let nix = crate::config::NixConfig {
        flake: Some(dir.path().display().to_string()),
        ..Default::default()
    };
    assert_eq!(crate::tasks::diff::lock_fingerprint(&nix), None);
    std::fs::write(dir.path().join("flake.lock"), "{\"a\":1}").unwrap();
    let one = crate::tasks::diff::lock_fingerprint(&nix).unwrap();
    std::fs::write(dir.path().join("flake.lock"), "{\"a\":2}").unwrap();
    let two = crate::tasks::diff::lock_fingerprint(&nix).unwrap();
    assert_ne!(one, two);
    let remote = crate::config::NixConfig {
        flake: Some("github:me/infra".into()),
        ..Default::default()
    };
    assert_eq!(crate::tasks::diff::lock_fingerprint(&remote), None);
}

#[test]
fn upgrade_plans_all_hosts_or_the_filtered_ones() {
    use crate::tasks::{Job, TaskEvent};
    let mut a = app();
    let plan = key(&mut a, KeyCode::Char('U'));
    assert_eq!(task(&plan).job, Job::PlanUpgrade { only: vec![] });
    assert_eq!(a.mode, Mode::Upgrade);
    // the plan arrives (here: a refusal), the operator leaves the view
    reply(
        &mut a,
        task(&plan).id,
        TaskEvent::Planned(Err("lock held".into())),
    );
    assert!(!a.upgrade.planning);
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Normal);
    // a filter on the Hosts pane narrows the plan to the hosts it shows
    for c in "/node".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(
        task(&key(&mut a, KeyCode::Char('U'))).job,
        Job::PlanUpgrade {
            only: vec![
                "instance_1".into(),
                "instance_2".into(),
                "instance_3".into()
            ]
        }
    );
    // read-only refuses, visibly
    let mut ro = app();
    ro.read_only = true;
    assert_eq!(key(&mut ro, KeyCode::Char('U')), Effect::Redraw);
    assert_eq!(ro.mode, Mode::Normal);
    assert!(ro.status.as_ref().unwrap().0.contains("read-only"));
}

mod layers;
mod runs;
mod views;

/// Longhorn as its own source: its failure marks the Longhorn pane (and the volumes item of
/// the health line) only; the Nodes pane keeps its rows and no note. A failing Mimir query
/// says which, since when and why in the Metrics pane.
#[test]
fn a_longhorn_failure_marks_only_its_pane_and_a_failing_query_shows_in_metrics() {
    let mut a = app();
    let t0 = Timestamp::from_second(1_700_000_000).unwrap();
    let mut c = ClusterState {
        nodes: vec![NodeInfo {
            name: "node1".into(),
            ready: Some(true),
            ..Default::default()
        }],
        ..Default::default()
    };
    c.longhorn.installed = true;
    c.longhorn.error = Some(crate::model::cluster::LonghornError {
        since: t0,
        message: "Longhorn: cannot list volumes: HTTP 500".into(),
    });
    a.update(Msg::Update(crate::sources::Update::Cluster(Ok(Arc::new(
        c,
    )))));
    let mut m = crate::model::metrics::MetricsState {
        at: 1_700_000_000,
        ..Default::default()
    };
    m.query_errors
        .insert("net_tx".into(), "bad_data: unsupported".into());
    m.query_failing_since.insert("net_tx".into(), 1_700_000_000);
    a.update(Msg::Update(crate::sources::Update::Metrics(Ok(Arc::new(
        m,
    )))));

    let lh = panes::table(&a, Pane::Longhorn);
    let (note, tone) = lh.note.expect("the Longhorn pane says why");
    assert!(
        note.starts_with("Longhorn unreachable since ")
            && note.ends_with("cannot list volumes: HTTP 500"),
        "{note}"
    );
    assert_eq!(tone, panes::Tone::Critical);
    let nodes = panes::table(&a, Pane::Nodes);
    assert!(nodes.note.is_none(), "{:?}", nodes.note);
    assert_eq!(nodes.rows.len(), 1);
    let items = health::items(&a);
    let vol = items.iter().find(|i| i.what == "volumes").unwrap();
    assert_eq!(
        (vol.full.as_str(), vol.tone),
        ("volumes unreachable", panes::Tone::Critical)
    );
    let node_item = items.iter().find(|i| i.what == "nodes").unwrap();
    assert_eq!(node_item.full, "nodes 1/1 Ready");
    assert!(
        a.findings
            .iter()
            .any(|f| f.code == "source.longhorn.unreachable"),
        "{:?}",
        a.findings
    );
    assert!(
        !a.findings
            .iter()
            .any(|f| f.code == "source.kubernetes.unreachable")
    );

    let metrics = panes::table(&a, Pane::Metrics);
    let (note, tone) = metrics.note.expect("the Metrics pane names the query");
    assert!(
        note.starts_with("Mimir query net_tx failing since ")
            && note.ends_with(": bad_data: unsupported"),
        "{note}"
    );
    assert_eq!(tone, panes::Tone::Warning);
    assert!(
        a.findings
            .iter()
            .any(|f| f.code == "source.mimir.query_failed" && f.subject == "net_tx"),
        "{:?}",
        a.findings
    );
}

#[test]
fn an_idle_frame_is_drawn_again_only_when_what_it_shows_of_the_clock_changes() {
    use crate::model::cluster::{ClusterState, NodeInfo};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    let mut a = app();
    a.tz = jiff::tz::TimeZone::UTC;
    // 22:13:20 UTC; a node created 590 s ago (its age reads "9m" until 22:13:30, then "10m").
    let t0 = a.now.as_second();
    let mut cl = crate::model::Sourced::configured();
    cl.record(
        Ok(std::sync::Arc::new(ClusterState {
            nodes: vec![NodeInfo {
                name: "node1".into(),
                ready: Some(true),
                created: Some(Timestamp::from_second(t0 - 590).unwrap()),
                ..Default::default()
            }],
            ..Default::default()
        })),
        a.now,
    );
    a.snapshot.cluster = cl;
    a.invalidate();
    a.reassess();
    let theme = crate::ui::Theme::load(None, true).unwrap();
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let mut draw = |a: &mut App| {
        let (r, until) =
            panes::valid_until(|| term.draw(|f| crate::ui::draw(f, a, &theme)).map(|_| ()));
        r.unwrap();
        a.drawn(until);
    };
    let tick = |a: &mut App, s: i64| a.update(Msg::Tick(Timestamp::from_second(s).unwrap()));
    draw(&mut a);
    // The Nodes table comes from the cache this time: it still says until when it holds.
    draw(&mut a);
    for s in t0 + 1..t0 + 10 {
        assert_eq!(tick(&mut a, s), Effect::None, "second {s}");
    }
    assert_eq!(tick(&mut a, t0 + 10), Effect::Redraw, "the age reads 10m");
    draw(&mut a);
    // Then only the header's clock: 22:13 until 22:14:00.
    for s in t0 + 11..t0 + 40 {
        assert_eq!(tick(&mut a, s), Effect::None, "second {s}");
    }
    assert_eq!(tick(&mut a, t0 + 40), Effect::Redraw, "22:14");
    draw(&mut a);
    assert_eq!(tick(&mut a, t0 + 41), Effect::None);
    // With `[ui] clock_seconds`: every second.
    a.config.ui.clock_seconds = true;
    draw(&mut a);
    assert_eq!(tick(&mut a, t0 + 42), Effect::Redraw);
    draw(&mut a);
    assert_eq!(tick(&mut a, t0 + 43), Effect::Redraw);
}
