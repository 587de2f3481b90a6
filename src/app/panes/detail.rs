//! The detail view of a row.

use super::{App, Pane, table};

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
    } else {
        let t = table(app, pane);
        if let Some(r) = t.rows.iter().find(|r| r.key == key) {
            for (h, c) in t.header.iter().zip(&r.cells) {
                out.push((h.to_lowercase(), c.text.clone()));
            }
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
