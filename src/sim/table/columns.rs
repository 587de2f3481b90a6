//! kubectl's columns per resource (what `kubectl get` prints for nodes, pods, workloads,
//! Longhorn's CRDs, ...) and the cells of one object's row.

use serde_json::{Value, json};

use super::Cells;
use crate::sim::resources::Resource;

/// kubectl's short human durations: 45s, 5m3s, 47m, 3h12m, 26h, 4d2h, 41d, 2y30d.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

/// An object's age, from its `creationTimestamp`.
fn age_cell(o: &Value) -> String {
    age_of(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    )
}

/// The age of a `creationTimestamp`.
fn age_of(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_age(jiff::Timestamp::now().as_second() - t.as_second())
}

/// One column definition.
fn col(name: &str, ty: &str, format: &str, priority: i32, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// The string at `ptr` (empty when absent).
fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// `<none>` for an empty cell.
fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.to_string()
    }
}

fn node_cells(n: &Value) -> Vec<Value> {
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown");
    let mut status = match ready {
        "True" => "Ready".to_string(),
        "False" => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if n.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = n
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| -> String {
        n.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .and_then(|x| x["address"].as_str())
            .map_or_else(|| "<none>".into(), str::to_string)
    };
    vec![
        json!(s(n, "/metadata/name")),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        json!(age_cell(n)),
        json!(s(n, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(s(n, "/status/nodeInfo/osImage")),
        json!(s(n, "/status/nodeInfo/kernelVersion")),
        json!(s(n, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.map_or(0, |c| c.iter().filter(|c| c["ready"] == true).count());
    let restarts: i64 = statuses.map_or(0, |c| {
        c.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
    });
    let mut status = s(p, "/status/phase").to_string();
    if let Some(reason) = p.pointer("/status/reason").and_then(Value::as_str) {
        status = reason.to_string();
    }
    if let Some(w) = statuses.and_then(|c| {
        c.iter()
            .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
    }) {
        status = w.to_string();
    }
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
    }
    vec![
        json!(s(p, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age_cell(p)),
        json!(or_none(s(p, "/status/podIP"))),
        json!(or_none(s(p, "/spec/nodeName"))),
        json!("<none>"),
        json!("<none>"),
    ]
}

/// An int-or-string field as kubectl prints it.
fn int_or_str(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

/// The column definitions of `res` and its row builder.
pub(super) fn columns(res: &Resource) -> (Vec<Value>, Cells) {
    let name = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match (res.group, res.plural) {
        ("", "nodes") => (
            vec![
                name,
                col("Status", "string", "", 0, "The status of the node"),
                col("Roles", "string", "", 0, "The roles of the node"),
                age,
                col(
                    "Version",
                    "string",
                    "",
                    0,
                    "Kubelet Version reported by the node.",
                ),
                col(
                    "Internal-IP",
                    "string",
                    "",
                    1,
                    "List of internal IPs of the node.",
                ),
                col(
                    "External-IP",
                    "string",
                    "",
                    1,
                    "List of external IPs of the node.",
                ),
                col(
                    "OS-Image",
                    "string",
                    "",
                    1,
                    "OS Image reported by the node from /etc/os-release.",
                ),
                col(
                    "Kernel-Version",
                    "string",
                    "",
                    1,
                    "Kernel Version reported by the node.",
                ),
                col(
                    "Container-Runtime",
                    "string",
                    "",
                    1,
                    "Container Runtime Version reported by the node.",
                ),
            ],
            node_cells,
        ),
        ("", "pods") => (
            vec![
                name,
                col(
                    "Ready",
                    "string",
                    "",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                col(
                    "Status",
                    "string",
                    "",
                    0,
                    "The aggregate status of the containers in this pod.",
                ),
                col(
                    "Restarts",
                    "string",
                    "",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                age,
                col("IP", "string", "", 1, "IP address allocated to the pod."),
                col(
                    "Node",
                    "string",
                    "",
                    1,
                    "Name of the node this pod is assigned to.",
                ),
                col(
                    "Nominated Node",
                    "string",
                    "",
                    1,
                    "Name of the node this pod is nominated to.",
                ),
                col(
                    "Readiness Gates",
                    "string",
                    "",
                    1,
                    "Readiness gates of the pod.",
                ),
            ],
            pod_cells,
        ),
        ("policy", "poddisruptionbudgets") => (
            vec![
                name,
                col(
                    "Min Available",
                    "string",
                    "",
                    0,
                    "The minimum number of pods that must be available.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "",
                    0,
                    "The maximum number of pods that may be unavailable.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "",
                    0,
                    "Number of pod disruptions that are currently allowed.",
                ),
                age,
            ],
            |b| {
                vec![
                    json!(s(b, "/metadata/name")),
                    json!(int_or_str(b.pointer("/spec/minAvailable"))),
                    json!(int_or_str(b.pointer("/spec/maxUnavailable"))),
                    json!(
                        b.pointer("/status/disruptionsAllowed")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    ),
                    json!(age_cell(b)),
                ]
            },
        ),
        ("coordination.k8s.io", "leases") => (
            vec![
                name,
                col("Holder", "string", "", 0, "The holder of the lease."),
                age,
            ],
            |l| {
                vec![
                    json!(s(l, "/metadata/name")),
                    json!(s(l, "/spec/holderIdentity")),
                    json!(age_cell(l)),
                ]
            },
        ),
        ("apps", "deployments") => (
            vec![
                name,
                col(
                    "Ready",
                    "string",
                    "",
                    0,
                    "Number of the pod with ready state",
                ),
                col(
                    "Up-to-date",
                    "string",
                    "",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "string",
                    "",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                age,
            ],
            |d| {
                let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                vec![
                    json!(s(d, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        n("/status/readyReplicas"),
                        n("/spec/replicas")
                    )),
                    json!(n("/status/updatedReplicas")),
                    json!(n("/status/availableReplicas")),
                    json!(age_cell(d)),
                ]
            },
        ),
        ("longhorn.io", "volumes") => (
            vec![
                name,
                col(
                    "Data Engine",
                    "string",
                    "",
                    0,
                    "The data engine of the volume",
                ),
                col("State", "string", "", 0, "The state of the volume"),
                col(
                    "Robustness",
                    "string",
                    "",
                    0,
                    "The robustness of the volume",
                ),
                col(
                    "Scheduled",
                    "string",
                    "",
                    0,
                    "The scheduled condition of the volume",
                ),
                col("Size", "string", "", 0, "The size of the volume"),
                col(
                    "Node",
                    "string",
                    "",
                    0,
                    "The node that the volume is currently attaching to",
                ),
                age,
            ],
            |v| {
                vec![
                    json!(s(v, "/metadata/name")),
                    json!(s(v, "/spec/dataEngine")),
                    json!(s(v, "/status/state")),
                    json!(s(v, "/status/robustness")),
                    json!(
                        v.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .and_then(|c| c.iter().find(|c| c["type"] == "Scheduled"))
                            .and_then(|c| c["status"].as_str())
                            .unwrap_or("")
                    ),
                    json!(s(v, "/spec/size")),
                    json!(s(v, "/status/currentNodeID")),
                    json!(age_cell(v)),
                ]
            },
        ),
        ("", "events") => (
            vec![
                col(
                    "Last Seen",
                    "string",
                    "",
                    0,
                    "Time when this Event was last observed.",
                ),
                col(
                    "Type",
                    "string",
                    "",
                    0,
                    "Type of this event (Normal, Warning).",
                ),
                col(
                    "Reason",
                    "string",
                    "",
                    0,
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                col(
                    "Object",
                    "string",
                    "",
                    0,
                    "The object that this event is about.",
                ),
                col(
                    "Subobject",
                    "string",
                    "",
                    1,
                    "The subobject that this event is about.",
                ),
                col(
                    "Source",
                    "string",
                    "",
                    1,
                    "The component reporting this event.",
                ),
                col(
                    "Message",
                    "string",
                    "",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                col(
                    "First Seen",
                    "string",
                    "",
                    1,
                    "The time at which the event was first recorded.",
                ),
                col(
                    "Count",
                    "string",
                    "",
                    1,
                    "The number of times this event has occurred.",
                ),
                col(
                    "Name",
                    "string",
                    "name",
                    1,
                    "Name must be unique within a namespace.",
                ),
            ],
            |e| {
                vec![
                    json!(age_of(e.pointer("/lastTimestamp").and_then(Value::as_str))),
                    json!(s(e, "/type")),
                    json!(s(e, "/reason")),
                    json!(format!(
                        "{}/{}",
                        s(e, "/involvedObject/kind").to_lowercase(),
                        s(e, "/involvedObject/name")
                    )),
                    json!(s(e, "/involvedObject/fieldPath")),
                    json!(s(e, "/source/component")),
                    json!(s(e, "/message")),
                    json!(age_of(e.pointer("/firstTimestamp").and_then(Value::as_str))),
                    json!(e.pointer("/count").and_then(Value::as_i64).unwrap_or(1)),
                    json!(s(e, "/metadata/name")),
                ]
            },
        ),
        ("longhorn.io", "settings") => (
            vec![
                name,
                col("Value", "string", "", 0, "The value of the setting"),
                col("Applied", "boolean", "", 0, "The setting is applied"),
                age,
            ],
            |x| {
                vec![
                    json!(s(x, "/metadata/name")),
                    json!(s(x, "/value")),
                    json!(
                        x.pointer("/status/applied")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    json!(age_cell(x)),
                ]
            },
        ),
        ("longhorn.io", "replicas") => (
            vec![
                name,
                col(
                    "Data Engine",
                    "string",
                    "",
                    0,
                    "The data engine of the replica",
                ),
                col("State", "string", "", 0, "The current state of the replica"),
                col("Node", "string", "", 0, "The node that the replica is on"),
                col("Disk", "string", "", 0, "The disk that the replica is on"),
                age,
            ],
            |r| {
                vec![
                    json!(s(r, "/metadata/name")),
                    json!(s(r, "/spec/dataEngine")),
                    json!(s(r, "/status/currentState")),
                    json!(s(r, "/spec/nodeID")),
                    json!(s(r, "/spec/diskID")),
                    json!(age_cell(r)),
                ]
            },
        ),
        _ => (vec![name, age], |o| {
            vec![json!(s(o, "/metadata/name")), json!(age_cell(o))]
        }),
    }
}
