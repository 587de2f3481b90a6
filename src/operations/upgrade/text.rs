//! Events and outcomes of a run as lines of text: the headless command prints them, the
//! dashboard's run log shows them. Also the exit status of an outcome.

use super::guards::GuardVerdict;
use super::{NodeOutcome, RunOutcome, StepOutcome, UpgradeEvent};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;

/// The exit status of an outcome.
pub fn exit_code(o: &RunOutcome) -> u8 {
    match o {
        RunOutcome::Completed | RunOutcome::Abandoned { .. } => EXIT_OK,
        RunOutcome::Refused { .. } => EXIT_REFUSED,
        RunOutcome::Failed { .. } | RunOutcome::Aborted { .. } => EXIT_FAILED,
    }
}

fn secs(ms: u64) -> String {
    if ms >= 10_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// One line for an event (without a trailing newline).
pub fn format_event(e: &UpgradeEvent) -> String {
    match e {
        UpgradeEvent::RunStarted {
            run_id,
            plan,
            resumed_at,
        } => {
            let order: Vec<&str> = plan.entries.iter().map(|e| e.node.as_str()).collect();
            let resumed = resumed_at
                .as_ref()
                .map(|(n, s)| format!(" (resumed at {n} {s})"))
                .unwrap_or_default();
            format!(
                "run {run_id} started{resumed}: {} node(s): {}",
                order.len(),
                order.join(" → ")
            )
        }
        UpgradeEvent::StepStarted { node, step } => format!("[{node}] {step} …"),
        UpgradeEvent::Output { node, line } => format!("[{node}] | {line}"),
        UpgradeEvent::StepFinished {
            node,
            step,
            outcome,
            duration_ms,
        } => match outcome {
            StepOutcome::Ok { detail: None } => {
                format!("[{node}] {step} ok ({})", secs(*duration_ms))
            }
            StepOutcome::Ok { detail: Some(d) } => {
                format!("[{node}] {step} ok ({}): {d}", secs(*duration_ms))
            }
            StepOutcome::Skipped { reason } => format!("[{node}] {step} skipped: {reason}"),
            StepOutcome::Failed { message } => {
                format!("[{node}] {step} FAILED ({}): {message}", secs(*duration_ms))
            }
        },
        UpgradeEvent::GuardVerdicts { node, verdicts } => format_verdicts(node, verdicts),
        UpgradeEvent::BootOnceSet { node, boot_once } => {
            format!("[{node}] {}", boot_once.describe())
        }
        UpgradeEvent::RebootIssued { node, before } => format!(
            "[{node}] reboot asked for (boot id before: {}{})",
            before.host_boot_id,
            if before.node_boot_id.is_empty() {
                String::new()
            } else {
                format!(", node bootID {}", before.node_boot_id)
            }
        ),
        UpgradeEvent::RevertArmed { node, revert } => format!(
            "[{node}] revert timer {}.timer armed: back to {} unless confirmed within {} s",
            revert.unit, revert.previous, revert.secs
        ),
        UpgradeEvent::Waiting { node, what, detail } => {
            format!("[{node}] waiting ({what}): {detail}")
        }
        UpgradeEvent::Notice { node, message } => match node {
            Some(n) => format!("[{n}] note: {message}"),
            None => format!("note: {message}"),
        },
        UpgradeEvent::Silenced {
            node,
            silences,
            secs,
        } => {
            let mut s = format!(
                "[{node}] silenced in Alertmanager ({} silence(s), extended while in progress, each lapses {secs}s after its last extension)",
                silences.len()
            );
            for x in silences {
                s.push_str(&format!("\n[{node}]   silence {} {}", x.id, x.matcher));
            }
            s
        }
        UpgradeEvent::SilencesExpired { node, ids } => {
            format!("[{node}] silences expired: {}", ids.join(", "))
        }
        UpgradeEvent::NodeDone { node, outcome } => match outcome {
            NodeOutcome::Upgraded => format!("[{node}] done: upgraded"),
            NodeOutcome::Maintained => format!("[{node}] done: maintenance ended, uncordoned"),
            NodeOutcome::Skipped { reason } => format!("[{node}] done: skipped ({reason})"),
        },
        UpgradeEvent::SnapshotStarted { name, node, .. } => {
            format!("[run] etcd snapshot {name} on {node} …")
        }
        UpgradeEvent::SnapshotFinished {
            node,
            policy,
            outcome,
            duration_ms,
            ..
        } => match outcome {
            StepOutcome::Ok { detail } => format!(
                "[run] etcd snapshot ok ({}): {}",
                secs(*duration_ms),
                detail.as_deref().unwrap_or(node)
            ),
            StepOutcome::Skipped { reason } => format!("[run] etcd snapshot skipped: {reason}"),
            StepOutcome::Failed { message } => format!(
                "[run] etcd snapshot FAILED on {node} ({}): {message}{}",
                secs(*duration_ms),
                if *policy == crate::config::PreSnapshot::Require {
                    ""
                } else {
                    " (a warning: [upgrade] pre_snapshot = \"try\")"
                }
            ),
        },
        UpgradeEvent::RunFinished { outcome } => format_outcome(outcome),
    }
}

fn format_verdicts(node: &str, verdicts: &[GuardVerdict]) -> String {
    let pass = verdicts.iter().filter(|v| v.pass).count();
    let mut s = format!("[{node}] guards: {pass}/{} pass", verdicts.len());
    for v in verdicts.iter().filter(|v| !v.pass) {
        s.push_str(&format!("\n[{node}]   ✗ {}", v.line()));
    }
    s
}

/// The last line of a run.
pub fn format_outcome(o: &RunOutcome) -> String {
    match o {
        RunOutcome::Completed => "run finished: every node done".into(),
        RunOutcome::Refused {
            node,
            guard,
            message,
        } => format!(
            "run REFUSED by {guard}{}: {message}",
            node.as_ref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default()
        ),
        RunOutcome::Failed {
            node,
            step,
            message,
        } => format!("run FAILED at {node} {step}: {message}"),
        RunOutcome::Aborted { reason } => format!("run ABORTED: {reason}"),
        RunOutcome::Abandoned { uncordoned } => {
            format!("run abandoned; uncordoned: {}", list_or_none(uncordoned))
        }
    }
}

/// Why a finished run cannot be resumed, and what to do instead (`upgrade --resume` of a run
/// whose journal is closed).
pub fn not_resumable(run_id: &str, o: &RunOutcome) -> String {
    let next = "start a new run (`homeinfra-tui upgrade`): the nodes already on the new system are skipped";
    match o {
        RunOutcome::Completed => {
            format!("run {run_id} completed (every node upgraded): nothing to resume")
        }
        RunOutcome::Refused { .. } => format!(
            "run {run_id} ended refused, not interrupted ({}): nothing of the refused node was touched, so there is nothing to resume; fix what the guard names, then {next}",
            format_outcome(o)
        ),
        RunOutcome::Failed { node, .. } => format!(
            "run {run_id} ended failed, not interrupted ({}): {node} stays cordoned; repair it, uncordon it (`c` in the dashboard), then {next}",
            format_outcome(o)
        ),
        RunOutcome::Aborted { .. } => format!(
            "run {run_id} was stopped at a safe point ({}): a stopped run is not resumed; {next}",
            format_outcome(o)
        ),
        RunOutcome::Abandoned { .. } => format!(
            "run {run_id} was abandoned ({}): nothing to resume; {next}",
            format_outcome(o)
        ),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
