//! The resource types the simulated API server knows, for routing and discovery.

use serde_json::{Value, json};

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resource {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`, `volumes.longhorn.io`: the name in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The kind of a list of this resource.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

const fn r(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Resource {
    Resource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
    }
}

pub const NODES: Resource = r("", "v1", "nodes", "node", "Node", false, &["no"]);
pub const NAMESPACES: Resource = r(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"],
);
pub const PODS: Resource = r("", "v1", "pods", "pod", "Pod", true, &["po"]);
pub const EVENTS: Resource = r("", "v1", "events", "event", "Event", true, &["ev"]);
pub const SERVICES: Resource = r("", "v1", "services", "service", "Service", true, &["svc"]);
pub const CONFIGMAPS: Resource = r(
    "",
    "v1",
    "configmaps",
    "configmap",
    "ConfigMap",
    true,
    &["cm"],
);
pub const DEPLOYMENTS: Resource = r(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"],
);
pub const REPLICASETS: Resource = r(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"],
);
pub const STATEFULSETS: Resource = r(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    true,
    &["sts"],
);
pub const DAEMONSETS: Resource = r(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    true,
    &["ds"],
);
pub const PDBS: Resource = r(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    true,
    &["pdb"],
);
pub const LEASES: Resource = r(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[],
);
pub const CRDS: Resource = r(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "customresourcedefinition",
    "CustomResourceDefinition",
    false,
    &["crd", "crds"],
);
pub const LH_VOLUMES: Resource = r(
    "longhorn.io",
    "v1beta2",
    "volumes",
    "volume",
    "Volume",
    true,
    &["lhv"],
);
pub const LH_REPLICAS: Resource = r(
    "longhorn.io",
    "v1beta2",
    "replicas",
    "replica",
    "Replica",
    true,
    &["lhr"],
);
pub const LH_NODES: Resource = r(
    "longhorn.io",
    "v1beta2",
    "nodes",
    "node",
    "Node",
    true,
    &["lhn"],
);
pub const LH_BACKUPS: Resource = r(
    "longhorn.io",
    "v1beta2",
    "backups",
    "backup",
    "Backup",
    true,
    &["lhb"],
);
pub const LH_BACKUPTARGETS: Resource = r(
    "longhorn.io",
    "v1beta2",
    "backuptargets",
    "backuptarget",
    "BackupTarget",
    true,
    &["lhbt"],
);
pub const LH_RECURRINGJOBS: Resource = r(
    "longhorn.io",
    "v1beta2",
    "recurringjobs",
    "recurringjob",
    "RecurringJob",
    true,
    &["lhrj"],
);
pub const LH_ENGINES: Resource = r(
    "longhorn.io",
    "v1beta2",
    "engines",
    "engine",
    "Engine",
    true,
    &["lhe"],
);
pub const LH_SETTINGS: Resource = r(
    "longhorn.io",
    "v1beta2",
    "settings",
    "setting",
    "Setting",
    true,
    &["lhs"],
);

/// k3s's etcd snapshot records (cluster-scoped).
pub const ETCD_SNAPSHOTS: Resource = r(
    "k3s.cattle.io",
    "v1",
    "etcdsnapshotfiles",
    "etcdsnapshotfile",
    "ETCDSnapshotFile",
    false,
    &[],
);
/// cert-manager's certificates.
pub const CERTIFICATES: Resource = r(
    "cert-manager.io",
    "v1",
    "certificates",
    "certificate",
    "Certificate",
    true,
    &["cert", "certs"],
);

/// Every served resource.
pub const ALL: &[Resource] = &[
    NODES,
    NAMESPACES,
    PODS,
    EVENTS,
    SERVICES,
    CONFIGMAPS,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    PDBS,
    LEASES,
    CRDS,
    LH_VOLUMES,
    LH_REPLICAS,
    LH_NODES,
    LH_BACKUPS,
    LH_BACKUPTARGETS,
    LH_RECURRINGJOBS,
    LH_SETTINGS,
    LH_ENGINES,
    ETCD_SNAPSHOTS,
    CERTIFICATES,
];

/// The Longhorn resources (served as custom resources).
pub const LONGHORN: &[Resource] = &[
    LH_VOLUMES,
    LH_REPLICAS,
    LH_NODES,
    LH_BACKUPS,
    LH_BACKUPTARGETS,
    LH_RECURRINGJOBS,
    LH_SETTINGS,
    LH_ENGINES,
];

/// The group/versions served, in discovery order (core "v1" excluded).
pub const GROUP_VERSIONS: &[(&str, &str)] = &[
    ("apps", "v1"),
    ("policy", "v1"),
    ("coordination.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1"),
    ("longhorn.io", "v1beta2"),
    ("k3s.cattle.io", "v1"),
    ("cert-manager.io", "v1"),
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<Resource> {
    ALL.iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .copied()
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_entry(r: &Resource) -> Value {
    let mut v = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if r.group == "longhorn.io" {
        v["categories"] = json!(["longhorn"]);
    }
    v
}

/// `APIResourceList` for one group/version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = ALL
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list: Vec<Value> = Vec::new();
    for r in served {
        list.push(resource_entry(r));
        match r.plural {
            "pods" => {
                list.push(
                    json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                    "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}),
                );
                list.push(
                    json!({"name": "pods/status", "singularName": "", "namespaced": true,
                    "kind": "Pod", "verbs": ["get", "patch", "update"]}),
                );
            }
            "nodes" => list.push(json!({"name": "nodes/status", "singularName": "",
                "namespaced": false, "kind": "Node", "verbs": ["get", "patch", "update"]})),
            "poddisruptionbudgets" => list.push(json!({"name": "poddisruptionbudgets/status",
                "singularName": "", "namespaced": true, "kind": "PodDisruptionBudget",
                "verbs": ["get", "patch", "update"]})),
            _ if r.group == "longhorn.io" => {
                list.push(json!({"name": format!("{}/status", r.plural),
                "singularName": "", "namespaced": true, "kind": r.kind,
                "verbs": ["get", "patch", "update"]}))
            }
            _ => {}
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": list,
    }))
}

/// `APIGroupList` for `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = GROUP_VERSIONS
        .iter()
        .map(|(g, v)| {
            let gv = format!("{g}/{v}");
            json!({
                "name": g,
                "versions": [{"groupVersion": gv, "version": v}],
                "preferredVersion": {"groupVersion": gv, "version": v},
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The CustomResourceDefinition objects for Longhorn's resources.
pub fn longhorn_crds() -> Vec<Value> {
    LONGHORN
        .iter()
        .map(|r| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": format!("{}.{}", r.plural, r.group),
                    "labels": {"app.kubernetes.io/name": "longhorn", "longhorn-manager": ""},
                },
                "spec": {
                    "group": r.group,
                    "names": {
                        "kind": r.kind,
                        "listKind": r.list_kind(),
                        "plural": r.plural,
                        "singular": r.singular,
                        "shortNames": r.short_names,
                        "categories": ["longhorn"],
                    },
                    "scope": "Namespaced",
                    "versions": [{
                        "name": r.version,
                        "served": true,
                        "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true}},
                        "subresources": {"status": {}},
                    }],
                },
                "status": {
                    "acceptedNames": {"kind": r.kind, "plural": r.plural},
                    "storedVersions": [r.version],
                    "conditions": [
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"},
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    ],
                },
            })
        })
        .collect()
}
