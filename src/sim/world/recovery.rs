//! Recovery faults the SSH face and the etcd face read (clock skew, a missing secret, an
//! expiring certificate, a failing etcd snapshot, NOSPACE), and `k3s etcd-snapshot save`:
//! an on-demand snapshot that becomes an `ETCDSnapshotFile` record.

use std::collections::{BTreeMap, BTreeSet};

use super::World;
use crate::sim::build::recovery::{snapshot_file, snapshot_object};
use crate::sim::resources::ETCD_SNAPSHOTS;
use crate::sim::sync::lock;

/// Which hosts the recovery scenarios touch (by hostname).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryFaults {
    /// Host clock minus the real clock, in ms.
    pub clock_skew_ms: BTreeMap<String, f64>,
    /// Hosts whose sops-nix `k3s_token` is missing.
    pub missing_secret: BTreeSet<String>,
    /// Hosts with a k3s certificate expiring soon.
    pub expiring_cert: BTreeSet<String>,
    /// `k3s etcd-snapshot save` fails (and the scheduled snapshot recorded a failure).
    pub snapshot_failing: bool,
}

/// What `k3s etcd-snapshot save` prints when the sim's etcd refuses it.
pub const SNAPSHOT_FAILURE: &str =
    "etcdserver: mvcc: database space exceeded while writing the snapshot";

impl World {
    pub fn recovery_faults(&self) -> RecoveryFaults {
        lock(&self.state).recovery.clone()
    }

    pub(super) fn with_recovery<T>(&self, f: impl FnOnce(&mut RecoveryFaults) -> T) -> T {
        f(&mut lock(&self.state).recovery)
    }

    /// `k3s etcd-snapshot save --name NAME` on server `node`: the snapshot file's name, or
    /// the error k3s prints (a failed record is kept too, as k3s does).
    pub fn etcd_snapshot_save(&self, node: &str, name: &str) -> Result<String, String> {
        let up = self.host(node).is_some_and(|h| h.up);
        if !up {
            return Err(format!("{node} is down"));
        }
        let at = jiff::Timestamp::now();
        let file = snapshot_file(name, node, at);
        let failing = lock(&self.state).recovery.snapshot_failing;
        let error = failing.then_some(SNAPSHOT_FAILURE);
        self.store
            .create(&ETCD_SNAPSHOTS, snapshot_object(node, &file, at, error))
            .map_err(|e| format!("cannot record the snapshot: {}", e.message))?;
        match error {
            Some(e) => Err(e.to_string()),
            None => Ok(file),
        }
    }
}
