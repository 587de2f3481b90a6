//! `homeinfra-tui upgrade`: the same engine without a screen. One line per event (or JSON
//! lines with `--json`); asks before starting unless `--yes` (only `y`/`yes` confirm), naming
//! every node and whether it will reboot as far as known; exit status 0 done, 1 failed or
//! aborted, 2 refused, 3 could not run. The run itself goes on in [`super::engine`]: in this
//! process (serving the run's control socket), or detached from the terminal (`--detach`);
//! `--attach RUN` follows one from elsewhere.
//!
//! The dry run needs nothing but a read-only world (it works with `--read-only`); a run,
//! `--resume` and `--abandon` need the write capability, which `--read-only` never gives.

use std::ffi::OsString;
use std::io::IsTerminal;

use color_eyre::eyre::{Result, WrapErr, eyre};

use super::Loaded;
use super::engine::{self as engine_process, Flags, Out, Run};
use crate::base::Env;
use crate::cli::UpgradeArgs;
use crate::config::RebootPolicy;
use crate::operations::upgrade::engine;
use crate::operations::upgrade::process::{EngineCommand, load_plan, write_plan};
use crate::operations::upgrade::snapshot::{SnapshotPlan, snapshot_plan};
use crate::operations::upgrade::text::{self, EXIT_OK, EXIT_REFUSED, format_outcome};
use crate::operations::upgrade::world::ReadWorld;
use crate::operations::upgrade::{
    Plan, PlanEntry, RunOutcome, Settings, UpgradeEvent, Verdict, forecast, journal, live, lock,
};
use forecast::Forecast;

fn print_plan(p: &Plan, reboots: &[String], snap: &SnapshotPlan, env: &Env) {
    println!("Upgrade plan {} (flake {}):", p.run_id, p.flake);
    println!("  {}", snap.line());
    let silences =
        crate::operations::upgrade::planned_silences(&env.config.alertmanager, &env.inventory, p);
    for (i, e) in p.entries.iter().enumerate() {
        match reboots.get(i) {
            Some(r) => println!("  {}. {} — {r}", i + 1, entry_line(e)),
            None => println!("  {}. {}", i + 1, entry_line(e)),
        }
        if let Some(s) = silences.get(&e.node) {
            println!(
                "     silenced in Alertmanager before its cordon until after its uncordon: {}",
                s.join(", ")
            );
        }
    }
}

fn entry_line(e: &PlanEntry) -> String {
    format!(
        "{} ({}, {}{})",
        e.node,
        e.host,
        e.role,
        if e.etcd_leader { ", etcd leader" } else { "" }
    )
}

/// Per node: will it reboot, as far as known before its switch (the policy, or a kernel that
/// already changed and was not booted yet; otherwise the switch decides).
async fn reboot_forecast(world: &ReadWorld, env: &Env, plan: &Plan) -> Vec<String> {
    let policy = env.config.upgrade.reboot;
    let mut out = Vec::new();
    for e in &plan.entries {
        if policy == RebootPolicy::Never {
            out.push("no reboot ([upgrade] reboot = \"never\")".to_string());
            continue;
        }
        let ask = if policy == RebootPolicy::Ask {
            ", asks you first"
        } else {
            ""
        };
        let known = match env.inventory.host(&e.host) {
            Some(h) => world.hosts.boot_state(h).await.ok(),
            None => None,
        };
        out.push(match known {
            Some(b) if b.reboot_needed == Some(true) => format!(
                "reboots ({} changed and not booted yet){ask}",
                b.reasons.join(", ")
            ),
            _ => format!(
                "reboot decided after its switch (when kernel, initrd or modules change){ask}"
            ),
        });
    }
    out
}

/// Per node of `plan`: will it reboot, as the forecast's diffs say.
fn forecast_reboots(f: &Forecast, plan: &Plan) -> Vec<String> {
    plan.entries
        .iter()
        .map(|e| match f.node(&e.node) {
            Some(n) => format!("reboot: {} ({})", n.reboot.will, n.reboot.why),
            None => "reboot decided after its switch".to_string(),
        })
        .collect()
}

/// Each node's closure diff, the order that follows it and the k3s skew guards, for a new
/// plan (progress on stderr). Plans read only: a [`ReadWorld`].
async fn forecast_plan(ctx: &Env, world: &ReadWorld, p: &Plan) -> Result<(Plan, Forecast)> {
    let progress = |line: String| eprintln!("{line}");
    let cancel = tokio_util::sync::CancellationToken::new();
    forecast::for_env(ctx, world, p, &progress, &cancel).await
}

fn refuse(json: bool, guard: &str, message: String) -> u8 {
    engine_process::refuse(&mut Out::new(json), guard, message)
}

/// `--attach RUN`: needs the config (for the journal directory), not the inventory.
pub async fn attach(loaded: &super::ConfigOnly, args: &UpgradeArgs, run_id: &str) -> Result<u8> {
    let journal_dir = live::journal_dir(&loaded.config.upgrade)?;
    engine_process::attach(
        &journal_dir,
        run_id,
        args.json,
        args.abort,
        loaded.read_only,
    )
    .await
}

/// The `upgrade` flags a detached engine gets for `args` (it never asks: `--yes`).
fn engine_flags(args: &UpgradeArgs) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["--yes".into()];
    if args.force_unlock {
        v.push("--force-unlock".into());
    }
    if args.wait_for_operator {
        v.push("--wait-for-operator".into());
    }
    if let Some(pid) = args.stop_with_pid {
        v.push("--stop-with-pid".into());
        v.push(pid.to_string().into());
    }
    v
}

/// The dry run: the plan and every guard's verdict (skipped ones said so), touching nothing.
async fn dry_run(ctx: &Env, args: &UpgradeArgs, journal_dir: &std::path::Path) -> Result<u8> {
    let world = live::read_world(ctx).await?;
    if let Some(RunOutcome::Refused { guard, message, .. }) =
        engine::preflight(&world, journal_dir, "").await
    {
        return Ok(refuse(args.json, &guard, message));
    }
    let the_plan = live::new_plan(ctx, &world, &args.only).await?;
    let (the_plan, forecast) = forecast_plan(ctx, &world, &the_plan).await?;
    let settings = Settings::new(&ctx.config);
    let mut verdicts = engine::dry_run(&world, &ctx.inventory, &the_plan, &settings).await;
    // The k3s skew guards are guards like the others: in each node's verdicts.
    forecast.add_verdicts(&mut verdicts);
    let all_pass = verdicts.iter().all(|(_, v)| v.iter().all(|v| v.pass));
    let skipped: Vec<String> = {
        let mut s: Vec<String> = verdicts
            .iter()
            .flat_map(|(_, v)| v.iter())
            .filter(|v| v.verdict == Verdict::Skipped)
            .map(|v| v.guard.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let snap = snapshot_plan(&the_plan, &ctx.inventory, settings.pre_snapshot, 0);
    if args.json {
        let doc = serde_json::json!({
            "plan": the_plan,
            "pre_snapshot": snap,
            "verdicts": verdicts.iter().map(|(e, v)| serde_json::json!({"node": e.node, "verdicts": v})).collect::<Vec<_>>(),
            "skipped_guards": skipped,
            "would_start": all_pass,
            "forecast": forecast,
            "silences": crate::operations::upgrade::planned_silences(&ctx.config.alertmanager, &ctx.inventory, &the_plan),
        });
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        print_plan(
            &the_plan,
            &forecast_reboots(&forecast, &the_plan),
            &snap,
            ctx,
        );
        for line in forecast::text(&forecast) {
            println!("{line}");
        }
        for (e, vs) in &verdicts {
            println!("{}:", e.node);
            for v in vs {
                let mark = match v.verdict {
                    Verdict::Pass => "✓",
                    Verdict::Skipped => "–",
                    Verdict::Refuse | Verdict::CannotVerify => "✗",
                };
                println!("  {mark} {}", v.line());
            }
        }
        if !skipped.is_empty() {
            println!(
                "skipped by [upgrade] skip_guards: {} (the config says this cluster has no data for them)",
                skipped.join(", ")
            );
        }
        if let Some(held) = lock::current(world.cluster.as_ref(), world.clock.now()).await? {
            println!("lock: {held}");
        }
        println!(
            "dry run: nothing changed; {}",
            if all_pass {
                "every guard passes right now"
            } else {
                "some guards refuse right now (each node is checked again right before it)"
            }
        );
    }
    Ok(if all_pass { EXIT_OK } else { EXIT_REFUSED })
}

/// Run the command.
pub async fn run(loaded: Loaded, args: &UpgradeArgs, engine_cmd: &EngineCommand) -> Result<u8> {
    let Loaded { env: ctx, writes } = loaded;
    if ctx.offline {
        return Ok(refuse(
            args.json,
            "offline",
            "--offline: an upgrade needs the cluster and the hosts".into(),
        ));
    }
    let journal_dir = live::journal_dir(&ctx.config.upgrade)?;
    if args.dry_run {
        return dry_run(&ctx, args, &journal_dir).await;
    }
    let Some(writes) = writes else {
        return Ok(refuse(
            args.json,
            "read-only",
            "read-only mode (--read-only): no upgrade, resume, abandon, cordon or uncordon (--dry-run still works)"
                .into(),
        ));
    };
    // An interrupted run is named (where it stopped, how to resume or abandon it) before
    // anything else is asked.
    if args.resume.is_none()
        && args.abandon.is_none()
        && args.plan.is_none()
        && let Some(RunOutcome::Refused { guard, message, .. }) =
            engine::unfinished_run(&journal_dir, "")
    {
        return Ok(refuse(args.json, &guard, message));
    }
    if !args.yes && args.abandon.is_none() && !std::io::stdin().is_terminal() {
        return Ok(refuse(
            args.json,
            "confirmation",
            "stdin is not a terminal: pass --yes to start without asking".into(),
        ));
    }
    let settings = Settings::new(&ctx.config);

    // `--detach` of a plan already confirmed (the dashboard's) or of a resume: the engine
    // builds its own clients; here only the files are checked.
    if args.detach && (args.plan.is_some() || args.resume.is_some()) && args.yes {
        let (run_id, mut child): (String, Vec<OsString>) = if let Some(run_id) = &args.resume {
            journal::valid_run_id(run_id)?;
            let sum = journal::summarize(&journal::path_of(&journal_dir, run_id))?;
            if let Some(o) = &sum.finished {
                return Err(eyre!("{}", text::not_resumable(run_id, o)));
            }
            (run_id.clone(), vec!["--resume".into(), run_id.into()])
        } else {
            let file = args.plan.clone().unwrap_or_default();
            let p = load_plan(&file, &ctx.inventory, &journal_dir)?;
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            (p.run_id, vec!["--plan".into(), file.into_os_string()])
        };
        child.extend(engine_flags(args));
        return engine_process::detach(engine_cmd, &journal_dir, &run_id, child, args.json).await;
    }
    let world = live::world(&ctx, &writes).await?;

    if let Some(run_id) = &args.abandon {
        let un = engine::abandon(&world, &journal_dir, run_id)
            .await
            .wrap_err_with(|| format!("cannot abandon run {run_id}"))?;
        let o = RunOutcome::Abandoned { uncordoned: un };
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&UpgradeEvent::RunFinished { outcome: o.clone() })?
            );
        } else {
            println!("{}", format_outcome(&o));
        }
        return Ok(EXIT_OK);
    }

    let (the_plan, resume, forecast) = if let Some(run_id) = &args.resume {
        journal::valid_run_id(run_id)?;
        let sum = journal::summarize(&journal::path_of(&journal_dir, run_id))?;
        if let Some(o) = &sum.finished {
            return Err(eyre!("{}", text::not_resumable(run_id, o)));
        }
        let Some(at) = sum.resume_at else {
            return Err(eyre!("run {run_id} has no node left to run"));
        };
        // A run whose process lives (here) or renews its lock (elsewhere) is not resumed twice.
        if let Err(why) =
            lock::resumable(world.read.cluster.as_ref(), run_id, world.read.clock.now()).await
        {
            return Ok(refuse(args.json, "lock", why));
        }
        if !args.json
            && let Some(at) = sum.stopped_at()
        {
            println!("resuming run {run_id}, stopped at {at}");
        }
        (sum.plan, Some(at), None)
    } else if let Some(file) = &args.plan {
        // A plan confirmed elsewhere (the dashboard's): its forecast was shown there.
        (load_plan(file, &ctx.inventory, &journal_dir)?, None, None)
    } else {
        if let Some(RunOutcome::Refused { guard, message, .. }) =
            engine::preflight(&world.read, &journal_dir, "").await
        {
            return Ok(refuse(args.json, &guard, message));
        }
        let p = live::new_plan(&ctx, &world.read, &args.only).await?;
        let (p, f) = forecast_plan(&ctx, &world.read, &p).await?;
        (p, None, Some(f))
    };

    if let Some(f) = &forecast {
        // A version-skew refusal (refuse or cannot-verify) stops a new run before it starts.
        if let Some(first) = f.refusals.first() {
            let lines: Vec<String> = f.refusals.iter().map(|r| r.line()).collect();
            return Ok(refuse(args.json, &first.guard, lines.join("; ")));
        }
        if the_plan.entries.is_empty() {
            let o = "nothing to upgrade: every planned node already runs what the flake builds";
            if args.json {
                println!("{}", serde_json::json!({"nothing_to_do": o, "forecast": f}));
            } else {
                println!("{o}");
            }
            return Ok(EXIT_OK);
        }
    }

    if !args.yes {
        let reboots = match &forecast {
            Some(f) => forecast_reboots(f, &the_plan),
            None => reboot_forecast(&world.read, &ctx, &the_plan).await,
        };
        let from = resume.map_or(0, |(i, _)| i);
        print_plan(
            &the_plan,
            &reboots,
            &snapshot_plan(&the_plan, &ctx.inventory, settings.pre_snapshot, from),
            &ctx,
        );
        if let Some(f) = &forecast {
            for line in forecast::text(f) {
                println!("{line}");
            }
        }
        let nodes: Vec<&str> = the_plan.entries.iter().map(|e| e.node.as_str()).collect();
        let q = format!(
            "{} the upgrade of {} ({} node(s), in this order; each may reboot as shown above)?",
            if resume.is_some() { "Resume" } else { "Start" },
            nodes.join(", "),
            nodes.len()
        );
        if !engine_process::confirm(q).await {
            return Ok(refuse(
                args.json,
                "confirmation",
                "not confirmed (only y or yes confirms): nothing changed".into(),
            ));
        }
    }

    if args.detach {
        let mut child: Vec<OsString> = match &args.resume {
            Some(run_id) => vec!["--resume".into(), run_id.into()],
            None => {
                let path = write_plan(&journal_dir, &the_plan)?;
                vec!["--plan".into(), path.into_os_string()]
            }
        };
        child.extend(engine_flags(args));
        return engine_process::detach(
            engine_cmd,
            &journal_dir,
            &the_plan.run_id,
            child,
            args.json,
        )
        .await;
    }
    engine_process::run_engine(
        Run {
            env: ctx.clone(),
            world,
            plan: the_plan,
            resume,
            settings,
            journal_dir,
        },
        Flags {
            json: args.json,
            yes: args.yes,
            force_unlock: args.force_unlock,
            wait_for_operator: args.wait_for_operator,
            stop_with_pid: args.stop_with_pid,
        },
    )
    .await
}
