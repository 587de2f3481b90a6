//! The guards step: every guard's verdict for a node against the cluster right now (the dry
//! run asks the same, for every node at once), and the re-check on fresh reads right before
//! each destructive step (drain, switch, reboot), with the lock confirmed first.

use crate::inventory::Host;
use crate::operations::upgrade::engine::{Hold, Runner};
use crate::operations::upgrade::guards::{self, GuardInputs, GuardVerdict};
use crate::operations::upgrade::world::{HealthInputs, ReadWorld};
use crate::operations::upgrade::{PlanEntry, Settings, Step, StepOutcome, UpgradeEvent};

impl Runner {
    /// The guards' verdicts for `entry` on `host`.
    pub(in crate::operations::upgrade::engine) async fn guards(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> Vec<GuardVerdict> {
        let health = self.w.read.health.gather(&self.s.gates).await;
        verdicts(
            &self.w.read,
            entry,
            host,
            &self.plan.run_id,
            &health,
            &self.s,
            false,
        )
        .await
    }

    /// Right before `step` (drain, switch, reboot) of `entry`: the lock confirmed by a
    /// renewal, then every guard again on fresh reads. `Some(failure)` stops the node there
    /// (it stays cordoned; [`Runner::hold`] says why, so nothing is rolled back).
    pub(in crate::operations::upgrade::engine) async fn before_destructive(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
        step: Step,
    ) -> Option<StepOutcome> {
        let node = &entry.node;
        let run = self.plan.run_id.clone();
        if let Some(k) = self.keeper.clone()
            && let Err(why) = k.confirm().await
        {
            self.hold = Some(Hold::Lock);
            return Some(StepOutcome::Failed {
                message: format!(
                    "{why}: not starting the {step} of {node}; {node} stays cordoned — \
                     resume with `homeinfra-tui upgrade --resume {run}` once the Kubernetes API answers, \
                     or `--abandon {run}`"
                ),
            });
        }
        let health = self.w.read.health.gather(&self.s.gates).await;
        let v = verdicts(&self.w.read, entry, host, &run, &health, &self.s, true).await;
        let failed: Vec<GuardVerdict> = v.iter().filter(|v| !v.pass).cloned().collect();
        self.emit(UpgradeEvent::GuardVerdicts {
            node: node.clone(),
            verdicts: v,
        })
        .await;
        let first = failed.first()?.clone();
        self.hold = Some(Hold::Refused(first));
        Some(StepOutcome::Failed {
            message: format!(
                "right before the {step}: {}; {node} stays cordoned — resume with \
                 `homeinfra-tui upgrade --resume {run}` when it is safe, or `--abandon {run}`",
                failed
                    .iter()
                    .map(|v| v.line())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }
}

/// Every guard's verdict for `entry` on `host` of run `run_id`, given the `health` gathered
/// with the gates of `s` (and the host's auto-upgrade state, asked here). `recheck`: right
/// before a destructive step (see [`GuardInputs::recheck`]).
pub(in crate::operations::upgrade::engine) async fn verdicts(
    w: &ReadWorld,
    entry: &PlanEntry,
    host: &Host,
    run_id: &str,
    health: &HealthInputs,
    s: &Settings,
    recheck: bool,
) -> Vec<GuardVerdict> {
    let au = w
        .hosts
        .auto_upgrade(host)
        .await
        .map_err(|e| format!("{e:#}"));
    let bootloader = if s.boot_once == crate::config::BootOnce::Off {
        Ok(Default::default())
    } else {
        w.hosts.bootloader(host).await.map_err(|e| format!("{e:#}"))
    };
    guards::evaluate(&GuardInputs {
        entry,
        host,
        run_id,
        health,
        auto_upgrade: &au,
        bootloader: &bootloader,
        settings: s,
        now: w.clock.now(),
        recheck,
    })
}
