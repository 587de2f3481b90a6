//! The rolling upgrade in the dashboard: the plan with the guards' verdicts, then the live run.

use std::collections::VecDeque;

use crate::operations::upgrade::progress::RunProgress;
use crate::operations::upgrade::text::format_event;
use crate::operations::upgrade_task::{Planned, UpgradeMsg};

/// Lines of the run's event log kept (oldest dropped).
pub const LOG_CAP: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct UpgradeView {
    /// The plan is being computed.
    pub planning: bool,
    pub planned: Option<Result<Box<Planned>, String>>,
    /// The run, once started.
    pub progress: Option<RunProgress>,
    pub log: VecDeque<String>,
    /// The run is paused (after the current node).
    pub paused: bool,
}

impl UpgradeView {
    pub fn running(&self) -> bool {
        self.progress.as_ref().is_some_and(|p| !p.is_finished())
    }

    pub fn apply(&mut self, m: UpgradeMsg) {
        match m {
            UpgradeMsg::Planned(r) => {
                self.planning = false;
                self.planned = Some(r);
            }
            UpgradeMsg::Event(e) => {
                if let Some(p) = &mut self.progress {
                    p.apply(&e);
                }
                if !matches!(*e, crate::operations::upgrade::UpgradeEvent::Output { .. }) {
                    if self.log.len() >= LOG_CAP {
                        self.log.pop_front();
                    }
                    self.log.push_back(format_event(&e));
                }
            }
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
        Some(format!("upgrade {done}/{total}{step}{paused}"))
    }
}
