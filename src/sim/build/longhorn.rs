//! Longhorn's objects: instance-manager pods, nodes and disks, volumes with their replicas
//! and backups, the backup target, recurring jobs and settings.

use serde_json::{Value, json};

use super::{LONGHORN_NS, fnv, running_status};
use crate::inventory::{Host, Inventory};
use crate::sim::resources::*;
use crate::sim::store::{ApiError, Store, now, timestamp};

/// The instance manager of `node` (its pod and, when it holds a last replica, its PDB).
pub fn instance_manager_name(node: &str) -> String {
    format!("instance-manager-{:08x}", fnv(node))
}

/// The instance-manager pod of `h`.
pub fn instance_manager_pod(h: &Host, pod_ip: &str, created: &str) -> Value {
    let im = instance_manager_name(&h.hostname);
    let containers = vec![
        json!({"name": "instance-manager", "image": "longhornio/longhorn-instance-manager:v1.7.2",
        "resources": {"requests": {"cpu": "230m"}}}),
    ];
    let mut status = running_status(&containers, &h.ip.to_string(), pod_ip, created, true);
    status["qosClass"] = json!("Burstable");
    json!({
        "metadata": {
            "name": im,
            "namespace": LONGHORN_NS,
            "labels": {
                "longhorn.io/component": "instance-manager",
                "longhorn.io/data-engine": "v1",
                "longhorn.io/instance-manager-type": "aio",
                "longhorn.io/instance-manager-image": "imi-a1873aa3",
                "longhorn.io/managed-by": "longhorn-manager",
                "longhorn.io/node": h.hostname,
            },
            "ownerReferences": [{"apiVersion": "longhorn.io/v1beta2", "kind": "InstanceManager",
                "name": im, "uid": format!("{:08x}-1111-4111-8111-{:012x}", fnv(&h.hostname), fnv(&im)),
                "controller": true, "blockOwnerDeletion": true}],
            "creationTimestamp": created,
        },
        "spec": {
            "containers": containers,
            "nodeName": h.hostname,
            "restartPolicy": "Never",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "longhorn-service-account",
            "terminationGracePeriodSeconds": 120,
            "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": status,
    })
}

/// A volume's name: `pvc-` and a UUID-shaped id.
pub fn volume_name(i: usize) -> String {
    let h = fnv(&format!("vol{i}"));
    format!(
        "pvc-{h:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}",
        i & 0xffff,
        (h >> 4) & 0xfff,
        i & 0xfff,
        (h as usize) * 31 + i
    )
}

/// A running replica of `volume` on `node`, healthy since `healthy_at`.
pub fn replica_object(
    volume: &str,
    node: &str,
    disk_id: &str,
    idx: usize,
    healthy_at: &str,
) -> Value {
    json!({
        "metadata": {
            "name": format!("{volume}-r-{:08x}", fnv(&format!("{volume}{node}{idx}"))),
            "namespace": LONGHORN_NS,
            "labels": {"longhornnode": node, "longhornvolume": volume, "longhorndiskuuid": disk_id},
        },
        "spec": {
            "volumeName": volume,
            "nodeID": node,
            "diskID": disk_id,
            "diskPath": "/var/lib/longhorn/",
            "dataDirectoryName": format!("{volume}-{:08x}", fnv(&format!("{node}{idx}"))),
            "engineName": format!("{volume}-e-0"),
            "image": "longhornio/longhorn-engine:v1.7.2",
            "dataEngine": "v1",
            "desireState": "running",
            "active": true,
            "healthyAt": healthy_at,
            "failedAt": "",
            "lastHealthyAt": healthy_at,
            "lastFailedAt": "",
            "rebuildRetryCount": 0,
        },
        "status": {
            "currentState": "running",
            "ownerID": node,
            "instanceManagerName": instance_manager_name(node),
            "started": true,
            "conditions": [],
        },
    })
}

/// The name of Longhorn's setting for how long a failed replica waits for its node before a
/// new replica is built elsewhere (seconds).
pub const REPLENISHMENT_WAIT: &str = "replica-replenishment-wait-interval";
/// Its default in Longhorn.
pub const REPLENISHMENT_WAIT_DEFAULT: &str = "600";

/// The data address of a replica (as its `status.storageIP`/`status.port` say), the key of
/// its engine's `rebuildStatus` and `currentReplicaAddressMap`.
pub fn replica_address(node_ip: &str, replica: &str) -> String {
    format!("tcp://{node_ip}:{}", 10000 + (fnv(replica) % 200) * 15)
}

/// A volume's engine (`<volume>-e-0`) on `node`, with its replicas (name → address) all
/// read-write and no rebuild running.
pub fn engine_object(volume: &str, node: &str, replicas: &[(String, String)]) -> Value {
    let addrs: serde_json::Map<String, Value> = replicas
        .iter()
        .map(|(n, a)| (n.clone(), json!(a)))
        .collect();
    let modes: serde_json::Map<String, Value> = replicas
        .iter()
        .map(|(n, _)| (n.clone(), json!("RW")))
        .collect();
    json!({
        "metadata": {
            "name": format!("{volume}-e-0"),
            "namespace": LONGHORN_NS,
            "labels": {"longhornnode": node, "longhornvolume": volume},
        },
        "spec": {
            "volumeName": volume,
            "nodeID": node,
            "image": "longhornio/longhorn-engine:v1.7.2",
            "dataEngine": "v1",
            "desireState": "running",
            "frontend": "blockdev",
            "active": true,
            "replicaAddressMap": addrs.clone(),
        },
        "status": {
            "currentState": "running",
            "ownerID": node,
            "instanceManagerName": instance_manager_name(node),
            "started": true,
            "endpoint": format!("/dev/longhorn/{volume}"),
            "currentReplicaAddressMap": addrs,
            "replicaModeMap": modes,
            "rebuildStatus": {},
            "conditions": [],
        },
    })
}

/// The id of `node`'s Longhorn disk.
pub fn disk_id(node: &str) -> String {
    format!(
        "{:08x}-d15c-4000-8000-{:012x}",
        fnv(node),
        fnv(&format!("disk{node}"))
    )
}

/// An attached, healthy volume.
pub fn volume_object(
    name: &str,
    replicas: usize,
    size_gib: u64,
    attached_to: &str,
    pvc: (&str, &str),
    last_backup: Option<(&str, &str)>,
) -> Value {
    let (bname, bat) = last_backup.unwrap_or(("", ""));
    json!({
        "metadata": {"name": name, "namespace": LONGHORN_NS, "labels": {"longhornvolume": name,
            "recurring-job-group.longhorn.io/default": "enabled"}},
        "spec": {
            "numberOfReplicas": replicas,
            "size": (size_gib << 30).to_string(),
            "frontend": "blockdev",
            "dataEngine": "v1",
            "encrypted": false,
            "accessMode": "rwo",
            "dataLocality": "disabled",
            "replicaAutoBalance": "ignored",
            "nodeID": attached_to,
            "staleReplicaTimeout": 30,
            "snapshotDataIntegrity": "ignored",
        },
        "status": {
            "state": "attached",
            "robustness": "healthy",
            "currentNodeID": attached_to,
            "ownerID": attached_to,
            "frontendDisabled": false,
            "actualSize": ((size_gib << 30) / 5),
            "lastBackup": bname,
            "lastBackupAt": bat,
            "kubernetesStatus": {"namespace": pvc.0, "pvcName": pvc.1, "pvName": name,
                "pvStatus": "Bound", "workloadsStatus": []},
            "conditions": [
                {"type": "Scheduled", "status": "True", "reason": "", "message": ""},
                {"type": "Restore", "status": "False", "reason": "", "message": ""},
            ],
        },
    })
}

/// Create Longhorn's objects for every host.
pub(super) fn populate(
    store: &Store,
    inv: &Inventory,
    created: &str,
    volumes: Option<usize>,
) -> Result<(), ApiError> {
    let hosts = &inv.hosts;
    let gib: u64 = 1 << 30;
    for h in hosts {
        let did = disk_id(&h.hostname);
        store.create(&LH_NODES, json!({
            "metadata": {"name": h.hostname, "namespace": LONGHORN_NS, "creationTimestamp": created},
            "spec": {
                "name": h.hostname,
                "allowScheduling": true,
                "evictionRequested": false,
                "tags": [],
                "disks": {format!("default-disk-{:04x}", fnv(&h.hostname) & 0xffff): {
                    "path": "/var/lib/longhorn/", "allowScheduling": true, "evictionRequested": false,
                    "storageReserved": 30 * gib, "tags": [], "diskType": "filesystem"}},
            },
            "status": {
                "region": h.region,
                "zone": h.zone,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "", "message": "", "lastTransitionTime": created},
                    {"type": "Schedulable", "status": "True", "reason": "", "message": "", "lastTransitionTime": created},
                    {"type": "MountPropagation", "status": "True", "reason": "", "message": "", "lastTransitionTime": created},
                ],
                "diskStatus": {format!("default-disk-{:04x}", fnv(&h.hostname) & 0xffff): {
                    "diskUUID": did, "diskType": "filesystem", "storageAvailable": 310 * gib,
                    "storageMaximum": 457 * gib, "storageScheduled": 60 * gib, "scheduledReplica": {},
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "", "message": ""},
                        {"type": "Schedulable", "status": "True", "reason": "", "message": ""},
                    ]}},
            },
        }))?;
    }
    let backup_at = timestamp(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(5));
    let target_url = "s3://homelab-backups@us-east-1/longhorn";
    store.create(&LH_BACKUPTARGETS, json!({
        "metadata": {"name": "default", "namespace": LONGHORN_NS, "creationTimestamp": created},
        "spec": {"backupTargetURL": target_url, "credentialSecret": "longhorn-backup-credentials",
            "pollInterval": "5m0s", "syncRequestedAt": null},
        "status": {"available": true, "lastSyncedAt": now(), "ownerID": hosts.first().map_or("", |h| h.hostname.as_str()), "conditions": []},
    }))?;
    store.create(&LH_RECURRINGJOBS, json!({
        "metadata": {"name": "backup-daily", "namespace": LONGHORN_NS, "creationTimestamp": created},
        "spec": {"name": "backup-daily", "task": "backup", "cron": "0 3 * * *", "retain": 7,
            "concurrency": 2, "groups": ["default"], "labels": {}},
        "status": {"ownerID": hosts.first().map_or("", |h| h.hostname.as_str()), "executionCount": 41},
    }))?;
    store.create(&LH_RECURRINGJOBS, json!({
        "metadata": {"name": "snapshot-hourly", "namespace": LONGHORN_NS, "creationTimestamp": created},
        "spec": {"name": "snapshot-hourly", "task": "snapshot", "cron": "0 * * * *", "retain": 24,
            "concurrency": 2, "groups": ["default"], "labels": {}},
        "status": {"ownerID": hosts.first().map_or("", |h| h.hostname.as_str()), "executionCount": 980},
    }))?;
    for (name, value) in [
        ("node-drain-policy", "block-if-contains-last-replica"),
        ("default-replica-count", "3"),
        ("backup-target", target_url),
        ("storage-over-provisioning-percentage", "100"),
        ("storage-minimal-available-percentage", "25"),
        (REPLENISHMENT_WAIT, REPLENISHMENT_WAIT_DEFAULT),
        // Minutes.
        ("stale-replica-timeout", "2880"),
        ("auto-salvage", "true"),
    ] {
        store.create(&LH_SETTINGS, json!({"metadata": {"name": name, "namespace": LONGHORN_NS, "creationTimestamp": created},
            "value": value, "status": {"applied": true}}))?;
    }
    let pvcs = [
        "data-postgres-0",
        "storage-loki-0",
        "grafana",
        "web-content",
    ];
    let n = hosts.len();
    let replicas = n.min(3);
    for i in 0..volumes.unwrap_or(n) {
        let vname = volume_name(i);
        let pvc = pvcs
            .get(i)
            .map_or_else(|| format!("data-{i}"), |s| s.to_string());
        let ns = match i {
            0 => "apps",
            1 | 2 => "monitoring",
            _ => "apps",
        };
        let bname = format!("backup-{:016x}", fnv(&vname) as u64 * 7 + i as u64);
        let mut vol = volume_object(
            &vname,
            replicas,
            10 + (i as u64 % 5) * 10,
            &hosts[i % n].hostname,
            (ns, &pvc),
            Some((&bname, &backup_at)),
        );
        vol["metadata"]["creationTimestamp"] = json!(created);
        store.create(&LH_VOLUMES, vol)?;
        let mut addrs = Vec::new();
        for r in 0..replicas {
            let h = &hosts[(i + r) % n];
            let node = &h.hostname;
            let mut rep = replica_object(&vname, node, &disk_id(node), r, created);
            rep["metadata"]["creationTimestamp"] = json!(created);
            let rname = rep["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let addr = replica_address(&h.ip.to_string(), &rname);
            rep["status"]["storageIP"] = json!(h.ip.to_string());
            rep["status"]["port"] =
                json!(addr.rsplit(':').next().and_then(|p| p.parse::<u64>().ok()));
            store.create(&LH_REPLICAS, rep)?;
            addrs.push((rname, addr));
        }
        let mut engine = engine_object(&vname, &hosts[i % n].hostname, &addrs);
        engine["metadata"]["creationTimestamp"] = json!(created);
        store.create(&LH_ENGINES, engine)?;
        store.create(&LH_BACKUPS, json!({
            "metadata": {"name": bname, "namespace": LONGHORN_NS, "labels": {"backup-volume": vname}, "creationTimestamp": backup_at},
            "spec": {"labels": {"RecurringJob": "backup-daily"}, "snapshotName": format!("{vname}-snap")},
            "status": {"state": "Completed", "progress": 100, "volumeName": vname,
                "backupCreatedAt": backup_at, "snapshotCreatedAt": backup_at, "lastSyncedAt": now(),
                "size": (1u64 << 30).to_string(), "url": format!("{target_url}?backup={bname}&volume={vname}"),
                "volumeSize": "10737418240", "ownerID": hosts[0].hostname},
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::hosts::generated_inventory;

    #[test]
    fn more_volumes_than_hosts_each_get_an_engine_on_a_real_host() {
        let inv = generated_inventory(4);
        let store = Store::new();
        populate(&store, &inv, "2026-01-01T00:00:00Z", Some(10)).expect("populate");
        let (engines, _) = store.list(&LH_ENGINES, None);
        assert_eq!(engines.len(), 10);
        for e in engines {
            let node = e["spec"]["nodeID"].as_str().unwrap_or_default();
            assert!(
                inv.hosts.iter().any(|h| h.hostname == node),
                "engine on unknown node {node:?}: {e}"
            );
        }
    }
}
