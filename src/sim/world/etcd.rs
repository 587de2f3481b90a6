//! The simulated etcd cluster's state: members (with their disk histograms), leader, raft
//! progress, and how it reacts to hosts going down (elections) and to time passing (metrics).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{HostState, SimState, World};
use crate::inventory::Inventory;
use crate::sim::build;
use crate::sim::sync::lock;

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
    /// The `etcd-nospace` scenario: the database is at its quota, NOSPACE raised.
    pub nospace: bool,
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

/// A member id: a large u64 (most exceed i64, as real ones do).
fn member_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | (1 << 63)
}

impl EtcdCluster {
    /// A healthy cluster: one member per control plane of `inventory`, the first one leading.
    pub(super) fn new(inventory: &Inventory) -> Self {
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
                    nospace: false,
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
        EtcdCluster {
            cluster_id: member_id("homeinfra-sim-cluster") >> 1,
            members,
            leader,
            raft_term: 4,
            raft_index: 184_467,
            revision: 151_233,
            leader_changes: 3,
            quota_bytes: 2 << 30,
        }
    }
}

impl EtcdMemberState {
    /// Give this member a slow disk (or a fast one again), with enough samples of the new
    /// latency that its p99 shows at once.
    pub(super) fn set_slow_disk(&mut self, slow: bool) {
        self.slow_disk = slow;
        if slow {
            self.fsync = Histogram::default();
            self.fsync.observe(5000.0, FSYNC_SLOW);
            self.commit = Histogram::default();
            self.commit.observe(5000.0, COMMIT_SLOW);
        }
    }
}

impl World {
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

    pub(super) fn elect(etcd: &mut EtcdCluster, hosts: &BTreeMap<String, HostState>) {
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

    /// Time passing: etcd metrics and raft progress.
    pub(super) fn tick_etcd(&self, dt: f64) {
        if self.frozen {
            return;
        }
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
}
