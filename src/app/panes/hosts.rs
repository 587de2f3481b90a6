//! The Hosts pane: the inventory joined with each host's facts over SSH.

use std::collections::HashMap;

use crate::inventory::Host;
use crate::model::Severity;
use crate::model::Sourced;
use crate::model::host::{HostFacts, SshProblem};

use super::{App, Cell, Row, Table, Tone, age_secs};

/// Per subject: the worst finding and how many posture findings (one pass over findings).
type Marks<'a> = HashMap<&'a str, (Severity, usize)>;

pub(super) fn table(app: &App) -> Table {
    let mut marks: Marks = HashMap::new();
    for f in &app.findings {
        let e = marks.entry(f.subject.as_str()).or_insert((f.severity, 0));
        e.0 = e.0.max(f.severity);
        if is_posture(&f.code) {
            e.1 += 1;
        }
    }
    let rows = app
        .inventory
        .hosts
        .iter()
        .map(|h| row(app, h, &marks))
        .collect();
    Table {
        drop_order: vec![0, 6, 5, 7, 4, 3, 1, 2, 8, 0],
        ..Table::new(
            vec![
                "ID",
                "HOSTNAME",
                "ROLE",
                "REGION/ZONE",
                "IP",
                "NIXOS",
                "DRIFT",
                "GEN",
                "UP",
                "STATE",
            ],
            vec![12, 10, 6, 13, 15, 11, 7, 4, 5, 14],
            rows,
        )
    }
}

fn row(app: &App, h: &Host, marks: &Marks) -> Row {
    let mark = |s: &str| marks.get(s).copied();
    let worst = mark(&h.id).map(|m| m.0).max(mark(&h.hostname).map(|m| m.0));
    let posture = mark(&h.id).map_or(0, |m| m.1);
    let mut id = Cell::new(&h.id);
    if let Some(s) = worst {
        id.tone = s.into();
    }
    let role_tone = if h.role.is_control_plane() {
        Tone::Info
    } else {
        Tone::Normal
    };
    let src = app.snapshot.hosts.get(&h.id);
    let facts = src.and_then(|s| s.data.as_ref());
    let dash = || "–".to_string();
    Row {
        key: h.id.clone(),
        aliases: vec![h.hostname.clone()],
        cells: vec![
            id,
            Cell::new(&h.hostname),
            Cell::toned(h.role.as_str(), role_tone),
            Cell::new(format!("{}/{}", h.region, h.zone)),
            Cell::new(h.ip.to_string()),
            Cell::new(
                facts
                    .and_then(|f| f.nixos_version.clone())
                    .unwrap_or_else(dash),
            ),
            drift_cell(app, h),
            Cell::new(
                facts
                    .and_then(|f| f.generation)
                    .map(|g| g.to_string())
                    .unwrap_or_else(dash),
            ),
            Cell::new(
                facts
                    .and_then(|f| f.uptime_secs)
                    .map(age_secs)
                    .unwrap_or_else(dash),
            ),
            state(app, h, src, posture),
        ],
    }
}

/// `in sync`, `drifted`, `update`, `unknown` (why: in the detail view); `–` without a flake.
fn drift_cell(app: &App, h: &Host) -> Cell {
    use crate::operations::closure_diff::fleet::DriftState;
    match app.drift_of_host(&h.id) {
        None => Cell::toned("–", Tone::Muted),
        Some(d) => {
            let tone = match d.state {
                DriftState::InSync => Tone::Ok,
                DriftState::Drifted => Tone::Warning,
                DriftState::Update => Tone::Info,
                DriftState::Unknown => Tone::Muted,
            };
            Cell::toned(d.state.as_str(), tone)
        }
    }
}

/// The host's state in a few words: SSH problems first, then badges.
fn state(app: &App, h: &Host, src: Option<&Sourced<HostFacts>>, posture: usize) -> Cell {
    let diff_badge = app.diffs.get(&h.id).and_then(|d| d.badge());
    let unknown = |text: &str| match &diff_badge {
        Some(b) => Cell::toned(b.clone(), Tone::Info),
        None => Cell::toned(text, Tone::Muted),
    };
    let Some(src) = src else {
        return unknown(if app.snapshot.hosts.is_empty() {
            "–"
        } else {
            "waiting…"
        });
    };
    if !src.status.configured {
        return unknown("–");
    }
    if let Some(e) = &src.status.error {
        let since = e
            .since
            .to_zoned(app.tz.clone())
            .strftime("%H:%M")
            .to_string();
        return match SshProblem::of_message(&e.message) {
            SshProblem::HostKeyChanged => Cell::toned("HOST KEY CHANGED", Tone::Critical),
            SshProblem::HostKeyUnknown => Cell::toned("host key unknown", Tone::Warning),
            SshProblem::AuthFailed => Cell::toned("auth failed", Tone::Critical),
            SshProblem::Timeout => Cell::toned(format!("timeout since {since}"), Tone::Warning),
            _ => Cell::toned(format!("unreachable since {since}"), Tone::Critical),
        };
    }
    let Some(f) = &src.data else {
        return Cell::toned("connecting…", Tone::Muted);
    };
    let mut badges = Vec::new();
    let mut tone = Tone::Ok;
    if f.reboot_needed == Some(true) {
        badges.push("reboot".to_string());
        tone = Tone::Warning;
    }
    if let Some(units) = &f.failed_units
        && !units.is_empty()
    {
        badges.push(format!("{} failed", units.len()));
        tone = Tone::Critical;
    }
    if posture > 0 {
        badges.push(format!("{posture} posture"));
        if tone == Tone::Ok {
            tone = Tone::Warning;
        }
    }
    if let Some(b) = diff_badge
        && b != "up to date"
    {
        badges.push(b);
    }
    if badges.is_empty() {
        Cell::toned("ok", Tone::Ok)
    } else {
        Cell::toned(badges.join(", "), tone)
    }
}

/// Findings about the host's hardening posture (the seed's policy).
pub fn is_posture(code: &str) -> bool {
    const POSTURE: &[&str] = &[
        "host.sshd_",
        "host.firewall",
        "host.fail2ban",
        "host.unexpected_public_port",
        "host.cluster_port",
        "host.k3s_token",
    ];
    POSTURE.iter().any(|p| code.starts_with(p))
}
