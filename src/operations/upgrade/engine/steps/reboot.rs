//! The reboot step: only when the boot files changed, as `[upgrade] reboot` says (never, ask,
//! auto), and only after the lock and every guard are confirmed again on fresh reads. Before
//! the command goes out the boot ids are journaled (the host's over SSH, the node's
//! `status.nodeInfo.bootID`); the step ends when the host answers with a new boot id. A host
//! that is still unreachable when the reboot timeout runs out is still rebooting: the step
//! stops the node there (cordoned, resumable) and nothing is rolled back over a connection
//! that cannot open. A resumed run that finds the reboot in its journal waits for that boot
//! instead of deciding again (and asks again only when the host still runs the old boot).

use crate::config::RebootPolicy;
use crate::inventory::Host;
use crate::operations::upgrade::engine::{Hold, Runner, elapsed, secs};
use crate::operations::upgrade::{
    Control, PlanEntry, RebootRecord, Step, StepOutcome, UpgradeEvent,
};

impl Runner {
    /// Reboot `host` if its boot files changed and the policy allows (`recheck`: confirm the
    /// lock and the guards first; a rollback's reboot does not).
    pub(in crate::operations::upgrade::engine) async fn reboot(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
        recheck: bool,
    ) -> StepOutcome {
        let node = entry.node.clone();
        // Asked for before (a resumed run's journal, or a retry): wait for that boot.
        if let Some(before) = self.reboots.get(&node).cloned() {
            let o = self.await_new_boot(&node, host, &before, true).await;
            return self.after_boot(&node, host, o).await;
        }
        let bs = match self.w.read.hosts.boot_state(host).await {
            Ok(b) => b,
            Err(e) => {
                return self
                    .unreachable_or_failed(
                        host,
                        format!("cannot read the boot state of {}: {e:#}", host.id),
                    )
                    .await;
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
                        &node,
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
        if recheck && let Some(stop) = self.before_destructive(entry, host, Step::Reboot).await {
            return stop;
        }
        // The new generation boots once, the previous one staying the default (not for a
        // rollback's reboot: that one boots the default it just made).
        let boot_once = if recheck {
            match self.prepare_boot_once(entry, host, &bs).await {
                Ok(r) => r,
                Err(stop) => return stop,
            }
        } else {
            None
        };
        // The boots as they are now, journaled before the reboot is asked for.
        let host_boot_id = match self.w.read.hosts.boot_id(host).await {
            Ok(b) => b,
            Err(e) => {
                return self
                    .unreachable_or_failed(
                        host,
                        format!(
                            "cannot read the boot id of {} before rebooting it: {e:#}",
                            host.id
                        ),
                    )
                    .await;
            }
        };
        let node_boot_id = self
            .w
            .read
            .cluster
            .node(&node)
            .await
            .map(|s| s.boot_id)
            .unwrap_or_default();
        let before = RebootRecord {
            host_boot_id,
            node_boot_id,
            at: self.w.read.clock.now(),
        };
        self.reboots.insert(node.clone(), before.clone());
        self.emit(UpgradeEvent::RebootIssued {
            node: node.clone(),
            before: before.clone(),
        })
        .await;
        let cmd = self.s.reboot_command.clone();
        if let Err(e) = self.w.write.hosts.reboot(host, &cmd).await {
            return StepOutcome::Failed {
                message: format!("`{cmd}` failed: {e:#}"),
            };
        }
        let o = self.await_new_boot(&node, host, &before, false).await;
        let o = self.after_boot(&node, host, o).await;
        match (o, boot_once) {
            (StepOutcome::Ok { detail }, Some(r)) => StepOutcome::ok_with(format!(
                "{} (once: {}; the previous generation stays the default)",
                detail.unwrap_or_default(),
                r.entry
            )),
            (o, _) => o,
        }
    }

    /// A new boot seen: when it was to boot the new generation once, the host must not be
    /// back on the previous one.
    async fn after_boot(&mut self, node: &str, host: &Host, o: StepOutcome) -> StepOutcome {
        if !matches!(o, StepOutcome::Ok { .. }) {
            return o;
        }
        match self.check_boot_once(node, host).await {
            Some(stop) => stop,
            None => o,
        }
    }

    /// A failure before the reboot went out: when the host cannot be reached, the node stops
    /// there (no rollback over a connection that cannot open).
    async fn unreachable_or_failed(&mut self, host: &Host, message: String) -> StepOutcome {
        if !self.w.read.hosts.reachable(host).await {
            self.hold = Some(Hold::HostDown);
            let run = self.plan.run_id.clone();
            return StepOutcome::Failed {
                message: format!(
                    "{message}; {} cannot be reached: not rebooting it and not rolling it back — \
                     resume with `homeinfra-tui upgrade --resume {run}` once it answers",
                    host.id
                ),
            };
        }
        StepOutcome::Failed { message }
    }

    /// Wait until `host` answers with a boot id other than `before`'s. `resumed`: the reboot
    /// was asked for by an earlier process (or attempt) — if the host still runs the old boot
    /// and never went down, it is asked again, once.
    async fn await_new_boot(
        &mut self,
        node: &str,
        host: &Host,
        before: &RebootRecord,
        resumed: bool,
    ) -> StepOutcome {
        let start = self.w.read.clock.now();
        let deadline = self.s.reboot_timeout;
        let run = self.plan.run_id.clone();
        let mut went_down = false;
        let mut asked_again = !resumed;
        loop {
            let up = self.w.read.hosts.reachable(host).await;
            if up {
                match self.w.read.hosts.boot_id(host).await {
                    Ok(id) if id != before.host_boot_id => {
                        let booted = self
                            .w
                            .read
                            .hosts
                            .boot_state(host)
                            .await
                            .ok()
                            .and_then(|b| b.booted_system)
                            .map(|s| format!(" into {s}"))
                            .unwrap_or_default();
                        return StepOutcome::ok_with(format!(
                            "booted{booted} (boot id {} → {id})",
                            before.host_boot_id
                        ));
                    }
                    Ok(_) if went_down => {
                        return StepOutcome::Failed {
                            message: format!(
                                "{} came back but still runs the boot from before the reboot (boot id {})",
                                host.id, before.host_boot_id
                            ),
                        };
                    }
                    Ok(_) if !asked_again => {
                        asked_again = true;
                        self.notice(
                            Some(node.to_string()),
                            format!(
                                "resuming: {} still runs the boot from before the reboot was asked for: asking again",
                                host.id
                            ),
                        )
                        .await;
                        let cmd = self.s.reboot_command.clone();
                        if let Err(e) = self.w.write.hosts.reboot(host, &cmd).await {
                            return StepOutcome::Failed {
                                message: format!("`{cmd}` failed: {e:#}"),
                            };
                        }
                    }
                    // Not down yet, or the probe failed while it goes down.
                    Ok(_) | Err(_) => {}
                }
            } else if !went_down {
                went_down = true;
                self.emit(UpgradeEvent::Waiting {
                    node: node.to_string(),
                    what: "host-down".into(),
                    detail: format!(
                        "{} is rebooting (SSH down); waiting up to {}s for a new boot",
                        host.id,
                        secs(deadline)
                    ),
                })
                .await;
            }
            if elapsed(start, self.w.read.clock.now()) >= deadline {
                if !up {
                    self.hold = Some(Hold::HostDown);
                    return StepOutcome::Failed {
                        message: format!(
                            "{} is still rebooting: unreachable {}s after the reboot was asked for (reboot_timeout_secs). \
                             It has not failed, and nothing is rolled back over a connection that cannot open; \
                             {node} stays cordoned — resume with `homeinfra-tui upgrade --resume {run}` once it is up",
                            host.id,
                            secs(deadline)
                        ),
                    };
                }
                return StepOutcome::Failed {
                    message: format!(
                        "{} did not reboot within {}s: it still runs boot id {}",
                        host.id,
                        secs(deadline),
                        before.host_boot_id
                    ),
                };
            }
            self.w.read.clock.sleep(self.s.poll).await;
        }
    }
}
