//! The dashboard's rolling upgrade: the plan with every guard's verdict (a dry run), then the
//! run itself, with events streamed to the inbox. The same engine as `homeinfra-tui upgrade`.

use color_eyre::eyre::{Result, eyre};
use tokio::sync::mpsc;

use super::upgrade::engine::{self, StartOptions, UpgradeHandle};
use super::upgrade::guards::GuardVerdict;
use super::upgrade::{Plan, PlanEntry, Settings, UpgradeEvent, live, lock};
use crate::base::Env;

/// What the upgrade tasks report.
#[derive(Debug, Clone)]
pub enum UpgradeMsg {
    /// The plan and each node's guard verdicts right now, or why there is none.
    Planned(Result<Box<Planned>, String>),
    Event(Box<UpgradeEvent>),
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub verdicts: Vec<(PlanEntry, Vec<GuardVerdict>)>,
    /// Who holds the upgrade lock, when someone does.
    pub lock: Option<String>,
}

/// Compute the plan of all hosts (or `only`) and its dry run; the result arrives as
/// `UpgradeMsg::Planned`.
pub fn spawn_plan(env: Env, only: Vec<String>, tx: mpsc::Sender<UpgradeMsg>) {
    tokio::spawn(async move {
        let r = prepare(&env, &only)
            .await
            .map(Box::new)
            .map_err(|e| crate::base::error_chain(&e));
        let _ = tx.send(UpgradeMsg::Planned(r)).await;
    });
}

async fn prepare(env: &Env, only: &[String]) -> Result<Planned> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::world(env).await?;
    if let Some(super::upgrade::RunOutcome::Refused { message, .. }) =
        engine::preflight(&world, &journal_dir, "").await
    {
        return Err(eyre!(message));
    }
    let p = live::new_plan(env, &world, only).await?;
    let settings = Settings::from_config(&env.config.upgrade);
    let verdicts = engine::dry_run(&world, &env.inventory, &p, &settings).await;
    let lock = lock::current(world.cluster.as_ref(), world.clock.now())
        .await
        .ok()
        .flatten()
        .map(|l| l.to_string());
    Ok(Planned {
        plan: p,
        verdicts,
        lock,
    })
}

/// Start the run of a confirmed plan; events arrive as `UpgradeMsg::Event`. The run waits for
/// the operator on a refusal, a failed step or a reboot question (interactive mode).
pub async fn start(
    env: &Env,
    the_plan: Plan,
    tx: mpsc::Sender<UpgradeMsg>,
) -> Result<UpgradeHandle> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::world(env).await?;
    let settings = Settings::from_config(&env.config.upgrade);
    let opts = StartOptions {
        holder: lock::holder_identity(&the_plan.run_id),
        force_unlock: false,
        journal_dir: Some(journal_dir),
        interactive: true,
        resume: None,
    };
    let (handle, mut events) =
        engine::start(world, env.inventory.clone(), the_plan, settings, opts);
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if tx.send(UpgradeMsg::Event(Box::new(e))).await.is_err() {
                return;
            }
        }
    });
    Ok(handle)
}
