//! The hold step of a drain run: the node stays drained and cordoned, in maintenance, until
//! the operator ends it. The run keeps its lock and its silences alive all the while (the
//! runner's keepers), so an engine that dies lets both lapse — the node stays cordoned.

use crate::operations::upgrade::engine::Runner;
use crate::operations::upgrade::{Control, StepOutcome, UpgradeEvent};

/// What a maintenance's wait says: who drained the node, since when, how to end it.
pub fn maintenance_detail(node: &str, by: &str, since: jiff::Timestamp) -> String {
    format!(
        "{node} in maintenance (drained by {by}, since {}): `c` on it in the dashboard or `homeinfra-tui uncordon {node}` ends it",
        since.strftime("%Y-%m-%d %H:%M:%S UTC")
    )
}

impl Runner {
    /// Hold `node` in maintenance until [`Control::EndMaintenance`] (or Abort), or until it
    /// was uncordoned by someone else.
    pub(in crate::operations::upgrade::engine) async fn hold(&mut self, node: &str) -> StepOutcome {
        let by = self
            .opts
            .holder
            .split(' ')
            .next()
            .unwrap_or("unknown")
            .to_string();
        let since = self.w.read.clock.now();
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: "maintenance".into(),
            detail: maintenance_detail(node, &by, since),
        })
        .await;
        loop {
            if let Some(reason) = self.abort.clone() {
                return StepOutcome::ok_with(format!("maintenance ended: {reason}"));
            }
            tokio::select! {
                c = self.ctl.recv() => match c {
                    Some(Control::EndMaintenance) => {
                        return StepOutcome::ok_with("maintenance ended by the operator");
                    }
                    Some(Control::Abort) => {
                        return StepOutcome::ok_with("maintenance ended by the operator (abort)");
                    }
                    Some(other) => {
                        self.notice(
                            Some(node.to_string()),
                            format!("{other:?} does nothing during a maintenance (end it: uncordon)"),
                        )
                        .await;
                    }
                    // Nobody can end it any more: the node stays cordoned, the lock lapses.
                    None => std::future::pending::<()>().await,
                },
                () = self.w.read.clock.sleep(self.s.poll) => {
                    if let Some(l) = self.lock_lost() {
                        return StepOutcome::Failed {
                            message: format!("the maintenance lost its lock: {l}"),
                        };
                    }
                    let run_id = self.plan.run_id.clone();
                    if let Ok(st) = self.w.read.cluster.node(node).await
                        && st.cordoned_by.as_deref() != Some(run_id.as_str())
                    {
                        self.notice(
                            Some(node.to_string()),
                            format!("{node} is no longer cordoned by this run (uncordoned elsewhere): the maintenance ends"),
                        )
                        .await;
                        return StepOutcome::ok_with("uncordoned elsewhere");
                    }
                }
            }
        }
    }
}
