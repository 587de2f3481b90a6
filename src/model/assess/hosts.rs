use crate::config::Thresholds;
use crate::inventory::Inventory;
use crate::model::{Finding, Snapshot};

/// Host facts and posture rules (hosts-over-SSH issue): filled in with the SSH source.
pub(super) fn assess(
    _snap: &Snapshot,
    _inv: &Inventory,
    _th: &Thresholds,
    _out: &mut Vec<Finding>,
) {
}
