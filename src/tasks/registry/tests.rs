use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::config::Config;
use crate::inventory::Role;
use crate::operations::upgrade::{Plan, PlanEntry, UpgradeEvent};
use crate::tasks::Planned;
use crate::tasks::upgrade::RunLink;

#[derive(Debug)]
enum TestMsg {
    Task(TaskMsg),
    Update,
}

impl From<TaskMsg> for TestMsg {
    fn from(m: TaskMsg) -> Self {
        TestMsg::Task(m)
    }
}

impl From<Update> for TestMsg {
    fn from(_: Update) -> Self {
        TestMsg::Update
    }
}

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

/// Plans and starts wait for their gate to open; the test holds the run's other ends.
struct Fake {
    plan_gate: watch::Receiver<bool>,
    start_gate: watch::Receiver<bool>,
    plans: AtomicUsize,
    runs: Mutex<Vec<(mpsc::Sender<UpgradeEvent>, mpsc::Receiver<Control>)>>,
}

async fn opened(mut gate: watch::Receiver<bool>) {
    let _ = gate.wait_for(|open| *open).await;
}

impl UpgradeBackend for Arc<Fake> {
    fn plan(&self, only: Vec<String>) -> BoxFuture<'static, Result<Planned, String>> {
        self.plans.fetch_add(1, Ordering::SeqCst);
        let gate = self.plan_gate.clone();
        Box::pin(async move {
            opened(gate).await;
            Ok(Planned {
                plan: plan(&only.join(",")),
                verdicts: vec![],
                lock: None,
                forecast: None,
                notes: Vec::new(),
            })
        })
    }

    fn start(&self, p: Plan) -> BoxFuture<'static, Result<RunLink, String>> {
        let gate = self.start_gate.clone();
        let me = self.clone();
        Box::pin(async move {
            opened(gate).await;
            let (etx, erx) = mpsc::channel(16);
            let (ctx, crx) = mpsc::channel(16);
            if let Ok(mut runs) = me.runs.lock() {
                runs.push((etx, crx));
            }
            Ok(RunLink {
                run_id: p.run_id,
                pid: Some(4242),
                events: erx,
                controls: ctx,
            })
        })
    }
}

struct Rig {
    registry: Registry,
    rx: mpsc::Receiver<TestMsg>,
    fake: Arc<Fake>,
    open_plans: watch::Sender<bool>,
    open_starts: watch::Sender<bool>,
}

fn rig(read_only: bool, flake: Option<String>) -> Rig {
    let text = include_str!("../../../hosts.json");
    let inv = crate::inventory::parse(Path::new("hosts.json"), text).unwrap();
    let mut config = Config::default();
    config.nix.flake = flake;
    let mut env = Env::new(config, inv);
    env.offline = true;
    let (open_plans, plan_gate) = watch::channel(false);
    let (open_starts, start_gate) = watch::channel(false);
    let fake = Arc::new(Fake {
        plan_gate,
        start_gate,
        plans: AtomicUsize::new(0),
        runs: Mutex::new(Vec::new()),
    });
    let (tx, rx) = mpsc::channel(64);
    let registry = Registry::spawn(
        Setup {
            env,
            writes: (!read_only).then(crate::testing::writes),
            upgrades: Arc::new(fake.clone()),
            sources: false,
        },
        tx,
    );
    Rig {
        registry,
        rx,
        fake,
        open_plans,
        open_starts,
    }
}

impl Rig {
    /// The next task message (a generous bound turns a hang into a failure; no speed is
    /// measured).
    async fn next(&mut self) -> TaskMsg {
        match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await {
            Ok(Some(TestMsg::Task(m))) => m,
            other => panic!("expected a task message, got {other:?}"),
        }
    }

    fn start(&self, id: u64, job: Job) {
        self.registry.start(Task {
            id: TaskId(id),
            job,
        });
    }
}

fn msg(id: u64, event: TaskEvent) -> TaskMsg {
    TaskMsg {
        id: TaskId(id),
        event,
    }
}

#[tokio::test]
async fn a_result_arrives_as_a_message_under_its_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flake.lock"), "{\"nodes\":{}}").unwrap();
    let flake = dir.path().display().to_string();
    let mut r = rig(false, Some(flake.clone()));
    r.start(
        7,
        Job::LockFingerprint {
            host: "instance_1".into(),
        },
    );
    let want = diff::lock_fingerprint(&crate::config::NixConfig {
        flake: Some(flake),
        ..Default::default()
    });
    assert!(want.is_some());
    assert_eq!(r.next().await, msg(7, TaskEvent::Lock(want)));
    // a diff that cannot run says why, as its result
    r.start(
        8,
        Job::Diff {
            host: "instance_1".into(),
            deployed: None,
        },
    );
    let m = r.next().await;
    assert_eq!(m.id, TaskId(8));
    match m.event {
        TaskEvent::Diff(Err(e)) => assert!(e.contains("not known yet"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancel_stops_the_running_task_and_drops_the_waiting_one() {
    let mut r = rig(false, None);
    r.start(1, Job::PlanUpgrade { only: vec![] });
    r.start(2, Job::PlanUpgrade { only: vec![] });
    r.registry.cancel(TaskKey::Plan);
    let mut got = vec![r.next().await, r.next().await];
    got.sort_by_key(|m| m.id);
    assert_eq!(
        got,
        vec![msg(1, TaskEvent::Cancelled), msg(2, TaskEvent::Cancelled)]
    );
    assert_eq!(
        r.fake.plans.load(Ordering::SeqCst),
        1,
        "the waiting one never ran"
    );
}

#[tokio::test]
async fn one_runs_one_waits_the_newest_request_wins() {
    let mut r = rig(false, None);
    r.start(
        1,
        Job::PlanUpgrade {
            only: vec!["a".into()],
        },
    );
    r.start(
        2,
        Job::PlanUpgrade {
            only: vec!["b".into()],
        },
    );
    r.start(
        3,
        Job::PlanUpgrade {
            only: vec!["c".into()],
        },
    );
    assert_eq!(r.next().await, msg(2, TaskEvent::Superseded));
    r.open_plans.send(true).unwrap();
    let planned = |id: u64, who: &str| {
        msg(
            id,
            TaskEvent::Planned(Ok(Box::new(Planned {
                plan: plan(who),
                verdicts: vec![],
                lock: None,
                forecast: None,
                notes: Vec::new(),
            }))),
        )
    };
    assert_eq!(r.next().await, planned(1, "a"));
    assert_eq!(r.next().await, planned(3, "c"));
    assert_eq!(r.fake.plans.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn read_only_refuses_every_write() {
    let mut r = rig(true, None);
    r.start(
        1,
        Job::Cordon {
            node: "node1".into(),
        },
    );
    r.start(
        2,
        Job::StartUpgrade {
            plan: plan("run-1"),
        },
    );
    assert_eq!(
        r.next().await,
        msg(
            1,
            TaskEvent::Refused("read-only mode: cordon node1 is disabled".into())
        )
    );
    assert_eq!(
        r.next().await,
        msg(
            2,
            TaskEvent::Refused("read-only mode: rolling upgrade run-1 is disabled".into())
        )
    );
}

#[tokio::test]
async fn a_slow_start_holds_nothing_else_and_the_run_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig(false, Some(dir.path().display().to_string()));
    r.start(
        1,
        Job::StartUpgrade {
            plan: plan("run-1"),
        },
    );
    // while the run is being started (kube and SSH clients in a real one), other work goes on
    r.start(
        2,
        Job::LockFingerprint {
            host: "instance_1".into(),
        },
    );
    assert_eq!(r.next().await, msg(2, TaskEvent::Lock(None)));
    r.registry.control(TaskId(1), Control::Pause);
    assert_eq!(
        r.next().await,
        msg(
            1,
            TaskEvent::ControlRefused {
                control: Control::Pause,
                reason: "the upgrade has not started yet".into()
            }
        )
    );
    // one run at a time
    r.start(
        3,
        Job::StartUpgrade {
            plan: plan("run-2"),
        },
    );
    assert_eq!(
        r.next().await,
        msg(
            3,
            TaskEvent::Refused("a rolling upgrade is already under way".into())
        )
    );
    r.open_starts.send(true).unwrap();
    assert_eq!(
        r.next().await,
        msg(
            1,
            TaskEvent::UpgradeStarted(Ok(crate::tasks::Following {
                run_id: "run-1".into(),
                pid: Some(4242)
            }))
        )
    );
    r.registry.control(TaskId(1), Control::Pause);
    assert_eq!(
        r.next().await,
        msg(1, TaskEvent::ControlSent(Control::Pause))
    );
    let (events, mut controls) = r.fake.runs.lock().unwrap().pop().unwrap();
    assert_eq!(controls.recv().await, Some(Control::Pause));
    let ev = UpgradeEvent::Notice {
        node: None,
        message: "paused".into(),
    };
    events.send(ev.clone()).await.unwrap();
    assert_eq!(r.next().await, msg(1, TaskEvent::Upgrade(Box::new(ev))));
    drop(events);
    assert_eq!(r.next().await, msg(1, TaskEvent::UpgradeEnded));
    drop(controls);
    // the run's task is over: a control now is refused, and a new run may start
    r.registry.control(TaskId(1), Control::Resume);
    assert_eq!(
        r.next().await,
        msg(
            1,
            TaskEvent::ControlRefused {
                control: Control::Resume,
                reason: "the upgrade is not running".into()
            }
        )
    );
}
