//! The guards checked before each node and again right before its drain, switch and reboot.
//! Pure: the inputs are gathered by the engine.
//!
//! Every guard answers for every node: pass, refuse, or cannot-verify — it could not see its
//! data (missing, errored, stale, unmatched). Cannot-verify refuses too (fail closed), naming
//! what could not be seen and how to fix it. A cluster without Longhorn, etcd monitoring,
//! metrics or nixos-upgrade says so in the config (`[upgrade] skip_guards`): those guards then
//! answer skipped, and every plan shows them so.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::world::{AutoUpgrade, HealthInputs};
use super::{PlanEntry, Settings};
use crate::config::SKIPPABLE_GUARDS;
pub use crate::config::parse_window;
use crate::inventory::Host;
use crate::model::cluster::{ClusterState, LonghornApi};
use crate::model::etcd::EtcdState;

mod cluster;
mod etcd;
mod metrics;
mod schedule;

pub(crate) use cluster::longhorn_unseen;
use cluster::{longhorn, nodes};
use etcd::etcd;
pub use metrics::severity_rank;
use metrics::{alerts, gates};
pub use schedule::in_window;
use schedule::{auto_upgrade, window};

/// What one guard says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// It looked and all is well.
    #[default]
    Pass,
    /// It looked and it is not safe.
    Refuse,
    /// It could not see its data: refuses too.
    CannotVerify,
    /// The config says this cluster has no such data (`[upgrade] skip_guards`).
    Skipped,
}

impl Verdict {
    /// Does not stop the node.
    pub fn lets_through(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Skipped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Refuse => "refuse",
            Verdict::CannotVerify => "cannot-verify",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One guard's verdict about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardVerdict {
    /// Stable name: `node-missing`, `node-not-ready`, `node-cordoned`, `degraded-volume`,
    /// `last-replica`, `etcd-no-leader`, `etcd-member-down`, `etcd-quorum`, `alert-firing`,
    /// `promql-gate`, `maintenance-window`, `auto-upgrade`, `k3s-skew`, `k3s-mixed-minors`.
    pub guard: String,
    /// What it is about (a node, member, volume, alert, query, host, data source).
    pub subject: String,
    /// Lets the node go: passed, or skipped by the config.
    pub pass: bool,
    #[serde(default)]
    pub verdict: Verdict,
    pub message: String,
    /// What to do about a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl GuardVerdict {
    pub(crate) fn pass(guard: &str, message: impl Into<String>) -> Self {
        Self {
            guard: guard.into(),
            subject: String::new(),
            pass: true,
            verdict: Verdict::Pass,
            message: message.into(),
            fix: None,
        }
    }

    pub(crate) fn refuse(
        guard: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            guard: guard.into(),
            subject: subject.into(),
            pass: false,
            verdict: Verdict::Refuse,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn cannot_verify(
        guard: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            verdict: Verdict::CannotVerify,
            ..Self::refuse(guard, subject, message, fix)
        }
    }

    pub(crate) fn skipped(guard: &str, by: &str) -> Self {
        Self {
            guard: guard.into(),
            subject: String::new(),
            pass: true,
            verdict: Verdict::Skipped,
            message: format!("skipped: [upgrade] skip_guards has \"{by}\""),
            fix: None,
        }
    }

    /// `guard on subject: message — fix`, one line (`cannot verify` said so).
    pub fn line(&self) -> String {
        let what = if self.verdict == Verdict::CannotVerify {
            format!("cannot verify: {}", self.message)
        } else {
            self.message.clone()
        };
        let mut s = if self.subject.is_empty() {
            format!("{}: {what}", self.guard)
        } else {
            format!("{} on {}: {what}", self.guard, self.subject)
        };
        if let Some(f) = &self.fix {
            s.push_str(" — fix: ");
            s.push_str(f);
        }
        s
    }
}

/// Everything the guards of one node look at.
pub struct GuardInputs<'a> {
    pub entry: &'a PlanEntry,
    pub host: &'a Host,
    pub run_id: &'a str,
    pub health: &'a HealthInputs,
    pub auto_upgrade: &'a Result<AutoUpgrade, String>,
    /// The host's boot loader (for `[upgrade] boot_once`).
    pub bootloader: &'a Result<crate::probes::bootloader::Bootloader, String>,
    pub settings: &'a Settings,
    pub now: Timestamp,
    /// A re-check right before a drain, switch or reboot of this node (not the check before
    /// it starts): the maintenance window is not asked again (a node started inside it is
    /// finished), and the node's own etcd member may be restarting.
    pub recheck: bool,
}

/// All verdicts for one node; the node may go when every verdict lets it through.
pub fn evaluate(g: &GuardInputs<'_>) -> Vec<GuardVerdict> {
    let mut out = Vec::new();
    let cluster = fresh(
        &g.health.cluster,
        g.health.read_at.cluster,
        g.settings.max_age.cluster,
        g.now,
        "the cluster state",
    );
    match &cluster {
        Ok(c) => nodes(g, c, &mut out),
        Err(e) => {
            for guard in ["node-missing", "node-not-ready", "node-cordoned"] {
                out.push(GuardVerdict::cannot_verify(
                    guard,
                    "kubernetes",
                    e.clone(),
                    "check the kubeconfig and that the API server answers (`kubectl get nodes`)",
                ));
            }
        }
    }
    longhorn(g, &cluster, &mut out);
    etcd(g, &mut out);
    alerts(g, &mut out);
    gates(g, &mut out);
    if !g.recheck {
        window(g, &mut out);
    }
    auto_upgrade(g, &mut out);
    boot_once(g, &mut out);
    out
}

/// Whether a reboot of the node boots its new generation once (`[upgrade] boot_once`): the
/// plan's line per node; under `require` a loader that cannot refuses the node.
fn boot_once(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    use crate::config::BootOnce;
    let host = &g.entry.host;
    let node = &g.entry.node;
    let policy = g.settings.boot_once;
    if policy == BootOnce::Off {
        out.push(GuardVerdict::pass(
            "boot-once",
            "[upgrade] boot_once = \"off\": a reboot goes straight into the new generation",
        ));
        return;
    }
    let line = match g.bootloader {
        Ok(b) => match b.one_shot() {
            Ok(_) => {
                out.push(GuardVerdict::pass("boot-once", b.describe()));
                return;
            }
            Err(_) => b.describe(),
        },
        Err(e) => format!("cannot boot once: cannot read the boot loader: {e}"),
    };
    if policy == BootOnce::Require {
        let fix = "give the host systemd-boot, or GRUB with /boot/grub/grubenv; or set [upgrade] boot_once = \"prefer\"";
        let message = format!("{node} {line} — [upgrade] boot_once = \"require\"");
        out.push(if g.bootloader.is_err() {
            GuardVerdict::cannot_verify("boot-once", host, message, fix)
        } else {
            GuardVerdict::refuse("boot-once", host, message, fix)
        });
        return;
    }
    out.push(GuardVerdict::pass(
        "boot-once",
        format!("{line} — reboots straight into the new generation"),
    ));
}

/// Whether all verdicts let the node through.
pub fn all_pass(v: &[GuardVerdict]) -> bool {
    v.iter().all(|v| v.pass)
}

/// The `skip_guards` name that skips `guard`, when the config skips it.
fn skipped_by<'s>(s: &'s Settings, guard: &str) -> Option<&'s str> {
    s.skip_guards
        .iter()
        .find(|name| {
            SKIPPABLE_GUARDS
                .iter()
                .any(|(n, guards)| n == name && guards.contains(&guard))
        })
        .map(String::as_str)
}

/// `data` if it was read and is not older than `max_age`; else why it cannot be used.
fn fresh<'d, T>(
    data: &'d Result<T, String>,
    read_at: Option<Timestamp>,
    max_age: Duration,
    now: Timestamp,
    what: &str,
) -> Result<&'d T, String> {
    let d = data
        .as_ref()
        .map_err(|e| format!("{what} could not be read: {e}"))?;
    let Some(at) = read_at else {
        return Err(format!("{what} was never read"));
    };
    let age = Duration::try_from(now.duration_since(at)).unwrap_or_default();
    if age > max_age {
        return Err(format!(
            "{what} is {}s old, older than the {}s it may be (its refresh plus a margin)",
            age.as_secs(),
            max_age.as_secs()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(parse_window("01:00-05:30"), Some((60, 330)));
        assert_eq!(parse_window("25:00-05:00"), None);
        assert!(in_window(61, (60, 330)));
        assert!(!in_window(330, (60, 330)));
        assert!(in_window(23 * 60 + 30, (22 * 60, 2 * 60)));
        assert!(in_window(30, (22 * 60, 2 * 60)));
        assert!(!in_window(12 * 60, (22 * 60, 2 * 60)));
    }

    #[test]
    fn severities() {
        assert!(severity_rank("critical") > severity_rank("warning"));
        assert_eq!(severity_rank("page"), 2);
        assert_eq!(severity_rank("info"), 0);
    }

    #[test]
    fn every_skippable_name_skips_only_its_guards() {
        let s = Settings {
            skip_guards: vec!["etcd".into()],
            ..Settings::default()
        };
        assert_eq!(skipped_by(&s, "etcd-quorum"), Some("etcd"));
        assert_eq!(skipped_by(&s, "etcd-member-down"), Some("etcd"));
        assert_eq!(skipped_by(&s, "degraded-volume"), None);
    }
}
