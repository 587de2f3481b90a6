//! Before and around a run: the dry run (every guard's verdict, touching nothing), the
//! preflight refusals (a live lock, an unfinished run), and abandoning a run.

use std::path::Path;

use color_eyre::eyre::{Result, eyre};

use super::refused;
use super::steps::verdicts;
use crate::inventory::Inventory;
use crate::operations::upgrade::guards::GuardVerdict;
use crate::operations::upgrade::journal::{self, Journal};
use crate::operations::upgrade::lock;
use crate::operations::upgrade::world::{ReadWorld, World};
use crate::operations::upgrade::{Plan, PlanEntry, RunOutcome, Settings, UpgradeEvent};

/// The dry run: every guard's verdict for every planned node, against the state right now.
pub async fn dry_run(
    world: &ReadWorld,
    inv: &Inventory,
    plan: &Plan,
    s: &Settings,
) -> Vec<(PlanEntry, Vec<GuardVerdict>)> {
    let health = world.health.gather(&s.gates).await;
    let mut out = Vec::new();
    for e in &plan.entries {
        let verdicts = match inv.host(&e.host) {
            Some(h) => verdicts(world, e, h, &plan.run_id, &health, s, false).await,
            None => vec![unknown_host(e)],
        };
        out.push((e.clone(), verdicts));
    }
    out
}

/// The verdict for a plan entry whose host is not in the inventory.
pub(super) fn unknown_host(e: &PlanEntry) -> GuardVerdict {
    GuardVerdict::refuse(
        "node-missing",
        e.host.clone(),
        "not a host of the inventory",
        "check hosts.json",
    )
}

/// Before a new run: refuse when another run holds the lock (and is alive), or when a run in
/// `journal_dir` is unfinished (it must be resumed or abandoned first: the refusal names it,
/// where it stopped, and both commands).
pub async fn preflight(world: &ReadWorld, journal_dir: &Path, run_id: &str) -> Option<RunOutcome> {
    let now = world.clock.now();
    if let Ok(Some(held)) = lock::current(world.cluster.as_ref(), now).await
        && !held.stale
        && held.run_id() != run_id
        && held.alive_here != Some(false)
    {
        return Some(refused(None, "lock", held.to_string()));
    }
    unfinished_run(journal_dir, run_id)
}

/// A run in `journal_dir` other than `run_id` that is unfinished: the refusal names it, where
/// it stopped, and how to resume or abandon it.
pub fn unfinished_run(journal_dir: &Path, run_id: &str) -> Option<RunOutcome> {
    match journal::unfinished(journal_dir) {
        Ok(list) => list.iter().find(|u| u.run_id != run_id).map(|u| {
            let at = u
                .stopped_at()
                .map(|at| format!(" (stopped at {at})"))
                .unwrap_or_default();
            refused(
                None,
                "unfinished-run",
                format!(
                    "run {} is unfinished{at}: `homeinfra-tui upgrade --resume {}` or `--abandon {}`",
                    u.run_id, u.run_id, u.run_id
                ),
            )
        }),
        Err(e) => Some(refused(None, "journal", format!("{e:#}"))),
    }
}

/// Abandon a run: uncordon only the nodes it cordoned, release the lock if it holds it, and
/// close its journal. Returns the nodes uncordoned.
pub async fn abandon(world: &World, journal_dir: &Path, run_id: &str) -> Result<Vec<String>> {
    journal::valid_run_id(run_id)?;
    let path = journal::path_of(journal_dir, run_id);
    let summary = journal::summarize(&path)?;
    let r = &world.read;
    if let Some(held) = lock::current(r.cluster.as_ref(), r.clock.now()).await?
        && held.run_id() == run_id
        && held.alive_here != Some(false)
        && (held.alive_here == Some(true) || !held.stale)
    {
        return Err(eyre!(
            "run {run_id} is still running ({}): abort it instead, or wait until its lock goes stale",
            held.holder
        ));
    }
    let mut uncordoned = Vec::new();
    for e in &summary.plan.entries {
        let st = r.cluster.node(&e.node).await?;
        if st.cordoned_by.as_deref() == Some(run_id) {
            world.write.cluster.uncordon(&e.node).await?;
            uncordoned.push(e.node.clone());
        }
    }
    lock::release(r.cluster.as_ref(), world.write.cluster.as_ref(), run_id).await?;
    let mut j = Journal::open(world.write.writes(), journal_dir, run_id)?;
    j.append(
        r.clock.now(),
        &UpgradeEvent::RunFinished {
            outcome: RunOutcome::Abandoned {
                uncordoned: uncordoned.clone(),
            },
        },
    )?;
    Ok(uncordoned)
}
