//! Storage-aware pacing against the fake world: the wait between nodes follows each replica
//! rebuild the engines report (progress, an ETA once two samples show a rate), the next node
//! starts only when no rebuild runs, and an unreadable rebuild status is not "done".

use std::time::Duration;

use super::engine_support::{opts, plan_of, run_to_end};
use homeinfra_tui::model::cluster::ReplicaRebuild;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::{RunOutcome, Settings, Step, StepOutcome, UpgradeEvent};

fn settings() -> Settings {
    Settings {
        time_zone: jiff::tz::TimeZone::UTC,
        confirm_timeout: Duration::from_secs(600),
        settle: Duration::ZERO,
        ..Settings::default()
    }
}

fn rebuild(fw: &FakeWorld, progress: u8) -> ReplicaRebuild {
    let st = fw.state();
    let r = &st.longhorn.replicas[0];
    ReplicaRebuild {
        volume: r.volume.clone(),
        replica: r.name.clone(),
        address: "tcp://10.42.0.7:10000".into(),
        progress,
        state: "in_progress".into(),
        error: String::new(),
    }
}

/// The `longhorn` waits' details, in order.
fn longhorn_waits(events: &[UpgradeEvent]) -> Vec<(usize, String, String)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            UpgradeEvent::Waiting { node, what, detail } if what == "longhorn" => {
                Some((i, node.clone(), detail.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_wait_between_nodes_shows_rebuild_progress_and_eta_then_goes_on() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let reads: Vec<_> = [10u8, 40, 70]
        .iter()
        .map(|p| Ok(vec![rebuild(&fw, *p)]))
        .collect();
    fw.state().rebuild_reads.extend(reads);
    let replica = rebuild(&fw, 0).replica;
    let p = plan_of(&fw, &inv, "run-pace");
    let (first, second) = (p.entries[0].node.clone(), p.entries[1].node.clone());
    let (outcome, events) = run_to_end(&fw, &inv, p, settings(), opts("run-pace", None)).await;
    assert_eq!(outcome, RunOutcome::Completed, "{events:#?}");
    let waits = longhorn_waits(&events);
    assert_eq!(waits.len(), 3, "{waits:#?}");
    assert!(
        waits
            .iter()
            .all(|(_, n, d)| *n == first && d.contains(&replica))
    );
    assert!(waits[0].2.contains("10% (ETA unknown)"), "{}", waits[0].2);
    for (w, pct) in waits[1..].iter().zip(["40%", "70%"]) {
        assert!(w.2.contains(&format!("{pct} (ETA ")), "{}", w.2);
        assert!(!w.2.contains("ETA unknown"), "{}", w.2);
    }
    // The next node starts only after the last rebuild report.
    let next = events
        .iter()
        .position(|e| matches!(e, UpgradeEvent::StepStarted { node, step: Step::Cordon } if *node == second))
        .unwrap();
    assert!(waits.iter().all(|(i, _, _)| *i < next));
}

#[tokio::test]
async fn an_unreadable_rebuild_status_is_waited_on_and_fails_the_wait_at_its_timeout() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    // Twice unreadable, then readable and idle: the run waits, then goes on.
    fw.state().rebuild_reads.extend([
        Err("list Longhorn engines: 403 Forbidden".to_string()),
        Err("list Longhorn engines: 403 Forbidden".to_string()),
    ]);
    let p = plan_of(&fw, &inv, "run-unread");
    let (outcome, events) = run_to_end(&fw, &inv, p, settings(), opts("run-unread", None)).await;
    assert_eq!(outcome, RunOutcome::Completed, "{events:#?}");
    let waits = longhorn_waits(&events);
    assert_eq!(waits.len(), 2, "{waits:#?}");
    assert!(waits.iter().all(|(_, _, d)| {
        d.contains("rebuild status unreadable (list Longhorn engines: 403 Forbidden)")
    }));

    // Never readable: the wait fails at its timeout, naming why.
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .rebuild_reads
        .extend((0..500).map(|_| Err("engines.longhorn.io: connection refused".to_string())));
    let p = plan_of(&fw, &inv, "run-never");
    let s = Settings {
        longhorn_timeout: Duration::from_secs(60),
        ..settings()
    };
    let (outcome, events) = run_to_end(&fw, &inv, p, s, opts("run-never", None)).await;
    assert_ne!(outcome, RunOutcome::Completed, "{events:#?}");
    let failed = events.iter().find_map(|e| match e {
        UpgradeEvent::StepFinished {
            step: Step::WaitHealthy,
            outcome: StepOutcome::Failed { message },
            ..
        } => Some(message.clone()),
        _ => None,
    });
    let failed = failed.expect("the wait-healthy step fails");
    assert!(
        failed.contains("Longhorn volumes not healthy within 60s"),
        "{failed}"
    );
    assert!(failed.contains("rebuild status unreadable"), "{failed}");
}
