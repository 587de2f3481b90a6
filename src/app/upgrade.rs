//! The rolling upgrade in the dashboard: the plan with the guards' verdicts, then the live
//! run; its keys (the `upgrade` layer) and what its tasks report.
//!
//! The dashboard never owns a run: a confirmed plan starts an engine process of its own and
//! the dashboard attaches to it (journal + control socket). It looks for unfinished runs at
//! start and every few seconds: a live one is attached to (the header says so), an interrupted
//! one is offered to resume or abandon. Quitting during a run asks first (`Mode::Leaving`):
//! the run goes on, `a` aborts it at its next safe point.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::base::ring::Ring;
use crate::config::RebootPolicy;
use crate::operations::closure_diff::summary::Verdict;
use crate::operations::upgrade::forecast::Forecast;
use crate::operations::upgrade::progress::RunProgress;
use crate::operations::upgrade::text::format_event;
use crate::operations::upgrade::{Control, Plan, Step, UpgradeEvent};
use crate::tasks::{FoundRun, Job, Planned, TaskEvent, TaskId};

use super::keymap::{Action, Layer};
use super::modes::{Mode, Pending};
use super::panes::{Pane, Tone};
use super::tasks::Purpose;
use super::{App, Effect};

/// Lines of the run's event log kept (oldest dropped).
pub const LOG_CAP: usize = 500;

/// How often the dashboard looks for unfinished runs while it follows none.
pub const FIND_EVERY: SignedDuration = SignedDuration::from_secs(5);

/// A run whose engine is gone before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub run_id: String,
    /// The node and step it was in.
    pub at: Option<(String, Step)>,
}

impl Interrupted {
    /// The commands that go on with it or drop it.
    pub fn commands(&self) -> String {
        format!(
            "`homeinfra-tui upgrade --resume {id}` or `homeinfra-tui upgrade --abandon {id}`",
            id = self.run_id
        )
    }

    fn at_text(&self) -> String {
        self.at
            .as_ref()
            .map(|(n, s)| format!(" at {n} {s}"))
            .unwrap_or_default()
    }
}

/// `20261201-…`: a run id short enough for the header.
pub fn short_run_id(run_id: &str) -> String {
    // A drain's run (`drain-<day>-…`) keeps its kind and its day.
    let (kind, id) = match run_id.strip_prefix("drain-") {
        Some(rest) => ("drain-", rest),
        None => ("", run_id),
    };
    match id.split_once('-') {
        Some((day, _)) => format!("{kind}{day}-…"),
        None => run_id.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct UpgradeView {
    /// The plan is being computed.
    pub planning: bool,
    pub plan_task: Option<TaskId>,
    pub planned: Option<Result<Box<Planned>, String>>,
    /// The task that starts and follows the run (from the yes until its events end).
    pub run_task: Option<TaskId>,
    /// The run is being started (clients built, lock taken): no progress yet.
    pub starting: bool,
    /// The run, once started.
    pub progress: Option<RunProgress>,
    pub log: Ring<String>,
    /// The run is paused (after the current node).
    pub paused: bool,
    /// The engine process of the run followed.
    pub pid: Option<u32>,
    /// The run was found running (not started from this dashboard).
    pub found: bool,
    /// An unfinished run whose engine is gone (found, or lost while followed).
    pub interrupted: Option<Interrupted>,
    /// Narrow screens: the live health column instead of the run (the `health` key).
    pub show_health: bool,
    /// The replica rebuilds the engines report, with their ETA from the progress seen
    /// across the cluster's updates (the live health column).
    pub rebuilds: Vec<crate::operations::upgrade::storage::RebuildEta>,
    pub rebuild_watch: crate::operations::upgrade::storage::RebuildWatch,
}

impl Default for UpgradeView {
    fn default() -> Self {
        Self {
            planning: false,
            plan_task: None,
            planned: None,
            run_task: None,
            starting: false,
            progress: None,
            log: Ring::new(LOG_CAP),
            paused: false,
            pid: None,
            found: false,
            interrupted: None,
            show_health: false,
            rebuilds: Vec::new(),
            rebuild_watch: Default::default(),
        }
    }
}

impl UpgradeView {
    /// A run is followed and under way (not finished, its engine not lost).
    pub fn running(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| !p.is_finished()) && self.interrupted.is_none()
    }

    /// Fold one event of the run in.
    pub fn apply(&mut self, e: &UpgradeEvent) {
        if let Some(p) = &mut self.progress {
            p.apply(e);
        }
        if !matches!(e, UpgradeEvent::Output { .. }) {
            self.log.push(format_event(e));
        }
    }

    /// For the header: "upgrade 2/4 20261201-… running: node3 drain — attached", the outcome
    /// when it ended, or the interrupted run.
    pub fn summary(&self) -> Option<String> {
        let Some(p) = self.progress.as_ref() else {
            return self.interrupted.as_ref().map(|i| {
                format!(
                    "upgrade {} interrupted{}: U to resume or abandon",
                    short_run_id(&i.run_id),
                    i.at_text()
                )
            });
        };
        let (done, total) = p.counts();
        if let Some(o) = &p.outcome {
            return Some(format!(
                "upgrade {done}/{total}: {}",
                crate::operations::upgrade::text::format_outcome(o)
            ));
        }
        if let Some(i) = &self.interrupted {
            return Some(format!(
                "upgrade {done}/{total} {} interrupted{}: U to resume or abandon",
                short_run_id(&i.run_id),
                i.at_text()
            ));
        }
        if crate::operations::upgrade::drain::is_drain_run(&p.run_id)
            && let Some(n) = p.current()
            && n.steps.last().is_some_and(|s| s.step == Step::Hold)
        {
            let text = n
                .waiting
                .as_ref()
                .and_then(|(_, d)| super::maintenance_words(d))
                .unwrap_or_else(|| "in maintenance".into());
            return Some(format!("{} {text} — c on it ends it", n.node));
        }
        let step = p
            .current()
            .map(|n| {
                let s = n
                    .steps
                    .last()
                    .map(|s| s.step.to_string())
                    .unwrap_or_default();
                let wait = if n.waiting.is_some() {
                    " (waiting)"
                } else {
                    ""
                };
                format!(": {} {s}{wait}", n.node)
            })
            .unwrap_or_default();
        let paused = if self.paused { " · paused" } else { "" };
        let eta = self
            .eta()
            .map(|e| format!(" · ETA {e}"))
            .unwrap_or_default();
        Some(format!(
            "upgrade {done}/{total} {} running{step}{paused}{eta} — attached",
            short_run_id(&p.run_id)
        ))
    }

    /// The run followed, when it is under way: its id and engine pid.
    pub fn live_run(&self) -> Option<(&str, Option<u32>)> {
        let p = self.progress.as_ref().filter(|p| !p.is_finished())?;
        if self.interrupted.is_some() {
            return None;
        }
        Some((&p.run_id, self.pid))
    }

    /// The plan's forecast, when the plan came with one.
    pub fn forecast(&self) -> Option<&Forecast> {
        self.planned
            .as_ref()
            .and_then(|p| p.as_ref().ok())
            .and_then(|p| p.forecast.as_ref())
    }

    /// Time left in the run (`12m`), from earlier runs' step times; `None` when unknown.
    pub fn eta(&self) -> Option<String> {
        let p = self.progress.as_ref().filter(|p| !p.is_finished())?;
        let f = self.forecast()?;
        let left = f.estimates.remaining(p, &f.reboot_map())?;
        Some(crate::operations::upgrade::eta::short(left))
    }
}

impl App {
    /// `U`: the upgrade view; plans a new run unless one is planned, starting or under way.
    pub(super) fn open_upgrade(&mut self) -> Effect {
        if self.read_only {
            self.status = Some((
                "read-only mode: upgrades are disabled".into(),
                Tone::Warning,
            ));
            return Effect::Redraw;
        }
        self.push(Mode::Upgrade);
        if self.upgrade.running() || self.upgrade.planning || self.upgrade.starting {
            return Effect::Redraw;
        }
        let only = self.upgrade_selection();
        self.begin_plan(Job::PlanUpgrade { only })
    }

    /// Start computing a plan (`U`'s or `D`'s) in the upgrade view: a fresh view that is
    /// planning, keeping what it knows of an interrupted run.
    fn begin_plan(&mut self, job: Job) -> Effect {
        let task = self.tasks.begin(job, Purpose::Plan, self.now);
        self.upgrade = UpgradeView {
            planning: true,
            plan_task: Some(task.id),
            interrupted: self.upgrade.interrupted.take(),
            ..Default::default()
        };
        Effect::Start(task)
    }

    /// `D`: one node's maintenance — the node selected in the Nodes pane (or the host selected
    /// in the Hosts pane, when it is a node); plans its drain (guards, PDBs, silences) in the
    /// upgrade view, where `y` asks once more. Refused in read-only mode and during a run.
    pub(super) fn open_drain(&mut self) -> Effect {
        if self.read_only {
            self.status = Some((
                "read-only mode: drains are disabled (no writer is built)".into(),
                Tone::Warning,
            ));
            return Effect::Redraw;
        }
        if self.upgrade.running() || self.upgrade.planning || self.upgrade.starting {
            self.status = Some((
                "a run is under way: one at a time (U shows it)".into(),
                Tone::Warning,
            ));
            return Effect::Redraw;
        }
        let cluster = self.snapshot.cluster.data.as_ref();
        let node = match self.focus {
            Pane::Nodes => self.selected_key(Pane::Nodes),
            Pane::Hosts => self
                .selected_key(Pane::Hosts)
                .and_then(|id| self.inventory.host(&id).map(|h| h.hostname.clone()))
                .filter(|n| cluster.is_some_and(|c| c.node(n).is_some())),
            _ => None,
        };
        let Some(node) = node else {
            let hint = self.key_hint(Action::FocusNodes);
            self.status = Some((
                format!("drain: select a node in the Nodes pane{hint} (or a host that is a node)"),
                Tone::Warning,
            ));
            return Effect::Redraw;
        };
        self.push(Mode::Upgrade);
        self.begin_plan(Job::PlanDrain { node })
    }

    /// The hosts `U` plans for: with a filter on the Hosts or Nodes pane, the hosts it shows;
    /// otherwise every host.
    pub fn upgrade_selection(&self) -> Vec<String> {
        let pane = self.focus;
        if !matches!(pane, Pane::Hosts | Pane::Nodes) || self.pane(pane).filter.is_empty() {
            return Vec::new();
        }
        self.table(pane)
            .rows
            .iter()
            .filter_map(|r| match pane {
                Pane::Hosts => Some(r.key.clone()),
                _ => self.inventory.by_name(&r.key).map(|h| h.id.clone()),
            })
            .collect()
    }

    /// Per node of a plan: will it reboot? The plan's forecast (each node's diff) says so;
    /// without one, the reboot policy says never, or a fresh closure diff of its host says so;
    /// otherwise the engine decides after the switch.
    pub fn reboot_forecast(&self, plan: &Plan) -> Vec<String> {
        let policy = self.config.upgrade.reboot;
        let forecast = self.upgrade.forecast();
        plan.entries
            .iter()
            .map(|e| {
                // The plan's own diff of the node says it best.
                if let Some(n) = forecast.and_then(|f| f.node(&e.node)) {
                    return match n.reboot.will {
                        Verdict::Yes => format!("reboots ({})", n.reboot.why),
                        Verdict::No => format!("no reboot ({})", n.reboot.why),
                        Verdict::Unknown => format!("reboot: {}", n.reboot.why),
                    };
                }
                if policy == RebootPolicy::Never {
                    return "no reboot (reboot = \"never\")".to_string();
                }
                let deployed = self.deployed_system(&e.host);
                let known = self
                    .diffs
                    .get(&e.host)
                    .filter(|v| !v.running && v.deployed.is_some() && v.deployed == deployed)
                    .and_then(|v| v.result.as_ref())
                    .and_then(|r| r.as_ref().ok());
                match known {
                    Some(d) if d.reboot.required && policy == RebootPolicy::Ask => {
                        format!("reboot expected ({}), asks you first", d.reboot.reason)
                    }
                    Some(d) if d.reboot.required => {
                        format!("reboots ({})", d.reboot.reason)
                    }
                    Some(d) => format!("no reboot expected ({})", d.reboot.reason),
                    None => "reboot: decided after switch".to_string(),
                }
            })
            .collect()
    }

    pub(super) fn on_upgrade_key(&mut self, k: &crossterm::event::KeyEvent) -> Effect {
        let Some(action) = self.keymap.lookup(Layer::Upgrade, k) else {
            return Effect::None;
        };
        let running = self.upgrade.running();
        let ask = |c: Control| Mode::Confirm(Pending::Control(c));
        match action {
            Action::Quit => return Effect::Quit,
            Action::Help => self.push(Mode::Help),
            Action::Back => self.pop(),
            Action::Start if self.upgrade.progress.is_none() && !self.upgrade.starting => {
                if let Some(Ok(p)) = &self.upgrade.planned {
                    // The k3s skew guards refuse the whole plan; an empty one has nothing to do.
                    if let Some(r) = p.forecast.as_ref().and_then(|f| f.refusals.first()) {
                        self.status = Some((format!("refused: {}", r.line()), Tone::Critical));
                        return Effect::Redraw;
                    }
                    if p.plan.entries.is_empty() {
                        self.status = Some((
                            "nothing to upgrade: every node already runs what the flake builds"
                                .into(),
                            Tone::Ok,
                        ));
                        return Effect::Redraw;
                    }
                    // A drain goes only when every guard lets it (fail closed).
                    if p.plan.kind == crate::operations::upgrade::RunKind::Drain
                        && let Some((_, vs)) = p.verdicts.first()
                        && let Some(v) = vs.iter().find(|v| !v.pass)
                    {
                        self.status = Some((format!("refused: {}", v.line()), Tone::Critical));
                        return Effect::Redraw;
                    }
                    let plan = p.plan.clone();
                    let reboots = self.reboot_forecast(&plan);
                    self.push(Mode::Confirm(Pending::StartUpgrade { plan, reboots }));
                }
            }
            Action::Pause if running => {
                self.push(ask(if self.upgrade.paused {
                    Control::Resume
                } else {
                    Control::Pause
                }));
            }
            Action::Health => self.upgrade.show_health = !self.upgrade.show_health,
            Action::Abort if running => self.push(ask(Control::Abort)),
            Action::Refresh if running => self.push(ask(Control::Retry)),
            Action::Skip if running => {
                if let Some(n) = self.upgrade.progress.as_ref().and_then(|p| p.current()) {
                    let node = n.node.clone();
                    self.push(ask(Control::Skip { node }));
                }
            }
            Action::ResumeRun | Action::AbandonRun if !running && !self.upgrade.starting => {
                let Some(i) = self.upgrade.interrupted.clone() else {
                    self.status = Some(("no interrupted run".into(), Tone::Muted));
                    return Effect::Redraw;
                };
                self.push(Mode::Confirm(if action == Action::ResumeRun {
                    Pending::ResumeRun {
                        run_id: i.run_id,
                        at: i.at,
                    }
                } else {
                    Pending::AbandonRun { run_id: i.run_id }
                }));
            }
            Action::Upgrade | Action::Refresh if !running => return self.open_upgrade(),
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// The operator said yes to resuming an interrupted run.
    pub(super) fn resume_run(&mut self, run_id: String) -> Effect {
        // The plan comes back with the journal's first event when it is not known here.
        let plan = self
            .found_plans
            .get(&run_id)
            .cloned()
            .unwrap_or_else(|| Plan {
                run_id: run_id.clone(),
                flake: String::new(),
                kind: Default::default(),
                entries: Vec::new(),
            });
        let task = self.tasks.begin(
            Job::ResumeUpgrade { run_id },
            Purpose::Run(Arc::new(plan)),
            self.now,
        );
        self.upgrade = UpgradeView {
            run_task: Some(task.id),
            starting: true,
            ..Default::default()
        };
        Effect::Start(task)
    }

    /// The operator said yes to abandoning an interrupted run.
    pub(super) fn abandon_run(&mut self, run_id: String) -> Effect {
        self.status = Some((format!("abandoning run {run_id}…"), Tone::Muted));
        self.begin(Job::AbandonUpgrade { run_id }, Purpose::Abandon)
    }

    /// Time to look for unfinished runs (none followed, none being looked for, a while since).
    pub(super) fn find_due(&self, now: Timestamp) -> bool {
        self.discover_runs
            && self.finding.is_none()
            && self.upgrade.run_task.is_none()
            && self
                .last_find
                .is_none_or(|t| now.duration_since(t) >= FIND_EVERY)
    }

    /// Look for unfinished runs now.
    pub(super) fn find_runs(&mut self) -> Effect {
        self.last_find = Some(self.now);
        let task = self.tasks.begin(Job::FindRuns, Purpose::Find, self.now);
        self.finding = Some(task.id);
        Effect::Start(task)
    }

    /// What the search for unfinished runs found: attach to a live one; note an interrupted one.
    pub(super) fn on_runs_found(&mut self, id: TaskId, ev: TaskEvent) -> Effect {
        if self.finding == Some(id) && ev.is_final() {
            self.finding = None;
        }
        let TaskEvent::RunsFound(Ok(list)) = ev else {
            return Effect::None;
        };
        self.found_plans = list
            .iter()
            .map(|f| (f.run_id.clone(), f.plan.clone()))
            .collect();
        if self.upgrade.run_task.is_some() {
            return Effect::None;
        }
        if let Some(live) = list.iter().find(|f| f.pid.is_some()) {
            return self.attach(live);
        }
        let before = self.upgrade.interrupted.clone();
        // A run lost while followed stays shown as such until the search says otherwise.
        self.upgrade.interrupted = list.iter().find(|f| f.pid.is_none()).map(|f| Interrupted {
            run_id: f.run_id.clone(),
            at: f.interrupted.clone(),
        });
        if before == self.upgrade.interrupted {
            Effect::None
        } else {
            Effect::Redraw
        }
    }

    /// Follow a live run found in the journal directory.
    fn attach(&mut self, f: &FoundRun) -> Effect {
        let task = self.tasks.begin(
            Job::AttachUpgrade {
                run_id: f.run_id.clone(),
            },
            Purpose::Run(Arc::new(f.plan.clone())),
            self.now,
        );
        self.upgrade = UpgradeView {
            run_task: Some(task.id),
            starting: true,
            found: true,
            pid: f.pid,
            ..Default::default()
        };
        Effect::Start(task)
    }

    /// The operator said yes to starting this plan.
    pub(super) fn start_upgrade(&mut self, plan: Plan) -> Effect {
        let job = Job::StartUpgrade { plan: plan.clone() };
        let task = self
            .tasks
            .begin(job, Purpose::Run(std::sync::Arc::new(plan)), self.now);
        self.upgrade.run_task = Some(task.id);
        self.upgrade.starting = true;
        Effect::Start(task)
    }

    /// The operator said yes to a control of the run.
    pub(super) fn send_control(&mut self, control: Control) -> Effect {
        if self.read_only {
            self.status = Some((
                "read-only mode: the run is watched, not controlled".into(),
                Tone::Warning,
            ));
            return Effect::Redraw;
        }
        match self.upgrade.run_task {
            Some(task) => Effect::Control { task, control },
            None => {
                self.status = Some(("the upgrade is not running".into(), Tone::Warning));
                Effect::Redraw
            }
        }
    }

    /// What the plan and run tasks report.
    pub(super) fn on_upgrade_task(
        &mut self,
        id: TaskId,
        purpose: &Purpose,
        ev: TaskEvent,
    ) -> Effect {
        let v = &mut self.upgrade;
        match (purpose, ev) {
            (Purpose::Plan, ev) if v.plan_task == Some(id) => match ev {
                TaskEvent::Planned(r) => {
                    v.planning = false;
                    v.plan_task = None;
                    v.planned = Some(r);
                }
                TaskEvent::Refused(why) => {
                    v.planning = false;
                    v.plan_task = None;
                    v.planned = Some(Err(why));
                }
                e if e.is_final() => {
                    v.planning = false;
                    v.plan_task = None;
                }
                _ => return Effect::None,
            },
            (Purpose::Run(plan), ev) if v.run_task == Some(id) => match ev {
                TaskEvent::UpgradeStarted(Ok(f)) => {
                    v.starting = false;
                    v.pid = f.pid;
                    v.interrupted = None;
                    v.progress = Some(RunProgress::new(plan));
                }
                TaskEvent::UpgradeStarted(Err(e)) => {
                    v.starting = false;
                    v.run_task = None;
                    let what = if v.found {
                        "cannot attach to the upgrade"
                    } else {
                        "cannot start the upgrade"
                    };
                    self.status = Some((format!("{what}: {e}"), Tone::Critical));
                }
                TaskEvent::Upgrade(e) => {
                    v.apply(&e);
                    // What the run works on is expected: judged again on every step.
                    if matches!(
                        *e,
                        crate::operations::upgrade::UpgradeEvent::StepStarted { .. }
                            | crate::operations::upgrade::UpgradeEvent::NodeDone { .. }
                            | crate::operations::upgrade::UpgradeEvent::RunFinished { .. }
                    ) {
                        self.reassess();
                        // The Nodes pane names what the run does to its nodes.
                        self.gens.cluster += 1;
                    }
                    if matches!(
                        &*e,
                        crate::operations::upgrade::UpgradeEvent::Waiting { what, .. } if what == "maintenance"
                    ) {
                        self.gens.cluster += 1;
                    }
                }
                TaskEvent::ControlSent(Control::Pause) => v.paused = true,
                TaskEvent::ControlSent(Control::Resume) => v.paused = false,
                TaskEvent::ControlSent(_) => {}
                TaskEvent::ControlRefused { reason, .. } => {
                    self.status = Some((reason, Tone::Warning));
                }
                TaskEvent::Refused(why) => {
                    v.starting = false;
                    v.run_task = None;
                    self.status = Some((why, Tone::Warning));
                }
                e if e.is_final() => {
                    v.starting = false;
                    v.run_task = None;
                    // The events ended before the run did: its engine is gone.
                    if let Some(p) = v.progress.as_ref().filter(|p| !p.is_finished()) {
                        v.interrupted = Some(Interrupted {
                            run_id: p.run_id.clone(),
                            at: p
                                .current()
                                .and_then(|n| n.steps.last().map(|s| (n.node.clone(), s.step))),
                        });
                    }
                }
                _ => return Effect::None,
            },
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// What an abandon reports.
    pub(super) fn on_abandoned(&mut self, ev: TaskEvent) -> Effect {
        match ev {
            TaskEvent::Abandoned(Ok(what)) => {
                self.upgrade.interrupted = None;
                if self
                    .upgrade
                    .progress
                    .as_ref()
                    .is_some_and(|p| !p.is_finished())
                {
                    self.upgrade.progress = None;
                }
                self.upgrade.planned = None;
                self.status = Some((what, Tone::Ok));
                // Plan again if the view is open, now that nothing is unfinished.
                if self.showing(&Mode::Upgrade) {
                    return self.replan();
                }
                Effect::Refresh
            }
            TaskEvent::Abandoned(Err(e)) => {
                self.status = Some((e, Tone::Critical));
                Effect::Redraw
            }
            TaskEvent::Refused(why) => {
                self.status = Some((why, Tone::Warning));
                Effect::Redraw
            }
            _ => Effect::None,
        }
    }

    /// Plan anew in the open upgrade view.
    fn replan(&mut self) -> Effect {
        let only = self.upgrade_selection();
        let task = self
            .tasks
            .begin(Job::PlanUpgrade { only }, Purpose::Plan, self.now);
        self.upgrade.planning = true;
        self.upgrade.plan_task = Some(task.id);
        Effect::Start(task)
    }

    /// `q` while a run goes on: say it goes on, offer to abort; `q` again leaves.
    pub(super) fn on_leaving_key(&mut self, k: &crossterm::event::KeyEvent) -> Effect {
        match self.keymap.lookup(Layer::Upgrade, k) {
            Some(Action::Quit) => Effect::Quit,
            Some(Action::Abort) if self.upgrade.running() && !self.read_only => {
                self.pop();
                self.push(Mode::Confirm(Pending::Control(Control::Abort)));
                Effect::Redraw
            }
            _ => {
                self.pop();
                Effect::Redraw
            }
        }
    }

    /// What the popup says when quit is asked during a run.
    pub fn leaving_text(&self) -> Vec<String> {
        let (run_id, pid) = self.upgrade.live_run().unwrap_or(("?", None));
        let pid = pid.map_or_else(|| "its own process".to_string(), |p| format!("pid {p}"));
        let mut out = vec![
            format!("The rolling upgrade {run_id} goes on without the dashboard:"),
            format!("its engine runs on its own ({pid}). The next dashboard attaches to it;"),
            format!("`homeinfra-tui upgrade --attach {run_id}` follows it from a terminal."),
        ];
        if self.demo {
            out.push(
                "This is the demo: the demo's simulated cluster stops with it; the engine stops at its next step."
                    .into(),
            );
        }
        out
    }

    /// What to print after the terminal is restored, when a run goes on.
    pub fn farewell(&self) -> Option<String> {
        let (run_id, pid) = self.upgrade.live_run()?;
        let pid = pid
            .map(|p| format!(" (engine pid {p})"))
            .unwrap_or_default();
        Some(if self.demo {
            format!(
                "upgrade {run_id}: the demo's simulated cluster stops with it; the engine stops at its next step{pid}"
            )
        } else {
            format!(
                "upgrade {run_id} goes on without the dashboard{pid}: `homeinfra-tui upgrade --attach {run_id}` follows it (Ctrl-C there detaches), and the next dashboard attaches to it"
            )
        })
    }
}

#[cfg(test)]
mod short_run_id_tests {
    #[test]
    fn a_run_id_is_shortened_to_its_day_and_a_drain_keeps_its_kind() {
        use super::short_run_id;
        assert_eq!(short_run_id("20261202-014501-5af1"), "20261202-…");
        assert_eq!(
            short_run_id("drain-20261202-014501-5af1"),
            "drain-20261202-…"
        );
        assert_eq!(short_run_id("r42"), "r42");
    }
}
