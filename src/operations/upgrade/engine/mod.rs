//! The runner: one task per run, driving each node through its steps, emitting events,
//! obeying controls, journaling, holding the lock.
//!
//! Here: starting a run, its handle, the runner's loop over the nodes and the lock renewal.
//! `preflight` (dry run, refusals, abandon), `controls` (pause, abort, skip, questions),
//! `node` (one node's step machine) and `steps` (one file per step) hold the rest.

mod controls;
mod keeper;
mod node;
mod preflight;
mod silences;
mod steps;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::keeper::LockKeeper;
pub use self::preflight::{abandon, dry_run, preflight, unfinished_run};
use self::silences::SilenceKeeper;
use super::guards::GuardVerdict;
use super::journal::{self, Journal, Record};
use super::lock::{self, Acquire};
use super::world::World;
use super::{
    BootOnceRecord, Control, NodeOutcome, Plan, RebootRecord, RevertRecord, RunOutcome, Settings,
    Step, UpgradeEvent,
};
use crate::inventory::Inventory;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `user@machine pid run-id` (see [`lock::holder_identity`]).
    pub holder: String,
    /// Take over a stale lock.
    pub force_unlock: bool,
    /// Where the journal goes; `None`: no journal (tests only).
    pub journal_dir: Option<PathBuf>,
    /// On a refusal, a failed step or a reboot question, wait for the operator (Retry, Skip,
    /// Abort, Approve) instead of stopping. The TUI sets this; the headless command does not.
    pub interactive: bool,
    /// Go on from this plan index and step (from [`RunSummary::resume_at`](super::journal::RunSummary::resume_at)).
    pub resume: Option<(usize, Step)>,
    /// The sequence number of the run's first event (0 or 1: the first). A resumed run goes on
    /// after the highest number in its journal whatever this says.
    pub first_seq: u64,
}

/// A running upgrade: send controls, wait for the outcome.
pub struct UpgradeHandle {
    run_id: String,
    control: mpsc::Sender<Control>,
    task: JoinHandle<RunOutcome>,
}

impl UpgradeHandle {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Send a control (already confirmed by the operator). False when the run has ended.
    pub async fn send(&self, c: Control) -> bool {
        self.control.send(c).await.is_ok()
    }

    /// Send without waiting (from a UI event loop). False when the run ended or is flooded.
    pub fn try_send(&self, c: Control) -> bool {
        self.control.try_send(c).is_ok()
    }

    /// A sender of controls that outlives the handle.
    pub fn controls(&self) -> mpsc::Sender<Control> {
        self.control.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for the run to end.
    pub async fn wait(self) -> RunOutcome {
        match self.task.await {
            Ok(o) => o,
            Err(e) => RunOutcome::Aborted {
                reason: format!("the upgrade task ended abnormally: {e}"),
            },
        }
    }

    /// Stop the task at once, like `kill -9` (tests of resume; never for operators: use Abort).
    pub fn kill(&self) {
        self.task.abort();
    }
}

/// Spawn a run of `plan`. Events arrive on the receiver in order; the last is `RunFinished`.
pub fn start(
    world: World,
    inventory: Inventory,
    plan: Plan,
    settings: Settings,
    opts: StartOptions,
) -> (UpgradeHandle, mpsc::Receiver<UpgradeEvent>) {
    let (handle, mut records) = start_sequenced(world, inventory, plan, settings, opts);
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        while let Some(r) = records.recv().await {
            if tx.send(r.event).await.is_err() {
                return;
            }
        }
    });
    (handle, rx)
}

/// [`start`], with each event as the journal records it: its time and its sequence number
/// (every event has one, command output too). The engine process serves these on its control
/// socket.
pub fn start_sequenced(
    world: World,
    inventory: Inventory,
    plan: Plan,
    settings: Settings,
    opts: StartOptions,
) -> (UpgradeHandle, mpsc::Receiver<Record>) {
    let (etx, erx) = mpsc::channel(4096);
    let (ctx, crx) = mpsc::channel(64);
    let run_id = plan.run_id.clone();
    let silences = Arc::new(SilenceKeeper::new(world.write.silences.clone()));
    let runner = Runner {
        w: world,
        inv: inventory,
        plan,
        s: settings,
        seq: opts.first_seq.max(1),
        opts,
        tx: etx,
        ctl: crx,
        journal: None,
        pause: false,
        abort: None,
        skip: HashSet::new(),
        keeper: None,
        reboots: HashMap::new(),
        reverts: HashMap::new(),
        boot_once: HashMap::new(),
        switch_failed: None,
        interrupted: None,
        hold: None,
        snapshot: None,
        silences,
    };
    let task = tokio::spawn(runner.run());
    (
        UpgradeHandle {
            run_id,
            control: ctx,
            task,
        },
        erx,
    )
}

/// How one node ended: done (upgraded or skipped), or the whole run stops.
enum NodeResult {
    Done(NodeOutcome),
    Stop(RunOutcome),
}

/// Why a failed step stops the node as it is, without the usual follow-up (no rollback).
#[derive(Debug, Clone)]
enum Hold {
    /// A guard refused (or could not verify) on the fresh re-check right before the step.
    Refused(GuardVerdict),
    /// The run could not show that it still holds the lock.
    Lock,
    /// The host did not come back within the reboot timeout: still rebooting, not failed.
    HostDown,
    /// The new system was not confirmed: the host's own revert timer took it back (or was
    /// awaited in vain). The node stops cordoned; no retry, no rollback over SSH.
    Reverted,
}

/// The state of one run, owned by its task.
struct Runner {
    w: World,
    inv: Inventory,
    plan: Plan,
    s: Settings,
    opts: StartOptions,
    tx: mpsc::Sender<Record>,
    /// The next event's sequence number.
    seq: u64,
    ctl: mpsc::Receiver<Control>,
    journal: Option<Journal>,
    pause: bool,
    abort: Option<String>,
    skip: HashSet<String>,
    /// The lock, renewed in the background and confirmed before every destructive step.
    keeper: Option<Arc<LockKeeper>>,
    /// Per node, the reboot asked for (from this run or its journal, when resuming).
    reboots: HashMap<String, RebootRecord>,
    /// Per node, the revert timer armed and not yet confirmed (from this run or its journal).
    reverts: HashMap<String, RevertRecord>,
    /// Per node, a boot-once reboot whose new generation is not the default yet.
    boot_once: HashMap<String, BootOnceRecord>,
    /// The switch failed with a revert timer armed: the confirm step awaits the host's revert.
    switch_failed: Option<String>,
    /// Resuming: the step the journal shows started and not finished.
    interrupted: Option<(String, Step)>,
    /// Set by a step whose failure must not be followed by a rollback.
    hold: Option<Hold>,
    /// The etcd snapshot this run took (from this process or its journal, when resuming).
    snapshot: Option<journal::SnapshotRecord>,
    /// The Alertmanager silences of the nodes in progress, kept alive while the run lives.
    silences: Arc<SilenceKeeper>,
}

/// Whole seconds, for messages.
fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// The time from `from` to `to` (zero when the clock went back).
fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let d = to.duration_since(from);
    Duration::try_from(d).unwrap_or_default()
}

impl Runner {
    async fn run(mut self) -> RunOutcome {
        let outcome = self.run_inner().await;
        if self.keeper.is_some()
            && let Err(e) = lock::release(
                self.w.read.cluster.as_ref(),
                self.w.write.cluster.as_ref(),
                &self.plan.run_id,
            )
            .await
        {
            self.notice(None, format!("could not release the upgrade lock: {e:#}"))
                .await;
        }
        if let Some(s) = self.snapshot.clone() {
            self.notice(
                None,
                format!(
                    "etcd snapshot of this run: {} (taken before its first control plane)",
                    s.describe()
                ),
            )
            .await;
        }
        self.emit(UpgradeEvent::RunFinished {
            outcome: outcome.clone(),
        })
        .await;
        outcome
    }

    async fn run_inner(&mut self) -> RunOutcome {
        let run_id = self.plan.run_id.clone();
        // Another live run holds the lock, or an unfinished run must be resumed or abandoned.
        if self.opts.resume.is_none()
            && let Some(dir) = self.opts.journal_dir.clone()
            && let Some(refusal) = preflight(&self.w.read, &dir, &run_id).await
        {
            return refusal;
        }
        if let Err(e) = journal::valid_run_id(&run_id) {
            return refused(None, "journal", format!("{e:#}"));
        }
        // Resuming: what the journal knows of reboots under way.
        if self.opts.resume.is_some()
            && let Some(dir) = &self.opts.journal_dir
            && let Ok(sum) = journal::summarize(&journal::path_of(dir, &run_id))
        {
            self.reboots = sum.reboots;
            self.snapshot = sum.snapshot;
            self.reverts = sum.reverts;
            self.boot_once = sum.boot_once;
            self.interrupted = sum.interrupted;
        }
        // The lock.
        let held = match lock::acquire(
            self.w.read.cluster.as_ref(),
            self.w.write.cluster.as_ref(),
            &self.opts.holder,
            &run_id,
            self.s.lock_duration,
            self.w.read.clock.now(),
            self.opts.force_unlock,
        )
        .await
        {
            Ok(Acquire::Acquired(rec)) => rec,
            Ok(Acquire::Held(h)) => return refused(None, "lock", h.to_string()),
            Err(e) => return refused(None, "lock", format!("{e:#}")),
        };
        let keeper = Arc::new(LockKeeper::new(&self.w, held, self.s.lock_duration));
        self.keeper = Some(keeper.clone());
        // The journal.
        if let Some(dir) = self.opts.journal_dir.clone() {
            match Journal::open(self.w.write.writes(), &dir, &run_id) {
                Ok(j) => {
                    // A resumed run goes on counting after its journal.
                    self.seq = self.seq.max(journal::next_seq(j.path()));
                    self.journal = Some(j);
                }
                Err(e) => return refused(None, "journal", format!("{e:#}")),
            }
        }
        let resumed_at = self
            .opts
            .resume
            .and_then(|(i, s)| self.plan.entries.get(i).map(|e| (e.node.clone(), s)));
        self.emit(UpgradeEvent::RunStarted {
            run_id: run_id.clone(),
            plan: self.plan.clone(),
            resumed_at,
        })
        .await;
        // Renew the lock while the nodes run; a lost lock aborts at the next safe point, and
        // no destructive step starts unless a renewal right before it succeeds.
        let silences = self.silences.clone();
        tokio::select! {
            o = self.run_nodes() => o,
            _ = keeper.renew_loop() => RunOutcome::Aborted { reason: "the lock renewal ended".into() },
            _ = silences.keep_loop() => RunOutcome::Aborted { reason: "the silence keeper ended".into() },
        }
    }

    async fn run_nodes(&mut self) -> RunOutcome {
        let (first, first_step) = self.opts.resume.unwrap_or((0, Step::Guards));
        // A drain changes no system: no etcd snapshot before it.
        if self.plan.kind == super::RunKind::Upgrade
            && let Some(stop) = self.pre_snapshot(first).await
        {
            return stop;
        }
        for idx in first..self.plan.entries.len() {
            let from = if idx == first {
                first_step
            } else {
                Step::Guards
            };
            match self
                .run_node(idx, from, idx == first && self.opts.resume.is_some())
                .await
            {
                NodeResult::Stop(o) => return o,
                NodeResult::Done(outcome) => {
                    let node = self.plan.entries[idx].node.clone();
                    self.emit(UpgradeEvent::NodeDone { node, outcome }).await;
                }
            }
            self.poll_controls().await;
            if let Some(r) = self.abort.clone() {
                return RunOutcome::Aborted { reason: r };
            }
            if self.pause && idx + 1 < self.plan.entries.len() {
                let node = self.plan.entries[idx].node.clone();
                if let Some(o) = self.paused(&node).await {
                    return o;
                }
            }
        }
        RunOutcome::Completed
    }
}

/// A refusal by `guard`.
fn refused(node: Option<String>, guard: &str, message: String) -> RunOutcome {
    RunOutcome::Refused {
        node,
        guard: guard.to_string(),
        message,
    }
}
