//! `homeinfra-tui drain NODE` and `homeinfra-tui uncordon NODE`: one node's maintenance.
//!
//! `drain` shows the plan (the node, every guard's verdict, the PodDisruptionBudgets the drain
//! respects, the silences), refuses when a guard refuses or cannot verify, asks once (only
//! `y`/`yes`; `--yes` skips it), then starts the engine detached (`upgrade --plan FILE`, a run
//! of kind drain: the upgrade's lock, silences and journal) and follows it until the node is
//! held in maintenance — the engine holds it, keeping the lock and the silences alive — or
//! the run ends (a refusal, a drain that timed out with the node cordoned). Exit status as
//! `upgrade`: 0 in maintenance, 1 failed, 2 refused, 3 could not run.
//!
//! `uncordon` ends the maintenance of its node: a live engine is told to (it uncordons,
//! expires the silences, releases the lock); an engine that is gone has its run abandoned (our
//! cordon undone, the lock released) and the silences it journaled expired; a node cordoned by
//! hand or by a run that is over is uncordoned.

use std::ffi::OsString;

use color_eyre::eyre::{Result, WrapErr};

use super::Loaded;
use super::engine::{self as engine_process, Out};
use crate::base::error_chain;
use crate::cli::{DrainArgs, UncordonArgs};
use crate::operations::upgrade::drain::{self, DrainPlan};
use crate::operations::upgrade::process::{self, EngineCommand, Followed, Started, spawn};
use crate::operations::upgrade::text::{EXIT_FAILED, EXIT_OK, exit_code, format_outcome};
use crate::operations::upgrade::{Control, RunOutcome, UpgradeEvent, engine, journal, live, lock};

/// How long `drain` waits for its engine to say the run started.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn finish(out: &mut Out, o: &RunOutcome) -> u8 {
    if out.is_json() {
        out.line(
            &serde_json::to_string(&UpgradeEvent::RunFinished { outcome: o.clone() })
                .unwrap_or_default(),
        );
    } else {
        out.note(&format_outcome(o));
    }
    exit_code(o)
}

/// `drain NODE`.
pub async fn drain(loaded: Loaded, args: &DrainArgs, engine_cmd: &EngineCommand) -> Result<u8> {
    let Loaded { env, writes } = loaded;
    let mut out = Out::new(args.json);
    if env.offline {
        return Ok(engine_process::refuse(
            &mut out,
            "offline",
            "--offline: a drain needs the cluster".into(),
        ));
    }
    if writes.is_none() {
        return Ok(engine_process::refuse(
            &mut out,
            "read-only",
            "read-only mode (--read-only): no drain (nothing that cordons or evicts is built)"
                .into(),
        ));
    }
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let world = live::read_world(&env).await?;
    let dp: DrainPlan = match drain::prepare(&env, &world, &journal_dir, &args.node).await? {
        Ok(p) => p,
        Err(refusal) => return Ok(finish(&mut out, &refusal)),
    };
    if args.json {
        out.line(&serde_json::json!({ "drain_plan": dp }).to_string());
    } else {
        for l in dp.lines() {
            out.line(&l);
        }
    }
    // Fail closed: a guard that refuses or cannot verify stops it before anything is asked.
    if let Some(refusal) = dp.refusal() {
        return Ok(finish(&mut out, &refusal));
    }
    if !args.yes {
        if !engine_process::can_ask() {
            return Ok(engine_process::refuse(
                &mut out,
                "confirmation",
                "stdin is not a terminal: pass --yes to drain without asking".into(),
            ));
        }
        let q = format!(
            "Drain {} and hold it in maintenance until `homeinfra-tui uncordon {}`?",
            dp.node(),
            dp.node()
        );
        if !engine_process::confirm(q).await {
            return Ok(engine_process::refuse(
                &mut out,
                "confirmation",
                "not confirmed (only y or yes confirms): nothing changed".into(),
            ));
        }
    }
    let run_id = dp.plan.run_id.clone();
    let path = process::write_plan(&journal_dir, &dp.plan)?;
    let mut child: Vec<OsString> = vec!["--plan".into(), path.into_os_string(), "--yes".into()];
    if args.force_unlock {
        child.push("--force-unlock".into());
    }
    start_and_follow(engine_cmd, &journal_dir, &run_id, child, &mut out).await
}

/// Start the engine of `run_id` detached and follow it until its node is held in
/// maintenance (exit 0) or the run ends.
pub async fn start_and_follow(
    cmd: &EngineCommand,
    journal_dir: &std::path::Path,
    run_id: &str,
    args: Vec<OsString>,
    out: &mut Out,
) -> Result<u8> {
    process::private_dir(journal_dir)?;
    let log = process::log_path(journal_dir, run_id);
    let base = journal::next_seq(&journal::path_of(journal_dir, run_id));
    let mut child = spawn::spawn_detached(cmd, &log, &args)?;
    let pid = child.id();
    match spawn::wait_started(&mut child, journal_dir, run_id, base, &log, START_WAIT).await {
        Started::Running(_) | Started::Slow(_) => {}
        Started::Finished(_, o) => return Ok(finish(out, &o)),
        Started::Exited { code, log_tail } => {
            let e = spawn::exited_error(code, &log_tail, &log);
            out.note(&format!("error: {}", error_chain(&e)));
            return Ok(super::EXIT_ERROR);
        }
    }
    if out.is_json() {
        out.line(
            &serde_json::json!({"detached": {"run_id": run_id, "pid": pid, "log": log}})
                .to_string(),
        );
    } else {
        out.note(&format!(
            "run {run_id}: engine pid {pid} in the background, log {}",
            log.display()
        ));
    }
    let mut f = process::follow(journal_dir, run_id)
        .await
        .wrap_err_with(|| format!("cannot follow run {run_id}"))?;
    while let Some(e) = f.events.recv().await {
        match e {
            Followed::Event(rec) => {
                out.event(&rec.event);
                match &rec.event {
                    UpgradeEvent::Waiting { what, .. } if what == "maintenance" => {
                        if !out.is_json() {
                            out.note(&format!(
                                "the engine (pid {}) holds the maintenance: its lock and silences stay alive; follow it with `homeinfra-tui upgrade --attach {run_id}`",
                                pid
                            ));
                        }
                        return Ok(EXIT_OK);
                    }
                    UpgradeEvent::RunFinished { outcome } => return Ok(exit_code(outcome)),
                    _ => {}
                }
            }
            Followed::Lost(m) => {
                out.note(&m);
                return Ok(EXIT_FAILED);
            }
            Followed::Ack(_) | Followed::Refused(_) => {}
        }
    }
    out.note(&format!("the connection to run {run_id} ended"));
    Ok(EXIT_FAILED)
}

/// `uncordon NODE`.
pub async fn uncordon(loaded: Loaded, args: &UncordonArgs) -> Result<u8> {
    let Loaded { env, writes } = loaded;
    let mut out = Out::new(args.json);
    if env.offline {
        return Ok(engine_process::refuse(
            &mut out,
            "offline",
            "--offline: uncordon needs the cluster".into(),
        ));
    }
    let Some(writes) = writes else {
        return Ok(engine_process::refuse(
            &mut out,
            "read-only",
            "read-only mode (--read-only): no uncordon".into(),
        ));
    };
    let node = env
        .inventory
        .by_name(&args.node)
        .map_or(args.node.clone(), |h| h.hostname.clone());
    let journal_dir = live::journal_dir(&env.config.upgrade)?;
    let runs = drain::maintenances_of(&journal_dir, &node)?;
    // A live maintenance: its engine ends it.
    for run in &runs {
        if let Ok(mut f) = process::follow(&journal_dir, &run.run_id).await {
            out.note(&format!(
                "ending the maintenance of {node} (run {}, engine pid {})",
                run.run_id, f.hello.pid
            ));
            let _ = f.controls.send(Control::EndMaintenance).await;
            let mut seen_hold = false;
            while let Some(e) = f.events.recv().await {
                match e {
                    Followed::Event(rec) => {
                        // The run's past is in its journal; print what ends it.
                        if seen_hold {
                            out.event(&rec.event);
                        }
                        if matches!(&rec.event, UpgradeEvent::Waiting { what, .. } if what == "maintenance")
                        {
                            seen_hold = true;
                        }
                        if let UpgradeEvent::RunFinished { outcome } = &rec.event {
                            return Ok(exit_code(outcome));
                        }
                    }
                    Followed::Refused(m) => out.note(&format!("the run did not take it: {m}")),
                    Followed::Lost(m) => {
                        out.note(&m);
                        return Ok(EXIT_FAILED);
                    }
                    Followed::Ack(_) => {}
                }
            }
            out.note("the connection to the run ended");
            return Ok(EXIT_FAILED);
        }
    }
    let world = live::world(&env, &writes).await?;
    // A maintenance whose engine is gone: abandon its run, expire the silences it made.
    if let Some(run) = runs.first() {
        out.note(&format!(
            "the engine of maintenance run {} is gone: abandoning it (uncordon {node}, release the lock, expire its silences)",
            run.run_id
        ));
        let un = engine::abandon(&world, &journal_dir, &run.run_id)
            .await
            .wrap_err_with(|| format!("cannot end the maintenance run {}", run.run_id))?;
        expire_journaled_silences(&world, &run.path, &mut out).await;
        return Ok(finish(&mut out, &RunOutcome::Abandoned { uncordoned: un }));
    }
    // No maintenance: a node cordoned by hand, or by a run that is over.
    let st = world
        .read
        .cluster
        .node(&node)
        .await
        .wrap_err_with(|| format!("cannot read node {node}"))?;
    if !st.unschedulable {
        out.note(&format!("{node} is not cordoned: nothing to do"));
        return Ok(EXIT_OK);
    }
    if let Some(by) = &st.cordoned_by
        && let Ok(Some(held)) =
            lock::current(world.read.cluster.as_ref(), world.read.clock.now()).await
        && !held.stale
        && held.run_id() == by
    {
        return Ok(engine_process::refuse(
            &mut out,
            "lock",
            format!(
                "{node} is cordoned by run {by}, which is running ({}): abort it instead (`homeinfra-tui upgrade --attach {by} --abort`)",
                held.holder
            ),
        ));
    }
    world
        .write
        .cluster
        .uncordon(&node)
        .await
        .wrap_err_with(|| format!("cannot uncordon {node}"))?;
    out.note(&format!("{node} uncordoned"));
    Ok(EXIT_OK)
}

/// Expire the silences a run journaled (made and not expired): its engine is gone.
async fn expire_journaled_silences(
    world: &crate::operations::upgrade::World,
    path: &std::path::Path,
    out: &mut Out,
) {
    let Some(w) = world.write.silences.clone() else {
        return;
    };
    let mut ids: Vec<String> = Vec::new();
    for rec in journal::read(path).unwrap_or_default() {
        match rec.event {
            UpgradeEvent::Silenced { silences, .. } => {
                ids.extend(silences.into_iter().map(|s| s.id))
            }
            UpgradeEvent::SilencesExpired { ids: gone, .. } => ids.retain(|i| !gone.contains(i)),
            _ => {}
        }
    }
    for id in ids {
        match w.expire(&id).await {
            Ok(()) => out.note(&format!("silence {id} expired")),
            Err(e) => out.note(&format!(
                "could not expire silence {id} (it lapses by itself): {e}"
            )),
        }
    }
}
