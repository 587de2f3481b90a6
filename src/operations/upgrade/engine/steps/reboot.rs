//! The reboot step: only when the boot files changed, as `[upgrade] reboot` says (never, ask,
//! auto); then wait for the host to come back with the new boot.

use crate::config::RebootPolicy;
use crate::inventory::Host;
use crate::operations::upgrade::engine::{Runner, elapsed, secs};
use crate::operations::upgrade::{Control, StepOutcome, UpgradeEvent};

impl Runner {
    /// Reboot `host` if its boot files changed and the policy allows.
    pub(in crate::operations::upgrade::engine) async fn reboot(
        &mut self,
        node: &str,
        host: &Host,
    ) -> StepOutcome {
        let bs = match self.w.hosts.boot_state(host).await {
            Ok(b) => b,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!("cannot read the boot state of {}: {e:#}", host.id),
                };
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
                        node,
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
        let before = bs.booted_system.clone();
        let cmd = self.s.reboot_command.clone();
        if let Err(e) = self.w.hosts.reboot(host, &cmd).await {
            return StepOutcome::Failed {
                message: format!("`{cmd}` failed: {e:#}"),
            };
        }
        let start = self.w.clock.now();
        let deadline = self.s.reboot_timeout;
        let mut went_down = false;
        loop {
            let up = self.w.hosts.reachable(host).await;
            if !up {
                if !went_down {
                    went_down = true;
                    self.emit(UpgradeEvent::Waiting {
                        node: node.to_string(),
                        what: "host-down".into(),
                        detail: format!("{} is rebooting (SSH down); waiting for it", host.id),
                    })
                    .await;
                }
            } else if let Ok(now) = self.w.hosts.boot_state(host).await
                && now.booted_system.is_some()
                && now.booted_system != before
            {
                return StepOutcome::ok_with(format!(
                    "booted {}",
                    now.booted_system.unwrap_or_default()
                ));
            } else if went_down {
                return StepOutcome::Failed {
                    message: format!(
                        "{} came back but still runs the old boot ({})",
                        host.id,
                        before.unwrap_or_default()
                    ),
                };
            }
            if elapsed(start, self.w.clock.now()) >= deadline {
                return StepOutcome::Failed {
                    message: format!(
                        "{} did not come back with a new boot within {}s",
                        host.id,
                        secs(deadline)
                    ),
                };
            }
            self.w.clock.sleep(self.s.poll).await;
        }
    }
}
