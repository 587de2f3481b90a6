//! The simulated homelab's world: the object store plus what the simulator knows beyond it
//! (hosts, etcd, scenarios, writes received), and the controllers that react to writes and to
//! time. Kept apart from the HTTP layer, which only calls in here.
//!
//! This file holds the state and its accessors; the behaviour is one file per controller:
//! `scheduling` (placing and recreating pods), `eviction` (graceful deletion, the eviction
//! subresource), `status` (PDB and owner statuses), `nodes` (readiness, cordon taints,
//! reboots, leases), `longhorn` (replicas, volumes, last-replica PDBs), `etcd` (members,
//! elections, metrics), `scenarios` (faults), `systems` (each host's NixOS generations and the
//! flake that builds them) and `controllers` (the loop that drives them).

mod controllers;
mod etcd;
mod eviction;
mod longhorn;
mod nodes;
mod recovery;
mod scenarios;
mod scheduling;
mod status;
mod systems;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

pub use self::etcd::{BUCKETS, EtcdCluster, EtcdMemberState, Histogram};
pub use self::recovery::{RecoveryFaults, SNAPSHOT_FAILURE};
use super::build::{self, Ids, LONGHORN_NS};
use super::resources::*;
use super::store::{ApiError, Store, name_of, namespace_of, now};
use super::sync::lock;
use crate::inventory::{Inventory, Role};

/// Delays at speed 1, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub termination: f64,
    pub recreate: f64,
    pub not_ready: f64,
    pub reboot: f64,
    pub rebuild: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            termination: 2.0,
            recreate: 3.0,
            not_ready: 2.0,
            reboot: 40.0,
            rebuild: 20.0,
        }
    }
}

/// What the simulator knows about one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostState {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub ip: String,
    pub index: usize,
    /// Running and reachable.
    pub up: bool,
    pub rebooting: bool,
    pub boots: u32,
    pub never_returns: bool,
    pub unreachable: bool,
    pub reboot_needed: bool,
    /// The kernel of the current generation (booted at the next boot).
    pub kernel: String,
    /// The kernel running.
    pub booted_kernel: String,
}

/// A write the API received.
#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    pub method: String,
    pub path: String,
    pub time: String,
    pub status: u16,
}

#[derive(Debug, Default)]
struct SimState {
    hosts: BTreeMap<String, HostState>,
    etcd: EtcdCluster,
    scenarios: BTreeSet<String>,
    /// Replicas held failed by a fault (no rebuild).
    stuck_replicas: BTreeSet<String>,
    /// Replica name → when its rebuild started and when it finishes.
    rebuilding: HashMap<String, (Instant, Instant)>,
    /// Namespaces whose PDBs and owner statuses need recomputing.
    dirty: BTreeSet<String>,
    /// Pods waiting for a node.
    pending: BTreeSet<(String, String)>,
    /// Last written (pods, ready) per owner, so unchanged owners are not rewritten.
    owner_counts: HashMap<(String, &'static str, String), (i64, i64)>,
    ids: u64,
    events: VecDeque<(String, String)>,
    faults: Faults,
    recovery: RecoveryFaults,
}

/// The faults that change how the simulator answers (rather than its objects), set by their
/// scenarios.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// `longhorn-v1beta1`.
    pub longhorn_v1beta1: bool,
    /// `longhorn-other-namespace`.
    pub longhorn_other_namespace: bool,
    /// `etcd-metrics-missing`.
    pub etcd_missing: bool,
    /// `replica-fails-during-drain` (cleared once it fired).
    pub replica_fails_during_drain: bool,
    /// `quick-reboot`.
    pub quick_reboot: bool,
    /// `switch-breaks-network`.
    pub switch_breaks_network: bool,
    /// `new-kernel-panics`: a one-shot boot of a new generation panics; the host resets into
    /// its default entry.
    pub new_kernel_panics: bool,
    /// `host-down`: hostname → how long each reboot keeps it down.
    pub host_down: BTreeMap<String, Duration>,
    /// `lease-fails`: Lease writes answer 500 until then.
    pub lease_fails_until: Option<Instant>,
    /// `slow-rebuild`: how long a replica's rebuild takes (wall-clock).
    pub slow_rebuild: Option<Duration>,
}

/// The simulated homelab.
pub struct World {
    pub store: Arc<Store>,
    pub inventory: Inventory,
    pub speed: f64,
    pub timing: Timing,
    /// `sim --frozen`: time moves nothing by itself (no etcd progress, no lease renewals, no
    /// metric wiggle, no new log lines); the controllers still react to writes and faults.
    pub frozen: bool,
    state: Mutex<SimState>,
    /// The hosts' NixOS systems, the flake, the store (see `crate::sim::systems`).
    systems: Mutex<systems::SystemsState>,
    writes: Mutex<VecDeque<WriteRecord>>,
    evictions: Mutex<()>,
    /// Per-face faults (`hang=FACE`, ...) and the watch faults (`crate::sim::faults`).
    pub face_faults: Arc<crate::sim::faults::FaceFaults>,
}

const MAX_WRITES: usize = 10_000;
const MAX_EVENTS: usize = 1_000;

/// Set a pod's `Ready` and `ContainersReady` conditions and its containers' `ready`.
fn set_pod_ready(p: &mut Value, ready: bool) {
    let status = if ready { "True" } else { "False" };
    if let Some(conds) = p
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds
            .iter_mut()
            .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
        {
            c["status"] = json!(status);
        }
    }
    if let Some(cs) = p
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs {
            c["ready"] = json!(ready);
        }
    }
}

/// Replace a node's taints (an empty list removes the field, as the API server does).
fn set_taints(n: &mut Value, taints: Vec<Value>) {
    if taints.is_empty() {
        if let Some(s) = n["spec"].as_object_mut() {
            s.remove("taints");
        }
    } else {
        n["spec"]["taints"] = json!(taints);
    }
}

impl World {
    pub fn new(inventory: Inventory, speed: f64) -> Result<Arc<Self>, ApiError> {
        Self::build(inventory, speed, &build::Scale::default(), false)
    }

    /// A world of `scale`'s size; `frozen`: nothing moves by itself (see [`World::frozen`]).
    pub fn build(
        inventory: Inventory,
        speed: f64,
        scale: &build::Scale,
        frozen: bool,
    ) -> Result<Arc<Self>, ApiError> {
        let store = Arc::new(Store::new());
        let mut ids = Ids { next: 0 };
        build::populate(&store, &inventory, &mut ids, scale)?;
        let mut hosts = BTreeMap::new();
        for (i, h) in inventory.hosts.iter().enumerate() {
            hosts.insert(
                h.hostname.clone(),
                HostState {
                    id: h.id.clone(),
                    hostname: h.hostname.clone(),
                    role: h.role,
                    ip: h.ip.to_string(),
                    index: i,
                    up: true,
                    rebooting: false,
                    boots: 0,
                    never_returns: false,
                    unreachable: false,
                    reboot_needed: false,
                    kernel: build::KERNELS[0].into(),
                    booted_kernel: build::KERNELS[0].into(),
                },
            );
        }
        let state = SimState {
            hosts,
            etcd: EtcdCluster::new(&inventory),
            ids: ids.next,
            dirty: ["apps", "kube-system", LONGHORN_NS, "monitoring"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        };
        let systems = systems::SystemsState::new(&inventory);
        let world = Arc::new(Self {
            store,
            inventory,
            speed: if speed > 0.0 { speed } else { 1.0 },
            timing: Timing::default(),
            frozen,
            state: Mutex::new(state),
            systems: Mutex::new(systems),
            writes: Mutex::new(VecDeque::new()),
            evictions: Mutex::new(()),
            face_faults: Default::default(),
        });
        world.recompute_dirty();
        Ok(world)
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        lock(&self.state).faults.clone()
    }

    /// Whether a Lease write must fail now (`lease-fails`).
    pub fn lease_writes_fail(&self) -> bool {
        lock(&self.state)
            .faults
            .lease_fails_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// A delay at speed 1, scaled.
    pub fn delay(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs / self.speed).max(0.01))
    }

    /// A fresh number (names, pod IPs, event ids).
    fn next_id(&self) -> u64 {
        let mut s = lock(&self.state);
        s.ids += 1;
        s.ids
    }

    pub fn record_write(&self, method: &str, path: &str, status: u16) {
        let mut w = lock(&self.writes);
        w.push_back(WriteRecord {
            method: method.to_string(),
            path: path.to_string(),
            time: jiff::Timestamp::now().to_string(),
            status,
        });
        while w.len() > MAX_WRITES {
            w.pop_front();
        }
    }

    pub fn writes(&self) -> Vec<WriteRecord> {
        lock(&self.writes).iter().cloned().collect()
    }

    pub fn hosts(&self) -> Vec<HostState> {
        lock(&self.state).hosts.values().cloned().collect()
    }

    pub fn host(&self, name: &str) -> Option<HostState> {
        let s = lock(&self.state);
        s.hosts
            .get(name)
            .or_else(|| s.hosts.values().find(|h| h.id == name))
            .cloned()
    }

    /// A pod IP on `node`'s pod subnet, unique enough for the simulator.
    fn pod_ip(&self, node: &str, id: u64) -> String {
        let index = lock(&self.state).hosts.get(node).map_or(0, |h| h.index);
        format!("10.42.{}.{}", index % 256, id % 250 + 2)
    }

    /// The sim's state for `/sim/v1/state`.
    pub fn state_json(&self) -> Value {
        let s = lock(&self.state);
        json!({
            "speed": self.speed,
            "scenarios": s.scenarios,
            "hosts": s.hosts.values().collect::<Vec<_>>(),
            "etcd": s.etcd,
            "stuckReplicas": s.stuck_replicas,
            "resourceVersion": self.store.resource_version().to_string(),
            "faults": self.face_faults.json(),
        })
    }

    /// Record a Kubernetes Event about `obj`.
    pub fn event(
        &self,
        obj: &Value,
        kind_type: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = match namespace_of(obj) {
            "" => "default",
            n => n,
        }
        .to_string();
        let id = self.next_id();
        let name = format!(
            "{}.{:016x}",
            name_of(obj),
            id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4
        );
        let t = now();
        let ev = json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": name_of(obj),
                "namespace": namespace_of(obj), "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": t,
            "lastTimestamp": t,
            "count": 1,
            "type": kind_type,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        });
        if self.store.create(&EVENTS, ev).is_ok() {
            let old = {
                let mut s = lock(&self.state);
                s.events.push_back((ns, name));
                if s.events.len() > MAX_EVENTS {
                    s.events.pop_front()
                } else {
                    None
                }
            };
            if let Some((ns, n)) = old {
                let _ = self.store.delete(&EVENTS, &ns, &n);
            }
        }
    }
}
