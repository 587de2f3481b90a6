//! The guards step: every guard's verdict for a node against the cluster right now (the dry
//! run asks the same, for every node at once).

use crate::inventory::Host;
use crate::operations::upgrade::engine::Runner;
use crate::operations::upgrade::guards::{self, GuardInputs, GuardVerdict};
use crate::operations::upgrade::world::{HealthInputs, World};
use crate::operations::upgrade::{PlanEntry, Settings};

impl Runner {
    /// The guards' verdicts for `entry` on `host`.
    pub(in crate::operations::upgrade::engine) async fn guards(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> Vec<GuardVerdict> {
        let health = self.w.health.gather(&self.s.gates).await;
        verdicts(&self.w, entry, host, &self.plan.run_id, &health, &self.s).await
    }
}

/// Every guard's verdict for `entry` on `host` of run `run_id`, given the `health` gathered
/// with the gates of `s` (and the host's auto-upgrade state, asked here).
pub(in crate::operations::upgrade::engine) async fn verdicts(
    w: &World,
    entry: &PlanEntry,
    host: &Host,
    run_id: &str,
    health: &HealthInputs,
    s: &Settings,
) -> Vec<GuardVerdict> {
    let au = w
        .hosts
        .auto_upgrade(host)
        .await
        .map_err(|e| format!("{e:#}"));
    guards::evaluate(&GuardInputs {
        entry,
        host,
        run_id,
        health,
        auto_upgrade: &au,
        settings: s,
        now: w.clock.now(),
    })
}
