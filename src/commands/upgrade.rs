//! `homeinfra-tui upgrade`: the same engine without a screen. One line per event (or JSON
//! lines with `--json`); asks before starting unless `--yes`; exit status 0 done, 1 failed or
//! aborted, 2 refused, 3 could not run.

use std::io::{BufRead, IsTerminal, Write};

use color_eyre::eyre::{Result, WrapErr, eyre};

use super::Loaded;
use crate::cli::UpgradeArgs;
use crate::operations::upgrade::engine::{self, StartOptions};
use crate::operations::upgrade::text::{
    EXIT_FAILED, EXIT_OK, EXIT_REFUSED, exit_code, format_event, format_outcome,
};
use crate::operations::upgrade::{
    Control, Plan, PlanEntry, RunOutcome, Settings, UpgradeEvent, forecast, journal, live, lock,
};

fn print_plan(p: &Plan) {
    println!("Upgrade plan {} (flake {}):", p.run_id, p.flake);
    for (i, e) in p.entries.iter().enumerate() {
        println!("  {}. {}", i + 1, entry_line(e));
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

/// Ask a yes/no question on the terminal (default no).
async fn confirm(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        print!("{question} [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

fn refuse(json: bool, guard: &str, message: String) -> u8 {
    let o = RunOutcome::Refused {
        node: None,
        guard: guard.into(),
        message,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&UpgradeEvent::RunFinished { outcome: o.clone() })
                .unwrap_or_default()
        );
    } else {
        eprintln!("{}", format_outcome(&o));
    }
    EXIT_REFUSED
}

/// Run the command.
pub async fn run(loaded: Loaded, args: &UpgradeArgs) -> Result<u8> {
    let Loaded {
        env: ctx,
        read_only,
    } = loaded;
    if read_only && !args.dry_run {
        return Ok(refuse(
            args.json,
            "read-only",
            "read-only mode (--read-only): no upgrade, cordon or uncordon (--dry-run still works)"
                .into(),
        ));
    }
    if ctx.offline {
        return Ok(refuse(
            args.json,
            "offline",
            "--offline: an upgrade needs the cluster and the hosts".into(),
        ));
    }
    let journal_dir = live::journal_dir(&ctx.config.upgrade)?;
    if !args.yes && !args.dry_run && args.abandon.is_none() && !std::io::stdin().is_terminal() {
        return Ok(refuse(
            args.json,
            "confirmation",
            "stdin is not a terminal: pass --yes to start without asking".into(),
        ));
    }
    let settings = Settings::from_config(&ctx.config.upgrade);
    let world = live::world(&ctx).await?;

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
        let sum = journal::summarize(&journal::path_of(&journal_dir, run_id))?;
        if let Some(o) = &sum.finished {
            return Err(eyre!(
                "run {run_id} already finished ({}); nothing to resume",
                format_outcome(o)
            ));
        }
        let Some(at) = sum.resume_at else {
            return Err(eyre!("run {run_id} has no node left to run"));
        };
        (sum.plan, Some(at), None)
    } else {
        if let Some(RunOutcome::Refused { guard, message, .. }) =
            engine::preflight(&world, &journal_dir, "").await
        {
            return Ok(refuse(args.json, &guard, message));
        }
        let p = live::new_plan(&ctx, &world, &args.only).await?;
        // Each node's closure diff, the order that follows it, the k3s skew guards (progress
        // on stderr).
        let progress = |line: String| eprintln!("{line}");
        let cancel = tokio_util::sync::CancellationToken::new();
        let (p, f) = forecast::for_env(&ctx, &world, &p, &progress, &cancel).await?;
        (p, None, Some(f))
    };

    let skew_ok = forecast.as_ref().is_none_or(|f| f.refusals.is_empty());
    if args.dry_run {
        let verdicts = engine::dry_run(&world, &ctx.inventory, &the_plan, &settings).await;
        let all_pass = verdicts.iter().all(|(_, v)| v.iter().all(|v| v.pass)) && skew_ok;
        if args.json {
            let doc = serde_json::json!({
                "plan": the_plan,
                "verdicts": verdicts.iter().map(|(e, v)| serde_json::json!({"node": e.node, "verdicts": v})).collect::<Vec<_>>(),
                "would_start": all_pass,
                "forecast": forecast,
            });
            println!("{}", serde_json::to_string(&doc)?);
        } else {
            print_plan(&the_plan);
            if let Some(f) = &forecast {
                for line in forecast::text(f) {
                    println!("{line}");
                }
            }
            for (e, vs) in &verdicts {
                println!("{}:", e.node);
                for v in vs {
                    println!("  {} {}", if v.pass { "✓" } else { "✗" }, v.line());
                }
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
        return Ok(if all_pass { EXIT_OK } else { EXIT_REFUSED });
    }

    if let Some(f) = &forecast {
        if !f.refusals.is_empty() {
            let lines: Vec<String> = f.refusals.iter().map(|r| r.line()).collect();
            return Ok(refuse(args.json, &f.refusals[0].guard, lines.join("; ")));
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
        print_plan(&the_plan);
        if let Some(f) = &forecast {
            for line in forecast::text(f) {
                println!("{line}");
            }
        }
        let q = format!(
            "{} the upgrade of {} node(s)?",
            if resume.is_some() { "Resume" } else { "Start" },
            the_plan.entries.len()
        );
        if !confirm(q).await {
            return Ok(refuse(
                args.json,
                "confirmation",
                "not confirmed: nothing changed".into(),
            ));
        }
    }

    let run_id = the_plan.run_id.clone();
    let opts = StartOptions {
        holder: lock::holder_identity(&run_id),
        force_unlock: args.force_unlock,
        journal_dir: Some(journal_dir.clone()),
        interactive: false,
        resume,
    };
    let (handle, mut events) =
        engine::start(world, ctx.inventory.clone(), the_plan, settings, opts);
    let mut interrupted = false;
    let mut outcome = None;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                if args.json {
                    println!("{}", serde_json::to_string(&ev)?);
                } else {
                    println!("{}", format_event(&ev));
                }
                if let UpgradeEvent::Waiting { what, detail, .. } = &ev
                    && what == "confirm-reboot"
                {
                    let yes = args.yes || confirm(detail.clone()).await;
                    handle.send(if yes { Control::Approve } else { Control::Decline }).await;
                }
                if let UpgradeEvent::RunFinished { outcome: o } = ev {
                    outcome = Some(o);
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("interrupt: aborting at the next safe point (journal: run {run_id}); interrupt again to stop at once");
                handle.send(Control::Abort).await;
            }
            _ = tokio::signal::ctrl_c(), if interrupted => {
                eprintln!("stopped at once: resume with `homeinfra-tui upgrade --resume {run_id}` or `--abandon {run_id}`");
                handle.kill();
                return Ok(EXIT_FAILED);
            }
        }
    }
    let outcome = match outcome {
        Some(o) => o,
        None => handle.wait().await,
    };
    Ok(exit_code(&outcome))
}
