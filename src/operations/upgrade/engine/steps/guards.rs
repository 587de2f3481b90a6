//! The guards step: every guard's verdict for a node against the cluster right now.

use crate::inventory::Host;
use crate::operations::upgrade::PlanEntry;
use crate::operations::upgrade::engine::Runner;
use crate::operations::upgrade::guards::{self, GuardInputs, GuardVerdict};

impl Runner {
    /// The guards' verdicts for `entry` on `host`.
    pub(in crate::operations::upgrade::engine) async fn guards(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> Vec<GuardVerdict> {
        let health = self.w.health.gather(&self.s.gates).await;
        let au = self
            .w
            .hosts
            .auto_upgrade(host)
            .await
            .map_err(|e| format!("{e:#}"));
        guards::evaluate(&GuardInputs {
            entry,
            host,
            run_id: &self.plan.run_id,
            health: &health,
            auto_upgrade: &au,
            settings: &self.s,
            now: self.w.clock.now(),
        })
    }
}
