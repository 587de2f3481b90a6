//! The cluster's workloads (Deployments, StatefulSets, DaemonSets with their PDBs) and the
//! owners, ReplicaSets and pods made from them.

use serde_json::{Value, json};

use super::{Ids, LONGHORN_NS, PER_NODE_PODS, pod_from_template};
use crate::inventory::Host;
use crate::sim::resources::*;
use crate::sim::store::{ApiError, Store, name_of};

/// What kind of owner makes a workload's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// One workload of the initial cluster.
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

/// A workload with the default requests, no emptyDir and no PDB.
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

/// The pod template of a workload.
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

/// Create the workloads' owners, pods and PDBs, their pods spread over `hosts`.
pub(super) fn populate(
    store: &Store,
    hosts: &[Host],
    created: &str,
    ids: &mut Ids,
    pods_per_node: Option<usize>,
) -> Result<(), ApiError> {
    // Workloads.
    let per_node_target = pods_per_node.unwrap_or(20);
    let base: usize =
        workloads(0).iter().map(|w| w.replicas).sum::<usize>() + PER_NODE_PODS * hosts.len();
    let filler = if hosts.len() > 10 || pods_per_node.is_some() {
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
        let owner_name = name_of(&owner).to_string();
        // DaemonSets: one pod per host; the others spread over the hosts in turn.
        for r in 0..desired {
            let pod_name = if wl.kind == WorkloadKind::StatefulSet {
                format!("{owner_name}-{r}")
            } else {
                format!("{owner_name}-{}", ids.suffix())
            };
            let i = if wl.kind == WorkloadKind::DaemonSet {
                r
            } else {
                cursor += 1;
                (cursor - 1) % hosts.len()
            };
            let h = &hosts[i];
            let ip = ids.pod_ip(i);
            let p = pod_from_template(
                &tmpl,
                wl.ns,
                &pod_name,
                &owner,
                Some((&h.hostname, &h.ip.to_string())),
                &ip,
                created,
            );
            store.create(&PODS, p)?;
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
    Ok(())
}
