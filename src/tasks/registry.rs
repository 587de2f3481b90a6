//! The registry itself: one tokio task (an actor) that owns every task's handles — cancel
//! tokens, the upgrade run's control sender, the waiting request per key — and the sources.
//! The handle's methods never block: the event loop hands an order over and goes on drawing.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::upgrade::UpgradeBackend;
use super::{
    Job, Policy, Task, TaskEvent, TaskId, TaskKey, TaskKind, TaskMsg, change, diff, export,
};
use crate::base::Env;
use crate::operations::upgrade::Control;
use crate::sources::{self, Update};

/// What the registry needs to run jobs.
pub struct Setup {
    pub env: Env,
    /// The write capability (`None`: read-only mode — every job that writes is refused, a
    /// second lock behind the app's own refusal, and nothing that writes can be built).
    pub writes: Option<crate::base::Writes>,
    /// Where upgrade plans and runs come from.
    pub upgrades: Arc<dyn UpgradeBackend>,
    /// Start the sources (Kubernetes, etcd, SSH, Mimir, Loki) and forward their updates.
    pub sources: bool,
}

/// The handle the event loop holds. Dropping it stops the registry: running tasks are
/// cancelled (a diff kills nix; following an upgrade run stops, the run itself does not).
pub struct Registry {
    orders: mpsc::UnboundedSender<Order>,
    stop: CancellationToken,
}

enum Order {
    Start(Task),
    Cancel(TaskKey),
    Control(TaskId, Control),
    Refresh,
    /// From a task: the run it started takes controls here.
    Controls(TaskId, mpsc::Sender<Control>),
    /// From a task: it has sent its last message.
    Finished(TaskId),
}

impl Registry {
    /// Start the registry; every message goes to `inbox` (task messages and, with
    /// `setup.sources`, the sources' updates).
    pub fn spawn<M>(setup: Setup, inbox: mpsc::Sender<M>) -> Registry
    where
        M: From<TaskMsg> + From<Update> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let actor = Actor {
            sources: setup
                .sources
                .then(|| spawn_sources(&setup.env, inbox.clone())),
            setup: Arc::new(setup),
            inbox,
            orders: tx.clone(),
            slots: HashMap::new(),
            keys: HashMap::new(),
        };
        tokio::spawn(actor.run(rx, stop.clone()));
        Registry { orders: tx, stop }
    }

    /// Run a job (or queue it behind the running one of its key).
    pub fn start(&self, task: Task) {
        let _ = self.orders.send(Order::Start(task));
    }

    /// Cancel the running task of a key and drop the waiting one.
    pub fn cancel(&self, key: TaskKey) {
        let _ = self.orders.send(Order::Cancel(key));
    }

    /// Send a control to the upgrade run that task `id` follows.
    pub fn control(&self, id: TaskId, control: Control) {
        let _ = self.orders.send(Order::Control(id, control));
    }

    /// Ask every polling source for fresh data now.
    pub fn refresh_sources(&self) {
        let _ = self.orders.send(Order::Refresh);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The sources send `Update`s on their own channel type; one forwarder puts them in the inbox.
fn spawn_sources<M>(env: &Env, inbox: mpsc::Sender<M>) -> sources::Sources
where
    M: From<Update> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let handle = sources::spawn_all(env, tx);
    tokio::spawn(async move {
        while let Some(u) = rx.recv().await {
            if inbox.send(M::from(u)).await.is_err() {
                return;
            }
        }
    });
    handle
}

/// The record of a running task: what it is, how to stop it, where its run's controls go.
struct Running {
    id: TaskId,
    kind: TaskKind,
    title: String,
    cancel: CancellationToken,
    controls: Option<mpsc::Sender<Control>>,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    waiting: Option<Task>,
}

struct Actor<M> {
    setup: Arc<Setup>,
    inbox: mpsc::Sender<M>,
    orders: mpsc::UnboundedSender<Order>,
    slots: HashMap<TaskKey, Slot>,
    /// The key of every running task.
    keys: HashMap<TaskId, TaskKey>,
    sources: Option<sources::Sources>,
}

impl<M> Actor<M>
where
    M: From<TaskMsg> + From<Update> + Send + 'static,
{
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Order>, stop: CancellationToken) {
        loop {
            let order = tokio::select! {
                o = rx.recv() => match o { Some(o) => o, None => break },
                () = stop.cancelled() => break,
            };
            self.handle(order).await;
        }
        for slot in self.slots.values() {
            if let Some(r) = &slot.running {
                r.cancel.cancel();
            }
        }
    }

    async fn post(&self, id: TaskId, event: TaskEvent) {
        let _ = self.inbox.send(M::from(TaskMsg { id, event })).await;
    }

    async fn handle(&mut self, order: Order) {
        match order {
            Order::Start(task) => self.start(task).await,
            Order::Cancel(key) => {
                let waiting = self.slots.get_mut(&key).and_then(|slot| {
                    if let Some(r) = &slot.running {
                        r.cancel.cancel();
                    }
                    slot.waiting.take()
                });
                if let Some(w) = waiting {
                    self.post(w.id, TaskEvent::Cancelled).await;
                }
            }
            Order::Control(id, control) => {
                let running = self
                    .keys
                    .get(&id)
                    .and_then(|k| self.slots.get(k))
                    .and_then(|s| s.running.as_ref())
                    .filter(|r| r.id == id);
                let event = match running.map(|r| r.controls.as_ref()) {
                    Some(Some(tx)) => match tx.try_send(control.clone()) {
                        Ok(()) => TaskEvent::ControlSent(control),
                        Err(mpsc::error::TrySendError::Full(_)) => TaskEvent::ControlRefused {
                            control,
                            reason: "the run is busy: try again".into(),
                        },
                        Err(mpsc::error::TrySendError::Closed(_)) => TaskEvent::ControlRefused {
                            control,
                            reason: "the upgrade is not running".into(),
                        },
                    },
                    Some(None) => TaskEvent::ControlRefused {
                        control,
                        reason: "the upgrade has not started yet".into(),
                    },
                    None => TaskEvent::ControlRefused {
                        control,
                        reason: "the upgrade is not running".into(),
                    },
                };
                self.post(id, event).await;
            }
            Order::Refresh => {
                if let Some(s) = &self.sources {
                    s.refresh();
                }
            }
            Order::Controls(id, tx) => {
                if let Some(r) = self
                    .keys
                    .get(&id)
                    .and_then(|k| self.slots.get_mut(k))
                    .and_then(|s| s.running.as_mut())
                    .filter(|r| r.id == id)
                {
                    r.controls = Some(tx);
                }
            }
            Order::Finished(id) => {
                let Some(key) = self.keys.remove(&id) else {
                    return;
                };
                let next = self.slots.get_mut(&key).and_then(|slot| {
                    if let Some(r) = slot.running.take_if(|r| r.id == id) {
                        tracing::debug!(task = %r.id, kind = ?r.kind, title = %r.title, "task ended");
                    }
                    slot.waiting.take()
                });
                match next {
                    Some(task) => self.launch(key, task),
                    None => {
                        self.slots.remove(&key);
                    }
                }
            }
        }
    }

    async fn start(&mut self, task: Task) {
        if self.setup.writes.is_none() && task.job.writes() {
            let why = format!("read-only mode: {} is disabled", task.job.title());
            self.post(task.id, TaskEvent::Refused(why)).await;
            return;
        }
        let key = task.job.key();
        let slot = self.slots.entry(key.clone()).or_default();
        let Some(running) = &slot.running else {
            self.launch(key, task);
            return;
        };
        let replaced = match key.policy() {
            Policy::Single => {
                let why = "a rolling upgrade is already under way".to_string();
                self.post(task.id, TaskEvent::Refused(why)).await;
                return;
            }
            Policy::Restart => {
                running.cancel.cancel();
                slot.waiting.replace(task)
            }
            Policy::Coalesce => slot.waiting.replace(task),
        };
        if let Some(old) = replaced {
            self.post(old.id, TaskEvent::Superseded).await;
        }
    }

    fn launch(&mut self, key: TaskKey, task: Task) {
        let cancel = CancellationToken::new();
        let ctx = Ctx {
            id: task.id,
            inbox: self.inbox.clone(),
            orders: self.orders.clone(),
            setup: self.setup.clone(),
            cancel: cancel.clone(),
        };
        let (kind, title) = (task.job.kind(), task.job.title());
        tracing::debug!(task = %task.id, ?kind, %title, "task started");
        self.keys.insert(task.id, key.clone());
        self.slots.entry(key).or_default().running = Some(Running {
            id: task.id,
            kind,
            title,
            cancel,
            controls: None,
        });
        tokio::spawn(async move {
            let event = ctx.run(task.job).await;
            let event = if ctx.cancel.is_cancelled() {
                TaskEvent::Cancelled
            } else {
                event
            };
            ctx.post(event).await;
            let _ = ctx.orders.send(Order::Finished(ctx.id));
        });
    }
}

/// What one running task holds.
struct Ctx<M> {
    id: TaskId,
    inbox: mpsc::Sender<M>,
    orders: mpsc::UnboundedSender<Order>,
    setup: Arc<Setup>,
    cancel: CancellationToken,
}

impl<M> Ctx<M>
where
    M: From<TaskMsg> + Send + 'static,
{
    async fn post(&self, event: TaskEvent) {
        let _ = self
            .inbox
            .send(M::from(TaskMsg { id: self.id, event }))
            .await;
    }

    /// Run a job to its last event (which the caller posts).
    async fn run(&self, job: Job) -> TaskEvent {
        let env = &self.setup.env;
        match job {
            Job::LockFingerprint { .. } => {
                // The source knows its lock: a local flake's `flake.lock`, the simulator's
                // flake revision.
                match crate::operations::closure_diff::source_for(
                    &env.config.nix,
                    &env.config.ssh,
                    env.offline,
                ) {
                    Ok(source) => TaskEvent::Lock(source.lock_fingerprint().await),
                    Err(_) => TaskEvent::Lock(None),
                }
            }
            Job::Diff { host, deployed } => {
                let Some(h) = env.inventory.host(&host).cloned() else {
                    return TaskEvent::Diff(Err(format!("{host} is not in the inventory")));
                };
                let req = diff::DiffRequest {
                    host: h,
                    deployed,
                    nix: env.config.nix.clone(),
                    ssh: env.config.ssh.clone(),
                };
                let r = diff::run(&req, &self.cancel, |l| self.post(TaskEvent::Progress(l))).await;
                TaskEvent::Diff(r.map(Box::new))
            }
            Job::PlanUpgrade { only } => {
                // Each node's diff reports as it finishes.
                let (tx, mut rx) = mpsc::unbounded_channel();
                let plan = self.setup.upgrades.plan_with_progress(only, tx);
                let forward = async {
                    while let Some(line) = rx.recv().await {
                        self.post(TaskEvent::Progress(line)).await;
                    }
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    r = plan => TaskEvent::Planned(r.map(Box::new)),
                    () = forward => TaskEvent::Cancelled,
                    () = self.cancel.cancelled() => TaskEvent::Cancelled,
                }
            }
            Job::PlanDrain { node } => {
                let plan = self.setup.upgrades.plan_drain(node);
                tokio::select! {
                    r = plan => TaskEvent::Planned(r.map(Box::new)),
                    () = self.cancel.cancelled() => TaskEvent::Cancelled,
                }
            }
            Job::StartUpgrade { plan } => {
                let start = self.setup.upgrades.start(plan);
                self.start_run(start).await
            }
            Job::AttachUpgrade { run_id } => {
                let attach = self.setup.upgrades.attach(run_id);
                self.start_run(attach).await
            }
            Job::ResumeUpgrade { run_id } => {
                let resume = self.setup.upgrades.resume(run_id);
                self.start_run(resume).await
            }
            Job::AbandonUpgrade { run_id } => {
                let abandon = self.setup.upgrades.abandon(run_id);
                tokio::select! {
                    r = abandon => TaskEvent::Abandoned(r),
                    () = self.cancel.cancelled() => TaskEvent::Cancelled,
                }
            }
            Job::FindRuns => {
                let find = self.setup.upgrades.find();
                tokio::select! {
                    r = find => TaskEvent::RunsFound(r),
                    () = self.cancel.cancelled() => TaskEvent::Cancelled,
                }
            }
            Job::Cordon { node } => self.change(change::Change::Cordon, &node).await,
            Job::Uncordon { node } => self.change(change::Change::Uncordon, &node).await,
            Job::Drift { known } => self.drift(known).await,
            Job::ExportDiff { host, diff, stamp } => {
                let write = tokio::task::spawn_blocking(move || {
                    let dir = crate::paths::app_state_dir();
                    export::write(dir.as_deref(), &host, &diff, &stamp)
                });
                let r = write
                    .await
                    .unwrap_or_else(|e| Err(format!("cannot export: {e}")));
                TaskEvent::Exported(r)
            }
        }
    }

    /// Every host's system from the flake (no build), unless the lock is still `known`.
    async fn drift(&self, known: Option<String>) -> TaskEvent {
        use crate::operations::closure_diff::{Progress, Reporter, fleet, source_for};
        let env = &self.setup.env;
        let source = match source_for(&env.config.nix, &env.config.ssh, env.offline) {
            Ok(s) => s,
            Err(e) => return TaskEvent::Drift(Err(crate::base::error_chain(&e))),
        };
        let fingerprint = source.lock_fingerprint().await;
        if fingerprint.is_some() && fingerprint == known {
            return TaskEvent::Drift(Ok(None));
        }
        let (tx, mut rx) = mpsc::channel::<Progress>(64);
        let reporter = Reporter::new(tx);
        let hosts = env.inventory.hosts.clone();
        let concurrency = env.config.nix.concurrency;
        let work = async {
            let t = fleet::eval_targets(source, &hosts, concurrency, &reporter, &self.cancel).await;
            drop(reporter);
            t
        };
        let forward = async {
            while let Some(p) = rx.recv().await {
                self.post(TaskEvent::Progress(p.to_string())).await;
            }
        };
        let (targets, ()) = tokio::join!(work, forward);
        TaskEvent::Drift(Ok(Some(Box::new(targets))))
    }

    async fn change(&self, change: change::Change, node: &str) -> TaskEvent {
        let cfg = &self.setup.env.config.kubernetes;
        let Some(writes) = &self.setup.writes else {
            return TaskEvent::Refused("read-only mode: cordon and uncordon are disabled".into());
        };
        tokio::select! {
            r = change::run(writes, cfg, change, node) => TaskEvent::Changed(r),
            () = self.cancel.cancelled() => TaskEvent::Cancelled,
        }
    }

    /// Start (or attach to, or resume) a run, then follow it.
    async fn start_run(
        &self,
        link: futures::future::BoxFuture<'static, Result<super::upgrade::RunLink, String>>,
    ) -> TaskEvent {
        let started = tokio::select! {
            r = link => r,
            () = self.cancel.cancelled() => return TaskEvent::Cancelled,
        };
        match started {
            Ok(link) => self.follow(link).await,
            Err(e) => TaskEvent::UpgradeStarted(Err(e)),
        }
    }

    /// Pass a run's events on until they end (or the task is cancelled: then the dashboard
    /// stops following; the run goes on). Any backend's link, started or attached to.
    async fn follow(&self, mut link: super::upgrade::RunLink) -> TaskEvent {
        // Controls first: the app may send one as soon as it hears the run started.
        let _ = self
            .orders
            .send(Order::Controls(self.id, link.controls.clone()));
        self.post(TaskEvent::UpgradeStarted(Ok(super::Following {
            run_id: link.run_id.clone(),
            pid: link.pid,
        })))
        .await;
        loop {
            tokio::select! {
                e = link.events.recv() => match e {
                    Some(e) => self.post(TaskEvent::Upgrade(Box::new(e))).await,
                    None => return TaskEvent::UpgradeEnded,
                },
                () = self.cancel.cancelled() => return TaskEvent::Cancelled,
            }
        }
    }
}

#[cfg(test)]
mod tests;
