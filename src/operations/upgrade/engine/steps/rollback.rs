//! The rollback step (after a failed reboot or health wait): the previous generation, a
//! reboot into it when the run rebooted, a health wait; the run always stops after it.

use crate::config::RebootPolicy;
use crate::inventory::Host;
use crate::operations::upgrade::engine::Runner;
use crate::operations::upgrade::{PlanEntry, StepOutcome, UpgradeEvent};

impl Runner {
    /// Roll `host` back to the previous generation (`rebooted`: reboot into it too).
    pub(in crate::operations::upgrade::engine) async fn rollback(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
        rebooted: bool,
    ) -> StepOutcome {
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
            match self.reboot(&entry.node, host).await {
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
