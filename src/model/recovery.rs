//! Recovery readiness: what it takes to rebuild the cluster right now. The facts (k3s's etcd
//! snapshot records, cert-manager certificates, each host's certificate files, secrets and
//! clock) and the Recovery pane's rows, which `assess` turns into findings: the pane and
//! `check` judge from the same rows.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One k3s `ETCDSnapshotFile` (`k3s.cattle.io/v1`, cluster-scoped): a snapshot file on a
/// server, or its copy on S3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdSnapshot {
    /// The object's name (`local-…` or `s3-…`).
    pub name: String,
    /// `spec.snapshotName`: the file name (`etcd-snapshot-node1-1730289600`).
    pub snapshot_name: String,
    /// `spec.nodeName`: the server holding the file, or `s3`.
    pub node: String,
    /// `spec.location`: `file:///…` or `s3://…`.
    pub location: String,
    /// `status.size` in bytes; absent on a failed snapshot.
    pub size_bytes: Option<u64>,
    /// `status.creationTime`.
    pub created: Option<Timestamp>,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.error.message`.
    pub error: Option<String>,
}

impl EtcdSnapshot {
    pub fn is_s3(&self) -> bool {
        self.node == "s3" || self.location.starts_with("s3://")
    }
}

/// One cert-manager `Certificate` (`cert-manager.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedCertificate {
    pub namespace: String,
    pub name: String,
    /// `status.notAfter`.
    pub not_after: Option<Timestamp>,
    /// The `Ready` condition: `Some(true)` True, `Some(false)` False, `None` absent/Unknown.
    pub ready: Option<bool>,
    /// The `Ready` condition's reason and message.
    pub reason: String,
    pub message: String,
}

/// One certificate read from a host's file (the first, leaf, certificate of the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub path: String,
    /// The subject's common name (or the whole subject when it has none).
    pub subject: String,
    pub not_after: Timestamp,
    /// A CA certificate (basicConstraints CA): k3s does not renew those at restart.
    pub is_ca: bool,
}

/// What a host's secret file looks like (`stat`, never its content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretState {
    Missing,
    Present {
        owner: String,
        group: String,
        /// Permission bits, e.g. `0o400`.
        mode: u32,
        size: u64,
    },
}

/// One expected secret on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// The sops-nix name (`k3s_token`).
    pub name: String,
    pub path: String,
    pub expected_owner: String,
    pub expected_mode: u32,
    pub state: SecretState,
}

/// A host's clock: synchronised, by which daemon, and its offset from this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// `chrony` or `systemd-timesyncd` (the kernel's view through timedated); `None` unknown.
    pub daemon: Option<String>,
    /// `None`: neither timedatectl nor chronyc answered.
    pub synchronized: Option<bool>,
    /// Remote minus local time in milliseconds, RTT-corrected (midpoint of the best sample).
    pub offset_ms: Option<f64>,
    /// Half the round trip of that sample: the offset is known to ± this.
    pub uncertainty_ms: Option<f64>,
}

/// The recovery facts of one host, gathered with its other facts over SSH. `None` fields:
/// not read (with the reason in `errors`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRecovery {
    pub certs: Option<Vec<CertInfo>>,
    pub secrets: Option<Vec<SecretFile>>,
    pub clock: Option<ClockState>,
    /// What could not be read, one sentence each (`certificates: sudo: a password is required`).
    pub errors: Vec<String>,
}

/// What a row of the Recovery pane is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Item {
    EtcdSnapshot,
    Backup,
    Certificate,
    Secret,
    Clock,
    EtcdHousekeeping,
}

impl Item {
    pub fn label(self) -> &'static str {
        match self {
            Item::EtcdSnapshot => "etcd snapshot",
            Item::Backup => "Longhorn backup",
            Item::Certificate => "certificate",
            Item::Secret => "secret",
            Item::Clock => "clock",
            Item::EtcdHousekeeping => "etcd",
        }
    }
}

/// A row's judgement: fine, or a finding's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Info,
    Warning,
    Critical,
    /// Could not be judged (no data).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Info => "info",
            Verdict::Warning => "warning",
            Verdict::Critical => "critical",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One row of the Recovery pane: item, target, age or expiry, verdict and a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryRow {
    pub item: Item,
    /// What it is about: a server, volume, file, host.
    pub target: String,
    /// `3h ago`, `expires in 41d`, `+1.8 s`: the figure the verdict is about.
    pub when: String,
    pub verdict: Verdict,
    pub note: String,
    /// The finding code a non-ok row gives (`recovery.cert_expiring`).
    pub code: Option<String>,
    /// The subject of that finding.
    pub subject: String,
    /// False when another rule already gives this finding (Longhorn backups, etcd alarms):
    /// the row shows it, `assess` does not repeat it.
    pub own_finding: bool,
}

/// `3h`, `2d`, `15m`, `40s`: a short duration for rows.
pub fn human_secs(secs: i64) -> String {
    let s = secs.abs();
    match s {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
