//! The upgrade engine against the in-memory fake world: order, every guard, drain blocked by
//! a PDB, rollback, the lock, the journal, resume after a kill at many points, abandon.

use std::sync::Arc;
use std::time::Duration;

use super::engine_support::{opts, plan_of, run_to_end};
use homeinfra_tui::inventory::Inventory;
use homeinfra_tui::model::cluster::{Replica, Volume};
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakePod, FakeWorld};
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::world::{Alert, DrainPod};
use homeinfra_tui::operations::upgrade::{
    Control, NodeOutcome, RunOutcome, Settings, Step, StepOutcome, UpgradeEvent, abandon, dry_run,
    plan, start,
};

/// The engine's settings for these runs: the revert timer armed before each switch fires
/// after 10 minutes (longer than a resume's 5-minute wait here; the self-revert tests set
/// their own).
fn settings() -> Settings {
    Settings {
        time_zone: jiff::tz::TimeZone::UTC,
        confirm_timeout: Duration::from_secs(600),
        ..Settings::default()
    }
}

fn refused_guard(o: &RunOutcome) -> (Option<String>, String, String) {
    match o {
        RunOutcome::Refused {
            node,
            guard,
            message,
        } => (node.clone(), guard.clone(), message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn plan_order_agents_servers_leader_last_and_overrides() {
    let inv = fake::inventory(5);
    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "r");
    let order: Vec<&str> = p.entries.iter().map(|e| e.node.as_str()).collect();
    // node1 holds the etcd leader.
    assert_eq!(order, ["node4", "node5", "node2", "node3", "node1"]);
    assert!(p.entries[4].etcd_leader);
    let only = plan(
        &inv,
        None,
        &["node3".into(), "instance_4".into()],
        &["node4".into(), "node3".into()],
        "f",
        "r",
    )
    .unwrap();
    let order: Vec<&str> = only.entries.iter().map(|e| e.node.as_str()).collect();
    assert_eq!(order, ["node3", "node4"]);
    let err = plan(&inv, None, &[], &["nope".into()], "f", "r").unwrap_err();
    assert!(err.to_string().contains("`nope` is not a host"), "{err}");
}

#[tokio::test]
async fn healthy_four_node_run() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-ok");
    let (outcome, events) =
        run_to_end(&fw, &inv, p, settings(), opts("run-ok", Some(dir.path()))).await;
    assert_eq!(outcome, RunOutcome::Completed, "{events:#?}");
    let log = fw.log();
    let switched: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("switch "))
        .collect();
    assert_eq!(
        switched,
        ["instance_4", "instance_2", "instance_3", "instance_1"]
    );
    // Cordon before evict before switch before reboot before uncordon, per node.
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(pos("cordon node4") < pos("evict default/web-3"));
    assert!(pos("evict default/web-3") < pos("switch instance_4"));
    assert!(pos("switch instance_4") < pos("reboot instance_4"));
    assert!(pos("reboot instance_4") < pos("uncordon node4"));
    assert!(pos("uncordon node4") < pos("cordon node2"));
    assert!(
        !log.iter().any(|l| l.contains("svclb")),
        "DaemonSet pods are not evicted"
    );
    {
        let st = fw.state();
        assert!(st.nodes.values().all(|n| !n.unschedulable && n.ready));
        assert!(st.lease.is_none(), "lock released");
        assert!(
            st.hosts
                .values()
                .all(|h| h.booted == h.current && h.generations.len() == 2)
        );
    }
    // Output streamed, guards reported per node: before it, and again right before its
    // drain, switch and reboot.
    assert!(events.iter().any(|e| matches!(e, UpgradeEvent::Output { node, line } if node == "node4" && line.contains("activating"))));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, UpgradeEvent::GuardVerdicts { .. }))
            .count(),
        4 * 4
    );
    // Every reboot journaled its boot ids before it went out, and the new boot was seen.
    let reboots: Vec<&UpgradeEvent> = events
        .iter()
        .filter(|e| matches!(e, UpgradeEvent::RebootIssued { .. }))
        .collect();
    assert_eq!(reboots.len(), 4, "{reboots:#?}");
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::StepFinished { node, step: Step::Reboot, outcome: StepOutcome::Ok { detail: Some(d) }, .. }
            if node == "node4" && d.contains("instance_4-boot-0 → instance_4-boot-1"))));
    // The live view's model folds the same events.
    let mut prog = homeinfra_tui::operations::upgrade::progress::RunProgress::new(&plan_of(
        &fw, &inv, "run-ok",
    ));
    for e in &events {
        prog.apply(e);
    }
    assert_eq!(prog.counts(), (4, 4));
    assert!(
        prog.nodes
            .iter()
            .all(|n| n.steps.len() == 11 && n.waiting.is_none())
    );
    assert_eq!(prog.outcome, Some(RunOutcome::Completed));
    // The journal is complete.
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-ok")).unwrap();
    assert_eq!(sum.finished, Some(RunOutcome::Completed));
    assert_eq!(sum.done, ["node4", "node2", "node3", "node1"]);
    assert_eq!(sum.resume_at, None);
    let recs = journal::read(&journal::path_of(dir.path(), "run-ok")).unwrap();
    let starts = recs
        .iter()
        .filter(|r| matches!(r.event, UpgradeEvent::StepStarted { .. }))
        .count();
    let ends = recs
        .iter()
        .filter(|r| matches!(r.event, UpgradeEvent::StepFinished { .. }))
        .count();
    assert_eq!((starts, ends), (44, 44));
    assert!(journal::unfinished(dir.path()).unwrap().is_empty());
    // The switch that reverts itself: armed (journaled first, with the previous system)
    // before each switch, confirmed over a new login after it, and disarmed: no timer is
    // left armed anywhere and no host reverted.
    let armed: Vec<&UpgradeEvent> = recs
        .iter()
        .map(|r| &r.event)
        .filter(|e| matches!(e, UpgradeEvent::RevertArmed { .. }))
        .collect();
    assert_eq!(armed.len(), 4, "{armed:#?}");
    let log = fw.log();
    for (host, node) in [
        ("instance_1", "node1"),
        ("instance_2", "node2"),
        ("instance_3", "node3"),
        ("instance_4", "node4"),
    ] {
        let at = |what: &str| {
            log.iter()
                .position(|l| l.starts_with(&format!("{what} {host}")))
                .unwrap_or_else(|| panic!("no `{what} {host}` in {log:?}"))
        };
        assert!(
            at("arm-revert") < at("switch")
                && at("switch") < at("login")
                && at("login") < at("disarm"),
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|l| l
                    == &format!("arm-revert {host} /nix/store/aaaa-nixos-system-{node}-1 600s")),
            "{log:?}"
        );
        assert!(armed.iter().any(|e| matches!(e,
            UpgradeEvent::RevertArmed { node: n, revert } if n == node
                && revert.previous == format!("/nix/store/aaaa-nixos-system-{node}-1")
                && revert.unit == "homeinfra-revert-run-ok" && revert.secs == 600)));
    }
    assert!(
        !log.iter().any(|l| l.starts_with("revert-fired")),
        "{log:?}"
    );
    let st = fw.state();
    assert!(
        st.hosts.values().all(|h| h.revert.is_none()),
        "no timer left armed"
    );
    for e in &events {
        if let UpgradeEvent::StepFinished {
            step: Step::Confirm,
            outcome,
            ..
        } = e
        {
            assert!(
                matches!(outcome, StepOutcome::Ok { detail: Some(d) } if d.contains("disarmed")),
                "{outcome:?}"
            );
        }
    }
}

async fn expect_refusal(
    fw: &Arc<FakeWorld>,
    inv: &Inventory,
    s: Settings,
) -> (Option<String>, String, String) {
    let p = plan_of(fw, inv, "run-g");
    let (outcome, _) = run_to_end(fw, inv, p, s, opts("run-g", None)).await;
    let r = refused_guard(&outcome);
    assert!(
        !fw.log().iter().any(|l| l.starts_with("cordon")),
        "a refused node is not touched"
    );
    assert!(fw.state().lease.is_none());
    r
}

#[tokio::test]
async fn guard_last_replica() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    {
        let mut st = fw.state();
        st.longhorn.volumes.push(Volume {
            name: "pvc-single".into(),
            number_of_replicas: 1,
            state: "attached".into(),
            robustness: "healthy".into(),
            ..Default::default()
        });
        st.longhorn.replicas.push(Replica {
            name: "pvc-single-r0".into(),
            volume: "pvc-single".into(),
            node: "node4".into(),
            current_state: "running".into(),
            healthy: true,
            rebuilding: false,
        });
    }
    let (node, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "last-replica")
    );
    assert!(msg.contains("pvc-single") && msg.contains("fix:"), "{msg}");
}

#[tokio::test]
async fn guard_etcd_member_down() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().etcd_down.push("node2".into());
    let (node, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "etcd-member-down")
    );
    assert!(msg.contains("node2-0000abcd"), "{msg}");
}

#[tokio::test]
async fn guard_etcd_quorum_for_a_control_plane() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let p = plan(&inv, None, &[], &["node3".into()], "f", "run-q").unwrap();
    // Two of three members down: no leader-less check here, quorum without node3 is lost.
    fw.state().etcd_down.push("node2".into());
    let (outcome, events) = run_to_end(&fw, &inv, p, settings(), opts("run-q", None)).await;
    let (_, _, msg) = refused_guard(&outcome);
    let verdicts = events
        .iter()
        .find_map(|e| match e {
            UpgradeEvent::GuardVerdicts { verdicts, .. } => Some(verdicts.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        verdicts.iter().any(|v| v.guard == "etcd-quorum" && !v.pass),
        "{verdicts:#?}"
    );
    assert!(msg.contains("quorum lost"), "{msg}");
}

#[tokio::test]
async fn guard_degraded_volume() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().longhorn.volumes[0].robustness = "degraded".into();
    let (node, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "degraded-volume")
    );
    assert!(
        msg.contains("pvc-data") && msg.contains("degraded"),
        "{msg}"
    );
}

#[tokio::test]
async fn guard_rebuilding_replica_counts_as_degraded() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().longhorn.replicas[1].rebuilding = true;
    let (_, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(guard, "degraded-volume");
    assert!(msg.contains("rebuilding"), "{msg}");
}

#[tokio::test]
async fn guard_critical_alert_firing_but_not_a_warning() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().alerts = Some(vec![Alert {
        name: "DiskAlmostFull".into(),
        severity: "warning".into(),
        subject: "node3".into(),
    }]);
    let p = plan_of(&fw, &inv, "run-w");
    let (outcome, _) = run_to_end(&fw, &inv, p, settings(), opts("run-w", None)).await;
    assert_eq!(
        outcome,
        RunOutcome::Completed,
        "a warning does not block at `critical`"
    );
    let fw = FakeWorld::healthy(&inv);
    fw.state().alerts = Some(vec![Alert {
        name: "EtcdInsufficientMembers".into(),
        severity: "critical".into(),
        subject: "etcd".into(),
    }]);
    let (node, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "alert-firing")
    );
    assert!(msg.contains("EtcdInsufficientMembers"), "{msg}");
}

#[tokio::test]
async fn guard_outside_the_maintenance_window() {
    let inv = fake::inventory(4);
    // The fake clock starts at 2027-01-15 08:00 UTC.
    let fw = FakeWorld::healthy(&inv);
    let s = Settings {
        maintenance_window: Some("01:00-05:00".into()),
        ..settings()
    };
    let (node, guard, msg) = expect_refusal(&fw, &inv, s).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "maintenance-window")
    );
    assert!(
        msg.contains("08:00") && msg.contains("01:00-05:00"),
        "{msg}"
    );
    let fw = FakeWorld::healthy(&inv);
    let s = Settings {
        maintenance_window: Some("07:30-12:00".into()),
        ..settings()
    };
    let p = plan_of(&fw, &inv, "run-in");
    let (outcome, _) = run_to_end(&fw, &inv, p, s, opts("run-in", None)).await;
    assert_eq!(outcome, RunOutcome::Completed);
}

#[tokio::test]
async fn guard_auto_upgrade_running_or_due() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .auto_upgrade
        .running = Some(true);
    let (node, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node4"), "auto-upgrade")
    );
    assert!(msg.contains("nixos-upgrade.service is running"), "{msg}");

    let fw = FakeWorld::healthy(&inv);
    let soon = fw.state().now + jiff::SignedDuration::from_mins(20);
    fw.state()
        .hosts
        .get_mut("instance_2")
        .unwrap()
        .auto_upgrade
        .next_run = Some(soon);
    let p = plan_of(&fw, &inv, "run-t");
    let (outcome, _) = run_to_end(&fw, &inv, p, settings(), opts("run-t", None)).await;
    let (node, guard, msg) = refused_guard(&outcome);
    assert_eq!(
        (node.as_deref(), guard.as_str()),
        (Some("node2"), "auto-upgrade")
    );
    assert!(msg.contains("nixos-upgrade.timer fires"), "{msg}");
    // node4 went through before the refusal of node2.
    assert!(fw.log().contains(&"uncordon node4".to_string()));
}

#[tokio::test]
async fn guard_other_node_cordoned_and_promql_gate() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().nodes.get_mut("node2").unwrap().unschedulable = true;
    let (_, guard, msg) = expect_refusal(&fw, &inv, settings()).await;
    assert_eq!(guard, "node-cordoned");
    assert!(
        msg.contains("node2") && msg.contains("kubectl uncordon node2"),
        "{msg}"
    );

    let fw = FakeWorld::healthy(&inv);
    fw.state().gates.insert("up == 0".into(), 2);
    let s = Settings {
        gates: vec!["up == 0".into()],
        ..settings()
    };
    let (_, guard, msg) = expect_refusal(&fw, &inv, s).await;
    assert_eq!(guard, "promql-gate");
    assert!(msg.contains("2 series"), "{msg}");
}

#[tokio::test]
async fn pdb_blocks_drain_times_out_node_stays_cordoned() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().pods.push(FakePod {
        pod: DrainPod {
            namespace: "db".into(),
            name: "postgres-0".into(),
            ..Default::default()
        },
        node: "node4".into(),
        blocked_by_pdb: Some("db/postgres-pdb".into()),
    });
    let p = plan_of(&fw, &inv, "run-pdb");
    let (outcome, events) = run_to_end(&fw, &inv, p, settings(), opts("run-pdb", None)).await;
    match &outcome {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), *step), ("node4", Step::Drain));
            assert!(message.contains("timed out after 600s"), "{message}");
            assert!(
                message.contains("db/postgres-0") && message.contains("db/postgres-pdb"),
                "{message}"
            );
            assert!(message.contains("stays cordoned"), "{message}");
        }
        other => panic!("expected the drain to fail, got {other:?}"),
    }
    let waits: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            UpgradeEvent::Waiting { what, detail, .. } if what == "eviction-blocked" => {
                Some(detail)
            }
            _ => None,
        })
        .collect();
    assert!(waits.len() >= 3, "retried with backoff: {waits:?}");
    assert!(waits[0].contains("PodDisruptionBudget db/postgres-pdb"));
    let st = fw.state();
    assert_eq!(st.nodes["node4"].cordoned_by.as_deref(), Some("run-pdb"));
    assert!(!st.log.iter().any(|l| l.starts_with("switch")));
    assert!(st.lease.is_none());
}

#[tokio::test]
async fn node_never_returns_rolls_back_and_stops_cordoned() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().nodes.get_mut("node4").unwrap().never_returns = true;
    let p = plan_of(&fw, &inv, "run-nr");
    let (outcome, events) = run_to_end(&fw, &inv, p, settings(), opts("run-nr", None)).await;
    match &outcome {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), *step), ("node4", Step::WaitHealthy));
            assert!(
                message.contains("rolled back") && message.contains("stays cordoned"),
                "{message}"
            );
            assert!(message.contains("--abandon run-nr"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(events.iter().any(|e| matches!(
        e,
        UpgradeEvent::StepStarted {
            step: Step::Rollback,
            ..
        }
    )));
    let log = fw.log();
    assert!(log.contains(&"rollback instance_4".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l == "cordon node2"),
        "never goes on to the next node"
    );
    let st = fw.state();
    assert_eq!(st.nodes["node4"].cordoned_by.as_deref(), Some("run-nr"));
    let h = &st.hosts["instance_4"];
    assert_eq!(h.generations.len(), 1, "back on the previous generation");
}

#[tokio::test]
async fn failing_switch_fails_the_step_and_retry_goes_on() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().hosts.get_mut("instance_4").unwrap().fail_switch = true;
    let p = plan_of(&fw, &inv, "run-sw");
    let (outcome, _) = run_to_end(&fw, &inv, p, settings(), opts("run-sw", None)).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed { node, step: Step::Switch, message } if node == "node4" && message.contains("status 1")),
        "{outcome:?}"
    );
    assert_eq!(
        fw.state().nodes["node4"].cordoned_by.as_deref(),
        Some("run-sw")
    );

    // Interactive: the run waits, the operator fixes it and retries.
    let fw = FakeWorld::healthy(&inv);
    fw.state().hosts.get_mut("instance_4").unwrap().fail_switch = true;
    let p = plan_of(&fw, &inv, "run-sw2");
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(),
        StartOptions {
            interactive: true,
            ..opts("run-sw2", None)
        },
    );
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Waiting { what, .. } = &e
            && what == "operator"
        {
            fw.state().hosts.get_mut("instance_4").unwrap().fail_switch = false;
            assert!(h.send(Control::Retry).await);
        }
    }
    assert_eq!(h.wait().await, RunOutcome::Completed);
}

#[tokio::test]
async fn interactive_refusal_can_skip_the_node() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .auto_upgrade
        .running = Some(true);
    let p = plan_of(&fw, &inv, "run-skip");
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(),
        StartOptions {
            interactive: true,
            ..opts("run-skip", None)
        },
    );
    let mut skipped = false;
    while let Some(e) = rx.recv().await {
        match &e {
            UpgradeEvent::Waiting { what, node, .. } if what == "operator" => {
                assert_eq!(node, "node4");
                h.send(Control::Skip { node: node.clone() }).await;
            }
            UpgradeEvent::NodeDone {
                node,
                outcome: NodeOutcome::Skipped { .. },
            } if node == "node4" => skipped = true,
            _ => {}
        }
    }
    assert!(skipped);
    assert_eq!(h.wait().await, RunOutcome::Completed);
    assert!(!fw.log().iter().any(|l| l == "switch instance_4"));
}

#[tokio::test]
async fn pause_and_abort() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.freeze_at("exec", 1);
    let p = plan_of(&fw, &inv, "run-pa");
    let (h, mut rx) = start(fw.world(), inv.clone(), p, settings(), opts("run-pa", None));
    // Controls sent while node4 runs are seen after it.
    fw.wait_frozen().await;
    h.send(Control::Pause).await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;

    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-pb");
    let (h, mut rx) = start(fw.world(), inv.clone(), p, settings(), opts("run-pb", None));
    assert!(h.send(Control::Pause).await);
    let mut paused_at = None;
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Waiting { what, node, .. } = &e
            && what == "paused"
        {
            paused_at = Some(node.clone());
            h.send(Control::Abort).await;
        }
    }
    assert_eq!(paused_at.as_deref(), Some("node4"));
    assert!(matches!(h.wait().await, RunOutcome::Aborted { .. }));
    let st = fw.state();
    assert!(st.nodes.values().all(|n| !n.unschedulable));
    assert!(st.lease.is_none());
}

#[tokio::test]
async fn two_concurrent_runs_exactly_one_runs() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.freeze_at("exec", 1);
    let a = plan_of(&fw, &inv, "run-a");
    let (ha, mut rxa) = start(fw.world(), inv.clone(), a, settings(), opts("run-a", None));
    fw.wait_frozen().await;
    let b = plan_of(&fw, &inv, "run-b");
    let (outcome_b, _) = run_to_end(&fw, &inv, b, settings(), opts("run-b", None)).await;
    let (_, guard, msg) = refused_guard(&outcome_b);
    assert_eq!(guard, "lock");
    assert!(
        msg.contains("tester@box 1 run-a") && msg.contains("only watch"),
        "{msg}"
    );
    assert!(
        !fw.log()
            .iter()
            .any(|l| l.contains("lease-create tester@box 1 run-b"))
    );
    // A dies (kill -9): its lease goes stale; taking it needs --force-unlock.
    ha.kill();
    while rxa.recv().await.is_some() {}
    let _ = ha.wait().await;
    fw.unfreeze();
    {
        let mut st = fw.state();
        st.now += jiff::SignedDuration::from_mins(10);
        // Undo A's cordon so that only the lock matters here.
        let n = st.nodes.get_mut("node4").unwrap();
        n.unschedulable = false;
        n.cordoned_by = None;
    }
    let c = plan_of(&fw, &inv, "run-c");
    let (outcome_c, _) = run_to_end(&fw, &inv, c, settings(), opts("run-c", None)).await;
    let (_, guard, msg) = refused_guard(&outcome_c);
    assert_eq!(guard, "lock");
    assert!(
        msg.contains("stale") && msg.contains("--force-unlock"),
        "{msg}"
    );
    let d = plan_of(&fw, &inv, "run-d");
    let (outcome_d, _) = run_to_end(
        &fw,
        &inv,
        d,
        settings(),
        StartOptions {
            force_unlock: true,
            ..opts("run-d", None)
        },
    )
    .await;
    assert_eq!(outcome_d, RunOutcome::Completed);
}

/// The end state that matters: systems, boots, cordons, lock.
fn end_state(fw: &FakeWorld) -> String {
    let st = fw.state();
    let mut s = String::new();
    for (id, h) in &st.hosts {
        s += &format!(
            "{id} current={} booted={} gens={}\n",
            h.current,
            h.booted,
            h.generations.len()
        );
    }
    for (name, n) in &st.nodes {
        s += &format!(
            "{name} ready={} unsched={} by={:?} kubelet={}\n",
            n.ready, n.unschedulable, n.cordoned_by, n.kubelet_version
        );
    }
    s += &format!("lease={:?}\n", st.lease.as_ref().map(|l| l.holder.clone()));
    s
}

#[tokio::test]
async fn resume_after_a_kill_at_each_point_gives_the_same_end_state() {
    let inv = fake::inventory(4);
    let reference = {
        let fw = FakeWorld::healthy(&inv);
        let p = plan_of(&fw, &inv, "run-r");
        let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-r", None)).await;
        assert_eq!(o, RunOutcome::Completed);
        end_state(&fw)
    };
    // (operation, nth call): the snapshot, guards of the first node, cordon, eviction, the switch, the
    // reboot, the host down, node Ready wait, uncordon, settle, a later node's switch, its
    // etcd wait, the last node's cordon.
    let points: &[(&str, usize)] = &[
        // The etcd snapshot before the first node: its command, and the wait for its record.
        ("snapshot", 1),
        ("snapshot-file", 1),
        ("health", 1),
        ("cordon", 1),
        ("evict", 1),
        ("exec", 1),
        ("exec", 3),
        ("login", 1),
        ("revert-timer", 2),
        ("reboot", 1),
        ("reachable", 1),
        ("node", 3),
        ("uncordon", 1),
        ("sleep", 3),
        ("exec", 2),
        ("health", 6),
        ("cordon", 4),
        ("boot", 7),
    ];
    for (op, nth) in points {
        let fw = FakeWorld::healthy(&inv);
        let dir = tempfile::tempdir().unwrap();
        fw.freeze_at(op, *nth);
        let p = plan_of(&fw, &inv, "run-r");
        let (h, mut rx) = start(
            fw.world(),
            inv.clone(),
            p,
            settings(),
            opts("run-r", Some(dir.path())),
        );
        tokio::select! {
            _ = fw.wait_frozen() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("never froze at {op} #{nth}"),
        }
        h.kill();
        while rx.recv().await.is_some() {}
        let _ = h.wait().await;
        fw.unfreeze();
        let unfinished = journal::unfinished(dir.path()).unwrap();
        assert_eq!(unfinished.len(), 1, "at {op} #{nth}");
        let sum = &unfinished[0];
        let resume_at = sum.resume_at.expect("somewhere to resume");
        // A new run is refused: first by the killed run's lease, then (once it is stale) because
        // the run is unfinished.
        let other = plan_of(&fw, &inv, "run-other");
        let (o, _) = run_to_end(
            &fw,
            &inv,
            other.clone(),
            settings(),
            opts("run-other", Some(dir.path())),
        )
        .await;
        // (The fake clock may already be past the lease: renewals run on real time.)
        let g = refused_guard(&o).1;
        assert!(g == "lock" || g == "unfinished-run", "at {op} #{nth}: {g}");
        fw.state().now += jiff::SignedDuration::from_mins(5);
        let (o, _) = run_to_end(
            &fw,
            &inv,
            other,
            settings(),
            opts("run-other", Some(dir.path())),
        )
        .await;
        assert_eq!(refused_guard(&o).1, "unfinished-run", "at {op} #{nth}");
        // Resume.
        let (o, _) = run_to_end(
            &fw,
            &inv,
            sum.plan.clone(),
            settings(),
            StartOptions {
                resume: Some(resume_at),
                ..opts("run-r", Some(dir.path()))
            },
        )
        .await;
        assert_eq!(
            o,
            RunOutcome::Completed,
            "resumed after {op} #{nth} at {resume_at:?}"
        );
        assert_eq!(end_state(&fw), reference, "end state after {op} #{nth}");
        let sum = journal::summarize(&journal::path_of(dir.path(), "run-r")).unwrap();
        assert_eq!(sum.finished, Some(RunOutcome::Completed));
        assert_eq!(sum.done.len(), 4);
    }
}

#[tokio::test]
async fn abandon_undoes_only_our_cordons() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    fw.freeze_at("exec", 1);
    let p = plan_of(&fw, &inv, "run-x");
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(),
        opts("run-x", Some(dir.path())),
    );
    fw.wait_frozen().await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    // Someone cordons node2 by hand meanwhile.
    fw.state().nodes.get_mut("node2").unwrap().unschedulable = true;
    assert_eq!(
        fw.state().nodes["node4"].cordoned_by.as_deref(),
        Some("run-x")
    );
    // Its lease is fresh: it might still be running elsewhere, so abandon refuses.
    let err = abandon(&fw.world(), dir.path(), "run-x").await.unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
    fw.state().now += jiff::SignedDuration::from_mins(5);
    let un = abandon(&fw.world(), dir.path(), "run-x").await.unwrap();
    assert_eq!(un, ["node4"]);
    let st = fw.state();
    assert!(!st.nodes["node4"].unschedulable);
    assert!(st.nodes["node2"].unschedulable, "not ours: left alone");
    assert!(st.lease.is_none());
    drop(st);
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-x")).unwrap();
    assert!(matches!(sum.finished, Some(RunOutcome::Abandoned { .. })));
    assert!(journal::unfinished(dir.path()).unwrap().is_empty());
}

#[tokio::test]
async fn dry_run_touches_nothing_and_reports_every_node() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().etcd_down.push("node3".into());
    let p = plan_of(&fw, &inv, "dry");
    let v = dry_run(&fw.read_world(), &inv, &p, &settings()).await;
    assert_eq!(v.len(), 4);
    for (e, verdicts) in &v {
        assert!(
            verdicts
                .iter()
                .any(|v| v.guard == "etcd-member-down" && !v.pass),
            "{}",
            e.node
        );
        assert!(verdicts.iter().any(|v| v.guard == "last-replica" && v.pass));
    }
    assert!(fw.log().is_empty(), "{:?}", fw.log());
    assert!(fw.state().lease.is_none());
}

#[tokio::test]
async fn events_serialize_as_json_lines() {
    let e = UpgradeEvent::StepFinished {
        node: "node4".into(),
        step: Step::WaitHealthy,
        outcome: StepOutcome::Failed {
            message: "x".into(),
        },
        duration_ms: 12,
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(
        s,
        r#"{"event":"step_finished","node":"node4","step":"wait-healthy","outcome":{"result":"failed","message":"x"},"duration_ms":12}"#
    );
    let back: UpgradeEvent = serde_json::from_str(&s).unwrap();
    assert_eq!(back, e);
}

#[tokio::test]
async fn reboot_policy_ask_and_never() {
    use homeinfra_tui::config::RebootPolicy;
    let inv = fake::inventory(4);
    // ask: approve node4's reboot, decline the others.
    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-ask");
    let s = Settings {
        reboot: RebootPolicy::Ask,
        ..settings()
    };
    let (h, mut rx) = start(fw.world(), inv.clone(), p, s, opts("run-ask", None));
    let mut asked = Vec::new();
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Waiting { what, node, detail } = &e
            && what == "confirm-reboot"
        {
            assert!(detail.contains("kernel"), "{detail}");
            asked.push(node.clone());
            let c = if node == "node4" {
                Control::Approve
            } else {
                Control::Decline
            };
            h.send(c).await;
        }
    }
    assert_eq!(h.wait().await, RunOutcome::Completed);
    assert_eq!(asked, ["node4", "node2", "node3", "node1"]);
    let log = fw.log();
    let reboots: Vec<&String> = log.iter().filter(|l| l.starts_with("reboot")).collect();
    assert_eq!(reboots, ["reboot instance_4"]);

    // never: no reboot, the step says why.
    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-never");
    let s = Settings {
        reboot: RebootPolicy::Never,
        ..settings()
    };
    let (o, events) = run_to_end(&fw, &inv, p, s, opts("run-never", None)).await;
    assert_eq!(o, RunOutcome::Completed);
    assert!(!fw.log().iter().any(|l| l.starts_with("reboot")));
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::StepFinished { step: Step::Reboot, outcome: StepOutcome::Skipped { reason }, .. }
        if reason.contains("never"))));
}

#[tokio::test]
async fn empty_dir_pods_block_the_drain_unless_allowed() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().pods.push(FakePod {
        pod: DrainPod {
            namespace: "ci".into(),
            name: "runner-0".into(),
            uses_empty_dir: true,
            ..Default::default()
        },
        node: "node4".into(),
        blocked_by_pdb: None,
    });
    let p = plan_of(&fw, &inv, "run-ed");
    let s = Settings {
        delete_emptydir_data: false,
        ..settings()
    };
    let (o, _) = run_to_end(&fw, &inv, p, s, opts("run-ed", None)).await;
    assert!(
        matches!(&o, RunOutcome::Failed { step: Step::Drain, message, .. } if message.contains("ci/runner-0") && message.contains("delete_emptydir_data")),
        "{o:?}"
    );
    // Allowed (the default): evicted like the rest.
    let fw = FakeWorld::healthy(&inv);
    fw.state().pods.push(FakePod {
        pod: DrainPod {
            namespace: "ci".into(),
            name: "runner-0".into(),
            uses_empty_dir: true,
            ..Default::default()
        },
        node: "node4".into(),
        blocked_by_pdb: None,
    });
    let p = plan_of(&fw, &inv, "run-ed2");
    let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-ed2", None)).await;
    assert_eq!(o, RunOutcome::Completed);
    assert!(fw.log().contains(&"evict ci/runner-0".to_string()));
}

#[tokio::test]
async fn abort_during_a_blocked_drain_uncordons_and_stops() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().pods.push(FakePod {
        pod: DrainPod {
            namespace: "db".into(),
            name: "postgres-0".into(),
            ..Default::default()
        },
        node: "node4".into(),
        blocked_by_pdb: Some("db/postgres-pdb".into()),
    });
    let p = plan_of(&fw, &inv, "run-ab");
    let (h, mut rx) = start(fw.world(), inv.clone(), p, settings(), opts("run-ab", None));
    let mut sent = false;
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Waiting { what, .. } = &e
            && what == "eviction-blocked"
            && !sent
        {
            sent = h.send(Control::Abort).await;
        }
    }
    assert!(matches!(h.wait().await, RunOutcome::Aborted { .. }));
    let st = fw.state();
    assert!(
        !st.nodes["node4"].unschedulable,
        "nothing had changed: uncordoned"
    );
    assert!(!st.log.iter().any(|l| l.starts_with("switch")));
    assert!(st.lease.is_none());
}

/// The settings of the self-revert runs: the revert timer fires 120 s after it is armed.
fn revert_settings() -> Settings {
    Settings {
        confirm_timeout: Duration::from_secs(120),
        ..settings()
    }
}

/// After a self-revert: the host runs its previous system again, answers, has no armed
/// timer, was never rolled back over SSH, its node stays cordoned by the run, and the run went
/// no further.
fn assert_reverted_by_itself(fw: &FakeWorld, run_id: &str) {
    let log = fw.log();
    assert!(
        log.contains(&"revert-fired instance_4".to_string()),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("rollback")), "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l == "cordon node5" || l == "cordon node2"),
        "{log:?}"
    );
    let st = fw.state();
    let h = &st.hosts["instance_4"];
    assert_eq!(h.current, "/nix/store/aaaa-nixos-system-node4-1");
    assert!(!h.cut_off, "reachable again");
    assert!(h.revert.as_ref().is_some_and(|r| r.fired));
    assert_eq!(st.nodes["node4"].cordoned_by.as_deref(), Some(run_id));
    assert!(st.nodes["node4"].ready);
}

#[tokio::test]
async fn a_switch_that_breaks_the_network_reverts_by_itself_and_stops_cordoned() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .switch_breaks_network = true;
    let p = plan_of(&fw, &inv, "run-net");
    let (outcome, events) =
        run_to_end(&fw, &inv, p, revert_settings(), opts("run-net", None)).await;
    match &outcome {
        RunOutcome::Failed {
            node,
            step: Step::Confirm,
            message,
        } => {
            assert_eq!(node, "node4");
            assert!(
                message.starts_with(
                    "node4 rolled itself back: the new system was not confirmed within 120 s — sshd unreachable after activation; instance_4 runs its previous system /nix/store/aaaa-nixos-system-node4-1 again."
                ),
                "{message}"
            );
            assert!(message.contains("stays cordoned"), "{message}");
            assert!(message.contains("--abandon run-net"), "{message}");
        }
        other => panic!("expected the self-revert to stop the run, got {other:?}"),
    }
    assert_reverted_by_itself(&fw, "run-net");
    // The waits said what they waited for.
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::Waiting { what, .. } if what == "self-revert")));
}

#[tokio::test]
async fn killed_between_arm_and_confirm_then_resumed_too_late_reports_the_self_revert() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-cf");
    fw.freeze_at("login", 1);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p.clone(),
        revert_settings(),
        opts("run-cf", Some(dir.path())),
    );
    fw.wait_frozen().await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    // The network went with the new system; the tool is gone for 5 minutes.
    {
        let mut st = fw.state();
        st.hosts.get_mut("instance_4").unwrap().cut_off = true;
        st.nodes.get_mut("node4").unwrap().ready = false;
        st.now += jiff::SignedDuration::from_mins(5);
    }
    let sum = &journal::unfinished(dir.path()).unwrap()[0];
    assert_eq!(sum.resume_at, Some((0, Step::Confirm)));
    assert!(
        sum.reverts.contains_key("node4"),
        "the armed timer is journaled"
    );
    let (o, _) = run_to_end(
        &fw,
        &inv,
        p,
        revert_settings(),
        StartOptions {
            resume: sum.resume_at,
            ..opts("run-cf", Some(dir.path()))
        },
    )
    .await;
    match &o {
        RunOutcome::Failed {
            node,
            step: Step::Confirm,
            message,
        } => {
            assert_eq!(node, "node4");
            assert!(
                message.starts_with(
                    "node4 rolled itself back: the new system was not confirmed within 120 s — "
                ),
                "{message}"
            );
        }
        other => panic!("expected the self-revert reported, got {other:?}"),
    }
    assert_reverted_by_itself(&fw, "run-cf");
}

#[tokio::test]
async fn killed_between_arm_and_confirm_then_resumed_in_time_disarms_and_goes_on() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-k");
    fw.freeze_at("login", 1);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p.clone(),
        revert_settings(),
        opts("run-k", Some(dir.path())),
    );
    fw.wait_frozen().await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    assert!(
        fw.state().hosts["instance_4"]
            .revert
            .as_ref()
            .is_some_and(|r| !r.fired),
        "armed when killed"
    );
    let sum = &journal::unfinished(dir.path()).unwrap()[0];
    assert_eq!(sum.resume_at, Some((0, Step::Confirm)));
    let rec = &sum.reverts["node4"];
    assert_eq!(rec.previous, "/nix/store/aaaa-nixos-system-node4-1");
    assert_eq!(rec.unit, "homeinfra-revert-run-k");
    // Resumed 30 s later (the lock's lease had to go stale... or a forced unlock).
    fw.state().now += jiff::SignedDuration::from_secs(30);
    let (o, _) = run_to_end(
        &fw,
        &inv,
        p,
        revert_settings(),
        StartOptions {
            resume: sum.resume_at,
            force_unlock: true,
            ..opts("run-k", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    let log = fw.log();
    assert!(log.contains(&"disarm instance_4".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("revert-fired")),
        "{log:?}"
    );
    assert!(fw.state().hosts.values().all(|h| h.revert.is_none()));
}

#[tokio::test]
async fn killed_during_a_switch_that_activated_then_resumed_runs_it_again_under_the_same_timer() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-sw");
    // exec #1 arms node4's revert, exec #2 is its switch.
    fw.freeze_at("exec", 2);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p.clone(),
        revert_settings(),
        opts("run-sw", Some(dir.path())),
    );
    fw.wait_frozen().await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    // The host finished activating the new system after the tool died.
    {
        let mut st = fw.state();
        let new_k3s = {
            let h = st.hosts.get_mut("instance_4").unwrap();
            assert!(h.revert.as_ref().is_some_and(|r| !r.fired), "armed");
            let next = "/nix/store/bbbb-nixos-system-node4-2".to_string();
            h.generations.push(next.clone());
            h.current = next;
            h.k3s = h.new_k3s.clone();
            h.k3s.clone()
        };
        st.nodes.get_mut("node4").unwrap().kubelet_version = new_k3s;
        st.now += jiff::SignedDuration::from_secs(20);
    }
    let sum = &journal::unfinished(dir.path()).unwrap()[0];
    assert_eq!(sum.resume_at, Some((0, Step::Switch)));
    assert_eq!(
        sum.interrupted,
        Some(("node4".to_string(), Step::Switch)),
        "the switch had started"
    );
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        revert_settings(),
        StartOptions {
            resume: sum.resume_at,
            force_unlock: true,
            ..opts("run-sw", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    assert!(
        events.iter().any(|e| matches!(e, UpgradeEvent::Notice { message, .. }
            if message.contains("interrupted with homeinfra-revert-run-sw.timer still armed: running the switch again"))),
        "{events:#?}"
    );
    let log = fw.log();
    // Not re-armed: the one timer armed before the kill is confirmed and disarmed.
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("arm-revert instance_4"))
            .count(),
        1,
        "{log:?}"
    );
    assert!(log.contains(&"switch instance_4".to_string()), "{log:?}");
    assert!(log.contains(&"disarm instance_4".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("revert-fired")),
        "{log:?}"
    );
    assert!(fw.state().hosts.values().all(|h| h.revert.is_none()));
}
