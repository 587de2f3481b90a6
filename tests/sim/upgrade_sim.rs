//! The upgrade against the simulator's Kubernetes API and etcd gateway (src/sim): the real
//! kube-rs cordon, Eviction API and Lease code, and a whole rolling run with the real health
//! sources. The hosts' side (switch, reboot) goes to the simulated hosts directly here (the
//! runs through the simulator's SSH face are in `upgrade_safety` and the CLI tests).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::Result;
use futures::future::BoxFuture;
use homeinfra_tui::config::{self, Config};
use homeinfra_tui::inventory::Host;
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::live::{KubeCluster, KubeWriter, LiveHealth};
use homeinfra_tui::operations::upgrade::lock::{self, Acquire};
use homeinfra_tui::operations::upgrade::world::{
    AutoUpgrade, BootState, CommandSpec, Eviction, HostRead, HostWrite, ReadWorld, RevertTimer,
    SystemClock, World, Writers,
};
use homeinfra_tui::operations::upgrade::{
    RunOutcome, Settings, Step, UpgradeEvent, journal, plan, start,
};
use homeinfra_tui::probes::Request;
use homeinfra_tui::probes::etcd_snapshot::SnapshotSave;
use homeinfra_tui::sim::{self, Scenario, SimHandle, SimOptions};
use tokio::sync::mpsc;

pub(crate) struct Sim {
    pub(crate) h: SimHandle,
    cfg: Config,
    _dir: tempfile::TempDir,
}

pub(crate) async fn sim(scenarios: &[&str], speed: f64) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let scenarios: Vec<Scenario> = scenarios.iter().map(|s| s.parse().unwrap()).collect();
    let h = sim::start(
        SimOptions {
            scenarios,
            speed,
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    let (cfg, _) = config::load(Some(&h.config_path())).unwrap();
    Sim { h, cfg, _dir: dir }
}

/// The simulated hosts: a switch marks the host for a reboot; a reboot goes to the simulator;
/// revert timers are armed and disarmed (never fired: these runs confirm in time).
pub(crate) struct SimHosts {
    sim: Arc<sim::World>,
    needs_reboot: Mutex<BTreeSet<String>>,
    armed: Mutex<BTreeSet<(String, String)>>,
    log: Mutex<Vec<String>>,
}

impl HostWrite for SimHosts {
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        _timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move {
            // The pre-upgrade etcd snapshot: as the simulator's SSH face answers it.
            if let Some(req) = homeinfra_tui::probes::etcd_snapshot::recognise(command.text()) {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("snapshot {}", host.hostname));
                return Ok(
                    match self.sim.etcd_snapshot_save(&host.hostname, &req.name) {
                        Ok(file) => {
                            let _ = lines.send(SnapshotSave::saved_line(&file).trim_end().into());
                            Some(0)
                        }
                        Err(e) => {
                            let _ =
                                lines.send(format!("FATA[0000] Error: snapshot save failed: {e}"));
                            Some(1)
                        }
                    },
                );
            }
            let _ = lines.send(format!("simulated: {}", command.text()));
            match homeinfra_tui::probes::recognise(command.text(), None) {
                Some(Request::ArmRevert(a)) => {
                    self.armed
                        .lock()
                        .unwrap()
                        .insert((host.hostname.clone(), a.unit));
                    return Ok(Some(0));
                }
                Some(Request::Disarm(d)) => {
                    let had = self
                        .armed
                        .lock()
                        .unwrap()
                        .remove(&(host.hostname.clone(), d.unit));
                    return Ok(Some(if had { 0 } else { 5 }));
                }
                _ => {}
            }
            self.log
                .lock()
                .unwrap()
                .push(format!("exec {}", host.hostname));
            if !command.text().contains("--rollback") {
                self.needs_reboot
                    .lock()
                    .unwrap()
                    .insert(host.hostname.clone());
            }
            Ok(Some(0))
        })
    }
    fn reboot<'a>(&'a self, host: &'a Host, _command: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.needs_reboot.lock().unwrap().remove(&host.hostname);
            self.log
                .lock()
                .unwrap()
                .push(format!("reboot {}", host.hostname));
            self.sim
                .reboot(&host.hostname)
                .map_err(|e| color_eyre::eyre::eyre!("{}", e.message))
        })
    }
}

impl HostRead for SimHosts {
    fn boot_id<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match self.sim.host(&host.hostname) {
                Some(h) if h.up && !h.rebooting && !h.unreachable => {
                    Ok(format!("sim-boot-{}", h.boots))
                }
                _ => Err(color_eyre::eyre::eyre!("{}: connection refused", host.id)),
            }
        })
    }
    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>> {
        Box::pin(async move {
            let st = self.sim.host(&host.hostname).unwrap();
            let needed = self.needs_reboot.lock().unwrap().contains(&host.hostname);
            Ok(BootState {
                booted_system: Some(format!("boot-{}", st.boots)),
                current_system: Some(format!("/nix/store/0000-nixos-system-{}", host.hostname)),
                reboot_needed: Some(needed),
                reasons: if needed {
                    vec!["kernel".into()]
                } else {
                    vec![]
                },
                current_kernel: None,
            })
        })
    }
    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.sim
                .host(&host.hostname)
                .is_some_and(|h| h.up && !h.rebooting && !h.unreachable)
        })
    }
    fn auto_upgrade<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>> {
        Box::pin(async move {
            Ok(AutoUpgrade {
                running: Some(false),
                next_run: None,
                timer_present: true,
            })
        })
    }
    fn k3s_version<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { Ok(None) })
    }
    fn fresh_login<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        self.reachable(host)
    }
    fn revert_timer<'a>(
        &'a self,
        host: &'a Host,
        unit: &'a str,
    ) -> BoxFuture<'a, Result<RevertTimer>> {
        Box::pin(async move {
            let armed = self
                .armed
                .lock()
                .unwrap()
                .contains(&(host.hostname.clone(), unit.to_string()));
            Ok(if armed {
                RevertTimer::Armed
            } else {
                RevertTimer::Gone
            })
        })
    }
    /// An unknown loader: these hosts reboot straight into what they run.
    fn bootloader<'a>(
        &'a self,
        _host: &'a Host,
    ) -> BoxFuture<'a, Result<homeinfra_tui::probes::bootloader::Bootloader>> {
        Box::pin(async move { Ok(Default::default()) })
    }
}

pub(crate) async fn world(s: &Sim) -> (World, Arc<SimHosts>) {
    let cluster = KubeCluster::new(&s.cfg.kubernetes).await.unwrap();
    let writes = homeinfra_tui::testing::writes();
    let writer = Arc::new(KubeWriter::new(&writes, cluster.client().clone()));
    let hosts = Arc::new(SimHosts {
        sim: s.h.world().clone(),
        needs_reboot: Mutex::new(BTreeSet::new()),
        armed: Mutex::new(BTreeSet::new()),
        log: Mutex::new(Vec::new()),
    });
    let env = homeinfra_tui::base::Env::new(s.cfg.clone(), s.h.inventory().clone());
    let health = Arc::new(LiveHealth::new(&env));
    (
        World {
            read: ReadWorld {
                cluster: Arc::new(cluster),
                hosts: hosts.clone(),
                health,
                clock: Arc::new(SystemClock),
            },
            write: Writers::new(&writes, writer, hosts.clone()),
        },
        hosts,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_uncordon_and_the_lease_against_the_sim() {
    let s = sim(&[], 20.0).await;
    let (w, _) = world(&s).await;
    let c = w.read.cluster.as_ref();
    let cw = w.write.cluster.as_ref();
    cw.cordon("node2", "run-sim").await.unwrap();
    let st = c.node("node2").await.unwrap();
    assert!(st.unschedulable);
    assert_eq!(st.cordoned_by.as_deref(), Some("run-sim"));
    cw.uncordon("node2").await.unwrap();
    let st = c.node("node2").await.unwrap();
    assert!(!st.unschedulable);
    assert_eq!(st.cordoned_by, None);

    let now = jiff::Timestamp::now();
    let d = Duration::from_secs(60);
    let a = lock::acquire(c, cw, "alice@lap 1 run-a", "run-a", d, now, false)
        .await
        .unwrap();
    let Acquire::Acquired(mut held) = a else {
        panic!("{a:?}")
    };
    let b = lock::acquire(c, cw, "bob@lap 2 run-b", "run-b", d, now, false)
        .await
        .unwrap();
    match b {
        Acquire::Held(h) => {
            assert_eq!(h.holder, "alice@lap 1 run-a");
            assert!(!h.stale);
        }
        other => panic!("{other:?}"),
    }
    lock::renew(c, cw, &mut held, jiff::Timestamp::now())
        .await
        .unwrap();
    // Two more racing at once while alice holds it: both refused.
    let (x, y) = tokio::join!(
        lock::acquire(c, cw, "x@a 3 run-x", "run-x", d, now, false),
        lock::acquire(c, cw, "y@b 4 run-y", "run-y", d, now, false)
    );
    assert!(matches!(x.unwrap(), Acquire::Held(_)) && matches!(y.unwrap(), Acquire::Held(_)));
    // Stale only with --force-unlock.
    let later = now + jiff::SignedDuration::from_mins(5);
    let b = lock::acquire(c, cw, "bob@lap 2 run-b", "run-b", d, later, false)
        .await
        .unwrap();
    assert!(matches!(&b, Acquire::Held(h) if h.stale), "{b:?}");
    let b = lock::acquire(c, cw, "bob@lap 2 run-b", "run-b", d, later, true)
        .await
        .unwrap();
    assert!(matches!(b, Acquire::Acquired(_)));
    // alice's renewal now fails: she lost the lock.
    assert!(matches!(
        lock::renew(c, cw, &mut held, jiff::Timestamp::now()).await,
        Err(lock::RenewError::Lost(_))
    ));
    assert!(lock::release(c, cw, "run-b").await.unwrap());
    assert_eq!(c.get_lease().await.unwrap(), None);
    // A free lock taken by two at once: exactly one gets it (the Lease create is atomic).
    let (x, y) = tokio::join!(
        lock::acquire(c, cw, "x@a 3 run-x", "run-x", d, now, false),
        lock::acquire(c, cw, "y@b 4 run-y", "run-y", d, now, false)
    );
    let won = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|a| matches!(a, Acquire::Acquired(_)))
        .count();
    assert_eq!(won, 1);
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_blocked_eviction_names_the_pdb() {
    let s = sim(&["pdb-blocks"], 20.0).await;
    let (w, _) = world(&s).await;
    let c = w.read.cluster.as_ref();
    let mut found = None;
    for h in &s.h.inventory().hosts {
        for p in c.pods_on(&h.hostname).await.unwrap() {
            if p.labels.get("app").map(String::as_str) == Some("postgres") {
                found = Some(p);
            }
        }
    }
    let pod = found.expect("a postgres pod");
    match w.write.cluster.evict(&pod, None).await.unwrap() {
        Eviction::Blocked { pdb, message } => {
            assert_eq!(pdb.as_deref(), Some("apps/postgres"), "{message}");
        }
        other => panic!("expected a 429: {other:?}"),
    }
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_rolling_run_against_the_sim() {
    let s = sim(&[], 50.0).await;
    let (w, hosts) = world(&s).await;
    let inv = s.h.inventory().clone();
    let etcd = w.read.health.gather(&[]).await.etcd.and_then(|r| r.ok());
    let leader = etcd
        .as_ref()
        .and_then(|e| e.leader_member())
        .map(|m| m.name.clone());
    let p = plan(&inv, etcd.as_ref(), &[], &[], "github:me/infra", "run-sim").unwrap();
    let order: Vec<String> = p.entries.iter().map(|e| e.node.clone()).collect();
    assert_eq!(order[0], "node4", "the agent first");
    let last = p.entries.last().unwrap();
    assert!(last.etcd_leader, "leader {leader:?} last: {order:?}");
    let settings = Settings {
        poll: Duration::from_millis(200),
        settle: Duration::ZERO,
        drain_timeout: Duration::from_secs(60),
        reboot_timeout: Duration::from_secs(60),
        ready_timeout: Duration::from_secs(60),
        etcd_timeout: Duration::from_secs(60),
        longhorn_timeout: Duration::from_secs(120),
        ..Settings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (h, mut rx) = start(
        w.clone(),
        inv.clone(),
        p,
        settings,
        StartOptions {
            holder: "t@x 1 run-sim".into(),
            journal_dir: Some(dir.path().to_path_buf()),
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
    let failures: Vec<&UpgradeEvent> = events
        .iter()
        .filter(|e| matches!(e, UpgradeEvent::StepFinished { outcome, .. } if outcome.is_failed()))
        .collect();
    assert_eq!(outcome, RunOutcome::Completed, "{failures:#?}");
    let rebooted: Vec<String> = hosts
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("reboot ").map(str::to_string))
        .collect();
    assert_eq!(rebooted, order);
    for n in &order {
        let st = w.read.cluster.node(n).await.unwrap();
        assert!(!st.unschedulable && st.cordoned_by.is_none(), "{n}");
        assert_eq!(st.ready, Some(true));
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, UpgradeEvent::Waiting { what, .. } if what == "host-down"))
    );
    assert!(events.iter().any(|e| matches!(
        e,
        UpgradeEvent::StepFinished {
            step: Step::Drain,
            ..
        }
    )));
    assert_eq!(w.read.cluster.get_lease().await.unwrap(), None);
    // The etcd snapshot before the first control plane: once, on the first server that does
    // not lead etcd, before the first node (the agent) was cordoned.
    let first_server = inv
        .control_planes()
        .find(|h| !p_leader_is(&leader, &h.hostname))
        .map(|h| h.hostname.clone())
        .unwrap();
    let snaps: Vec<String> = hosts
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("snapshot "))
        .cloned()
        .collect();
    assert_eq!(snaps, [format!("snapshot {first_server}")]);
    let snap_done = events
        .iter()
        .position(
            |e| matches!(e, UpgradeEvent::SnapshotFinished { outcome, .. } if !outcome.is_failed()),
        )
        .expect("the snapshot finished well");
    let first_step = events
        .iter()
        .position(|e| matches!(e, UpgradeEvent::StepStarted { .. }))
        .unwrap();
    assert!(snap_done < first_step, "the snapshot before any node");
    let prefix = format!("homeinfra-run-sim-{first_server}-");
    // Its ETCDSnapshotFile, as a kubectl-style GET of the simulator's API sees it.
    let ca = reqwest::Certificate::from_pem(s.h.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let list: serde_json::Value = http
        .get(format!(
            "{}/apis/k3s.cattle.io/v1/etcdsnapshotfiles",
            s.h.api_url()
        ))
        .bearer_auth(s.h.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["spec"]["snapshotName"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    assert_eq!(mine.len(), 1, "{list:#}");
    assert_eq!(mine[0]["status"]["readyToUse"], true);
    assert_eq!(mine[0]["spec"]["nodeName"], first_server.as_str());
    let file = mine[0]["spec"]["snapshotName"]
        .as_str()
        .unwrap()
        .to_string();
    // The journal names it; so does the run's last notice.
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-sim")).unwrap();
    assert_eq!(
        sum.snapshot.and_then(|r| r.file).as_deref(),
        Some(file.as_str())
    );
    assert!(events.iter().any(|e| matches!(e,
        UpgradeEvent::Notice { message, .. } if message.contains(&file))));
    // The Recovery pane's data: the newest snapshot is this one.
    let ctx = crate::common::sim::env(&s.h);
    let snap = homeinfra_tui::sources::gather_once(&ctx, Duration::from_secs(10)).await;
    let rows = homeinfra_tui::model::assess::recovery::rows(
        &snap,
        &ctx.inventory,
        &ctx.config.thresholds,
        jiff::Timestamp::now(),
    );
    assert!(
        rows.iter()
            .any(|r| r.target == "cluster"
                && r.note.contains(&format!("newest etcd snapshot {file}"))),
        "{rows:#?}"
    );
    s.h.shutdown().await;
}

/// Whether etcd member `leader` (its name starts with the hostname) is on `hostname`.
fn p_leader_is(leader: &Option<String>, hostname: &str) -> bool {
    leader
        .as_deref()
        .is_some_and(|m| m == hostname || m.starts_with(&format!("{hostname}-")))
}

/// Under `snapshot-failing`, `require` refuses the run with k3s's error before any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_failing_refuses_the_run_touching_no_node() {
    let s = sim(&["snapshot-failing"], 50.0).await;
    let (w, hosts) = world(&s).await;
    let inv = s.h.inventory().clone();
    let p = plan(&inv, None, &[], &[], "github:me/infra", "run-snapfail").unwrap();
    let (outcome, events) = {
        let (h, mut rx) = start(
            w.clone(),
            inv.clone(),
            p,
            fast_settings(),
            StartOptions {
                holder: "t@x 1 run-snapfail".into(),
                ..Default::default()
            },
        );
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        (h.wait().await, events)
    };
    match &outcome {
        RunOutcome::Refused {
            node: None,
            guard,
            message,
        } => {
            assert_eq!(guard, "pre-snapshot");
            assert!(message.contains(sim::world::SNAPSHOT_FAILURE), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}: {events:#?}"),
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, UpgradeEvent::StepStarted { .. })),
        "{events:#?}"
    );
    let log = hosts.log.lock().unwrap().clone();
    assert!(
        log.iter().all(|l| l.starts_with("snapshot ")),
        "no switch, no reboot: {log:?}"
    );
    for n in inv.hosts.iter().map(|h| h.hostname.clone()) {
        let st = w.read.cluster.node(&n).await.unwrap();
        assert!(!st.unschedulable && st.cordoned_by.is_none(), "{n}");
    }
    assert_eq!(w.read.cluster.get_lease().await.unwrap(), None);
    s.h.shutdown().await;
}

fn fast_settings() -> Settings {
    Settings {
        poll: Duration::from_millis(200),
        settle: Duration::ZERO,
        drain_timeout: Duration::from_secs(3),
        reboot_timeout: Duration::from_secs(4),
        ready_timeout: Duration::from_secs(3),
        etcd_timeout: Duration::from_secs(10),
        longhorn_timeout: Duration::from_secs(30),
        ..Settings::default()
    }
}

async fn run_only(s: &Sim, w: &World, node: &str, run_id: &str) -> (RunOutcome, Vec<UpgradeEvent>) {
    let inv = s.h.inventory().clone();
    let p = plan(&inv, None, &[], &[node.to_string()], "f", run_id).unwrap();
    let (h, mut rx) = start(
        w.clone(),
        inv,
        p,
        fast_settings(),
        StartOptions {
            holder: format!("t@x 1 {run_id}"),
            ..Default::default()
        },
    );
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (h.wait().await, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_blocks_the_drain_which_times_out_with_the_node_cordoned() {
    let s = sim(&["pdb-blocks"], 20.0).await;
    let (w, hosts) = world(&s).await;
    let mut node = None;
    for h in &s.h.inventory().hosts {
        if w.read
            .cluster
            .pods_on(&h.hostname)
            .await
            .unwrap()
            .iter()
            .any(|p| p.labels.get("app").map(String::as_str) == Some("postgres"))
        {
            node = Some(h.hostname.clone());
        }
    }
    let node = node.expect("the postgres pod's node");
    let (outcome, events) = run_only(&s, &w, &node, "run-pdb").await;
    match &outcome {
        RunOutcome::Failed {
            node: n,
            step,
            message,
        } => {
            assert_eq!((n.as_str(), *step), (node.as_str(), Step::Drain));
            assert!(
                message.contains("timed out") && message.contains("apps/postgres"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, UpgradeEvent::Waiting { what, detail, .. }
        if what == "eviction-blocked" && detail.contains("PodDisruptionBudget apps/postgres")))
    );
    let st = w.read.cluster.node(&node).await.unwrap();
    assert_eq!(st.cordoned_by.as_deref(), Some("run-pdb"));
    // (The node may be a server: the run's etcd snapshot came first.)
    let log = hosts.log.lock().unwrap().clone();
    assert!(
        log.iter().all(|l| l.starts_with("snapshot ")),
        "never switched: {log:?}"
    );
    assert_eq!(w.read.cluster.get_lease().await.unwrap(), None);
    s.h.shutdown().await;
}

/// A host that does not come back within the reboot timeout is still rebooting, not failed:
/// the run stops with the node cordoned, and nothing is rolled back over a connection that
/// cannot open (the old behaviour "tried" a rollback here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_never_returns_stops_cordoned_without_a_rollback() {
    let s = sim(&["node-never-returns=node4"], 20.0).await;
    let (w, hosts) = world(&s).await;
    let (outcome, events) = run_only(&s, &w, "node4", "run-nr").await;
    match &outcome {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), *step), ("node4", Step::Reboot));
            assert!(
                message.contains("is still rebooting")
                    && message.contains("nothing is rolled back")
                    && message.contains("--resume run-nr"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!events.iter().any(|e| matches!(
        e,
        UpgradeEvent::StepStarted {
            step: Step::Rollback,
            ..
        }
    )));
    let log = hosts.log.lock().unwrap().clone();
    assert_eq!(
        log,
        ["exec node4", "reboot node4"],
        "switch, reboot, no rollback"
    );
    let st = w.read.cluster.node("node4").await.unwrap();
    assert_eq!(st.cordoned_by.as_deref(), Some("run-nr"));
    assert_ne!(st.ready, Some(true));
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_refuse_the_simulators_fault_scenarios() {
    for (scenario, guard) in [
        ("last-replica", "last-replica"),
        ("degraded-volume", "degraded-volume"),
        ("etcd-member-down", "etcd-member-down"),
    ] {
        let s = sim(&[scenario], 20.0).await;
        let (w, _) = world(&s).await;
        let inv = s.h.inventory().clone();
        let p = plan(&inv, None, &[], &[], "f", "dry").unwrap();
        let verdicts =
            homeinfra_tui::operations::upgrade::dry_run(&w.read, &inv, &p, &fast_settings()).await;
        let refused: Vec<&str> = verdicts
            .iter()
            .filter(|(_, v)| v.iter().any(|v| v.guard == guard && !v.pass))
            .map(|(e, _)| e.node.as_str())
            .collect();
        match scenario {
            // Only the node holding the volume's last healthy replica is refused.
            "last-replica" => assert_eq!(refused.len(), 1, "{scenario}: {verdicts:#?}"),
            _ => assert_eq!(refused.len(), 4, "{scenario}: {verdicts:#?}"),
        }
        let v = verdicts
            .iter()
            .flat_map(|(_, v)| v)
            .find(|v| v.guard == guard && !v.pass)
            .unwrap();
        assert!(!v.subject.is_empty() && v.fix.is_some(), "{v:?}");
        assert_eq!(
            w.read.cluster.get_lease().await.unwrap(),
            None,
            "a dry run takes no lock"
        );
        s.h.shutdown().await;
    }
}
