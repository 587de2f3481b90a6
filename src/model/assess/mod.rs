//! `assess`: the one health model. Pure: no I/O, no clock reads (the time comes in).

mod alerts;
mod etcd;
mod hosts;
mod inventory;
mod longhorn;
mod nodes;
pub mod recovery;
mod sources;

use jiff::Timestamp;

pub use alerts::alert_findings;
pub use longhorn::cron_interval_secs;
pub use recovery::rows as recovery_rows;

use super::{Finding, Snapshot, sort_findings};
use crate::config::Thresholds;
use crate::inventory::Inventory;

/// Everything wrong or noteworthy, worst first.
pub fn assess(snap: &Snapshot, inv: &Inventory, th: &Thresholds, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    inventory::assess(inv, &mut out);
    sources::assess(snap, now, th, &mut out);
    if let Some(cluster) = &snap.cluster.data {
        nodes::assess(cluster, inv, th, &mut out);
        longhorn::assess(&cluster.longhorn, th, now, &mut out);
    }
    if let Some(etcd) = &snap.etcd.data {
        etcd::assess(etcd, th, &mut out);
    }
    hosts::assess(snap, inv, th, &mut out);
    recovery::assess(snap, inv, th, now, &mut out);
    if let Some(m) = &snap.mimir.data {
        out.extend(alert_findings(m));
    }
    sort_findings(&mut out);
    out
}
