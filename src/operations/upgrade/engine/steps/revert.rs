//! The switch that reverts itself: the arm-revert step (before the switch) and the confirm
//! step (after it).
//!
//! Arm-revert reads the system the host runs now (`/run/current-system`), journals it with the
//! timer's unit (fsynced, before the command goes out), then arms a transient systemd timer on
//! the host: unless it is disarmed within `[upgrade] confirm_timeout_secs`, the host sets its
//! system profile back to that system and re-activates it by itself. Confirm proves the new
//! system with a NEW SSH login (sshd and the network work) and the node Ready, then disarms
//! the timer. When that cannot be done in time, or the switch failed, the host's own revert is
//! awaited and reported ("node3 rolled itself back: …"), and the node stops cordoned.

use std::time::Duration;

use crate::inventory::Host;
use crate::operations::upgrade::engine::{Hold, Runner, elapsed};
use crate::operations::upgrade::world::{CommandSpec, RevertTimer};
use crate::operations::upgrade::{PlanEntry, RevertRecord, StepOutcome, UpgradeEvent};
use crate::probes::revert::{ArmRevert, Disarm, is_store_path, unit_name};

/// How long the arm and disarm commands may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// When the timer of `rec` fires.
fn fires_at(rec: &RevertRecord) -> jiff::Timestamp {
    let secs = i64::try_from(rec.secs).unwrap_or(i64::MAX);
    rec.at
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(rec.at)
}

impl Runner {
    /// Arm the host's revert timer (journaled first, with the system it goes back to).
    pub(in crate::operations::upgrade::engine) async fn arm_revert(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        let node = entry.node.clone();
        // A switch that cannot be built for this host (an inventory value a shell would read)
        // is refused by the switch step: nothing is armed for it.
        if self.switch_command(host).is_err() {
            return StepOutcome::Skipped {
                reason: "the switch command cannot be built for this host (the switch step says why): nothing armed".into(),
            };
        }
        let Some(unit) = unit_name(&self.plan.run_id) else {
            return StepOutcome::Failed {
                message: format!(
                    "the run id `{}` cannot name a revert timer",
                    self.plan.run_id
                ),
            };
        };
        // Armed before (a retry, or an interrupted run): disarm that one first.
        if let Some(old) = self.reverts.get(&node).cloned() {
            match self.w.read.hosts.revert_timer(host, &old.unit).await {
                Ok(RevertTimer::Armed) => {
                    if let Err(message) = self.disarm(&node, host, &old.unit).await {
                        return StepOutcome::Failed { message };
                    }
                }
                Ok(RevertTimer::Gone) => {}
                Ok(state) => {
                    return StepOutcome::Failed {
                        message: format!(
                            "the revert timer {}.timer armed before on {} has fired ({state:?}): \
                             not switching while it reverts the host",
                            old.unit, host.id
                        ),
                    };
                }
                Err(e) => {
                    return StepOutcome::Failed {
                        message: format!(
                            "cannot read the revert timer armed before on {}: {e:#}",
                            host.id
                        ),
                    };
                }
            }
            self.reverts.remove(&node);
        }
        let previous = match self.w.read.hosts.boot_state(host).await {
            Ok(bs) => bs.current_system,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!(
                        "cannot read the system {} runs now: {e:#} — not switching without a way back",
                        host.id
                    ),
                };
            }
        };
        let Some(previous) = previous.filter(|p| is_store_path(p)) else {
            return StepOutcome::Failed {
                message: format!(
                    "{} shows no current system (readlink -f /run/current-system) as a store path — \
                     not switching without a way back",
                    host.id
                ),
            };
        };
        let rec = RevertRecord {
            unit: unit.clone(),
            previous: previous.clone(),
            secs: self.s.confirm_timeout.as_secs().max(1),
            at: self.w.read.clock.now(),
        };
        let arm = ArmRevert {
            unit: unit.clone(),
            previous: previous.clone(),
            secs: rec.secs,
        };
        let cmd = match arm.command() {
            Ok(c) => c,
            Err(message) => return StepOutcome::Failed { message },
        };
        // Journaled (fsynced) before the command goes out.
        self.emit(UpgradeEvent::RevertArmed {
            node: node.clone(),
            revert: rec.clone(),
        })
        .await;
        self.reverts.insert(node.clone(), rec.clone());
        self.emit(UpgradeEvent::Output {
            node: node.clone(),
            line: format!("$ {cmd}"),
        })
        .await;
        let cmd = CommandSpec::Remote(cmd);
        let failed = match self.exec_streamed(&node, host, &cmd, COMMAND_TIMEOUT).await {
            Ok(Some(0)) => None,
            Ok(Some(code)) => Some(format!("exited with status {code}")),
            Ok(None) => Some("was killed by a signal".to_string()),
            Err(e) => Some(format!("failed: {e:#}")),
        };
        match failed {
            None => StepOutcome::ok_with(format!(
                "{unit}.timer re-activates {previous} unless the new system is confirmed within {} s",
                rec.secs
            )),
            Some(how) => {
                // A timer that may have been armed all the same only re-activates what runs now.
                StepOutcome::Failed {
                    message: format!(
                        "cannot arm the revert timer on {}: `systemd-run` {how} — not switching without a way back",
                        host.id
                    ),
                }
            }
        }
    }

    /// Confirm the new system (a new SSH login, the node Ready) and disarm the timer; else wait
    /// for the host to revert by itself and report it.
    pub(in crate::operations::upgrade::engine) async fn confirm(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        let node = entry.node.clone();
        let Some(rec) = self.reverts.get(&node).cloned() else {
            return StepOutcome::Skipped {
                reason: "no revert timer was armed for this switch".into(),
            };
        };
        if let Some(why) = self.switch_failed.take() {
            return self.await_self_revert(&node, host, &rec, why).await;
        }
        let deadline = fires_at(&rec);
        // Stop trying a little before the timer fires: a disarm racing the revert helps no one.
        let margin = Duration::from_secs((rec.secs / 4).clamp(1, 5));
        let mut last = "sshd unreachable after activation".to_string();
        loop {
            let now = self.w.read.clock.now();
            let left = elapsed(now, deadline);
            if left <= margin {
                break;
            }
            if !self.w.read.hosts.fresh_login(host).await {
                last = "sshd unreachable after activation".into();
            } else {
                match self.w.read.cluster.node(&node).await {
                    Ok(s) if s.ready == Some(true) => {
                        match self.w.read.hosts.revert_timer(host, &rec.unit).await {
                            Ok(RevertTimer::Armed) => {
                                match self.disarm(&node, host, &rec.unit).await {
                                    Ok(()) => {
                                        self.reverts.remove(&node);
                                        return StepOutcome::ok_with(format!(
                                            "new system confirmed (a new SSH login, {node} Ready); {}.timer disarmed",
                                            rec.unit
                                        ));
                                    }
                                    Err(m) => last = m,
                                }
                            }
                            Ok(RevertTimer::Gone) => {
                                // Disarmed before this run was interrupted, or fired already.
                                match self.w.read.hosts.boot_state(host).await {
                                    Ok(bs)
                                        if bs.current_system.as_deref()
                                            != Some(rec.previous.as_str()) =>
                                    {
                                        self.reverts.remove(&node);
                                        return StepOutcome::ok_with(format!(
                                            "new system confirmed (a new SSH login, {node} Ready); {}.timer was no longer armed",
                                            rec.unit
                                        ));
                                    }
                                    Ok(_) => {
                                        last = "the revert timer fired before the new system could be confirmed".into();
                                        break;
                                    }
                                    Err(e) => {
                                        last = format!("cannot read the current system: {e:#}")
                                    }
                                }
                            }
                            Ok(_) => {
                                last = "the revert timer fired before the new system could be confirmed".into();
                                break;
                            }
                            Err(e) => last = format!("cannot read the revert timer: {e:#}"),
                        }
                    }
                    Ok(s) => {
                        let state = match s.ready {
                            Some(false) => "NotReady",
                            _ => "Unknown",
                        };
                        last = format!("{node} {state} after activation");
                    }
                    Err(e) => last = format!("cannot read {node}: {e:#}"),
                }
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.clone(),
                what: "confirm".into(),
                detail: format!(
                    "confirming the new system of {} before its revert timer fires in {} s: {last}",
                    host.id,
                    left.as_secs()
                ),
            })
            .await;
            self.w
                .read
                .clock
                .sleep(self.s.poll.min(left - margin))
                .await;
        }
        self.await_self_revert(&node, host, &rec, last).await
    }

    /// Disarm `unit` on `host` and check it is gone.
    pub(in crate::operations::upgrade::engine) async fn disarm_unit(
        &mut self,
        node: &str,
        host: &Host,
        unit: &str,
    ) -> Result<(), String> {
        self.disarm(node, host, unit).await
    }

    async fn disarm(&mut self, node: &str, host: &Host, unit: &str) -> Result<(), String> {
        let cmd = Disarm {
            unit: unit.to_string(),
        }
        .command();
        self.emit(UpgradeEvent::Output {
            node: node.to_string(),
            line: format!("$ {cmd}"),
        })
        .await;
        let cmd = CommandSpec::Remote(cmd);
        let ran = self.exec_streamed(node, host, &cmd, COMMAND_TIMEOUT).await;
        match self.w.read.hosts.revert_timer(host, unit).await {
            Ok(RevertTimer::Gone) => Ok(()),
            Ok(state) => Err(format!(
                "{unit}.timer is still {state:?} after `{}` ({})",
                cmd.text(),
                match ran {
                    Ok(Some(c)) => format!("exit status {c}"),
                    Ok(None) => "killed by a signal".into(),
                    Err(e) => format!("{e:#}"),
                }
            )),
            Err(e) => Err(format!(
                "cannot read {unit}.timer after disarming it: {e:#}"
            )),
        }
    }

    /// The new system was not confirmed (`cause`): wait for the host to come back on its
    /// previous system by its own timer, and report what it runs. The node stays cordoned.
    async fn await_self_revert(
        &mut self,
        node: &str,
        host: &Host,
        rec: &RevertRecord,
        cause: String,
    ) -> StepOutcome {
        let deadline = fires_at(rec);
        let give_up = deadline
            .checked_add(jiff::SignedDuration::try_from(self.s.reboot_timeout).unwrap_or_default())
            .unwrap_or(deadline);
        self.hold = Some(Hold::Reverted);
        let abandon = format!(
            "{node} stays cordoned: investigate, then `homeinfra-tui upgrade --abandon {}` to uncordon it",
            self.plan.run_id
        );
        let mut last = "not reachable yet".to_string();
        loop {
            let now = self.w.read.clock.now();
            if now >= deadline {
                if self.w.read.hosts.fresh_login(host).await {
                    match self.w.read.hosts.revert_timer(host, &rec.unit).await {
                        Ok(RevertTimer::Fired | RevertTimer::Gone) => {
                            match self.w.read.hosts.boot_state(host).await {
                                Ok(bs) if bs.current_system.as_deref() == Some(&rec.previous) => {
                                    self.reverts.remove(node);
                                    return StepOutcome::Failed {
                                        message: format!(
                                            "{node} rolled itself back: the new system was not confirmed within {} s — {cause}; \
                                             {} runs its previous system {} again. {abandon}",
                                            rec.secs, host.id, rec.previous
                                        ),
                                    };
                                }
                                Ok(bs) => {
                                    self.reverts.remove(node);
                                    return StepOutcome::Failed {
                                        message: format!(
                                            "{node} was not confirmed within {} s ({cause}) and its revert timer is done, \
                                             but {} runs {}, not its previous system {}. {abandon}",
                                            rec.secs,
                                            host.id,
                                            bs.current_system
                                                .as_deref()
                                                .unwrap_or("an unknown system"),
                                            rec.previous
                                        ),
                                    };
                                }
                                Err(e) => last = format!("cannot read its current system: {e:#}"),
                            }
                        }
                        Ok(RevertTimer::Reverting) => last = "its revert runs".into(),
                        Ok(RevertTimer::Armed) => {
                            last = "its revert timer has not fired yet".into()
                        }
                        Err(e) => last = format!("cannot read its revert timer: {e:#}"),
                    }
                } else {
                    last = "not reachable yet".into();
                }
                if now >= give_up {
                    return StepOutcome::Failed {
                        message: format!(
                            "{node} was not confirmed within {} s ({cause}) and is not seen back on its previous \
                             system {} within {} s of its revert timer ({last}). {abandon}",
                            rec.secs,
                            rec.previous,
                            self.s.reboot_timeout.as_secs()
                        ),
                    };
                }
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.to_string(),
                what: "self-revert".into(),
                detail: format!(
                    "not confirmed ({cause}): waiting for {} to revert itself to {} ({last})",
                    host.id, rec.previous
                ),
            })
            .await;
            let wait = if now < deadline {
                self.s
                    .poll
                    .min(elapsed(now, deadline).max(Duration::from_millis(1)))
            } else {
                self.s.poll
            };
            self.w.read.clock.sleep(wait).await;
        }
    }
}
