//! Longhorn's controller: replicas follow their node (and rebuild when it returns), volumes
//! follow their replicas, Longhorn nodes follow their hosts, and a node holding a volume's last
//! healthy replica gets a blocking PDB on its instance manager.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::World;
use crate::sim::build::{self, LONGHORN_NS};
use crate::sim::resources::*;
use crate::sim::store::{self, name_of, now};
use crate::sim::sync::lock;

/// What a volume's Engine reports of its replicas.
#[derive(Debug, Default)]
struct EngineView {
    /// Replica name → address.
    addresses: BTreeMap<String, String>,
    /// Replica name → `RW`, `WO` (being rebuilt) or `ERR`.
    modes: BTreeMap<String, &'static str>,
    /// Address → progress (0-99) of each rebuild running.
    rebuilding: BTreeMap<String, u64>,
    /// Addresses of the healthy replicas (a rebuild's source).
    healthy: Vec<String>,
}

impl World {
    /// Each volume's Engine reports its replicas (address map, modes) and the rebuilds
    /// running (`status.rebuildStatus`: address → `{isRebuilding, progress, state, error,
    /// fromReplicaAddress}`), written only when that changed.
    fn write_engines(&self, engines: &HashMap<String, EngineView>) {
        for (vol, view) in engines {
            let name = format!("{vol}-e-0");
            let Some(current) = self.store.get(&LH_ENGINES, LONGHORN_NS, &name) else {
                continue;
            };
            let from = view.healthy.first().cloned().unwrap_or_default();
            let status: serde_json::Map<String, Value> = view
                .rebuilding
                .iter()
                .map(|(addr, pct)| {
                    (
                        addr.clone(),
                        json!({"isRebuilding": true, "progress": pct, "state": "in_progress",
                            "error": "", "fromReplicaAddress": from}),
                    )
                })
                .collect();
            let addrs: serde_json::Map<String, Value> = view
                .addresses
                .iter()
                .map(|(n, a)| (n.clone(), json!(a)))
                .collect();
            let modes: serde_json::Map<String, Value> = view
                .modes
                .iter()
                .map(|(n, m)| (n.clone(), json!(m)))
                .collect();
            let (status, addrs, modes) = (
                Value::Object(status),
                Value::Object(addrs),
                Value::Object(modes),
            );
            if current.pointer("/status/rebuildStatus") == Some(&status)
                && current.pointer("/status/currentReplicaAddressMap") == Some(&addrs)
                && current.pointer("/status/replicaModeMap") == Some(&modes)
            {
                continue;
            }
            let _ = self.store.modify(&LH_ENGINES, LONGHORN_NS, &name, |e| {
                e["status"]["rebuildStatus"] = status;
                e["status"]["currentReplicaAddressMap"] = addrs;
                e["status"]["replicaModeMap"] = modes;
            });
        }
    }

    /// Set a Longhorn setting's `value` (a scenario's).
    pub(super) fn set_longhorn_setting(&self, name: &str, value: &str) {
        let _ = self.store.modify(&LH_SETTINGS, LONGHORN_NS, name, |s| {
            s["value"] = json!(value);
        });
    }

    /// Replicas follow their node; volumes follow their replicas; nodes holding a volume's
    /// last healthy replica get a blocking PDB on their instance manager.
    pub fn reconcile_longhorn(&self) {
        let (hosts_up, stuck, ips, slow) = {
            let s = lock(&self.state);
            let up: HashSet<String> = s
                .hosts
                .values()
                .filter(|h| h.up)
                .map(|h| h.hostname.clone())
                .collect();
            let ips: HashMap<String, String> = s
                .hosts
                .values()
                .map(|h| (h.hostname.clone(), h.ip.clone()))
                .collect();
            (up, s.stuck_replicas.clone(), ips, s.faults.slow_rebuild)
        };
        // Per volume: its replicas' modes and the rebuilds running (address → status), as
        // its Engine reports them.
        let mut engines: HashMap<String, EngineView> = HashMap::new();
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
            let address = match (
                r.pointer("/status/storageIP").and_then(Value::as_str),
                r.pointer("/status/port").and_then(Value::as_u64),
            ) {
                (Some(ip), Some(port)) if !ip.is_empty() => format!("tcp://{ip}:{port}"),
                _ => build::replica_address(ips.get(&node).map_or("", String::as_str), &rname),
            };
            let view = engines.entry(vol.clone()).or_default();
            view.addresses.insert(rname.clone(), address.clone());
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
                view.modes.insert(rname.clone(), "ERR");
            } else if !healthy {
                let (done, progress) = {
                    let mut s = lock(&self.state);
                    let (start, end) = *s.rebuilding.entry(rname.clone()).or_insert_with(|| {
                        let took = slow.unwrap_or_else(|| self.delay(self.timing.rebuild));
                        (instant, instant + took)
                    });
                    let total = end.saturating_duration_since(start).as_secs_f64();
                    let gone = instant.saturating_duration_since(start).as_secs_f64();
                    let pct = if total > 0.0 {
                        (gone / total * 100.0).floor().clamp(0.0, 99.0) as u64
                    } else {
                        99
                    };
                    (end <= instant, pct)
                };
                if done {
                    view.modes.insert(rname.clone(), "RW");
                    lock(&self.state).rebuilding.remove(&rname);
                    let _ = self.store.modify(&LH_REPLICAS, LONGHORN_NS, &rname, |r| {
                        r["spec"]["healthyAt"] = json!(t);
                        r["spec"]["lastHealthyAt"] = json!(t);
                        r["spec"]["failedAt"] = json!("");
                        r["status"]["currentState"] = json!("running");
                        r["status"]["started"] = json!(true);
                    });
                    healthy = true;
                } else {
                    view.modes.insert(rname.clone(), "WO");
                    view.rebuilding.insert(address.clone(), progress);
                    if state != "running" || !failed_at.is_empty() {
                        // Rebuilding: running, not yet healthy.
                        let _ = self.store.modify(&LH_REPLICAS, LONGHORN_NS, &rname, |r| {
                            r["spec"]["failedAt"] = json!("");
                            r["status"]["currentState"] = json!("running");
                            r["status"]["started"] = json!(true);
                        });
                    }
                }
            } else {
                view.modes.insert(rname.clone(), "RW");
            }
            if healthy {
                view.healthy.push(address.clone());
                healthy_by_volume.entry(vol).or_default().push(node);
            }
        }
        self.write_engines(&engines);
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
