//! The guards on the cluster's nodes and on Longhorn's volumes and replicas.

use super::*;

pub(super) fn nodes(g: &GuardInputs<'_>, c: &ClusterState, out: &mut Vec<GuardVerdict>) {
    let me = &g.entry.node;
    if c.nodes.is_empty() {
        for guard in ["node-missing", "node-not-ready", "node-cordoned"] {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "kubernetes",
                "the API server listed no node at all",
                "check that the kubeconfig points at this cluster (`kubectl get nodes`)",
            ));
        }
        return;
    }
    if c.node(me).is_none() {
        out.push(GuardVerdict::refuse(
            "node-missing",
            me,
            "this host has no Kubernetes node of that name",
            "check the hostname in hosts.json against `kubectl get nodes`",
        ));
    } else {
        out.push(GuardVerdict::pass(
            "node-missing",
            format!("{me} is a node of the cluster"),
        ));
    }
    let before = out.len();
    for n in c.nodes.iter().filter(|n| &n.name != me) {
        if n.ready != Some(true) {
            let state = if n.ready == Some(false) {
                "NotReady"
            } else {
                "Unknown"
            };
            out.push(GuardVerdict::refuse(
                "node-not-ready",
                &n.name,
                format!(
                    "another node is {state}: taking {me} down too could cost capacity or quorum"
                ),
                format!(
                    "bring {} back to Ready first (`kubectl describe node {}`)",
                    n.name, n.name
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "node-not-ready",
            "every other node is Ready",
        ));
    }
    let before = out.len();
    for n in c.nodes.iter().filter(|n| &n.name != me) {
        if n.unschedulable && n.cordoned_by_run.as_deref() != Some(g.run_id) {
            let by = match &n.cordoned_by_run {
                Some(r) if super::super::drain::is_drain_run(r) => {
                    format!("in maintenance (drain run {r})")
                }
                Some(r) => format!("cordoned by upgrade run {r}"),
                None => "cordoned (not by this run)".to_string(),
            };
            let fix = match &n.cordoned_by_run {
                Some(r) if super::super::drain::is_drain_run(r) => format!(
                    "end the maintenance when its work is done (`homeinfra-tui uncordon {}`, or `c` on the node)",
                    n.name
                ),
                Some(r) => {
                    format!("finish or abandon run {r} (`homeinfra-tui upgrade --abandon {r}`)")
                }
                None => format!(
                    "uncordon it when it is safe (`kubectl uncordon {}`)",
                    n.name
                ),
            };
            out.push(GuardVerdict::refuse(
                "node-cordoned",
                &n.name,
                format!("another node is {by}"),
                fix,
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "node-cordoned",
            "no other node is cordoned",
        ));
    }
}

const LONGHORN_GUARDS: [&str; 2] = ["degraded-volume", "last-replica"];

/// Why Longhorn's data cannot be trusted to be all there is (`None`: it can).
pub(crate) fn longhorn_unseen(c: &ClusterState) -> Option<(String, String)> {
    let lh = &c.longhorn;
    let ns = &lh.namespace;
    let version = &lh.version;
    let skip = "or, if this cluster has no Longhorn, add \"longhorn\" to [upgrade] skip_guards";
    if let Some(e) = &lh.error {
        return Some((
            format!(
                "Longhorn's volumes and replicas cannot be read (since {}): {}",
                e.since.strftime("%H:%M:%S"),
                e.message
            ),
            format!(
                "check Longhorn's manager and the API server (`kubectl -n {ns} get volumes.longhorn.io`)"
            ),
        ));
    }
    let versions = match &lh.api {
        LonghornApi::Unknown => {
            return Some((
                "Longhorn's API (longhorn.io) was not discovered".into(),
                format!("check that the API server answers `kubectl api-versions`, {skip}"),
            ));
        }
        LonghornApi::Error { message } => {
            return Some((
                format!("cannot tell whether Longhorn is installed: {message}"),
                format!("check the API server (`kubectl api-versions`), {skip}"),
            ));
        }
        LonghornApi::NotServed => {
            return Some((
                "the API server serves no longhorn.io API: no Longhorn CRDs are installed".into(),
                format!("check Longhorn (`kubectl get crd | grep longhorn`), {skip}"),
            ));
        }
        LonghornApi::Served { versions } => versions,
    };
    if !versions.iter().any(|v| v == version) {
        return Some((
            format!(
                "the Longhorn CRDs serve longhorn.io {}, this tool reads longhorn.io/{version}",
                versions.join(", ")
            ),
            "use a homeinfra-tui that reads this Longhorn version (or a Longhorn that serves it)"
                .into(),
        ));
    }
    if !lh.missing_kinds.is_empty() {
        return Some((
            format!(
                "Longhorn {} answered 404 at longhorn.io/{version} in namespace {ns} (the CRDs serve {})",
                lh.missing_kinds.join(", "),
                versions.join(", ")
            ),
            "check [kubernetes] longhorn_namespace and the Longhorn CRDs (`kubectl get crd | grep longhorn`)"
                .into(),
        ));
    }
    if lh.nodes.is_empty() && lh.volumes.is_empty() {
        return Some((
            format!(
                "namespace {ns} holds no Longhorn node or volume although longhorn.io/{version} is served"
            ),
            "set [kubernetes] longhorn_namespace to the namespace Longhorn runs in (`kubectl get nodes.longhorn.io -A`)"
                .into(),
        ));
    }
    None
}

pub(super) fn longhorn(
    g: &GuardInputs<'_>,
    cluster: &Result<&ClusterState, String>,
    out: &mut Vec<GuardVerdict>,
) {
    if let Some(by) = skipped_by(g.settings, "degraded-volume") {
        for guard in LONGHORN_GUARDS {
            out.push(GuardVerdict::skipped(guard, by));
        }
        return;
    }
    let c = match cluster {
        Ok(c) => *c,
        Err(e) => {
            for guard in LONGHORN_GUARDS {
                out.push(GuardVerdict::cannot_verify(
                    guard,
                    "longhorn",
                    e.clone(),
                    "check the kubeconfig and that the API server answers",
                ));
            }
            return;
        }
    };
    if let Some((message, fix)) = longhorn_unseen(c) {
        for guard in LONGHORN_GUARDS {
            out.push(GuardVerdict::cannot_verify(
                guard,
                "longhorn",
                message.clone(),
                fix.clone(),
            ));
        }
        return;
    }
    let lh = &c.longhorn;
    let me = &g.entry.node;
    let before = out.len();
    for v in &lh.volumes {
        let rebuilding: Vec<&str> = lh
            .replicas_of(&v.name)
            .filter(|r| r.rebuilding)
            .map(|r| r.node.as_str())
            .collect();
        let robustness = v.robustness.as_str();
        if matches!(robustness, "degraded" | "faulted") || !rebuilding.is_empty() {
            let what = if !rebuilding.is_empty() {
                format!("is rebuilding (replicas on {})", rebuilding.join(", "))
            } else {
                format!("is {robustness}")
            };
            out.push(GuardVerdict::refuse(
                "degraded-volume",
                &v.name,
                format!("Longhorn volume {what}"),
                "wait until Longhorn reports the volume healthy (rebuilds finished)",
            ));
        } else if v.state == "attached" && robustness != "healthy" {
            out.push(GuardVerdict::cannot_verify(
                "degraded-volume",
                &v.name,
                format!(
                    "Longhorn volume is attached but its robustness is {:?}",
                    if robustness.is_empty() {
                        "not reported"
                    } else {
                        robustness
                    }
                ),
                format!(
                    "look at the volume in Longhorn (`kubectl -n {} get volumes.longhorn.io {}`)",
                    lh.namespace, v.name
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "degraded-volume",
            format!("every Longhorn volume is healthy ({})", lh.volumes.len()),
        ));
    }
    let before = out.len();
    for v in &lh.volumes {
        if v.state == "detached" && v.robustness != "healthy" {
            continue;
        }
        let healthy: Vec<&str> = lh
            .replicas_of(&v.name)
            .filter(|r| r.healthy)
            .map(|r| r.node.as_str())
            .collect();
        if !healthy.is_empty() && healthy.iter().all(|n| n == me) {
            out.push(GuardVerdict::refuse(
                "last-replica",
                &v.name,
                format!(
                    "every healthy replica of this volume ({}) is on {me}: its data would be unavailable",
                    healthy.len()
                ),
                format!(
                    "add replicas on other nodes (numberOfReplicas ≥ 2) and let them rebuild, or move the volume off {me}"
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(GuardVerdict::pass(
            "last-replica",
            format!("every volume keeps a healthy replica off {me}"),
        ));
    }
}
