//! The confirmed plan handed to an engine process (`upgrade --plan FILE`): written by who
//! confirmed it (the dashboard, `upgrade --detach`), read and checked by the engine, so the
//! run is exactly the plan the operator saw.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, WrapErr, eyre};

use crate::inventory::Inventory;
use crate::operations::upgrade::{Plan, journal};
use crate::probes::rebuild::{CommandVars, default_user};

/// The plan of `--plan FILE`: read, and checked against the inventory before anything runs
/// (hosts known, node names theirs, every command buildable, no journal of that run yet).
pub fn load_plan(path: &Path, inv: &Inventory, journal_dir: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).wrap_err_with(|| {
        format!(
            "{} is not a plan (JSON, as `upgrade --dry-run --json` prints under \"plan\")",
            path.display()
        )
    })?;
    super::check_run_id(&plan.run_id)?;
    if plan.entries.is_empty() {
        return Err(eyre!("{}: the plan has no node", path.display()));
    }
    let user = default_user();
    for e in &plan.entries {
        let h = inv.host(&e.host).ok_or_else(|| {
            eyre!(
                "{}: host {} is not in the inventory {}",
                path.display(),
                e.host,
                inv.path.display()
            )
        })?;
        if h.hostname != e.node || h.role != e.role {
            return Err(eyre!(
                "{}: {} is node {} ({}) in the inventory, not {} ({}): plan again",
                path.display(),
                e.host,
                h.hostname,
                h.role,
                e.node,
                e.role
            ));
        }
        CommandVars::new(&plan.flake, h, &user)
            .map_err(|err| eyre!("cannot run the plan {}: {err}", path.display()))?;
    }
    if journal::path_of(journal_dir, &plan.run_id).exists() {
        return Err(eyre!(
            "run {} has a journal already: `homeinfra-tui upgrade --resume {}` goes on with it",
            plan.run_id,
            plan.run_id
        ));
    }
    Ok(plan)
}

/// Write a confirmed plan for an engine to run (`<journal_dir>/<run-id>.plan.json`, 0600).
pub fn write_plan(journal_dir: &Path, plan: &Plan) -> Result<PathBuf> {
    super::private_dir(journal_dir)?;
    let path = super::plan_path(journal_dir, &plan.run_id);
    let text = serde_json::to_string_pretty(plan).wrap_err("cannot encode the plan")?;
    let mut f = super::private_append(&path)?;
    f.set_len(0)
        .and_then(|_| f.write_all(text.as_bytes()))
        .and_then(|_| f.sync_data())
        .wrap_err_with(|| format!("cannot write the plan {}", path.display()))?;
    Ok(path)
}
