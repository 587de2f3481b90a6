//! Storage-aware pacing against the simulator: after a node's reboot its replicas rebuild
//! slowly (`slow-rebuild`), their progress served as Longhorn serves it (the volumes' Engines,
//! `status.rebuildStatus`, over the Kubernetes API); the run waits, showing rising
//! percentages and an ETA, and the next node starts only when every rebuild is done.

use std::time::Duration;

use super::upgrade_sim::{sim, world};
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::{RunOutcome, Settings, Step, UpgradeEvent, plan, start};

/// The percentages in a wait's detail (`… 42% (ETA …)`), in order.
fn percentages(detail: &str) -> Vec<u8> {
    detail
        .split('%')
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_waits_for_slow_rebuilds_showing_progress_and_an_eta() {
    let s = sim(&["slow-rebuild=6"], 50.0).await;
    let (w, _hosts) = world(&s).await;
    let inv = s.h.inventory().clone();
    let only = ["node4".to_string(), "node2".to_string()];
    let p = plan(&inv, None, &[], &only, "github:me/infra", "run-pace").unwrap();
    let (first, second) = (p.entries[0].node.clone(), p.entries[1].node.clone());
    let settings = Settings {
        poll: Duration::from_millis(250),
        settle: Duration::ZERO,
        drain_timeout: Duration::from_secs(60),
        reboot_timeout: Duration::from_secs(60),
        ready_timeout: Duration::from_secs(60),
        etcd_timeout: Duration::from_secs(60),
        longhorn_timeout: Duration::from_secs(120),
        ..Settings::default()
    };
    let (h, mut rx) = start(
        w.clone(),
        inv,
        p,
        settings,
        StartOptions {
            holder: "t@x 1 run-pace".into(),
            ..Default::default()
        },
    );
    let mut events = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        h.wait().await
    })
    .await
    .expect("the run ends");
    assert_eq!(outcome, RunOutcome::Completed, "{events:#?}");
    let waits: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            UpgradeEvent::Waiting { node, what, detail }
                if what == "longhorn" && *node == first =>
            {
                Some((i, detail.clone()))
            }
            _ => None,
        })
        .collect();
    let with_progress: Vec<&(usize, String)> =
        waits.iter().filter(|(_, d)| d.contains("% (ETA")).collect();
    assert!(with_progress.len() >= 3, "{waits:#?}");
    // The first replica's percentage rises over the wait; an ETA once two samples show a rate.
    let firsts: Vec<u8> = with_progress
        .iter()
        .filter_map(|(_, d)| percentages(d).first().copied())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
    assert!(firsts.last() > firsts.first(), "{firsts:?}");
    assert!(
        with_progress[0].1.contains("(ETA unknown)"),
        "{}",
        with_progress[0].1
    );
    assert!(
        with_progress
            .iter()
            .any(|(_, d)| d.contains("% (ETA ") && !d.contains("ETA unknown")),
        "{waits:#?}"
    );
    assert!(
        with_progress.iter().all(|(_, d)| d.contains(" on ")),
        "{waits:#?}"
    );
    // The next node starts after the rebuilds are done.
    let next = events
        .iter()
        .position(|e| matches!(e, UpgradeEvent::StepStarted { node, step: Step::Cordon } if *node == second))
        .expect("the second node is cordoned");
    assert!(waits.iter().all(|(i, _)| *i < next), "{waits:#?}");
    // Done: the engines report no rebuild.
    let left = w.read.cluster.longhorn_rebuilds().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
