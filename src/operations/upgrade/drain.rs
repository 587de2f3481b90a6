//! One node's maintenance (a run of kind [`RunKind::Drain`]): the plan the operator confirms
//! (which node, every guard's verdict, the PodDisruptionBudgets the drain respects, the
//! silences), and finding the maintenance a node is in.
//!
//! The run itself is the upgrade engine's (guards → cordon → drain → hold → uncordon) in its
//! own process, with the same lock, silences and journal as an upgrade: a drain and an upgrade
//! exclude each other, and a maintenance outlives whoever started it. The dashboard's `D` and
//! `homeinfra-tui drain NODE` both use [`prepare`]; `c` and `homeinfra-tui uncordon NODE` end
//! it ([`Control::EndMaintenance`](super::Control::EndMaintenance)).

use std::path::Path;

use color_eyre::eyre::{Result, eyre};
use serde::Serialize;

use super::guards::{GuardVerdict, Verdict};
use super::journal::{self, RunSummary};
use super::world::ReadWorld;
use super::{Plan, RunKind, RunOutcome, Settings, engine, live, lock, plan, planned_silences};
use crate::base::Env;

/// What the operator confirms before a drain.
#[derive(Debug, Clone, Serialize)]
pub struct DrainPlan {
    pub plan: Plan,
    /// Every guard's verdict for the node, right now.
    pub verdicts: Vec<GuardVerdict>,
    /// The PodDisruptionBudgets the drain respects (`ns/name (disruptionsAllowed N; pods
    /// here: …)`), or why they could not be read.
    pub pdbs: std::result::Result<Vec<String>, String>,
    /// The Alertmanager silences made before the cordon (matchers), empty without them.
    pub silences: Vec<String>,
}

impl DrainPlan {
    pub fn node(&self) -> &str {
        self.plan.entries.first().map_or("", |e| e.node.as_str())
    }

    /// Every guard lets the node go.
    pub fn passes(&self) -> bool {
        self.verdicts.iter().all(|v| v.pass)
    }

    /// The refusal when a guard refuses or cannot verify (fail closed).
    pub fn refusal(&self) -> Option<RunOutcome> {
        let failed: Vec<&GuardVerdict> = self.verdicts.iter().filter(|v| !v.pass).collect();
        let first = failed.first()?;
        Some(RunOutcome::Refused {
            node: Some(self.node().to_string()),
            guard: first.guard.clone(),
            message: failed
                .iter()
                .map(|v| v.line())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// The plan as text: the node, the guards, the PDBs, the silences.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = self.plan.entries.first() {
            out.push(format!(
                "Drain {} ({}, {}{}) for maintenance — run {}:",
                e.node,
                e.host,
                e.role,
                if e.etcd_leader { ", etcd leader" } else { "" },
                self.plan.run_id
            ));
        }
        out.push("  guards (checked again right before the drain):".into());
        for v in &self.verdicts {
            let mark = match v.verdict {
                Verdict::Pass => "✓",
                Verdict::Skipped => "–",
                Verdict::Refuse | Verdict::CannotVerify => "✗",
            };
            out.push(format!("    {mark} {}", v.line()));
        }
        match &self.pdbs {
            Ok(p) if p.is_empty() => {
                out.push("  PodDisruptionBudgets: none selects a pod the drain evicts".into())
            }
            Ok(p) => {
                out.push("  PodDisruptionBudgets respected (a blocked eviction waits):".into());
                out.extend(p.iter().map(|p| format!("    {p}")));
            }
            Err(e) => out.push(format!("  PodDisruptionBudgets: cannot list them: {e}")),
        }
        if self.silences.is_empty() {
            out.push("  silences: none ([alertmanager] url or silences off)".into());
        } else {
            out.push(format!(
                "  silenced in Alertmanager before the cordon until after the uncordon: {}",
                self.silences.join(", ")
            ));
        }
        out.push(
            "  the node stays cordoned and drained until you end the maintenance (`c` on it, or `homeinfra-tui uncordon NODE`)"
                .into(),
        );
        out
    }
}

/// The plan of a drain of `name` (hostname or inventory id): `Err` of a refusal when the lock
/// is held or a run is unfinished (named), or when `name` is no node of the inventory.
pub async fn prepare(
    env: &Env,
    world: &ReadWorld,
    journal_dir: &Path,
    name: &str,
) -> Result<std::result::Result<DrainPlan, RunOutcome>> {
    if let Some(refusal) = engine::preflight(world, journal_dir, "").await {
        return Ok(Err(refusal));
    }
    let Some(host) = env.inventory.by_name(name) else {
        let known: Vec<&str> = env.inventory.hosts.iter().map(|h| h.id.as_str()).collect();
        return Ok(Err(RunOutcome::Refused {
            node: Some(name.to_string()),
            guard: "node-missing".into(),
            message: format!(
                "`{name}` is not a host of {} (known: {})",
                env.inventory.path.display(),
                known.join(", ")
            ),
        }));
    };
    let health = world.health.gather(&[]).await;
    let etcd = health.etcd.and_then(|r| r.ok());
    let mut p = plan(
        &env.inventory,
        etcd.as_ref(),
        &[],
        std::slice::from_ref(&host.id),
        "",
        "x",
    )?;
    let entry = p
        .entries
        .pop()
        .ok_or_else(|| eyre!("{} is not planned", host.id))?;
    let p = Plan::drain(entry);
    let settings = Settings::new(&env.config);
    let verdicts = engine::dry_run(world, &env.inventory, &p, &settings)
        .await
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .unwrap_or_default();
    let pdbs = match live::drain_client(&env.config.kubernetes).await {
        Ok(c) => live::drain_pdbs(&c, &host.hostname)
            .await
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("{e:#}")),
    };
    let silences = planned_silences(&env.config.alertmanager, &env.inventory, &p)
        .remove(&host.hostname)
        .unwrap_or_default();
    Ok(Ok(DrainPlan {
        plan: p,
        verdicts,
        pdbs,
        silences,
    }))
}

/// The drain runs of `journal_dir` about `node` (hostname or inventory id) that are not
/// finished, newest first.
pub fn maintenances_of(journal_dir: &Path, node: &str) -> Result<Vec<RunSummary>> {
    let mut list: Vec<RunSummary> = journal::unfinished(journal_dir)?
        .into_iter()
        .filter(|s| {
            s.plan.kind == RunKind::Drain
                && s.plan
                    .entries
                    .iter()
                    .any(|e| e.node == node || e.host == node)
        })
        .collect();
    list.reverse();
    Ok(list)
}

/// `drain-…`: the run id of a maintenance.
pub fn is_drain_run(run_id: &str) -> bool {
    run_id.starts_with("drain-")
}

/// The lock's holder, `user@machine`, from its identity.
pub fn holder_who(holder: &str) -> String {
    match lock::parse_holder(holder) {
        Some(h) => h.who.to_string(),
        None => holder.split(' ').next().unwrap_or(holder).to_string(),
    }
}

/// The maintenance text of a node whose run holds the lock now: `in maintenance (drained by
/// user@host, since 2026-12-01 10:00 UTC)` for a drain, `in maintenance` for an upgrade.
pub fn maintenance_text(held: &lock::LockHeld) -> String {
    if !is_drain_run(held.run_id()) {
        return "in maintenance".into();
    }
    let since = held
        .since
        .map(|t| format!(", since {}", t.strftime("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    format!(
        "in maintenance (drained by {}{since})",
        holder_who(&held.holder)
    )
}
