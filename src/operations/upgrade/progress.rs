//! The state of a run as the live view shows it, folded from events: per node a timeline of
//! steps (done / running / waiting / failed, durations), the running step's latest output
//! (bounded), the last guard verdicts and what the run waits for. Pure; no drawing.

use serde::Serialize;

use super::guards::GuardVerdict;
use super::{NodeOutcome, Plan, RunOutcome, Step, StepOutcome, UpgradeEvent};
use crate::base::ring::Ring;

/// Output lines kept per node.
pub const OUTPUT_LINES: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Running,
    Ok { detail: Option<String> },
    Skipped { reason: String },
    Failed { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub step: Step,
    pub state: StepState,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Pending,
    Running,
    Waiting,
    Done,
    Skipped,
    Failed,
    /// The run ended (aborted, refused) while this node was under way, without a failure.
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeProgress {
    pub node: String,
    pub host: String,
    pub state: NodeState,
    pub steps: Vec<StepRow>,
    pub verdicts: Vec<GuardVerdict>,
    /// What it waits for now (`what`, `detail`).
    pub waiting: Option<(String, String)>,
    pub output: Ring<String>,
    pub notices: Vec<String>,
    /// Its Alertmanager silences (while the run keeps them).
    pub silences: Vec<super::world::NodeSilence>,
    /// Its silences were expired (after its uncordon).
    pub silences_expired: bool,
}

/// The run's etcd snapshot before its first control plane, as a step of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotProgress {
    pub name: String,
    /// The server it is taken on.
    pub node: String,
    /// The file k3s wrote, once known.
    pub file: Option<String>,
    pub policy: crate::config::PreSnapshot,
    pub state: StepState,
    pub duration_ms: Option<u64>,
}

impl SnapshotProgress {
    /// A failure the run went on after (`try`).
    pub fn is_warning(&self) -> bool {
        matches!(self.state, StepState::Failed { .. })
            && self.policy != crate::config::PreSnapshot::Require
    }
}

/// A whole run, for the live view and the header.
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    pub run_id: String,
    /// The pre-upgrade etcd snapshot, once it started.
    pub snapshot: Option<SnapshotProgress>,
    pub nodes: Vec<NodeProgress>,
    pub outcome: Option<RunOutcome>,
    pub notices: Vec<String>,
}

impl RunProgress {
    pub fn new(plan: &Plan) -> Self {
        Self {
            run_id: plan.run_id.clone(),
            snapshot: None,
            nodes: plan
                .entries
                .iter()
                .map(|e| NodeProgress {
                    node: e.node.clone(),
                    host: e.host.clone(),
                    state: NodeState::Pending,
                    steps: Vec::new(),
                    verdicts: Vec::new(),
                    waiting: None,
                    output: Ring::new(OUTPUT_LINES),
                    notices: Vec::new(),
                    silences: Vec::new(),
                    silences_expired: false,
                })
                .collect(),
            outcome: None,
            notices: Vec::new(),
        }
    }

    fn node_mut(&mut self, node: &str) -> Option<&mut NodeProgress> {
        self.nodes.iter_mut().find(|n| n.node == node)
    }

    /// Nodes done (upgraded or skipped) and the total, for the header (`2/4`).
    pub fn counts(&self) -> (usize, usize) {
        let done = self
            .nodes
            .iter()
            .filter(|n| matches!(n.state, NodeState::Done | NodeState::Skipped))
            .count();
        (done, self.nodes.len())
    }

    /// The node being worked on, if any.
    pub fn current(&self) -> Option<&NodeProgress> {
        self.nodes
            .iter()
            .find(|n| matches!(n.state, NodeState::Running | NodeState::Waiting))
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// Fold one event in.
    pub fn apply(&mut self, e: &UpgradeEvent) {
        match e {
            UpgradeEvent::RunStarted { plan, .. } => {
                if self.nodes.is_empty() {
                    *self = RunProgress::new(plan);
                }
            }
            UpgradeEvent::StepStarted { node, step } => {
                if let Some(n) = self.node_mut(node) {
                    n.state = NodeState::Running;
                    n.waiting = None;
                    n.steps.push(StepRow {
                        step: *step,
                        state: StepState::Running,
                        duration_ms: None,
                    });
                }
            }
            UpgradeEvent::Output { node, line } => {
                if let Some(n) = self.node_mut(node) {
                    n.output.push(line.clone());
                }
            }
            UpgradeEvent::StepFinished {
                node,
                step,
                outcome,
                duration_ms,
            } => {
                if let Some(n) = self.node_mut(node) {
                    n.waiting = None;
                    let state = match outcome {
                        StepOutcome::Ok { detail } => StepState::Ok {
                            detail: detail.clone(),
                        },
                        StepOutcome::Skipped { reason } => StepState::Skipped {
                            reason: reason.clone(),
                        },
                        StepOutcome::Failed { message } => StepState::Failed {
                            message: message.clone(),
                        },
                    };
                    if outcome.is_failed() {
                        n.state = NodeState::Failed;
                    }
                    match n
                        .steps
                        .iter_mut()
                        .rev()
                        .find(|r| r.step == *step && r.state == StepState::Running)
                    {
                        Some(r) => {
                            r.state = state;
                            r.duration_ms = Some(*duration_ms);
                        }
                        None => n.steps.push(StepRow {
                            step: *step,
                            state,
                            duration_ms: Some(*duration_ms),
                        }),
                    }
                }
            }
            UpgradeEvent::GuardVerdicts { node, verdicts } => {
                if let Some(n) = self.node_mut(node) {
                    n.verdicts = verdicts.clone();
                }
            }
            UpgradeEvent::Waiting { node, what, detail } => {
                if let Some(n) = self.node_mut(node) {
                    n.state = NodeState::Waiting;
                    n.waiting = Some((what.clone(), detail.clone()));
                }
            }
            UpgradeEvent::RebootIssued { node, before } => {
                if let Some(n) = self.node_mut(node) {
                    n.notices.push(format!(
                        "reboot asked for at {} (boot id before: {})",
                        before.at, before.host_boot_id
                    ));
                }
            }
            UpgradeEvent::BootOnceSet { node, boot_once } => {
                if let Some(n) = self.node_mut(node) {
                    n.notices.push(boot_once.describe());
                }
            }
            UpgradeEvent::RevertArmed { node, revert } => {
                if let Some(n) = self.node_mut(node) {
                    n.notices.push(format!(
                        "revert timer {}.timer armed at {}: back to {} unless confirmed within {} s",
                        revert.unit, revert.at, revert.previous, revert.secs
                    ));
                }
            }
            UpgradeEvent::Notice { node, message } => match node {
                Some(node) => {
                    if let Some(n) = self.node_mut(node) {
                        n.notices.push(message.clone());
                    }
                }
                None => self.notices.push(message.clone()),
            },
            UpgradeEvent::Silenced { node, silences, .. } => {
                if let Some(n) = self.node_mut(node) {
                    n.silences = silences.clone();
                    n.silences_expired = false;
                }
            }
            UpgradeEvent::SilencesExpired { node, .. } => {
                if let Some(n) = self.node_mut(node) {
                    n.silences.clear();
                    n.silences_expired = true;
                }
            }
            UpgradeEvent::NodeDone { node, outcome } => {
                if let Some(n) = self.node_mut(node) {
                    n.waiting = None;
                    n.state = match outcome {
                        NodeOutcome::Upgraded | NodeOutcome::Maintained => NodeState::Done,
                        NodeOutcome::Skipped { .. } => NodeState::Skipped,
                    };
                }
            }
            UpgradeEvent::SnapshotStarted { name, node, .. } => {
                self.snapshot = Some(SnapshotProgress {
                    name: name.clone(),
                    node: node.clone(),
                    file: None,
                    policy: Default::default(),
                    state: StepState::Running,
                    duration_ms: None,
                });
                // A retry after the operator's answer: the server waits no longer.
                if let Some(n) = self.node_mut(node)
                    && n.state == NodeState::Waiting
                    && n.steps.is_empty()
                {
                    n.state = NodeState::Pending;
                    n.waiting = None;
                }
            }
            UpgradeEvent::SnapshotFinished {
                name,
                node,
                file,
                policy,
                outcome,
                duration_ms,
                ..
            } => {
                let state = match outcome {
                    StepOutcome::Ok { detail } => StepState::Ok {
                        detail: detail.clone(),
                    },
                    StepOutcome::Skipped { reason } => StepState::Skipped {
                        reason: reason.clone(),
                    },
                    StepOutcome::Failed { message } => StepState::Failed {
                        message: message.clone(),
                    },
                };
                self.snapshot = Some(SnapshotProgress {
                    name: name.clone(),
                    node: node.clone(),
                    file: file.clone(),
                    policy: *policy,
                    state,
                    duration_ms: Some(*duration_ms),
                });
            }
            UpgradeEvent::RunFinished { outcome } => {
                self.outcome = Some(outcome.clone());
                let failed = matches!(outcome, RunOutcome::Failed { .. });
                for n in &mut self.nodes {
                    if matches!(n.state, NodeState::Running | NodeState::Waiting) {
                        n.state = if failed {
                            NodeState::Failed
                        } else {
                            NodeState::Stopped
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::testing::{entry, plan};

    #[test]
    fn the_snapshot_is_a_step_of_its_own() {
        use crate::config::PreSnapshot;
        let plan = plan("r", [entry("s", "s", Role::Server)]);
        let mut p = RunProgress::new(&plan);
        assert_eq!(p.snapshot, None);
        p.apply(&UpgradeEvent::SnapshotStarted {
            name: "homeinfra-r".into(),
            node: "s".into(),
            host: "s".into(),
        });
        let s = p.snapshot.clone().unwrap();
        assert_eq!((s.node.as_str(), &s.state), ("s", &StepState::Running));
        // Not a node's step: the server is still pending.
        assert_eq!(p.nodes[0].state, NodeState::Pending);
        assert!(p.nodes[0].steps.is_empty());
        let finished = |policy, outcome| UpgradeEvent::SnapshotFinished {
            name: "homeinfra-r".into(),
            node: "s".into(),
            host: "s".into(),
            file: Some("homeinfra-r-s-1".into()),
            policy,
            outcome,
            duration_ms: 2000,
        };
        p.apply(&finished(
            PreSnapshot::Try,
            StepOutcome::Failed {
                message: "etcd down".into(),
            },
        ));
        let s = p.snapshot.clone().unwrap();
        assert!(s.is_warning(), "a failure the run goes on after");
        assert_eq!(s.duration_ms, Some(2000));
        p.apply(&finished(
            PreSnapshot::Require,
            StepOutcome::Failed {
                message: "etcd down".into(),
            },
        ));
        assert!(!p.snapshot.clone().unwrap().is_warning());
        p.apply(&finished(
            PreSnapshot::Require,
            StepOutcome::ok_with("homeinfra-r-s-1 on s"),
        ));
        assert_eq!(
            p.snapshot.map(|s| (s.file, s.state)),
            Some((
                Some("homeinfra-r-s-1".into()),
                StepState::Ok {
                    detail: Some("homeinfra-r-s-1 on s".into())
                }
            ))
        );
    }

    #[test]
    fn folds_a_node() {
        let plan = plan("r", ["a", "b"].map(|n| entry(n, n, Role::Agent)));
        let mut p = RunProgress::new(&plan);
        let node = || "a".to_string();
        p.apply(&UpgradeEvent::StepStarted {
            node: node(),
            step: Step::Drain,
        });
        p.apply(&UpgradeEvent::Waiting {
            node: node(),
            what: "eviction-blocked".into(),
            detail: "pod x blocked by PodDisruptionBudget y".into(),
        });
        assert_eq!(p.current().map(|n| n.state), Some(NodeState::Waiting));
        for i in 0..(OUTPUT_LINES + 10) {
            p.apply(&UpgradeEvent::Output {
                node: node(),
                line: format!("l{i}"),
            });
        }
        assert_eq!(p.nodes[0].output.len(), OUTPUT_LINES);
        assert_eq!(p.nodes[0].output.front().map(String::as_str), Some("l10"));
        p.apply(&UpgradeEvent::StepFinished {
            node: node(),
            step: Step::Drain,
            outcome: StepOutcome::ok(),
            duration_ms: 1500,
        });
        p.apply(&UpgradeEvent::NodeDone {
            node: node(),
            outcome: NodeOutcome::Upgraded,
        });
        assert_eq!(p.counts(), (1, 2));
        assert_eq!(p.nodes[0].steps[0].duration_ms, Some(1500));
        assert_eq!(p.nodes[0].steps[0].state, StepState::Ok { detail: None });
        p.apply(&UpgradeEvent::RunFinished {
            outcome: RunOutcome::Completed,
        });
        assert!(p.is_finished());
    }
}
