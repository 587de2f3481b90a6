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
    "stale-etcd-snapshot",
    "snapshot-failing",
    "cert-expiring",
    "secret-missing",
    "clock-skew",
    "etcd-nospace",
    "backup-target-down",
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
            Scenario::StaleEtcdSnapshot => "stale-etcd-snapshot",
            Scenario::SnapshotFailing => "snapshot-failing",
            Scenario::CertExpiring => "cert-expiring",
            Scenario::SecretMissing => "secret-missing",
            Scenario::ClockSkew => "clock-skew",
            Scenario::EtcdNospace => "etcd-nospace",
            Scenario::BackupTargetDown => "backup-target-down",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::NodeNeverReturns(Some(h)) => write!(f, "node-never-returns={h}"),
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
            "unknown scenario \"{}\"; valid scenarios: {} (node-never-returns takes an optional =HOST)",
            self.0,
            NAMES.join(", ")
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
            "stale-etcd-snapshot" => Scenario::StaleEtcdSnapshot,
            "snapshot-failing" => Scenario::SnapshotFailing,
            "cert-expiring" => Scenario::CertExpiring,
            "secret-missing" => Scenario::SecretMissing,
            "clock-skew" => Scenario::ClockSkew,
            "etcd-nospace" => Scenario::EtcdNospace,
            "backup-target-down" => Scenario::BackupTargetDown,
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
