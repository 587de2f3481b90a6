//! The fake cluster: nodes (with their bootID after a reboot, and the stale status of a quick
//! reboot), cordons, pods and evictions (refused by a PDB when a pod says so; a replica
//! failing elsewhere during the drain), the lock's Lease with optimistic concurrency (and
//! renewals failing for a while).

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;

use super::FakeWorld;
use crate::model::recovery::EtcdSnapshot;
use crate::operations::upgrade::world::{
    ClusterRead, ClusterWrite, DrainPod, Eviction, LeaseRecord, LeaseWrite, NodeStatus,
    newest_snapshot,
};

impl ClusterRead for FakeWorld {
    fn longhorn_settings(
        &self,
    ) -> BoxFuture<'_, Result<std::collections::BTreeMap<String, String>>> {
        Box::pin(async move {
            self.checkpoint("longhorn-settings").await;
            let st = self.state();
            match &st.settings_error {
                Some(e) => Err(eyre!("{e}")),
                None => Ok(st.longhorn.settings.clone()),
            }
        })
    }

    fn longhorn_rebuilds(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::model::cluster::ReplicaRebuild>>> {
        Box::pin(async move {
            self.checkpoint("longhorn-rebuilds").await;
            let mut st = self.state();
            match st.rebuild_reads.pop_front() {
                Some(r) => r.map_err(|e| eyre!("{e}")),
                None => Ok(st.longhorn.rebuilds.clone()),
            }
        })
    }

    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>> {
        Box::pin(async move {
            self.checkpoint("node").await;
            let mut st = self.state();
            let now = st.now;
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            if n.stale_reads > 0 {
                // A quick reboot: the status is still the one from before it.
                n.stale_reads -= 1;
                if n.stale_reads == 0
                    && let Some(b) = n.pending_boot_id.take()
                {
                    n.boot_id = b;
                }
            } else if n.not_ready_reads > 0 {
                n.not_ready_reads -= 1;
                if n.not_ready_reads == 0 && !n.never_returns {
                    n.ready = true;
                    n.ready_changed = Some(now);
                    if let Some(b) = n.pending_boot_id.take() {
                        n.boot_id = b;
                    }
                }
            }
            Ok(NodeStatus {
                ready: Some(n.ready),
                unschedulable: n.unschedulable,
                cordoned_by: n.cordoned_by.clone(),
                kubelet_version: n.kubelet_version.clone(),
                boot_id: n.boot_id.clone(),
                ready_changed: n.ready_changed,
                ready_heartbeat: Some(now),
            })
        })
    }

    fn pods_on<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<DrainPod>>> {
        Box::pin(async move {
            self.checkpoint("pods").await;
            let mut st = self.state();
            // Terminating pods are gone by the next look.
            st.pods.retain(|p| !(p.node == node && p.pod.deleting));
            Ok(st
                .pods
                .iter()
                .filter(|p| p.node == node)
                .map(|p| p.pod.clone())
                .collect())
        })
    }

    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>> {
        Box::pin(async move {
            self.checkpoint("lease").await;
            Ok(self.state().lease.clone())
        })
    }

    fn etcd_snapshot_file<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<EtcdSnapshot>>> {
        Box::pin(async move {
            self.checkpoint("snapshot-file").await;
            Ok(newest_snapshot(&self.state().snapshots, name))
        })
    }
}

impl ClusterWrite for FakeWorld {
    fn cordon<'a>(&'a self, node: &'a str, run_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("cordon").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            n.unschedulable = true;
            n.cordoned_by = Some(run_id.to_string());
            st.log.push(format!("cordon {node}"));
            Ok(())
        })
    }

    fn uncordon<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("uncordon").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            n.unschedulable = false;
            n.cordoned_by = None;
            st.log.push(format!("uncordon {node}"));
            Ok(())
        })
    }

    fn evict<'a>(
        &'a self,
        pod: &'a DrainPod,
        _grace_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Eviction>> {
        Box::pin(async move {
            self.checkpoint("evict").await;
            let mut st = self.state();
            let Some(p) = st.pods.iter_mut().find(|p| p.pod.key() == pod.key()) else {
                return Ok(Eviction::Gone);
            };
            if let Some(pdb) = &p.blocked_by_pdb {
                let pdb = pdb.clone();
                st.log.push(format!("evict-blocked {}", pod.key()));
                return Ok(Eviction::Blocked {
                    pdb: Some(pdb),
                    message: "Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                });
            }
            p.pod.deleting = true;
            st.log.push(format!("evict {}", pod.key()));
            st.evictions += 1;
            if let Some((replica, after)) = st.fail_replica_after_evictions.clone()
                && st.evictions >= after
            {
                st.fail_replica_after_evictions = None;
                let mut volume = None;
                if let Some(r) = st.longhorn.replicas.iter_mut().find(|r| r.name == replica) {
                    r.healthy = false;
                    r.current_state = "error".into();
                    volume = Some(r.volume.clone());
                }
                if let Some(v) = volume
                    && let Some(v) = st.longhorn.volumes.iter_mut().find(|x| x.name == v)
                {
                    v.robustness = "degraded".into();
                }
                st.log.push(format!("replica-failed {replica}"));
            }
            Ok(Eviction::Accepted)
        })
    }

    fn create_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            if st.lease.is_some() {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease_version += 1;
            let mut r = rec.clone();
            r.resource_version = Some(st.lease_version.to_string());
            st.lease = Some(r);
            st.log.push(format!("lease-create {}", rec.holder));
            Ok(LeaseWrite::Done)
        })
    }

    fn update_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            if st.lease_update_failures > 0 {
                st.lease_update_failures -= 1;
                st.log.push("lease-update-failed".into());
                return Err(eyre!(
                    "Kubernetes API: renew the upgrade lock: 500 Internal Server Error (fake)"
                ));
            }
            let cur = st.lease.as_ref().and_then(|l| l.resource_version.clone());
            if cur.is_none() || cur != rec.resource_version {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease_version += 1;
            let mut r = rec.clone();
            r.resource_version = Some(st.lease_version.to_string());
            st.lease = Some(r);
            Ok(LeaseWrite::Done)
        })
    }

    fn delete_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            let cur = st.lease.as_ref().and_then(|l| l.resource_version.clone());
            if cur != rec.resource_version {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease = None;
            st.log.push("lease-release".into());
            Ok(LeaseWrite::Done)
        })
    }
}
