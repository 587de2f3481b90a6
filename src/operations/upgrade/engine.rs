//! The runner: one task per run, driving each node through its steps, emitting events,
//! obeying controls, journaling, holding the lock.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::guards::{self, GuardInputs, GuardVerdict};
use super::journal::{self, Journal};
use super::lock::{self, Acquire};
use super::world::{CommandSpec, Eviction, HealthInputs, World};
use super::{
    Control, NodeOutcome, Plan, PlanEntry, RunOutcome, Settings, Step, StepOutcome, UpgradeEvent,
};
use crate::config::{RebootPolicy, SwitchMode};
use crate::inventory::{Host, Inventory};
use crate::probes::rebuild::{CommandVars, default_user};

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
    /// Go on from this plan index and step (from [`journal::RunSummary::resume_at`]).
    pub resume: Option<(usize, Step)>,
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
    let (etx, erx) = mpsc::channel(4096);
    let (ctx, crx) = mpsc::channel(64);
    let run_id = plan.run_id.clone();
    let runner = Runner {
        w: world,
        inv: inventory,
        plan,
        s: settings,
        opts,
        tx: etx,
        ctl: crx,
        journal: None,
        pause: false,
        abort: None,
        skip: HashSet::new(),
        lock_lost: Arc::new(Mutex::new(None)),
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

/// The dry run: every guard's verdict for every planned node, against the state right now.
pub async fn dry_run(
    world: &World,
    inv: &Inventory,
    plan: &Plan,
    s: &Settings,
) -> Vec<(PlanEntry, Vec<GuardVerdict>)> {
    let health = world.health.gather(&s.gates).await;
    let now = world.clock.now();
    let mut out = Vec::new();
    for e in &plan.entries {
        let verdicts = match inv.host(&e.host) {
            Some(h) => {
                let au = world
                    .hosts
                    .auto_upgrade(h)
                    .await
                    .map_err(|e| format!("{e:#}"));
                guards::evaluate(&GuardInputs {
                    entry: e,
                    host: h,
                    run_id: &plan.run_id,
                    health: &health,
                    auto_upgrade: &au,
                    settings: s,
                    now,
                })
            }
            None => vec![unknown_host(e)],
        };
        out.push((e.clone(), verdicts));
    }
    out
}

fn unknown_host(e: &PlanEntry) -> GuardVerdict {
    GuardVerdict {
        guard: "node-missing".into(),
        subject: e.host.clone(),
        pass: false,
        message: "not a host of the inventory".into(),
        fix: Some("check hosts.json".into()),
    }
}

/// Before a new run: refuse when another run holds the lock (and is alive), or when a run in
/// `journal_dir` is unfinished (it must be resumed or abandoned first).
pub async fn preflight(world: &World, journal_dir: &Path, run_id: &str) -> Option<RunOutcome> {
    let now = world.clock.now();
    if let Ok(Some(held)) = lock::current(world.cluster.as_ref(), now).await
        && !held.stale
        && lock::holder_run_id(&held.holder) != run_id
        && lock::holder_alive_here(&held.holder) != Some(false)
    {
        return Some(refused(None, "lock", held.to_string()));
    }
    match journal::unfinished(journal_dir) {
        Ok(list) => list.iter().find(|u| u.run_id != run_id).map(|u| {
            let at = u
                .interrupted
                .as_ref()
                .map(|(n, s)| format!(" (interrupted at {n} {s})"))
                .unwrap_or_default();
            refused(
                None,
                "unfinished-run",
                format!(
                    "run {} is unfinished{at}: `homeinfra-tui upgrade --resume {}` or `--abandon {}`",
                    u.run_id, u.run_id, u.run_id
                ),
            )
        }),
        Err(e) => Some(refused(None, "journal", format!("{e:#}"))),
    }
}

/// Abandon a run: uncordon only the nodes it cordoned, release the lock if it holds it, and
/// close its journal. Returns the nodes uncordoned.
pub async fn abandon(world: &World, journal_dir: &Path, run_id: &str) -> Result<Vec<String>> {
    let path = journal::path_of(journal_dir, run_id);
    let summary = journal::summarize(&path)?;
    if let Some(held) = lock::current(world.cluster.as_ref(), world.clock.now()).await?
        && lock::holder_run_id(&held.holder) == run_id
        && !held.stale
        && lock::holder_alive_here(&held.holder) != Some(false)
    {
        return Err(eyre!(
            "run {run_id} is still running ({}): abort it instead, or wait until its lock goes stale",
            held.holder
        ));
    }
    let mut uncordoned = Vec::new();
    for e in &summary.plan.entries {
        let st = world.cluster.node(&e.node).await?;
        if st.cordoned_by.as_deref() == Some(run_id) {
            world.cluster.uncordon(&e.node).await?;
            uncordoned.push(e.node.clone());
        }
    }
    lock::release(world.cluster.as_ref(), run_id).await?;
    let mut j = Journal::open(journal_dir, run_id)?;
    j.append(
        world.clock.now(),
        &UpgradeEvent::RunFinished {
            outcome: RunOutcome::Abandoned {
                uncordoned: uncordoned.clone(),
            },
        },
    )?;
    Ok(uncordoned)
}

enum NodeResult {
    Done(NodeOutcome),
    Stop(RunOutcome),
}

struct Runner {
    w: World,
    inv: Inventory,
    plan: Plan,
    s: Settings,
    opts: StartOptions,
    tx: mpsc::Sender<UpgradeEvent>,
    ctl: mpsc::Receiver<Control>,
    journal: Option<Journal>,
    pause: bool,
    abort: Option<String>,
    skip: HashSet<String>,
    lock_lost: Arc<Mutex<Option<String>>>,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let d = to.duration_since(from);
    Duration::try_from(d).unwrap_or_default()
}

impl Runner {
    async fn run(mut self) -> RunOutcome {
        let outcome = self.run_inner().await;
        if let Err(e) = lock::release(self.w.cluster.as_ref(), &self.plan.run_id).await {
            self.notice(None, format!("could not release the upgrade lock: {e:#}"))
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
            && let Some(refusal) = preflight(&self.w, &dir, &run_id).await
        {
            return refusal;
        }
        // The lock.
        let held = match lock::acquire(
            self.w.cluster.as_ref(),
            &self.opts.holder,
            &run_id,
            self.s.lock_duration,
            self.w.clock.now(),
            self.opts.force_unlock,
        )
        .await
        {
            Ok(Acquire::Acquired(rec)) => rec,
            Ok(Acquire::Held(h)) => return refused(None, "lock", h.to_string()),
            Err(e) => return refused(None, "lock", format!("{e:#}")),
        };
        // The journal.
        if let Some(dir) = self.opts.journal_dir.clone() {
            match Journal::open(&dir, &run_id) {
                Ok(j) => self.journal = Some(j),
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
        // Renew the lock while the nodes run; a lost lock aborts at the next safe point.
        let renewer = renew_loop(
            self.w.clone(),
            held,
            self.s.lock_duration,
            self.lock_lost.clone(),
        );
        tokio::select! {
            o = self.run_nodes() => o,
            _ = renewer => RunOutcome::Aborted { reason: "the lock renewal ended".into() },
        }
    }

    async fn run_nodes(&mut self) -> RunOutcome {
        let (first, first_step) = self.opts.resume.unwrap_or((0, Step::Guards));
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

    /// Paused after `node`: wait for Resume or Abort.
    async fn paused(&mut self, node: &str) -> Option<RunOutcome> {
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: "paused".into(),
            detail: "paused after this node: resume or abort".into(),
        })
        .await;
        loop {
            match self.ctl.recv().await {
                None | Some(Control::Abort) => {
                    return Some(RunOutcome::Aborted {
                        reason: "aborted while paused".into(),
                    });
                }
                Some(Control::Resume) => {
                    self.pause = false;
                    self.notice(None, "resumed".into()).await;
                    return None;
                }
                Some(Control::Skip { node }) => {
                    self.skip.insert(node);
                }
                Some(other) => {
                    self.notice(None, format!("paused: {other:?} does nothing now"))
                        .await
                }
            }
        }
    }

    fn lock_lost(&self) -> Option<String> {
        self.lock_lost.lock().ok().and_then(|g| g.clone())
    }

    async fn poll_controls(&mut self) {
        if let Some(l) = self.lock_lost()
            && self.abort.is_none()
        {
            self.abort = Some(l);
        }
        while let Ok(c) = self.ctl.try_recv() {
            self.apply_control(c).await;
        }
    }

    async fn apply_control(&mut self, c: Control) {
        match c {
            Control::Pause => {
                self.pause = true;
                self.notice(None, "will pause after the current node".into())
                    .await;
            }
            Control::Resume => self.pause = false,
            Control::Abort => {
                self.abort = Some("aborted by the operator".into());
                self.notice(None, "will abort at the next safe point".into())
                    .await;
            }
            Control::Skip { node } => {
                self.notice(Some(node.clone()), "will be skipped".into())
                    .await;
                self.skip.insert(node);
            }
            other => {
                self.notice(None, format!("{other:?}: nothing waits for that now"))
                    .await
            }
        }
    }

    /// Wait for the operator's decision about `node`.
    async fn ask(&mut self, node: &str, what: &str, detail: String) -> Control {
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: what.to_string(),
            detail,
        })
        .await;
        loop {
            match self.ctl.recv().await {
                None => return Control::Abort,
                Some(Control::Pause) => self.pause = true,
                Some(Control::Resume) => self.pause = false,
                Some(Control::Skip { node: n }) if n != node => {
                    self.skip.insert(n);
                }
                Some(c) => return c,
            }
        }
    }

    async fn notice(&mut self, node: Option<String>, message: String) {
        self.emit(UpgradeEvent::Notice { node, message }).await;
    }

    async fn emit(&mut self, ev: UpgradeEvent) {
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append(self.w.clock.now(), &ev)
        {
            // Without a journal the run could not be resumed: stop at the next safe point.
            self.abort.get_or_insert(format!("{e:#}"));
            let _ = self
                .tx
                .send(UpgradeEvent::Notice {
                    node: None,
                    message: format!("{e:#}; aborting at the next safe point"),
                })
                .await;
        }
        let _ = self.tx.send(ev).await;
    }

    async fn run_node(&mut self, idx: usize, from: Step, resuming: bool) -> NodeResult {
        let entry = self.plan.entries[idx].clone();
        let node = entry.node.clone();
        let Some(host) = self.inv.host(&entry.host).cloned() else {
            return NodeResult::Stop(refused(
                Some(node),
                "node-missing",
                format!("{} is not a host of the inventory", entry.host),
            ));
        };
        let mut step = from;
        if resuming {
            step = self.resume_check(&entry, step).await;
        }
        let mut rebooted = false;
        loop {
            self.poll_controls().await;
            if step == Step::Guards && self.skip.contains(&node) {
                return NodeResult::Done(NodeOutcome::Skipped {
                    reason: "skipped by the operator".into(),
                });
            }
            if let Some(reason) = self.abort.clone() {
                match step {
                    Step::Guards | Step::Cordon => {
                        return NodeResult::Stop(RunOutcome::Aborted { reason });
                    }
                    Step::Drain | Step::Switch => {
                        // Nothing changed on the host yet: undo our cordon.
                        self.undo_cordon(&node).await;
                        return NodeResult::Stop(RunOutcome::Aborted { reason });
                    }
                    _ => {} // finish the node first
                }
            }
            let started = self.w.clock.now();
            self.emit(UpgradeEvent::StepStarted {
                node: node.clone(),
                step,
            })
            .await;
            let mut refusal: Option<GuardVerdict> = None;
            let outcome = match step {
                Step::Guards => {
                    let v = self.guards(&entry, &host).await;
                    let failed: Vec<&GuardVerdict> = v.iter().filter(|v| !v.pass).collect();
                    let o = if failed.is_empty() {
                        StepOutcome::ok()
                    } else {
                        refusal = Some(failed[0].clone());
                        StepOutcome::Failed {
                            message: failed
                                .iter()
                                .map(|v| v.line())
                                .collect::<Vec<_>>()
                                .join("; "),
                        }
                    };
                    self.emit(UpgradeEvent::GuardVerdicts {
                        node: node.clone(),
                        verdicts: v,
                    })
                    .await;
                    o
                }
                Step::Cordon => self.cordon(&node).await,
                Step::Drain => self.drain(&node).await,
                Step::Switch => self.switch(&entry, &host).await,
                Step::Reboot => {
                    let o = self.reboot(&node, &host).await;
                    if matches!(o, StepOutcome::Ok { .. }) {
                        rebooted = true;
                    }
                    o
                }
                Step::WaitHealthy => self.wait_healthy(&entry, &host).await,
                Step::Rollback => self.rollback(&entry, &host, rebooted).await,
                Step::Uncordon => self.uncordon(&node).await,
                Step::Settle => self.settle(&node).await,
            };
            let duration_ms = elapsed(started, self.w.clock.now()).as_millis() as u64;
            self.emit(UpgradeEvent::StepFinished {
                node: node.clone(),
                step,
                outcome: outcome.clone(),
                duration_ms,
            })
            .await;
            let StepOutcome::Failed { message } = outcome else {
                match step.next() {
                    Some(n) => {
                        step = n;
                        continue;
                    }
                    None => return NodeResult::Done(NodeOutcome::Upgraded),
                }
            };
            // A failure.
            match step {
                Step::Rollback => {
                    return NodeResult::Stop(RunOutcome::Failed {
                        node: node.clone(),
                        step: Step::WaitHealthy,
                        message: format!(
                            "{node} did not come back healthy and was rolled back; it stays cordoned: {message}. \
                             Investigate, then `homeinfra-tui upgrade --abandon {}` to uncordon it",
                            self.plan.run_id
                        ),
                    });
                }
                Step::WaitHealthy | Step::Reboot => {
                    self.notice(
                        Some(node.clone()),
                        format!("{step} failed: {message}; rolling back"),
                    )
                    .await;
                    step = Step::Rollback;
                    continue;
                }
                _ => {}
            }
            if self.abort.is_some() && step == Step::Drain {
                self.undo_cordon(&node).await;
                return NodeResult::Stop(RunOutcome::Aborted {
                    reason: self.abort.clone().unwrap_or_default(),
                });
            }
            let stop = match &refusal {
                Some(v) => refused(Some(node.clone()), &v.guard, message.clone()),
                None => RunOutcome::Failed {
                    node: node.clone(),
                    step,
                    message: if step > Step::Cordon && step < Step::Uncordon {
                        format!("{message} — {node} stays cordoned")
                    } else {
                        message.clone()
                    },
                },
            };
            if !self.opts.interactive {
                return NodeResult::Stop(stop);
            }
            loop {
                match self
                    .ask(
                        &node,
                        "operator",
                        format!("{step} failed: {message} — retry, skip or abort"),
                    )
                    .await
                {
                    Control::Retry => break,
                    Control::Skip { .. } if step <= Step::Cordon => {
                        if step == Step::Cordon {
                            self.undo_cordon(&node).await;
                        }
                        return NodeResult::Done(NodeOutcome::Skipped {
                            reason: format!("skipped by the operator after: {message}"),
                        });
                    }
                    Control::Skip { .. } => {
                        self.notice(
                            Some(node.clone()),
                            "cannot skip a node this run has already drained: retry or abort"
                                .into(),
                        )
                        .await
                    }
                    Control::Abort => return NodeResult::Stop(stop),
                    other => {
                        self.notice(Some(node.clone()), format!("{other:?} does nothing now"))
                            .await
                    }
                }
            }
        }
    }

    /// Resuming: re-check the real state of the interrupted node.
    async fn resume_check(&mut self, entry: &PlanEntry, step: Step) -> Step {
        let node = &entry.node;
        if step <= Step::Cordon {
            return Step::Guards;
        }
        if step == Step::Rollback {
            return step;
        }
        match self.w.cluster.node(node).await {
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                self.notice(
                    Some(node.clone()),
                    format!("resuming: {node} is cordoned by this run; going on with {step}"),
                )
                .await;
                step
            }
            Ok(_) if step >= Step::Uncordon => step,
            Ok(_) => {
                self.notice(
                    Some(node.clone()),
                    format!("resuming: {node} is no longer cordoned by this run; starting it over from the guards"),
                )
                .await;
                Step::Guards
            }
            Err(e) => {
                self.notice(
                    Some(node.clone()),
                    format!(
                        "resuming: cannot read {node}: {e:#}; starting it over from the guards"
                    ),
                )
                .await;
                Step::Guards
            }
        }
    }

    async fn undo_cordon(&mut self, node: &str) {
        match self.w.cluster.node(node).await {
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                let msg = match self.w.cluster.uncordon(node).await {
                    Ok(()) => format!("uncordoned {node} (nothing on it had changed)"),
                    Err(e) => format!("could not uncordon {node}: {e:#}"),
                };
                self.notice(Some(node.to_string()), msg).await;
            }
            Ok(_) => {}
            Err(e) => {
                self.notice(Some(node.to_string()), format!("cannot read {node}: {e:#}"))
                    .await
            }
        }
    }

    async fn guards(&mut self, entry: &PlanEntry, host: &Host) -> Vec<GuardVerdict> {
        let health = self.w.health.gather(&self.s.gates).await;
        let au = self
            .w
            .hosts
            .auto_upgrade(host)
            .await
            .map_err(|e| format!("{e:#}"));
        guards::evaluate(&GuardInputs {
            entry,
            host,
            run_id: &self.plan.run_id,
            health: &health,
            auto_upgrade: &au,
            settings: &self.s,
            now: self.w.clock.now(),
        })
    }

    async fn cordon(&mut self, node: &str) -> StepOutcome {
        let run_id = self.plan.run_id.clone();
        match self.w.cluster.node(node).await {
            Err(e) => StepOutcome::Failed {
                message: format!("cannot read node {node}: {e:#}"),
            },
            Ok(st) if st.cordoned_by.as_deref() == Some(run_id.as_str()) => {
                StepOutcome::ok_with("already cordoned by this run")
            }
            Ok(st) if st.unschedulable => StepOutcome::ok_with(
                "already cordoned (not by this run): it will stay cordoned afterwards",
            ),
            Ok(_) => match self.w.cluster.cordon(node, &run_id).await {
                Ok(()) => StepOutcome::ok(),
                Err(e) => StepOutcome::Failed {
                    message: format!("cannot cordon {node}: {e:#}"),
                },
            },
        }
    }

    async fn uncordon(&mut self, node: &str) -> StepOutcome {
        match self.w.cluster.node(node).await {
            Err(e) => StepOutcome::Failed {
                message: format!("cannot read node {node}: {e:#}"),
            },
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                match self.w.cluster.uncordon(node).await {
                    Ok(()) => StepOutcome::ok(),
                    Err(e) => StepOutcome::Failed {
                        message: format!("cannot uncordon {node}: {e:#}"),
                    },
                }
            }
            Ok(st) if st.unschedulable => StepOutcome::Skipped {
                reason: "cordoned before this run: left cordoned".into(),
            },
            Ok(_) => StepOutcome::Skipped {
                reason: "not cordoned".into(),
            },
        }
    }

    async fn drain(&mut self, node: &str) -> StepOutcome {
        let start = self.w.clock.now();
        let mut evicted: HashSet<String> = HashSet::new();
        let mut attempt: u32 = 0;
        loop {
            let pods = match self.w.cluster.pods_on(node).await {
                Ok(p) => p,
                Err(e) => {
                    return StepOutcome::Failed {
                        message: format!("cannot list the pods on {node}: {e:#}"),
                    };
                }
            };
            let left: Vec<_> = pods
                .into_iter()
                .filter(|p| !p.daemonset && !p.mirror)
                .collect();
            if left.is_empty() {
                return StepOutcome::ok_with(format!("{} pods evicted", evicted.len()));
            }
            if !self.s.delete_emptydir_data
                && let Some(p) = left.iter().find(|p| p.uses_empty_dir && !p.deleting)
            {
                return StepOutcome::Failed {
                    message: format!(
                        "pod {} uses emptyDir (its data would be lost): set [upgrade] delete_emptydir_data = true or move the pod",
                        p.key()
                    ),
                };
            }
            let mut blocked: Vec<String> = Vec::new();
            for p in left.iter().filter(|p| !p.deleting) {
                match self.w.cluster.evict(p, self.s.eviction_grace_secs).await {
                    Ok(Eviction::Accepted) | Ok(Eviction::Gone) => {
                        evicted.insert(p.key());
                    }
                    Ok(Eviction::Blocked { pdb, message }) => blocked.push(match pdb {
                        Some(pdb) => format!(
                            "pod {} blocked by PodDisruptionBudget {pdb} ({message})",
                            p.key()
                        ),
                        None => format!("pod {} blocked ({message})", p.key()),
                    }),
                    Err(e) => blocked.push(format!("pod {}: eviction failed: {e:#}", p.key())),
                }
            }
            self.poll_controls().await;
            if self.abort.is_some() {
                return StepOutcome::Failed {
                    message: "drain stopped: aborted by the operator".into(),
                };
            }
            let spent = elapsed(start, self.w.clock.now());
            if spent >= self.s.drain_timeout {
                let still: Vec<String> = if blocked.is_empty() {
                    left.iter().map(|p| p.key()).collect()
                } else {
                    blocked.clone()
                };
                return StepOutcome::Failed {
                    message: format!(
                        "drain timed out after {}s: {}",
                        secs(self.s.drain_timeout),
                        still.join("; ")
                    ),
                };
            }
            let wait = if blocked.is_empty() {
                attempt = 0;
                self.s.poll
            } else {
                attempt = attempt.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << attempt.min(5));
                backoff.min(self.s.poll.max(Duration::from_secs(1)) * 6)
            };
            let detail = if blocked.is_empty() {
                format!(
                    "{} pods still terminating: {}",
                    left.len(),
                    left.iter().map(|p| p.key()).collect::<Vec<_>>().join(", ")
                )
            } else {
                format!("{}; retrying in {}s", blocked.join("; "), wait.as_secs())
            };
            self.emit(UpgradeEvent::Waiting {
                node: node.to_string(),
                what: if blocked.is_empty() {
                    "pods-terminating".into()
                } else {
                    "eviction-blocked".into()
                },
                detail,
            })
            .await;
            self.w.clock.sleep(wait).await;
        }
    }

    /// The command from `template` for `host`: its inventory values checked first (a value a
    /// shell would interpret is refused, naming the host and field).
    fn command(&self, template: &str, host: &Host, local: bool) -> Result<CommandSpec, String> {
        let vars =
            CommandVars::new(&self.plan.flake, host, &default_user()).map_err(|e| e.to_string())?;
        let text = vars.fill(template);
        Ok(if local {
            CommandSpec::Local(text)
        } else {
            CommandSpec::Remote(text)
        })
    }

    /// Run a command, streaming its lines as `Output` events.
    async fn exec_streamed(
        &mut self,
        node: &str,
        host: &Host,
        cmd: &CommandSpec,
        timeout: Duration,
    ) -> Result<Option<u32>> {
        let hosts = self.w.hosts.clone();
        let (ltx, mut lrx) = mpsc::unbounded_channel::<String>();
        let fut = hosts.exec(host, cmd, timeout, ltx);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(line) = lrx.recv() => {
                    self.emit(UpgradeEvent::Output { node: node.to_string(), line }).await;
                }
            }
        };
        while let Ok(line) = lrx.try_recv() {
            self.emit(UpgradeEvent::Output {
                node: node.to_string(),
                line,
            })
            .await;
        }
        result
    }

    async fn switch(&mut self, entry: &PlanEntry, host: &Host) -> StepOutcome {
        let cmd = match self.s.switch {
            SwitchMode::Remote => self.command(&self.s.switch_command.clone(), host, false),
            SwitchMode::Local => self.command(&self.s.local_switch_command.clone(), host, true),
        };
        let cmd = match cmd {
            Ok(c) => c,
            Err(message) => return StepOutcome::Failed { message },
        };
        self.emit(UpgradeEvent::Output {
            node: entry.node.clone(),
            line: format!("$ {}", cmd.text()),
        })
        .await;
        let timeout = self.s.switch_timeout;
        match self.exec_streamed(&entry.node, host, &cmd, timeout).await {
            Ok(Some(0)) => StepOutcome::ok(),
            Ok(Some(code)) => StepOutcome::Failed {
                message: format!("`{}` exited with status {code}", cmd.text()),
            },
            Ok(None) => StepOutcome::Failed {
                message: format!("`{}` was killed by a signal", cmd.text()),
            },
            Err(e) => StepOutcome::Failed {
                message: format!("`{}` failed: {e:#}", cmd.text()),
            },
        }
    }

    async fn reboot(&mut self, node: &str, host: &Host) -> StepOutcome {
        let bs = match self.w.hosts.boot_state(host).await {
            Ok(b) => b,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!("cannot read the boot state of {}: {e:#}", host.id),
                };
            }
        };
        match bs.reboot_needed {
            Some(false) => {
                return StepOutcome::Skipped {
                    reason: "not needed: kernel, initrd and modules unchanged".into(),
                };
            }
            None => {
                return StepOutcome::Skipped {
                    reason: "could not tell whether a reboot is needed (boot files unknown): not rebooting".into(),
                };
            }
            Some(true) => {}
        }
        let why = bs.reasons.join(", ");
        match self.s.reboot {
            RebootPolicy::Never => {
                return StepOutcome::Skipped {
                    reason: format!(
                        "needed ({why} changed) but [upgrade] reboot = \"never\": reboot {} later",
                        host.id
                    ),
                };
            }
            RebootPolicy::Ask => loop {
                match self
                    .ask(
                        node,
                        "confirm-reboot",
                        format!("{why} changed: reboot {} now?", host.id),
                    )
                    .await
                {
                    Control::Approve => break,
                    Control::Decline => {
                        return StepOutcome::Skipped {
                            reason: format!("needed ({why} changed) but declined by the operator"),
                        };
                    }
                    Control::Abort => {
                        self.abort = Some("aborted by the operator".into());
                        return StepOutcome::Skipped {
                            reason: "reboot declined: aborting after this node".into(),
                        };
                    }
                    _ => {}
                }
            },
            RebootPolicy::Auto => {}
        }
        let before = bs.booted_system.clone();
        let cmd = self.s.reboot_command.clone();
        if let Err(e) = self.w.hosts.reboot(host, &cmd).await {
            return StepOutcome::Failed {
                message: format!("`{cmd}` failed: {e:#}"),
            };
        }
        let start = self.w.clock.now();
        let deadline = self.s.reboot_timeout;
        let mut went_down = false;
        loop {
            let up = self.w.hosts.reachable(host).await;
            if !up {
                if !went_down {
                    went_down = true;
                    self.emit(UpgradeEvent::Waiting {
                        node: node.to_string(),
                        what: "host-down".into(),
                        detail: format!("{} is rebooting (SSH down); waiting for it", host.id),
                    })
                    .await;
                }
            } else if let Ok(now) = self.w.hosts.boot_state(host).await
                && now.booted_system.is_some()
                && now.booted_system != before
            {
                return StepOutcome::ok_with(format!(
                    "booted {}",
                    now.booted_system.unwrap_or_default()
                ));
            } else if went_down {
                return StepOutcome::Failed {
                    message: format!(
                        "{} came back but still runs the old boot ({})",
                        host.id,
                        before.unwrap_or_default()
                    ),
                };
            }
            if elapsed(start, self.w.clock.now()) >= deadline {
                return StepOutcome::Failed {
                    message: format!(
                        "{} did not come back with a new boot within {}s",
                        host.id,
                        secs(deadline)
                    ),
                };
            }
            self.w.clock.sleep(self.s.poll).await;
        }
    }

    async fn wait_healthy(&mut self, entry: &PlanEntry, host: &Host) -> StepOutcome {
        let node = entry.node.clone();
        let expected = self.w.hosts.k3s_version(host).await.ok().flatten();
        // Node Ready with the expected kubelet.
        let start = self.w.clock.now();
        loop {
            let st = self.w.cluster.node(&node).await;
            let (ok, seen) = match &st {
                Ok(s) => (
                    s.ready == Some(true)
                        && expected.as_ref().is_none_or(|v| &s.kubelet_version == v),
                    format!(
                        "{}, kubelet {}",
                        match s.ready {
                            Some(true) => "Ready",
                            Some(false) => "NotReady",
                            None => "Unknown",
                        },
                        s.kubelet_version
                    ),
                ),
                Err(e) => (false, format!("unreadable: {e:#}")),
            };
            if ok {
                break;
            }
            if elapsed(start, self.w.clock.now()) >= self.s.ready_timeout {
                return StepOutcome::Failed {
                    message: format!(
                        "{node} not Ready{} within {}s (last seen: {seen})",
                        expected
                            .as_ref()
                            .map(|v| format!(" with kubelet {v}"))
                            .unwrap_or_default(),
                        secs(self.s.ready_timeout)
                    ),
                };
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.clone(),
                what: "node-ready".into(),
                detail: format!("waiting for {node} to be Ready: {seen}"),
            })
            .await;
            self.w.clock.sleep(self.s.poll).await;
        }
        // etcd member healthy and caught up.
        if entry.role.is_control_plane() {
            let start = self.w.clock.now();
            loop {
                let h = self.w.health.gather(&[]).await;
                let (ok, seen) = etcd_member_ok(&h, host, self.s.etcd_max_lag);
                if ok {
                    break;
                }
                if elapsed(start, self.w.clock.now()) >= self.s.etcd_timeout {
                    return StepOutcome::Failed {
                        message: format!(
                            "etcd member on {node} not healthy and caught up within {}s ({seen})",
                            secs(self.s.etcd_timeout)
                        ),
                    };
                }
                self.emit(UpgradeEvent::Waiting {
                    node: node.clone(),
                    what: "etcd-member".into(),
                    detail: seen,
                })
                .await;
                self.w.clock.sleep(self.s.poll).await;
            }
        }
        // Longhorn volumes healthy, rebuilds done.
        let start = self.w.clock.now();
        loop {
            let h = self.w.health.gather(&[]).await;
            let (ok, seen) = longhorn_ok(&h);
            if ok {
                break;
            }
            if elapsed(start, self.w.clock.now()) >= self.s.longhorn_timeout {
                return StepOutcome::Failed {
                    message: format!(
                        "Longhorn volumes not healthy within {}s ({seen})",
                        secs(self.s.longhorn_timeout)
                    ),
                };
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.clone(),
                what: "longhorn".into(),
                detail: seen,
            })
            .await;
            self.w.clock.sleep(self.s.poll).await;
        }
        StepOutcome::ok()
    }

    async fn rollback(&mut self, entry: &PlanEntry, host: &Host, rebooted: bool) -> StepOutcome {
        let cmd = match self.command(&self.s.rollback_command.clone(), host, false) {
            Ok(c) => c,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!(
                        "cannot build the rollback: {e}: the host needs hands-on repair"
                    ),
                };
            }
        };
        self.emit(UpgradeEvent::Output {
            node: entry.node.clone(),
            line: format!("$ {}", cmd.text()),
        })
        .await;
        let timeout = self.s.switch_timeout;
        let mut notes = Vec::new();
        match self.exec_streamed(&entry.node, host, &cmd, timeout).await {
            Ok(Some(0)) => notes.push("rolled back to the previous generation".to_string()),
            Ok(code) => {
                return StepOutcome::Failed {
                    message: format!(
                        "the rollback `{}` failed too (status {code:?}): the host needs hands-on repair",
                        cmd.text()
                    ),
                };
            }
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!(
                        "the rollback `{}` could not run: {e:#}: the host needs hands-on repair",
                        cmd.text()
                    ),
                };
            }
        }
        if rebooted && self.s.reboot == RebootPolicy::Auto {
            match self.reboot(&entry.node, host).await {
                StepOutcome::Failed { message } => notes.push(format!("reboot: {message}")),
                StepOutcome::Ok { detail } => notes.push(format!(
                    "rebooted into the previous generation {}",
                    detail.unwrap_or_default()
                )),
                StepOutcome::Skipped { .. } => {}
            }
        }
        match self.wait_healthy(entry, host).await {
            StepOutcome::Failed { message } => notes.push(format!("still unhealthy: {message}")),
            _ => notes.push("healthy again".into()),
        }
        // A rollback always stops the run.
        StepOutcome::Failed {
            message: notes.join("; "),
        }
    }

    async fn settle(&mut self, node: &str) -> StepOutcome {
        if self.s.settle.is_zero() {
            return StepOutcome::ok();
        }
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: "settle".into(),
            detail: format!("settling for {}s", secs(self.s.settle)),
        })
        .await;
        self.w.clock.sleep(self.s.settle).await;
        StepOutcome::ok()
    }
}

fn refused(node: Option<String>, guard: &str, message: String) -> RunOutcome {
    RunOutcome::Refused {
        node,
        guard: guard.to_string(),
        message,
    }
}

/// Is the etcd member on `host` healthy and caught up?
fn etcd_member_ok(h: &HealthInputs, host: &Host, max_lag: u64) -> (bool, String) {
    match &h.etcd {
        None => (true, "etcd not monitored".into()),
        Some(Err(e)) => (false, format!("etcd unreadable: {e}")),
        Some(Ok(state)) => match state.member_on_host(host) {
            None => (false, format!("no etcd member on {} yet", host.id)),
            Some(m) if !m.healthy => (
                false,
                format!(
                    "member {} not healthy{}",
                    m.label(),
                    m.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            ),
            Some(m) => match m.raft_index_lag {
                Some(l) if l > max_lag => (
                    false,
                    format!("member {} is {l} raft entries behind", m.label()),
                ),
                _ => (true, format!("member {} healthy", m.label())),
            },
        },
    }
}

/// Are all Longhorn volumes healthy with no rebuild running?
fn longhorn_ok(h: &HealthInputs) -> (bool, String) {
    let c = match &h.cluster {
        Ok(c) => c,
        Err(e) => return (false, format!("cluster unreadable: {e}")),
    };
    let lh = &c.longhorn;
    if !lh.installed {
        return (true, "Longhorn not installed".into());
    }
    let mut bad = Vec::new();
    for v in &lh.volumes {
        let rebuilding = lh.replicas_of(&v.name).filter(|r| r.rebuilding).count();
        if rebuilding > 0 {
            bad.push(format!("{} rebuilding {rebuilding} replica(s)", v.name));
        } else if v.robustness != "healthy" && v.state != "detached" {
            bad.push(format!("{} {}", v.name, v.robustness));
        }
    }
    if bad.is_empty() {
        (true, "all volumes healthy".into())
    } else {
        (false, bad.join(", "))
    }
}

async fn renew_loop(
    w: World,
    mut held: super::world::LeaseRecord,
    duration: Duration,
    lost: Arc<Mutex<Option<String>>>,
) {
    let every = (duration / 3).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = lock::renew(w.cluster.as_ref(), &mut held, w.clock.now()).await {
            if let Ok(mut g) = lost.lock() {
                *g = Some(format!("lost the upgrade lock: {e:#}"));
            }
            break;
        }
    }
    std::future::pending::<()>().await
}
