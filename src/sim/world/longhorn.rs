//! Longhorn's controller: replicas follow their node (and rebuild when it returns), volumes
//! follow their replicas, Longhorn nodes follow their hosts, and a node holding a volume's last
//! healthy replica gets a blocking PDB on its instance manager.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::World;
use crate::sim::build::{self, LONGHORN_NS};
use crate::sim::resources::*;
use crate::sim::store::{self, name_of, now};
use crate::sim::sync::lock;

impl World {
    /// Replicas follow their node; volumes follow their replicas; nodes holding a volume's
    /// last healthy replica get a blocking PDB on their instance manager.
    pub fn reconcile_longhorn(&self) {
        let (hosts_up, stuck) = {
            let s = lock(&self.state);
            let up: HashSet<String> = s
                .hosts
                .values()
                .filter(|h| h.up)
                .map(|h| h.hostname.clone())
                .collect();
            (up, s.stuck_replicas.clone())
        };
        let im_running: HashSet<String> = self
            .store
            .metas(&PODS, Some(LONGHORN_NS))
            .into_iter()
            .filter(|m| {
                !m.deleting
                    && m.labels
                        .pointer("/metadata/labels/longhorn.io~1component")
                        .and_then(Value::as_str)
                        == Some("instance-manager")
            })
            .filter_map(|m| m.node.clone())
            .collect();
        let (replicas, _) = self.store.list_raw(&LH_REPLICAS, Some(LONGHORN_NS));
        let t = now();
        let instant = Instant::now();
        let mut healthy_by_volume: HashMap<String, Vec<String>> = HashMap::new();
        for raw in &replicas {
            let r = &store::parse(raw);
            let rname = name_of(r).to_string();
            let node = r
                .pointer("/spec/nodeID")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let vol = r
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let healthy_at = r
                .pointer("/spec/healthyAt")
                .and_then(Value::as_str)
                .unwrap_or("");
            let failed_at = r
                .pointer("/spec/failedAt")
                .and_then(Value::as_str)
                .unwrap_or("");
            let state = r
                .pointer("/status/currentState")
                .and_then(Value::as_str)
                .unwrap_or("");
            let can_run =
                hosts_up.contains(&node) && im_running.contains(&node) && !stuck.contains(&rname);
            let mut healthy = !healthy_at.is_empty() && failed_at.is_empty() && state == "running";
            if !can_run {
                healthy = false;
                if state != "stopped" || failed_at.is_empty() {
                    let _ = self.store.modify(&LH_REPLICAS, LONGHORN_NS, &rname, |r| {
                        r["spec"]["failedAt"] = json!(t);
                        r["spec"]["lastFailedAt"] = json!(t);
                        r["spec"]["healthyAt"] = json!("");
                        r["status"]["currentState"] = json!("stopped");
                        r["status"]["started"] = json!(false);
                    });
                }
                lock(&self.state).rebuilding.remove(&rname);
            } else if !healthy {
                let done = {
                    let mut s = lock(&self.state);
                    match s.rebuilding.get(&rname) {
                        Some(at) => *at <= instant,
                        None => {
                            s.rebuilding
                                .insert(rname.clone(), instant + self.delay(self.timing.rebuild));
                            false
                        }
                    }
                };
                if done {
                    lock(&self.state).rebuilding.remove(&rname);
                    let _ = self.store.modify(&LH_REPLICAS, LONGHORN_NS, &rname, |r| {
                        r["spec"]["healthyAt"] = json!(t);
                        r["spec"]["lastHealthyAt"] = json!(t);
                        r["spec"]["failedAt"] = json!("");
                        r["status"]["currentState"] = json!("running");
                        r["status"]["started"] = json!(true);
                    });
                    healthy = true;
                } else if state != "running" || !failed_at.is_empty() {
                    // Rebuilding: running, not yet healthy.
                    let _ = self.store.modify(&LH_REPLICAS, LONGHORN_NS, &rname, |r| {
                        r["spec"]["failedAt"] = json!("");
                        r["status"]["currentState"] = json!("running");
                        r["status"]["started"] = json!(true);
                    });
                }
            }
            if healthy {
                healthy_by_volume.entry(vol).or_default().push(node);
            }
        }
        let (volumes, _) = self.store.list_raw(&LH_VOLUMES, Some(LONGHORN_NS));
        let mut last_replica_nodes: BTreeSet<String> = BTreeSet::new();
        for raw in &volumes {
            let v = &store::parse(raw);
            let vname = name_of(v);
            let want = v
                .pointer("/spec/numberOfReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(3) as usize;
            let healthy = healthy_by_volume.get(vname).cloned().unwrap_or_default();
            let robustness = match healthy.len() {
                0 => "faulted",
                n if n < want => "degraded",
                _ => "healthy",
            };
            if healthy.len() == 1 {
                last_replica_nodes.insert(healthy[0].clone());
            }
            let _ = self.store.modify(&LH_VOLUMES, LONGHORN_NS, vname, |v| {
                v["status"]["robustness"] = json!(robustness);
            });
        }
        // Longhorn nodes' readiness.
        let (lh_nodes, _) = self.store.list_raw(&LH_NODES, Some(LONGHORN_NS));
        for raw in &lh_nodes {
            let n = &store::parse(raw);
            let up = hosts_up.contains(name_of(n));
            let want = if up { "True" } else { "False" };
            let _ = self.store.modify(&LH_NODES, LONGHORN_NS, name_of(n), |n| {
                if let Some(conds) = n
                    .pointer_mut("/status/conditions")
                    .and_then(Value::as_array_mut)
                {
                    for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                        if c["status"] != want {
                            c["status"] = json!(want);
                            c["lastTransitionTime"] = json!(t);
                            c["reason"] = json!(if up { "" } else { "KubernetesNodeNotReady" });
                        }
                    }
                }
            });
        }
        // block-if-contains-last-replica.
        let policy = self
            .store
            .get(&LH_SETTINGS, LONGHORN_NS, "node-drain-policy")
            .and_then(|s| s.get("value").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        if policy != "block-if-contains-last-replica" {
            last_replica_nodes.clear();
        }
        let (pdbs, _) = self.store.list(&PDBS, Some(LONGHORN_NS));
        for pdb in &pdbs {
            if let Some(node) = pdb
                .pointer("/spec/selector/matchLabels/longhorn.io~1node")
                .and_then(Value::as_str)
                && !last_replica_nodes.contains(node)
            {
                let _ = self.store.delete(&PDBS, LONGHORN_NS, name_of(pdb));
                lock(&self.state).dirty.insert(LONGHORN_NS.to_string());
            }
        }
        for node in &last_replica_nodes {
            let im = build::instance_manager_name(node);
            if self.store.get(&PDBS, LONGHORN_NS, &im).is_none() {
                let _ = self.store.create(
                    &PDBS,
                    json!({
                        "metadata": {"name": im, "namespace": LONGHORN_NS,
                            "labels": {"longhorn.io/managed-by": "longhorn-manager"}},
                        "spec": {"minAvailable": 1, "selector": {"matchLabels": {
                            "longhorn.io/component": "instance-manager",
                            "longhorn.io/node": node}}},
                    }),
                );
                lock(&self.state).dirty.insert(LONGHORN_NS.to_string());
            }
        }
    }
}
