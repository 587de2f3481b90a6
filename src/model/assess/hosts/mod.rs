//! Host rules (area `host.`): SSH reachability and host keys, reboot needed, failed units, disk,
//! k3s and auto-upgrade state, unreadable facts, and the hardening posture policy:
//! `PasswordAuthentication no`, `PermitRootLogin no`, `X11Forwarding no`, an active firewall,
//! fail2ban running, public ports limited to 22 (+80/tcp, 443/tcp, 53/udp on control planes),
//! etcd/k3s/kubelet ports only where the role needs them, the k3s token secret present.//!
//! Reachability and facts here; `posture` holds the hardening policy.

mod posture;
#[cfg(test)]
mod tests;

use self::posture::posture;
use crate::config::Thresholds;
use crate::inventory::{Host, Inventory};
use crate::model::host::{HostFacts, SshProblem};
use crate::model::{Finding, Severity, Snapshot};

/// The host findings of every configured inventory host.
pub(super) fn assess(snap: &Snapshot, inv: &Inventory, th: &Thresholds, out: &mut Vec<Finding>) {
    for host in &inv.hosts {
        let Some(entry) = snap.hosts.get(&host.id) else {
            continue;
        };
        if !entry.status.configured {
            continue;
        }
        if let Some(e) = &entry.status.error {
            ssh_error(host, &e.message, e.since, out);
        }
        if let Some(f) = &entry.data {
            facts(host, f, th, out);
            posture(host, f, out);
        }
    }
}

/// A finding `host.<code>` about `host`.
fn push(out: &mut Vec<Finding>, sev: Severity, code: &str, host: &Host, msg: String) {
    out.push(Finding::new(
        sev,
        format!("host.{code}"),
        host.id.clone(),
        msg,
    ));
}

fn ssh_error(host: &Host, message: &str, since: jiff::Timestamp, out: &mut Vec<Finding>) {
    let when = since.strftime("%H:%M:%S");
    let problem = SshProblem::of_message(message);
    // The client's messages start with the problem's name; the finding code says it already.
    let message = message
        .strip_prefix(problem.prefix())
        .map(|m| m.trim_start_matches(':').trim_start())
        .unwrap_or(message);
    let (sev, code, msg) = match problem {
        SshProblem::HostKeyChanged => (
            Severity::Critical,
            "ssh_host_key_changed",
            format!("{}: SSH host key problem: {message}", host.hostname),
        ),
        SshProblem::HostKeyUnknown => (
            Severity::Warning,
            "ssh_host_key_unknown",
            format!("{}: SSH host key not trusted yet: {message}", host.hostname),
        ),
        SshProblem::AuthFailed => (
            Severity::Warning,
            "ssh_auth_failed",
            format!(
                "{}: SSH login refused since {when}: {message}",
                host.hostname
            ),
        ),
        SshProblem::Unreachable | SshProblem::Timeout => (
            Severity::Critical,
            "ssh_unreachable",
            format!(
                "{} unreachable over SSH since {when}: {message}",
                host.hostname
            ),
        ),
        SshProblem::Other => (
            Severity::Warning,
            "ssh_error",
            format!("{}: SSH error since {when}: {message}", host.hostname),
        ),
    };
    push(out, sev, code, host, msg);
}

fn facts(host: &Host, f: &HostFacts, th: &Thresholds, out: &mut Vec<Finding>) {
    let name = &host.hostname;
    if f.reboot_needed == Some(true) {
        push(
            out,
            Severity::Warning,
            "reboot_needed",
            host,
            format!(
                "{name} needs a reboot: the booted system differs from the current one in {}",
                f.reboot_reasons.join(", ")
            ),
        );
    }
    if let Some(units) = &f.failed_units
        && !units.is_empty()
    {
        push(
            out,
            Severity::Warning,
            "failed_units",
            host,
            format!(
                "{name}: {} failed systemd unit{}: {}",
                units.len(),
                if units.len() == 1 { "" } else { "s" },
                units.join(", ")
            ),
        );
    }
    if let Some(pct) = f.root_fs_used_pct {
        let sev = if pct >= th.host_disk_critical_pct {
            Some(Severity::Critical)
        } else if pct >= th.host_disk_warning_pct {
            Some(Severity::Warning)
        } else {
            None
        };
        if let Some(sev) = sev {
            push(
                out,
                sev,
                "root_fs_usage",
                host,
                format!("{name}: root filesystem {pct:.0}% full"),
            );
        }
    }
    if let Some(state) = f.k3s_state.as_deref()
        && state != "active"
    {
        let sev = if state == "failed" {
            Severity::Critical
        } else {
            Severity::Warning
        };
        push(
            out,
            sev,
            "k3s_not_active",
            host,
            format!("{name}: k3s.service is {state}"),
        );
    }
    if let Some(result) = f.upgrade_last_result.as_deref()
        && result != "success"
    {
        push(
            out,
            Severity::Warning,
            "auto_upgrade_failed",
            host,
            format!("{name}: the last nixos-upgrade.service run ended with \"{result}\""),
        );
    }
    if !f.parse_issues.is_empty() {
        let shown: Vec<&str> = f.parse_issues.iter().take(3).map(String::as_str).collect();
        let more = f.parse_issues.len().saturating_sub(shown.len());
        push(
            out,
            Severity::Warning,
            "facts_unreadable",
            host,
            format!(
                "{name}: some facts could not be read (shown as unknown): {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            ),
        );
    }
}
