//! The wait-healthy step: the node Ready with the expected kubelet, its etcd member healthy
//! and caught up (control planes), every Longhorn volume healthy with no rebuild running.

use std::time::Duration;

use crate::inventory::Host;
use crate::operations::upgrade::engine::{Runner, elapsed, secs};
use crate::operations::upgrade::world::HealthInputs;
use crate::operations::upgrade::{PlanEntry, StepOutcome, UpgradeEvent};

impl Runner {
    /// Wait until `entry`'s node and the storage are healthy again.
    pub(in crate::operations::upgrade::engine) async fn wait_healthy(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        let node = entry.node.clone();
        let expected = self.w.hosts.k3s_version(host).await.ok().flatten();
        // Node Ready with the expected kubelet.
        let w = self.w.clone();
        let ready = self
            .wait_for(
                &node,
                "node-ready",
                self.s.ready_timeout,
                || async {
                    match w.cluster.node(&node).await {
                        Ok(s) => (
                            s.ready == Some(true)
                                && expected.as_ref().is_none_or(|v| &s.kubelet_version == v),
                            format!(
                                "{}, kubelet {}",
                                match s.ready {
                                    Some(true) => "Ready",
                                    Some(false) => "NotReady",
                                    None => "Unknown",
                                },
                                s.kubelet_version
                            ),
                        ),
                        Err(e) => (false, format!("unreadable: {e:#}")),
                    }
                },
                |seen| format!("waiting for {node} to be Ready: {seen}"),
            )
            .await;
        if let Err(seen) = ready {
            return StepOutcome::Failed {
                message: format!(
                    "{node} not Ready{} within {}s (last seen: {seen})",
                    expected
                        .as_ref()
                        .map(|v| format!(" with kubelet {v}"))
                        .unwrap_or_default(),
                    secs(self.s.ready_timeout)
                ),
            };
        }
        // etcd member healthy and caught up.
        if entry.role.is_control_plane() {
            let max_lag = self.s.etcd_max_lag;
            let etcd = self
                .wait_for(
                    &node,
                    "etcd-member",
                    self.s.etcd_timeout,
                    || async { etcd_member_ok(&w.health.gather(&[]).await, host, max_lag) },
                    str::to_string,
                )
                .await;
            if let Err(seen) = etcd {
                return StepOutcome::Failed {
                    message: format!(
                        "etcd member on {node} not healthy and caught up within {}s ({seen})",
                        secs(self.s.etcd_timeout)
                    ),
                };
            }
        }
        // Longhorn volumes healthy, rebuilds done.
        let longhorn = self
            .wait_for(
                &node,
                "longhorn",
                self.s.longhorn_timeout,
                || async { longhorn_ok(&w.health.gather(&[]).await) },
                str::to_string,
            )
            .await;
        if let Err(seen) = longhorn {
            return StepOutcome::Failed {
                message: format!(
                    "Longhorn volumes not healthy within {}s ({seen})",
                    secs(self.s.longhorn_timeout)
                ),
            };
        }
        StepOutcome::ok()
    }

    /// Ask `probe` every poll interval until it answers `(true, _)`; each miss is a `Waiting`
    /// event `what` with `detail(seen)`. After `timeout`: `Err` with the last thing seen.
    async fn wait_for<F, Fut>(
        &mut self,
        node: &str,
        what: &str,
        timeout: Duration,
        mut probe: F,
        detail: impl Fn(&str) -> String,
    ) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = (bool, String)>,
    {
        let start = self.w.clock.now();
        loop {
            let (ok, seen) = probe().await;
            if ok {
                return Ok(());
            }
            if elapsed(start, self.w.clock.now()) >= timeout {
                return Err(seen);
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.to_string(),
                what: what.to_string(),
                detail: detail(&seen),
            })
            .await;
            self.w.clock.sleep(self.s.poll).await;
        }
    }
}

/// Is the etcd member on `host` healthy and caught up?
fn etcd_member_ok(h: &HealthInputs, host: &Host, max_lag: u64) -> (bool, String) {
    match &h.etcd {
        None => (true, "etcd not monitored".into()),
        Some(Err(e)) => (false, format!("etcd unreadable: {e}")),
        Some(Ok(state)) => match state.member_on_host(host) {
            None => (false, format!("no etcd member on {} yet", host.id)),
            Some(m) if !m.healthy => (
                false,
                format!(
                    "member {} not healthy{}",
                    m.label(),
                    m.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            ),
            Some(m) => match m.raft_index_lag {
                Some(l) if l > max_lag => (
                    false,
                    format!("member {} is {l} raft entries behind", m.label()),
                ),
                _ => (true, format!("member {} healthy", m.label())),
            },
        },
    }
}

/// Are all Longhorn volumes healthy with no rebuild running?
fn longhorn_ok(h: &HealthInputs) -> (bool, String) {
    let c = match &h.cluster {
        Ok(c) => c,
        Err(e) => return (false, format!("cluster unreadable: {e}")),
    };
    let lh = &c.longhorn;
    if !lh.installed {
        return (true, "Longhorn not installed".into());
    }
    let mut bad = Vec::new();
    for v in &lh.volumes {
        let rebuilding = lh.replicas_of(&v.name).filter(|r| r.rebuilding).count();
        if rebuilding > 0 {
            bad.push(format!("{} rebuilding {rebuilding} replica(s)", v.name));
        } else if v.robustness != "healthy" && v.state != "detached" {
            bad.push(format!("{} {}", v.name, v.robustness));
        }
    }
    if bad.is_empty() {
        (true, "all volumes healthy".into())
    } else {
        (false, bad.join(", "))
    }
}
