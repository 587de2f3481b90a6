//! `check`: one-shot health with an exit code and an optional JSON document
//! `{"status": "ok|warning|critical|unknown", "findings": [{"severity","code","subject","message"}]}`.

use color_eyre::eyre::{Report, Result};
use serde::Serialize;

use crate::base::{error_chain, use_colour};
use crate::cli::{CheckArgs, GlobalArgs};
use crate::model::{self, Finding, Maintenance, Severity, Status};

#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub status: Status,
    pub findings: &'a [Finding],
    /// The upgrade run at work (its findings are marked and left out of the status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<&'a Maintenance>,
}

/// Gather every configured source once (bounded by the timeout), assess, print, exit code.
/// A config or inventory that cannot be loaded is "could not check" (exit 3).
pub async fn run(global: &GlobalArgs, args: &CheckArgs) -> Result<u8> {
    let ctx = match super::load(global) {
        Ok(l) => l.env,
        Err(e) => return Ok(report_load_error(&e, args.json)),
    };
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    // The flake is evaluated while the sources answer: drift needs both, neither waits for
    // the other.
    let (snapshot, evaluated) = tokio::join!(
        crate::sources::gather_once(&ctx, timeout),
        flake_targets(&ctx, timeout)
    );
    let now = jiff::Timestamp::now();
    let mut findings = model::assess(&snapshot, &ctx.inventory, &ctx.config.thresholds, now);
    findings.extend(drift(&ctx, &snapshot, evaluated));
    // During an upgrade run, what is about the nodes it works on is expected.
    let maintenance = match &snapshot.cluster.data {
        Some(c) => crate::operations::upgrade::live::maintenance(&ctx, c, timeout).await,
        None => None,
    };
    if let Some(m) = &maintenance {
        m.mark(
            &mut findings,
            &ctx.inventory,
            snapshot.cluster.data.as_deref(),
        );
    }
    let status = Status::of(&findings);
    if args.json {
        println!("{}", to_json(status, &findings, maintenance.as_ref()));
    } else {
        print!(
            "{}",
            to_text(status, &findings, ctx.inventory.hosts.len(), use_colour())
        );
    }
    Ok(status.exit_code() as u8)
}

/// What the flake builds for each host now (evaluated, not built; within the check's
/// timeout), when a flake is configured; `Err`: the finding that says why drift is unknown.
/// `None`: no flake, or offline.
async fn flake_targets(
    ctx: &crate::base::Env,
    timeout: std::time::Duration,
) -> Option<Result<crate::operations::closure_diff::fleet::FleetTargets, Finding>> {
    use crate::operations::closure_diff::{Reporter, fleet, source_for};
    if ctx.config.nix.flake.is_none() || ctx.offline {
        return None;
    }
    Some(
        match source_for(&ctx.config.nix, &ctx.config.ssh, ctx.offline) {
            Ok(source) => {
                let cancel = tokio_util::sync::CancellationToken::new();
                let silent = Reporter::silent();
                let eval = fleet::eval_targets(
                    source,
                    &ctx.inventory.hosts,
                    ctx.config.nix.concurrency,
                    &silent,
                    &cancel,
                );
                match tokio::time::timeout(timeout, eval).await {
                    Ok(t) => Ok(t),
                    Err(_) => {
                        cancel.cancel();
                        Err(Finding::new(
                            Severity::Info,
                            "host.drift_unknown",
                            "nix",
                            format!(
                                "the flake's systems were not evaluated within {} s",
                                timeout.as_secs()
                            ),
                        ))
                    }
                }
            }
            Err(e) => Err(Finding::new(
                Severity::Info,
                "host.drift_unknown",
                "nix",
                format!("cannot evaluate the flake's systems: {}", error_chain(&e)),
            )),
        },
    )
}

/// Fleet drift, when a flake is configured: each host's deployed system (from the facts just
/// gathered) against what the flake builds for it now (`flake_targets`).
fn drift(
    ctx: &crate::base::Env,
    snapshot: &model::Snapshot,
    evaluated: Option<Result<crate::operations::closure_diff::fleet::FleetTargets, Finding>>,
) -> Vec<Finding> {
    use crate::operations::closure_diff::fleet;
    let targets = match evaluated {
        None => return Vec::new(),
        Some(Err(f)) => return vec![f],
        Some(Ok(t)) => t,
    };
    let deployed = |id: &str| {
        snapshot
            .hosts
            .get(id)
            .and_then(|s| s.data.as_ref())
            .and_then(|f| f.current_system.clone())
    };
    fleet::findings(&ctx.inventory.hosts, &deployed, &targets)
}

/// A config or inventory that cannot be loaded: "could not check" (exit 3).
fn report_load_error(e: &Report, json: bool) -> u8 {
    let message = error_chain(e);
    if json {
        let f = [Finding::new(
            Severity::Critical,
            "config.invalid",
            "config",
            message,
        )];
        println!("{}", to_json(Status::Unknown, &f, None));
    } else {
        eprintln!("error: {message}");
    }
    Status::Unknown.exit_code() as u8
}

fn to_json(status: Status, findings: &[Finding], maintenance: Option<&Maintenance>) -> String {
    let doc = Document {
        status,
        findings,
        maintenance,
    };
    serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"status\":\"unknown\",\"error\":\"{e}\"}}"))
}

/// Findings grouped by severity, worst first.
pub fn to_text(status: Status, findings: &[Finding], hosts: usize, colour: bool) -> String {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    for (sev, title, code) in [
        (Severity::Critical, "CRITICAL", "1;31"),
        (Severity::Warning, "WARNING", "1;33"),
        (Severity::Info, "INFO", "1;36"),
    ] {
        let group: Vec<_> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&paint(code, &format!("{title} ({})", group.len())));
        out.push('\n');
        for f in group {
            let expected = match &f.maintenance {
                Some(run) => format!(" (expected: upgrade run {run} works on it)"),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {:<34} {:<16} {}{expected}\n",
                f.code, f.subject, f.message
            ));
        }
    }
    let count = |s| {
        findings
            .iter()
            .filter(|f| f.severity == s && !f.expected())
            .count()
    };
    let expected = findings.iter().filter(|f| f.expected()).count();
    let unread = findings
        .iter()
        .filter(|f| f.could_not_check() && !f.expected())
        .count();
    let label = match status {
        Status::Ok => paint("1;32", "OK"),
        Status::Warning => paint("1;33", "WARNING"),
        Status::Critical => paint("1;31", "CRITICAL"),
        Status::Unknown => paint("1;35", "UNKNOWN"),
    };
    out.push_str(&format!(
        "{label}: {hosts} hosts, {} critical, {} warning, {} info{}{}\n",
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info),
        if status == Status::Unknown && unread > 0 {
            format!(" ({unread} could not be read)")
        } else {
            String::new()
        },
        if expected > 0 {
            format!(", {expected} expected during the upgrade run")
        } else {
            String::new()
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_says_how_much_could_not_be_read() {
        let f = vec![
            Finding::new(
                Severity::Critical,
                "host.ssh_unreachable",
                "instance_2",
                "node2 unreachable over SSH",
            ),
            Finding::new(
                Severity::Warning,
                "host.reboot_needed",
                "instance_1",
                "reboot",
            ),
        ];
        let status = Status::of(&f);
        assert_eq!(status, Status::Unknown);
        let t = to_text(status, &f, 4, false);
        assert!(
            t.ends_with("UNKNOWN: 4 hosts, 1 critical, 1 warning, 0 info (1 could not be read)\n"),
            "{t}"
        );
    }

    #[test]
    fn text_groups_by_severity() {
        let f = vec![
            Finding::new(Severity::Critical, "etcd.no_leader", "etcd", "no leader"),
            Finding::new(Severity::Info, "node.cordoned", "node4", "cordoned"),
        ];
        let t = to_text(Status::Critical, &f, 4, false);
        assert_eq!(
            t,
            "CRITICAL (1)\n  etcd.no_leader                     etcd             no leader\n\
             INFO (1)\n  node.cordoned                      node4            cordoned\n\
             CRITICAL: 4 hosts, 1 critical, 0 warning, 1 info\n"
        );
    }

    #[test]
    fn json_document_shape() {
        let f = vec![Finding::new(Severity::Warning, "node.x", "n", "m")];
        let v: serde_json::Value =
            serde_json::from_str(&to_json(Status::Warning, &f, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status":"warning","findings":[{"severity":"warning","code":"node.x","subject":"n","message":"m"}]})
        );
    }
}
