//! The guards on when: the maintenance window and nixos-upgrade's own schedule.

use super::*;

/// Is `minute` (since midnight) inside the window? Windows may wrap past midnight.
pub fn in_window(minute: u32, (start, end): (u32, u32)) -> bool {
    if start <= end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    }
}

pub(super) fn window(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let Some(w) = g
        .settings
        .maintenance_window
        .as_deref()
        .filter(|w| !w.trim().is_empty())
    else {
        out.push(GuardVerdict::pass(
            "maintenance-window",
            "no maintenance window configured",
        ));
        return;
    };
    let Some(range) = parse_window(w) else {
        out.push(GuardVerdict::refuse(
            "maintenance-window",
            w,
            "cannot read the maintenance window",
            "write it as \"HH:MM-HH:MM\", e.g. \"01:00-05:00\"",
        ));
        return;
    };
    let local = g.now.to_zoned(g.settings.time_zone.clone());
    let minute = local.hour() as u32 * 60 + local.minute() as u32;
    if in_window(minute, range) {
        out.push(GuardVerdict::pass(
            "maintenance-window",
            format!("{} is inside {w}", local.strftime("%H:%M")),
        ));
    } else {
        out.push(GuardVerdict::refuse(
            "maintenance-window",
            w,
            format!(
                "it is {}, outside the maintenance window",
                local.strftime("%H:%M")
            ),
            format!("wait for the window ({w}), or change [upgrade] maintenance_window"),
        ));
    }
}

pub(super) fn auto_upgrade(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    if let Some(by) = skipped_by(g.settings, "auto-upgrade") {
        out.push(GuardVerdict::skipped("auto-upgrade", by));
        return;
    }
    let host = &g.entry.host;
    let a = match g.auto_upgrade {
        Err(e) => {
            out.push(GuardVerdict::cannot_verify(
                "auto-upgrade",
                host,
                format!("cannot tell whether nixos-upgrade.service runs: {e}"),
                "check SSH access to the host, or add \"auto-upgrade\" to [upgrade] skip_guards",
            ));
            return;
        }
        Ok(a) => a,
    };
    match a.running {
        None => {
            out.push(GuardVerdict::cannot_verify(
                "auto-upgrade",
                host,
                "systemd did not say whether nixos-upgrade.service runs",
                format!(
                    "check `systemctl is-active nixos-upgrade.service` on {host}, or add \"auto-upgrade\" to [upgrade] skip_guards"
                ),
            ));
            return;
        }
        Some(true) => {
            out.push(GuardVerdict::refuse(
                "auto-upgrade",
                host,
                "nixos-upgrade.service is running right now",
                format!(
                    "wait for it to finish (`systemctl status nixos-upgrade.service` on {host})"
                ),
            ));
            return;
        }
        Some(false) => {}
    }
    if let Some(next) = a.next_run {
        let horizon = g.now
            + jiff::SignedDuration::try_from(g.settings.auto_upgrade_horizon).unwrap_or_default();
        if next >= g.now && next <= horizon {
            out.push(GuardVerdict::refuse(
                "auto-upgrade",
                host,
                format!("nixos-upgrade.timer fires at {next}, during the run"),
                format!(
                    "stop the timer for the run (`sudo systemctl stop nixos-upgrade.timer` on {host})"
                ),
            ));
            return;
        }
    }
    out.push(GuardVerdict::pass(
        "auto-upgrade",
        "nixos-upgrade is idle and not due",
    ));
}
