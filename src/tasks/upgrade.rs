//! The dashboard's rolling upgrade, as the registry sees it: a backend that computes the plan
//! with every guard's verdict (a dry run, touching nothing), starts a confirmed plan, and
//! follows runs — handing back a [`RunLink`]: the run's events and a sender of controls.
//!
//! [`EngineProcess`] is the one the dashboard uses: a run is the engine of
//! `homeinfra-tui upgrade` in its own process, detached from the terminal (`upgrade --detach`,
//! started from this very executable with the same files), and the dashboard attaches to it
//! through its journal and control socket (`operations::upgrade::process`). Nothing here owns
//! a run: dropping a link stops following, never the run. The same backend finds the runs
//! left unfinished (a live one to attach to, an interrupted one to resume or abandon).

use std::ffi::OsString;
use std::path::PathBuf;

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::base::{Env, Writes, error_chain};
use crate::operations::upgrade::forecast::{self, Forecast};
use crate::operations::upgrade::guards::GuardVerdict;
use crate::operations::upgrade::process::{self, EngineCommand, Followed};
use crate::operations::upgrade::text::format_outcome;
use crate::operations::upgrade::{
    Control, Plan, PlanEntry, RunOutcome, Settings, Step, UpgradeEvent, engine, live, lock,
};

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
    /// A drain's plan as text (the node, its guards, the PDBs, the silences); empty for an
    /// upgrade.
    pub notes: Vec<String>,
}

/// A run the dashboard follows: where its events come from, where its controls go. Dropping
/// the link stops following; it never stops the run (that is `Control::Abort`).
#[derive(Debug)]
pub struct RunLink {
    pub run_id: String,
    /// The engine process, when the run has one of its own.
    pub pid: Option<u32>,
    pub events: mpsc::Receiver<UpgradeEvent>,
    pub controls: mpsc::Sender<Control>,
}

/// A run in the journal directory that has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRun {
    pub run_id: String,
    pub plan: Plan,
    /// Its engine's pid when the engine answers on the run's socket (a live run); `None`: the
    /// engine is gone and the run is interrupted.
    pub pid: Option<u32>,
    /// The step it was in when its journal ended (interrupted runs).
    pub interrupted: Option<(String, Step)>,
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
    /// The plan of one node's drain (a maintenance) and its guards' verdicts.
    fn plan_drain(&self, node: String) -> BoxFuture<'static, Result<Planned, String>> {
        Box::pin(async move { Err(format!("cannot plan the drain of {node} from here")) })
    }
    /// Start a confirmed plan; resolves once the run takes controls. It may take a while
    /// (kube and SSH clients are built): the registry awaits it in the task, never the UI.
    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>>;
    /// Follow the live run `run_id`.
    fn attach(&self, run_id: String) -> BoxFuture<'static, Result<RunLink, String>> {
        Box::pin(async move { Err(format!("cannot attach to run {run_id} from here")) })
    }
    /// The runs left unfinished: live ones first, then the newest.
    fn find(&self) -> BoxFuture<'static, Result<Vec<FoundRun>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Resume the interrupted run `run_id` (a new engine) and follow it.
    fn resume(&self, run_id: String) -> BoxFuture<'static, Result<RunLink, String>> {
        Box::pin(async move { Err(format!("cannot resume run {run_id} from here")) })
    }
    /// Abandon the interrupted run `run_id`: undo its cordons, release the lock; what was done.
    fn abandon(&self, run_id: String) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async move { Err(format!("cannot abandon run {run_id} from here")) })
    }
}

/// Runs as engine processes of their own (`upgrade --detach`), followed through their journal
/// and control socket.
pub struct EngineProcess {
    env: Env,
    command: EngineCommand,
    /// The write capability: `None` (read-only mode) starts, resumes and abandons nothing.
    writes: Option<Writes>,
}

impl EngineProcess {
    /// `command` starts this program's `upgrade` with the dashboard's files.
    pub fn new(env: Env, command: EngineCommand, writes: Option<Writes>) -> Self {
        Self {
            env,
            command,
            writes,
        }
    }

    /// The engine command, only with the write capability: a read-only dashboard starts no
    /// process that writes.
    fn writer(&self, what: &str) -> Result<EngineCommand, String> {
        match &self.writes {
            Some(_) => Ok(self.command.clone()),
            None => Err(format!("read-only mode (--read-only): no upgrade {what}")),
        }
    }
}

fn chain(r: Result<RunLink>) -> Result<RunLink, String> {
    r.map_err(|e| error_chain(&e))
}

impl UpgradeBackend for EngineProcess {
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
                .map_err(|e| error_chain(&e))
        })
    }

    fn plan_drain(&self, node: String) -> BoxFuture<'static, Result<Planned, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            prepare_drain(&env, &node)
                .await
                .map_err(|e| error_chain(&e))
        })
    }

    fn start(&self, plan: Plan) -> BoxFuture<'static, Result<RunLink, String>> {
        let env = self.env.clone();
        let command = self.writer("run");
        Box::pin(async move {
            let command = command?;
            chain(
                async {
                    let dir = live::journal_dir(&env.config.upgrade)?;
                    let file = process::write_plan(&dir, &plan)?;
                    let args: Vec<OsString> = vec!["--plan".into(), file.into_os_string()];
                    let run_id = detach(&command, args).await?;
                    follow(dir, &run_id).await
                }
                .await,
            )
        })
    }

    fn attach(&self, run_id: String) -> BoxFuture<'static, Result<RunLink, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            chain(
                async {
                    let dir = live::journal_dir(&env.config.upgrade)?;
                    follow(dir, &run_id).await
                }
                .await,
            )
        })
    }

    fn find(&self) -> BoxFuture<'static, Result<Vec<FoundRun>, String>> {
        let env = self.env.clone();
        Box::pin(async move {
            let dir = live::journal_dir(&env.config.upgrade).map_err(|e| error_chain(&e))?;
            let found = process::find(&dir).await.map_err(|e| error_chain(&e))?;
            Ok(found
                .into_iter()
                .map(|f| FoundRun {
                    run_id: f.summary.run_id,
                    plan: f.summary.plan,
                    pid: f.engine.map(|h| h.pid),
                    interrupted: f.summary.interrupted,
                })
                .collect())
        })
    }

    fn resume(&self, run_id: String) -> BoxFuture<'static, Result<RunLink, String>> {
        let env = self.env.clone();
        let command = self.writer("resume");
        Box::pin(async move {
            let command = command?;
            chain(
                async {
                    let dir = live::journal_dir(&env.config.upgrade)?;
                    let args: Vec<OsString> = vec!["--resume".into(), run_id.clone().into()];
                    let run_id = detach(&command, args).await?;
                    follow(dir, &run_id).await
                }
                .await,
            )
        })
    }

    fn abandon(&self, run_id: String) -> BoxFuture<'static, Result<String, String>> {
        let command = self.writer("abandon");
        Box::pin(async move {
            let command = command?;
            let args: Vec<OsString> =
                vec!["--abandon".into(), run_id.clone().into(), "--json".into()];
            // Not killed when the dashboard goes: an abandon half done is worse than one done.
            let out = command
                .upgrade(&args)
                .output()
                .await
                .map_err(|e| format!("cannot run `upgrade --abandon {run_id}`: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let outcome =
                stdout
                    .lines()
                    .find_map(|l| match serde_json::from_str::<UpgradeEvent>(l) {
                        Ok(UpgradeEvent::RunFinished { outcome }) => Some(outcome),
                        _ => None,
                    });
            match outcome {
                Some(o @ RunOutcome::Abandoned { .. }) => {
                    Ok(format!("run {run_id}: {}", format_outcome(&o)))
                }
                Some(o) => Err(format_outcome(&o)),
                None => Err(last_words(
                    &out.stderr,
                    &format!("`upgrade --abandon {run_id}` failed"),
                )),
            }
        })
    }
}

/// The last line a child said on stderr (its `error: …`), or `fallback`.
fn last_words(stderr: &[u8], fallback: &str) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim_start_matches("error: ").to_string())
        .unwrap_or_else(|| fallback.to_string())
}

/// Start `upgrade --detach --yes --wait-for-operator ARGS --json` and wait until it says the
/// run runs in the background; its run id.
async fn detach(command: &EngineCommand, args: Vec<OsString>) -> Result<String> {
    let mut all: Vec<OsString> = vec![
        "--detach".into(),
        "--yes".into(),
        "--wait-for-operator".into(),
        "--json".into(),
    ];
    all.extend(args);
    // No kill_on_drop: once the engine is detached, this child only reports and exits.
    let out = command.upgrade(&all).output().await.map_err(|e| {
        eyre!(
            "cannot start the upgrade engine {}: {e}",
            command.exe().display()
        )
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(id) = v
            .get("detached")
            .and_then(|d| d.get("run_id"))
            .and_then(|r| r.as_str())
        {
            return Ok(id.to_string());
        }
        if let Ok(UpgradeEvent::RunFinished { outcome }) = serde_json::from_value(v) {
            return Err(eyre!(format_outcome(&outcome)));
        }
    }
    Err(eyre!(last_words(
        &out.stderr,
        "the upgrade engine did not start (see its log)"
    )))
}

/// Follow `run_id`: its journal, then its socket. Control refusals and a lost engine come as
/// notices; the events end when the run ends or the engine is gone.
async fn follow(dir: PathBuf, run_id: &str) -> Result<RunLink> {
    let mut f = process::follow(&dir, run_id).await?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(x) = f.events.recv().await {
            let ev = match x {
                Followed::Event(rec) => rec.event,
                Followed::Ack(_) => continue,
                Followed::Refused(e) => UpgradeEvent::Notice {
                    node: None,
                    message: format!("the run did not take a control: {e}"),
                },
                Followed::Lost(m) => UpgradeEvent::Notice {
                    node: None,
                    message: m,
                },
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    Ok(RunLink {
        run_id: f.hello.run_id.clone(),
        pid: Some(f.hello.pid),
        events: rx,
        controls: f.controls,
    })
}

async fn prepare(
    env: &Env,
    only: &[String],
    progress: mpsc::UnboundedSender<String>,
) -> Result<Planned> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::read_world(env).await?;
    if let Some(RunOutcome::Refused { message, .. }) =
        engine::preflight(&world, &journal_dir, "").await
    {
        return Err(eyre!(message));
    }
    let p = live::new_plan(env, &world, only).await?;
    let report = move |line: String| {
        let _ = progress.send(line);
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    // Plans read only: the forecast takes the same read-only world as the dry run.
    let (p, f) = forecast::for_env(env, &world, &p, &report, &cancel).await?;
    let settings = Settings::new(&env.config);
    let mut verdicts = engine::dry_run(&world, &env.inventory, &p, &settings).await;
    // The k3s skew guards answer with the others.
    f.add_verdicts(&mut verdicts);
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
        notes: Vec::new(),
    })
}

/// The plan of a drain of `node`: refused (the lock held, a run unfinished) as an error.
async fn prepare_drain(env: &Env, node: &str) -> Result<Planned> {
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::read_world(env).await?;
    let dp =
        match crate::operations::upgrade::drain::prepare(env, &world, &journal_dir, node).await? {
            Ok(dp) => dp,
            Err(o) => return Err(eyre!(format_outcome(&o))),
        };
    let lock = lock::current(world.cluster.as_ref(), world.clock.now())
        .await
        .ok()
        .flatten()
        .map(|l| l.to_string());
    let entry = dp.plan.entries.first().cloned();
    Ok(Planned {
        notes: dp.lines(),
        verdicts: entry
            .map(|e| vec![(e, dp.verdicts.clone())])
            .unwrap_or_default(),
        plan: dp.plan,
        lock,
        forecast: None,
    })
}
