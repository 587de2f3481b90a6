use crate::config::Thresholds;
use crate::inventory::Inventory;
use crate::model::Finding;
use crate::model::cluster::ClusterState;

/// Node rules (cluster-health issue).
pub(super) fn assess(
    _c: &ClusterState,
    _inv: &Inventory,
    _th: &Thresholds,
    _out: &mut Vec<Finding>,
) {
}
