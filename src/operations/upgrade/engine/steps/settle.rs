//! The settle step: a pause after a node before the next one starts.

use crate::operations::upgrade::engine::{Runner, secs};
use crate::operations::upgrade::{StepOutcome, UpgradeEvent};

impl Runner {
    /// Wait `[upgrade] settle` before the next node.
    pub(in crate::operations::upgrade::engine) async fn settle(
        &mut self,
        node: &str,
    ) -> StepOutcome {
        if self.s.settle.is_zero() {
            return StepOutcome::ok();
        }
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: "settle".into(),
            detail: format!("settling for {}s", secs(self.s.settle)),
        })
        .await;
        self.w.read.clock.sleep(self.s.settle).await;
        StepOutcome::ok()
    }
}
