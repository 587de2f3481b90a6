//! Graceful pod deletion and the eviction subresource: Terminating pods, 201 when a budget
//! allows, 429 naming the blocking PodDisruptionBudget.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{World, set_pod_ready};
use crate::sim::resources::*;
use crate::sim::select::LabelSelector;
use crate::sim::store::{ApiError, is_ready, name_of, timestamp};
use crate::sim::sync::lock;

impl World {
    /// Start a graceful deletion: the pod is Terminating, then gone after a short while.
    pub fn terminate_pod(
        self: &Arc<Self>,
        ns: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Arc<Value>, ApiError> {
        if grace == Some(0) {
            return self.store.delete(&PODS, ns, name);
        }
        let grace = grace.unwrap_or(30).max(1);
        let p = self.store.modify(&PODS, ns, name, |p| {
            if p.pointer("/metadata/deletionTimestamp").is_none() {
                let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                p["metadata"]["deletionTimestamp"] = json!(timestamp(at));
                p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                set_pod_ready(p, false);
            }
        })?;
        self.event(
            &p,
            "Normal",
            "Killing",
            &format!(
                "Stopping container {}",
                p.pointer("/spec/containers/0/name")
                    .and_then(Value::as_str)
                    .unwrap_or("main")
            ),
            "kubelet",
        );
        let world = self.clone();
        let (ns, name) = (ns.to_string(), name.to_string());
        let uid = p["metadata"]["uid"].clone();
        let wait = self.delay(self.timing.termination.min(grace as f64));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if world
                .store
                .get(&PODS, &ns, &name)
                .is_some_and(|p| p["metadata"]["uid"] == uid)
            {
                let _ = world.store.delete(&PODS, &ns, &name);
            }
        });
        Ok(p)
    }

    /// The eviction subresource: 201 when allowed, 429 naming the blocking budget.
    pub fn evict(self: &Arc<Self>, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let _guard = lock(&self.evictions);
        let Some(pod) = self.store.get(&PODS, ns, name) else {
            return Err(ApiError::not_found(&PODS, name));
        };
        let grace = body
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Value::as_i64);
        if pod.pointer("/metadata/deletionTimestamp").is_none() {
            let (pdbs, _) = self.store.list(&PDBS, Some(ns));
            let matching: Vec<&Arc<Value>> = pdbs
                .iter()
                .filter(|b| {
                    let sel = LabelSelector::from_object(&b["spec"]["selector"]);
                    !sel.is_empty() && sel.matches(&pod)
                })
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = matching.first()
                && is_ready(&pod)
            {
                let pods = self.pods_lite(Some(ns));
                let status = self.pdb_status(pdb, &pods);
                let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
                if allowed <= 0 {
                    let pdb_name = name_of(pdb).to_string();
                    let _ = self
                        .store
                        .modify(&PDBS, ns, &pdb_name, |b| b["status"] = status.clone());
                    return Err(ApiError::new(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                    )
                    .with_details(json!({"causes": [{"reason": "DisruptionBudget",
                        "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                            status["desiredHealthy"], status["currentHealthy"])}]})));
                }
            }
            self.terminate_pod(ns, name, grace)?;
            lock(&self.state).dirty.insert(ns.to_string());
            self.recompute_dirty();
            if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                self.fail_a_replica_elsewhere(node);
            }
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    /// `replica-fails-during-drain`: once, a healthy replica on another node than `draining`
    /// fails and stays failed.
    fn fail_a_replica_elsewhere(&self, draining: &str) {
        {
            let mut st = lock(&self.state);
            if !st.faults.replica_fails_during_drain {
                return;
            }
            st.faults.replica_fails_during_drain = false;
        }
        let (replicas, _) = self
            .store
            .list(&LH_REPLICAS, Some(crate::sim::build::LONGHORN_NS));
        let victim = replicas.iter().find(|r| {
            r.pointer("/spec/nodeID").and_then(Value::as_str) != Some(draining)
                && r.pointer("/status/currentState").and_then(Value::as_str) == Some("running")
        });
        if let Some(r) = victim {
            lock(&self.state)
                .stuck_replicas
                .insert(name_of(r).to_string());
            self.reconcile_longhorn();
        }
    }
}
