//! Estimated time per node, from the journals of earlier completed runs: the median duration of
//! each step (guards, cordon, drain, switch, reboot — only reboots that happened —, wait
//! healthy, where Longhorn's rebuild is waited for, uncordon, settle). A node's estimate is
//! the sum of its steps (the reboot only when it reboots); the time left in a run is the sum
//! over the nodes not done, less the steps the current node has finished.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::journal;
use super::progress::{NodeState, RunProgress};
use super::{RunOutcome, Step, StepOutcome, UpgradeEvent};

/// Median step durations from earlier runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimates {
    /// Completed runs read.
    pub runs: usize,
    /// Step → median duration (ms) of the times it ran and did something.
    pub steps: BTreeMap<Step, u64>,
}

impl Estimates {
    /// Read every completed run's journal in `dir` (a missing or unreadable directory: no
    /// estimates; a journal that does not read is left out).
    pub fn from_journals(dir: &Path) -> Estimates {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Estimates::default();
        };
        let mut samples: BTreeMap<Step, Vec<u64>> = BTreeMap::new();
        let mut runs = 0;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "jsonl") {
                continue;
            }
            let Ok(records) = journal::read(&p) else {
                continue;
            };
            let completed = records.iter().any(|r| {
                matches!(
                    &r.event,
                    UpgradeEvent::RunFinished {
                        outcome: RunOutcome::Completed
                    }
                )
            });
            if !completed {
                continue;
            }
            runs += 1;
            for r in &records {
                if let UpgradeEvent::StepFinished {
                    step,
                    outcome: StepOutcome::Ok { .. },
                    duration_ms,
                    ..
                } = &r.event
                {
                    samples.entry(*step).or_default().push(*duration_ms);
                }
            }
        }
        let steps = samples
            .into_iter()
            .map(|(s, mut v)| {
                v.sort_unstable();
                (s, v[v.len() / 2])
            })
            .collect();
        Estimates { runs, steps }
    }

    /// The steps a node goes through.
    fn steps_of(reboot: bool) -> impl Iterator<Item = Step> {
        Step::NORMAL
            .into_iter()
            .filter(move |s| reboot || !matches!(s, Step::Reboot | Step::MakeDefault))
    }

    /// A node's estimate: `None` without earlier runs, or when a step it needs was never
    /// measured (a reboot, say).
    pub fn node(&self, reboot: bool) -> Option<Duration> {
        if self.runs == 0 {
            return None;
        }
        let mut ms = 0;
        for s in Self::steps_of(reboot) {
            match self.steps.get(&s) {
                Some(d) => ms += d,
                // Steps that only wait when there is something to wait for count as nothing,
                // as do the revert timer's and make-default (journals from before them have
                // none).
                None if matches!(
                    s,
                    Step::Guards
                        | Step::Cordon
                        | Step::Uncordon
                        | Step::ArmRevert
                        | Step::Confirm
                        | Step::MakeDefault
                ) => {}
                None => return None,
            }
        }
        Some(Duration::from_millis(ms))
    }

    /// How long a node's reboot took (the median reboot step of earlier runs): how long its
    /// replicas are away. `None` when no earlier run rebooted.
    pub fn reboot_downtime(&self) -> Option<Duration> {
        self.steps
            .get(&Step::Reboot)
            .filter(|_| self.runs > 0)
            .map(|ms| Duration::from_millis(*ms))
    }

    /// Where the figures come from, for the operator.
    pub fn source(&self) -> String {
        match self.runs {
            0 => "no earlier completed run to estimate from".into(),
            1 => "from 1 earlier completed run".into(),
            n => format!("from {n} earlier completed runs (medians)"),
        }
    }

    /// Time left in a run: nodes not started count whole (their estimate, as planned: node →
    /// will it reboot), the current node its steps not yet finished. `None` when a node's
    /// estimate is unknown.
    pub fn remaining(
        &self,
        progress: &RunProgress,
        reboots: &BTreeMap<String, bool>,
    ) -> Option<Duration> {
        let mut left = Duration::ZERO;
        for n in &progress.nodes {
            let reboot = reboots.get(&n.node).copied().unwrap_or(true);
            match n.state {
                NodeState::Done | NodeState::Skipped | NodeState::Failed | NodeState::Stopped => {}
                NodeState::Pending => left += self.node(reboot)?,
                NodeState::Running | NodeState::Waiting => {
                    self.node(reboot)?;
                    for s in Self::steps_of(reboot) {
                        let finished = n
                            .steps
                            .iter()
                            .any(|r| r.step == s && r.duration_ms.is_some());
                        if !finished {
                            left += Duration::from_millis(self.steps.get(&s).copied().unwrap_or(0));
                        }
                    }
                }
            }
        }
        Some(left)
    }
}

/// `1h05m`, `12m`, `45s`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m", s.div_ceil(60))
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::upgrade::journal::Journal;
    use crate::operations::upgrade::{Plan, PlanEntry};

    fn plan() -> Plan {
        Plan {
            run_id: "r1".into(),
            flake: "f".into(),
            kind: Default::default(),
            entries: vec![PlanEntry {
                host: "h1".into(),
                node: "n1".into(),
                role: crate::inventory::Role::Agent,
                etcd_leader: false,
            }],
        }
    }

    fn write_run(dir: &Path, id: &str, switch_ms: u64, completed: bool) {
        let mut j = Journal::open(&crate::testing::writes(), dir, id).unwrap();
        let t = jiff::Timestamp::now();
        j.append(
            t,
            &UpgradeEvent::RunStarted {
                run_id: id.into(),
                plan: plan(),
                resumed_at: None,
            },
        )
        .unwrap();
        for (step, ms) in [
            (Step::Drain, 10_000),
            (Step::Switch, switch_ms),
            (Step::Reboot, 60_000),
            (Step::WaitHealthy, 30_000),
            (Step::Settle, 5_000),
        ] {
            j.append(
                t,
                &UpgradeEvent::StepFinished {
                    node: "n1".into(),
                    step,
                    outcome: StepOutcome::ok(),
                    duration_ms: ms,
                },
            )
            .unwrap();
        }
        if completed {
            j.append(
                t,
                &UpgradeEvent::RunFinished {
                    outcome: RunOutcome::Completed,
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn medians_of_completed_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Estimates::from_journals(dir.path()).node(true), None);
        write_run(dir.path(), "a", 100_000, true);
        write_run(dir.path(), "b", 120_000, true);
        write_run(dir.path(), "c", 110_000, true);
        write_run(dir.path(), "d", 999_000, false);
        let e = Estimates::from_journals(dir.path());
        assert_eq!(e.runs, 3);
        assert_eq!(e.steps[&Step::Switch], 110_000);
        assert_eq!(e.node(true), Some(Duration::from_millis(215_000)));
        assert_eq!(e.node(false), Some(Duration::from_millis(155_000)));
        assert!(e.source().contains("3 earlier"));

        let mut p = RunProgress::new(&plan());
        let reboots: BTreeMap<String, bool> = [("n1".to_string(), true)].into();
        assert_eq!(
            e.remaining(&p, &reboots),
            Some(Duration::from_millis(215_000))
        );
        p.apply(&UpgradeEvent::StepStarted {
            node: "n1".into(),
            step: Step::Drain,
        });
        p.apply(&UpgradeEvent::StepFinished {
            node: "n1".into(),
            step: Step::Drain,
            outcome: StepOutcome::ok(),
            duration_ms: 9_000,
        });
        assert_eq!(
            e.remaining(&p, &reboots),
            Some(Duration::from_millis(205_000))
        );
        assert_eq!(short(Duration::from_secs(215)), "4m");
        assert_eq!(short(Duration::from_secs(3900)), "1h05m");
        assert_eq!(short(Duration::from_secs(42)), "42s");
    }
}
