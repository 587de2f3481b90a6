//! The world's behaviour: controllers that react to writes (evictions, cordons, owners
//! recreating pods, PDB status, Longhorn replicas and volumes) and to time (reboots,
//! rebuilds, etcd metrics). Kept apart from the HTTP layer, which only calls in here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::build::{self, Ids, LONGHORN_NS};
use super::resources::*;
use super::scenario::Scenario;
use super::select::LabelSelector;
use super::store::{ApiError, Change, EventType, Meta, Store, name_of, namespace_of, now};
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
}

/// One etcd member.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdMemberState {
    pub id: u64,
    pub name: String,
    pub hostname: String,
    pub ip: String,
    /// The gateway's port (0 until bound).
    pub port: u16,
    /// Stopped by a fault (independent of its host being down).
    pub stopped: bool,
    pub slow_disk: bool,
    pub db_size: u64,
    pub applied_index: u64,
    #[serde(skip)]
    pub fsync: Histogram,
    #[serde(skip)]
    pub commit: Histogram,
}

/// A cumulative Prometheus histogram with etcd's buckets.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket (last = +Inf overflow).
    pub counts: [f64; 15],
    pub sum: f64,
}

/// etcd's disk histogram bucket bounds: 0.001 × 2^k.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

impl Histogram {
    /// Add `n` observations spread by `cdf` (cumulative fraction at each bucket bound).
    pub fn observe(&mut self, n: f64, cdf: &[f64]) {
        let mut prev = 0.0;
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = cdf.get(i).copied().unwrap_or(1.0);
            let frac = (c - prev).max(0.0);
            self.counts[i] += n * frac;
            // Mean of the bucket ~ 3/4 of its bound.
            self.sum += n * frac * b * 0.75;
            prev = c;
        }
    }

    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0.0;
        self.counts
            .iter()
            .map(|c| {
                acc += c;
                acc.floor() as u64
            })
            .collect()
    }
}

const FSYNC_FAST: &[f64] = &[0.5, 0.9, 0.993, 1.0];
const FSYNC_SLOW: &[f64] = &[0.0, 0.2, 0.5, 0.8, 0.92, 0.96, 0.987, 1.0];
const COMMIT_FAST: &[f64] = &[0.2, 0.6, 0.9, 0.992, 1.0];
const COMMIT_SLOW: &[f64] = &[0.0, 0.05, 0.3, 0.6, 0.85, 0.95, 0.985, 1.0];

#[derive(Debug, Default, Serialize)]
pub struct EtcdCluster {
    pub cluster_id: u64,
    pub members: Vec<EtcdMemberState>,
    pub leader: Option<u64>,
    pub raft_term: u64,
    pub raft_index: u64,
    pub revision: u64,
    pub leader_changes: u64,
    pub quota_bytes: u64,
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
    /// Replica name → when its rebuild finishes.
    rebuilding: HashMap<String, Instant>,
    /// Namespaces whose PDBs and owner statuses need recomputing.
    dirty: BTreeSet<String>,
    /// Pods waiting for a node.
    pending: BTreeSet<(String, String)>,
    /// Last written (pods, ready) per owner, so unchanged owners are not rewritten.
    owner_counts: HashMap<(String, &'static str, String), (i64, i64)>,
    ids: u64,
    events: VecDeque<(String, String)>,
}

/// The simulated homelab.
pub struct World {
    pub store: Arc<Store>,
    pub inventory: Inventory,
    pub speed: f64,
    pub timing: Timing,
    state: Mutex<SimState>,
    writes: Mutex<VecDeque<WriteRecord>>,
    evictions: Mutex<()>,
}

const MAX_WRITES: usize = 10_000;
const MAX_EVENTS: usize = 1_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A member id: a large u64 (most exceed i64, as real ones do).
fn member_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | (1 << 63)
}

fn cond_status(obj: &Value, t: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

pub fn pod_ready(p: &Value) -> bool {
    cond_status(p, "Ready").as_deref() == Some("True")
        && p.pointer("/metadata/deletionTimestamp").is_none()
}

fn controller_of(p: &Value) -> Option<(String, String)> {
    p.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or("").to_string(),
                o["name"].as_str().unwrap_or("").to_string(),
            )
        })
}

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
    pub fn new(inventory: Inventory, speed: f64) -> Result<Arc<Self>, ApiError> {
        let store = Arc::new(Store::new());
        let mut ids = Ids { next: 0 };
        build::populate(&store, &inventory, &mut ids)?;
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
                },
            );
        }
        let members: Vec<EtcdMemberState> = inventory
            .control_planes()
            .map(|h| {
                let name = format!("{}-{:08x}", h.hostname, build::fnv(&h.id));
                let mut m = EtcdMemberState {
                    id: member_id(&name),
                    name,
                    hostname: h.hostname.clone(),
                    ip: h.ip.to_string(),
                    port: 0,
                    stopped: false,
                    slow_disk: false,
                    db_size: 24 << 20,
                    applied_index: 0,
                    fsync: Histogram::default(),
                    commit: Histogram::default(),
                };
                m.fsync.observe(5000.0, FSYNC_FAST);
                m.commit.observe(5000.0, COMMIT_FAST);
                m
            })
            .collect();
        let leader = members.first().map(|m| m.id);
        let state = SimState {
            hosts,
            etcd: EtcdCluster {
                cluster_id: member_id("homeinfra-sim-cluster") >> 1,
                members,
                leader,
                raft_term: 4,
                raft_index: 184_467,
                revision: 151_233,
                leader_changes: 3,
                quota_bytes: 2 << 30,
            },
            ids: ids.next,
            dirty: ["apps", "kube-system", LONGHORN_NS, "monitoring"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        };
        let world = Arc::new(Self {
            store,
            inventory,
            speed: if speed > 0.0 { speed } else { 1.0 },
            timing: Timing::default(),
            state: Mutex::new(state),
            writes: Mutex::new(VecDeque::new()),
            evictions: Mutex::new(()),
        });
        world.recompute_dirty();
        Ok(world)
    }

    /// A delay at speed 1, scaled.
    pub fn delay(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs / self.speed).max(0.01))
    }

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
        })
    }

    /// Run a closure over the etcd cluster state.
    pub fn with_etcd<T>(
        &self,
        f: impl FnOnce(&mut EtcdCluster, &BTreeMap<String, HostState>) -> T,
    ) -> T {
        let mut s = lock(&self.state);
        let SimState { etcd, hosts, .. } = &mut *s;
        f(etcd, hosts)
    }

    /// Is this etcd member serving?
    pub fn member_up(m: &EtcdMemberState, hosts: &BTreeMap<String, HostState>) -> bool {
        !m.stopped && hosts.get(&m.hostname).is_some_and(|h| h.up)
    }

    fn elect(etcd: &mut EtcdCluster, hosts: &BTreeMap<String, HostState>) {
        let up: Vec<u64> = etcd
            .members
            .iter()
            .filter(|m| Self::member_up(m, hosts))
            .map(|m| m.id)
            .collect();
        let quorum = up.len() * 2 > etcd.members.len();
        let leader_ok = etcd.leader.is_some_and(|l| up.contains(&l));
        if !quorum {
            if etcd.leader.is_some() {
                etcd.leader = None;
            }
        } else if !leader_ok {
            etcd.leader = up.first().copied();
            etcd.raft_term += 1;
            etcd.leader_changes += 1;
        }
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

    // ---------------------------------------------------------------- scheduling

    fn schedulable_nodes(&self) -> Vec<String> {
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
    fn pick_node(&self, avoid: Option<&str>) -> Option<String> {
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

    fn pods_lite(&self, ns: Option<&str>) -> Vec<Arc<Meta>> {
        self.store.metas(&PODS, ns)
    }

    fn host_ip(&self, node: &str) -> String {
        lock(&self.state)
            .hosts
            .get(node)
            .map_or_else(String::new, |h| h.ip.clone())
    }

    fn node_index(&self, node: &str) -> usize {
        lock(&self.state).hosts.get(node).map_or(0, |h| h.index)
    }

    /// Recreate a pod for its owner (after an eviction or deletion).
    fn recreate_for_owner(&self, deleted: &Value) {
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
                (
                    rs,
                    format!("{owner_name}-{}", super::store::short_suffix(id)),
                    node,
                )
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
                (
                    ds,
                    format!("{owner_name}-{}", super::store::short_suffix(id)),
                    Some(node),
                )
            }
            "InstanceManager" => {
                let Some(node) = old_node.clone() else { return };
                let Some(h) = self.inventory.by_name(&node).cloned() else {
                    return;
                };
                let ip = format!("10.42.{}.{}", self.node_index(&node) % 256, id % 250 + 2);
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
            .map(|n| format!("10.42.{}.{}", self.node_index(n) % 256, id % 250 + 2))
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
                let pod_ip = format!(
                    "10.42.{}.{}",
                    self.node_index(node) % 256,
                    self.next_id() % 250 + 2
                );
                let started = now();
                let _ = self.store.modify(&PODS, ns, name, |p| {
                    let containers: Vec<Value> = p["spec"]["containers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    p["status"] =
                        build::running_status(&containers, &host_ip, &pod_ip, &started, true);
                });
            }
        }
    }

    fn schedule_pending(&self) {
        let pending: Vec<(String, String)> = lock(&self.state).pending.iter().cloned().collect();
        for (ns, name) in pending {
            let Some(node) = self.pick_node(None) else {
                return;
            };
            let host_ip = self.host_ip(&node);
            let id = self.next_id();
            let pod_ip = format!("10.42.{}.{}", self.node_index(&node) % 256, id % 250 + 2);
            let started = now();
            let r = self.store.modify(&PODS, &ns, &name, |p| {
                p["spec"]["nodeName"] = json!(node);
                let containers: Vec<Value> = p["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                p["status"] = build::running_status(&containers, &host_ip, &pod_ip, &started, true);
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

    // ---------------------------------------------------------------- deletion and eviction

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
                p["metadata"]["deletionTimestamp"] = json!(super::store::timestamp(at));
                p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                if let Some(conds) = p
                    .pointer_mut("/status/conditions")
                    .and_then(Value::as_array_mut)
                {
                    for c in conds
                        .iter_mut()
                        .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
                    {
                        c["status"] = json!("False");
                    }
                }
                if let Some(cs) = p
                    .pointer_mut("/status/containerStatuses")
                    .and_then(Value::as_array_mut)
                {
                    for c in cs {
                        c["ready"] = json!(false);
                    }
                }
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

    /// The PDB status for `pdb` over the pods of its namespace.
    fn pdb_status(&self, pdb: &Value, pods: &[Arc<Meta>]) -> Value {
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
                && pod_ready(&pod)
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
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    // ---------------------------------------------------------------- recomputation

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

    // ---------------------------------------------------------------- nodes

    fn set_node_ready(&self, node: &str, ready: Option<bool>) {
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
            if taints.is_empty() {
                if let Some(s) = n["spec"].as_object_mut() {
                    s.remove("taints");
                }
            } else {
                n["spec"]["taints"] = json!(taints);
            }
        });
        // Pods on the node follow its readiness.
        let pods: Vec<Arc<Meta>> = self
            .store
            .metas(&PODS, None)
            .into_iter()
            .filter(|m| m.node.as_deref() == Some(node))
            .collect();
        let want = if ready == Some(true) { "True" } else { "False" };
        let mut namespaces = BTreeSet::new();
        for pl in pods.iter().filter(|p| !p.deleting) {
            namespaces.insert(pl.namespace.clone());
            let _ = self.store.modify(&PODS, &pl.namespace, &pl.name, |p| {
                if let Some(conds) = p
                    .pointer_mut("/status/conditions")
                    .and_then(Value::as_array_mut)
                {
                    for c in conds
                        .iter_mut()
                        .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
                    {
                        c["status"] = json!(want);
                    }
                }
                if let Some(cs) = p
                    .pointer_mut("/status/containerStatuses")
                    .and_then(Value::as_array_mut)
                {
                    for c in cs {
                        c["ready"] = json!(want == "True");
                    }
                }
            });
        }
        lock(&self.state).dirty.extend(namespaces);
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
        let world = self.clone();
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
            tokio::time::sleep(world.delay(world.timing.reboot)).await;
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
                (hs.index, hs.boots)
            });
            Self::elect(etcd, hosts);
            boots
        };
        if let Some((index, boots)) = boots {
            let _ = self.store.modify(&NODES, "", name, |n| {
                n["status"]["nodeInfo"]["bootID"] = json!(build::boot_id(index, boots));
            });
        }
        self.set_node_ready(name, Some(true));
        // The instance manager comes back with the node.
        let im = build::instance_manager_name(name);
        if self.store.get(&PODS, LONGHORN_NS, &im).is_none()
            && let Some(h) = self.inventory.by_name(name)
        {
            let ip = format!(
                "10.42.{}.{}",
                self.node_index(name) % 256,
                self.next_id() % 250 + 2
            );
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

    // ---------------------------------------------------------------- Longhorn

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
            let r = &super::store::parse(raw);
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
            let v = &super::store::parse(raw);
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
            let n = &super::store::parse(raw);
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

    // ---------------------------------------------------------------- controllers

    /// React to a change in the store.
    fn on_change(self: &Arc<Self>, c: &Change) {
        let res = c.resource;
        if res == PODS || res == PDBS {
            lock(&self.state).dirty.insert(c.namespace.clone());
        }
        if res == PODS && c.kind == EventType::Deleted {
            let world = self.clone();
            let deleted = c.value();
            tokio::spawn(async move {
                tokio::time::sleep(world.delay(world.timing.recreate)).await;
                world.recreate_for_owner(&deleted);
            });
        }
        if res == NODES
            && c.kind == EventType::Modified
            && let Some(old) = c.old_value()
        {
            let object = c.value();
            let was = old.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
            let is = object.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
            if was != is {
                let name = c.name.clone();
                let t = now();
                if let Ok(node) = self.store.modify(&NODES, "", &name, |n| {
                    let mut taints: Vec<Value> = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                    taints.retain(|t| t["key"] != "node.kubernetes.io/unschedulable");
                    if is {
                        taints.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": t}));
                    }
                    if taints.is_empty() {
                        if let Some(s) = n["spec"].as_object_mut() {
                            s.remove("taints");
                        }
                    } else {
                        n["spec"]["taints"] = json!(taints);
                    }
                }) {
                    let (reason, msg) = if is {
                        ("NodeNotSchedulable", format!("Node {name} status is now: NodeNotSchedulable"))
                    } else {
                        ("NodeSchedulable", format!("Node {name} status is now: NodeSchedulable"))
                    };
                    self.event(&node, "Normal", reason, &msg, "kubelet");
                }
            }
        }
    }

    /// Kubelets (and the control plane's leaders) renew their leases every 10 s while up.
    fn renew_leases(&self) {
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

    /// Time passing: etcd metrics and raft progress.
    fn tick_etcd(&self, dt: f64) {
        let mut s = lock(&self.state);
        let SimState { etcd, hosts, .. } = &mut *s;
        let has_leader = etcd.leader.is_some();
        if has_leader {
            let writes = (dt * 15.0 * self.speed).max(1.0);
            etcd.raft_index += writes as u64;
            etcd.revision += (writes / 2.0) as u64;
        }
        let index = etcd.raft_index;
        for m in etcd.members.iter_mut() {
            if !World::member_up(m, hosts) {
                continue;
            }
            let n = dt * 20.0 * self.speed;
            m.fsync
                .observe(n, if m.slow_disk { FSYNC_SLOW } else { FSYNC_FAST });
            m.commit.observe(
                n,
                if m.slow_disk {
                    COMMIT_SLOW
                } else {
                    COMMIT_FAST
                },
            );
            if has_leader {
                m.applied_index = index;
                m.db_size += (dt * 256.0 * self.speed) as u64;
            }
        }
    }

    /// Start the controllers; they stop when the returned handle is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let world = self.clone();
        let mut rx = self.store.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            let mut last_longhorn = Instant::now() - Duration::from_secs(10);
            let mut last_leases = Instant::now();
            // Longhorn's reconcile parses every replica and instance manager: less often on
            // big clusters.
            let longhorn_every = if world.inventory.hosts.len() > 50 {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(500)
            };
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Ok(c) => world.on_change(&c),
                        Err(RecvError::Lagged(_)) => {
                            let mut s = lock(&world.state);
                            s.dirty.extend(["apps", "kube-system", LONGHORN_NS, "monitoring"].map(String::from));
                        }
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let dt = last.elapsed().as_secs_f64();
                        last = Instant::now();
                        world.recompute_dirty();
                        world.schedule_pending();
                        world.tick_etcd(dt);
                        if last_longhorn.elapsed() >= longhorn_every {
                            last_longhorn = Instant::now();
                            world.reconcile_longhorn();
                        }
                        if last_leases.elapsed() >= Duration::from_secs(10) {
                            last_leases = Instant::now();
                            world.renew_leases();
                        }
                    }
                }
            }
        })
    }

    // ---------------------------------------------------------------- scenarios

    fn last_host(&self) -> Option<String> {
        self.inventory.hosts.last().map(|h| h.hostname.clone())
    }

    fn agent_or_last(&self) -> Option<String> {
        self.inventory
            .hosts
            .iter()
            .rev()
            .find(|h| h.role == Role::Agent)
            .or(self.inventory.hosts.last())
            .map(|h| h.hostname.clone())
    }

    /// Turn a scenario on (at start or at runtime).
    pub fn apply_scenario(self: &Arc<Self>, sc: &Scenario) -> Result<(), ApiError> {
        lock(&self.state).scenarios.insert(sc.to_string());
        match sc {
            Scenario::Healthy => {}
            Scenario::DegradedVolume => {
                let vol = build::volume_name(0);
                let (replicas, _) = self.store.list(&LH_REPLICAS, Some(LONGHORN_NS));
                if let Some(r) = replicas.iter().rfind(|r| {
                    r.pointer("/spec/volumeName").and_then(Value::as_str) == Some(vol.as_str())
                }) {
                    lock(&self.state)
                        .stuck_replicas
                        .insert(name_of(r).to_string());
                }
                self.reconcile_longhorn();
            }
            Scenario::LastReplica => {
                let Some(cp) = self
                    .inventory
                    .control_planes()
                    .next()
                    .map(|h| h.hostname.clone())
                else {
                    return Ok(());
                };
                let vname = build::volume_name(9000);
                if self.store.get(&LH_VOLUMES, LONGHORN_NS, &vname).is_none() {
                    let vol = build::volume_object(&vname, 1, 5, &cp, ("apps", "scratch"), None);
                    self.store.create(&LH_VOLUMES, vol)?;
                    self.store.create(
                        &LH_REPLICAS,
                        build::replica_object(&vname, &cp, &build::disk_id(&cp), 0, &now()),
                    )?;
                }
                self.reconcile_longhorn();
            }
            Scenario::EtcdMemberDown => {
                self.with_etcd(|etcd, hosts| {
                    if let Some(m) = etcd.members.last_mut() {
                        m.stopped = true;
                    }
                    Self::elect(etcd, hosts);
                });
            }
            Scenario::SlowDisk => {
                self.with_etcd(|etcd, _| {
                    let i = 1.min(etcd.members.len().saturating_sub(1));
                    if let Some(m) = etcd.members.get_mut(i) {
                        m.slow_disk = true;
                        // Enough slow samples that p99 shows at once.
                        m.fsync = Histogram::default();
                        m.fsync.observe(5000.0, FSYNC_SLOW);
                        m.commit = Histogram::default();
                        m.commit.observe(5000.0, COMMIT_SLOW);
                    }
                });
            }
            Scenario::NodeNeverReturns(h) => {
                let name = h.clone().or_else(|| self.last_host());
                let mut s = lock(&self.state);
                match name.and_then(|n| s.hosts.values_mut().find(|x| x.hostname == n || x.id == n))
                {
                    Some(hs) => hs.never_returns = true,
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "node-never-returns: no host \"{}\"",
                            h.clone().unwrap_or_default()
                        )));
                    }
                }
            }
            Scenario::PdbBlocks => {
                if self.store.get(&PDBS, "apps", "postgres").is_none() {
                    self.store.create(&PDBS, json!({"metadata": {"name": "postgres", "namespace": "apps"},
                        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "postgres"}}}}))?;
                }
                lock(&self.state).dirty.insert("apps".into());
                self.recompute_dirty();
            }
            Scenario::RebootNeeded => {
                let mut s = lock(&self.state);
                if let Some(h) = self.inventory.control_planes().next()
                    && let Some(hs) = s.hosts.get_mut(&h.hostname)
                {
                    hs.reboot_needed = true;
                }
            }
            Scenario::StaleBackup => {
                let vol = build::volume_name(0);
                let old = super::store::timestamp(
                    jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 6),
                );
                let _ = self.store.modify(&LH_VOLUMES, LONGHORN_NS, &vol, |v| {
                    v["status"]["lastBackupAt"] = json!(old);
                });
                let (backups, _) = self.store.list(&LH_BACKUPS, Some(LONGHORN_NS));
                for b in backups.iter().filter(|b| {
                    b.pointer("/status/volumeName").and_then(Value::as_str) == Some(vol.as_str())
                }) {
                    let _ = self
                        .store
                        .modify(&LH_BACKUPS, LONGHORN_NS, name_of(b), |b| {
                            b["status"]["backupCreatedAt"] = json!(old);
                            b["status"]["snapshotCreatedAt"] = json!(old);
                        });
                }
            }
            Scenario::UnreachableHost => {
                let Some(name) = self.agent_or_last() else {
                    return Ok(());
                };
                {
                    let mut s = lock(&self.state);
                    let SimState { hosts, etcd, .. } = &mut *s;
                    if let Some(hs) = hosts.get_mut(&name) {
                        hs.unreachable = true;
                        hs.up = false;
                    }
                    Self::elect(etcd, hosts);
                }
                self.set_node_ready(&name, None);
                self.reconcile_longhorn();
            }
        }
        self.recompute_dirty();
        Ok(())
    }

    /// Turn a scenario off at runtime.
    pub fn clear_scenario(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let sc: Scenario = name
            .parse()
            .map_err(|e: super::scenario::UnknownScenario| ApiError::bad_request(e.to_string()))?;
        {
            let mut s = lock(&self.state);
            s.scenarios
                .retain(|x| x.split('=').next() != Some(sc.name()));
        }
        match sc {
            Scenario::Healthy | Scenario::StaleBackup => {}
            Scenario::DegradedVolume => lock(&self.state).stuck_replicas.clear(),
            Scenario::LastReplica => {
                let vname = build::volume_name(9000);
                let (replicas, _) = self.store.list(&LH_REPLICAS, Some(LONGHORN_NS));
                for r in replicas.iter().filter(|r| {
                    r.pointer("/spec/volumeName").and_then(Value::as_str) == Some(vname.as_str())
                }) {
                    let _ = self.store.delete(&LH_REPLICAS, LONGHORN_NS, name_of(r));
                }
                let _ = self.store.delete(&LH_VOLUMES, LONGHORN_NS, &vname);
            }
            Scenario::EtcdMemberDown => self.with_etcd(|etcd, hosts| {
                for m in etcd.members.iter_mut() {
                    m.stopped = false;
                }
                Self::elect(etcd, hosts);
            }),
            Scenario::SlowDisk => self.with_etcd(|etcd, _| {
                for m in etcd.members.iter_mut() {
                    m.slow_disk = false;
                }
            }),
            Scenario::NodeNeverReturns(_) => {
                let stranded: Vec<String> = {
                    let mut s = lock(&self.state);
                    let mut out = Vec::new();
                    for h in s.hosts.values_mut() {
                        if h.never_returns && h.rebooting {
                            out.push(h.hostname.clone());
                        }
                        h.never_returns = false;
                    }
                    out
                };
                for h in stranded {
                    self.host_returns(&h);
                }
            }
            Scenario::PdbBlocks => {
                let _ = self.store.delete(&PDBS, "apps", "postgres");
            }
            Scenario::RebootNeeded => {
                for h in lock(&self.state).hosts.values_mut() {
                    h.reboot_needed = false;
                }
            }
            Scenario::UnreachableHost => {
                let back: Vec<String> = {
                    let mut s = lock(&self.state);
                    let mut out = Vec::new();
                    for h in s.hosts.values_mut().filter(|h| h.unreachable) {
                        h.unreachable = false;
                        out.push(h.hostname.clone());
                    }
                    out
                };
                for h in back {
                    self.host_returns(&h);
                }
            }
        }
        self.reconcile_longhorn();
        self.recompute_dirty();
        Ok(())
    }
}
