//! An in-memory cluster, hosts, health and virtual clock for tests and the benchmark (feature
//! `test-util`: never in the release build).
//! Every operation is recorded in [`FakeWorld::log`]; delays are virtual (sleeping advances the
//! clock at once), so timeouts of minutes take microseconds. Faults are plain fields.//!
//! The state and its builders are here; the trait implementations are in `cluster`,
//! `hosts` and `health`.

mod cluster;
mod health;
mod hosts;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use tokio::sync::Notify;

use super::world::{Alert, AutoUpgrade, DrainPod, LeaseRecord, ReadWorld, World, Writers};
use crate::inventory::Inventory;
use crate::model::cluster::{
    ClusterState, LONGHORN_VERSION, LonghornApi, LonghornNode, LonghornState, NodeInfo, Replica,
    Volume,
};
use crate::model::etcd::{EtcdMember, EtcdState};

#[derive(Debug, Clone, Default)]
pub struct FakeNode {
    pub ready: bool,
    pub unschedulable: bool,
    pub cordoned_by: Option<String>,
    pub kubelet_version: String,
    /// NotReady for this many more reads after a reboot.
    pub not_ready_reads: u32,
    /// After a reboot it never becomes Ready again.
    pub never_returns: bool,
    /// `status.nodeInfo.bootID` as last reported.
    pub boot_id: String,
    /// The bootID a reboot brings, reported once the node is Ready again (or, for a quick
    /// reboot, after `stale_reads` more reads).
    pub pending_boot_id: Option<String>,
    /// A quick reboot: the node never goes NotReady, and keeps reporting its old status (Ready,
    /// the old bootID) for this many reads after the reboot.
    pub stale_reads: u32,
    /// When `ready` last changed.
    pub ready_changed: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct FakePod {
    pub pod: DrainPod,
    pub node: String,
    /// Evictions are refused with 429 naming this PDB.
    pub blocked_by_pdb: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    pub booted: String,
    pub current: String,
    /// Generations so far (the last is current); rollback pops.
    pub generations: Vec<String>,
    /// The switch changes the kernel (a reboot is needed).
    pub kernel_changes: bool,
    pub booted_kernel: String,
    pub current_kernel: String,
    /// SSH probes that fail after a reboot.
    pub down_probes: u32,
    /// Boots so far (the boot id over SSH is `<id>-boot-<n>`).
    pub boots: u32,
    /// A reboot is quick: the host answers again at once (no probe fails).
    pub quick_reboot: bool,
    /// After a reboot the host answers nothing for this many probes (at least one).
    pub down_after_reboot: u32,
    pub fail_switch: bool,
    pub switch_lines: Vec<String>,
    pub auto_upgrade: AutoUpgrade,
    /// k3s version after the switch.
    pub new_k3s: String,
    /// k3s version after a rollback.
    pub old_k3s: String,
    pub k3s: String,
    /// The host's revert timer, once armed (until disarmed; kept, fired, once it fired).
    pub revert: Option<FakeRevert>,
    /// `switch-breaks-network`: the switch activates (exit 0), then the host answers nothing
    /// (its node NotReady) until its revert timer fires.
    pub switch_breaks_network: bool,
    /// Cut off by a switch that broke its network.
    pub cut_off: bool,
}

/// A fake host's revert timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRevert {
    pub unit: String,
    pub previous: String,
    pub fires_at: Timestamp,
    pub fired: bool,
}

impl FakeHost {
    /// Fire the revert timer when its time has come: the profile set back to the previous
    /// system, that system activated, the network back.
    pub(crate) fn tick(&mut self, now: Timestamp) -> bool {
        let Some(r) = self.revert.as_mut() else {
            return false;
        };
        if r.fired || now < r.fires_at {
            return false;
        }
        r.fired = true;
        let previous = r.previous.clone();
        self.generations.push(previous.clone());
        self.current = previous;
        self.current_kernel = self.booted_kernel.clone();
        self.k3s = self.old_k3s.clone();
        self.cut_off = false;
        true
    }
}

/// The whole fake world's state (lock it through [`FakeWorld::state`]).
#[derive(Debug, Default)]
pub struct FakeState {
    pub nodes: BTreeMap<String, FakeNode>,
    pub pods: Vec<FakePod>,
    pub hosts: BTreeMap<String, FakeHost>,
    pub lease: Option<LeaseRecord>,
    pub lease_version: u64,
    pub longhorn: LonghornState,
    pub etcd: Option<EtcdState>,
    /// etcd members (by host id) forced down.
    pub etcd_down: Vec<String>,
    pub alerts: Option<Vec<Alert>>,
    /// Series count per gate query.
    pub gates: BTreeMap<String, usize>,
    /// Why each health input could not be read (a fault): cluster, etcd, metrics.
    pub cluster_error: Option<String>,
    pub etcd_error: Option<String>,
    pub metrics_error: Option<String>,
    /// How old the health inputs are when gathered (their read time is `now` minus this).
    pub health_age: std::time::Duration,
    /// This many Lease updates (renewals) fail with an API error.
    pub lease_update_failures: u32,
    /// A Longhorn replica (by name) fails once this many pods were evicted (a replica failing
    /// elsewhere during a drain).
    pub fail_replica_after_evictions: Option<(String, usize)>,
    pub evictions: usize,
    pub now: Timestamp,
    /// Operations in order: `cordon node1`, `evict ns/pod`, `switch host1`, ...
    pub log: Vec<String>,
    /// Freeze (never return) at the n-th (1-based) call of this operation.
    pub freeze_at: Option<(String, usize)>,
    pub counts: BTreeMap<String, usize>,
    pub frozen: bool,
    /// k3s's `ETCDSnapshotFile` records (`k3s etcd-snapshot save` adds one).
    pub snapshots: Vec<crate::model::recovery::EtcdSnapshot>,
    /// `k3s etcd-snapshot save` fails with this error (exit status 1).
    pub snapshot_error: Option<String>,
    /// The snapshot's record never becomes ready to use.
    pub snapshot_never_ready: bool,
    /// The answers of the next reads of the engines' rebuild status, in order (then
    /// `longhorn.rebuilds`, every time).
    pub rebuild_reads:
        std::collections::VecDeque<Result<Vec<crate::model::cluster::ReplicaRebuild>, String>>,
    /// Reading Longhorn's settings fails with this.
    pub settings_error: Option<String>,
}

/// The fake world: implements every trait of `world`.
#[derive(Debug, Default)]
pub struct FakeWorld {
    state: Mutex<FakeState>,
    frozen: Notify,
}

impl FakeWorld {
    /// A healthy cluster from an inventory: every node Ready, every host reachable, etcd
    /// members on the control planes (the first one leads), one healthy 3-replica volume.
    pub fn healthy(inv: &Inventory) -> Arc<Self> {
        let mut st = FakeState {
            now: Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH),
            ..Default::default()
        };
        let mut members = Vec::new();
        for (i, h) in inv.hosts.iter().enumerate() {
            st.nodes.insert(
                h.hostname.clone(),
                FakeNode {
                    ready: true,
                    kubelet_version: "v1.30.4+k3s1".into(),
                    boot_id: format!("{}-nodeboot-0", h.hostname),
                    ..Default::default()
                },
            );
            let sys = format!("/nix/store/aaaa-nixos-system-{}-1", h.hostname);
            st.hosts.insert(
                h.id.clone(),
                FakeHost {
                    booted: sys.clone(),
                    current: sys.clone(),
                    generations: vec![sys],
                    kernel_changes: true,
                    booted_kernel: "/nix/store/k1-linux-6.6.1/bzImage".into(),
                    current_kernel: "/nix/store/k1-linux-6.6.1/bzImage".into(),
                    switch_lines: vec![
                        "building the system configuration...".into(),
                        "activating the configuration...".into(),
                    ],
                    k3s: "v1.30.4+k3s1".into(),
                    new_k3s: "v1.31.2+k3s1".into(),
                    old_k3s: "v1.30.4+k3s1".into(),
                    auto_upgrade: AutoUpgrade {
                        running: Some(false),
                        next_run: None,
                        timer_present: true,
                    },
                    ..Default::default()
                },
            );
            st.pods.push(FakePod {
                pod: DrainPod {
                    namespace: "default".into(),
                    name: format!("web-{i}"),
                    ..Default::default()
                },
                node: h.hostname.clone(),
                blocked_by_pdb: None,
            });
            st.pods.push(FakePod {
                pod: DrainPod {
                    namespace: "kube-system".into(),
                    name: format!("svclb-{i}"),
                    daemonset: true,
                    ..Default::default()
                },
                node: h.hostname.clone(),
                blocked_by_pdb: None,
            });
            if h.role.is_control_plane() {
                members.push(EtcdMember {
                    id: (i as u64) + 1,
                    name: format!("{}-0000abcd", h.hostname),
                    client_urls: vec![format!("https://{}:2379", h.ip)],
                    reachable: true,
                    healthy: true,
                    has_leader: Some(true),
                    raft_index: Some(100),
                    ..Default::default()
                });
            }
        }
        if let Some(m) = members.first_mut() {
            m.is_leader = true;
        }
        let leader = members.first().map(|m| m.id);
        st.etcd = (!members.is_empty()).then(|| EtcdState {
            members,
            leader,
            ..Default::default()
        });
        st.alerts = Some(Vec::new());
        st.longhorn.installed = true;
        st.longhorn.api = LonghornApi::Served {
            versions: vec![LONGHORN_VERSION.to_string()],
        };
        st.longhorn.version = LONGHORN_VERSION.to_string();
        st.longhorn.namespace = "longhorn-system".into();
        for h in inv.hosts.iter() {
            st.longhorn.nodes.push(LonghornNode {
                name: h.hostname.clone(),
                ready: true,
                schedulable: true,
                disks: Vec::new(),
            });
        }
        st.longhorn.volumes.push(Volume {
            name: "pvc-data".into(),
            number_of_replicas: 3,
            state: "attached".into(),
            robustness: "healthy".into(),
            ..Default::default()
        });
        for (i, h) in inv.hosts.iter().take(3).enumerate() {
            st.longhorn.replicas.push(Replica {
                name: format!("pvc-data-r{i}"),
                volume: "pvc-data".into(),
                node: h.hostname.clone(),
                current_state: "running".into(),
                healthy: true,
                rebuilding: false,
            });
        }
        Arc::new(FakeWorld {
            state: Mutex::new(st),
            frozen: Notify::new(),
        })
    }

    /// The world to hand to the engine (this fake plays every part).
    pub fn world(self: &Arc<Self>) -> World {
        World {
            read: self.read_world(),
            write: Writers::new(&crate::testing::writes(), self.clone(), self.clone()),
        }
    }

    /// The read-only half (what a plan or a dry run gets).
    pub fn read_world(self: &Arc<Self>) -> ReadWorld {
        ReadWorld {
            cluster: self.clone(),
            hosts: self.clone(),
            health: self.clone(),
            clock: self.clone(),
        }
    }

    /// Lock the state (tests set faults and read results through this).
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// Make the n-th call of `op` (`node`, `cordon`, `uncordon`, `pods`, `evict`, `exec`,
    /// `boot`, `reboot`, `reachable`, `health`, `sleep`, ...) hang forever.
    pub fn freeze_at(&self, op: &str, nth: usize) {
        let mut st = self.state();
        st.freeze_at = Some((op.to_string(), nth));
        st.counts.clear();
        st.frozen = false;
    }

    /// Stop freezing (before resuming).
    pub fn unfreeze(&self) {
        let mut st = self.state();
        st.freeze_at = None;
        st.frozen = false;
    }

    /// Resolves once an operation froze.
    pub async fn wait_frozen(&self) {
        loop {
            let notified = self.frozen.notified();
            if self.state().frozen {
                return;
            }
            notified.await;
        }
    }

    async fn checkpoint(&self, op: &str) {
        let freeze = {
            let mut st = self.state();
            let n = st.counts.entry(op.to_string()).or_insert(0);
            *n += 1;
            let n = *n;
            let hit = st
                .freeze_at
                .as_ref()
                .is_some_and(|(o, nth)| o == op && *nth == n);
            if hit {
                st.frozen = true;
            }
            hit
        };
        if freeze {
            self.frozen.notify_waiters();
            std::future::pending::<()>().await;
        }
    }

    /// The cluster as the sources would report it.
    pub fn cluster_state(&self) -> ClusterState {
        let st = self.state();
        ClusterState {
            server_version: Some("v1.30.4+k3s1".into()),
            nodes: st
                .nodes
                .iter()
                .map(|(name, n)| NodeInfo {
                    name: name.clone(),
                    ready: Some(n.ready),
                    unschedulable: n.unschedulable,
                    kubelet_version: n.kubelet_version.clone(),
                    cordoned_by_run: n.cordoned_by.clone(),
                    ..Default::default()
                })
                .collect(),
            pods: Default::default(),
            pdbs: Vec::new(),
            longhorn: st.longhorn.clone(),
            etcd_snapshots: None,
            certificates: None,
        }
    }
}

/// A test inventory: `n` hosts, the first three control planes (`init`, `server`, `server`),
/// the rest agents (see [`crate::testing::cluster`]).
pub fn inventory(n: usize) -> Inventory {
    crate::testing::cluster(n)
}
