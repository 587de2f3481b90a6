//! The detail view of a row.

use super::{App, Pane};

/// Detail lines (label, value) of a row, plus the findings about it.
pub fn detail(app: &App, pane: Pane, key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if pane == Pane::Hosts
        && let Some(h) = app.inventory.host(key)
    {
        out.push(("id".into(), h.id.clone()));
        out.push(("hostname".into(), h.hostname.clone()));
        out.push(("role".into(), h.role.to_string()));
        out.push(("profile".into(), h.profile.clone()));
        out.push(("system".into(), h.system.clone()));
        out.push(("region / zone".into(), format!("{} / {}", h.region, h.zone)));
        out.push(("ip".into(), format!("{}/{}", h.ip, h.mask_length)));
        out.push(("gateway".into(), h.gateway.to_string()));
        let ssh = format!(
            "{}{}:{}",
            h.ssh_user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            h.ssh_address(),
            h.ssh_port.unwrap_or(app.config.ssh.port)
        );
        out.push(("ssh".into(), ssh));
        if let Some(d) = app.drift_of_host(key) {
            out.push(("drift".into(), format!("{}: {}", d.state, d.detail)));
        }
        host_facts(app, key, &mut out);
    } else {
        let t = app.table(pane);
        if let Some(r) = t.rows.iter().find(|r| r.key == key) {
            for (h, c) in t.header.iter().zip(&r.cells) {
                out.push((h.to_lowercase(), c.text.clone()));
            }
        }
        if pane == Pane::Findings
            && let Some((_, subject)) = key.split_once('|')
        {
            out.push(("subject id".into(), subject.to_string()));
        }
    }
    let aliases: Vec<String> = match pane {
        Pane::Hosts => app
            .inventory
            .host(key)
            .map(|h| vec![h.hostname.clone()])
            .unwrap_or_default(),
        _ => app
            .inventory
            .by_name(key)
            .map(|h| vec![h.id.clone()])
            .unwrap_or_default(),
    };
    let related: Vec<_> = app
        .findings
        .iter()
        .filter(|f| f.subject == key || aliases.contains(&f.subject))
        .collect();
    out.push((String::new(), String::new()));
    if related.is_empty() {
        out.push(("findings".into(), "none".into()));
    }
    for f in related {
        out.push((format!("{} {}", f.severity, f.code), f.message.clone()));
    }
    out
}

/// Every fact and posture check of a host, as far as its SSH source knows them.
fn host_facts(app: &App, id: &str, out: &mut Vec<(String, String)>) {
    use crate::model::host::Fail2ban;
    let Some(src) = app.snapshot.hosts.get(id) else {
        out.push(("ssh state".into(), "no facts yet".into()));
        return;
    };
    if !src.status.configured {
        let why = src
            .status
            .note
            .clone()
            .unwrap_or_else(|| "not configured".into());
        out.push(("ssh state".into(), why));
        return;
    }
    let state = match (&src.status.error, &src.status.last_ok) {
        (Some(e), _) => format!(
            "failing since {}: {}",
            e.since.to_zoned(app.tz.clone()).strftime("%H:%M:%S"),
            e.message
        ),
        (None, Some(t)) => format!(
            "connected (facts from {})",
            t.to_zoned(app.tz.clone()).strftime("%H:%M:%S")
        ),
        (None, None) => "connecting…".into(),
    };
    out.push(("ssh state".into(), state));
    let Some(f) = &src.data else { return };
    let unknown = || "unknown".to_string();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(unknown);
    out.push((String::new(), String::new()));
    out.push(("nixos version".into(), opt(&f.nixos_version)));
    out.push((
        "generation".into(),
        f.generation.map_or_else(unknown, |g| g.to_string()),
    ));
    out.push((
        "boot loader".into(),
        match crate::probes::bootloader::from_facts(f.boot_loader.as_deref(), f.grubenv) {
            Some(b) => format!("{} — {}", b.kind.as_str(), b.describe()),
            None => unknown(),
        },
    ));
    out.push(("current system".into(), opt(&f.current_system)));
    out.push(("booted system".into(), opt(&f.booted_system)));
    let reboot = match f.reboot_needed {
        Some(true) => format!("yes — {} changed", f.reboot_reasons.join(", ")),
        Some(false) => "no".into(),
        None => unknown(),
    };
    out.push(("reboot needed".into(), reboot));
    out.push((
        "uptime".into(),
        f.uptime_secs.map_or_else(unknown, super::age_secs),
    ));
    out.push((
        "load".into(),
        f.load
            .map_or_else(unknown, |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])),
    ));
    out.push((
        "root fs".into(),
        f.root_fs_used_pct
            .map_or_else(unknown, |p| format!("{p:.0}% used")),
    ));
    let failed = match &f.failed_units {
        Some(u) if u.is_empty() => "none".into(),
        Some(u) => u.join(", "),
        None => unknown(),
    };
    out.push(("failed units".into(), failed));
    out.push(("k3s.service".into(), opt(&f.k3s_state)));
    out.push((
        "auto-upgrade".into(),
        format!(
            "last result {}, last run {}, next run {}",
            opt(&f.upgrade_last_result),
            opt(&f.upgrade_last_run),
            opt(&f.upgrade_next_run)
        ),
    ));
    out.push((String::new(), String::new()));
    let p = &f.posture;
    match &p.sshd {
        Some(sshd) => {
            for k in [
                "passwordauthentication",
                "permitrootlogin",
                "x11forwarding",
                "kbdinteractiveauthentication",
            ] {
                if let Some(v) = sshd.get(k) {
                    out.push((format!("sshd {k}"), v.clone()));
                }
            }
        }
        None => out.push(("sshd settings".into(), unknown())),
    }
    out.push((
        "firewall".into(),
        p.firewall.as_ref().map_or_else(unknown, |fw| {
            format!(
                "{} ({}): {}",
                if fw.active { "active" } else { "INACTIVE" },
                fw.backend,
                fw.detail
            )
        }),
    ));
    out.push((
        "fail2ban".into(),
        match &p.fail2ban {
            Some(Fail2ban::Running { jails, banned }) => {
                format!("running, {banned} banned, jails: {}", jails.join(", "))
            }
            Some(Fail2ban::NotRunning) => "installed, NOT running".into(),
            Some(Fail2ban::NotInstalled) => "not installed".into(),
            None => unknown(),
        },
    ));
    out.push((
        "public ports".into(),
        p.listening.as_ref().map_or_else(unknown, |socks| {
            let mut ports: Vec<String> = socks
                .iter()
                .filter(|s| s.is_public())
                .map(|s| format!("{}/{}", s.port, s.proto.as_str()))
                .collect();
            ports.sort();
            ports.dedup();
            if ports.is_empty() {
                "none".into()
            } else {
                ports.join(" ")
            }
        }),
    ));
    out.push((
        "k3s token secret".into(),
        p.k3s_token_present.map_or_else(unknown, |t| {
            if t {
                "present".into()
            } else {
                "MISSING".into()
            }
        }),
    ));
    for issue in &f.parse_issues {
        out.push(("unreadable".into(), issue.clone()));
    }
}
