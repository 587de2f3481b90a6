//! Scenarios (faults) turned on and off, at start or at runtime through `/sim/v1/faults`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{SimState, World};
use crate::inventory::Role;
use crate::sim::build::{self, LONGHORN_NS};
use crate::sim::faults::{FaceFault, FaultKind};
use crate::sim::resources::*;
use crate::sim::scenario::{Scenario, UnknownScenario};
use crate::sim::store::{ApiError, name_of, now, timestamp};
use crate::sim::sync::lock;
use crate::sim::systems::{self, Pins, System};

/// Whether a scenario's text names a per-face fault (`hang=etcd`, `slow=mimir:5`).
fn is_face_fault(text: &str) -> bool {
    text.split('=')
        .next()
        .is_some_and(|k| crate::sim::faults::KINDS.contains(&k))
}

impl World {
    /// `watch-relist`: while the watches are away, a pod is added, one deleted and a node
    /// relabelled, so the relist brings changed objects.
    fn change_for_relist(&self) -> Result<(), ApiError> {
        let n = self.next_id();
        let node = self
            .inventory
            .hosts
            .first()
            .map(|h| h.hostname.clone())
            .unwrap_or_default();
        let (pods, _) = self.store.list(&PODS, Some("apps"));
        if let Some(p) = pods
            .iter()
            .find(|p| p["metadata"]["ownerReferences"].is_null())
        {
            let _ = self.store.delete(&PODS, "apps", name_of(p));
        } else if let Some(p) = pods.first() {
            let _ = self.store.delete(&PODS, "apps", name_of(p));
        }
        self.store.create(
            &PODS,
            json!({"metadata": {"name": format!("relist-{n}"), "namespace": "apps",
                    "labels": {"app": "relist"}},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
                "status": {"phase": "Running", "podIP": "10.42.0.250",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "main", "ready": true, "restartCount": 0,
                        "state": {"running": {}}}]}}),
        )?;
        let _ = self.store.modify(&NODES, "", &node, |o| {
            o["metadata"]["labels"]["homeinfra.sim/relist"] = json!(n.to_string());
        });
        Ok(())
    }

    /// Remove every snapshot record.
    fn clear_snapshots(&self) {
        let (snaps, _) = self.store.list(&ETCD_SNAPSHOTS, None);
        for o in &snaps {
            let _ = self.store.delete(&ETCD_SNAPSHOTS, "", name_of(o));
        }
    }

    /// Longhorn's backup target available or not (with Longhorn's condition message).
    fn set_backup_target(&self, available: bool) {
        let _ = self
            .store
            .modify(&LH_BACKUPTARGETS, LONGHORN_NS, "default", |t| {
                t["status"]["available"] = json!(available);
                t["status"]["conditions"] = if available {
                    json!([])
                } else {
                    json!([{"type": "Unavailable", "status": "True", "reason": "Unavailable",
                        "message": "failed to list backup volumes: dial tcp: lookup s3.us-east-1.amazonaws.com: i/o timeout"}])
                };
            });
    }

    pub(super) fn last_host(&self) -> Option<String> {
        self.inventory.hosts.last().map(|h| h.hostname.clone())
    }

    pub(super) fn agent_or_last(&self) -> Option<String> {
        self.inventory
            .hosts
            .iter()
            .rev()
            .find(|h| h.role == Role::Agent)
            .or(self.inventory.hosts.last())
            .map(|h| h.hostname.clone())
    }

    /// The host of `drifted-host`: the second one (the first when there is one).
    pub(super) fn drift_host(&self) -> Option<String> {
        self.inventory
            .hosts
            .get(1)
            .or(self.inventory.hosts.first())
            .map(|h| h.hostname.clone())
    }

    /// The flake's lock with another k3s.
    fn pin_k3s(&self, k3s: &str) {
        let pins = self.flake_pins().with_k3s(k3s);
        self.set_flake_pins(pins);
    }

    /// Turn a scenario on (at start or at runtime).
    pub fn apply_scenario(self: &Arc<Self>, sc: &Scenario) -> Result<(), ApiError> {
        match sc {
            Scenario::HostDown(None) => {
                return Err(ApiError::bad_request(
                    "host-down needs =HOST:SECONDS, e.g. host-down=node2:30",
                ));
            }
            Scenario::LeaseFails(None) => {
                return Err(ApiError::bad_request(
                    "lease-fails needs =SECONDS, e.g. lease-fails=20",
                ));
            }
            Scenario::ReplenishmentWait(None) => {
                return Err(ApiError::bad_request(
                    "replenishment-wait needs =SECONDS, e.g. replenishment-wait=60",
                ));
            }
            Scenario::Face(f) if f.face.is_none() || f.bare => {
                return Err(ApiError::bad_request(format!(
                    "{} needs ={}, e.g. {}",
                    f.kind.name(),
                    if f.bare || matches!(f.kind, FaultKind::Slow(_) | FaultKind::Flap(_)) {
                        "FACE:SECONDS"
                    } else {
                        "FACE"
                    },
                    if matches!(f.kind, FaultKind::Slow(_) | FaultKind::Flap(_)) {
                        format!("{}=etcd:5", f.kind.name())
                    } else {
                        format!("{}=etcd", f.kind.name())
                    }
                )));
            }
            Scenario::SshCut(h) | Scenario::HostKeyChanged(h)
                if h.as_deref().is_none_or(|h| self.host(h).is_none()) =>
            {
                return Err(ApiError::bad_request(format!(
                    "{} needs =HOST with HOST a simulated host, e.g. {}=node2",
                    sc.name(),
                    sc.name()
                )));
            }
            Scenario::HostDown(Some((h, _))) if self.host(h).is_none() => {
                return Err(ApiError::bad_request(format!("host-down: no host \"{h}\"")));
            }
            _ => {}
        }
        {
            let mut s = lock(&self.state);
            if let Scenario::Face(FaceFault {
                face: Some(face), ..
            }) = sc
            {
                // One fault per face: a new one replaces the old.
                s.scenarios.retain(|x| {
                    x.split_once('=').map(|(_, a)| a.split(':').next()) != Some(Some(face.as_str()))
                        || !is_face_fault(x)
                });
            }
            s.scenarios.insert(sc.to_string());
        }
        match sc {
            Scenario::Face(f) => {
                if let Some(face) = &f.face {
                    self.face_faults.set(face, f.kind);
                }
            }
            Scenario::WatchGone | Scenario::WatchDrop => {
                if *sc == Scenario::WatchGone {
                    self.face_faults
                        .set_gone_below(Some(self.store.resource_version() + 1));
                }
                self.face_faults.drop_watches();
            }
            Scenario::SshCut(h) | Scenario::HostKeyChanged(h) => {
                let name = h
                    .as_deref()
                    .and_then(|h| self.host(h))
                    .map(|x| x.hostname)
                    .unwrap_or_default();
                if matches!(sc, Scenario::SshCut(_)) {
                    self.face_faults.set_ssh_cut(&name, true);
                } else {
                    self.face_faults.set_host_key_changed(&name, true);
                }
            }
            Scenario::WatchRelist => {
                self.face_faults
                    .set_gone_below(Some(self.store.resource_version() + 1));
                self.face_faults.drop_watches();
                self.change_for_relist()?;
            }
            Scenario::LonghornV1beta1 => lock(&self.state).faults.longhorn_v1beta1 = true,
            Scenario::LonghornOtherNamespace => {
                lock(&self.state).faults.longhorn_other_namespace = true;
            }
            Scenario::EtcdMetricsMissing => lock(&self.state).faults.etcd_missing = true,
            Scenario::ReplicaFailsDuringDrain => {
                lock(&self.state).faults.replica_fails_during_drain = true;
            }
            Scenario::QuickReboot => lock(&self.state).faults.quick_reboot = true,
            Scenario::SwitchBreaksNetwork => {
                lock(&self.state).faults.switch_breaks_network = true;
            }
            Scenario::NewKernelPanics => lock(&self.state).faults.new_kernel_panics = true,
            Scenario::GrubNoSavedDefault(h) => {
                let name = h.clone().or_else(|| self.last_host()).unwrap_or_default();
                if !self.set_loader(
                    &name,
                    crate::sim::systems::SimLoader::Grub { grubenv: false },
                ) {
                    return Err(ApiError::bad_request(format!(
                        "grub-no-saved-default: no host \"{name}\""
                    )));
                }
            }
            Scenario::HostDown(Some((h, secs))) => {
                let name = self.host(h).map(|x| x.hostname).unwrap_or_default();
                lock(&self.state)
                    .faults
                    .host_down
                    .insert(name, std::time::Duration::from_secs(*secs));
            }
            Scenario::LeaseFails(Some(secs)) => {
                lock(&self.state).faults.lease_fails_until =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(*secs));
            }
            Scenario::HostDown(None)
            | Scenario::LeaseFails(None)
            | Scenario::ReplenishmentWait(None) => {}
            Scenario::SlowRebuild(secs) => {
                lock(&self.state).faults.slow_rebuild =
                    Some(std::time::Duration::from_secs(secs.unwrap_or(60)));
            }
            Scenario::ReplenishmentWait(Some(secs)) => {
                self.set_longhorn_setting(build::REPLENISHMENT_WAIT, &secs.to_string());
            }
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
                        m.set_slow_disk(true);
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
                    // It booted an older kernel than its current one (as its facts say).
                    if hs.booted_kernel == hs.kernel {
                        drop(s);
                        self.set_node_kernel(&h.hostname, build::OLD_KERNEL);
                    }
                }
            }
            Scenario::StaleBackup => {
                let vol = build::volume_name(0);
                let old =
                    timestamp(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 6));
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
            Scenario::StaleEtcdSnapshot => {
                self.clear_snapshots();
                build::recovery::scheduled_snapshots(&self.store, &self.inventory, 72)?;
            }
            Scenario::SnapshotFailing => {
                self.with_recovery(|r| r.snapshot_failing = true);
                if let Some(cp) = self.inventory.control_planes().next() {
                    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(40);
                    let file = build::recovery::snapshot_file("etcd-snapshot", &cp.hostname, at);
                    let obj = build::recovery::snapshot_object(
                        &cp.hostname,
                        &file,
                        at,
                        Some(super::SNAPSHOT_FAILURE),
                    );
                    if self.store.get(&ETCD_SNAPSHOTS, "", name_of(&obj)).is_none() {
                        self.store.create(&ETCD_SNAPSHOTS, obj)?;
                    }
                }
            }
            Scenario::CertExpiring => {
                if let Some(cp) = self.inventory.control_planes().next() {
                    let h = cp.hostname.clone();
                    self.with_recovery(|r| r.expiring_cert.insert(h));
                }
            }
            Scenario::SecretMissing => {
                if let Some(h) = self.last_host() {
                    self.with_recovery(|r| r.missing_secret.insert(h));
                }
            }
            Scenario::ClockSkew => {
                if let Some(h) = self.last_host() {
                    self.with_recovery(|r| r.clock_skew_ms.insert(h, 2_500.0));
                }
            }
            Scenario::EtcdNospace => self.with_etcd(|etcd, _| {
                if let Some(m) = etcd.members.first_mut() {
                    m.nospace = true;
                }
            }),
            Scenario::BackupTargetDown => self.set_backup_target(false),
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
            Scenario::K3sMinorBump => self.pin_k3s(systems::K3S_NEXT_MINOR),
            Scenario::K3sSkipMinor => self.pin_k3s(systems::K3S_SKIP_MINOR),
            Scenario::K3sDowngrade => self.pin_k3s(systems::K3S_OLDER_MINOR),
            Scenario::KernelUpdate => {
                let k3s = self.flake_pins().k3s;
                self.set_flake_pins(Pins::kernel_only().with_k3s(&k3s));
            }
            Scenario::NoChange => {
                if let Some(name) = self.agent_or_last()
                    && let Some(target) = self.flake_system(&name)
                {
                    self.deploy_and_boot(&name, (*target).clone());
                }
            }
            Scenario::DriftedHost => {
                if let Some(name) = self.drift_host()
                    && let Some(target) = self.flake_system(&name)
                {
                    let hand = System {
                        config: 1,
                        ..(*target).clone()
                    };
                    self.deploy_and_boot(&name, hand);
                }
            }
        }
        self.recompute_dirty();
        Ok(())
    }

    /// Turn a scenario off at runtime.
    pub fn clear_scenario(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let sc: Scenario = name
            .parse()
            .map_err(|e: UnknownScenario| ApiError::bad_request(e.to_string()))?;
        {
            let mut s = lock(&self.state);
            match &sc {
                Scenario::Face(FaceFault {
                    face: Some(face), ..
                }) => {
                    let named = format!("{}={face}", sc.name());
                    s.scenarios
                        .retain(|x| x.split(':').next() != Some(named.as_str()));
                }
                _ => s
                    .scenarios
                    .retain(|x| x.split('=').next() != Some(sc.name())),
            }
        }
        match sc {
            Scenario::Face(f) => self
                .face_faults
                .clear(Some(f.kind.name()), f.face.as_deref()),
            Scenario::WatchGone | Scenario::WatchRelist => self.face_faults.set_gone_below(None),
            Scenario::WatchDrop => {}
            Scenario::SshCut(_) => self.face_faults.set_ssh_cut("", false),
            Scenario::HostKeyChanged(_) => self.face_faults.set_host_key_changed("", false),
            // A deployed system stays deployed: clearing these only forgets the name.
            Scenario::Healthy
            | Scenario::StaleBackup
            | Scenario::NoChange
            | Scenario::DriftedHost => {}
            Scenario::K3sMinorBump | Scenario::K3sSkipMinor | Scenario::K3sDowngrade => {
                self.pin_k3s(&Pins::deployed().k3s);
            }
            Scenario::KernelUpdate => {
                let k3s = self.flake_pins().k3s;
                self.set_flake_pins(Pins::routine_bump().with_k3s(&k3s));
            }
            Scenario::LonghornV1beta1 => lock(&self.state).faults.longhorn_v1beta1 = false,
            Scenario::LonghornOtherNamespace => {
                lock(&self.state).faults.longhorn_other_namespace = false;
            }
            Scenario::EtcdMetricsMissing => lock(&self.state).faults.etcd_missing = false,
            Scenario::ReplicaFailsDuringDrain => {
                lock(&self.state).faults.replica_fails_during_drain = false;
            }
            Scenario::QuickReboot => lock(&self.state).faults.quick_reboot = false,
            Scenario::SwitchBreaksNetwork => {
                lock(&self.state).faults.switch_breaks_network = false;
            }
            Scenario::NewKernelPanics => lock(&self.state).faults.new_kernel_panics = false,
            Scenario::GrubNoSavedDefault(_) => {
                for h in self.inventory.hosts.clone() {
                    self.set_loader(&h.hostname, crate::sim::systems::SimLoader::default());
                }
            }
            Scenario::HostDown(_) => lock(&self.state).faults.host_down.clear(),
            Scenario::LeaseFails(_) => lock(&self.state).faults.lease_fails_until = None,
            Scenario::SlowRebuild(_) => lock(&self.state).faults.slow_rebuild = None,
            Scenario::ReplenishmentWait(_) => {
                self.set_longhorn_setting(
                    build::REPLENISHMENT_WAIT,
                    build::REPLENISHMENT_WAIT_DEFAULT,
                );
            }
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
                    m.set_slow_disk(false);
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
                let booted: Vec<(String, String)> = lock(&self.state)
                    .hosts
                    .values_mut()
                    .map(|h| {
                        h.reboot_needed = false;
                        (h.hostname.clone(), h.booted_kernel.clone())
                    })
                    .collect();
                for (host, kernel) in booted {
                    self.set_node_kernel(&host, &kernel);
                }
            }
            Scenario::StaleEtcdSnapshot => {
                self.clear_snapshots();
                build::recovery::scheduled_snapshots(&self.store, &self.inventory, 3)?;
            }
            Scenario::SnapshotFailing => self.with_recovery(|r| r.snapshot_failing = false),
            Scenario::CertExpiring => self.with_recovery(|r| r.expiring_cert.clear()),
            Scenario::SecretMissing => self.with_recovery(|r| r.missing_secret.clear()),
            Scenario::ClockSkew => self.with_recovery(|r| r.clock_skew_ms.clear()),
            Scenario::EtcdNospace => self.with_etcd(|etcd, _| {
                for m in etcd.members.iter_mut() {
                    m.nospace = false;
                }
            }),
            Scenario::BackupTargetDown => self.set_backup_target(true),
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
