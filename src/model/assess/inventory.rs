use crate::inventory::Inventory;
use crate::model::{Finding, Severity};

/// Inventory warnings become findings.
pub(super) fn assess(inv: &Inventory, out: &mut Vec<Finding>) {
    for w in &inv.warnings {
        out.push(Finding::new(
            Severity::Warning,
            w.code,
            &w.subject,
            &w.message,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InventoryWarning;

    #[test]
    fn warnings_become_findings() {
        let inv = Inventory {
            warnings: vec![InventoryWarning {
                code: "inventory.unknown_system",
                subject: "h1".into(),
                message: "m".into(),
            }],
            ..Default::default()
        };
        let mut out = Vec::new();
        assess(&inv, &mut out);
        assert_eq!(
            out,
            vec![Finding::new(
                Severity::Warning,
                "inventory.unknown_system",
                "h1",
                "m"
            )]
        );
    }
}
