//! Fleet drift in the dashboard: the flake's system of every host, evaluated by a task (never
//! in the event loop) when the first host facts arrive and again on `r` — nothing is
//! evaluated while the lock's fingerprint stays the same — and each host's state (`in sync`,
//! `drifted`, `update`, `unknown`) from its deployed system, for the Hosts pane's DRIFT column
//! and the detail view.

use super::tasks::Purpose;
use super::{App, Effect};
use crate::operations::closure_diff::fleet::{Drift, DriftState, FleetTargets, drift_of};
use crate::tasks::{Job, TaskEvent, TaskId};

#[derive(Debug, Clone, Default)]
pub struct DriftView {
    /// The task evaluating the flake's systems.
    pub task: Option<TaskId>,
    /// The last evaluation (its lock fingerprint is the cache key).
    pub targets: Option<FleetTargets>,
    /// Why the last evaluation could not run at all.
    pub error: Option<String>,
    /// An evaluation was asked for once (the first facts start one).
    pub asked: bool,
}

impl App {
    /// Whether fleet drift applies: a flake is configured.
    pub fn drift_enabled(&self) -> bool {
        self.config.nix.flake.is_some()
    }

    /// Evaluate the flake's systems (a task; nothing when one runs already).
    pub(super) fn start_drift(&mut self) -> Effect {
        if !self.drift_enabled() || self.drift.task.is_some() {
            return Effect::None;
        }
        self.drift.asked = true;
        let known = self
            .drift
            .targets
            .as_ref()
            .and_then(|t| t.fingerprint.clone());
        let task = self
            .tasks
            .begin(Job::Drift { known }, Purpose::Drift, self.now);
        self.drift.task = Some(task.id);
        Effect::Start(task)
    }

    /// The first facts of a host arrived: time to look at drift.
    pub(super) fn drift_on_facts(&mut self) -> Effect {
        if self.drift.asked {
            return Effect::None;
        }
        self.start_drift()
    }

    pub(super) fn on_drift_task(&mut self, id: TaskId, ev: TaskEvent) -> Effect {
        if self.drift.task != Some(id) {
            return Effect::None;
        }
        match ev {
            TaskEvent::Drift(Ok(Some(t))) => {
                self.drift.targets = Some(*t);
                self.drift.error = None;
            }
            TaskEvent::Drift(Ok(None)) => self.drift.error = None,
            TaskEvent::Drift(Err(e)) => self.drift.error = Some(e),
            TaskEvent::Progress(_) => return Effect::None,
            e if e.is_final() => {}
            _ => return Effect::None,
        }
        self.drift.task = None;
        self.gens.diffs += 1;
        Effect::Redraw
    }

    /// A host's drift now (`None`: no flake configured).
    pub fn drift_of_host(&self, id: &str) -> Option<Drift> {
        if !self.drift_enabled() {
            return None;
        }
        let h = self.inventory.host(id)?;
        if let Some(e) = &self.drift.error {
            return Some(Drift {
                state: DriftState::Unknown,
                detail: format!("the flake's systems could not be evaluated: {e}"),
            });
        }
        let deployed = self.deployed_system(id);
        let target = self.drift.targets.as_ref().and_then(|t| t.targets.get(id));
        let mut d = drift_of(&h.hostname, deployed.as_deref(), target);
        if self.drift.task.is_some() && target.is_none() {
            d.detail = "evaluating the flake's system…".into();
        }
        Some(d)
    }
}
