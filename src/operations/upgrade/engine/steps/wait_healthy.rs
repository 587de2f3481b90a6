//! The wait-healthy step: the node Ready with the expected kubelet — after a reboot, Ready as
//! reported by the kubelet of the new boot (its `bootID` changed: a quick reboot never passes
//! on the Ready of before) — its etcd member healthy and caught up (control planes), every
//! Longhorn volume healthy with no rebuild running. What cannot be seen is not healthy.

use std::time::Duration;

use crate::inventory::Host;
use crate::operations::upgrade::engine::{Runner, elapsed, secs};
use crate::operations::upgrade::storage::{RebuildEta, RebuildWatch};
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
        let expected = self.w.read.hosts.k3s_version(host).await.ok().flatten();
        // After a reboot: the Ready of the new boot.
        let rebooted = self.reboots.get(&node).cloned();
        // Node Ready with the expected kubelet.
        let w = self.w.clone();
        let ready = self
            .wait_for(
                &node,
                "node-ready",
                self.s.ready_timeout,
                || async {
                    match w.read.cluster.node(&node).await {
                        Ok(s) => {
                            let new_boot = match &rebooted {
                                None => Ok(()),
                                Some(b) if !b.node_boot_id.is_empty() => {
                                    if s.boot_id != b.node_boot_id {
                                        Ok(())
                                    } else {
                                        Err(format!(
                                            "still the status of the boot before the reboot (bootID {})",
                                            b.node_boot_id
                                        ))
                                    }
                                }
                                // No bootID reported: a Ready written after the reboot.
                                Some(b) => {
                                    if s.ready_heartbeat.is_some_and(|t| t > b.at)
                                        || s.ready_changed.is_some_and(|t| t > b.at)
                                    {
                                        Ok(())
                                    } else {
                                        Err("Ready not reported since the reboot".into())
                                    }
                                }
                            };
                            let state = match s.ready {
                                Some(true) => "Ready",
                                Some(false) => "NotReady",
                                None => "Unknown",
                            };
                            let ok = s.ready == Some(true)
                                && new_boot.is_ok()
                                && expected.as_ref().is_none_or(|v| &s.kubelet_version == v);
                            let mut seen = format!("{state}, kubelet {}", s.kubelet_version);
                            if let Err(why) = new_boot {
                                seen.push_str(&format!(", {why}"));
                            }
                            (ok, seen)
                        }
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
        let skip_etcd = self.s.skip_guards.iter().any(|g| g == "etcd");
        let skip_longhorn = self.s.skip_guards.iter().any(|g| g == "longhorn");
        if entry.role.is_control_plane() {
            let max_lag = self.s.etcd_max_lag;
            let etcd = self
                .wait_for(
                    &node,
                    "etcd-member",
                    self.s.etcd_timeout,
                    || async {
                        etcd_member_ok(&w.read.health.gather(&[]).await, host, max_lag, skip_etcd)
                    },
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
        // Longhorn volumes healthy, rebuilds done: each rebuild's progress and ETA (from the
        // rate seen over this wait) in the waiting detail.
        let watch = std::sync::Mutex::new(RebuildWatch::default());
        let longhorn = self
            .wait_for(
                &node,
                "longhorn",
                self.s.longhorn_timeout,
                || async {
                    let h = w.read.health.gather(&[]).await;
                    if skip_longhorn {
                        return longhorn_ok(&h, true, &Ok(Vec::new()));
                    }
                    let rebuilds = match w.read.cluster.longhorn_rebuilds().await {
                        Ok(list) => {
                            let lh = h.cluster.as_ref().ok().map(|c| &c.longhorn);
                            let now = w.read.clock.now();
                            let mut watch = watch.lock().unwrap_or_else(|p| p.into_inner());
                            Ok(watch.observe(now, &list, lh))
                        }
                        Err(e) => Err(format!("{e:#}")),
                    };
                    longhorn_ok(&h, false, &rebuilds)
                },
                |seen| format!("waiting for Longhorn: {seen}"),
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
        let start = self.w.read.clock.now();
        loop {
            let (ok, seen) = probe().await;
            if ok {
                return Ok(());
            }
            if elapsed(start, self.w.read.clock.now()) >= timeout {
                return Err(seen);
            }
            self.emit(UpgradeEvent::Waiting {
                node: node.to_string(),
                what: what.to_string(),
                detail: detail(&seen),
            })
            .await;
            self.w.read.clock.sleep(self.s.poll).await;
        }
    }
}

/// Is the etcd member on `host` healthy and caught up? (`skipped`: the config says etcd is
/// not monitored.)
fn etcd_member_ok(h: &HealthInputs, host: &Host, max_lag: u64, skipped: bool) -> (bool, String) {
    match &h.etcd {
        None if skipped => (true, "etcd not monitored ([upgrade] skip_guards)".into()),
        None => (
            false,
            "etcd is not monitored: cannot see the member (add \"etcd\" to [upgrade] skip_guards if it never is)".into(),
        ),
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

/// Are all Longhorn volumes healthy with no rebuild running? (`skipped`: the config says
/// there is no Longhorn.) `rebuilds`: what the engines report (or why it could not be read:
/// not healthy — what cannot be seen is not done).
fn longhorn_ok(
    h: &HealthInputs,
    skipped: bool,
    rebuilds: &Result<Vec<RebuildEta>, String>,
) -> (bool, String) {
    if skipped {
        return (true, "no Longhorn ([upgrade] skip_guards)".into());
    }
    let c = match &h.cluster {
        Ok(c) => c,
        Err(e) => return (false, format!("cluster unreadable: {e}")),
    };
    if let Some((why, _)) = crate::operations::upgrade::guards::longhorn_unseen(c) {
        return (false, why);
    }
    let lh = &c.longhorn;
    let mut bad = Vec::new();
    let running: &[RebuildEta] = match rebuilds {
        Ok(r) => r,
        Err(e) => {
            bad.push(format!("rebuild status unreadable ({e})"));
            &[]
        }
    };
    for r in running {
        bad.push(r.line());
    }
    let by_volume = lh.replicas_by_volume();
    for v in &lh.volumes {
        let reported = running.iter().any(|r| r.volume == v.name);
        let rebuilding = by_volume
            .get(v.name.as_str())
            .map_or(0, |rs| rs.iter().filter(|r| r.rebuilding).count());
        if reported {
            continue;
        }
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
