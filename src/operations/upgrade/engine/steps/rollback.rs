//! The rollback step (after a failed reboot or health wait): the previous generation, a
//! reboot into it when the run rebooted, a health wait; the run always stops after it. A host
//! that cannot be reached is not rolled back (the command could not get there).

use crate::config::RebootPolicy;
use crate::inventory::Host;
use crate::operations::upgrade::engine::{Hold, Runner};
use crate::operations::upgrade::{PlanEntry, StepOutcome, UpgradeEvent};

impl Runner {
    /// Roll `host` back to the previous generation (and reboot into it when the run rebooted
    /// it).
    pub(in crate::operations::upgrade::engine) async fn rollback(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        if !self.w.read.hosts.reachable(host).await {
            self.hold = Some(Hold::HostDown);
            return StepOutcome::Failed {
                message: format!(
                    "{} cannot be reached: not rolling back over a connection that cannot open; {} stays cordoned — \
                     resume with `homeinfra-tui upgrade --resume {}` once it answers",
                    host.id, entry.node, self.plan.run_id
                ),
            };
        }
        let rebooted = self.reboots.contains_key(&entry.node);
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
            // A new reboot, into the previous generation (not a wait for the one before).
            self.reboots.remove(&entry.node);
            // The rollback made the previous generation the default: nothing boots once.
            self.boot_once.remove(&entry.node);
            match self.reboot(entry, host, false).await {
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
}
