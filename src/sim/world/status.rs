//! Recomputed statuses: each PodDisruptionBudget's status over the pods of its namespace,
//! and the ready counts of ReplicaSets, StatefulSets, DaemonSets and Deployments, for the
//! namespaces that changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::World;
use crate::sim::resources::*;
use crate::sim::select::LabelSelector;
use crate::sim::store::{Meta, name_of, namespace_of, now};
use crate::sim::sync::lock;

/// `minAvailable` / `maxUnavailable` as a count of `expected` (percentages round up).
fn int_or_percent(v: &Value, expected: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let p: i64 = s.trim_end_matches('%').parse().ok()?;
            Some((p * expected + 99) / 100)
        }
        _ => None,
    }
}

impl World {
    /// The PDB status for `pdb` over the pods of its namespace.
    pub(super) fn pdb_status(&self, pdb: &Value, pods: &[Arc<Meta>]) -> Value {
        let sel = LabelSelector::from_object(&pdb["spec"]["selector"]);
        let matching: Vec<&Arc<Meta>> = pods
            .iter()
            .filter(|p| !sel.is_empty() && sel.matches(&p.labels))
            .collect();
        let healthy = matching.iter().filter(|p| p.ready).count() as i64;
        // Expected pods: the scale of their controllers when known.
        let ns = namespace_of(pdb);
        let mut owners: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut loose = 0i64;
        for p in &matching {
            match p.owner.clone() {
                Some((k, n)) if k == "ReplicaSet" || k == "StatefulSet" => {
                    let res = if k == "ReplicaSet" {
                        REPLICASETS
                    } else {
                        STATEFULSETS
                    };
                    let scale = self
                        .store
                        .get(&res, ns, &n)
                        .and_then(|o| o.pointer("/spec/replicas").and_then(Value::as_i64))
                        .unwrap_or(1);
                    owners.insert((k, n), scale);
                }
                _ => loose += 1,
            }
        }
        let expected = owners.values().sum::<i64>() + loose;
        let desired = if let Some(min) = pdb.pointer("/spec/minAvailable") {
            int_or_percent(min, expected).unwrap_or(0)
        } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
            (expected - int_or_percent(max, expected).unwrap_or(0)).max(0)
        } else {
            expected
        };
        let allowed = (healthy - desired).max(0);
        let generation = pdb
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let since = pdb
            .pointer("/status/conditions/0/lastTransitionTime")
            .cloned()
            .filter(|_| {
                pdb.pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .map(|a| a > 0)
                    == Some(allowed > 0)
            })
            .unwrap_or_else(|| json!(now()));
        json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [if allowed > 0 {
                json!({"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                    "message": "", "observedGeneration": generation, "lastTransitionTime": since})
            } else {
                json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                    "message": "", "observedGeneration": generation, "lastTransitionTime": since})
            }],
        })
    }

    /// PDB statuses and owner readiness for namespaces that changed.
    pub fn recompute_dirty(&self) {
        let dirty: Vec<String> = std::mem::take(&mut lock(&self.state).dirty)
            .into_iter()
            .collect();
        for ns in dirty {
            let pods = self.pods_lite(Some(&ns));
            let (pdbs, _) = self.store.list(&PDBS, Some(&ns));
            for pdb in pdbs {
                let status = self.pdb_status(&pdb, &pods);
                let _ = self
                    .store
                    .modify(&PDBS, &ns, name_of(&pdb), |b| b["status"] = status);
            }
            // Owner readiness.
            let mut ready: HashMap<(String, String), (i64, i64)> = HashMap::new();
            for p in &pods {
                if let Some(o) = p.owner.clone() {
                    let e = ready.entry(o).or_default();
                    e.0 += 1;
                    if p.ready {
                        e.1 += 1;
                    }
                }
            }
            let get = |k: &str, n: &str| {
                ready
                    .get(&(k.to_string(), n.to_string()))
                    .copied()
                    .unwrap_or((0, 0))
            };
            for (res, kind) in [
                (REPLICASETS, "ReplicaSet"),
                (STATEFULSETS, "StatefulSet"),
                (DAEMONSETS, "DaemonSet"),
            ] {
                for o in self.store.metas(&res, Some(&ns)) {
                    let (total, r) = get(kind, &o.name);
                    // Only owners whose counts changed are written.
                    let key = (ns.clone(), kind, o.name.clone());
                    if lock(&self.state).owner_counts.insert(key, (total, r)) == Some((total, r)) {
                        continue;
                    }
                    let _ = self.store.modify(&res, &ns, &o.name, |o| {
                        if kind == "DaemonSet" {
                            o["status"]["currentNumberScheduled"] = json!(total);
                            o["status"]["numberReady"] = json!(r);
                            o["status"]["numberAvailable"] = json!(r);
                        } else {
                            o["status"]["replicas"] = json!(total);
                            o["status"]["readyReplicas"] = json!(r);
                            o["status"]["availableReplicas"] = json!(r);
                        }
                    });
                    if kind == "ReplicaSet"
                        && let Some((_, dep)) = o.owner.clone()
                    {
                        let _ = self.store.modify(&DEPLOYMENTS, &ns, &dep, |d| {
                            d["status"]["replicas"] = json!(total);
                            d["status"]["readyReplicas"] = json!(r);
                            d["status"]["availableReplicas"] = json!(r);
                        });
                    }
                }
            }
        }
    }
}
