//! `homeinfra-tui upgrade`: the same engine without a screen. One line per event (or JSON
//! lines with `--json`); asks before starting unless `--yes` (only `y`/`yes` confirm), naming
//! every node and whether it will reboot as far as known; exit status 0 done, 1 failed or
//! aborted, 2 refused, 3 could not run.
//!
//! The dry run needs nothing but a read-only world (it works with `--read-only`); a run,
//! `--resume` and `--abandon` need the write capability, which `--read-only` never gives.

use std::io::{BufRead, IsTerminal, Write};

use color_eyre::eyre::{Result, WrapErr, eyre};

use super::Loaded;
use crate::base::Env;
use crate::cli::UpgradeArgs;
use crate::config::RebootPolicy;
use crate::operations::upgrade::engine::{self, StartOptions};
use crate::operations::upgrade::text::{
    EXIT_FAILED, EXIT_OK, EXIT_REFUSED, exit_code, format_event, format_outcome,
};
use crate::operations::upgrade::world::ReadWorld;
use crate::operations::upgrade::{
    Control, Plan, PlanEntry, RunOutcome, Settings, UpgradeEvent, Verdict, journal, live, lock,
};

fn print_plan(p: &Plan, reboots: &[String]) {
    println!("Upgrade plan {} (flake {}):", p.run_id, p.flake);
    for (i, e) in p.entries.iter().enumerate() {
        match reboots.get(i) {
            Some(r) => println!("  {}. {} — {r}", i + 1, entry_line(e)),
            None => println!("  {}. {}", i + 1, entry_line(e)),
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

/// Ask a yes/no question on the terminal (default no): only `y` or `yes` confirm.
async fn confirm(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        print!("{question} [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        is_yes(&line)
    })
    .await
    .unwrap_or(false)
}

/// Only `y` or `yes` (any case, surrounding blanks ignored) is a yes; Enter alone is not.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
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

/// The dry run: the plan and every guard's verdict (skipped ones said so), touching nothing.
async fn dry_run(ctx: &Env, args: &UpgradeArgs, journal_dir: &std::path::Path) -> Result<u8> {
    let world = live::read_world(ctx).await?;
    if let Some(RunOutcome::Refused { guard, message, .. }) =
        engine::preflight(&world, journal_dir, "").await
    {
        return Ok(refuse(args.json, &guard, message));
    }
    let the_plan = live::new_plan(ctx, &world, &args.only).await?;
    let settings = Settings::new(&ctx.config);
    let verdicts = engine::dry_run(&world, &ctx.inventory, &the_plan, &settings).await;
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
    if args.json {
        let doc = serde_json::json!({
            "plan": the_plan,
            "verdicts": verdicts.iter().map(|(e, v)| serde_json::json!({"node": e.node, "verdicts": v})).collect::<Vec<_>>(),
            "skipped_guards": skipped,
            "would_start": all_pass,
        });
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        let reboots = reboot_forecast(&world, ctx, &the_plan).await;
        print_plan(&the_plan, &reboots);
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
pub async fn run(loaded: Loaded, args: &UpgradeArgs) -> Result<u8> {
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

    let (the_plan, resume) = if let Some(run_id) = &args.resume {
        journal::valid_run_id(run_id)?;
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
        (sum.plan, Some(at))
    } else {
        if let Some(RunOutcome::Refused { guard, message, .. }) =
            engine::preflight(&world.read, &journal_dir, "").await
        {
            return Ok(refuse(args.json, &guard, message));
        }
        let p = live::new_plan(&ctx, &world.read, &args.only).await?;
        (p, None)
    };

    if !args.yes {
        let reboots = reboot_forecast(&world.read, &ctx, &the_plan).await;
        print_plan(&the_plan, &reboots);
        let nodes: Vec<&str> = the_plan.entries.iter().map(|e| e.node.as_str()).collect();
        let q = format!(
            "{} the upgrade of {} ({} node(s), in this order; each may reboot as shown above)?",
            if resume.is_some() { "Resume" } else { "Start" },
            nodes.join(", "),
            nodes.len()
        );
        if !confirm(q).await {
            return Ok(refuse(
                args.json,
                "confirmation",
                "not confirmed (only y or yes confirms): nothing changed".into(),
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

#[cfg(test)]
mod tests {
    use super::is_yes;

    #[test]
    fn only_y_or_yes_confirms() {
        for yes in ["y", "Y", "yes", "YES", " yes \n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "ye", "yes please", "oui"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
