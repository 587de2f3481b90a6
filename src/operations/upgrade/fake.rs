//! An in-memory cluster, hosts, health and virtual clock for tests and the benchmark (feature
//! `test-util`: never in the release build).
//! Every operation is recorded in [`FakeWorld::log`]; delays are virtual (sleeping advances the
//! clock at once), so timeouts of minutes take microseconds. Faults are plain fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::{Notify, mpsc};

use super::world::{
    Alert, AutoUpgrade, BootState, ClusterOps, CommandSpec, DrainPod, Eviction, GateResult,
    HealthInputs, HealthProvider, HostOps, LeaseRecord, LeaseWrite, NodeStatus, World,
};
use crate::inventory::{Host, Inventory};
use crate::model::cluster::{ClusterState, LonghornState, NodeInfo, Replica, Volume};
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
    pub fail_switch: bool,
    pub switch_lines: Vec<String>,
    pub auto_upgrade: AutoUpgrade,
    /// k3s version after the switch.
    pub new_k3s: String,
    /// k3s version after a rollback.
    pub old_k3s: String,
    pub k3s: String,
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
    pub now: Timestamp,
    /// Operations in order: `cordon node1`, `evict ns/pod`, `switch host1`, ...
    pub log: Vec<String>,
    /// Freeze (never return) at the n-th (1-based) call of this operation.
    pub freeze_at: Option<(String, usize)>,
    pub counts: BTreeMap<String, usize>,
    pub frozen: bool,
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
        st.longhorn.installed = true;
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
            pods: Vec::new(),
            pdbs: Vec::new(),
            longhorn: st.longhorn.clone(),
        }
    }
}

fn host_of<'a>(st: &'a mut FakeState, host: &Host) -> Result<&'a mut FakeHost> {
    st.hosts
        .get_mut(&host.id)
        .ok_or_else(|| eyre!("fake: no host {}", host.id))
}

impl ClusterOps for FakeWorld {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>> {
        Box::pin(async move {
            self.checkpoint("node").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            if n.not_ready_reads > 0 {
                n.not_ready_reads -= 1;
                if n.not_ready_reads == 0 && !n.never_returns {
                    n.ready = true;
                }
            }
            Ok(NodeStatus {
                ready: Some(n.ready),
                unschedulable: n.unschedulable,
                cordoned_by: n.cordoned_by.clone(),
                kubelet_version: n.kubelet_version.clone(),
            })
        })
    }

    fn cordon<'a>(&'a self, node: &'a str, run_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("cordon").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            n.unschedulable = true;
            n.cordoned_by = Some(run_id.to_string());
            st.log.push(format!("cordon {node}"));
            Ok(())
        })
    }

    fn uncordon<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("uncordon").await;
            let mut st = self.state();
            let n = st
                .nodes
                .get_mut(node)
                .ok_or_else(|| eyre!("node {node} not found"))?;
            n.unschedulable = false;
            n.cordoned_by = None;
            st.log.push(format!("uncordon {node}"));
            Ok(())
        })
    }

    fn pods_on<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<DrainPod>>> {
        Box::pin(async move {
            self.checkpoint("pods").await;
            let mut st = self.state();
            // Terminating pods are gone by the next look.
            st.pods.retain(|p| !(p.node == node && p.pod.deleting));
            Ok(st
                .pods
                .iter()
                .filter(|p| p.node == node)
                .map(|p| p.pod.clone())
                .collect())
        })
    }

    fn evict<'a>(
        &'a self,
        pod: &'a DrainPod,
        _grace_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Eviction>> {
        Box::pin(async move {
            self.checkpoint("evict").await;
            let mut st = self.state();
            let Some(p) = st.pods.iter_mut().find(|p| p.pod.key() == pod.key()) else {
                return Ok(Eviction::Gone);
            };
            if let Some(pdb) = &p.blocked_by_pdb {
                let pdb = pdb.clone();
                st.log.push(format!("evict-blocked {}", pod.key()));
                return Ok(Eviction::Blocked {
                    pdb: Some(pdb),
                    message: "Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                });
            }
            p.pod.deleting = true;
            st.log.push(format!("evict {}", pod.key()));
            Ok(Eviction::Accepted)
        })
    }

    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>> {
        Box::pin(async move {
            self.checkpoint("lease").await;
            Ok(self.state().lease.clone())
        })
    }

    fn create_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            if st.lease.is_some() {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease_version += 1;
            let mut r = rec.clone();
            r.resource_version = Some(st.lease_version.to_string());
            st.lease = Some(r);
            st.log.push(format!("lease-create {}", rec.holder));
            Ok(LeaseWrite::Done)
        })
    }

    fn update_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            let cur = st.lease.as_ref().and_then(|l| l.resource_version.clone());
            if cur.is_none() || cur != rec.resource_version {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease_version += 1;
            let mut r = rec.clone();
            r.resource_version = Some(st.lease_version.to_string());
            st.lease = Some(r);
            Ok(LeaseWrite::Done)
        })
    }

    fn delete_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut st = self.state();
            let cur = st.lease.as_ref().and_then(|l| l.resource_version.clone());
            if cur != rec.resource_version {
                return Ok(LeaseWrite::Conflict);
            }
            st.lease = None;
            st.log.push("lease-release".into());
            Ok(LeaseWrite::Done)
        })
    }
}

impl HostOps for FakeWorld {
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        _timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move {
            self.checkpoint("exec").await;
            let mut st = self.state();
            let text = command.text().to_string();
            let rollback = text.contains("--rollback");
            let node = host.hostname.clone();
            let h = host_of(&mut st, host)?;
            if rollback {
                if h.generations.len() > 1 {
                    h.generations.pop();
                }
                h.current = h.generations.last().cloned().unwrap_or_default();
                h.current_kernel = h.booted_kernel.clone();
                h.k3s = h.old_k3s.clone();
                let old = h.k3s.clone();
                let _ = lines.send("switching to the previous generation".into());
                st.log.push(format!("rollback {}", host.id));
                if let Some(n) = st.nodes.get_mut(&node) {
                    n.kubelet_version = old;
                }
                return Ok(Some(0));
            }
            for l in &h.switch_lines {
                let _ = lines.send(l.clone());
            }
            if h.fail_switch {
                let _ = lines.send("error: builder for '/nix/store/x.drv' failed".into());
                st.log.push(format!("switch-failed {}", host.id));
                return Ok(Some(1));
            }
            let next = format!(
                "/nix/store/bbbb-nixos-system-{}-{}",
                host.hostname,
                h.generations.len() + 1
            );
            h.generations.push(next.clone());
            h.current = next;
            if h.kernel_changes {
                h.current_kernel = "/nix/store/k2-linux-6.6.8/bzImage".into();
            }
            h.k3s = h.new_k3s.clone();
            let new_k3s = h.k3s.clone();
            st.log.push(format!("switch {}", host.id));
            // The switch restarts k3s with the new package.
            if let Some(n) = st.nodes.get_mut(&node) {
                n.kubelet_version = new_k3s;
            }
            Ok(Some(0))
        })
    }

    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>> {
        Box::pin(async move {
            self.checkpoint("boot").await;
            let mut st = self.state();
            let h = host_of(&mut st, host)?;
            let needed = h.current_kernel != h.booted_kernel;
            Ok(BootState {
                booted_system: Some(h.booted.clone()),
                current_system: Some(h.current.clone()),
                reboot_needed: Some(needed),
                reasons: if needed {
                    vec!["kernel".into()]
                } else {
                    Vec::new()
                },
            })
        })
    }

    fn reboot<'a>(&'a self, host: &'a Host, _command: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("reboot").await;
            let mut st = self.state();
            let node = host.hostname.clone();
            let h = host_of(&mut st, host)?;
            h.booted = h.current.clone();
            h.booted_kernel = h.current_kernel.clone();
            h.down_probes = 1;
            let k3s = h.k3s.clone();
            if let Some(n) = st.nodes.get_mut(&node) {
                n.ready = false;
                n.not_ready_reads = 2;
                n.kubelet_version = k3s;
            }
            st.log.push(format!("reboot {}", host.id));
            Ok(())
        })
    }

    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.checkpoint("reachable").await;
            let mut st = self.state();
            match st.hosts.get_mut(&host.id) {
                Some(h) if h.down_probes > 0 => {
                    h.down_probes -= 1;
                    false
                }
                Some(_) => true,
                None => false,
            }
        })
    }

    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>> {
        Box::pin(async move {
            self.checkpoint("auto-upgrade").await;
            let mut st = self.state();
            Ok(host_of(&mut st, host)?.auto_upgrade.clone())
        })
    }

    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let mut st = self.state();
            Ok(Some(host_of(&mut st, host)?.k3s.clone()))
        })
    }
}

impl HealthProvider for FakeWorld {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            self.checkpoint("health").await;
            let cluster = self.cluster_state();
            let st = self.state();
            let etcd = st.etcd.clone().map(|mut e| {
                // A member is down while its node is NotReady, or when forced down.
                for m in &mut e.members {
                    let host_node = st
                        .nodes
                        .iter()
                        .find(|(name, _)| m.name.starts_with(&format!("{name}-")));
                    let node_down = host_node.is_some_and(|(_, n)| !n.ready);
                    let forced = st
                        .etcd_down
                        .iter()
                        .any(|h| m.name.starts_with(&format!("{h}-")));
                    if node_down || forced {
                        m.healthy = false;
                        m.reachable = false;
                        m.error = Some("connection refused".into());
                        if m.is_leader {
                            m.is_leader = false;
                        }
                    }
                }
                if e.leader_member().is_none_or(|m| !m.healthy) {
                    e.leader = e.members.iter().find(|m| m.healthy).map(|m| m.id);
                }
                Ok(e)
            });
            HealthInputs {
                cluster: Ok(cluster),
                etcd,
                alerts: st.alerts.clone().map(Ok),
                gates: gates
                    .iter()
                    .map(|q| GateResult {
                        query: q.clone(),
                        series: Ok(st.gates.get(q).copied().unwrap_or(0)),
                    })
                    .collect(),
            }
        })
    }
}

impl super::world::Clock for FakeWorld {
    fn now(&self) -> Timestamp {
        self.state().now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.checkpoint("sleep").await;
            {
                let mut st = self.state();
                let sd = jiff::SignedDuration::try_from(d).unwrap_or_default();
                st.now = st.now.checked_add(sd).unwrap_or(st.now);
            }
            tokio::task::yield_now().await;
        })
    }
}

/// A test inventory: `n` hosts, the first three control planes (`init`, `server`, `server`),
/// the rest agents (see [`crate::testing::cluster`]).
pub fn inventory(n: usize) -> Inventory {
    crate::testing::cluster(n)
}
