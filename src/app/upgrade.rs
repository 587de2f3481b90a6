//! The rolling upgrade in the dashboard: the plan with the guards' verdicts, then the live
//! run; its keys (the `upgrade` layer) and what its tasks report.

use crate::base::ring::Ring;
use crate::config::RebootPolicy;
use crate::operations::closure_diff::summary::Verdict;
use crate::operations::upgrade::forecast::Forecast;
use crate::operations::upgrade::progress::RunProgress;
use crate::operations::upgrade::text::format_event;
use crate::operations::upgrade::{Control, Plan, UpgradeEvent};
use crate::tasks::{Job, Planned, TaskEvent, TaskId};

use super::keymap::{Action, Layer};
use super::modes::{Mode, Pending};
use super::panes::{Pane, Tone};
use super::tasks::Purpose;
use super::{App, Effect};

/// Lines of the run's event log kept (oldest dropped).
pub const LOG_CAP: usize = 500;

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
        }
    }
}

impl UpgradeView {
    pub fn running(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| !p.is_finished())
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

    /// For the header: "upgrade 2/4 · node3 drain", "upgrade done", ...
    pub fn summary(&self) -> Option<String> {
        let p = self.progress.as_ref()?;
        let (done, total) = p.counts();
        if let Some(o) = &p.outcome {
            return Some(format!(
                "upgrade {done}/{total}: {}",
                crate::operations::upgrade::text::format_outcome(o)
            ));
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
                format!(" · {} {s}{wait}", n.node)
            })
            .unwrap_or_default();
        let paused = if self.paused { " · paused" } else { "" };
        let eta = self
            .eta()
            .map(|e| format!(" · ETA {e}"))
            .unwrap_or_default();
        Some(format!("upgrade {done}/{total}{step}{paused}{eta}"))
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
        let task = self
            .tasks
            .begin(Job::PlanUpgrade { only }, Purpose::Plan, self.now);
        self.upgrade = UpgradeView {
            planning: true,
            plan_task: Some(task.id),
            ..Default::default()
        };
        Effect::Start(task)
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
            Action::Abort if running => self.push(ask(Control::Abort)),
            Action::Refresh if running => self.push(ask(Control::Retry)),
            Action::Skip if running => {
                if let Some(n) = self.upgrade.progress.as_ref().and_then(|p| p.current()) {
                    let node = n.node.clone();
                    self.push(ask(Control::Skip { node }));
                }
            }
            Action::Upgrade | Action::Refresh if !running => return self.open_upgrade(),
            _ => return Effect::None,
        }
        Effect::Redraw
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
                TaskEvent::UpgradeStarted(Ok(_)) => {
                    v.starting = false;
                    v.progress = Some(RunProgress::new(plan));
                }
                TaskEvent::UpgradeStarted(Err(e)) => {
                    v.starting = false;
                    v.run_task = None;
                    self.status = Some((format!("cannot start the upgrade: {e}"), Tone::Critical));
                }
                TaskEvent::Upgrade(e) => v.apply(&e),
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
                }
                _ => return Effect::None,
            },
            _ => return Effect::None,
        }
        Effect::Redraw
    }
}
