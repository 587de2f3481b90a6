//! The dashboard's rolling upgrade, as the registry sees it: a backend that computes the plan
//! with every guard's verdict (a dry run) and starts a confirmed plan, handing back a
//! [`RunLink`] — the run's events and a sender of controls. The same engine as
//! `homeinfra-tui upgrade`.
//!
//! [`InProcess`] runs the engine in this process. An engine in its own process that the
//! dashboard attaches to (journal + control socket) is another [`UpgradeBackend`]: its
//! `start` spawns the process and returns a link fed from the journal, with controls sent to
//! the socket; the registry, the app and the views stay as they are.

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::base::{Env, Writes};
use crate::operations::upgrade::engine::{self, StartOptions};
use crate::operations::upgrade::guards::GuardVerdict;
use crate::operations::upgrade::{Control, Plan, PlanEntry, Settings, UpgradeEvent, live, lock};

/// A plan and each node's guard verdicts right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub plan: Plan,
    pub verdicts: Vec<(PlanEntry, Vec<GuardVerdict>)>,
    /// Who holds the upgrade lock, when someone does.
    pub lock: Option<String>,
}

/// A run the dashboard follows: where its events come from, where its controls go. Dropping
/// the link stops following; it never stops the run (that is `Control::Abort`).
#[derive(Debug)]
pub struct RunLink {
    pub run_id: String,
    pub events: mpsc::Receiver<UpgradeEvent>,
    pub controls: mpsc::Sender<Control>,
}

/// Where plans and runs come from.
pub trait UpgradeBackend: Send + Sync + 'static {
    /// The plan of these hosts (empty: all) and its dry run, or why there is none.
    fn plan(&self, only: Vec<String>) -> BoxFuture<'static, Result<Planned, String>>;
    /// Start a confirmed plan; resolves once the run takes controls. It may take a while
    /// (kube and SSH clients are built): the registry awaits it in the task, never the UI.
    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>>;
}

/// The engine in this process, against the live cluster and hosts. Plans are computed on a
/// read-only world; a run needs the write capability (`None`: read-only mode, refused).
pub struct InProcess {
    env: Env,
    writes: Option<Writes>,
}

impl InProcess {
    pub fn new(env: Env, writes: Option<Writes>) -> Self {
        Self { env, writes }
    }
}

impl UpgradeBackend for InProcess {
    fn plan(&self, only: Vec<String>) -> BoxFuture<'static, Result<Planned, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            prepare(&env, &only)
                .await
                .map_err(|e| crate::base::error_chain(&e))
        })
    }

    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>> {
        let env = self.env.clone();
        let writes = self.writes.clone();
        Box::pin(async move {
            let Some(writes) = writes else {
                return Err("read-only mode (--read-only): no upgrade".to_string());
            };
            start(&env, &writes, plan)
                .await
                .map_err(|e| crate::base::error_chain(&e))
        })
    }
}

async fn prepare(env: &Env, only: &[String]) -> Result<Planned> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::read_world(env).await?;
    if let Some(crate::operations::upgrade::RunOutcome::Refused { message, .. }) =
        engine::preflight(&world, &journal_dir, "").await
    {
        return Err(eyre!(message));
    }
    let p = live::new_plan(env, &world, only).await?;
    let settings = Settings::new(&env.config);
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

/// Start the run of a confirmed plan. The run waits for the operator on a refusal, a failed
/// step or a reboot question (interactive mode).
async fn start(env: &Env, writes: &Writes, the_plan: Plan) -> Result<RunLink> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::world(env, writes).await?;
    let settings = Settings::new(&env.config);
    let opts = StartOptions {
        holder: lock::holder_identity(&the_plan.run_id),
        force_unlock: false,
        journal_dir: Some(journal_dir),
        interactive: true,
        resume: None,
    };
    let (handle, events) = engine::start(world, env.inventory.clone(), the_plan, settings, opts);
    // The engine's task runs on without its handle; the link is how the dashboard follows it.
    Ok(RunLink {
        run_id: handle.run_id().to_string(),
        controls: handle.controls(),
        events,
    })
}
