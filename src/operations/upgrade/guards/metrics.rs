//! The guards on what the metrics say: firing alerts and the configured gate queries.

use super::*;

/// Rank of an alert severity: unknown ones count as warnings.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "none" | "info" | "informational" => 0,
        "critical" | "page" | "error" | "emergency" => 2,
        _ => 1,
    }
}

pub(super) fn alerts(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    if let Some(by) = skipped_by(g.settings, "alert-firing") {
        out.push(GuardVerdict::skipped("alert-firing", by));
        return;
    }
    let min = severity_rank(&g.settings.block_on_alert_severity);
    let list = match &g.health.alerts {
        None => {
            out.push(GuardVerdict::cannot_verify(
                "alert-firing",
                "alerts",
                "no metrics backend is configured ([mimir] url, [alertmanager] url): firing alerts cannot be seen",
                "set [alertmanager] url or [mimir] url (and tenant, credentials), or add \"alerts\" to [upgrade] skip_guards",
            ));
            return;
        }
        Some(r) => match fresh(
            r,
            g.health.read_at.metrics,
            g.settings.max_age.metrics,
            g.now,
            "the firing alerts",
        ) {
            Ok(l) => l,
            Err(e) => {
                out.push(GuardVerdict::cannot_verify(
                    "alert-firing",
                    "alerts",
                    e,
                    "check [alertmanager] (or [mimir]) url, tenant and credentials (`homeinfra-tui check`)",
                ));
                return;
            }
        },
    };
    let before = out.len();
    for a in list.iter().filter(|a| severity_rank(&a.severity) >= min) {
        out.push(GuardVerdict::refuse(
            "alert-firing",
            format!("{} ({})", a.name, a.subject),
            format!("{} alert firing", a.severity),
            "resolve the alert (or silence it in Alertmanager if it is known and harmless)",
        ));
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "alert-firing",
            format!(
                "no alert at or above {} firing",
                g.settings.block_on_alert_severity
            ),
        ));
    }
}

pub(super) fn gates(g: &GuardInputs<'_>, out: &mut Vec<GuardVerdict>) {
    let stale = match g.health.read_at.metrics {
        None => Some("the gate queries were never run".to_string()),
        Some(at) => {
            let age = Duration::try_from(g.now.duration_since(at)).unwrap_or_default();
            (age > g.settings.max_age.metrics)
                .then(|| format!("the gate results are {}s old", age.as_secs()))
        }
    };
    for r in &g.health.gates {
        match (&r.series, &stale) {
            (Err(e), _) => out.push(GuardVerdict::cannot_verify(
                "promql-gate",
                &r.query,
                format!("the query failed: {e}"),
                "fix the query in [upgrade] gates or the metrics backend",
            )),
            (Ok(_), Some(why)) => out.push(GuardVerdict::cannot_verify(
                "promql-gate",
                &r.query,
                why.clone(),
                "check the metrics backend ([mimir])",
            )),
            (Ok(0), None) => out.push(GuardVerdict {
                subject: r.query.clone(),
                ..GuardVerdict::pass("promql-gate", "returns no series")
            }),
            (Ok(n), None) => out.push(GuardVerdict::refuse(
                "promql-gate",
                &r.query,
                format!("returns {n} series"),
                "wait until the gate query returns nothing, or change [upgrade] gates",
            )),
        }
    }
}
