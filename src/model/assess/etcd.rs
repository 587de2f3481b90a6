use crate::config::Thresholds;
use crate::model::Finding;
use crate::model::etcd::EtcdState;

/// etcd rules (cluster-health issue): filled in with the etcd source.
pub(super) fn assess(_etcd: &EtcdState, _th: &Thresholds, _out: &mut Vec<Finding>) {}
