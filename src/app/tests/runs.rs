//! Runs the dashboard does not own: found at start and attached to, quit during a run (it goes
//! on; `a` aborts it), an interrupted run offered to resume or abandon.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::inventory::Role;
use crate::operations::upgrade::{Control, Plan, PlanEntry, Step, UpgradeEvent};
use crate::tasks::{Following, FoundRun, Job, TaskEvent, TaskId};

fn plan(run_id: &str) -> Plan {
    Plan {
        run_id: run_id.into(),
        flake: "path:/infra".into(),
        kind: Default::default(),
        entries: vec![PlanEntry {
            host: "satellite_1".into(),
            node: "sat1".into(),
            role: Role::Agent,
            etcd_leader: false,
        }],
    }
}

fn found(run_id: &str, pid: Option<u32>) -> FoundRun {
    FoundRun {
        run_id: run_id.into(),
        plan: plan(run_id),
        pid,
        interrupted: Some(("sat1".into(), Step::Drain)),
    }
}

fn discovering() -> App {
    let mut a = app();
    a.discover_runs = true;
    a
}

/// The tick's search for runs, answered with `list`; the effect of the answer.
fn search_finds(a: &mut App, list: Vec<FoundRun>) -> Effect {
    let later = Timestamp::from_second(a.now.as_second() + 60).unwrap();
    let e = a.update(Msg::Tick(later));
    let t = task(&e);
    assert_eq!(t.job, Job::FindRuns);
    reply(a, t.id, TaskEvent::RunsFound(Ok(list)))
}

/// A live run found and attached to (engine pid 77), with its first step under way.
fn attached(a: &mut App) -> TaskId {
    let e = search_finds(a, vec![found("20261201-120000-abcd", Some(77))]);
    let t = task(&e).clone();
    assert_eq!(
        t.job,
        Job::AttachUpgrade {
            run_id: "20261201-120000-abcd".into()
        }
    );
    reply(
        a,
        t.id,
        TaskEvent::UpgradeStarted(Ok(Following {
            run_id: "20261201-120000-abcd".into(),
            pid: Some(77),
        })),
    );
    reply(
        a,
        t.id,
        TaskEvent::Upgrade(Box::new(UpgradeEvent::StepStarted {
            node: "sat1".into(),
            step: Step::Drain,
        })),
    );
    t.id
}

#[test]
fn a_live_run_is_found_attached_and_named_in_the_header() {
    let mut a = discovering();
    attached(&mut a);
    assert!(a.upgrade.running());
    assert_eq!(
        a.upgrade.summary().as_deref(),
        Some("upgrade 0/1 20261201-… running: sat1 drain — attached")
    );
    // while one is followed, nobody looks for others
    let later = Timestamp::from_second(a.now.as_second() + 600).unwrap();
    assert!(!matches!(a.update(Msg::Tick(later)), Effect::Start(_)));
}

#[test]
fn no_search_without_discovery_and_not_more_often_than_every_few_seconds() {
    let mut a = app();
    let later = Timestamp::from_second(a.now.as_second() + 60).unwrap();
    assert!(!matches!(a.update(Msg::Tick(later)), Effect::Start(_)));
    let mut a = discovering();
    assert_eq!(search_finds(&mut a, vec![]), Effect::None);
    let soon = Timestamp::from_second(a.now.as_second() + 1).unwrap();
    assert!(!matches!(a.update(Msg::Tick(soon)), Effect::Start(_)));
}

#[test]
fn quit_during_a_run_says_it_goes_on_then_leaves() {
    let mut a = discovering();
    let run = attached(&mut a);
    // q: not yet
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Redraw);
    assert_eq!(a.mode, Mode::Leaving);
    let text = a.leaving_text().join("\n");
    assert!(
        text.contains("20261201-120000-abcd goes on without the dashboard"),
        "{text}"
    );
    assert!(text.contains("pid 77"), "{text}");
    assert!(
        text.contains("upgrade --attach 20261201-120000-abcd"),
        "{text}"
    );
    assert!(!text.contains("demo"), "{text}");
    // any other key stays
    assert_eq!(key(&mut a, KeyCode::Char('x')), Effect::Redraw);
    assert_eq!(a.mode, Mode::Normal);
    // Ctrl-C asks the same; `a` asks to abort, and only y sends it
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(a.update(Msg::Key(ctrl_c)), Effect::Redraw);
    assert_eq!(a.mode, Mode::Leaving);
    key(&mut a, KeyCode::Char('a'));
    assert_eq!(a.mode, Mode::Confirm(Pending::Control(Control::Abort)));
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        Effect::Control {
            task: run,
            control: Control::Abort
        }
    );
    // q, q leaves, with a word for the terminal
    key(&mut a, KeyCode::Char('q'));
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Quit);
    let bye = a.farewell().unwrap_or_default();
    assert!(
        bye.contains("goes on without the dashboard (engine pid 77)"),
        "{bye}"
    );
    // a signal quits at once (the run goes on all the same)
    assert_eq!(a.update(Msg::Signal("SIGHUP")), Effect::Quit);
}

#[test]
fn the_demo_says_its_cluster_stops_with_it() {
    let mut a = discovering();
    a.demo = true;
    attached(&mut a);
    key(&mut a, KeyCode::Char('q'));
    let text = a.leaving_text().join("\n");
    assert!(
        text.contains(
            "the demo's simulated cluster stops with it; the engine stops at its next step"
        ),
        "{text}"
    );
    assert!(
        a.farewell()
            .unwrap_or_default()
            .contains("the engine stops at its next step")
    );
}

#[test]
fn without_a_run_quit_quits_and_a_finished_run_says_nothing() {
    let mut a = discovering();
    let run = attached(&mut a);
    reply(
        &mut a,
        run,
        TaskEvent::Upgrade(Box::new(UpgradeEvent::RunFinished {
            outcome: crate::operations::upgrade::RunOutcome::Completed,
        })),
    );
    assert!(!a.upgrade.running());
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Quit);
    assert_eq!(a.farewell(), None);
}

#[test]
fn a_lost_engine_leaves_an_interrupted_run_to_resume_or_abandon() {
    let mut a = discovering();
    let run = attached(&mut a);
    // the events end before the run did
    reply(&mut a, run, TaskEvent::UpgradeEnded);
    assert!(!a.upgrade.running(), "nothing runs any more");
    let sum = a.upgrade.summary().unwrap_or_default();
    assert!(sum.contains("interrupted at sat1 drain"), "{sum}");
    assert_eq!(key(&mut a, KeyCode::Char('q')), Effect::Quit, "q quits");
    // the next search says the same of a run found interrupted; R asks, y resumes it
    let mut a = discovering();
    assert_eq!(
        search_finds(&mut a, vec![found("20261201-120000-abcd", None)]),
        Effect::Redraw
    );
    let sum = a.upgrade.summary().unwrap_or_default();
    assert!(
        sum.contains("upgrade 20261201-… interrupted at sat1 drain"),
        "{sum}"
    );
    a.push(Mode::Upgrade);
    key(&mut a, KeyCode::Char('R'));
    assert_eq!(
        a.mode,
        Mode::Confirm(Pending::ResumeRun {
            run_id: "20261201-120000-abcd".into(),
            at: Some(("sat1".into(), Step::Drain)),
        })
    );
    let e = key(&mut a, KeyCode::Char('y'));
    assert_eq!(
        task(&e).job,
        Job::ResumeUpgrade {
            run_id: "20261201-120000-abcd".into()
        }
    );
    assert!(a.upgrade.starting);
    // X asks, y abandons
    let mut a = discovering();
    search_finds(&mut a, vec![found("20261201-120000-abcd", None)]);
    a.push(Mode::Upgrade);
    key(&mut a, KeyCode::Char('X'));
    let e = key(&mut a, KeyCode::Char('y'));
    let t = task(&e).clone();
    assert_eq!(
        t.job,
        Job::AbandonUpgrade {
            run_id: "20261201-120000-abcd".into()
        }
    );
    let e = reply(
        &mut a,
        t.id,
        TaskEvent::Abandoned(Ok(
            "run 20261201-120000-abcd: run abandoned; uncordoned: sat1".into(),
        )),
    );
    assert!(a.upgrade.interrupted.is_none());
    assert!(
        matches!(e, Effect::Start(ref t) if matches!(t.job, Job::PlanUpgrade { .. })),
        "the open upgrade view plans again: {e:?}"
    );
}

#[test]
fn read_only_watches_a_run_but_sends_no_control() {
    let mut a = discovering();
    a.read_only = true;
    attached(&mut a);
    key(&mut a, KeyCode::Char('q'));
    assert_eq!(a.mode, Mode::Leaving);
    // `a` does not offer an abort in read-only mode: it stays
    key(&mut a, KeyCode::Char('a'));
    assert_eq!(a.mode, Mode::Normal);
    a.push(Mode::Confirm(Pending::Control(Control::Pause)));
    assert_eq!(key(&mut a, KeyCode::Char('y')), Effect::Redraw);
    assert!(
        a.status
            .as_ref()
            .is_some_and(|s| s.0.contains("read-only mode")),
        "{:?}",
        a.status
    );
}

/// The split view beside the run: the node the run reboots reads NotReady with what the run
/// does to it, its etcd member down and the quorum left, each on one line of the column.
#[test]
fn the_health_column_shows_the_node_the_run_reboots() {
    use crate::model::cluster::{ClusterState, NodeInfo};
    use crate::model::etcd::{EtcdMember, EtcdState};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    let mut a = discovering();
    let run = attached(&mut a);
    reply(
        &mut a,
        run,
        TaskEvent::Upgrade(Box::new(UpgradeEvent::StepStarted {
            node: "sat1".into(),
            step: Step::Reboot,
        })),
    );
    let node = |name: &str, ready: Option<bool>, cordoned: bool| NodeInfo {
        name: name.into(),
        ready,
        unschedulable: cordoned,
        ..Default::default()
    };
    let mut cl = crate::model::Sourced::configured();
    cl.record(
        Ok(std::sync::Arc::new(ClusterState {
            nodes: vec![node("node1", Some(true), false), node("sat1", None, true)],
            ..Default::default()
        })),
        a.now,
    );
    a.snapshot.cluster = cl;
    let member = |id: u64, name: &str, healthy: bool| EtcdMember {
        id,
        name: name.into(),
        healthy,
        reachable: healthy,
        ..Default::default()
    };
    let mut etcd = crate::model::Sourced::configured();
    etcd.record(
        Ok(EtcdState {
            members: vec![
                member(1, "node1-3f2a", true),
                member(2, "node2-91c0", false),
                member(3, "node3-0a7e", true),
            ],
            ..Default::default()
        }),
        a.now,
    );
    a.snapshot.etcd = etcd;
    a.mode = Mode::Upgrade;
    a.invalidate();
    let mut term = Terminal::new(TestBackend::new(120, 35)).unwrap();
    let theme = crate::ui::Theme::load(None, true).unwrap();
    term.draw(|f| crate::ui::draw(f, &a, &theme)).unwrap();
    let buf = term.backend().buffer();
    let screen: String = (0..buf.area.height)
        .map(|y| {
            let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            row + "\n"
        })
        .collect();
    assert!(screen.contains("live health"), "{screen}");
    assert!(
        screen.contains(" sat1 NotReady (unknown) cordoned · rebooting"),
        "{screen}"
    );
    assert!(screen.contains(" node1 Ready"), "{screen}");
    assert!(
        screen.contains("2/3 healthy — no further failure tolerated"),
        "{screen}"
    );
    assert!(screen.contains("node2-91c0 down"), "{screen}");
}

/// While an attached run works on a node, the findings about it are expected: counted apart in
/// the header, drawn calm with the step and the run; another host's stay what they are; when
/// the run ends the marking ends.
#[test]
fn findings_about_the_node_a_run_works_on_are_expected() {
    use crate::sources::Update;
    let mut a = discovering();
    let run = attached(&mut a);
    for id in ["satellite_1", "instance_1"] {
        a.update(Msg::Update(Update::Host {
            id: id.into(),
            result: Err("connection refused".into()),
        }));
    }
    let ours: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| f.subject == "satellite_1")
        .collect();
    assert!(!ours.is_empty(), "{:?}", a.findings);
    assert!(
        ours.iter()
            .all(|f| f.maintenance.as_deref() == Some("20261201-120000-abcd")),
        "{ours:?}"
    );
    assert!(
        a.findings
            .iter()
            .filter(|f| f.subject == "instance_1")
            .all(|f| f.maintenance.is_none())
    );
    assert!(a.expected_count() >= 1);
    let counted =
        a.count(crate::model::Severity::Critical) + a.count(crate::model::Severity::Warning);
    assert!(counted >= 1, "instance_1's findings still count");
    let t = panes::table(&a, Pane::Findings);
    let row = t
        .rows
        .iter()
        .find(|r| r.key.contains("satellite_1"))
        .expect("its row");
    assert_eq!(row.cells[0].text, "expected");
    assert!(
        row.cells[3]
            .text
            .starts_with("sat1: drain — upgrade 20261201-120000-abcd"),
        "{}",
        row.cells[3].text
    );
    // The run ends: nothing is expected any more.
    reply(
        &mut a,
        run,
        TaskEvent::Upgrade(Box::new(UpgradeEvent::RunFinished {
            outcome: crate::operations::upgrade::RunOutcome::Completed,
        })),
    );
    assert_eq!(a.expected_count(), 0);
}
