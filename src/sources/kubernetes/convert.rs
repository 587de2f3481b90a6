//! Shrink Kubernetes and Longhorn objects into the compact rows of `model::cluster` as they
//! arrive; whole objects are never kept.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::model::cluster::{
    Backup, BackupTarget, Disk, LonghornNode, NodeInfo, PdbInfo, PodRow, RecurringJob, Replica,
    ReplicaRebuild, Volume,
};

/// Annotation on nodes cordoned by an upgrade run (its run id).
pub const CORDONED_BY_ANNOTATION: &str = "homeinfra-tui/cordoned-by";

fn ts(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<Timestamp> {
    t.0.to_string().parse().ok()
}

pub fn node(n: &Node) -> NodeInfo {
    let meta = &n.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let mut roles: Vec<String> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    roles.sort();
    let status = n.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_ref());
    let ready = conditions
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| match c.status.as_str() {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        });
    let pressures = conditions
        .map(|cs| {
            cs.iter()
                .filter(|c| c.type_ != "Ready" && c.status == "True")
                .map(|c| c.type_.clone())
                .collect()
        })
        .unwrap_or_default();
    let internal_ip = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone());
    let pod_capacity = status
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("pods"))
        .and_then(|q| q.0.parse().ok());
    NodeInfo {
        name: meta.name.clone().unwrap_or_default(),
        ready,
        unschedulable: n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        kubelet_version: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default(),
        roles,
        region: labels.get("topology.kubernetes.io/region").cloned(),
        zone: labels.get("topology.kubernetes.io/zone").cloned(),
        internal_ip,
        pressures,
        created: meta.creation_timestamp.as_ref().and_then(ts),
        cordoned_by_run: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(CORDONED_BY_ANNOTATION))
            .cloned(),
        pod_capacity,
    }
}

/// A whole `Pod`'s row (the drain's read of one node's pods), read as [`PodObject`] reads it.
pub fn pod(p: &Pod) -> PodRow {
    serde_json::to_value(p)
        .and_then(serde_json::from_value::<PodObject>)
        .map(|o| o.row)
        .unwrap_or_default()
}

/// A Pod read straight into its row: the watch and the LIST of `check` decode only the fields
/// [`pod`] reads (the rest of each object is skipped unallocated), where a whole `Pod` built
/// every container's image, ports, env and probes to be dropped at once. At 10k pods that was
/// most of the time until the Nodes pane filled and the peak of `check`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "slim::Pod")]
pub struct PodObject {
    metadata: ObjectMeta,
    pub row: PodRow,
}

impl kube::Resource for PodObject {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The parts of a Pod's JSON that [`PodObject`] reads; every other field is skipped.
mod slim {
    use serde::Deserialize;
    use serde::de::IgnoredAny;

    #[derive(Deserialize)]
    pub struct Pod {
        #[serde(default)]
        pub metadata: Meta,
        pub spec: Option<Spec>,
        pub status: Option<Status>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta {
        pub name: Option<String>,
        pub namespace: Option<String>,
        pub uid: Option<String>,
        pub resource_version: Option<String>,
        pub deletion_timestamp: Option<IgnoredAny>,
        pub owner_references: Option<Vec<Owner>>,
    }

    #[derive(Deserialize)]
    pub struct Owner {
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub name: String,
        pub controller: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Spec {
        pub node_name: Option<String>,
        #[serde(default)]
        pub containers: Vec<IgnoredAny>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Status {
        pub phase: Option<String>,
        pub container_statuses: Option<Vec<ContainerStatus>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ContainerStatus {
        #[serde(default)]
        pub ready: bool,
        #[serde(default)]
        pub restart_count: i32,
    }
}

impl From<slim::Pod> for PodObject {
    fn from(p: slim::Pod) -> Self {
        let m = p.metadata;
        let owner = m
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.controller == Some(true)).or(o.first()));
        let statuses = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        let row = PodRow {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            ready_containers: statuses.map_or(0, |cs| cs.iter().filter(|c| c.ready).count()) as u16,
            total_containers: p.spec.as_ref().map_or(0, |s| s.containers.len()) as u16,
            restarts: statuses.map_or(0, |cs| {
                cs.iter().map(|c| c.restart_count.max(0) as u32).sum()
            }),
            owner_kind: owner.map(|o| o.kind.clone()).unwrap_or_default(),
            owner_name: owner.map(|o| o.name.clone()).unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        };
        PodObject {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                ..Default::default()
            },
            row,
        }
    }
}

pub fn pdb(p: &PodDisruptionBudget) -> PdbInfo {
    let st = p.status.as_ref();
    PdbInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        disruptions_allowed: st.map_or(0, |s| s.disruptions_allowed),
        current_healthy: st.map_or(0, |s| s.current_healthy),
        desired_healthy: st.map_or(0, |s| s.desired_healthy),
        expected_pods: st.map_or(0, |s| s.expected_pods),
        selector: p
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
    }
}

// ---- Longhorn (longhorn.io/v1beta2), from JSON ----

fn s(v: &Value, path: &[&str]) -> String {
    get(v, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn num(v: &Value, path: &[&str]) -> u64 {
    match get(v, path) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        // Longhorn writes sizes as strings ("10737418240").
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn time(v: &Value, path: &[&str]) -> Option<Timestamp> {
    get(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

fn name(v: &Value) -> String {
    s(v, &["metadata", "name"])
}

pub fn volume(v: &Value) -> Volume {
    let labels = get(v, &["metadata", "labels"]).and_then(Value::as_object);
    let mut jobs = Vec::new();
    let mut groups = Vec::new();
    if let Some(l) = labels {
        for (k, val) in l {
            if val.as_str() != Some("enabled") {
                continue;
            }
            if let Some(j) = k.strip_prefix("recurring-job.longhorn.io/") {
                jobs.push(j.to_string());
            } else if let Some(g) = k.strip_prefix("recurring-job-group.longhorn.io/") {
                groups.push(g.to_string());
            }
        }
    }
    let pvc = get(v, &["status", "kubernetesStatus"]).and_then(|k| {
        let ns = k.get("namespace")?.as_str()?;
        let name = k.get("pvcName")?.as_str()?;
        (!name.is_empty()).then(|| format!("{ns}/{name}"))
    });
    Volume {
        name: name(v),
        size_bytes: num(v, &["spec", "size"]),
        number_of_replicas: num(v, &["spec", "numberOfReplicas"]) as u32,
        state: s(v, &["status", "state"]),
        robustness: s(v, &["status", "robustness"]),
        encrypted: get(v, &["spec", "encrypted"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        last_backup: Some(s(v, &["status", "lastBackup"])).filter(|x| !x.is_empty()),
        last_backup_at: time(v, &["status", "lastBackupAt"]),
        recurring_jobs: jobs,
        recurring_groups: groups,
        pvc,
        attached_node: Some(s(v, &["status", "currentNodeID"])).filter(|x| !x.is_empty()),
    }
}

pub fn replica(v: &Value) -> Replica {
    let state = s(v, &["status", "currentState"]);
    let healthy_at = s(v, &["spec", "healthyAt"]);
    let failed_at = s(v, &["spec", "failedAt"]);
    Replica {
        name: name(v),
        volume: s(v, &["spec", "volumeName"]),
        node: s(v, &["spec", "nodeID"]),
        healthy: state == "running" && !healthy_at.is_empty() && failed_at.is_empty(),
        rebuilding: state == "running" && healthy_at.is_empty() && failed_at.is_empty(),
        current_state: state,
    }
}

fn condition_true(v: &Value, ty: &str) -> bool {
    match get(v, &["status", "conditions"]) {
        // v1beta2: a list of conditions
        Some(Value::Array(cs)) => cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(ty)
                && c.get("status").and_then(Value::as_str) == Some("True")
        }),
        // older: a map keyed by type
        Some(Value::Object(m)) => {
            m.get(ty)
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True")
        }
        _ => false,
    }
}

pub fn longhorn_node(v: &Value) -> LonghornNode {
    let mut disks: Vec<Disk> = Vec::new();
    if let Some(specs) = get(v, &["spec", "disks"]).and_then(Value::as_object) {
        for (dname, spec) in specs {
            let st = get(v, &["status", "diskStatus", dname])
                .cloned()
                .unwrap_or(Value::Null);
            disks.push(Disk {
                name: dname.clone(),
                path: s(spec, &["path"]),
                storage_maximum: num(&st, &["storageMaximum"]),
                storage_available: num(&st, &["storageAvailable"]),
                storage_scheduled: num(&st, &["storageScheduled"]),
                schedulable: spec
                    .get("allowScheduling")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    && condition_true(&serde_json::json!({"status": st}), "Schedulable"),
            });
        }
    }
    LonghornNode {
        name: name(v),
        ready: condition_true(v, "Ready"),
        schedulable: get(v, &["spec", "allowScheduling"])
            .and_then(Value::as_bool)
            .unwrap_or(false)
            && condition_true(v, "Schedulable"),
        disks,
    }
}

pub fn backup(v: &Value) -> Backup {
    let labels = get(v, &["metadata", "labels"]);
    let volume = labels
        .and_then(|l| l.get("backup-volume"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| s(v, &["status", "volumeName"]));
    Backup {
        name: name(v),
        volume,
        state: s(v, &["status", "state"]),
        created: time(v, &["status", "backupCreatedAt"]),
    }
}

pub fn backup_target(v: &Value) -> BackupTarget {
    let available = get(v, &["status", "available"])
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let message = match get(v, &["status", "conditions"]) {
        Some(Value::Array(cs)) => cs
            .iter()
            .filter_map(|c| c.get("message").and_then(Value::as_str))
            .find(|m| !m.is_empty())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    BackupTarget {
        name: name(v),
        url: s(v, &["spec", "backupTargetURL"]),
        available,
        message,
    }
}

pub fn recurring_job(v: &Value) -> RecurringJob {
    RecurringJob {
        name: name(v),
        task: s(v, &["spec", "task"]),
        cron: s(v, &["spec", "cron"]),
        groups: get(v, &["spec", "groups"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        retain: num(v, &["spec", "retain"]) as u32,
    }
}

/// A Longhorn setting: `value` at the top level (v1beta2) or under `spec`.
/// The replica rebuilds a volume's Engine (`engines.longhorn.io`) reports: its
/// `status.rebuildStatus` (replica address → `{isRebuilding, progress, state, error}`), the
/// replica named from `status.currentReplicaAddressMap` (name → address). Entries whose
/// rebuild is over (`isRebuilding` false and `state` not `in_progress`) are left out.
pub fn engine_rebuilds(v: &Value) -> Vec<ReplicaRebuild> {
    let volume = s(v, &["spec", "volumeName"]);
    let names: std::collections::HashMap<&str, &str> =
        match get(v, &["status", "currentReplicaAddressMap"]).and_then(Value::as_object) {
            Some(m) => m
                .iter()
                .filter_map(|(name, addr)| Some((addr.as_str()?, name.as_str())))
                .collect(),
            None => Default::default(),
        };
    let Some(status) = get(v, &["status", "rebuildStatus"]).and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<ReplicaRebuild> = status
        .iter()
        .filter_map(|(addr, r)| {
            let state = s(r, &["state"]);
            let running = r.get("isRebuilding").and_then(Value::as_bool) == Some(true)
                || state == "in_progress";
            running.then(|| ReplicaRebuild {
                volume: volume.clone(),
                replica: names
                    .get(addr.as_str())
                    .map_or_else(|| addr.clone(), |n| n.to_string()),
                address: addr.clone(),
                progress: num(r, &["progress"]).min(100) as u8,
                state,
                error: s(r, &["error"]),
            })
        })
        .collect();
    out.sort_by(|a, b| a.replica.cmp(&b.replica));
    out
}

pub fn setting(v: &Value) -> (String, String) {
    let value = v
        .get("value")
        .or_else(|| get(v, &["spec", "value"]))
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    (name(v), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_rebuild_status_names_the_replica_and_drops_finished_ones() {
        let e = json!({
            "metadata": {"name": "pvc-1-e-0"},
            "spec": {"volumeName": "pvc-1"},
            "status": {
                "currentReplicaAddressMap": {"pvc-1-r-a": "tcp://10.42.0.5:10000", "pvc-1-r-b": "tcp://10.42.1.5:10000"},
                "rebuildStatus": {
                    "tcp://10.42.1.5:10000": {"isRebuilding": true, "progress": 42, "state": "in_progress", "error": "", "fromReplicaAddress": "tcp://10.42.0.5:10000"},
                    "tcp://10.42.0.5:10000": {"isRebuilding": false, "progress": 100, "state": "complete", "error": ""},
                    "tcp://10.42.2.9:10000": {"isRebuilding": true, "progress": 7, "state": "in_progress"}
                }
            }
        });
        let r = engine_rebuilds(&e);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].replica, "pvc-1-r-b");
        assert_eq!((r[0].volume.as_str(), r[0].progress), ("pvc-1", 42));
        // Not in the address map: named by its address.
        assert_eq!(r[1].replica, "tcp://10.42.2.9:10000");
        assert!(engine_rebuilds(&json!({"spec": {"volumeName": "v"}, "status": {}})).is_empty());
    }

    #[test]
    fn node_from_k3s_like_object() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "node1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true",
                           "topology.kubernetes.io/zone": "rack-a", "topology.kubernetes.io/region": "home"},
                "annotations": {"homeinfra-tui/cordoned-by": "run-1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "True"},
                {"type": "MemoryPressure", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.11"}],
                "capacity": {"pods": "110"},
                "nodeInfo": {"kubeletVersion": "v1.31.4+k3s1", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "",
                  "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}
        }))
        .unwrap();
        let i = node(&n);
        assert_eq!(i.name, "node1");
        assert_eq!(i.ready, Some(false));
        assert!(i.unschedulable);
        assert_eq!(i.roles, vec!["control-plane", "etcd"]);
        assert_eq!(i.pressures, vec!["DiskPressure"]);
        assert_eq!(i.kubelet_version, "v1.31.4+k3s1");
        assert_eq!(i.internal_ip.as_deref(), Some("127.0.0.11"));
        assert_eq!(i.zone.as_deref(), Some("rack-a"));
        assert_eq!(i.cordoned_by_run.as_deref(), Some("run-1"));
        assert_eq!(i.pod_capacity, Some(110));
        assert_eq!(i.created, Some("2026-01-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn pod_row() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "apps",
              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "node2", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "", "imageID": ""},
                {"name": "b", "ready": false, "restartCount": 1, "image": "", "imageID": ""}]}
        }))
        .unwrap();
        let r = pod(&p);
        assert_eq!(
            (r.ready_containers, r.total_containers, r.restarts),
            (1, 2, 3)
        );
        assert_eq!(r.owner_kind, "ReplicaSet");
        assert_eq!(r.node.as_deref(), Some("node2"));
        assert!(!r.deleting);
    }

    #[test]
    fn a_pod_object_reads_its_row_from_json_alone() {
        let o: PodObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "agent-x", "namespace": "kube-system", "uid": "u1",
              "resourceVersion": "42", "deletionTimestamp": "2026-11-25T01:00:00Z",
              "labels": {"app": "agent"}, "managedFields": [{"manager": "k3s", "fieldsV1": {"f:spec": {}}}],
              "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "n"},
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "d", "controller": true}]},
            "spec": {"nodeName": "node1", "containers": [{"name": "a", "image": "agent:1",
              "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": -1, "image": "", "imageID": ""}]}
        }))
        .unwrap();
        use kube::Resource as _;
        assert_eq!(o.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(o.meta().uid.as_deref(), Some("u1"));
        let r = &o.row;
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str()),
            ("kube-system", "agent-x")
        );
        // The controller wins over the first owner.
        assert_eq!(
            (r.owner_kind.as_str(), r.owner_name.as_str()),
            ("DaemonSet", "agent")
        );
        assert_eq!(
            (r.ready_containers, r.total_containers, r.restarts),
            (0, 1, 0)
        );
        assert_eq!(r.phase, "Pending");
        assert!(r.deleting);
        // No spec, no status: an empty row with its name.
        let bare: PodObject =
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n"}})).unwrap();
        assert_eq!(
            bare.row,
            PodRow {
                namespace: "n".into(),
                name: "p".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn longhorn_volume_and_replicas() {
        let v = volume(&json!({
            "metadata": {"name": "pvc-1", "labels": {"recurring-job.longhorn.io/backup-daily": "enabled",
                "recurring-job-group.longhorn.io/default": "enabled", "other": "x"}},
            "spec": {"size": "10737418240", "numberOfReplicas": 3, "encrypted": true},
            "status": {"state": "attached", "robustness": "degraded", "lastBackupAt": "2026-11-25T01:00:00Z",
                "currentNodeID": "node1", "kubernetesStatus": {"namespace": "db", "pvcName": "data-pg-0"}}
        }));
        assert_eq!(v.size_bytes, 10 * 1024 * 1024 * 1024);
        assert_eq!(v.number_of_replicas, 3);
        assert!(v.encrypted);
        assert_eq!(v.robustness, "degraded");
        assert_eq!(v.recurring_jobs, vec!["backup-daily"]);
        assert_eq!(v.recurring_groups, vec!["default"]);
        assert_eq!(v.pvc.as_deref(), Some("db/data-pg-0"));
        assert_eq!(v.attached_node.as_deref(), Some("node1"));
        let healthy = replica(
            &json!({"metadata": {"name": "r1"}, "spec": {"volumeName": "pvc-1", "nodeID": "node1",
            "healthyAt": "2026-11-25T01:00:00Z", "failedAt": ""}, "status": {"currentState": "running"}}),
        );
        assert!(healthy.healthy && !healthy.rebuilding);
        let rebuilding = replica(
            &json!({"metadata": {"name": "r2"}, "spec": {"volumeName": "pvc-1", "nodeID": "node2",
            "healthyAt": "", "failedAt": ""}, "status": {"currentState": "running"}}),
        );
        assert!(!rebuilding.healthy && rebuilding.rebuilding);
        let failed = replica(
            &json!({"metadata": {"name": "r3"}, "spec": {"volumeName": "pvc-1", "nodeID": "node3",
            "healthyAt": "2026-11-25T01:00:00Z", "failedAt": "2026-11-25T02:00:00Z"}, "status": {"currentState": "stopped"}}),
        );
        assert!(!failed.healthy && !failed.rebuilding);
    }

    #[test]
    fn longhorn_node_disks_and_settings() {
        let n = longhorn_node(&json!({
            "metadata": {"name": "node1"},
            "spec": {"allowScheduling": true, "disks": {"default-disk": {"path": "/var/lib/longhorn", "allowScheduling": true}}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Schedulable", "status": "True"}],
              "diskStatus": {"default-disk": {"storageMaximum": 1000, "storageAvailable": 100, "storageScheduled": 500,
                "conditions": [{"type": "Schedulable", "status": "True"}]}}}
        }));
        assert!(n.ready && n.schedulable);
        assert_eq!(n.disks.len(), 1);
        assert!((n.disks[0].used_pct() - 90.0).abs() < 1e-9);
        assert!(n.disks[0].schedulable);
        assert_eq!(
            setting(
                &json!({"metadata": {"name": "node-drain-policy"}, "value": "block-if-contains-last-replica"})
            ),
            (
                "node-drain-policy".to_string(),
                "block-if-contains-last-replica".to_string()
            )
        );
        let t = backup_target(
            &json!({"metadata": {"name": "default"}, "spec": {"backupTargetURL": "s3://b@r/"},
            "status": {"available": false, "conditions": [{"type": "Unavailable", "status": "True", "message": "cannot reach"}]}}),
        );
        assert!(!t.available);
        assert_eq!(t.message, "cannot reach");
        let j = recurring_job(
            &json!({"metadata": {"name": "backup-daily"}, "spec": {"task": "backup", "cron": "0 2 * * *", "groups": ["default"], "retain": 7}}),
        );
        assert_eq!(
            (j.task.as_str(), j.cron.as_str(), j.retain),
            ("backup", "0 2 * * *", 7)
        );
    }
}

/// A Kubernetes quantity as a whole number (`"2891808"`, `"3M"`, `"5Mi"`, `"1.5G"`, `"1e3"`,
/// or a JSON number); `None` when it is not one.
pub fn quantity(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = (n * mult).ceil();
    (bytes >= 0.0 && bytes.is_finite()).then_some(bytes as u64)
}

/// A k3s `ETCDSnapshotFile` (fields in `.spec` and `.status`; the size a quantity).
pub fn etcd_snapshot(v: &Value) -> crate::model::recovery::EtcdSnapshot {
    let error = get(v, &["status", "error", "message"])
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    crate::model::recovery::EtcdSnapshot {
        name: name(v),
        snapshot_name: s(v, &["spec", "snapshotName"]),
        node: s(v, &["spec", "nodeName"]),
        location: s(v, &["spec", "location"]),
        size_bytes: get(v, &["status", "size"]).and_then(quantity),
        created: time(v, &["status", "creationTime"]),
        ready: get(v, &["status", "readyToUse"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        error,
    }
}

/// A cert-manager `Certificate`: its expiry and `Ready` condition.
pub fn managed_certificate(v: &Value) -> crate::model::recovery::ManagedCertificate {
    let ready = match get(v, &["status", "conditions"]) {
        Some(Value::Array(cs)) => cs
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")),
        _ => None,
    };
    let field = |k: &str| {
        ready
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    crate::model::recovery::ManagedCertificate {
        namespace: s(v, &["metadata", "namespace"]),
        name: name(v),
        not_after: time(v, &["status", "notAfter"]),
        ready: match field("status").as_str() {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        },
        reason: field("reason"),
        message: field("message"),
    }
}

#[cfg(test)]
mod recovery_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        for (q, want) in [
            (json!("2891808"), Some(2_891_808)),
            (json!("3M"), Some(3_000_000)),
            (json!("5Mi"), Some(5 * 1024 * 1024)),
            (json!("1.5G"), Some(1_500_000_000)),
            (json!("1e3"), Some(1000)),
            (json!(42), Some(42)),
            (json!("lots"), None),
            (json!("-1"), None),
        ] {
            assert_eq!(quantity(&q), want, "{q}");
        }
    }

    #[test]
    fn snapshot_and_certificate_fields() {
        let snap = etcd_snapshot(&json!({
            "metadata": {"name": "local-etcd-snapshot-node1-1730289600-a1b2c3"},
            "spec": {"snapshotName": "etcd-snapshot-node1-1730289600", "nodeName": "node1",
                     "location": "file:///var/lib/rancher/k3s/server/db/snapshots/etcd-snapshot-node1-1730289600"},
            "status": {"size": "2891808", "creationTime": "2024-10-30T12:00:00Z", "readyToUse": true}
        }));
        assert_eq!(snap.size_bytes, Some(2_891_808));
        assert!(snap.ready && !snap.is_s3() && snap.error.is_none());
        assert_eq!(snap.created, Some("2024-10-30T12:00:00Z".parse().unwrap()));
        let failed = etcd_snapshot(&json!({
            "metadata": {"name": "s3-x"},
            "spec": {"snapshotName": "x", "nodeName": "s3", "location": "s3://b/x"},
            "status": {"readyToUse": false, "error": {"time": "2024-10-30T12:00:00Z", "message": "upload failed"}}
        }));
        assert!(failed.is_s3() && !failed.ready);
        assert_eq!(failed.error.as_deref(), Some("upload failed"));
        assert_eq!(failed.size_bytes, None);
        let c = managed_certificate(&json!({
            "metadata": {"name": "grafana-tls", "namespace": "monitoring"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Expired", "message": "expired"}],
                       "notAfter": "2025-04-10T08:00:00Z"}
        }));
        assert_eq!((c.ready, c.reason.as_str()), (Some(false), "Expired"));
        assert_eq!(c.not_after, Some("2025-04-10T08:00:00Z".parse().unwrap()));
    }
}
