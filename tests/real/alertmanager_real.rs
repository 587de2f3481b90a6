//! Against a REAL Alertmanager (Debian's prometheus-alertmanager on 127.0.0.1, started by
//! scripts/test-env.sh): the alert guard reads its active alerts, so an operator's silence stops
//! an alert from blocking; a run silences each node before its cordon, keeps the silences alive
//! while the node is in progress and expires them after its uncordon; a killed run's silences
//! lapse by themselves. The cluster and hosts are the in-memory fake; only Alertmanager is real.
//! Every alert and silence here carries labels unique to the test, so no other test's alert is
//! ever silenced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use homeinfra_tui::config::AlertmanagerConfig;
use homeinfra_tui::config::RebootPolicy;
use homeinfra_tui::inventory::Inventory;
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::live::{AmSilencer, LiveHealth};
use homeinfra_tui::operations::upgrade::world::{
    HealthInputs, HealthProvider, ReadWorld, SilenceWrite,
};
use homeinfra_tui::operations::upgrade::{
    Control, Plan, RunOutcome, Settings, Step, UpgradeEvent, dry_run, plan, start,
};
use homeinfra_tui::sources::alertmanager::{Alertmanager, CREATED_BY};

use crate::common;

fn am_url() -> Option<String> {
    common::require_env("HOMEINFRA_TEST_ALERTMANAGER_URL", "real Alertmanager")
}

/// A label value no other test uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("m14{tag}{}x{nanos}", std::process::id())
}

fn am_config(url: &str, matchers: &[&str], secs: u64) -> AlertmanagerConfig {
    AlertmanagerConfig {
        url: Some(url.to_string()),
        silence_matchers: matchers.iter().map(|s| s.to_string()).collect(),
        silence_secs: secs,
        ..Default::default()
    }
}

/// Post an alert to Alertmanager (firing for five minutes).
async fn post_alert(url: &str, labels: serde_json::Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let now = jiff::Timestamp::now();
    let ends = now + jiff::SignedDuration::from_secs(300);
    let body = serde_json::json!([{
        "labels": labels,
        "startsAt": now.to_string(),
        "endsAt": ends.to_string(),
    }]);
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v2/alerts"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The silences that mute the alert named `name` right now.
async fn silenced_by(am: &Alertmanager, name: &str) -> Option<Vec<String>> {
    let all = am.alerts(true).await.unwrap();
    all.into_iter()
        .find(|a| a.name() == name)
        .map(|a| a.silenced_by)
}

/// A 4-node fake whose hosts have names (and ids) no other test uses.
fn unique_inventory(tag: &str) -> Inventory {
    let mut inv = fake::inventory(4);
    let u = unique(tag);
    for h in &mut inv.hosts {
        h.hostname = format!("{u}-{}", h.hostname);
        h.id = format!("{u}-{}", h.id);
    }
    inv
}

fn plan_of(fw: &FakeWorld, inv: &Inventory, run_id: &str) -> Plan {
    let etcd = fw.state().etcd.clone();
    plan(inv, etcd.as_ref(), &[], &[], "github:me/infra", run_id).unwrap()
}

fn settings() -> Settings {
    Settings {
        time_zone: jiff::tz::TimeZone::UTC,
        ..Settings::default()
    }
}

/// The fake's cluster, etcd and hosts, with the alerts of the real Alertmanager.
struct RealAlerts {
    fake: Arc<FakeWorld>,
    live: LiveHealth,
}

impl HealthProvider for RealAlerts {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            let mut h = self.fake.gather(gates).await;
            let live = self.live.gather(&[]).await;
            h.alerts = live.alerts;
            h
        })
    }
}

/// The alert guard reads Alertmanager's active alerts: an alert firing there refuses the node;
/// once an operator silences it, it no longer blocks.
#[tokio::test]
async fn an_operators_silence_stops_an_alert_from_blocking() {
    let Some(url) = am_url() else { return };
    let name = unique("Blocking");
    post_alert(
        &url,
        serde_json::json!({"alertname": name, "severity": "critical", "job": "m14-test"}),
    )
    .await;
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let mut config = homeinfra_tui::config::Config {
        alertmanager: am_config(&url, &[], 60),
        ..Default::default()
    };
    config.etcd.enabled = false;
    let live = LiveHealth::new(&homeinfra_tui::base::Env::new(config, inv.clone()));
    let read = ReadWorld {
        health: Arc::new(RealAlerts {
            fake: fw.clone(),
            live,
        }),
        ..fw.read_world()
    };
    let p = plan_of(&fw, &inv, "m14-operator-silence");
    let ours = |v: &[(
        homeinfra_tui::operations::upgrade::PlanEntry,
        Vec<homeinfra_tui::operations::upgrade::GuardVerdict>,
    )]| {
        v.iter()
            .flat_map(|(_, v)| v)
            .filter(|g| g.guard == "alert-firing" && g.subject.contains(&name))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Alertmanager may take a moment to hold the alert.
    let deadline = Instant::now() + Duration::from_secs(10);
    let blocked = loop {
        let v = dry_run(&read, &inv, &p, &settings()).await;
        let b = ours(&v);
        if !b.is_empty() || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!blocked.is_empty(), "the alert blocks before the silence");
    assert!(blocked.iter().all(|g| !g.pass), "{blocked:?}");

    // The operator silences it (not homeinfra-tui: any silence counts).
    let am = Alertmanager::new(&am_config(&url, &[], 60)).unwrap();
    let m = homeinfra_tui::config::SilenceMatcher::parse(&format!("alertname=\"{name}\"")).unwrap();
    let id = am
        .create_silence(
            &[m],
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120),
            "operator: known and harmless",
        )
        .await
        .unwrap();
    let v = dry_run(&read, &inv, &p, &settings()).await;
    let after = ours(&v);
    am.expire(&id).await.unwrap();
    assert!(after.is_empty(), "silenced, it no longer blocks: {after:?}");
    // The pane's list still has it, marked silenced (while the silence lasted).
    let s = am.silence(&id).await.unwrap().unwrap();
    assert_eq!(s.status.state, "expired");
}

/// A run silences each node before its cordon (comment naming the run and the node, created
/// by homeinfra-tui), the silence mutes the node's alerts while the node is in progress, and it
/// is expired after the node's uncordon.
#[tokio::test]
async fn a_run_silences_each_node_from_before_its_cordon_until_after_its_uncordon() {
    let Some(url) = am_url() else { return };
    let inv = unique_inventory("run");
    let fw = FakeWorld::healthy(&inv);
    let run_id = "m14-silences-1";
    let p = plan_of(&fw, &inv, run_id);
    let only_first = Plan {
        entries: p.entries.iter().take(2).cloned().collect(),
        ..p
    };
    let first = only_first.entries[0].node.clone();
    let nodes: Vec<String> = only_first.entries.iter().map(|e| e.node.clone()).collect();
    let alert = unique("NodeAlert");
    post_alert(
        &url,
        serde_json::json!({"alertname": alert, "severity": "critical", "instance": format!("{first}:9100")}),
    )
    .await;
    let cfg = am_config(
        &url,
        &[
            r#"instance=~"{hostname}(:[0-9]+)?""#,
            r#"node="{hostname}""#,
        ],
        60,
    );
    let silencer: Arc<dyn SilenceWrite> = Arc::new(
        AmSilencer::new(&homeinfra_tui::testing::writes(), &cfg)
            .unwrap()
            .unwrap(),
    );
    let mut world = fw.world();
    world.write = world.write.clone().with_silences(Some(silencer));
    let (h, mut rx) = start(
        world,
        inv.clone(),
        only_first,
        Settings {
            reboot: RebootPolicy::Ask,
            ..settings()
        },
        StartOptions {
            holder: format!("tester@box 1 {run_id}"),
            ..Default::default()
        },
    );
    let am = Alertmanager::new(&cfg).unwrap();
    let mut events = Vec::new();
    let mut seen_in_progress = false;
    while let Some(e) = rx.recv().await {
        // The run asks before each reboot: the node is cordoned, drained and switched, in
        // progress. Its silences are active in Alertmanager and mute its alert.
        if let UpgradeEvent::Waiting { node, what, .. } = &e
            && what == "confirm-reboot"
        {
            if node == &first {
                let ids: Vec<String> = events
                    .iter()
                    .find_map(|e| match e {
                        UpgradeEvent::Silenced { node, silences, .. } if node == &first => {
                            Some(silences.iter().map(|s| s.id.clone()).collect())
                        }
                        _ => None,
                    })
                    .expect("silenced before the reboot");
                assert_eq!(ids.len(), 2, "one silence per matcher");
                for id in &ids {
                    let s = am
                        .silence(id)
                        .await
                        .unwrap()
                        .expect("known to Alertmanager");
                    assert_eq!(s.status.state, "active", "{s:?}");
                    assert_eq!(s.created_by, CREATED_BY);
                    assert!(
                        s.comment.contains(run_id) && s.comment.contains(&first),
                        "{}",
                        s.comment
                    );
                }
                let by = silenced_by(&am, &alert).await.expect("the alert is held");
                assert!(
                    by.iter().any(|b| ids.contains(b)),
                    "the node's alert is muted by the run's silence: {by:?} vs {ids:?}"
                );
                seen_in_progress = true;
            }
            assert!(h.send(Control::Approve).await);
        }
        events.push(e);
    }
    assert_eq!(h.wait().await, RunOutcome::Completed);
    assert!(seen_in_progress);
    let pos = |f: &dyn Fn(&UpgradeEvent) -> bool| events.iter().position(f);
    for n in nodes {
        let silenced = pos(&|e| matches!(e, UpgradeEvent::Silenced { node, .. } if *node == n))
            .expect("silenced");
        let cordon = pos(
            &|e| matches!(e, UpgradeEvent::StepStarted { node, step: Step::Cordon } if *node == n),
        )
        .expect("cordoned");
        let uncordoned = pos(&|e| {
            matches!(e, UpgradeEvent::StepFinished { node, step: Step::Uncordon, .. } if *node == n)
        })
        .expect("uncordoned");
        let expired =
            pos(&|e| matches!(e, UpgradeEvent::SilencesExpired { node, .. } if *node == n))
                .expect("expired");
        assert!(silenced < cordon, "silenced before the cordon");
        assert!(uncordoned < expired, "expired after the uncordon");
        let UpgradeEvent::SilencesExpired { ids, .. } = &events[expired] else {
            unreachable!()
        };
        for id in ids {
            let s = am.silence(id).await.unwrap().unwrap();
            assert_eq!(s.status.state, "expired", "{s:?}");
        }
    }
    let by = silenced_by(&am, &alert).await.unwrap();
    assert!(
        by.is_empty(),
        "nothing mutes the alert after the run: {by:?}"
    );
}

/// A run that dies keeps nothing silenced for long: its silences, extended while it lived,
/// lapse by themselves a short while (`silence_secs`) after it was killed.
#[tokio::test]
async fn a_killed_runs_silences_lapse_by_themselves() {
    let Some(url) = am_url() else { return };
    let inv = unique_inventory("kill");
    let fw = FakeWorld::healthy(&inv);
    let cfg = am_config(&url, &[r#"node="{hostname}""#], 3);
    let silencer: Arc<dyn SilenceWrite> = Arc::new(
        AmSilencer::new(&homeinfra_tui::testing::writes(), &cfg)
            .unwrap()
            .unwrap(),
    );
    let mut world = fw.world();
    world.write = world.write.clone().with_silences(Some(silencer));
    // The run hangs in the first node's switch.
    fw.freeze_at("exec", 1);
    let run_id = "m14-silences-kill";
    let (h, mut rx) = start(
        world,
        inv.clone(),
        plan_of(&fw, &inv, run_id),
        settings(),
        StartOptions {
            holder: format!("tester@box 1 {run_id}"),
            ..Default::default()
        },
    );
    fw.wait_frozen().await;
    let mut id = None;
    while let Ok(e) = rx.try_recv() {
        if let UpgradeEvent::Silenced { silences, .. } = e {
            id = silences.first().map(|s| s.id.clone());
        }
    }
    let id = id.expect("silenced before the cordon");
    let am = Alertmanager::new(&cfg).unwrap();
    let first = am.silence(&id).await.unwrap().unwrap();
    // Alive past its first end: the run extends it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let alive = am.silence(&id).await.unwrap().unwrap();
    assert_eq!(alive.status.state, "active", "{alive:?}");
    assert!(
        alive.ends_at > first.ends_at,
        "{} vs {}",
        alive.ends_at,
        first.ends_at
    );
    h.kill();
    // Killed: no one extends it; within its 3 s it lapses.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = am.silence(&id).await.unwrap().unwrap();
        if s.status.state == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "still {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
