//! Nodes and hosts: readiness (conditions, taints, the pods on them), cordon taints, reboots
//! and a host's return, and the kubelets' lease renewals.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{SimState, World, set_pod_ready, set_taints};
use crate::sim::build::{self, LONGHORN_NS};
use crate::sim::resources::*;
use crate::sim::store::{ApiError, Meta, name_of, now};
use crate::sim::sync::lock;

impl World {
    /// A node's readiness: `Some(true)` Ready, `Some(false)` NotReady, `None` unreachable
    /// (the node controller's taints); the pods on it follow.
    pub(super) fn set_node_ready(&self, node: &str, ready: Option<bool>) {
        let t = now();
        let _ = self.store.modify(&NODES, "", node, |n| {
            n["status"]["conditions"] = build::node_conditions(ready, &t);
            let taints: Vec<Value> = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            let mut taints: Vec<Value> = taints
                .into_iter()
                .filter(|t| t["key"] != "node.kubernetes.io/unreachable" && t["key"] != "node.kubernetes.io/not-ready")
                .collect();
            match ready {
                Some(true) => {}
                Some(false) => taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": t})),
                None => {
                    taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": t}));
                    taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": t}));
                }
            }
            set_taints(n, taints);
        });
        // Pods on the node follow its readiness.
        let pods: Vec<Arc<Meta>> = self
            .store
            .metas(&PODS, None)
            .into_iter()
            .filter(|m| m.node.as_deref() == Some(node))
            .collect();
        let want = ready == Some(true);
        let mut namespaces = BTreeSet::new();
        for pl in pods.iter().filter(|p| !p.deleting) {
            namespaces.insert(pl.namespace.clone());
            let _ = self
                .store
                .modify(&PODS, &pl.namespace, &pl.name, |p| set_pod_ready(p, want));
        }
        lock(&self.state).dirty.extend(namespaces);
    }

    /// A node was cordoned or uncordoned: its `unschedulable` taint follows, with an Event.
    pub(super) fn on_cordon_change(&self, name: &str, cordoned: bool) {
        let t = now();
        if let Ok(node) = self.store.modify(&NODES, "", name, |n| {
            let mut taints: Vec<Value> = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            taints.retain(|t| t["key"] != "node.kubernetes.io/unschedulable");
            if cordoned {
                taints.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": t}));
            }
            set_taints(n, taints);
        }) {
            let (reason, msg) = if cordoned {
                ("NodeNotSchedulable", format!("Node {name} status is now: NodeNotSchedulable"))
            } else {
                ("NodeSchedulable", format!("Node {name} status is now: NodeSchedulable"))
            };
            self.event(&node, "Normal", reason, &msg, "kubelet");
        }
    }

    /// Reboot a host: NotReady, its etcd member and replicas stop; back after a while
    /// (unless it never returns), then replicas rebuild.
    pub fn reboot(self: &Arc<Self>, host: &str) -> Result<(), ApiError> {
        let Some(h) = self.host(host) else {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("host \"{host}\" not found"),
            ));
        };
        if h.rebooting {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("host \"{host}\" is already rebooting"),
            ));
        }
        let name = h.hostname.clone();
        {
            let mut s = lock(&self.state);
            let SimState { hosts, etcd, .. } = &mut *s;
            if let Some(hs) = hosts.get_mut(&name) {
                hs.up = false;
                hs.rebooting = true;
            }
            Self::elect(etcd, hosts);
        }
        if let Some(node) = self.store.get(&NODES, "", &name) {
            self.event(
                &node,
                "Warning",
                "Rebooted",
                &format!("Node {name} is rebooting"),
                "kubelet",
            );
        }
        let faults = self.faults();
        let world = self.clone();
        if faults.quick_reboot && !faults.host_down.contains_key(&name) {
            // Back before the node controller notices: Ready throughout, the new bootID
            // only once the host is up again.
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                if !world.host(&name).is_some_and(|h| h.never_returns) {
                    world.host_returns(&name);
                }
            });
            return Ok(());
        }
        let down_for = faults.host_down.get(&name).copied();
        // `new-kernel-panics`: the one-shot boot panics; the watchdog resets the host into
        // its default entry (a second boot's time later).
        let panics = self.oneshot_panics(&name);
        tokio::spawn(async move {
            tokio::time::sleep(world.delay(world.timing.not_ready)).await;
            world.set_node_ready(&name, None);
            if let Some(node) = world.store.get(&NODES, "", &name) {
                world.event(
                    &node,
                    "Normal",
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                    "node-controller",
                );
            }
            tokio::time::sleep(down_for.unwrap_or(world.delay(world.timing.reboot))).await;
            if panics {
                tracing::info!(
                    "sim: {name}: the one-shot boot panicked; resetting into the default entry"
                );
                tokio::time::sleep(world.delay(world.timing.reboot)).await;
            }
            let returns = !world.host(&name).is_some_and(|h| h.never_returns);
            if !returns {
                return;
            }
            world.host_returns(&name);
        });
        Ok(())
    }

    /// Mark a host as needing a reboot (or not): its booted kernel differs from the current
    /// one (the SSH face's `nixos-rebuild switch`).
    pub fn set_reboot_needed(&self, host: &str, needed: bool) {
        if let Some(hs) = lock(&self.state).hosts.get_mut(host) {
            hs.reboot_needed = needed;
        }
    }

    /// A switch (or rollback) made `version` with `kernel` the host's current system: its
    /// kubelet, restarted by the activation, reports the new OS image; the kernel changes at
    /// the next boot.
    pub fn installed(&self, host: &str, version: &str, kernel: &str) {
        if let Some(hs) = lock(&self.state).hosts.get_mut(host) {
            hs.kernel = kernel.to_string();
        }
        let _ = self.store.modify(&NODES, "", host, |n| {
            n["status"]["nodeInfo"]["osImage"] = json!(build::os_image(version));
        });
    }

    /// The kernel a host's Node reports (what it booted).
    pub fn set_node_kernel(&self, host: &str, kernel: &str) {
        let _ = self.store.modify(&NODES, "", host, |n| {
            n["status"]["nodeInfo"]["kernelVersion"] = json!(kernel);
        });
    }

    /// A switch broke the host's network (`switch-breaks-network`): no SSH, its node Unknown
    /// (not a reboot: the boot stays the same).
    pub fn network_lost(&self, name: &str) {
        if let Some(hs) = lock(&self.state).hosts.get_mut(name) {
            hs.unreachable = true;
        }
        self.set_node_ready(name, None);
    }

    /// The host's network works again (its revert re-activated the previous system).
    pub fn network_back(&self, name: &str) {
        let was = lock(&self.state)
            .hosts
            .get_mut(name)
            .map(|hs| std::mem::replace(&mut hs.unreachable, false));
        if was == Some(true) {
            self.set_node_ready(name, Some(true));
        }
    }

    /// A host is back: Ready, its etcd member rejoins, pods ready again.
    pub fn host_returns(&self, name: &str) {
        let boots = {
            let mut s = lock(&self.state);
            let SimState { hosts, etcd, .. } = &mut *s;
            let boots = hosts.get_mut(name).map(|hs| {
                hs.up = true;
                hs.rebooting = false;
                hs.reboot_needed = false;
                hs.boots += 1;
                hs.booted_kernel = hs.kernel.clone();
                (hs.index, hs.boots, hs.booted_kernel.clone())
            });
            Self::elect(etcd, hosts);
            boots
        };
        if let Some((index, boots, kernel)) = boots {
            let _ = self.store.modify(&NODES, "", name, |n| {
                n["status"]["nodeInfo"]["bootID"] = json!(build::boot_id(index, boots));
                n["status"]["nodeInfo"]["kernelVersion"] = json!(kernel);
            });
        }
        self.boot_current(name);
        self.set_node_ready(name, Some(true));
        // The instance manager comes back with the node.
        let im = build::instance_manager_name(name);
        if self.store.get(&PODS, LONGHORN_NS, &im).is_none()
            && let Some(h) = self.inventory.by_name(name)
        {
            let ip = self.pod_ip(name, self.next_id());
            let _ = self
                .store
                .create(&PODS, build::instance_manager_pod(h, &ip, &now()));
        }
        if let Some(node) = self.store.get(&NODES, "", name) {
            self.event(
                &node,
                "Normal",
                "NodeReady",
                &format!("Node {name} status is now: NodeReady"),
                "kubelet",
            );
        }
    }

    /// Kubelets (and the control plane's leaders) renew their leases every 10 s while up.
    pub(super) fn renew_leases(&self) {
        if self.frozen {
            return;
        }
        let t = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
            .to_string();
        let up: Vec<String> = lock(&self.state)
            .hosts
            .values()
            .filter(|h| h.up)
            .map(|h| h.hostname.clone())
            .collect();
        for h in &up {
            let _ = self.store.modify(&LEASES, "kube-node-lease", h, |l| {
                l["spec"]["renewTime"] = json!(t);
            });
        }
        let (leases, _) = self.store.list(&LEASES, Some("kube-system"));
        for l in leases {
            let holder = l
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .unwrap_or("");
            if up.iter().any(|h| h == holder) {
                let _ = self.store.modify(&LEASES, "kube-system", name_of(&l), |l| {
                    l["spec"]["renewTime"] = json!(t);
                });
            }
        }
    }
}
