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

use crate::base::Env;
use crate::operations::upgrade::engine::{self, StartOptions};
use crate::operations::upgrade::forecast::{self, Forecast};
use crate::operations::upgrade::guards::GuardVerdict;
use crate::operations::upgrade::{Control, Plan, PlanEntry, Settings, UpgradeEvent, live, lock};

/// A plan and each node's guard verdicts right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub plan: Plan,
    pub verdicts: Vec<(PlanEntry, Vec<GuardVerdict>)>,
    /// Who holds the upgrade lock, when someone does.
    pub lock: Option<String>,
    /// What each node goes through, the order rule, the skew refusals, the ETA (`None`: not
    /// computed by this backend).
    pub forecast: Option<Forecast>,
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
    /// The same, with a line of progress per node diffed on `progress`.
    fn plan_with_progress(
        &self,
        only: Vec<String>,
        progress: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<Planned, String>> {
        drop(progress);
        self.plan(only)
    }
    /// Start a confirmed plan; resolves once the run takes controls. It may take a while
    /// (kube and SSH clients are built): the registry awaits it in the task, never the UI.
    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>>;
}

/// The engine in this process, against the live cluster and hosts.
pub struct InProcess {
    env: Env,
}

impl InProcess {
    pub fn new(env: Env) -> Self {
        Self { env }
    }
}

impl UpgradeBackend for InProcess {
    fn plan(&self, only: Vec<String>) -> BoxFuture<'static, Result<Planned, String>> {
        let (tx, _) = mpsc::unbounded_channel();
        self.plan_with_progress(only, tx)
    }

    fn plan_with_progress(
        &self,
        only: Vec<String>,
        progress: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'static, Result<Planned, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            prepare(&env, &only, progress)
                .await
                .map_err(|e| crate::base::error_chain(&e))
        })
    }

    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            start(&env, plan)
                .await
                .map_err(|e| crate::base::error_chain(&e))
        })
    }
}

async fn prepare(
    env: &Env,
    only: &[String],
    progress: mpsc::UnboundedSender<String>,
) -> Result<Planned> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::world(env).await?;
    if let Some(crate::operations::upgrade::RunOutcome::Refused { message, .. }) =
        engine::preflight(&world, &journal_dir, "").await
    {
        return Err(eyre!(message));
    }
    let p = live::new_plan(env, &world, only).await?;
    let report = move |line: String| {
        let _ = progress.send(line);
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let (p, f) = forecast::for_env(env, &world, &p, &report, &cancel).await?;
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
        forecast: Some(f),
    })
}

/// Start the run of a confirmed plan. The run waits for the operator on a refusal, a failed
/// step or a reboot question (interactive mode).
async fn start(env: &Env, the_plan: Plan) -> Result<RunLink> {
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
    let (handle, events) = engine::start(world, env.inventory.clone(), the_plan, settings, opts);
    // The engine's task runs on without its handle; the link is how the dashboard follows it.
    Ok(RunLink {
        run_id: handle.run_id().to_string(),
        controls: handle.controls(),
        events,
    })
}
