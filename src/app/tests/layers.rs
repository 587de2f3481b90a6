//! The mode stack, the layered keys and the questions.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::inventory::Role;
use crate::model::closure::ClosureDiff;
use crate::operations::upgrade::{Control, Plan, PlanEntry};
use crate::tasks::{Job, Planned, TaskEvent, TaskKey};

fn plan_of(nodes: &[(&str, &str)]) -> Plan {
    Plan {
        run_id: "run-1".into(),
        flake: "path:/infra".into(),
        kind: Default::default(),
        entries: nodes
            .iter()
            .map(|(host, node)| PlanEntry {
                host: host.to_string(),
                node: node.to_string(),
                role: Role::Agent,
                etcd_leader: false,
            })
            .collect(),
    }
}

/// The upgrade view with this plan arrived.
fn planned(a: &mut App, plan: Plan) {
    let e = key(a, KeyCode::Char('U'));
    let id = task(&e).id;
    reply(
        a,
        id,
        TaskEvent::Planned(Ok(Box::new(Planned {
            plan,
            verdicts: vec![],
            lock: None,
            forecast: None,
            notes: Vec::new(),
        }))),
    );
    assert_eq!(a.mode, Mode::Upgrade);
}

#[test]
fn help_from_the_diff_view_returns_to_the_diff_view() {
    let mut a = app();
    key(&mut a, KeyCode::Char('d'));
    assert_eq!(a.mode, Mode::Diff("instance_1".into()));
    key(&mut a, KeyCode::Char('?'));
    assert_eq!(a.mode, Mode::Help);
    assert_eq!(a.covered(), &Mode::Diff("instance_1".into()));
    assert_eq!(
        a.help_layer(),
        Layer::Diff,
        "help lists the diff view's keys"
    );
    key(&mut a, KeyCode::Char('j'));
    assert_eq!(a.mode, Mode::Diff("instance_1".into()));
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Normal);
    // and from the detail view back to it
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Char('?'));
    key(&mut a, KeyCode::Char('x'));
    assert_eq!(a.mode, Mode::Detail("instance_1".into()));
}

#[test]
fn a_question_returns_to_the_view_that_asked_it() {
    let mut a = app();
    planned(&mut a, plan_of(&[("satellite_1", "sat1")]));
    key(&mut a, KeyCode::Char('y'));
    assert!(matches!(
        a.mode,
        Mode::Confirm(Pending::StartUpgrade { .. })
    ));
    assert_eq!(a.covered(), &Mode::Upgrade);
    assert_eq!(key(&mut a, KeyCode::Char('n')), Effect::Redraw);
    assert_eq!(a.mode, Mode::Upgrade, "back to the plan, not the dashboard");
    assert_eq!(a.status.as_ref().map(|s| s.0.as_str()), Some("cancelled"));
    // a question on the dashboard returns to the dashboard
    let mut a = app();
    a.snapshot.cluster.record(
        Ok(std::sync::Arc::new(crate::model::cluster::ClusterState {
            nodes: vec![crate::model::cluster::NodeInfo {
                name: "node1".into(),
                ..Default::default()
            }],
            ..Default::default()
        })),
        a.now,
    );
    a.invalidate();
    key(&mut a, KeyCode::Char('2'));
    key(&mut a, KeyCode::Char('c'));
    assert_eq!(
        a.mode,
        Mode::Confirm(Pending::Cordon {
            node: "node1".into()
        })
    );
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn enter_never_confirms_only_y_does() {
    let mut a = app();
    planned(&mut a, plan_of(&[("satellite_1", "sat1")]));
    // Enter, Enter on the plan does nothing at all
    assert_eq!(key(&mut a, KeyCode::Enter), Effect::None);
    assert_eq!(a.mode, Mode::Upgrade);
    key(&mut a, KeyCode::Char('y'));
    assert_eq!(key(&mut a, KeyCode::Enter), Effect::Redraw);
    assert_eq!(a.mode, Mode::Upgrade, "Enter said no");
    assert!(!a.upgrade.starting);
    // y, y starts exactly the plan that was shown
    key(&mut a, KeyCode::Char('y'));
    let e = key(&mut a, KeyCode::Char('y'));
    assert_eq!(
        task(&e).job,
        Job::StartUpgrade {
            plan: plan_of(&[("satellite_1", "sat1")])
        }
    );
    assert!(a.upgrade.starting);
    assert_eq!(a.mode, Mode::Upgrade);
    // while it starts, y asks nothing more
    assert_eq!(key(&mut a, KeyCode::Char('y')), Effect::None);
    // the run started: a control is a question too, and its yes goes to the run's task
    let run = task(&e).id;
    reply(
        &mut a,
        run,
        TaskEvent::UpgradeStarted(Ok(crate::tasks::Following {
            run_id: "run-1".into(),
            pid: Some(7),
        })),
    );
    assert!(a.upgrade.running());
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(a.mode, Mode::Confirm(Pending::Control(Control::Pause)));
    assert_eq!(key(&mut a, KeyCode::Enter), Effect::Redraw);
    assert!(!a.upgrade.paused);
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        Effect::Control {
            task: run,
            control: Control::Pause
        }
    );
    assert!(!a.upgrade.paused, "paused once the run took it");
    reply(&mut a, run, TaskEvent::ControlSent(Control::Pause));
    assert!(a.upgrade.paused);
    // the same for a cordon
    let mut a = app();
    a.push(Mode::Confirm(Pending::Cordon {
        node: "node1".into(),
    }));
    assert_eq!(key(&mut a, KeyCode::Enter), Effect::Redraw);
    a.push(Mode::Confirm(Pending::Cordon {
        node: "node1".into(),
    }));
    assert_eq!(
        task(&key(&mut a, KeyCode::Char('y'))).job,
        Job::Cordon {
            node: "node1".into()
        }
    );
}

#[test]
fn the_start_question_names_each_node_and_its_reboot() {
    let mut a = app();
    // instance_1's diff is known (and fresh: no deployed system reported, none diffed)
    let e = a.start_diff("instance_1", None);
    let mut d = ClosureDiff::default();
    d.reboot.required = true;
    d.reboot.reason = "the kernel changes".into();
    reply(&mut a, task(&e).id, TaskEvent::Diff(Ok(Box::new(d))));
    // a diff computed without a deployed system says nothing about what will be switched
    let plan = plan_of(&[("satellite_1", "sat1"), ("instance_1", "node1")]);
    assert_eq!(
        a.reboot_forecast(&plan),
        vec![
            "reboot: decided after switch",
            "reboot: decided after switch"
        ]
    );
    let mut facts = Sourced::configured();
    facts.record(
        Ok(crate::model::host::HostFacts {
            current_system: Some("/nix/store/x".into()),
            ..Default::default()
        }),
        a.now,
    );
    a.snapshot.hosts.insert("instance_1".into(), facts);
    let e = a.start_diff("instance_1", None);
    let mut d = ClosureDiff::default();
    d.reboot.required = true;
    d.reboot.reason = "the kernel changes".into();
    reply(&mut a, task(&e).id, TaskEvent::Diff(Ok(Box::new(d))));
    planned(&mut a, plan.clone());
    key(&mut a, KeyCode::Char('y'));
    let Mode::Confirm(p) = &a.mode else {
        panic!("{:?}", a.mode)
    };
    assert_eq!(
        p.question(),
        vec![
            "Start the rolling upgrade of 2 node(s)?".to_string(),
            "Each is cordoned, drained and switched, in this order:".to_string(),
            "  1. sat1 (agent) — reboot: decided after switch".to_string(),
            "  2. node1 (agent) — reboots (the kernel changes)".to_string(),
        ]
    );
    // with reboot = "never" no node reboots
    a.config.upgrade.reboot = crate::config::RebootPolicy::Never;
    assert_eq!(
        a.reboot_forecast(&plan),
        vec!["no reboot (reboot = \"never\")"; 2]
    );
}

#[test]
fn the_diff_view_filters_with_the_same_text_field() {
    let mut a = app();
    let e = a.start_diff("instance_1", None);
    reply(
        &mut a,
        task(&e).id,
        TaskEvent::Diff(Ok(Box::new(ClosureDiff::default()))),
    );
    a.push(Mode::Diff("instance_1".into()));
    for c in "/k3".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    assert_eq!(a.mode, Mode::Filtering);
    key(&mut a, KeyCode::Left);
    key(&mut a, KeyCode::Char('x'));
    assert_eq!(a.diffs["instance_1"].filter.as_str(), "kx3");
    assert_eq!(a.pane(Pane::Hosts).filter.as_str(), "", "not the pane's");
    key(&mut a, KeyCode::Enter);
    assert_eq!(
        a.mode,
        Mode::Diff("instance_1".into()),
        "back to the diff view"
    );
    // Esc in the diff view stops a running diff
    let e = a.start_diff("instance_1", None);
    assert!(matches!(e, Effect::Start(_)));
    assert_eq!(
        key(&mut a, KeyCode::Esc),
        Effect::Cancel(TaskKey::Diff("instance_1".into()))
    );
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn a_stale_diff_result_does_not_overwrite_the_running_one() {
    let mut a = app();
    let first = task(&a.start_diff("instance_1", None)).id;
    let second = task(&a.start_diff("instance_1", None)).id;
    reply(&mut a, first, TaskEvent::Cancelled);
    reply(&mut a, first, TaskEvent::Diff(Err("cancelled".into())));
    assert!(a.diffs["instance_1"].running, "the newer diff still runs");
    reply(&mut a, second, TaskEvent::Progress("copying".into()));
    assert_eq!(
        a.diffs["instance_1"].log.back().map(String::as_str),
        Some("copying")
    );
    assert_eq!(
        a.tasks
            .iter()
            .next()
            .and_then(|(_, r)| r.progress.as_deref()),
        Some("copying"),
        "the task list has its latest progress"
    );
    reply(&mut a, second, TaskEvent::Cancelled);
    assert!(!a.diffs["instance_1"].running);
    assert!(a.tasks.is_empty(), "every task ended");
}

#[test]
fn a_layer_override_reaches_the_app() {
    let mut o = std::collections::BTreeMap::new();
    o.insert(
        "diff".to_string(),
        crate::config::KeyOverride::Layer(
            [("x".to_string(), "export".to_string())]
                .into_iter()
                .collect(),
        ),
    );
    let mut a = app();
    a.keymap = Keymap::with_overrides(&o).unwrap();
    let e = a.start_diff("instance_1", None);
    reply(
        &mut a,
        task(&e).id,
        TaskEvent::Diff(Ok(Box::new(ClosureDiff::default()))),
    );
    a.push(Mode::Diff("instance_1".into()));
    let e = a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('x'),
        KeyModifiers::NONE,
    )));
    assert!(
        matches!(&task(&e).job, Job::ExportDiff { host, .. } if host == "instance_1"),
        "{e:?}"
    );
    assert_eq!(
        reply(
            &mut a,
            task(&e).id,
            TaskEvent::Exported(Ok("/tmp/x.txt".into()))
        ),
        Effect::Redraw
    );
    assert_eq!(
        a.status,
        Some(("diff exported to /tmp/x.txt".into(), panes::Tone::Ok))
    );
}

#[test]
fn signals_and_a_lost_terminal_end_the_loop() {
    let mut a = app();
    assert_eq!(a.update(Msg::Signal("SIGTERM")), Effect::Quit);
    assert_eq!(a.update(Msg::TerminalGone(None)), Effect::Quit);
    assert!(matches!(
        a.update(Msg::TerminalGone(Some("EIO".into()))),
        Effect::Fail(e) if e.contains("EIO")
    ));
}

#[test]
fn continuing_after_a_stop_redraws_and_does_not_quit() {
    let mut a = app();
    assert_eq!(a.update(Msg::Continued), Effect::Redraw);
}

#[test]
fn suspending_is_refused_only_while_the_demo_runs_an_upgrade() {
    let mut a = app();
    assert_eq!(a.update(Msg::Suspend), Effect::Suspend);
    assert_eq!(a.status, None);
    // A real cluster's run is its own process: stopping the dashboard does not stop it.
    a.upgrade.starting = true;
    assert_eq!(a.update(Msg::Suspend), Effect::Suspend);
    // The demo's simulated cluster lives in this process: stopping it would freeze the run.
    a.demo = true;
    assert_eq!(a.update(Msg::Suspend), Effect::Redraw);
    assert!(
        matches!(&a.status, Some((m, panes::Tone::Warning)) if m.contains("Ctrl-Z refused") && m.contains("simulated")),
        "{:?}",
        a.status
    );
    a.upgrade.starting = false;
    assert_eq!(a.update(Msg::Suspend), Effect::Suspend);
}
