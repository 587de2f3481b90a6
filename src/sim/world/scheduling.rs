//! The scheduler and the owners' controllers: pods placed on the least loaded schedulable
//! node, pods recreated for their ReplicaSet, StatefulSet, DaemonSet or Longhorn instance
//! manager after a deletion, pods created through the API bound, pending pods placed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::World;
use crate::sim::build;
use crate::sim::resources::*;
use crate::sim::store::{Meta, controller_of, name_of, namespace_of, now, short_suffix};
use crate::sim::sync::lock;

/// Give a bound pod a running status: every container started and ready.
fn set_running(p: &mut Value, host_ip: &str, pod_ip: &str, started: &str) {
    let containers: Vec<Value> = p["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    p["status"] = build::running_status(&containers, host_ip, pod_ip, started, true);
}

impl World {
    pub(super) fn schedulable_nodes(&self) -> Vec<String> {
        let up: HashSet<String> = lock(&self.state)
            .hosts
            .values()
            .filter(|h| h.up)
            .map(|h| h.hostname.clone())
            .collect();
        self.store
            .metas(&NODES, None)
            .into_iter()
            .filter(|n| !n.unschedulable && n.ready && up.contains(&n.name))
            .map(|n| n.name.clone())
            .collect()
    }

    /// The schedulable node with the fewest pods, preferring one other than `avoid`.
    pub(super) fn pick_node(&self, avoid: Option<&str>) -> Option<String> {
        let candidates = self.schedulable_nodes();
        if candidates.is_empty() {
            return None;
        }
        let placed: Vec<String> = self
            .store
            .metas(&PODS, None)
            .into_iter()
            .filter_map(|m| m.node.clone())
            .collect();
        let mut count: HashMap<&str, usize> = candidates.iter().map(|c| (c.as_str(), 0)).collect();
        for n in &placed {
            if let Some(c) = count.get_mut(n.as_str()) {
                *c += 1;
            }
        }
        let mut best: Vec<(&str, usize)> = count.into_iter().collect();
        best.sort_by_key(|(n, c)| (Some(*n) == avoid, *c, n.to_string()));
        best.first().map(|(n, _)| n.to_string())
    }

    pub(super) fn pods_lite(&self, ns: Option<&str>) -> Vec<Arc<Meta>> {
        self.store.metas(&PODS, ns)
    }

    pub(super) fn host_ip(&self, node: &str) -> String {
        lock(&self.state)
            .hosts
            .get(node)
            .map_or_else(String::new, |h| h.ip.clone())
    }

    /// Recreate a pod for its owner (after an eviction or deletion).
    pub(super) fn recreate_for_owner(&self, deleted: &Value) {
        let Some((kind, owner_name)) = controller_of(deleted) else {
            return;
        };
        let ns = namespace_of(deleted).to_string();
        let old_node = deleted
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .map(str::to_string);
        let created = now();
        let id = self.next_id();
        let (owner, pod_name, node) = match kind.as_str() {
            "ReplicaSet" => {
                let Some(rs) = self.store.get(&REPLICASETS, &ns, &owner_name) else {
                    return;
                };
                let want = rs
                    .pointer("/spec/replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let have = self
                    .pods_lite(Some(&ns))
                    .iter()
                    .filter(|p| {
                        p.owner
                            .as_ref()
                            .is_some_and(|(k, n)| k == "ReplicaSet" && *n == owner_name)
                    })
                    .filter(|p| !p.deleting)
                    .count();
                if have >= want {
                    return;
                }
                let node = self.pick_node(old_node.as_deref());
                (rs, format!("{owner_name}-{}", short_suffix(id)), node)
            }
            "StatefulSet" => {
                let Some(sts) = self.store.get(&STATEFULSETS, &ns, &owner_name) else {
                    return;
                };
                let node = self.pick_node(old_node.as_deref());
                (sts, name_of(deleted).to_string(), node)
            }
            "DaemonSet" => {
                let Some(ds) = self.store.get(&DAEMONSETS, &ns, &owner_name) else {
                    return;
                };
                let Some(node) = old_node.clone() else { return };
                if self.store.get(&NODES, "", &node).is_none() {
                    return;
                }
                (ds, format!("{owner_name}-{}", short_suffix(id)), Some(node))
            }
            "InstanceManager" => {
                let Some(node) = old_node.clone() else { return };
                let Some(h) = self.inventory.by_name(&node).cloned() else {
                    return;
                };
                let ip = self.pod_ip(&node, id);
                let _ = self
                    .store
                    .create(&PODS, build::instance_manager_pod(&h, &ip, &created));
                return;
            }
            _ => return,
        };
        let template = owner["spec"]["template"].clone();
        let host_ip = node.as_deref().map(|n| self.host_ip(n)).unwrap_or_default();
        let pod_ip = node
            .as_deref()
            .map(|n| self.pod_ip(n, id))
            .unwrap_or_default();
        let pod = build::pod_from_template(
            &template,
            &ns,
            &pod_name,
            &owner,
            node.as_deref().map(|n| (n, host_ip.as_str())),
            &pod_ip,
            &created,
        );
        match self.store.create(&PODS, pod) {
            Ok(p) => match &node {
                Some(n) => self.event(
                    &p,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{pod_name} to {n}"),
                    "default-scheduler",
                ),
                None => {
                    lock(&self.state)
                        .pending
                        .insert((ns.clone(), pod_name.clone()));
                    self.event(
                        &p,
                        "Warning",
                        "FailedScheduling",
                        "0/0 nodes are available: no schedulable node.",
                        "default-scheduler",
                    );
                }
            },
            Err(e) => tracing::debug!("sim: cannot recreate {ns}/{pod_name}: {}", e.message),
        }
    }

    /// A pod created through the API: bind it (or give it a running status on its node).
    pub fn adopt_pod(&self, ns: &str, name: &str) {
        let Some(p) = self.store.get(&PODS, ns, name) else {
            return;
        };
        match p.pointer("/spec/nodeName").and_then(Value::as_str) {
            None | Some("") => {
                let _ = self.store.modify(&PODS, ns, name, |p| {
                    p["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
                });
                lock(&self.state)
                    .pending
                    .insert((ns.to_string(), name.to_string()));
            }
            Some(node) => {
                let host_ip = self.host_ip(node);
                let pod_ip = self.pod_ip(node, self.next_id());
                let started = now();
                let _ = self.store.modify(&PODS, ns, name, |p| {
                    set_running(p, &host_ip, &pod_ip, &started);
                });
            }
        }
    }

    pub(super) fn schedule_pending(&self) {
        let pending: Vec<(String, String)> = lock(&self.state).pending.iter().cloned().collect();
        for (ns, name) in pending {
            let Some(node) = self.pick_node(None) else {
                return;
            };
            let host_ip = self.host_ip(&node);
            let id = self.next_id();
            let pod_ip = self.pod_ip(&node, id);
            let started = now();
            let r = self.store.modify(&PODS, &ns, &name, |p| {
                p["spec"]["nodeName"] = json!(node);
                set_running(p, &host_ip, &pod_ip, &started);
            });
            lock(&self.state)
                .pending
                .remove(&(ns.clone(), name.clone()));
            if let Ok(p) = r {
                self.event(
                    &p,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{name} to {node}"),
                    "default-scheduler",
                );
            }
        }
    }
}
