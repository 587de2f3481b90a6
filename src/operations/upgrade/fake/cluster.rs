//! The fake cluster: nodes, cordons, pods and evictions (refused by a PDB when a pod says so),
//! the lock's Lease with optimistic concurrency.

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;

use super::FakeWorld;
use crate::operations::upgrade::world::{
    ClusterOps, DrainPod, Eviction, LeaseRecord, LeaseWrite, NodeStatus,
};

impl ClusterOps for FakeWorld {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>> {
        Box::pin(async move {
            self.checkpoint("node").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            if n.not_ready_reads > 0 {
                n.not_ready_reads -= 1;
                if n.not_ready_reads == 0 && !n.never_returns {
                    n.ready = true;
                }
            }
            Ok(NodeStatus {
                ready: Some(n.ready),
                unschedulable: n.unschedulable,
                cordoned_by: n.cordoned_by.clone(),
                kubelet_version: n.kubelet_version.clone(),
            })
        })
    }

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
            Ok(Eviction::Accepted)
        })
    }

    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>> {
        Box::pin(async move {
            self.checkpoint("lease").await;
            Ok(self.state().lease.clone())
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
