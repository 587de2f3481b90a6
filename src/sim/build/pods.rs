//! Pods: made from an owner's template, bound or Pending, and the status of a running pod.

use serde_json::{Value, json};

use crate::sim::store::short_suffix;

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

/// The status of a pod running on `host_ip` since `started`.
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
