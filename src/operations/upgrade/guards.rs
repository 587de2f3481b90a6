//! The guards checked right before each node. Pure: the inputs are gathered by the engine.
//! Every refusal names the guard, the subject and the fix. Missing data refuses (fail closed).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::world::{AutoUpgrade, HealthInputs};
use super::{PlanEntry, Settings};
pub use crate::config::parse_window;
use crate::inventory::Host;
use crate::model::cluster::ClusterState;

/// One guard's verdict about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardVerdict {
    /// Stable name: `node-not-ready`, `node-cordoned`, `etcd-no-leader`, `etcd-member-down`,
    /// `etcd-quorum`, `degraded-volume`, `last-replica`, `alert-firing`, `promql-gate`,
    /// `maintenance-window`, `auto-upgrade`, `data-unavailable`, `node-missing`.
    pub guard: String,
    /// What it is about (a node, member, volume, alert, query, host).
    pub subject: String,
    pub pass: bool,
    pub message: String,
    /// What to do about a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl GuardVerdict {
    fn pass(guard: &str, message: impl Into<String>) -> Self {
        Self {
            guard: guard.into(),
            subject: String::new(),
            pass: true,
            message: message.into(),
            fix: None,
        }
    }
    fn refuse(
        guard: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            guard: guard.into(),
            subject: subject.into(),
            pass: false,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// `guard on subject: message — fix`, one line.
    pub fn line(&self) -> String {
        let mut s = if self.subject.is_empty() {
            format!("{}: {}", self.guard, self.message)
        } else {
            format!("{} on {}: {}", self.guard, self.subject, self.message)
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
    pub settings: &'a Settings,
    pub now: Timestamp,
}

/// All verdicts for one node; the node may go when every verdict passes.
pub fn evaluate(g: &GuardInputs<'_>) -> Vec<GuardVerdict> {
    let mut out = Vec::new();
    match &g.health.cluster {
        Ok(cluster) => {
            nodes(g, cluster, &mut out);
            longhorn(g, cluster, &mut out);
        }
        Err(e) => out.push(GuardVerdict::refuse(
            "data-unavailable",
            "kubernetes",
            format!("the cluster state could not be read: {e}"),
            "check the kubeconfig and that the API server answers (`kubectl get nodes`)",
        )),
    }
    etcd(g, &mut out);
    alerts(g, &mut out);
    gates(g, &mut out);
    window(g, &mut out);
    auto_upgrade(g, &mut out);
    out
}

/// Whether all verdicts pass.
pub fn all_pass(v: &[GuardVerdict]) -> bool {
    v.iter().all(|v| v.pass)
}

fn nodes(g: &GuardInputs<'_>, c: &ClusterState, out: &mut Vec<GuardVerdict>) {
    let me = &g.entry.node;
    if c.node(me).is_none() {
        out.push(GuardVerdict::refuse(
            "node-missing",
            me,
            "this host has no Kubernetes node of that name",
            "check the hostname in hosts.json against `kubectl get nodes`",
        ));
    }
    let before = out.len();
    for n in c.nodes.iter().filter(|n| &n.name != me) {
        if n.ready != Some(true) {
            let state = if n.ready == Some(false) {
                "NotReady"
            } else {
                "Unknown"
            };
            out.push(GuardVerdict::refuse(
                "node-not-ready",
                &n.name,
                format!(
                    "another node is {state}: taking {me} down too could cost capacity or quorum"
                ),
                format!(
                    "bring {} back to Ready first (`kubectl describe node {}`)",
                    n.name, n.name
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "node-not-ready",
            "every other node is Ready",
        ));
    }
    let before = out.len();
    for n in c.nodes.iter().filter(|n| &n.name != me) {
        if n.unschedulable && n.cordoned_by_run.as_deref() != Some(g.run_id) {
            let by = match &n.cordoned_by_run {
                Some(r) => format!("cordoned by upgrade run {r}"),
                None => "cordoned (not by this run)".to_string(),
            };
            let fix = match &n.cordoned_by_run {
                Some(r) => {
                    format!("finish or abandon run {r} (`homeinfra-tui upgrade --abandon {r}`)")
                }
                None => format!(
                    "uncordon it when it is safe (`kubectl uncordon {}`)",
                    n.name
                ),
            };
            out.push(GuardVerdict::refuse(
                "node-cordoned",
                &n.name,
                format!("another node is {by}"),
                fix,
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "node-cordoned",
            "no other node is cordoned",
        ));
    }
}

fn longhorn(g: &GuardInputs<'_>, c: &ClusterState, out: &mut Vec<GuardVerdict>) {
    let lh = &c.longhorn;
    if !lh.installed {
        out.push(GuardVerdict::pass(
            "degraded-volume",
            "Longhorn is not installed",
        ));
        return;
    }
    let me = &g.entry.node;
    let before = out.len();
    for v in &lh.volumes {
        let rebuilding: Vec<&str> = lh
            .replicas_of(&v.name)
            .filter(|r| r.rebuilding)
            .map(|r| r.node.as_str())
            .collect();
        let robustness = v.robustness.as_str();
        if matches!(robustness, "degraded" | "faulted") || !rebuilding.is_empty() {
            let what = if !rebuilding.is_empty() {
                format!("is rebuilding (replicas on {})", rebuilding.join(", "))
            } else {
                format!("is {robustness}")
            };
            out.push(GuardVerdict::refuse(
                "degraded-volume",
                &v.name,
                format!("Longhorn volume {what}"),
                "wait until Longhorn reports the volume healthy (rebuilds finished)",
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "degraded-volume",
            "every Longhorn volume is healthy",
        ));
    }
    let before = out.len();
    for v in &lh.volumes {
        if v.state == "detached" && v.robustness != "healthy" {
            continue;
        }
        let healthy: Vec<&str> = lh
            .replicas_of(&v.name)
            .filter(|r| r.healthy)
            .map(|r| r.node.as_str())
            .collect();
        if !healthy.is_empty() && healthy.iter().all(|n| n == me) {
            out.push(GuardVerdict::refuse(
                "last-replica",
                &v.name,
                format!(
                    "every healthy replica of this volume ({}) is on {me}: its data would be unavailable",
                    healthy.len()
                ),
                format!(
                    "add replicas on other nodes (numberOfReplicas ≥ 2) and let them rebuild, or move the volume off {me}"
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "last-replica",
            format!("every volume keeps a healthy replica off {me}"),
        ));
    }
}

fn etcd(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let state = match &g.health.etcd {
        None => {
            out.push(GuardVerdict::pass("etcd-quorum", "etcd is not monitored"));
            return;
        }
        Some(Err(e)) => {
            out.push(GuardVerdict::refuse(
                "data-unavailable",
                "etcd",
                format!("etcd could not be read: {e}"),
                "check [etcd] endpoints and certificates (`homeinfra-tui check`)",
            ));
            return;
        }
        Some(Ok(s)) => s,
    };
    if state.leader.is_none() {
        out.push(GuardVerdict::refuse(
            "etcd-no-leader",
            "etcd",
            "no etcd member reports a leader",
            "restore the etcd cluster before upgrading anything",
        ));
    } else {
        out.push(GuardVerdict::pass("etcd-no-leader", "etcd has a leader"));
    }
    let before = out.len();
    for m in state.members.iter().filter(|m| !m.healthy) {
        out.push(GuardVerdict::refuse(
            "etcd-member-down",
            m.label(),
            format!(
                "etcd member is not healthy{}",
                m.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "bring the member back (k3s on its host) before taking another control plane down",
        ));
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "etcd-member-down",
            format!("all {} etcd members healthy", state.members.len()),
        ));
    }
    if g.entry.role.is_control_plane() {
        match state.member_on_host(g.host) {
            Some(m) if !state.quorum_holds_without(m.id) => {
                let q = state.quorum_without(m.id);
                out.push(GuardVerdict::refuse(
                    "etcd-quorum",
                    m.label(),
                    format!(
                        "without this member etcd would have {}/{} healthy members, needs {}: quorum lost",
                        q.healthy,
                        q.voting,
                        q.needed()
                    ),
                    "restore the other members first",
                ));
            }
            Some(m) => out.push(GuardVerdict::pass(
                "etcd-quorum",
                format!(
                    "quorum holds without {}: {}",
                    m.label(),
                    state.quorum_without(m.id)
                ),
            )),
            None => out.push(GuardVerdict::pass(
                "etcd-quorum",
                format!("no etcd member found on {}", g.entry.node),
            )),
        }
    }
}

/// Rank of an alert severity: unknown ones count as warnings.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "none" | "info" | "informational" => 0,
        "critical" | "page" | "error" | "emergency" => 2,
        _ => 1,
    }
}

fn alerts(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let min = severity_rank(&g.settings.block_on_alert_severity);
    match &g.health.alerts {
        None => out.push(GuardVerdict::pass(
            "alert-firing",
            "no metrics backend configured",
        )),
        Some(Err(e)) => out.push(GuardVerdict::refuse(
            "data-unavailable",
            "alerts",
            format!("firing alerts could not be read: {e}"),
            "check [mimir] url and tenant, or remove it to upgrade without alert checks",
        )),
        Some(Ok(list)) => {
            let before = out.len();
            for a in list.iter().filter(|a| severity_rank(&a.severity) >= min) {
                out.push(GuardVerdict::refuse(
                    "alert-firing",
                    format!("{} ({})", a.name, a.subject),
                    format!("{} alert firing", a.severity),
                    "resolve the alert (or silence it in Alertmanager if it is known and harmless)",
                ));
            }
            if out.len() == before {
                out.push(GuardVerdict::pass(
                    "alert-firing",
                    format!(
                        "no alert at or above {} firing",
                        g.settings.block_on_alert_severity
                    ),
                ));
            }
        }
    }
}

fn gates(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    for r in &g.health.gates {
        match &r.series {
            Ok(0) => out.push(GuardVerdict {
                subject: r.query.clone(),
                ..GuardVerdict::pass("promql-gate", "returns no series")
            }),
            Ok(n) => out.push(GuardVerdict::refuse(
                "promql-gate",
                &r.query,
                format!("returns {n} series"),
                "wait until the gate query returns nothing, or change [upgrade] gates",
            )),
            Err(e) => out.push(GuardVerdict::refuse(
                "promql-gate",
                &r.query,
                format!("the query failed: {e}"),
                "fix the query in [upgrade] gates or the metrics backend",
            )),
        }
    }
}

/// Is `minute` (since midnight) inside the window? Windows may wrap past midnight.
pub fn in_window(minute: u32, (start, end): (u32, u32)) -> bool {
    if start <= end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    }
}

fn window(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let Some(w) = g
        .settings
        .maintenance_window
        .as_deref()
        .filter(|w| !w.trim().is_empty())
    else {
        out.push(GuardVerdict::pass(
            "maintenance-window",
            "no maintenance window configured",
        ));
        return;
    };
    let Some(range) = parse_window(w) else {
        out.push(GuardVerdict::refuse(
            "maintenance-window",
            w,
            "cannot read the maintenance window",
            "write it as \"HH:MM-HH:MM\", e.g. \"01:00-05:00\"",
        ));
        return;
    };
    let local = g.now.to_zoned(g.settings.time_zone.clone());
    let minute = local.hour() as u32 * 60 + local.minute() as u32;
    if in_window(minute, range) {
        out.push(GuardVerdict::pass(
            "maintenance-window",
            format!("{} is inside {w}", local.strftime("%H:%M")),
        ));
    } else {
        out.push(GuardVerdict::refuse(
            "maintenance-window",
            w,
            format!(
                "it is {}, outside the maintenance window",
                local.strftime("%H:%M")
            ),
            format!("wait for the window ({w}), or change [upgrade] maintenance_window"),
        ));
    }
}

fn auto_upgrade(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let host = &g.entry.host;
    match g.auto_upgrade {
        Err(e) => out.push(GuardVerdict::refuse(
            "auto-upgrade",
            host,
            format!("cannot tell whether nixos-upgrade.service runs: {e}"),
            "check SSH access to the host",
        )),
        Ok(a) => {
            if a.running == Some(true) {
                out.push(GuardVerdict::refuse(
                    "auto-upgrade",
                    host,
                    "nixos-upgrade.service is running right now",
                    format!(
                        "wait for it to finish (`systemctl status nixos-upgrade.service` on {host})"
                    ),
                ));
                return;
            }
            if let Some(next) = a.next_run {
                let horizon = g.now
                    + jiff::SignedDuration::try_from(g.settings.auto_upgrade_horizon)
                        .unwrap_or_default();
                if next >= g.now && next <= horizon {
                    out.push(GuardVerdict::refuse(
                        "auto-upgrade",
                        host,
                        format!("nixos-upgrade.timer fires at {next}, during the run"),
                        format!("stop the timer for the run (`sudo systemctl stop nixos-upgrade.timer` on {host})"),
                    ));
                    return;
                }
            }
            out.push(GuardVerdict::pass(
                "auto-upgrade",
                "nixos-upgrade is idle and not due",
            ));
        }
    }
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
}
