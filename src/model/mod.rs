//! The pure health model: the latest data of every source (`Snapshot`) and `assess`, which
//! turns it into findings. No I/O here, and no drawing: the TUI, `check` and the upgrade guards
//! all read the same findings.

pub mod assess;
pub mod closure;
pub mod cluster;
pub mod etcd;
pub mod host;
pub mod metrics;
pub mod recovery;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use assess::assess;

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing worth an operator's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable dotted code; the first part is the area (`node.`, `etcd.`, `longhorn.`, `host.`,
    /// `inventory.`, `source.`), e.g. `etcd.no_leader`.
    pub code: String,
    /// What it is about: a host id, node name, etcd member, volume or source name.
    pub subject: String,
    /// A sentence a human understands.
    pub message: String,
    /// Expected: it is about a node the upgrade run with this id is working on. Left out of
    /// the status (and `check`'s exit code); drawn calm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
}

/// A run at work, as findings are judged: its id and, per node it works on (by node name),
/// what it does there (`rebooting`, `in maintenance`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub run_id: String,
    pub nodes: std::collections::BTreeMap<String, String>,
}

impl Maintenance {
    /// The node (by name) a finding is about, when the run works on it: its subject is the
    /// node's name, its host's inventory id, or its etcd member (`<hostname>-<hex>`).
    pub fn node_of(&self, f: &Finding, inv: &crate::inventory::Inventory) -> Option<&str> {
        self.nodes.keys().map(String::as_str).find(|node| {
            let id = inv.by_name(node).map(|h| h.id.as_str());
            f.subject == *node
                || Some(f.subject.as_str()) == id
                || f.subject
                    .strip_prefix(*node)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|hex| {
                        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    })
        })
    }

    /// Whether a finding is about a Longhorn volume whose only replicas not healthy (failed,
    /// stopped, rebuilding) are on the nodes the run works on.
    fn volume_of_ours(&self, f: &Finding, cluster: &cluster::ClusterState) -> bool {
        let lh = &cluster.longhorn;
        if !lh.volumes.iter().any(|v| v.name == f.subject) {
            return false;
        }
        let mut unwell = lh
            .replicas_of(&f.subject)
            .filter(|r| !r.healthy || r.rebuilding)
            .peekable();
        unwell.peek().is_some() && unwell.all(|r| self.nodes.contains_key(&r.node))
    }

    /// Mark every finding about a node the run works on (and about a volume whose replicas
    /// suffer only there) as expected; the number marked.
    pub fn mark(
        &self,
        findings: &mut [Finding],
        inv: &crate::inventory::Inventory,
        cluster: Option<&cluster::ClusterState>,
    ) -> usize {
        let mut n = 0;
        for f in findings.iter_mut() {
            let ours = self.node_of(f, inv).is_some()
                || cluster.is_some_and(|c| self.volume_of_ours(f, c));
            if f.severity > Severity::Info && ours {
                f.maintenance = Some(self.run_id.clone());
                n += 1;
            }
        }
        n
    }
}

impl Finding {
    pub fn new(
        severity: Severity,
        code: impl Into<String>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code: code.into(),
            subject: subject.into(),
            message: message.into(),
            maintenance: None,
        }
    }

    /// Expected during a run (see [`Maintenance`]).
    pub fn expected(&self) -> bool {
        self.maintenance.is_some()
    }

    /// The area: the code's first part.
    pub fn area(&self) -> &str {
        self.code.split('.').next().unwrap_or("")
    }

    /// It says something could not be read, not that something is wrong: a source that did
    /// not answer (`source.*.unreachable`), or a host whose facts SSH could not read (no
    /// connection, login refused, host key not yet trusted, the facts command failing or
    /// answering what cannot be parsed). Such a finding makes `check` "could not check"
    /// (exit 3), never critical: a host that is really down says so through its other sources
    /// (its node NotReady, its etcd member down), whose findings stay critical. A changed host
    /// key is not among these: it is known to be wrong.
    pub fn could_not_check(&self) -> bool {
        (self.code.starts_with("source.") && self.code.ends_with(".unreachable"))
            || HOST_UNREAD.contains(&self.code.as_str())
    }
}

/// The host findings that say its facts could not be read (see
/// [`Finding::could_not_check`]).
pub const HOST_UNREAD: &[&str] = &[
    "host.ssh_unreachable",
    "host.ssh_auth_failed",
    "host.ssh_host_key_unknown",
    "host.ssh_error",
    "host.facts_unreadable",
];

/// Sort findings worst first, then by code and subject, for stable output.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.subject.cmp(&b.subject))
    });
}

/// Overall status of a set of findings, as `check` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// `check`'s exit code: 0 healthy, 1 warnings, 2 critical, 3 could not check.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// Critical beats unknown beats warning beats ok: what could not be read (a failing
    /// source, a host whose facts SSH could not read: [`Finding::could_not_check`]) makes the
    /// status unknown unless something is known to be critical.
    pub fn of(findings: &[Finding]) -> Status {
        // Findings expected during a run do not count.
        let counted: Vec<&Finding> = findings.iter().filter(|f| !f.expected()).collect();
        let findings = counted.as_slice();
        let worst = findings.iter().map(|f| f.severity).max();
        let unchecked = findings.iter().any(|f| f.could_not_check());
        match worst {
            Some(Severity::Critical)
                if findings.iter().any(|f| {
                    f.severity == Severity::Critical
                        && !f.code.starts_with("source.")
                        && !f.could_not_check()
                }) =>
            {
                Status::Critical
            }
            _ if unchecked => Status::Unknown,
            Some(Severity::Critical) => Status::Critical,
            Some(Severity::Warning) => Status::Warning,
            _ => Status::Ok,
        }
    }
}

/// Health of one data source, kept beside its data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    /// False when the source is not configured (or `--offline`); `note` says why.
    pub configured: bool,
    pub note: Option<String>,
    /// When the last good data arrived.
    pub last_ok: Option<Timestamp>,
    /// The last error and since when the source has been failing.
    pub error: Option<SourceError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub since: Timestamp,
    pub message: String,
}

/// The latest data of one source with its status. Old data is kept when the source fails.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub status: SourceStatus,
    pub data: Option<T>,
}

impl<T> Default for Sourced<T> {
    fn default() -> Self {
        Self {
            status: SourceStatus::default(),
            data: None,
        }
    }
}

impl<T> Sourced<T> {
    /// A source that is not configured; `note` tells the user how to configure it.
    pub fn not_configured(note: impl Into<String>) -> Self {
        Self {
            status: SourceStatus {
                configured: false,
                note: Some(note.into()),
                ..Default::default()
            },
            data: None,
        }
    }

    pub fn configured() -> Self {
        Self {
            status: SourceStatus {
                configured: true,
                ..Default::default()
            },
            data: None,
        }
    }

    /// Record a result: good data replaces the old and clears the error; an error keeps the
    /// old data and remembers since when the source has been failing.
    pub fn record(&mut self, result: Result<T, String>, now: Timestamp) {
        self.status.configured = true;
        match result {
            Ok(data) => {
                self.data = Some(data);
                self.status.last_ok = Some(now);
                self.status.error = None;
            }
            Err(message) => {
                let since = self.status.error.as_ref().map_or(now, |e| e.since);
                self.status.error = Some(SourceError { since, message });
            }
        }
    }
}

/// Everything the sources know right now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cluster: Sourced<Arc<cluster::ClusterState>>,
    pub etcd: Sourced<etcd::EtcdState>,
    /// Host facts by inventory host id.
    pub hosts: BTreeMap<String, Sourced<host::HostFacts>>,
    /// Mimir metrics, when configured.
    pub mimir: Sourced<Arc<metrics::MetricsState>>,
    /// Loki logs, when configured.
    pub loki: Sourced<Arc<metrics::LogsState>>,
}

impl Snapshot {
    /// Fill etcd's disk latencies and leader changes from Mimir when it has them (the etcd
    /// source's own figures stay where Mimir has none).
    pub fn merge_metrics(&mut self) {
        if let (Some(m), Some(e)) = (&self.mimir.data, &mut self.etcd.data) {
            m.fill_etcd(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_serializes() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
    }

    #[test]
    fn status_of_findings() {
        let f = |s, code: &str| Finding::new(s, code, "x", "m");
        assert_eq!(Status::of(&[]), Status::Ok);
        assert_eq!(
            Status::of(&[f(Severity::Info, "longhorn.unencrypted")]),
            Status::Ok
        );
        assert_eq!(
            Status::of(&[f(Severity::Warning, "node.cordoned")]),
            Status::Warning
        );
        assert_eq!(
            Status::of(&[
                f(Severity::Warning, "node.x"),
                f(Severity::Critical, "etcd.no_leader")
            ]),
            Status::Critical
        );
        assert_eq!(
            Status::of(&[
                f(Severity::Warning, "node.x"),
                f(Severity::Critical, "source.etcd.unreachable")
            ]),
            Status::Unknown
        );
        assert_eq!(
            Status::of(&[
                f(Severity::Critical, "etcd.no_leader"),
                f(Severity::Critical, "source.kubernetes.unreachable")
            ]),
            Status::Critical
        );
        assert_eq!(Status::Unknown.exit_code(), 3);
        // A host SSH could not read is unknown, not critical; its node down stays critical;
        // a changed host key is known to be wrong.
        for code in HOST_UNREAD {
            let sev = if *code == "host.ssh_unreachable" {
                Severity::Critical
            } else {
                Severity::Warning
            };
            assert_eq!(Status::of(&[f(sev, code)]), Status::Unknown, "{code}");
            assert_eq!(
                Status::of(&[f(sev, code), f(Severity::Critical, "node.not_ready")]),
                Status::Critical,
                "{code}"
            );
        }
        assert_eq!(
            Status::of(&[
                f(Severity::Critical, "host.ssh_unreachable"),
                f(Severity::Critical, "etcd.member_down")
            ]),
            Status::Critical
        );
        assert_eq!(
            Status::of(&[
                f(Severity::Critical, "host.ssh_host_key_changed"),
                f(Severity::Warning, "host.ssh_unreachable")
            ]),
            Status::Critical
        );
    }

    #[test]
    fn sourced_keeps_old_data_and_error_since() {
        let t0 = Timestamp::from_second(1000).unwrap();
        let t1 = Timestamp::from_second(1010).unwrap();
        let mut s: Sourced<u32> = Sourced::configured();
        s.record(Ok(7), t0);
        s.record(Err("refused".into()), t0);
        s.record(Err("refused again".into()), t1);
        assert_eq!(s.data, Some(7));
        let e = s.status.error.clone().unwrap();
        assert_eq!((e.since, e.message.as_str()), (t0, "refused again"));
        s.record(Ok(8), t1);
        assert!(s.status.error.is_none());
        assert_eq!(s.status.last_ok, Some(t1));
    }
}
