//! Recovery objects: k3s's `ETCDSnapshotFile` records of each server's scheduled snapshots
//! (every 12 h, the k3s default), and a cert-manager `Certificate`.

use serde_json::{Value, json};

use super::fnv;
use crate::inventory::Inventory;
use crate::sim::resources::*;
use crate::sim::store::{ApiError, Store, timestamp};

/// Where k3s writes snapshot files.
pub const SNAPSHOT_DIR: &str = "/var/lib/rancher/k3s/server/db/snapshots";

/// An `ETCDSnapshotFile` as k3s writes it: named `local-<file>-<hash>`, fields in `.spec` and
/// `.status`, the size a quantity string; a failed one has `status.error` and no size.
pub fn snapshot_object(node: &str, file: &str, at: jiff::Timestamp, error: Option<&str>) -> Value {
    let location = format!("file://{SNAPSHOT_DIR}/{file}");
    let name = format!(
        "local-{}-{:06x}",
        file.to_lowercase(),
        fnv(&format!("{node}{location}")) & 0xff_ffff
    );
    let mut status = json!({
        "creationTime": timestamp(at),
        "readyToUse": error.is_none(),
    });
    match error {
        Some(msg) => status["error"] = json!({"time": timestamp(at), "message": msg}),
        None => status["size"] = json!((5_062_688 + (fnv(file) % 100_000) as u64).to_string()),
    }
    json!({
        "metadata": {
            "name": name,
            "labels": {"etcd.k3s.cattle.io/snapshot-storage-node": node},
            "annotations": {"etcd.k3s.cattle.io/snapshot-token-hash": "b4b83cda3099"},
            "finalizers": ["wrangler.cattle.io/managed-etcd-snapshots-controller"],
            "creationTimestamp": timestamp(at),
        },
        "spec": {"snapshotName": file, "nodeName": node, "location": location},
        "status": status,
    })
}

/// The file name k3s gives a snapshot: `<base>-<node>-<unix seconds>`.
pub fn snapshot_file(base: &str, node: &str, at: jiff::Timestamp) -> String {
    format!("{base}-{node}-{}", at.as_second())
}

/// The scheduled snapshots of the last day on every server, newest `newest_age_h` hours old.
pub fn scheduled_snapshots(
    store: &Store,
    inv: &Inventory,
    newest_age_h: i64,
) -> Result<(), ApiError> {
    let now = jiff::Timestamp::now();
    for h in inv.control_planes() {
        for k in 0..2 {
            let at = now - jiff::SignedDuration::from_hours(newest_age_h + 12 * k);
            let file = snapshot_file("etcd-snapshot", &h.hostname, at);
            store.create(
                &ETCD_SNAPSHOTS,
                snapshot_object(&h.hostname, &file, at, None),
            )?;
        }
    }
    Ok(())
}

/// Snapshots and a cert-manager certificate (Ready, 60 days left of 90).
pub fn populate(store: &Store, inv: &Inventory) -> Result<(), ApiError> {
    scheduled_snapshots(store, inv, 3)?;
    let now = jiff::Timestamp::now();
    let not_after = now + jiff::SignedDuration::from_hours(24 * 60);
    let not_before = now - jiff::SignedDuration::from_hours(24 * 30);
    store.create(
        &CERTIFICATES,
        json!({
            "metadata": {"name": "grafana-tls", "namespace": "monitoring", "generation": 1},
            "spec": {"secretName": "grafana-tls", "dnsNames": ["grafana.home.lan"],
                "duration": "2160h0m0s",
                "issuerRef": {"name": "home-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                    "message": "Certificate is up to date and has not expired",
                    "lastTransitionTime": timestamp(not_before), "observedGeneration": 1}],
                "notBefore": timestamp(not_before),
                "notAfter": timestamp(not_after),
                "renewalTime": timestamp(not_after - jiff::SignedDuration::from_hours(24 * 30)),
                "revision": 1,
            },
        }),
    )?;
    Ok(())
}
