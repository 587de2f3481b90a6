//! Kubernetes for the upgrade through kube-rs: node status, cordon/uncordon with our
//! annotation, the pods on a node, the Eviction API (429 → the blocking PDB), and the lock's
//! Lease with optimistic concurrency.
//!
//! Reading ([`KubeCluster`]: node status, pods, the Lease) and writing ([`KubeWriter`]:
//! cordon, uncordon, eviction, Lease create/update/delete) are two types; the writer is built
//! only from the write capability.

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::base::Writes;
use crate::config::KubernetesConfig;
use crate::model::recovery::EtcdSnapshot;
use crate::operations::upgrade::lock::{LEASE_NAME, LEASE_NAMESPACE};
use crate::operations::upgrade::world::{
    ClusterRead, ClusterWrite, DrainPod, Eviction, LeaseRecord, LeaseWrite, NodeStatus,
    newest_snapshot,
};
use crate::sources::kubernetes::convert::{self, CORDONED_BY_ANNOTATION};

/// A kube client that does not retry 429s by itself (a PDB-blocked eviction would hang).
pub async fn drain_client(cfg: &KubernetesConfig) -> Result<kube::Client> {
    let opts = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let mut config = if let Some(path) = &cfg.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .wrap_err_with(|| format!("cannot read kubeconfig {}", path.display()))?;
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .wrap_err_with(|| format!("kubeconfig {}", path.display()))?
    } else if cfg.context.is_some() {
        kube::Config::from_kubeconfig(&opts)
            .await
            .wrap_err("kubeconfig")?
    } else {
        kube::Config::infer()
            .await
            .wrap_err("no Kubernetes config found")?
    };
    config.connect_timeout = Some(Duration::from_secs(cfg.timeout_secs.max(1)));
    config.read_timeout = Some(Duration::from_secs(cfg.timeout_secs.max(1) * 3));
    config.default_retry = false;
    kube::Client::try_from(config).wrap_err("cannot create the Kubernetes client")
}

/// Kubernetes through kube-rs, read only: node status, the pods on a node, the Lease.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    /// Where Longhorn's objects are (`[kubernetes] longhorn_namespace`).
    longhorn_namespace: String,
}

impl KubeCluster {
    pub async fn new(cfg: &KubernetesConfig) -> Result<Self> {
        Ok(Self {
            client: drain_client(cfg).await?,
            longhorn_namespace: cfg.longhorn_namespace.clone(),
        })
    }

    /// On `client`, Longhorn in `longhorn-system` (see [`Self::with_longhorn_namespace`]).
    pub fn from_client(client: kube::Client) -> Self {
        Self {
            client,
            longhorn_namespace: "longhorn-system".into(),
        }
    }

    /// Longhorn's objects in `ns`.
    pub fn with_longhorn_namespace(mut self, ns: &str) -> Self {
        self.longhorn_namespace = ns.to_string();
        self
    }

    /// The client, to build a [`KubeWriter`] on the same connection.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), LEASE_NAMESPACE)
    }
}

/// Kubernetes through kube-rs, the writes: cordon, uncordon, eviction, the Lease. Only a
/// holder of [`Writes`] can build one.
#[derive(Clone)]
pub struct KubeWriter {
    client: kube::Client,
}

impl KubeWriter {
    pub fn new(_writes: &Writes, client: kube::Client) -> Self {
        Self { client }
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), LEASE_NAMESPACE)
    }

    /// The PodDisruptionBudget that selects `pod` (`namespace/name`) and its
    /// `status.disruptionsAllowed`.
    async fn pdb_for(&self, pod: &DrainPod) -> Option<(String, Option<i32>)> {
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &pod.namespace);
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items.iter().find_map(|p| {
            selects(p, pod).then(|| {
                (
                    format!(
                        "{}/{}",
                        pod.namespace,
                        p.metadata.name.clone().unwrap_or_default()
                    ),
                    p.status.as_ref().map(|s| s.disruptions_allowed),
                )
            })
        })
    }
}

/// Does PDB `p` select `pod` (by `matchLabels`; a selector with expressions is not matched)?
fn selects(p: &PodDisruptionBudget, pod: &DrainPod) -> bool {
    let Some(sel) = p.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let ml = sel.match_labels.clone().unwrap_or_default();
    let no_exprs = sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
    no_exprs && !ml.is_empty() && ml.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// The PodDisruptionBudgets a drain of `node` respects: those selecting a pod on it that the
/// drain evicts, each `namespace/name (disruptionsAllowed N; pods: a, b)`, sorted.
pub async fn drain_pdbs(client: &kube::Client, node: &str) -> Result<Vec<String>> {
    let pods = KubeCluster::from_client(client.clone())
        .pods_on(node)
        .await?;
    let evicted: Vec<DrainPod> = pods
        .into_iter()
        .filter(|p| !p.daemonset && !p.mirror)
        .collect();
    let api: Api<PodDisruptionBudget> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_err("list PodDisruptionBudgets", e))?;
    let mut out = Vec::new();
    for b in &list.items {
        let ns = b.metadata.namespace.clone().unwrap_or_default();
        let on: Vec<String> = evicted
            .iter()
            .filter(|p| p.namespace == ns && selects(b, p))
            .map(|p| p.name.clone())
            .collect();
        if on.is_empty() {
            continue;
        }
        let allowed = b
            .status
            .as_ref()
            .map_or("?".to_string(), |s| s.disruptions_allowed.to_string());
        out.push(format!(
            "{ns}/{} (disruptionsAllowed {allowed}; pods here: {})",
            b.metadata.name.clone().unwrap_or_default(),
            on.join(", ")
        ));
    }
    out.sort();
    Ok(out)
}

fn kube_err(what: &str, e: kube::Error) -> color_eyre::Report {
    eyre!("Kubernetes API: {what}: {e}")
}

fn lease_record(l: &Lease) -> LeaseRecord {
    let spec = l.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity.unwrap_or_default(),
        acquired: spec.acquire_time.map(|t| t.0),
        renewed: spec.renew_time.map(|t| t.0),
        duration_secs: spec.lease_duration_seconds.unwrap_or(0),
        resource_version: l.metadata.resource_version.clone(),
    }
}

fn lease_object(rec: &LeaseRecord) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            resource_version: rec.resource_version.clone(),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(rec.holder.clone()),
            acquire_time: rec.acquired.map(MicroTime),
            renew_time: rec.renewed.map(MicroTime),
            lease_duration_seconds: Some(rec.duration_secs),
            ..Default::default()
        }),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 412)
}

impl ClusterRead for KubeCluster {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let n = api
                .get(node)
                .await
                .map_err(|e| kube_err(&format!("get node {node}"), e))?;
            let info = convert::node(&n);
            let status = n.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            Ok(NodeStatus {
                ready: info.ready,
                unschedulable: info.unschedulable,
                cordoned_by: info.cordoned_by_run,
                kubelet_version: info.kubelet_version,
                boot_id: status
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.boot_id.clone())
                    .unwrap_or_default(),
                ready_changed: ready
                    .and_then(|c| c.last_transition_time.as_ref())
                    .map(|t| t.0),
                ready_heartbeat: ready
                    .and_then(|c| c.last_heartbeat_time.as_ref())
                    .map(|t| t.0),
            })
        })
    }

    fn pods_on<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Vec<DrainPod>>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::all(self.client.clone());
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            let list = api
                .list(&lp)
                .await
                .map_err(|e| kube_err(&format!("list pods on {node}"), e))?;
            Ok(list
                .items
                .iter()
                // Some servers ignore field selectors: filter here too.
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
                .map(drain_pod)
                .collect())
        })
    }

    fn get_lease(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>>> {
        Box::pin(async move {
            let l = self
                .leases()
                .get_opt(LEASE_NAME)
                .await
                .map_err(|e| kube_err("read the upgrade lock", e))?;
            Ok(l.as_ref().map(lease_record))
        })
    }

    fn etcd_snapshot_file<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<EtcdSnapshot>>> {
        Box::pin(async move {
            let api = crate::sources::kubernetes::etcd_snapshot_api(&self.client);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| kube_err("list ETCDSnapshotFiles (k3s.cattle.io/v1)", e))?;
            let all: Vec<EtcdSnapshot> = list
                .items
                .iter()
                .map(|o| convert::etcd_snapshot(&serde_json::to_value(o).unwrap_or_default()))
                .collect();
            Ok(newest_snapshot(&all, name))
        })
    }

    fn longhorn_settings(
        &self,
    ) -> BoxFuture<'_, Result<std::collections::BTreeMap<String, String>>> {
        Box::pin(async move {
            let ns = &self.longhorn_namespace;
            let list = crate::sources::kubernetes::longhorn_setting_api(&self.client, ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    kube_err(
                        &format!("list Longhorn settings (settings.longhorn.io in {ns})"),
                        e,
                    )
                })?;
            Ok(list
                .items
                .iter()
                .map(|o| convert::setting(&serde_json::to_value(o).unwrap_or_default()))
                .collect())
        })
    }

    fn longhorn_rebuilds(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::model::cluster::ReplicaRebuild>>> {
        Box::pin(async move {
            let ns = &self.longhorn_namespace;
            let list = crate::sources::kubernetes::longhorn_engine_api(&self.client, ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    kube_err(
                        &format!("list Longhorn engines (engines.longhorn.io in {ns})"),
                        e,
                    )
                })?;
            Ok(list
                .items
                .iter()
                .flat_map(|o| {
                    convert::engine_rebuilds(&serde_json::to_value(o).unwrap_or_default())
                })
                .collect())
        })
    }
}

impl ClusterWrite for KubeWriter {
    fn cordon<'a>(&'a self, node: &'a str, run_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = serde_json::json!({
                "metadata": {"annotations": {CORDONED_BY_ANNOTATION: run_id}},
                "spec": {"unschedulable": true}
            });
            api.patch(node, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(|e| kube_err(&format!("cordon {node}"), e))?;
            Ok(())
        })
    }

    fn uncordon<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = serde_json::json!({
                "metadata": {"annotations": {CORDONED_BY_ANNOTATION: null}},
                "spec": {"unschedulable": false}
            });
            api.patch(node, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(|e| kube_err(&format!("uncordon {node}"), e))?;
            Ok(())
        })
    }

    fn evict<'a>(
        &'a self,
        pod: &'a DrainPod,
        grace_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Eviction>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            let mut body = serde_json::json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod.name, "namespace": pod.namespace},
            });
            if let Some(g) = grace_secs {
                body["deleteOptions"] = serde_json::json!({"gracePeriodSeconds": g});
            }
            let r: std::result::Result<serde_json::Value, kube::Error> = api
                .create_subresource("eviction", &pod.name, &PostParams::default(), &body)
                .await;
            match r {
                Ok(_) => Ok(Eviction::Accepted),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Eviction::Gone),
                Err(kube::Error::Api(s)) if s.code == 429 => {
                    let found = self.pdb_for(pod).await;
                    let allowed = found
                        .as_ref()
                        .and_then(|(_, a)| *a)
                        .map(|a| format!("disruptionsAllowed {a}: "))
                        .unwrap_or_default();
                    Ok(Eviction::Blocked {
                        pdb: found.map(|(name, _)| name),
                        message: format!("{allowed}{}", s.message),
                    })
                }
                Err(e) => Err(kube_err(&format!("evict {}", pod.key()), e)),
            }
        })
    }

    fn create_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let mut obj = lease_object(rec);
            obj.metadata.resource_version = None;
            match self.leases().create(&PostParams::default(), &obj).await {
                Ok(_) => Ok(LeaseWrite::Done),
                Err(e) if is_conflict(&e) => Ok(LeaseWrite::Conflict),
                Err(e) => Err(kube_err("create the upgrade lock", e)),
            }
        })
    }

    fn update_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let obj = lease_object(rec);
            match self
                .leases()
                .replace(LEASE_NAME, &PostParams::default(), &obj)
                .await
            {
                Ok(_) => Ok(LeaseWrite::Done),
                Err(e) if is_conflict(&e) => Ok(LeaseWrite::Conflict),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(LeaseWrite::Conflict),
                Err(e) => Err(kube_err("renew the upgrade lock", e)),
            }
        })
    }

    fn delete_lease<'a>(&'a self, rec: &'a LeaseRecord) -> BoxFuture<'a, Result<LeaseWrite>> {
        Box::pin(async move {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: rec.resource_version.clone(),
                    uid: None,
                }),
                ..Default::default()
            };
            match self.leases().delete(LEASE_NAME, &dp).await {
                Ok(_) => Ok(LeaseWrite::Done),
                Err(e) if is_conflict(&e) => Ok(LeaseWrite::Conflict),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(LeaseWrite::Done),
                Err(e) => Err(kube_err("release the upgrade lock", e)),
            }
        })
    }
}

/// A pod as the drain sees it.
pub fn drain_pod(p: &Pod) -> DrainPod {
    let row = convert::pod(p);
    let meta = &p.metadata;
    let mirror = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
        || row.owner_kind == "Node";
    let uses_empty_dir = p
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()));
    DrainPod {
        namespace: row.namespace,
        name: row.name,
        // Longhorn's instance managers are pinned to their node like DaemonSet pods: evicted,
        // they come straight back; Longhorn guards its volumes itself (and so do our guards).
        daemonset: row.owner_kind == "DaemonSet" || row.owner_kind == "InstanceManager",
        mirror,
        uses_empty_dir,
        deleting: row.deleting,
        labels: meta.labels.clone().unwrap_or_default(),
    }
}
