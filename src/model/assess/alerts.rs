use crate::model::metrics::MetricsState;
use crate::model::{Finding, Severity};

/// Firing alerts as findings: `severity` label `critical`/`page` → critical, `warning`/`warn`
/// → warning, anything else → info. Subject: the inventory host when the alert maps to one,
/// else the alert name.
pub fn alert_findings(state: &MetricsState) -> Vec<Finding> {
    state
        .alerts
        .iter()
        .map(|a| {
            let severity = match a.severity.as_str() {
                _ if a.silenced => Severity::Info,
                "critical" | "page" | "error" | "high" => Severity::Critical,
                "warning" | "warn" | "medium" => Severity::Warning,
                _ => Severity::Info,
            };
            let subject = a.host.clone().unwrap_or_else(|| a.name.clone());
            let detail = a
                .labels
                .get("summary")
                .or_else(|| a.labels.get("instance"))
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let sev = if a.severity.is_empty() {
                "no severity".to_string()
            } else {
                a.severity.clone()
            };
            Finding::new(
                severity,
                format!("alert.{}", a.name),
                subject,
                if a.silenced {
                    format!("alert {} firing [{sev}]{detail} — silenced", a.name)
                } else {
                    format!("alert {} firing [{sev}]{detail}", a.name)
                },
            )
        })
        .collect()
}
