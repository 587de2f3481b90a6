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
    out
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

fn nodes(g: &GuardInputs<'_>, c: &ClusterState, out: &mut Vec<GuardVerdict>) {
    let me = &g.entry.node;
    if c.nodes.is_empty() {
        for guard in ["node-missing", "node-not-ready", "node-cordoned"] {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "kubernetes",
                "the API server listed no node at all",
                "check that the kubeconfig points at this cluster (`kubectl get nodes`)",
            ));
        }
        return;
    }
    if c.node(me).is_none() {
        out.push(GuardVerdict::refuse(
            "node-missing",
            me,
            "this host has no Kubernetes node of that name",
            "check the hostname in hosts.json against `kubectl get nodes`",
        ));
    } else {
        out.push(GuardVerdict::pass(
            "node-missing",
            format!("{me} is a node of the cluster"),
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

const LONGHORN_GUARDS: [&str; 2] = ["degraded-volume", "last-replica"];

/// Why Longhorn's data cannot be trusted to be all there is (`None`: it can).
pub(crate) fn longhorn_unseen(c: &ClusterState) -> Option<(String, String)> {
    let lh = &c.longhorn;
    let ns = &lh.namespace;
    let version = &lh.version;
    let skip = "or, if this cluster has no Longhorn, add \"longhorn\" to [upgrade] skip_guards";
    let versions = match &lh.api {
        LonghornApi::Unknown => {
            return Some((
                "Longhorn's API (longhorn.io) was not discovered".into(),
                format!("check that the API server answers `kubectl api-versions`, {skip}"),
            ));
        }
        LonghornApi::Error { message } => {
            return Some((
                format!("cannot tell whether Longhorn is installed: {message}"),
                format!("check the API server (`kubectl api-versions`), {skip}"),
            ));
        }
        LonghornApi::NotServed => {
            return Some((
                "the API server serves no longhorn.io API: no Longhorn CRDs are installed".into(),
                format!("check Longhorn (`kubectl get crd | grep longhorn`), {skip}"),
            ));
        }
        LonghornApi::Served { versions } => versions,
    };
    if !versions.iter().any(|v| v == version) {
        return Some((
            format!(
                "the Longhorn CRDs serve longhorn.io {}, this tool reads longhorn.io/{version}",
                versions.join(", ")
            ),
            "use a homeinfra-tui that reads this Longhorn version (or a Longhorn that serves it)"
                .into(),
        ));
    }
    if !lh.missing_kinds.is_empty() {
        return Some((
            format!(
                "Longhorn {} answered 404 at longhorn.io/{version} in namespace {ns} (the CRDs serve {})",
                lh.missing_kinds.join(", "),
                versions.join(", ")
            ),
            "check [kubernetes] longhorn_namespace and the Longhorn CRDs (`kubectl get crd | grep longhorn`)"
                .into(),
        ));
    }
    if lh.nodes.is_empty() && lh.volumes.is_empty() {
        return Some((
            format!(
                "namespace {ns} holds no Longhorn node or volume although longhorn.io/{version} is served"
            ),
            "set [kubernetes] longhorn_namespace to the namespace Longhorn runs in (`kubectl get nodes.longhorn.io -A`)"
                .into(),
        ));
    }
    None
}

fn longhorn(
    g: &GuardInputs<'_>,
    cluster: &Result<&ClusterState, String>,
    out: &mut Vec<GuardVerdict>,
) {
    if let Some(by) = skipped_by(g.settings, "degraded-volume") {
        for guard in LONGHORN_GUARDS {
            out.push(GuardVerdict::skipped(guard, by));
        }
        return;
    }
    let c = match cluster {
        Ok(c) => *c,
        Err(e) => {
            for guard in LONGHORN_GUARDS {
                out.push(GuardVerdict::cannot_verify(
                    guard,
                    "longhorn",
                    e.clone(),
                    "check the kubeconfig and that the API server answers",
                ));
            }
            return;
        }
    };
    if let Some((message, fix)) = longhorn_unseen(c) {
        for guard in LONGHORN_GUARDS {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "longhorn",
                message.clone(),
                fix.clone(),
            ));
        }
        return;
    }
    let lh = &c.longhorn;
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
        } else if v.state == "attached" && robustness != "healthy" {
            out.push(GuardVerdict::cannot_verify(
                "degraded-volume",
                &v.name,
                format!(
                    "Longhorn volume is attached but its robustness is {:?}",
                    if robustness.is_empty() {
                        "not reported"
                    } else {
                        robustness
                    }
                ),
                format!(
                    "look at the volume in Longhorn (`kubectl -n {} get volumes.longhorn.io {}`)",
                    lh.namespace, v.name
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "degraded-volume",
            format!("every Longhorn volume is healthy ({})", lh.volumes.len()),
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
    let mut guards = vec!["etcd-no-leader", "etcd-member-down"];
    if g.entry.role.is_control_plane() {
        guards.push("etcd-quorum");
    }
    if let Some(by) = skipped_by(g.settings, "etcd-quorum") {
        for guard in guards {
            out.push(GuardVerdict::skipped(guard, by));
        }
        return;
    }
    let unseen = |out: &mut Vec<GuardVerdict>, message: String, fix: &str| {
        for guard in &guards {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "etcd",
                message.clone(),
                fix,
            ));
        }
    };
    let state: &EtcdState = match &g.health.etcd {
        None => {
            unseen(
                out,
                "etcd is not monitored ([etcd] enabled = false, or no endpoints and no control plane in the inventory)".into(),
                "set [etcd] endpoints and client certificates, or add \"etcd\" to [upgrade] skip_guards",
            );
            return;
        }
        Some(r) => match fresh(
            r,
            g.health.read_at.etcd,
            g.settings.max_age.etcd,
            g.now,
            "etcd",
        ) {
            Ok(s) => s,
            Err(e) => {
                unseen(
                    out,
                    e,
                    "check [etcd] endpoints and certificates (`homeinfra-tui check`)",
                );
                return;
            }
        },
    };
    if state.members.is_empty() {
        unseen(
            out,
            "etcd answered but listed no member".into(),
            "check [etcd] endpoints (`etcdctl member list`)",
        );
        return;
    }
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
    let mine = g
        .entry
        .role
        .is_control_plane()
        .then(|| state.member_on_host(g.host))
        .flatten();
    let before = out.len();
    for m in state.members.iter().filter(|m| !m.healthy) {
        // Re-checking mid-node: this node's own member may be restarting with k3s.
        if g.recheck && mine.is_some_and(|mm| mm.id == m.id) {
            continue;
        }
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
        match mine {
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
            None => out.push(GuardVerdict::cannot_verify(
                "etcd-quorum",
                &g.host.id,
                format!(
                    "no etcd member matches control plane {} (hostname {}, ip {}); members: {}",
                    g.host.id,
                    g.host.hostname,
                    g.host.ip,
                    state
                        .members
                        .iter()
                        .map(|m| m.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "k3s names members <hostname>-<hex> and advertises the host's ip: fix the hostname or ip in hosts.json (`etcdctl member list`)",
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
    if let Some(by) = skipped_by(g.settings, "alert-firing") {
        out.push(GuardVerdict::skipped("alert-firing", by));
        return;
    }
    let min = severity_rank(&g.settings.block_on_alert_severity);
    let list = match &g.health.alerts {
        None => {
            out.push(GuardVerdict::cannot_verify(
                "alert-firing",
                "alerts",
                "no metrics backend is configured ([mimir] url, [alertmanager] url): firing alerts cannot be seen",
                "set [alertmanager] url or [mimir] url (and tenant, credentials), or add \"alerts\" to [upgrade] skip_guards",
            ));
            return;
        }
        Some(r) => match fresh(
            r,
            g.health.read_at.metrics,
            g.settings.max_age.metrics,
            g.now,
            "the firing alerts",
        ) {
            Ok(l) => l,
            Err(e) => {
                out.push(GuardVerdict::cannot_verify(
                    "alert-firing",
                    "alerts",
                    e,
                    "check [alertmanager] (or [mimir]) url, tenant and credentials (`homeinfra-tui check`)",
                ));
                return;
            }
        },
    };
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

fn gates(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let stale = match g.health.read_at.metrics {
        None => Some("the gate queries were never run".to_string()),
        Some(at) => {
            let age = Duration::try_from(g.now.duration_since(at)).unwrap_or_default();
            (age > g.settings.max_age.metrics)
                .then(|| format!("the gate results are {}s old", age.as_secs()))
        }
    };
    for r in &g.health.gates {
        match (&r.series, &stale) {
            (Err(e), _) => out.push(GuardVerdict::cannot_verify(
                "promql-gate",
                &r.query,
                format!("the query failed: {e}"),
                "fix the query in [upgrade] gates or the metrics backend",
            )),
            (Ok(_), Some(why)) => out.push(GuardVerdict::cannot_verify(
                "promql-gate",
                &r.query,
                why.clone(),
                "check the metrics backend ([mimir])",
            )),
            (Ok(0), None) => out.push(GuardVerdict {
                subject: r.query.clone(),
                ..GuardVerdict::pass("promql-gate", "returns no series")
            }),
            (Ok(n), None) => out.push(GuardVerdict::refuse(
                "promql-gate",
                &r.query,
                format!("returns {n} series"),
                "wait until the gate query returns nothing, or change [upgrade] gates",
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
    if let Some(by) = skipped_by(g.settings, "auto-upgrade") {
        out.push(GuardVerdict::skipped("auto-upgrade", by));
        return;
    }
    let host = &g.entry.host;
    let a = match g.auto_upgrade {
        Err(e) => {
            out.push(GuardVerdict::cannot_verify(
                "auto-upgrade",
                host,
                format!("cannot tell whether nixos-upgrade.service runs: {e}"),
                "check SSH access to the host, or add \"auto-upgrade\" to [upgrade] skip_guards",
            ));
            return;
        }
        Ok(a) => a,
    };
    match a.running {
        None => {
            out.push(GuardVerdict::cannot_verify(
                "auto-upgrade",
                host,
                "systemd did not say whether nixos-upgrade.service runs",
                format!(
                    "check `systemctl is-active nixos-upgrade.service` on {host}, or add \"auto-upgrade\" to [upgrade] skip_guards"
                ),
            ));
            return;
        }
        Some(true) => {
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
        Some(false) => {}
    }
    if let Some(next) = a.next_run {
        let horizon = g.now
            + jiff::SignedDuration::try_from(g.settings.auto_upgrade_horizon).unwrap_or_default();
        if next >= g.now && next <= horizon {
            out.push(GuardVerdict::refuse(
                "auto-upgrade",
                host,
                format!("nixos-upgrade.timer fires at {next}, during the run"),
                format!(
                    "stop the timer for the run (`sudo systemctl stop nixos-upgrade.timer` on {host})"
                ),
            ));
            return;
        }
    }
    out.push(GuardVerdict::pass(
        "auto-upgrade",
        "nixos-upgrade is idle and not due",
    ));
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
