//! The order follows the change, and the k3s version-skew guards (pure).
//!
//! Kubernetes' skew policy: a kubelet must never be newer than the API servers, the control
//! plane moves one minor at a time, and nothing goes back a minor. k3s's own upgrade guide
//! upgrades the servers first. So:
//!
//! - a k3s minor change: servers first (one at a time — the engine runs one node at a time —
//!   the etcd leader last), then agents;
//! - otherwise today's order: agents first as canaries, then servers, the etcd leader last
//!   (or `[upgrade] order`, as configured);
//! - refused: a k3s jump of more than one minor, a k3s downgrade, any step that would put an
//!   agent's kubelet ahead of a server's, and a new run on a cluster whose nodes already run
//!   mixed k3s minors (a half-done earlier run: resume it instead). What cannot be verified
//!   (a node's diff failed, the nodes' versions unreadable) answers cannot-verify, which
//!   refuses too; `[upgrade] skip_guards = ["k3s-skew"]` skips it (shown as skipped).
//!
//! Every refusal is a [`GuardVerdict`] (`k3s-skew`, `k3s-mixed-minors`) whose message names
//! the versions and whose fix names the supported path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PlanEntry;
use super::guards::GuardVerdict;
use crate::inventory::Role;
use crate::operations::closure_diff::summary::k3s_minor;

/// What the plan does to one node's k3s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum K3sChange {
    /// The diff does not touch k3s.
    Unchanged,
    /// From this version to that one (as nixpkgs names them: `1.31.4+k3s1`).
    Change { from: String, to: String },
    /// The diff could not be computed: the change is not known.
    Unknown(String),
}

/// Which order the plan uses, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRule {
    /// `servers-first` (a k3s minor change), `agents-first` (the default) or `configured`
    /// (`[upgrade] order`).
    pub rule: String,
    /// For the operator, in one sentence.
    pub reason: String,
}

/// The order and the refusals for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub entries: Vec<PlanEntry>,
    pub rule: OrderRule,
    pub refusals: Vec<GuardVerdict>,
}

/// A node as the cluster reports it: name, role, kubelet version (`v1.31.4+k3s1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningNode {
    pub node: String,
    pub role: Role,
    pub kubelet: String,
}

fn refuse(
    guard: &str,
    subject: &str,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> GuardVerdict {
    GuardVerdict::refuse(guard, subject, message, fix)
}

/// What could not be seen refuses too (fail closed).
fn cannot_verify(
    guard: &str,
    subject: &str,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> GuardVerdict {
    GuardVerdict::cannot_verify(guard, subject, message, fix)
}

fn minor_str((major, minor): (u64, u64)) -> String {
    format!("{major}.{minor}")
}

/// The nixpkgs attribute of a k3s minor (`pkgs.k3s_1_32`).
fn attr((major, minor): (u64, u64)) -> String {
    format!("pkgs.k3s_{major}_{minor}")
}

/// Decide the order of `entries` (in today's order) and what refuses.
///
/// `changes` is keyed by node name (every entry should have one); `running` is every node of
/// the cluster with its kubelet version (`Err`: the cluster could not be read); `configured`:
/// the operator gave `[upgrade] order`; `skip`: `[upgrade] skip_guards` names `k3s-skew` (the
/// version changes are not checked; the cluster's mixed minors still are).
pub fn decide(
    entries: &[PlanEntry],
    changes: &BTreeMap<String, K3sChange>,
    running: &Result<Vec<RunningNode>, String>,
    configured: bool,
    skip: bool,
) -> Decision {
    let mut d = decide_checked(entries, changes, running, configured);
    if skip {
        d.refusals.retain(|r| r.guard != "k3s-skew");
        d.rule.reason +=
            " (k3s-skew skipped by [upgrade] skip_guards: the k3s versions are not checked)";
    }
    d
}

fn decide_checked(
    entries: &[PlanEntry],
    changes: &BTreeMap<String, K3sChange>,
    running: &Result<Vec<RunningNode>, String>,
    configured: bool,
) -> Decision {
    let mut refusals = Vec::new();
    // A cluster already on mixed minors: a half-done earlier run.
    match running {
        Ok(nodes) => {
            let mut by_minor: BTreeMap<(u64, u64), Vec<&str>> = BTreeMap::new();
            for n in nodes {
                if let Some(m) = k3s_minor(&n.kubelet) {
                    by_minor.entry(m).or_default().push(&n.node);
                }
            }
            if by_minor.len() > 1 {
                let list: Vec<String> = by_minor
                    .iter()
                    .map(|(m, ns)| format!("v{} on {}", minor_str(*m), ns.join(", ")))
                    .collect();
                refusals.push(refuse(
                    "k3s-mixed-minors",
                    "cluster",
                    format!(
                        "the nodes already run mixed k3s minors ({}): an earlier run is half done",
                        list.join("; ")
                    ),
                    "resume that run (`homeinfra-tui upgrade --resume RUN_ID`; its journal is in the journal directory) rather than starting a new one",
                ));
            }
        }
        Err(e) => refusals.push(cannot_verify(
            "k3s-skew",
            "cluster",
            format!("the k3s versions: the nodes could not be read: {e}"),
            "check the kubeconfig and that the API server answers (`kubectl get nodes`)",
        )),
    }
    let mut minor_change: Option<((u64, u64), (u64, u64))> = None;
    let before = refusals.len();
    for e in entries {
        match changes.get(&e.node) {
            None | Some(K3sChange::Unchanged) => {}
            Some(K3sChange::Unknown(why)) => refusals.push(cannot_verify(
                "k3s-skew",
                &e.node,
                format!("the k3s change of {}: {why}", e.node),
                format!(
                    "make its closure diff work (`homeinfra-tui diff {}`), then plan again; or, if the hosts cannot be diffed, add \"k3s-skew\" to [upgrade] skip_guards",
                    e.host
                ),
            )),
            Some(K3sChange::Change { from, to }) => {
                let (Some(a), Some(b)) = (k3s_minor(from), k3s_minor(to)) else {
                    refusals.push(cannot_verify(
                        "k3s-skew",
                        &e.node,
                        format!("the k3s versions {from} → {to} cannot be read"),
                        "check the k3s package of the flake",
                    ));
                    continue;
                };
                if b < a {
                    refusals.push(refuse(
                        "k3s-skew",
                        &e.node,
                        format!(
                            "the flake takes k3s on {} from {from} down to {to}: Kubernetes does not support downgrades",
                            e.node
                        ),
                        format!(
                            "pin k3s back to {} in the flake (services.k3s.package = {}); going back needs an etcd snapshot restore, not a rolling upgrade",
                            minor_str(a),
                            attr(a)
                        ),
                    ));
                } else if b.0 != a.0 || b.1 > a.1 + 1 {
                    let next = (a.0, a.1 + 1);
                    refusals.push(refuse(
                        "k3s-skew",
                        &e.node,
                        format!(
                            "the flake takes k3s on {} from {from} to {to}, more than one minor at once: Kubernetes supports one minor at a time",
                            e.node
                        ),
                        format!(
                            "pin k3s to {} first (services.k3s.package = {}), upgrade every node, then go on to {}",
                            minor_str(next),
                            attr(next),
                            minor_str(b)
                        ),
                    ));
                } else if b != a {
                    minor_change = Some((a, b));
                }
            }
        }
    }

    // The nodes refused above: the walk below does not refuse them twice.
    let refused: std::collections::BTreeSet<String> = refusals[before..]
        .iter()
        .map(|r| r.subject.clone())
        .collect();
    let servers_first = minor_change.is_some() && !configured;
    let (ordered, rule) = if servers_first {
        let (a, b) = minor_change.unwrap_or_default();
        let mut servers: Vec<PlanEntry> = Vec::new();
        let mut leader: Vec<PlanEntry> = Vec::new();
        let mut agents: Vec<PlanEntry> = Vec::new();
        for e in entries {
            if !e.role.is_control_plane() {
                agents.push(e.clone());
            } else if e.etcd_leader {
                leader.push(e.clone());
            } else {
                servers.push(e.clone());
            }
        }
        let v: Vec<PlanEntry> = servers.into_iter().chain(leader).chain(agents).collect();
        (
            v,
            OrderRule {
                rule: "servers-first".into(),
                reason: format!(
                    "k3s {} → {}: servers first, one at a time, the etcd leader last, then the agents (a kubelet must never be newer than the API servers)",
                    minor_str(a),
                    minor_str(b)
                ),
            },
        )
    } else if configured {
        (
            entries.to_vec(),
            OrderRule {
                rule: "configured".into(),
                reason: "the order of [upgrade] order".into(),
            },
        )
    } else {
        (
            entries.to_vec(),
            OrderRule {
                rule: "agents-first".into(),
                reason: "no k3s minor change: agents first as canaries, then the servers, the etcd leader last".into(),
            },
        )
    };

    // Walk the order: no agent may get a newer minor than any server has at that point.
    if let Ok(nodes) = running {
        let mut servers: BTreeMap<String, (u64, u64)> = nodes
            .iter()
            .filter(|n| n.role.is_control_plane())
            .filter_map(|n| k3s_minor(&n.kubelet).map(|m| (n.node.clone(), m)))
            .collect();
        for e in &ordered {
            let Some(K3sChange::Change { to, .. }) = changes.get(&e.node) else {
                continue;
            };
            if refused.contains(&e.node) {
                continue;
            }
            let Some(m) = k3s_minor(to) else { continue };
            if e.role.is_control_plane() {
                servers.insert(e.node.clone(), m);
                continue;
            }
            if let Some((server, sm)) = servers
                .iter()
                .filter(|(_, sm)| **sm < m)
                .min_by_key(|(_, sm)| **sm)
            {
                refusals.push(refuse(
                    "k3s-skew",
                    &e.node,
                    format!(
                        "the plan would upgrade agent {} to k3s {to} while server {server} still runs {}: a kubelet must never be newer than the API servers",
                        e.node,
                        minor_str(*sm)
                    ),
                    if configured {
                        "list the servers before the agents in [upgrade] order (or remove it: on a minor change the servers go first)".to_string()
                    } else {
                        format!("upgrade the servers first (plan them too, or without --only), then {}", e.node)
                    },
                ));
            }
        }
    }
    Decision {
        entries: ordered,
        rule,
        refusals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::upgrade::guards::Verdict;

    fn entry(node: &str, role: Role, leader: bool) -> PlanEntry {
        PlanEntry {
            host: format!("id-{node}"),
            node: node.into(),
            role,
            etcd_leader: leader,
        }
    }

    /// Today's order: agents, servers, the leader last.
    fn entries() -> Vec<PlanEntry> {
        vec![
            entry("node4", Role::Agent, false),
            entry("node2", Role::Server, false),
            entry("node3", Role::Server, false),
            entry("node1", Role::Init, true),
        ]
    }

    fn running(v: &str) -> Result<Vec<RunningNode>, String> {
        Ok(entries()
            .iter()
            .map(|e| RunningNode {
                node: e.node.clone(),
                role: e.role,
                kubelet: v.into(),
            })
            .collect())
    }

    fn all(from: &str, to: &str) -> BTreeMap<String, K3sChange> {
        entries()
            .iter()
            .map(|e| {
                (
                    e.node.clone(),
                    K3sChange::Change {
                        from: from.into(),
                        to: to.into(),
                    },
                )
            })
            .collect()
    }

    fn order(d: &Decision) -> Vec<&str> {
        d.entries.iter().map(|e| e.node.as_str()).collect()
    }

    #[test]
    fn a_minor_bump_goes_servers_first_the_leader_last() {
        let d = decide_checked(
            &entries(),
            &all("1.31.4+k3s1", "1.32.3+k3s1"),
            &running("v1.31.4+k3s1"),
            false,
        );
        assert!(d.refusals.is_empty(), "{:?}", d.refusals);
        assert_eq!(order(&d), ["node2", "node3", "node1", "node4"]);
        assert_eq!(d.rule.rule, "servers-first");
        assert!(d.rule.reason.contains("1.31 → 1.32"), "{}", d.rule.reason);
    }

    #[test]
    fn no_minor_change_keeps_todays_order() {
        let d = decide_checked(
            &entries(),
            &all("1.31.4+k3s1", "1.31.6+k3s1"),
            &running("v1.31.4+k3s1"),
            false,
        );
        assert!(d.refusals.is_empty());
        assert_eq!(order(&d), ["node4", "node2", "node3", "node1"]);
        assert_eq!(d.rule.rule, "agents-first");
        let none = BTreeMap::new();
        let d = decide_checked(&entries(), &none, &running("v1.31.4+k3s1"), false);
        assert_eq!(d.rule.rule, "agents-first");
    }

    #[test]
    fn skips_and_downgrades_are_refused_with_the_path() {
        let d = decide_checked(
            &entries(),
            &all("1.31.4+k3s1", "1.33.1+k3s1"),
            &running("v1.31.4+k3s1"),
            false,
        );
        assert_eq!(d.refusals.len(), 4);
        let r = &d.refusals[0];
        assert_eq!(r.guard, "k3s-skew");
        assert!(
            r.message.contains("1.31.4+k3s1 to 1.33.1+k3s1"),
            "{}",
            r.message
        );
        assert!(r.fix.as_deref().unwrap().contains("pkgs.k3s_1_32"), "{r:?}");
        let d = decide_checked(
            &entries(),
            &all("1.31.4+k3s1", "1.30.11+k3s1"),
            &running("v1.31.4+k3s1"),
            false,
        );
        assert_eq!(d.refusals.len(), 4);
        assert!(d.refusals[0].message.contains("down to 1.30.11+k3s1"));
        assert!(
            d.refusals[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("pkgs.k3s_1_31")
        );
    }

    #[test]
    fn an_agent_ahead_of_a_server_is_refused() {
        // The configured order puts the agent first.
        let d = decide_checked(
            &entries(),
            &all("1.31.4+k3s1", "1.32.3+k3s1"),
            &running("v1.31.4+k3s1"),
            true,
        );
        assert_eq!(d.rule.rule, "configured");
        assert_eq!(d.refusals.len(), 1, "{:?}", d.refusals);
        assert!(
            d.refusals[0]
                .message
                .contains("agent node4 to k3s 1.32.3+k3s1")
        );
        assert!(d.refusals[0].message.contains("still runs 1.31"));
        // --only the agent: the servers stay on 1.31.
        let only = vec![entry("node4", Role::Agent, false)];
        let d = decide_checked(
            &only,
            &all("1.31.4+k3s1", "1.32.3+k3s1"),
            &running("v1.31.4+k3s1"),
            false,
        );
        assert_eq!(d.refusals.len(), 1);
    }

    #[test]
    fn mixed_minors_and_unknowns_refuse() {
        let mut r = running("v1.32.3+k3s1").unwrap();
        r[0].kubelet = "v1.31.4+k3s1".into();
        let none = BTreeMap::new();
        let d = decide_checked(&entries(), &none, &Ok(r), false);
        assert_eq!(d.refusals.len(), 1);
        assert_eq!(d.refusals[0].guard, "k3s-mixed-minors");
        assert!(
            d.refusals[0]
                .message
                .contains("v1.31 on node4; v1.32 on node2, node3, node1")
        );
        assert!(d.refusals[0].fix.as_deref().unwrap().contains("--resume"));
        let mut c = BTreeMap::new();
        c.insert(
            "node2".to_string(),
            K3sChange::Unknown("cannot run `nix`".into()),
        );
        let d = decide_checked(&entries(), &c, &Err("connection refused".into()), false);
        assert_eq!(d.refusals.len(), 2);
        assert!(
            d.refusals.iter().all(|r| r.verdict == Verdict::CannotVerify
                && !r.pass
                && r.line().contains("cannot verify")),
            "{:?}",
            d.refusals
        );
    }

    #[test]
    fn skipping_the_skew_guard_keeps_the_mixed_minor_check() {
        let mut c = BTreeMap::new();
        c.insert(
            "node2".to_string(),
            K3sChange::Unknown("cannot run `nix`".into()),
        );
        let d = decide(&entries(), &c, &running("v1.31.4+k3s1"), false, true);
        assert!(d.refusals.is_empty(), "{:?}", d.refusals);
        assert!(
            d.rule.reason.contains("k3s-skew skipped"),
            "{}",
            d.rule.reason
        );
        let mut r = running("v1.32.3+k3s1").unwrap();
        r[0].kubelet = "v1.31.4+k3s1".into();
        let d = decide(&entries(), &c, &Ok(r), false, true);
        assert_eq!(d.refusals.len(), 1);
        assert_eq!(d.refusals[0].guard, "k3s-mixed-minors");
    }
}
