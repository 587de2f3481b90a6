//! The drain step: evict every pod but DaemonSets' and mirror pods, respecting
//! PodDisruptionBudgets (blocked evictions retried with backoff) until the node is empty or the
//! drain times out; emptyDir data is never lost without the operator's consent.

use std::collections::HashSet;
use std::time::Duration;

use crate::operations::upgrade::engine::{Runner, elapsed, secs};
use crate::operations::upgrade::world::Eviction;
use crate::operations::upgrade::{StepOutcome, UpgradeEvent};

impl Runner {
    /// Evict the pods of `node`.
    pub(in crate::operations::upgrade::engine) async fn drain(
        &mut self,
        node: &str,
    ) -> StepOutcome {
        let start = self.w.read.clock.now();
        let mut evicted: HashSet<String> = HashSet::new();
        let mut attempt: u32 = 0;
        loop {
            let pods = match self.w.read.cluster.pods_on(node).await {
                Ok(p) => p,
                Err(e) => {
                    return StepOutcome::Failed {
                        message: format!("cannot list the pods on {node}: {e:#}"),
                    };
                }
            };
            let left: Vec<_> = pods
                .into_iter()
                .filter(|p| !p.daemonset && !p.mirror)
                .collect();
            if left.is_empty() {
                return StepOutcome::ok_with(format!("{} pods evicted", evicted.len()));
            }
            if !self.s.delete_emptydir_data
                && let Some(p) = left.iter().find(|p| p.uses_empty_dir && !p.deleting)
            {
                return StepOutcome::Failed {
                    message: format!(
                        "pod {} uses emptyDir (its data would be lost): set [upgrade] delete_emptydir_data = true or move the pod",
                        p.key()
                    ),
                };
            }
            let mut blocked: Vec<String> = Vec::new();
            for p in left.iter().filter(|p| !p.deleting) {
                match self
                    .w
                    .write
                    .cluster
                    .evict(p, self.s.eviction_grace_secs)
                    .await
                {
                    Ok(Eviction::Accepted) | Ok(Eviction::Gone) => {
                        evicted.insert(p.key());
                    }
                    Ok(Eviction::Blocked { pdb, message }) => blocked.push(match pdb {
                        Some(pdb) => format!(
                            "pod {} blocked by PodDisruptionBudget {pdb} ({message})",
                            p.key()
                        ),
                        None => format!("pod {} blocked ({message})", p.key()),
                    }),
                    Err(e) => blocked.push(format!("pod {}: eviction failed: {e:#}", p.key())),
                }
            }
            self.poll_controls().await;
            if self.abort.is_some() {
                return StepOutcome::Failed {
                    message: "drain stopped: aborted by the operator".into(),
                };
            }
            let spent = elapsed(start, self.w.read.clock.now());
            if spent >= self.s.drain_timeout {
                let still: Vec<String> = if blocked.is_empty() {
                    left.iter().map(|p| p.key()).collect()
                } else {
                    blocked.clone()
                };
                return StepOutcome::Failed {
                    message: format!(
                        "drain timed out after {}s: {}",
                        secs(self.s.drain_timeout),
                        still.join("; ")
                    ),
                };
            }
            let wait = if blocked.is_empty() {
                attempt = 0;
                self.s.poll
            } else {
                attempt = attempt.saturating_add(1);
                let backoff = Duration::from_secs(1u64 << attempt.min(5));
                backoff.min(self.s.poll.max(Duration::from_secs(1)) * 6)
            };
            let detail = if blocked.is_empty() {
                format!(
                    "{} pods still terminating: {}",
                    left.len(),
                    left.iter().map(|p| p.key()).collect::<Vec<_>>().join(", ")
                )
            } else {
                format!("{}; retrying in {}s", blocked.join("; "), wait.as_secs())
            };
            self.emit(UpgradeEvent::Waiting {
                node: node.to_string(),
                what: if blocked.is_empty() {
                    "pods-terminating".into()
                } else {
                    "eviction-blocked".into()
                },
                detail,
            })
            .await;
            self.w.read.clock.sleep(wait).await;
        }
    }
}
