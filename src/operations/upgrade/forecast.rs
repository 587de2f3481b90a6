//! What each node of a plan will go through, before the run: the diff between what it runs
//! (its current system, read over SSH) and what `switch` will activate (the flake's system,
//! built), computed for every node at once with bounded concurrency and progress; then the
//! order and the k3s skew guards ([`super::skew`]), the nodes with no change left out, which
//! nodes will reboot (`[upgrade] reboot` with the diff's boot links: what the engine's reboot
//! step looks at after the switch), and the time per node from earlier runs ([`super::eta`]).
//!
//! [`forecast`] takes a plan in today's order and returns the plan to run (reordered, the
//! no-change nodes out) with its [`Forecast`]; the dry run shows the forecast, a refusal in it
//! stops a new run from starting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::eta::{Estimates, short};
use super::guards::GuardVerdict;
use super::skew::{self, K3sChange, OrderRule, RunningNode};
use super::world::ReadWorld;
use super::{Plan, PlanEntry};
use crate::config::RebootPolicy;
use crate::inventory::{Inventory, Role};
use crate::model::closure::ClosureDiff;
use crate::operations::closure_diff::summary::Verdict;
use crate::operations::closure_diff::{self, ChangeSummary, ClosureSource, Reporter};

/// Whether a node will reboot in this run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootForecast {
    /// `yes`, `no`, or `unknown` (decided after the switch).
    pub will: Verdict,
    pub why: String,
}

/// One node of the plan, before the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeForecast {
    pub node: String,
    pub host: String,
    pub role: Role,
    /// What it runs now (`/run/current-system`).
    pub deployed: Option<String>,
    /// What `switch` will activate.
    pub target: Option<String>,
    /// What the switch changes (`None`: the diff failed, see `error`).
    pub summary: Option<ChangeSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub reboot: RebootForecast,
    /// Estimated time for the node (seconds), from earlier runs.
    pub estimate_secs: Option<u64>,
}

/// A node left out of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedNode {
    pub node: String,
    pub host: String,
    pub reason: String,
}

/// The forecast of a whole plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forecast {
    /// The order used and why.
    pub order: OrderRule,
    /// Each node that runs, in the run's order.
    pub nodes: Vec<NodeForecast>,
    /// Nodes with nothing to do.
    pub skipped: Vec<SkippedNode>,
    /// Version-skew refusals (refuse or cannot-verify): while any is here, a new run does
    /// not start. The dry run shows them among each node's verdicts ([`Forecast::verdicts_for`]).
    pub refusals: Vec<GuardVerdict>,
    /// `[upgrade] skip_guards` names `k3s-skew`: the version changes were not checked.
    #[serde(default)]
    pub skew_skipped: bool,
    /// The nodes that will reboot, in order.
    pub reboots: Vec<String>,
    /// The whole run's estimate (seconds), when every node has one.
    pub eta_secs: Option<u64>,
    pub estimates: Estimates,
    /// Where the estimates come from.
    pub estimates_from: String,
    /// `[upgrade] confirm_timeout_secs`: each switch is armed to revert itself on the host
    /// unless confirmed within this long.
    #[serde(default)]
    pub confirm_timeout_secs: u64,
    /// Longhorn's settings and what they mean for the run (see [`super::storage`]).
    #[serde(default)]
    pub storage: super::storage::StoragePlan,
}

impl Forecast {
    pub fn node(&self, node: &str) -> Option<&NodeForecast> {
        self.nodes.iter().find(|n| n.node == node)
    }

    /// The version-skew guards' verdicts for `node`, as the dry run lists them with the
    /// others: its refusals and the cluster's (refuse / cannot-verify), else `k3s-skew`
    /// passed, or skipped by `[upgrade] skip_guards`.
    pub fn verdicts_for(&self, node: &str) -> Vec<GuardVerdict> {
        let mut out: Vec<GuardVerdict> = self
            .refusals
            .iter()
            .filter(|r| r.subject == node || r.subject == "cluster")
            .cloned()
            .collect();
        if self.skew_skipped {
            out.push(GuardVerdict::skipped("k3s-skew", "k3s-skew"));
        } else if !out.iter().any(|v| v.guard == "k3s-skew") {
            let mut pass = GuardVerdict::pass(
                "k3s-skew",
                format!("the k3s change keeps the skew policy ({})", self.order.rule),
            );
            pass.subject = node.to_string();
            out.push(pass);
        }
        out
    }

    /// Add [`Forecast::verdicts_for`] to each node's verdicts of a dry run.
    pub fn add_verdicts(&self, dry_run: &mut [(PlanEntry, Vec<GuardVerdict>)]) {
        for (e, v) in dry_run.iter_mut() {
            v.extend(self.verdicts_for(&e.node));
        }
    }

    /// Node → will it reboot (unknown counts as yes: the estimate errs long).
    pub fn reboot_map(&self) -> BTreeMap<String, bool> {
        self.nodes
            .iter()
            .map(|n| (n.node.clone(), n.reboot.will != Verdict::No))
            .collect()
    }

    /// `ETA 14m` or `no ETA (no earlier completed run to estimate from)`.
    pub fn eta_line(&self) -> String {
        match self.eta_secs {
            Some(s) => format!(
                "ETA {} ({})",
                short(Duration::from_secs(s)),
                self.estimates_from
            ),
            None => format!("no ETA ({})", self.estimates_from),
        }
    }
}

/// What the forecast reads.
pub struct ForecastInputs<'a> {
    pub world: &'a ReadWorld,
    pub inventory: &'a Inventory,
    pub source: Arc<dyn ClosureSource>,
    pub reboot: RebootPolicy,
    /// `[upgrade] order` is set (the operator's order is kept, and checked).
    pub configured_order: bool,
    pub estimates: Estimates,
    /// Diffs at once.
    pub concurrency: usize,
    /// `[upgrade] skip_guards` names `k3s-skew`.
    pub skip_skew: bool,
    /// `[upgrade] confirm_timeout_secs`.
    pub confirm_timeout_secs: u64,
}

/// One node's diff: the deployed system over SSH, the target built, both diffed.
async fn node_diff(
    inputs: &ForecastInputs<'_>,
    e: &PlanEntry,
    cancel: &CancellationToken,
) -> (Option<String>, Result<ClosureDiff, String>) {
    let Some(host) = inputs.inventory.host(&e.host) else {
        return (
            None,
            Err(format!("{} is not a host of the inventory", e.host)),
        );
    };
    let deployed = match inputs.world.hosts.boot_state(host).await {
        Ok(b) => match b.current_system {
            Some(d) if d.starts_with("/nix/store/") => d,
            Some(d) => {
                return (
                    None,
                    Err(format!(
                        "{} runs no NixOS system: /run/current-system is {d:?}, not a store path",
                        e.host
                    )),
                );
            }
            None => {
                return (
                    None,
                    Err(format!("{} did not say which system it runs", e.host)),
                );
            }
        },
        Err(err) => {
            return (
                None,
                Err(format!("cannot read the system {} runs: {err:#}", e.host)),
            );
        }
    };
    let r = closure_diff::drift_with(
        inputs.source.as_ref(),
        host,
        &deployed,
        &Reporter::silent(),
        cancel,
    )
    .await
    .map_err(|err| crate::base::error_chain(&err));
    (Some(deployed), r)
}

/// Will the node reboot in this run?
fn reboot_of(policy: RebootPolicy, s: Option<&ChangeSummary>) -> RebootForecast {
    let f = |will, why: String| RebootForecast { will, why };
    let Some(s) = s else {
        return f(
            Verdict::Unknown,
            "the diff failed: decided after the switch".into(),
        );
    };
    let needed = match s.boot_links_changed {
        Some(true) => true,
        Some(false) if s.reboot == Verdict::Yes => {
            return f(
                Verdict::No,
                format!(
                    "{}; the kernel, initrd and modules stay, so the run does not reboot: reboot later to finish",
                    s.reboot_reason
                ),
            );
        }
        Some(false) => return f(Verdict::No, s.reboot_reason.clone()),
        None => {
            return f(
                Verdict::Unknown,
                "the boot links could not be compared: decided after the switch".into(),
            );
        }
    };
    debug_assert!(needed);
    match policy {
        RebootPolicy::Auto => f(Verdict::Yes, format!("reboot = auto: {}", s.reboot_reason)),
        RebootPolicy::Ask => f(
            Verdict::Yes,
            format!("{}: asks you first (reboot = ask)", s.reboot_reason),
        ),
        RebootPolicy::Never => f(
            Verdict::No,
            format!("{} but reboot = never: reboot it later", s.reboot_reason),
        ),
    }
}

/// The k3s change a summary says.
fn k3s_change(r: &Result<ChangeSummary, String>) -> K3sChange {
    match r {
        Err(e) => K3sChange::Unknown(e.clone()),
        Ok(s) => match s.bump("k3s") {
            Some(b) => match (&b.from, &b.to) {
                (Some(from), Some(to)) => K3sChange::Change {
                    from: from.clone(),
                    to: to.clone(),
                },
                _ => K3sChange::Unknown(format!(
                    "k3s is {} by the switch",
                    if b.to.is_none() { "removed" } else { "added" }
                )),
            },
            None => K3sChange::Unchanged,
        },
    }
}

/// The forecast of `plan` (in today's order): the plan to run and what it will do. `progress`
/// hears one line per finished diff (`diff 3/200: node003 — 9 changes, reboot: yes`).
pub async fn forecast(
    plan: &Plan,
    inputs: &ForecastInputs<'_>,
    progress: &(dyn Fn(String) + Send + Sync),
    cancel: &CancellationToken,
) -> (Plan, Forecast) {
    let total = plan.entries.len();
    type Diffed = (PlanEntry, Option<String>, Result<ClosureDiff, String>);
    // Boxed one by one: a stream of borrowing async closures is not `Send` for every lifetime.
    let jobs: Vec<futures::future::BoxFuture<'_, Diffed>> = plan
        .entries
        .iter()
        .map(|e| {
            let f: futures::future::BoxFuture<'_, Diffed> = Box::pin(async move {
                let (deployed, r) = node_diff(inputs, e, cancel).await;
                (e.clone(), deployed, r)
            });
            f
        })
        .collect();
    let diffs: Vec<Diffed> = futures::stream::iter(jobs)
        .buffer_unordered(inputs.concurrency.max(1))
        .enumerate()
        .map(|(i, (e, deployed, r))| {
            let what = match &r {
                Ok(d) => ChangeSummary::of(d).line(),
                Err(err) => format!("diff failed: {err}"),
            };
            progress(format!("diff {}/{total}: {} — {what}", i + 1, e.node));
            (e, deployed, r)
        })
        .collect()
        .await;
    let mut by_node: BTreeMap<String, (Option<String>, Result<ClosureDiff, String>)> = diffs
        .into_iter()
        .map(|(e, d, r)| (e.node, (d, r)))
        .collect();
    let summaries: BTreeMap<String, Result<ChangeSummary, String>> = by_node
        .iter()
        .map(|(n, (_, r))| {
            (
                n.clone(),
                r.as_ref().map(ChangeSummary::of).map_err(Clone::clone),
            )
        })
        .collect();

    // Who runs what now, for the skew guards.
    let health = inputs.world.health.gather(&[]).await;
    let running: Result<Vec<RunningNode>, String> = health.cluster.map(|c| {
        c.nodes
            .iter()
            .map(|n| RunningNode {
                node: n.name.clone(),
                role: inputs
                    .inventory
                    .by_name(&n.name)
                    .map_or(Role::Agent, |h| h.role),
                kubelet: n.kubelet_version.clone(),
            })
            .collect()
    });

    // Nodes with nothing to do are left out.
    let mut skipped = Vec::new();
    let mut keep = Vec::new();
    for e in &plan.entries {
        match summaries.get(&e.node) {
            Some(Ok(s)) if s.up_to_date => skipped.push(SkippedNode {
                node: e.node.clone(),
                host: e.host.clone(),
                reason: "no change: it already runs what the flake builds".into(),
            }),
            _ => keep.push(e.clone()),
        }
    }
    let changes: BTreeMap<String, K3sChange> = summaries
        .iter()
        .map(|(n, s)| (n.clone(), k3s_change(s)))
        .collect();
    let decision = skew::decide(
        &keep,
        &changes,
        &running,
        inputs.configured_order,
        inputs.skip_skew,
    );

    let mut nodes = Vec::new();
    for e in &decision.entries {
        let (deployed, diff) = by_node
            .remove(&e.node)
            .unwrap_or((None, Err("not diffed".into())));
        let summary = diff.as_ref().ok().map(ChangeSummary::of);
        let reboot = reboot_of(inputs.reboot, summary.as_ref());
        let estimate_secs = inputs
            .estimates
            .node(reboot.will != Verdict::No)
            .map(|d| d.as_secs());
        nodes.push(NodeForecast {
            node: e.node.clone(),
            host: e.host.clone(),
            role: e.role,
            deployed,
            target: diff.as_ref().ok().map(|d| d.new_path.clone()),
            summary,
            error: diff.err(),
            reboot,
            estimate_secs,
        });
    }
    let reboots = nodes
        .iter()
        .filter(|n| n.reboot.will == Verdict::Yes)
        .map(|n| n.node.clone())
        .collect();
    let eta_secs = nodes
        .iter()
        .map(|n| n.estimate_secs)
        .sum::<Option<u64>>()
        .filter(|_| !nodes.is_empty());
    let forecast = Forecast {
        order: decision.rule,
        nodes,
        skipped,
        refusals: decision.refusals,
        skew_skipped: inputs.skip_skew,
        reboots,
        eta_secs,
        estimates_from: inputs.estimates.source(),
        estimates: inputs.estimates.clone(),
        confirm_timeout_secs: inputs.confirm_timeout_secs,
        storage: Default::default(),
    };
    let planned = Plan {
        entries: decision.entries,
        ..plan.clone()
    };
    (planned, forecast)
}

/// The forecast of a new plan with what `env` configures: the closure source of `[nix]`
/// (`closure_source`, `concurrency`), `[upgrade] reboot` and `order`, the estimates from the
/// journal directory.
pub async fn for_env(
    env: &crate::base::Env,
    world: &ReadWorld,
    plan: &Plan,
    progress: &(dyn Fn(String) + Send + Sync),
    cancel: &CancellationToken,
) -> color_eyre::eyre::Result<(Plan, Forecast)> {
    let source = closure_diff::source_for(&env.config.nix, &env.config.ssh, env.offline)?;
    let estimates = super::live::journal_dir(&env.config.upgrade)
        .map(|d| Estimates::from_journals(&d))
        .unwrap_or_default();
    let inputs = ForecastInputs {
        world,
        inventory: &env.inventory,
        source,
        reboot: env.config.upgrade.reboot,
        configured_order: !env.config.upgrade.order.is_empty(),
        estimates,
        concurrency: env.config.nix.concurrency,
        skip_skew: env
            .config
            .upgrade
            .skip_guards
            .iter()
            .any(|g| g == "k3s-skew"),
        confirm_timeout_secs: env.config.upgrade.confirm_timeout_secs.max(1),
    };
    let skip_longhorn = env
        .config
        .upgrade
        .skip_guards
        .iter()
        .any(|g| g == "longhorn");
    let (planned, mut f) = forecast(plan, &inputs, progress, cancel).await;
    f.storage = storage_of(world, &f, skip_longhorn).await;
    Ok((planned, f))
}

/// The storage notes of a forecast: Longhorn's settings read through the cluster world, the
/// expected downtime of a rebooting node from the earlier runs' reboots (else a default).
pub async fn storage_of(
    world: &ReadWorld,
    f: &Forecast,
    skip_longhorn: bool,
) -> super::storage::StoragePlan {
    use super::storage::{PlannedNode, StoragePlan, storage_plan};
    if skip_longhorn {
        return StoragePlan {
            skipped: true,
            ..Default::default()
        };
    }
    let settings = world
        .cluster
        .longhorn_settings()
        .await
        .map_err(|e| crate::base::error_chain(&e));
    let nodes: Vec<PlannedNode> = f
        .nodes
        .iter()
        .map(|n| PlannedNode {
            node: n.node.clone(),
            reboots: match n.reboot.will {
                Verdict::No => Some(false),
                Verdict::Yes => Some(true),
                _ => None,
            },
        })
        .collect();
    let measured = f.estimates.reboot_downtime().map(|d| {
        (
            d,
            format!(
                "the median reboot of {}",
                f.estimates.source().trim_start_matches("from ")
            ),
        )
    });
    storage_plan(settings, &nodes, measured)
}

/// The steps a node goes through (`reboot`: with its reboot), as the plan shows them.
pub fn steps_line(reboot: bool) -> String {
    super::Step::NORMAL
        .iter()
        .filter(|s| reboot || **s != super::Step::Reboot)
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The forecast as lines of text (the headless dry run and the dashboard's plan view).
pub fn text(f: &Forecast) -> Vec<String> {
    let mut out = vec![format!("order: {} — {}", f.order.rule, f.order.reason)];
    for (i, n) in f.nodes.iter().enumerate() {
        let what = match (&n.summary, &n.error) {
            (Some(s), _) => s.line(),
            (None, Some(e)) => format!("diff failed: {e}"),
            (None, None) => "not diffed".into(),
        };
        let eta = n
            .estimate_secs
            .map(|s| format!(" · ~{}", short(Duration::from_secs(s))))
            .unwrap_or_default();
        out.push(format!("  {}. {} ({}): {what}{eta}", i + 1, n.node, n.role));
        out.push(format!(
            "       reboot: {} — {}",
            n.reboot.will, n.reboot.why
        ));
        out.push(format!(
            "       steps: {}",
            steps_line(n.reboot.will != Verdict::No)
        ));
    }
    if !f.nodes.is_empty() {
        out.push(format!(
            "self-revert: before each switch the host arms its own revert (a systemd timer); \
             unless a new SSH login and the node Ready confirm the new system within {} s, \
             the host goes back to its previous system by itself",
            f.confirm_timeout_secs
        ));
    }
    for s in &f.skipped {
        out.push(format!("  skipped: {} — {}", s.node, s.reason));
    }
    out.push(if f.reboots.is_empty() {
        "reboots: none".to_string()
    } else {
        format!("reboots: {}", f.reboots.join(", "))
    });
    out.push(f.eta_line());
    out.extend(super::storage::text(&f.storage));
    // The refusals are guard verdicts: shown with each node's others.
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(links_changed: Option<bool>, reboot: Verdict) -> ChangeSummary {
        ChangeSummary {
            up_to_date: false,
            changes: 3,
            reboot,
            reboot_reason: "kernel changed".into(),
            boot_links_changed: links_changed,
            restarts: vec![],
            bumps: vec![],
            closure_size_delta: None,
            risks: vec![],
        }
    }

    #[test]
    fn reboots_follow_the_policy_and_the_boot_links() {
        let s = summary(Some(true), Verdict::Yes);
        assert_eq!(reboot_of(RebootPolicy::Auto, Some(&s)).will, Verdict::Yes);
        assert_eq!(reboot_of(RebootPolicy::Never, Some(&s)).will, Verdict::No);
        assert!(
            reboot_of(RebootPolicy::Ask, Some(&s))
                .why
                .contains("asks you")
        );
        // systemd alone: the diff says reboot, the engine does not (boot links unchanged).
        let s = summary(Some(false), Verdict::Yes);
        let r = reboot_of(RebootPolicy::Auto, Some(&s));
        assert_eq!(r.will, Verdict::No);
        assert!(r.why.contains("reboot later"), "{}", r.why);
        assert_eq!(
            reboot_of(RebootPolicy::Auto, Some(&summary(None, Verdict::Unknown))).will,
            Verdict::Unknown
        );
        assert_eq!(reboot_of(RebootPolicy::Auto, None).will, Verdict::Unknown);
    }
}
