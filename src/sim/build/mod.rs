//! The initial world built from the (loopback) inventory: namespaces, nodes and their leases
//! here; `nodes` (Node objects, conditions), `workloads` (owners, their pods, PDBs), `pods`
//! (pods from templates, running statuses), `longhorn` (instance managers, volumes, replicas,
//! backups, settings).

mod longhorn;
mod nodes;
mod pods;
pub mod recovery;
mod workloads;

use serde_json::json;

pub use self::longhorn::{
    REPLENISHMENT_WAIT, REPLENISHMENT_WAIT_DEFAULT, disk_id, engine_object, instance_manager_name,
    instance_manager_pod, replica_address, replica_object, volume_name, volume_object,
};
pub use self::nodes::{PER_NODE_PODS, boot_id, node_conditions, node_conditions_at, node_object};
pub use self::pods::{pod_from_template, running_status};
pub use self::workloads::{Workload, WorkloadKind, workloads};
use super::resources::*;
use super::store::{ApiError, Store, now, short_suffix, timestamp};
use crate::inventory::Inventory;

pub const K3S_VERSION: &str = "v1.31.4+k3s1";

/// The NixOS builds a simulated host knows: the one before the installed one, the installed
/// one, the flake's (a switch goes there).
pub const NIXOS_VERSIONS: [&str; 3] = [
    "25.05.20251102.a1b2c3d",
    "25.05.20251119.e4f5a6b",
    "25.05.20251124.c7d8e9f",
];
/// Their kernels: the installed one's, the flake's, a later one.
pub const KERNELS: [&str; 3] = ["6.12.55", "6.12.58", "6.12.60"];
/// The kernel a host booted in the `reboot-needed` scenario (older than its current one).
pub const OLD_KERNEL: &str = "6.12.41";

/// The `osImage` a Node reports for a NixOS build (its os-release, the build named whole so a
/// switch shows).
pub fn os_image(version: &str) -> String {
    format!("NixOS {version} (Warbler)")
}
pub const LONGHORN_NS: &str = "longhorn-system";

/// The size of the generated cluster beyond its hosts (`sim --pods-per-node`, `--volumes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scale {
    /// Pods per node on average, filler pods in `apps` making up the difference (default:
    /// 20 on clusters of more than 10 hosts, the workloads alone on smaller ones).
    pub pods_per_node: Option<usize>,
    /// Longhorn volumes (default: one per host).
    pub volumes: Option<usize>,
}

/// Counters used while building: pod ips and name suffixes.
pub struct Ids {
    pub next: u64,
}

impl Ids {
    /// A fresh name suffix (`-xxxxx`, as generated names have).
    pub fn suffix(&mut self) -> String {
        self.next += 1;
        short_suffix(self.next)
    }

    /// A fresh pod IP on the `node_index`-th node's subnet.
    pub fn pod_ip(&mut self, node_index: usize) -> String {
        self.next += 1;
        format!("10.42.{}.{}", node_index % 256, (self.next % 250) + 2)
    }
}

/// Create everything, born 41 days ago.
pub fn populate(
    store: &Store,
    inv: &Inventory,
    ids: &mut Ids,
    scale: &Scale,
) -> Result<(), ApiError> {
    let created = timestamp(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 41));
    let hosts = &inv.hosts;
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        LONGHORN_NS,
        "monitoring",
        "apps",
    ] {
        store.create(
            &NAMESPACES,
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns},
            "creationTimestamp": created}, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}}),
        )?;
    }
    for crd in longhorn_crds() {
        store.create(&CRDS, crd)?;
    }
    for (i, h) in hosts.iter().enumerate() {
        store.create(&NODES, node_object(h, i, &created))?;
        store.create(&LEASES, json!({"metadata": {"name": h.hostname, "namespace": "kube-node-lease", "creationTimestamp": created},
            "spec": {"holderIdentity": h.hostname, "leaseDurationSeconds": 40, "renewTime": format!("{}.000000Z", now().trim_end_matches('Z'))}}))?;
    }
    let leader = inv
        .control_planes()
        .next()
        .map_or("", |h| h.hostname.as_str());
    for l in [
        "k3s",
        "k3s-etcd",
        "kube-controller-manager",
        "kube-scheduler",
        "k3s-cloud-controller-manager",
    ] {
        store.create(&LEASES, json!({"metadata": {"name": l, "namespace": "kube-system", "creationTimestamp": created},
            "spec": {"holderIdentity": leader, "leaseDurationSeconds": 15, "leaseTransitions": 0,
                "acquireTime": format!("{}.000000Z", created.trim_end_matches('Z')),
                "renewTime": format!("{}.000000Z", now().trim_end_matches('Z'))}}))?;
    }
    workloads::populate(store, hosts, &created, ids, scale.pods_per_node)?;
    // One instance manager per node.
    for (i, h) in hosts.iter().enumerate() {
        let ip = ids.pod_ip(i);
        store.create(&PODS, instance_manager_pod(h, &ip, &created))?;
    }
    longhorn::populate(store, inv, &created, scale.volumes)?;
    recovery::populate(store, inv)?;
    Ok(())
}

/// FNV-1a: short stable ids from names.
pub fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
