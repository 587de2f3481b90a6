//! One node's run through its steps: abort points, failures (rollback after a failed reboot
//! or health wait, the operator's retry/skip/abort), and resuming an interrupted node from its
//! real state.

use super::{Hold, NodeResult, Runner, elapsed, refused};
use crate::operations::upgrade::guards::GuardVerdict;
use crate::operations::upgrade::{
    Control, NodeOutcome, PlanEntry, RunKind, RunOutcome, Step, StepOutcome, UpgradeEvent,
};

impl Runner {
    /// Run the `idx`-th node of the plan from `from`.
    pub(super) async fn run_node(&mut self, idx: usize, from: Step, resuming: bool) -> NodeResult {
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
                    Step::Drain | Step::ArmRevert => {
                        // Nothing changed on the host yet: undo our cordon.
                        self.undo_cordon(&node).await;
                        return NodeResult::Stop(RunOutcome::Aborted { reason });
                    }
                    Step::Switch => {
                        // Armed, not switched: disarm the revert, then undo our cordon.
                        if let Some(message) = self.drop_revert(&node, &host).await {
                            return NodeResult::Stop(RunOutcome::Failed {
                                node: node.clone(),
                                step,
                                message: format!("aborting: {message} — {node} stays cordoned"),
                            });
                        }
                        self.undo_cordon(&node).await;
                        return NodeResult::Stop(RunOutcome::Aborted { reason });
                    }
                    _ => {} // finish the node first
                }
            }
            // Silenced before the cordon, for as long as the node is in progress.
            if (Step::Cordon..=Step::Uncordon).contains(&step) {
                self.ensure_silences(&node, &host, self.plan.kind.as_str())
                    .await;
            }
            let started = self.w.read.clock.now();
            self.emit(UpgradeEvent::StepStarted {
                node: node.clone(),
                step,
            })
            .await;
            let mut refusal: Option<GuardVerdict> = None;
            self.hold = None;
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
                // Right before each destructive step: the lock and every guard, again.
                Step::Drain => match self.before_destructive(&entry, &host, step).await {
                    Some(stop) => stop,
                    None => self.drain(&node).await,
                },
                // The re-check right before the switch comes before its revert is armed.
                Step::ArmRevert => match self.before_destructive(&entry, &host, Step::Switch).await
                {
                    Some(stop) => stop,
                    None => self.arm_revert(&entry, &host).await,
                },
                Step::Switch => self.switch(&entry, &host).await,
                Step::Confirm => self.confirm(&entry, &host).await,
                // (It re-checks once it knows a reboot will be asked for.)
                Step::Reboot => self.reboot(&entry, &host, true).await,
                Step::WaitHealthy => self.wait_healthy(&entry, &host).await,
                Step::MakeDefault => self.make_default(&entry, &host).await,
                Step::Rollback => self.rollback(&entry, &host).await,
                Step::Hold => self.hold(&node).await,
                Step::Uncordon => self.uncordon(&node).await,
                Step::Settle => self.settle(&node).await,
            };
            let duration_ms = elapsed(started, self.w.read.clock.now()).as_millis() as u64;
            self.emit(UpgradeEvent::StepFinished {
                node: node.clone(),
                step,
                outcome: outcome.clone(),
                duration_ms,
            })
            .await;
            let StepOutcome::Failed { message } = outcome else {
                if step == Step::Uncordon {
                    self.end_silences(&node).await;
                }
                match step.next_in(self.plan.kind) {
                    Some(n) => {
                        step = n;
                        continue;
                    }
                    None if self.plan.kind == RunKind::Drain => {
                        return NodeResult::Done(NodeOutcome::Maintained);
                    }
                    None => return NodeResult::Done(NodeOutcome::Upgraded),
                }
            };
            // A failure. A hold stops the node as it is (no rollback).
            let mut hold = self.hold.take();
            let mut message = message;
            match step {
                _ if hold.is_some() => {}
                // A switch that failed with the revert armed: when nothing was activated (the
                // host answers on its previous system) the timer is disarmed and the step
                // fails as before (a retry arms again); otherwise the host reverts by itself
                // and the confirm step awaits it and reports.
                Step::Switch if self.reverts.contains_key(&node) => {
                    if self.nothing_activated(&node, &host).await
                        && self.drop_revert(&node, &host).await.is_none()
                    {
                        message = format!(
                            "{message} (nothing was activated: {} still runs its previous system; its revert timer is disarmed)",
                            host.id
                        );
                    } else {
                        self.notice(
                            Some(node.clone()),
                            format!(
                                "switch failed: {message}; the host's revert timer takes it back to its previous system"
                            ),
                        )
                        .await;
                        self.switch_failed = Some(format!("the switch failed: {message}"));
                        step = Step::Confirm;
                        continue;
                    }
                }
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
                    if self.w.read.hosts.reachable(&host).await {
                        self.notice(
                            Some(node.clone()),
                            format!("{step} failed: {message}; rolling back"),
                        )
                        .await;
                        step = Step::Rollback;
                        continue;
                    }
                    // Never a rollback over a connection that cannot open.
                    hold = Some(Hold::HostDown);
                    message = format!(
                        "{message}; {} cannot be reached: not rolling back over a connection that cannot open \
                         (it may still be rebooting) — {node} stays cordoned; resume with \
                         `homeinfra-tui upgrade --resume {}` once it answers",
                        host.id, self.plan.run_id
                    );
                }
                _ => {}
            }
            if hold.is_none() && self.abort.is_some() && step == Step::Drain {
                self.undo_cordon(&node).await;
                return NodeResult::Stop(RunOutcome::Aborted {
                    reason: self.abort.clone().unwrap_or_default(),
                });
            }
            let stop = match (&hold, &refusal) {
                (Some(Hold::Refused(v)), _) | (None, Some(v)) => {
                    refused(Some(node.clone()), &v.guard, message.clone())
                }
                (Some(Hold::Lock), _) => refused(Some(node.clone()), "lock", message.clone()),
                (Some(Hold::HostDown | Hold::Reverted), _) => RunOutcome::Failed {
                    node: node.clone(),
                    step,
                    message: message.clone(),
                },
                (None, None) => RunOutcome::Failed {
                    node: node.clone(),
                    step,
                    message: if step > Step::Cordon && step < Step::Uncordon {
                        format!("{message} — {node} stays cordoned")
                    } else {
                        message.clone()
                    },
                },
            };
            if !self.opts.interactive || matches!(hold, Some(Hold::Reverted)) {
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
                    Control::Retry => {
                        // A switch runs again only with its revert armed again.
                        if step == Step::Switch {
                            step = Step::ArmRevert;
                        }
                        break;
                    }
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

    /// Resuming with a revert timer in the journal: where its node goes on. A timer armed for
    /// a switch that never started, or whose host still runs the previous system (nothing was
    /// activated), is disarmed and armed anew (arm-revert does that first). A switch that had
    /// started and activated something: while the timer is still armed the switch runs again
    /// (it is idempotent; the timer keeps counting, so a host that is not confirmed in time
    /// still goes back by itself); once it has fired, or the host does not answer, the host's
    /// own revert decides and the confirm step awaits and reports it.
    async fn resume_revert(&mut self, node: &str, step: Step) -> Step {
        if !self.reverts.contains_key(node) || !matches!(step, Step::ArmRevert | Step::Switch) {
            return step;
        }
        let switch_started = self
            .interrupted
            .as_ref()
            .is_some_and(|(n, s)| n == node && *s == Step::Switch);
        let Some(host) = self.inv.host(&entry_host(&self.plan, node)).cloned() else {
            return step;
        };
        if !switch_started || self.nothing_activated(node, &host).await {
            return Step::ArmRevert;
        }
        let Some(rec) = self.reverts.get(node).cloned() else {
            return Step::ArmRevert;
        };
        match self.w.read.hosts.revert_timer(&host, &rec.unit).await {
            Ok(crate::operations::upgrade::world::RevertTimer::Armed) => {
                self.notice(
                    Some(node.to_string()),
                    format!(
                        "the switch of {node} was interrupted with {}.timer still armed: running the switch again (the timer keeps counting)",
                        rec.unit
                    ),
                )
                .await;
                Step::Switch
            }
            _ => {
                self.switch_failed = Some("the run was interrupted during the switch".into());
                Step::Confirm
            }
        }
    }

    /// After a failed or interrupted switch: the host answers (a new login) and still runs the system its
    /// revert goes back to.
    async fn nothing_activated(&mut self, node: &str, host: &crate::inventory::Host) -> bool {
        let Some(rec) = self.reverts.get(node).cloned() else {
            return false;
        };
        if !self.w.read.hosts.fresh_login(host).await {
            return false;
        }
        matches!(
            self.w.read.hosts.boot_state(host).await,
            Ok(bs) if bs.current_system.as_deref() == Some(rec.previous.as_str())
        )
    }

    /// Disarm this run's revert timer on `host` (aborting between arm and switch); `Some`:
    /// why it could not be.
    async fn drop_revert(&mut self, node: &str, host: &crate::inventory::Host) -> Option<String> {
        let rec = self.reverts.get(node).cloned()?;
        match self.w.read.hosts.revert_timer(host, &rec.unit).await {
            Ok(crate::operations::upgrade::world::RevertTimer::Gone) => {
                self.reverts.remove(node);
                None
            }
            _ => match self.disarm_unit(node, host, &rec.unit).await {
                Ok(()) => {
                    self.reverts.remove(node);
                    None
                }
                Err(m) => Some(m),
            },
        }
    }

    /// Resuming: re-check the real state of the interrupted node.
    pub(super) async fn resume_check(&mut self, entry: &PlanEntry, step: Step) -> Step {
        let node = &entry.node;
        if step <= Step::Cordon {
            return Step::Guards;
        }
        if step == Step::Rollback {
            return step;
        }
        match self.w.read.cluster.node(node).await {
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                let step = self.resume_revert(node, step).await;
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
}

/// The inventory host id of `node` in `plan` (empty when it is not planned).
fn entry_host(plan: &crate::operations::upgrade::Plan, node: &str) -> String {
    plan.entries
        .iter()
        .find(|e| e.node == node)
        .map(|e| e.host.clone())
        .unwrap_or_default()
}
