use jiff::Timestamp;

use crate::config::Thresholds;
use crate::model::Finding;
use crate::model::cluster::LonghornState;

/// Longhorn rules (cluster-health issue).
pub(super) fn assess(
    _l: &LonghornState,
    _th: &Thresholds,
    _now: Timestamp,
    _out: &mut Vec<Finding>,
) {
}
