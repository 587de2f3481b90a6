//! Named fault scenarios.

use std::fmt;
use std::str::FromStr;

/// A fault scenario the simulated homelab starts with (or gets injected at runtime).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Healthy,
    /// One replica of one volume failed and does not rebuild: the volume stays degraded.
    DegradedVolume,
    /// A single-replica volume on the first control plane (Longhorn then blocks its drain).
    LastReplica,
    /// The last control plane's etcd member is down (listed, but does not answer).
    EtcdMemberDown,
    /// One etcd member's WAL fsync p99 is about 80 ms.
    SlowDisk,
    /// The named host (default: the last one) does not come back after a reboot.
    NodeNeverReturns(Option<String>),
    /// A PodDisruptionBudget that allows no disruption blocks draining.
    PdbBlocks,
    /// A host runs an older system than it booted into... its booted kernel differs.
    RebootNeeded,
    /// A volume's last backup is far older than its recurring job's interval.
    StaleBackup,
    /// A host answers nothing: its node goes Unknown.
    UnreachableHost,
    /// The flake's lock brings the next k3s minor (1.31 → 1.32) to servers and agents.
    K3sMinorBump,
    /// The flake's lock brings a k3s two minors ahead (1.31 → 1.33).
    K3sSkipMinor,
    /// The flake's lock brings an older k3s minor (1.31 → 1.30).
    K3sDowngrade,
    /// The flake's lock brings only a new kernel: every host needs a reboot, nothing else.
    KernelUpdate,
    /// One host (the last agent) already runs the flake's system: nothing to do there.
    NoChange,
    /// One host (the second) runs a system the flake no longer builds (deployed by hand from
    /// an edited configuration: extra packages, a firewall port opened).
    DriftedHost,
    /// The Longhorn CRDs are served only at `longhorn.io/v1beta1` (an older Longhorn): the
    /// app's `v1beta2` kinds answer 404.
    LonghornV1beta1,
    /// Longhorn runs in another namespace than `longhorn-system`: the kinds are served but
    /// that namespace holds none of its objects.
    LonghornOtherNamespace,
    /// etcd's gateways serve nothing (no metrics, no status, no member list): 404 everywhere.
    EtcdMetricsMissing,
    /// While a node is drained, a replica of a volume on another node fails (once, at the
    /// first eviction after the fault is applied) and does not rebuild.
    ReplicaFailsDuringDrain,
    /// Reboots are quick: the host is back within a fraction of a second and its node never
    /// reports NotReady (Ready stays True, with the old bootID until the new boot shows).
    QuickReboot,
    /// `host-down=HOST:SECONDS`: each reboot of HOST keeps it down (no SSH, node Unknown) for
    /// SECONDS of wall-clock time.
    HostDown(Option<(String, u64)>),
    /// `lease-fails=SECONDS`: for SECONDS of wall-clock time from now, every write to a Lease
    /// (`coordination.k8s.io`) answers 500.
    LeaseFails(Option<u64>),
    /// The newest etcd snapshot is 3 days old (scheduled snapshots stopped).
    StaleEtcdSnapshot,
    /// etcd snapshots fail: the last scheduled one recorded an error, and
    /// `k3s etcd-snapshot save` fails.
    SnapshotFailing,
    /// A k3s certificate on the first control plane expires in 40 days.
    CertExpiring,
    /// The last host's sops-nix `k3s_token` is missing.
    SecretMissing,
    /// The last host's clock is 2.5 s ahead and not synchronised.
    ClockSkew,
    /// The first etcd member's database is at its quota with NOSPACE raised.
    EtcdNospace,
    /// Longhorn's backup target is unavailable.
    BackupTargetDown,
    /// A fault on one face (`hang=FACE`, `garbage=FACE`, `http-500=FACE`,
    /// `slow=FACE:SECONDS`, `flap=FACE:SECONDS`; see `crate::sim::faults`).
    Face(crate::sim::faults::FaceFault),
    /// `watch-gone`: every open watch is dropped and its resume answers 410 Gone (the client
    /// relists).
    WatchGone,
    /// `watch-drop`: every open watch connection is dropped (once, when applied).
    WatchDrop,
    /// `watch-relist`: every open watch is dropped, objects change while the watches are
    /// away (a pod added, one deleted, a node relabelled), and the resume answers 410 Gone so
    /// the client relists the changed objects.
    WatchRelist,
    /// `ssh-cut=HOST`: every command on HOST starts, prints a little and the connection drops
    /// (the host gone mid-command).
    SshCut(Option<String>),
    /// `host-key-changed=HOST`: HOST presents another SSH host key than `known_hosts` holds.
    HostKeyChanged(Option<String>),
    /// A switch breaks the host's network: after `nixos-rebuild switch` activates, the host
    /// answers nothing (no SSH, node Unknown) until its revert timer fires and takes it back
    /// to its previous system.
    SwitchBreaksNetwork,
    /// A reboot's one-shot boot of the new generation panics (its new kernel); the watchdog
    /// resets the host into its default entry, the previous generation, a boot's time later.
    NewKernelPanics,
    /// `grub-no-saved-default=HOST` (default: the last host): HOST boots with GRUB without
    /// an environment block (no saved default): it cannot boot an entry once.
    GrubNoSavedDefault(Option<String>),
    /// `slow-rebuild` or `slow-rebuild=SECONDS`: a replica's rebuild after its node returns
    /// takes SECONDS of wall-clock time (default 60), its progress reported by the volume's
    /// Engine (`status.rebuildStatus`) as it goes.
    SlowRebuild(Option<u64>),
    /// `replenishment-wait=SECONDS`: Longhorn's `replica-replenishment-wait-interval`
    /// setting is SECONDS (default 600; clearing the scenario restores it).
    ReplenishmentWait(Option<u64>),
}

/// Every scenario name, in the order the help shows them.
pub const NAMES: &[&str] = &[
    "healthy",
    "degraded-volume",
    "last-replica",
    "etcd-member-down",
    "slow-disk",
    "node-never-returns",
    "pdb-blocks",
    "reboot-needed",
    "stale-backup",
    "unreachable-host",
    "k3s-minor-bump",
    "k3s-skip-minor",
    "k3s-downgrade",
    "kernel-update",
    "no-change",
    "drifted-host",
    "longhorn-v1beta1",
    "longhorn-other-namespace",
    "etcd-metrics-missing",
    "replica-fails-during-drain",
    "quick-reboot",
    "host-down",
    "lease-fails",
    "stale-etcd-snapshot",
    "snapshot-failing",
    "cert-expiring",
    "secret-missing",
    "clock-skew",
    "etcd-nospace",
    "backup-target-down",
    "hang",
    "garbage",
    "http-500",
    "slow",
    "flap",
    "watch-gone",
    "watch-drop",
    "watch-relist",
    "ssh-cut",
    "host-key-changed",
    "switch-breaks-network",
    "new-kernel-panics",
    "grub-no-saved-default",
    "slow-rebuild",
    "replenishment-wait",
];

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::DegradedVolume => "degraded-volume",
            Scenario::LastReplica => "last-replica",
            Scenario::EtcdMemberDown => "etcd-member-down",
            Scenario::SlowDisk => "slow-disk",
            Scenario::NodeNeverReturns(_) => "node-never-returns",
            Scenario::PdbBlocks => "pdb-blocks",
            Scenario::RebootNeeded => "reboot-needed",
            Scenario::StaleBackup => "stale-backup",
            Scenario::UnreachableHost => "unreachable-host",
            Scenario::K3sMinorBump => "k3s-minor-bump",
            Scenario::K3sSkipMinor => "k3s-skip-minor",
            Scenario::K3sDowngrade => "k3s-downgrade",
            Scenario::KernelUpdate => "kernel-update",
            Scenario::NoChange => "no-change",
            Scenario::DriftedHost => "drifted-host",
            Scenario::LonghornV1beta1 => "longhorn-v1beta1",
            Scenario::LonghornOtherNamespace => "longhorn-other-namespace",
            Scenario::EtcdMetricsMissing => "etcd-metrics-missing",
            Scenario::ReplicaFailsDuringDrain => "replica-fails-during-drain",
            Scenario::QuickReboot => "quick-reboot",
            Scenario::HostDown(_) => "host-down",
            Scenario::LeaseFails(_) => "lease-fails",
            Scenario::StaleEtcdSnapshot => "stale-etcd-snapshot",
            Scenario::SnapshotFailing => "snapshot-failing",
            Scenario::CertExpiring => "cert-expiring",
            Scenario::SecretMissing => "secret-missing",
            Scenario::ClockSkew => "clock-skew",
            Scenario::EtcdNospace => "etcd-nospace",
            Scenario::BackupTargetDown => "backup-target-down",
            Scenario::Face(f) => f.kind.name(),
            Scenario::WatchGone => "watch-gone",
            Scenario::WatchDrop => "watch-drop",
            Scenario::WatchRelist => "watch-relist",
            Scenario::SshCut(_) => "ssh-cut",
            Scenario::HostKeyChanged(_) => "host-key-changed",
            Scenario::SwitchBreaksNetwork => "switch-breaks-network",
            Scenario::NewKernelPanics => "new-kernel-panics",
            Scenario::GrubNoSavedDefault(_) => "grub-no-saved-default",
            Scenario::SlowRebuild(_) => "slow-rebuild",
            Scenario::ReplenishmentWait(_) => "replenishment-wait",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::NodeNeverReturns(Some(h)) => write!(f, "node-never-returns={h}"),
            Scenario::HostDown(Some((h, secs))) => write!(f, "host-down={h}:{secs}"),
            Scenario::LeaseFails(Some(secs)) => write!(f, "lease-fails={secs}"),
            Scenario::SlowRebuild(Some(secs)) => write!(f, "slow-rebuild={secs}"),
            Scenario::ReplenishmentWait(Some(secs)) => write!(f, "replenishment-wait={secs}"),
            Scenario::Face(x) => write!(f, "{x}"),
            Scenario::SshCut(Some(h)) => write!(f, "ssh-cut={h}"),
            Scenario::HostKeyChanged(Some(h)) => write!(f, "host-key-changed={h}"),
            Scenario::GrubNoSavedDefault(Some(h)) => write!(f, "grub-no-saved-default={h}"),
            s => f.write_str(s.name()),
        }
    }
}

/// An unknown scenario name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScenario(pub String);

impl fmt::Display for UnknownScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown scenario \"{}\"; valid scenarios: {} (node-never-returns takes an optional =HOST, host-down takes =HOST:SECONDS, lease-fails and replenishment-wait take =SECONDS, slow-rebuild an optional =SECONDS; hang, garbage and http-500 take =FACE, slow and flap =FACE:SECONDS, with FACE one of {})",
            self.0,
            NAMES.join(", "),
            crate::sim::faults::FACES.join(", ")
        )
    }
}

impl std::error::Error for UnknownScenario {}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = match s.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().to_string())),
            None => (s.trim(), None),
        };
        if let Some(f) = crate::sim::faults::FaceFault::parse(name, arg.as_deref()) {
            return f
                .map(Scenario::Face)
                .map_err(|e| UnknownScenario(format!("{s} ({e})")));
        }
        let sc = match name {
            "healthy" => Scenario::Healthy,
            "degraded-volume" => Scenario::DegradedVolume,
            "last-replica" => Scenario::LastReplica,
            "etcd-member-down" => Scenario::EtcdMemberDown,
            "slow-disk" => Scenario::SlowDisk,
            "node-never-returns" => {
                return Ok(Scenario::NodeNeverReturns(arg.filter(|a| !a.is_empty())));
            }
            "pdb-blocks" => Scenario::PdbBlocks,
            "reboot-needed" => Scenario::RebootNeeded,
            "stale-backup" => Scenario::StaleBackup,
            "unreachable-host" => Scenario::UnreachableHost,
            "k3s-minor-bump" => Scenario::K3sMinorBump,
            "k3s-skip-minor" => Scenario::K3sSkipMinor,
            "k3s-downgrade" => Scenario::K3sDowngrade,
            "kernel-update" => Scenario::KernelUpdate,
            "no-change" => Scenario::NoChange,
            "drifted-host" => Scenario::DriftedHost,
            "longhorn-v1beta1" => Scenario::LonghornV1beta1,
            "longhorn-other-namespace" => Scenario::LonghornOtherNamespace,
            "etcd-metrics-missing" => Scenario::EtcdMetricsMissing,
            "replica-fails-during-drain" => Scenario::ReplicaFailsDuringDrain,
            "quick-reboot" => Scenario::QuickReboot,
            "switch-breaks-network" => Scenario::SwitchBreaksNetwork,
            "new-kernel-panics" => Scenario::NewKernelPanics,
            "grub-no-saved-default" => {
                return Ok(Scenario::GrubNoSavedDefault(arg.filter(|a| !a.is_empty())));
            }
            // Without its argument only to name it (clearing it).
            "host-down" => {
                let Some(a) = arg else {
                    return Ok(Scenario::HostDown(None));
                };
                let parsed = a
                    .split_once(':')
                    .and_then(|(h, secs)| Some((h.trim(), secs.trim().parse::<u64>().ok()?)))
                    .filter(|(h, _)| !h.is_empty());
                return match parsed {
                    Some((h, secs)) => Ok(Scenario::HostDown(Some((h.to_string(), secs)))),
                    None => Err(UnknownScenario(s.to_string())),
                };
            }
            "lease-fails" => {
                let Some(a) = arg else {
                    return Ok(Scenario::LeaseFails(None));
                };
                return match a.parse::<u64>() {
                    Ok(secs) => Ok(Scenario::LeaseFails(Some(secs))),
                    Err(_) => Err(UnknownScenario(s.to_string())),
                };
            }
            "slow-rebuild" | "replenishment-wait" => {
                let secs = match arg.as_deref().map(str::parse::<u64>) {
                    None => None,
                    Some(Ok(secs)) => Some(secs),
                    Some(Err(_)) => return Err(UnknownScenario(s.to_string())),
                };
                return Ok(if name == "slow-rebuild" {
                    Scenario::SlowRebuild(secs)
                } else {
                    Scenario::ReplenishmentWait(secs)
                });
            }
            "stale-etcd-snapshot" => Scenario::StaleEtcdSnapshot,
            "snapshot-failing" => Scenario::SnapshotFailing,
            "cert-expiring" => Scenario::CertExpiring,
            "secret-missing" => Scenario::SecretMissing,
            "clock-skew" => Scenario::ClockSkew,
            "etcd-nospace" => Scenario::EtcdNospace,
            "backup-target-down" => Scenario::BackupTargetDown,
            "watch-gone" => Scenario::WatchGone,
            "watch-drop" => Scenario::WatchDrop,
            "watch-relist" => Scenario::WatchRelist,
            "ssh-cut" => return Ok(Scenario::SshCut(arg.filter(|a| !a.is_empty()))),
            "host-key-changed" => {
                return Ok(Scenario::HostKeyChanged(arg.filter(|a| !a.is_empty())));
            }
            _ => return Err(UnknownScenario(s.to_string())),
        };
        if arg.is_some() {
            return Err(UnknownScenario(s.to_string()));
        }
        Ok(sc)
    }
}

/// Parse every `--scenario` value; the first unknown one is the error.
pub fn parse_all(names: &[String]) -> Result<Vec<Scenario>, UnknownScenario> {
    names.iter().map(|n| n.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in NAMES {
            let s: Scenario = n.parse().unwrap();
            assert_eq!(s.name(), *n);
        }
        assert_eq!(
            "node-never-returns=node4".parse::<Scenario>().unwrap(),
            Scenario::NodeNeverReturns(Some("node4".into()))
        );
        let hd: Scenario = "host-down=node2:30".parse().unwrap();
        assert_eq!(hd, Scenario::HostDown(Some(("node2".into(), 30))));
        assert_eq!(hd.to_string(), "host-down=node2:30");
        for f in [
            "ssh-cut=node2",
            "host-key-changed=node1",
            "hang=etcd",
            "garbage=ssh",
            "http-500=longhorn",
            "slow=mimir:5",
            "flap=loki:2",
        ] {
            assert_eq!(f.parse::<Scenario>().unwrap().to_string(), f);
        }
        assert_eq!(
            "lease-fails=20".parse::<Scenario>().unwrap(),
            Scenario::LeaseFails(Some(20))
        );
        for bad in [
            "host-down=node2",
            "host-down=:3",
            "lease-fails=soon",
            "quick-reboot=x",
            "hang=nowhere",
            "slow=etcd:soon",
            "http-500=etcd:3",
        ] {
            assert!(bad.parse::<Scenario>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_lists_valid_ones() {
        let e = "meltdown".parse::<Scenario>().unwrap_err().to_string();
        assert!(
            e.starts_with(
                "unknown scenario \"meltdown\"; valid scenarios: healthy, degraded-volume,"
            ),
            "{e}"
        );
        assert!(e.contains("unreachable-host"), "{e}");
    }
}
