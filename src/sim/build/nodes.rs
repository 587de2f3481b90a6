//! Node objects as k3s registers them: labels, addresses, capacity, node info, and the
//! conditions for Ready, NotReady and Unknown.

use serde_json::{Value, json};

use super::{K3S_VERSION, KERNELS, NIXOS_VERSIONS, os_image};
use crate::inventory::Host;
use crate::sim::store::now;

/// Per-node pods of DaemonSets + the instance manager.
pub const PER_NODE_PODS: usize = 6;

/// The Node object of `h` (the `index`-th host), registered at `created`.
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
                // The installed generation (the SSH face's facts say the same).
                "kernelVersion": KERNELS[0],
                "kubeProxyVersion": K3S_VERSION,
                "kubeletVersion": K3S_VERSION,
                "machineID": format!("{:032x}", 0x5eed_0000_u64 + index as u64),
                "operatingSystem": "linux",
                "osImage": os_image(NIXOS_VERSIONS[1]),
                "systemUUID": format!("{:08x}-0000-4000-8000-{:012x}", index, index),
            },
        },
    })
}

/// The `bootID` of the `index`-th host after `boots` reboots.
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
