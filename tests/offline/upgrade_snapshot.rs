//! The etcd snapshot before the first control plane (`[upgrade] pre_snapshot`) against the
//! in-memory fake world: taken once, on the first Ready server, before any node is touched;
//! `require` refuses the run on a failure (k3s's error, nothing touched), `try` warns and goes
//! on, `off` takes none; a record that never becomes ready times out naming what it waited
//! for; a resumed run whose snapshot succeeded takes no second one; a dry run takes none.

use std::time::Duration;

use super::engine_support::{opts, run_to_end};
use homeinfra_tui::config::PreSnapshot;
use homeinfra_tui::inventory::Inventory;
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::{
    Plan, RunOutcome, Settings, StepOutcome, UpgradeEvent, dry_run, plan, start,
};

fn settings(policy: PreSnapshot) -> Settings {
    Settings {
        time_zone: jiff::tz::TimeZone::UTC,
        pre_snapshot: policy,
        ..Settings::default()
    }
}

fn plan_of(fw: &FakeWorld, inv: &Inventory, run_id: &str, only: &[&str]) -> Plan {
    let etcd = fw.state().etcd.clone();
    let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
    plan(inv, etcd.as_ref(), &[], &only, "github:me/infra", run_id).unwrap()
}

fn snapshots_in_log(fw: &FakeWorld) -> Vec<String> {
    fw.log()
        .into_iter()
        .filter(|l| l.starts_with("snapshot"))
        .collect()
}

fn finished(events: &[UpgradeEvent]) -> Vec<(String, StepOutcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            UpgradeEvent::SnapshotFinished { node, outcome, .. } => {
                Some((node.clone(), outcome.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn require_takes_one_snapshot_before_any_node_and_journals_it() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-s1", &[]);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Require),
        opts("run-s1", Some(dir.path())),
    )
    .await;
    assert_eq!(o, RunOutcome::Completed, "{events:#?}");
    let log = fw.log();
    // On the first server of the inventory that does not lead etcd (node1 leads), before the
    // first cordon (of an agent: nothing is touched before it).
    assert_eq!(
        snapshots_in_log(&fw),
        ["snapshot instance_2 homeinfra-run-s1"]
    );
    let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
    assert!(pos("snapshot instance_2 homeinfra-run-s1") < pos("cordon node4"));
    let done = finished(&events);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, "node2");
    match &done[0].1 {
        StepOutcome::Ok { detail: Some(d) } => {
            assert!(d.starts_with("homeinfra-run-s1-node2-"), "{d}")
        }
        other => panic!("expected the snapshot ok, got {other:?}"),
    }
    // Its record is there, ready.
    let st = fw.state();
    assert_eq!(st.snapshots.len(), 1);
    assert!(st.snapshots[0].ready);
    drop(st);
    // The journal names it, and so does the run's end.
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-s1")).unwrap();
    let s = sum.snapshot.expect("the journal records the snapshot");
    assert_eq!(
        (s.name.as_str(), s.node.as_str()),
        ("homeinfra-run-s1", "node2")
    );
    assert!(
        s.file
            .as_deref()
            .is_some_and(|f| f.starts_with("homeinfra-run-s1-node2-"))
    );
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::Notice { node: None, message } if message.contains("etcd snapshot of this run: homeinfra-run-s1-node2-"))));
}

#[tokio::test]
async fn require_failure_refuses_the_run_with_k3s_error_touching_nothing() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().snapshot_error = Some("etcdserver: mvcc: database space exceeded".into());
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-s2", &[]);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Require),
        opts("run-s2", Some(dir.path())),
    )
    .await;
    match &o {
        RunOutcome::Refused {
            node: None,
            guard,
            message,
        } => {
            assert_eq!(guard, "pre-snapshot");
            assert!(message.contains("database space exceeded"), "{message}");
            assert!(message.contains("nothing was touched"), "{message}");
            assert!(message.contains("pre_snapshot"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let log = fw.log();
    for op in ["cordon", "evict", "switch", "reboot", "uncordon"] {
        assert!(
            !log.iter().any(|l| l.starts_with(op)),
            "{op} after a failed snapshot: {log:?}"
        );
    }
    assert!(
        log.contains(&"snapshot-failed instance_2".to_string()),
        "{log:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, UpgradeEvent::StepStarted { .. }))
    );
    let st = fw.state();
    assert!(st.nodes.values().all(|n| !n.unschedulable));
    assert!(st.lease.is_none(), "lock released");
    drop(st);
    // The run is over (refused), with no snapshot to its name.
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-s2")).unwrap();
    assert!(sum.is_finished());
    assert_eq!(sum.snapshot, None);
}

#[tokio::test]
async fn try_warns_and_goes_on_off_takes_none() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().snapshot_error = Some("etcdserver: request timed out".into());
    let p = plan_of(&fw, &inv, "run-s3", &[]);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Try),
        opts("run-s3", None),
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    let done = finished(&events);
    assert_eq!(done.len(), 1);
    assert!(
        matches!(&done[0].1, StepOutcome::Failed { message } if message.contains("request timed out")),
        "{done:?}"
    );
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::Notice { node: None, message }
        if message.starts_with("warning: the pre-upgrade etcd snapshot failed") && message.contains("\"try\""))));
    assert_eq!(
        fw.log().iter().filter(|l| l.starts_with("switch ")).count(),
        4
    );

    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-s4", &[]);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Off),
        opts("run-s4", None),
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    assert!(snapshots_in_log(&fw).is_empty());
    assert!(finished(&events).is_empty());
    assert!(fw.state().snapshots.is_empty());
}

#[tokio::test]
async fn agents_only_takes_none_and_a_notready_server_is_passed_over() {
    let inv = fake::inventory(5);
    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-s5", &["node4", "node5"]);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Require),
        opts("run-s5", None),
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    assert!(snapshots_in_log(&fw).is_empty(), "no etcd member changes");
    assert!(finished(&events).is_empty());

    // node2 NotReady: the snapshot goes to node3 (node1 leads etcd: last). (The guards
    // refuse the run afterwards; the snapshot comes first.)
    let fw = FakeWorld::healthy(&inv);
    fw.state().nodes.get_mut("node2").unwrap().ready = false;
    let p = plan_of(&fw, &inv, "run-s6", &[]);
    let (_, events) = run_to_end(
        &fw,
        &inv,
        p,
        settings(PreSnapshot::Require),
        opts("run-s6", None),
    )
    .await;
    assert_eq!(
        snapshots_in_log(&fw),
        ["snapshot instance_3 homeinfra-run-s6"]
    );
    assert_eq!(finished(&events)[0].0, "node3");
}

#[tokio::test]
async fn a_record_never_ready_times_out_naming_what_it_waited_for() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().snapshot_never_ready = true;
    let p = plan_of(&fw, &inv, "run-s7", &[]);
    let s = Settings {
        pre_snapshot_timeout: Duration::from_secs(30),
        ..settings(PreSnapshot::Require)
    };
    let (o, _) = run_to_end(&fw, &inv, p, s, opts("run-s7", None)).await;
    match &o {
        RunOutcome::Refused { guard, message, .. } => {
            assert_eq!(guard, "pre-snapshot");
            assert!(
                message.contains("timed out after 30s waiting for the ETCDSnapshotFile (k3s.cattle.io/v1) of snapshot homeinfra-run-s7-node2-"),
                "{message}"
            );
            assert!(message.contains("pre_snapshot_timeout_secs"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!fw.log().iter().any(|l| l.starts_with("cordon")));
}

#[tokio::test]
async fn resume_after_a_succeeded_snapshot_takes_no_second_one() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    // Killed during the first node's switch, after the snapshot.
    fw.freeze_at("exec", 1);
    let p = plan_of(&fw, &inv, "run-s8", &[]);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(PreSnapshot::Require),
        opts("run-s8", Some(dir.path())),
    );
    tokio::select! {
        _ = fw.wait_frozen() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("never froze"),
    }
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    assert_eq!(snapshots_in_log(&fw).len(), 1);
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-s8")).unwrap();
    assert!(sum.snapshot.is_some(), "journaled before the first node");
    let at = sum.resume_at.expect("somewhere to resume");
    fw.state().now += jiff::SignedDuration::from_mins(5);
    let (o, events) = run_to_end(
        &fw,
        &inv,
        sum.plan.clone(),
        settings(PreSnapshot::Require),
        StartOptions {
            resume: Some(at),
            ..opts("run-s8", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed, "{events:#?}");
    assert_eq!(snapshots_in_log(&fw).len(), 1, "{:?}", fw.log());
    assert_eq!(fw.state().snapshots.len(), 1);
    let done = finished(&events);
    assert!(
        matches!(&done[..], [(_, StepOutcome::Skipped { reason })] if reason.contains("already took homeinfra-run-s8-node2-")),
        "{done:?}"
    );
    // The end still names the snapshot.
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::Notice { message, .. } if message.starts_with("etcd snapshot of this run: homeinfra-run-s8-node2-"))));
}

#[tokio::test]
async fn a_dry_run_takes_no_snapshot() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let p = plan_of(&fw, &inv, "run-s9", &[]);
    let v = dry_run(&fw.read_world(), &inv, &p, &settings(PreSnapshot::Require)).await;
    assert_eq!(v.len(), 4);
    assert!(snapshots_in_log(&fw).is_empty());
    assert!(fw.state().snapshots.is_empty());
}

#[tokio::test]
async fn interactive_require_failure_waits_for_retry_or_abort() {
    use homeinfra_tui::operations::upgrade::Control;
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().snapshot_error = Some("etcdserver: leader changed".into());
    let p = plan_of(&fw, &inv, "run-si", &[]);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(PreSnapshot::Require),
        StartOptions {
            interactive: true,
            ..opts("run-si", None)
        },
    );
    let mut asked = 0;
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Waiting { what, detail, .. } = &e
            && what == "operator"
            && detail.contains("pre-upgrade etcd snapshot failed")
        {
            asked += 1;
            assert!(detail.contains("leader changed"), "{detail}");
            assert!(
                !fw.log().iter().any(|l| l.starts_with("cordon")),
                "nothing touched while it waits"
            );
            if asked == 1 {
                // The cause goes away: a retry takes it.
                fw.state().snapshot_error = None;
                h.send(Control::Retry).await;
            }
        }
    }
    assert_eq!(h.wait().await, RunOutcome::Completed);
    assert_eq!(asked, 1);
    assert_eq!(
        snapshots_in_log(&fw),
        [
            "snapshot-failed instance_2",
            "snapshot instance_2 homeinfra-run-si"
        ]
    );

    // Abort instead: refused, nothing touched.
    let fw = FakeWorld::healthy(&inv);
    fw.state().snapshot_error = Some("etcdserver: leader changed".into());
    let p = plan_of(&fw, &inv, "run-sj", &[]);
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(PreSnapshot::Require),
        StartOptions {
            interactive: true,
            ..opts("run-sj", None)
        },
    );
    while let Some(e) = rx.recv().await {
        if matches!(&e, UpgradeEvent::Waiting { what, .. } if what == "operator") {
            h.send(Control::Abort).await;
        }
    }
    match h.wait().await {
        RunOutcome::Refused { guard, .. } => assert_eq!(guard, "pre-snapshot"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!fw.log().iter().any(|l| l.starts_with("cordon")));
}
