//! Cordon and uncordon: only nodes this run cordoned are uncordoned; a node cordoned before
//! the run stays cordoned.

use crate::operations::upgrade::StepOutcome;
use crate::operations::upgrade::engine::Runner;

impl Runner {
    /// Cordon `node` for this run (already cordoned: left as it is).
    pub(in crate::operations::upgrade::engine) async fn cordon(
        &mut self,
        node: &str,
    ) -> StepOutcome {
        let run_id = self.plan.run_id.clone();
        match self.w.read.cluster.node(node).await {
            Err(e) => StepOutcome::Failed {
                message: format!("cannot read node {node}: {e:#}"),
            },
            Ok(st) if st.cordoned_by.as_deref() == Some(run_id.as_str()) => {
                StepOutcome::ok_with("already cordoned by this run")
            }
            Ok(st) if st.unschedulable => StepOutcome::ok_with(
                "already cordoned (not by this run): it will stay cordoned afterwards",
            ),
            Ok(_) => match self.w.write.cluster.cordon(node, &run_id).await {
                Ok(()) => StepOutcome::ok(),
                Err(e) => StepOutcome::Failed {
                    message: format!("cannot cordon {node}: {e:#}"),
                },
            },
        }
    }

    /// Uncordon `node` if this run cordoned it.
    pub(in crate::operations::upgrade::engine) async fn uncordon(
        &mut self,
        node: &str,
    ) -> StepOutcome {
        match self.w.read.cluster.node(node).await {
            Err(e) => StepOutcome::Failed {
                message: format!("cannot read node {node}: {e:#}"),
            },
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                match self.w.write.cluster.uncordon(node).await {
                    Ok(()) => StepOutcome::ok(),
                    Err(e) => StepOutcome::Failed {
                        message: format!("cannot uncordon {node}: {e:#}"),
                    },
                }
            }
            Ok(st) if st.unschedulable => StepOutcome::Skipped {
                reason: "cordoned before this run: left cordoned".into(),
            },
            Ok(_) => StepOutcome::Skipped {
                reason: "not cordoned".into(),
            },
        }
    }

    /// Undo this run's cordon when nothing on the node changed yet (an abort, a skip).
    pub(in crate::operations::upgrade::engine) async fn undo_cordon(&mut self, node: &str) {
        match self.w.read.cluster.node(node).await {
            Ok(st) if st.cordoned_by.as_deref() == Some(self.plan.run_id.as_str()) => {
                let msg = match self.w.write.cluster.uncordon(node).await {
                    Ok(()) => format!("uncordoned {node} (nothing on it had changed)"),
                    Err(e) => format!("could not uncordon {node}: {e:#}"),
                };
                self.notice(Some(node.to_string()), msg).await;
            }
            Ok(_) => {}
            Err(e) => {
                self.notice(Some(node.to_string()), format!("cannot read {node}: {e:#}"))
                    .await
            }
        }
        self.end_silences(node).await;
    }
}
