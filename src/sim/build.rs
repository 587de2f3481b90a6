//! The initial world: nodes, namespaces, workloads with their pods, PDBs, leases and
//! Longhorn's objects, built from the (loopback) inventory.

use serde_json::{Value, json};

use super::resources::*;
use super::store::{ApiError, Store, now, short_suffix, timestamp};
use crate::inventory::{Host, Inventory};

pub const K3S_VERSION: &str = "v1.31.4+k3s1";
pub const LONGHORN_NS: &str = "longhorn-system";

/// What kind of owner makes a workload's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

pub struct Workload {
    pub ns: &'static str,
    pub name: String,
    pub kind: WorkloadKind,
    pub replicas: usize,
    pub image: &'static str,
    pub cpu: &'static str,
    pub memory: &'static str,
    pub empty_dir: bool,
    /// `(name, minAvailable, maxUnavailable)`.
    pub pdb: Option<(&'static str, Option<Value>, Option<Value>)>,
}

fn w(
    ns: &'static str,
    name: &str,
    kind: WorkloadKind,
    replicas: usize,
    image: &'static str,
) -> Workload {
    Workload {
        ns,
        name: name.to_string(),
        kind,
        replicas,
        image,
        cpu: "100m",
        memory: "128Mi",
        empty_dir: false,
        pdb: None,
    }
}

/// The workloads of the cluster; `filler` extra pods in `apps` (for scale tests).
pub fn workloads(filler: usize) -> Vec<Workload> {
    use WorkloadKind::*;
    let mut v = vec![
        w(
            "kube-system",
            "coredns",
            Deployment,
            1,
            "rancher/mirrored-coredns-coredns:1.12.0",
        ),
        w(
            "kube-system",
            "local-path-provisioner",
            Deployment,
            1,
            "rancher/local-path-provisioner:v0.0.30",
        ),
        Workload {
            empty_dir: true,
            ..w(
                "kube-system",
                "metrics-server",
                Deployment,
                1,
                "rancher/mirrored-metrics-server:v0.7.2",
            )
        },
        w(
            "kube-system",
            "traefik",
            Deployment,
            1,
            "rancher/mirrored-library-traefik:3.1.2",
        ),
        w(
            LONGHORN_NS,
            "longhorn-manager",
            DaemonSet,
            0,
            "longhornio/longhorn-manager:v1.7.2",
        ),
        w(
            LONGHORN_NS,
            "longhorn-csi-plugin",
            DaemonSet,
            0,
            "longhornio/longhorn-csi-plugin:v1.7.2",
        ),
        w(
            LONGHORN_NS,
            "engine-image-ei-51cc7b9c",
            DaemonSet,
            0,
            "longhornio/longhorn-engine:v1.7.2",
        ),
        w(
            LONGHORN_NS,
            "longhorn-ui",
            Deployment,
            2,
            "longhornio/longhorn-ui:v1.7.2",
        ),
        w(
            LONGHORN_NS,
            "longhorn-driver-deployer",
            Deployment,
            1,
            "longhornio/longhorn-manager:v1.7.2",
        ),
        w(
            LONGHORN_NS,
            "csi-attacher",
            Deployment,
            3,
            "longhornio/csi-attacher:v4.7.0",
        ),
        w(
            LONGHORN_NS,
            "csi-provisioner",
            Deployment,
            3,
            "longhornio/csi-provisioner:v4.0.1",
        ),
        w(
            LONGHORN_NS,
            "csi-resizer",
            Deployment,
            3,
            "longhornio/csi-resizer:v1.12.0",
        ),
        w(
            LONGHORN_NS,
            "csi-snapshotter",
            Deployment,
            3,
            "longhornio/csi-snapshotter:v7.0.2",
        ),
        w(
            "monitoring",
            "node-exporter",
            DaemonSet,
            0,
            "quay.io/prometheus/node-exporter:v1.8.2",
        ),
        w("monitoring", "alloy", DaemonSet, 0, "grafana/alloy:v1.5.0"),
        Workload {
            empty_dir: true,
            ..w(
                "monitoring",
                "grafana",
                Deployment,
                1,
                "grafana/grafana:11.3.1",
            )
        },
        w("monitoring", "loki", StatefulSet, 1, "grafana/loki:3.3.0"),
        Workload {
            pdb: Some(("web", Some(json!(2)), None)),
            ..w("apps", "web", Deployment, 3, "nginx:1.27")
        },
        Workload {
            pdb: Some(("api", None, Some(json!(1)))),
            ..w("apps", "api", Deployment, 2, "ghcr.io/example/api:2.4.1")
        },
        Workload {
            memory: "512Mi",
            ..w("apps", "postgres", StatefulSet, 1, "postgres:16.6")
        },
    ];
    let mut left = filler;
    let mut i = 0;
    while left > 0 {
        let n = left.min(10);
        i += 1;
        v.push(w(
            "apps",
            &format!("svc-{i:04}"),
            Deployment,
            n,
            "ghcr.io/example/svc:1.0",
        ));
        left -= n;
    }
    v
}

/// Per-node pods of DaemonSets + the instance manager.
pub const PER_NODE_PODS: usize = 6;

pub fn node_object(h: &Host, index: usize, created: &str) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": h.hostname,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
        "topology.kubernetes.io/region": h.region,
        "topology.kubernetes.io/zone": h.zone,
    });
    if h.role.is_control_plane() {
        for r in ["control-plane", "etcd", "master"] {
            labels[format!("node-role.kubernetes.io/{r}")] = json!("true");
        }
    }
    let cpu = if h.role.is_control_plane() { "4" } else { "8" };
    let mem = if h.role.is_control_plane() {
        "16318412Ki"
    } else {
        "32664728Ki"
    };
    json!({
        "metadata": {
            "name": h.hostname,
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": h.ip.to_string(),
                "flannel.alpha.coreos.com/public-ip": h.ip.to_string(),
                "k3s.io/hostname": h.hostname,
                "k3s.io/internal-ip": h.ip.to_string(),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "creationTimestamp": created,
        },
        "spec": {
            "podCIDR": format!("10.42.{index}.0/24"),
            "podCIDRs": [format!("10.42.{index}.0/24")],
            "providerID": format!("k3s://{}", h.hostname),
        },
        "status": {
            "capacity": {"cpu": cpu, "ephemeral-storage": "479596204Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": mem, "pods": "110"},
            "allocatable": {"cpu": cpu, "ephemeral-storage": "466555784369", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": mem, "pods": "110"},
            "conditions": node_conditions_at(Some(true), created, &now()),
            "addresses": [
                {"type": "InternalIP", "address": h.ip.to_string()},
                {"type": "Hostname", "address": h.hostname},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": boot_id(index, 0),
                "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.6.63",
                "kubeProxyVersion": K3S_VERSION,
                "kubeletVersion": K3S_VERSION,
                "machineID": format!("{:032x}", 0x5eed_0000_u64 + index as u64),
                "operatingSystem": "linux",
                "osImage": "NixOS 24.11 (Vicuna)",
                "systemUUID": format!("{:08x}-0000-4000-8000-{:012x}", index, index),
            },
        },
    })
}

pub fn boot_id(index: usize, boots: u32) -> String {
    format!(
        "b007{:04x}-{:04x}-4000-8000-{:012x}",
        index,
        boots,
        index * 7919 + boots as usize
    )
}

/// The node conditions for Ready = `Some(true)`, `Some(false)` or `None` (Unknown).
pub fn node_conditions(ready: Option<bool>, since: &str) -> Value {
    node_conditions_at(ready, since, since)
}

/// Node conditions that changed at `since`, last posted at `heartbeat`.
pub fn node_conditions_at(ready: Option<bool>, since: &str, heartbeat: &str) -> Value {
    let pressure = |t: &str, reason: &str, msg: &str| {
        if ready.is_none() {
            json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": since})
        } else {
            json!({"type": t, "status": "False", "reason": reason, "message": msg,
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": since})
        }
    };
    let ready_cond = match ready {
        Some(true) => json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since}),
        Some(false) => json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "container runtime network not ready", "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since}),
        None => json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since}),
    };
    json!([
        pressure(
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        pressure(
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        pressure(
            "PIDPressure",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        ready_cond,
    ])
}

/// A pod from an owner's template, bound to `node` (or Pending when `None`).
pub fn pod_from_template(
    template: &Value,
    ns: &str,
    name: &str,
    owner: &Value,
    node: Option<(&str, &str)>,
    pod_ip: &str,
    created: &str,
) -> Value {
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(pod_name) = owner.pointer("/kind").and_then(Value::as_str)
        && pod_name == "StatefulSet"
    {
        labels["statefulset.kubernetes.io/pod-name"] = json!(name);
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    let containers: Vec<Value> = spec["containers"].as_array().cloned().unwrap_or_default();
    let owner_ref = json!([{
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let status = match node {
        Some((_, host_ip)) => running_status(&containers, host_ip, pod_ip, created, true),
        None => json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/0 nodes are available: no schedulable node."}], "qosClass": "Burstable"}),
    };
    if let Some((n, _)) = node {
        spec["nodeName"] = json!(n);
    }
    json!({
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": owner_ref,
            "creationTimestamp": created,
        },
        "spec": spec,
        "status": status,
    })
}

pub fn running_status(
    containers: &[Value],
    host_ip: &str,
    pod_ip: &str,
    started: &str,
    ready: bool,
) -> Value {
    let r = if ready { "True" } else { "False" };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "containerID": format!("containerd://{}", short_suffix(started.len() as u64 + pod_ip.len() as u64)),
                "ready": ready,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", "status": r, "lastTransitionTime": started},
            {"type": "ContainersReady", "status": r, "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    })
}

fn template(wl: &Workload, labels: &Value) -> Value {
    let mut spec = json!({
        "containers": [{
            "name": wl.name.trim_start_matches("svc-").split('-').next().unwrap_or("main"),
            "image": wl.image,
            "resources": {"requests": {"cpu": wl.cpu, "memory": wl.memory}},
        }],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    });
    if wl.empty_dir {
        spec["volumes"] = json!([{"name": "tmp", "emptyDir": {}}]);
    }
    if wl.kind == WorkloadKind::DaemonSet {
        spec["tolerations"] = json!([
            {"operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
        ]);
    }
    json!({"metadata": {"labels": labels}, "spec": spec})
}

/// Counters used while building: pod ips and name suffixes.
pub struct Ids {
    pub next: u64,
}

impl Ids {
    pub fn suffix(&mut self) -> String {
        self.next += 1;
        short_suffix(self.next)
    }

    pub fn pod_ip(&mut self, node_index: usize) -> String {
        self.next += 1;
        format!("10.42.{}.{}", node_index % 256, (self.next % 250) + 2)
    }
}

/// Create everything. `created` is the cluster's birth time.
pub fn populate(store: &Store, inv: &Inventory, ids: &mut Ids) -> Result<(), ApiError> {
    let created_ts = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 41);
    let created = timestamp(created_ts);
    let hosts = &inv.hosts;
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        LONGHORN_NS,
        "monitoring",
        "apps",
    ] {
        store.create(
            &NAMESPACES,
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns},
            "creationTimestamp": created}, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}}),
        )?;
    }
    for crd in longhorn_crds() {
        store.create(&CRDS, crd)?;
    }
    for (i, h) in hosts.iter().enumerate() {
        store.create(&NODES, node_object(h, i, &created))?;
        store.create(&LEASES, json!({"metadata": {"name": h.hostname, "namespace": "kube-node-lease", "creationTimestamp": created},
            "spec": {"holderIdentity": h.hostname, "leaseDurationSeconds": 40, "renewTime": format!("{}.000000Z", now().trim_end_matches('Z'))}}))?;
    }
    let leader = inv
        .control_planes()
        .next()
        .map_or("", |h| h.hostname.as_str());
    for l in [
        "k3s",
        "k3s-etcd",
        "kube-controller-manager",
        "kube-scheduler",
        "k3s-cloud-controller-manager",
    ] {
        store.create(&LEASES, json!({"metadata": {"name": l, "namespace": "kube-system", "creationTimestamp": created},
            "spec": {"holderIdentity": leader, "leaseDurationSeconds": 15, "leaseTransitions": 0,
                "acquireTime": format!("{}.000000Z", created.trim_end_matches('Z')),
                "renewTime": format!("{}.000000Z", now().trim_end_matches('Z'))}}))?;
    }

    // Workloads.
    let per_node_target = 20usize;
    let base: usize =
        workloads(0).iter().map(|w| w.replicas).sum::<usize>() + PER_NODE_PODS * hosts.len();
    let filler = if hosts.len() > 10 {
        (per_node_target * hosts.len()).saturating_sub(base)
    } else {
        0
    };
    let mut cursor = 0usize;
    for wl in workloads(filler) {
        let labels = json!({"app.kubernetes.io/name": wl.name, "app": wl.name});
        let tmpl = template(&wl, &labels);
        let selector = json!({"matchLabels": labels});
        let (owner_res, owner_body) = match wl.kind {
            WorkloadKind::Deployment => (
                DEPLOYMENTS,
                json!({"replicas": wl.replicas, "selector": selector,
                "template": tmpl, "strategy": {"type": "RollingUpdate"}}),
            ),
            WorkloadKind::StatefulSet => (
                STATEFULSETS,
                json!({"replicas": wl.replicas, "selector": selector,
                "template": tmpl, "serviceName": wl.name}),
            ),
            WorkloadKind::DaemonSet => {
                (DAEMONSETS, json!({"selector": selector, "template": tmpl}))
            }
        };
        let desired = if wl.kind == WorkloadKind::DaemonSet {
            hosts.len()
        } else {
            wl.replicas
        };
        let top = store.create(&owner_res, json!({
            "metadata": {"name": wl.name, "namespace": wl.ns, "labels": labels, "creationTimestamp": created},
            "spec": owner_body,
            "status": {"replicas": desired, "readyReplicas": desired, "availableReplicas": desired,
                "updatedReplicas": desired, "observedGeneration": 1,
                "desiredNumberScheduled": desired, "currentNumberScheduled": desired,
                "numberReady": desired, "numberAvailable": desired},
        }))?;
        let owner = if wl.kind == WorkloadKind::Deployment {
            let mut rs_labels = labels.clone();
            let hash = format!("{}{}", ids.suffix(), ids.suffix());
            rs_labels["pod-template-hash"] = json!(hash);
            let mut rs_tmpl = tmpl.clone();
            rs_tmpl["metadata"]["labels"] = rs_labels.clone();
            store.create(&REPLICASETS, json!({
                "metadata": {"name": format!("{}-{hash}", wl.name), "namespace": wl.ns, "labels": rs_labels,
                    "creationTimestamp": created,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": wl.name,
                        "uid": top["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": wl.replicas, "selector": {"matchLabels": rs_labels}, "template": rs_tmpl},
                "status": {"replicas": wl.replicas, "readyReplicas": wl.replicas,
                    "availableReplicas": wl.replicas, "fullyLabeledReplicas": wl.replicas, "observedGeneration": 1},
            }))?
        } else {
            top
        };
        let tmpl = owner["spec"]["template"].clone();
        let owner_name = name(&owner);
        match wl.kind {
            WorkloadKind::DaemonSet => {
                for (i, h) in hosts.iter().enumerate() {
                    let pod_name = format!("{owner_name}-{}", ids.suffix());
                    let ip = ids.pod_ip(i);
                    let p = pod_from_template(
                        &tmpl,
                        wl.ns,
                        &pod_name,
                        &owner,
                        Some((&h.hostname, &h.ip.to_string())),
                        &ip,
                        &created,
                    );
                    store.create(&PODS, p)?;
                }
            }
            _ => {
                for r in 0..wl.replicas {
                    let pod_name = if wl.kind == WorkloadKind::StatefulSet {
                        format!("{owner_name}-{r}")
                    } else {
                        format!("{owner_name}-{}", ids.suffix())
                    };
                    let i = cursor % hosts.len();
                    cursor += 1;
                    let h = &hosts[i];
                    let ip = ids.pod_ip(i);
                    let p = pod_from_template(
                        &tmpl,
                        wl.ns,
                        &pod_name,
                        &owner,
                        Some((&h.hostname, &h.ip.to_string())),
                        &ip,
                        &created,
                    );
                    store.create(&PODS, p)?;
                }
            }
        }
        if let Some((pdb_name, min, max)) = wl.pdb {
            let mut spec = json!({"selector": {"matchLabels": labels}});
            if let Some(m) = min {
                spec["minAvailable"] = m;
            }
            if let Some(m) = max {
                spec["maxUnavailable"] = m;
            }
            store.create(&PDBS, json!({"metadata": {"name": pdb_name, "namespace": wl.ns, "creationTimestamp": created},
                "spec": spec, "status": {}}))?;
        }
    }
    // One instance manager per node.
    for (i, h) in hosts.iter().enumerate() {
        let ip = ids.pod_ip(i);
        store.create(&PODS, instance_manager_pod(h, &ip, &created))?;
    }
    populate_longhorn(store, inv, &created, created_ts)?;
    Ok(())
}

pub fn name(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

pub fn instance_manager_name(node: &str) -> String {
    format!("instance-manager-{:08x}", fnv(node))
}

pub fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

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

pub fn disk_id(node: &str) -> String {
    format!(
        "{:08x}-d15c-4000-8000-{:012x}",
        fnv(node),
        fnv(&format!("disk{node}"))
    )
}

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

fn populate_longhorn(
    store: &Store,
    inv: &Inventory,
    created: &str,
    created_ts: jiff::Timestamp,
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
        ("replica-replenishment-wait-interval", "600"),
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
    for i in 0..n {
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
            &hosts[i].hostname,
            (ns, &pvc),
            Some((&bname, &backup_at)),
        );
        vol["metadata"]["creationTimestamp"] = json!(created);
        store.create(&LH_VOLUMES, vol)?;
        for r in 0..replicas {
            let node = &hosts[(i + r) % n].hostname;
            let mut rep = replica_object(&vname, node, &disk_id(node), r, created);
            rep["metadata"]["creationTimestamp"] = json!(created);
            store.create(&LH_REPLICAS, rep)?;
        }
        store.create(&LH_BACKUPS, json!({
            "metadata": {"name": bname, "namespace": LONGHORN_NS, "labels": {"backup-volume": vname}, "creationTimestamp": backup_at},
            "spec": {"labels": {"RecurringJob": "backup-daily"}, "snapshotName": format!("{vname}-snap")},
            "status": {"state": "Completed", "progress": 100, "volumeName": vname,
                "backupCreatedAt": backup_at, "snapshotCreatedAt": backup_at, "lastSyncedAt": now(),
                "size": (1u64 << 30).to_string(), "url": format!("{target_url}?backup={bname}&volume={vname}"),
                "volumeSize": "10737418240", "ownerID": hosts[0].hostname},
        }))?;
    }
    let _ = created_ts;
    Ok(())
}
