//! The real world: Kubernetes through kube-rs (cordon, Eviction API, the Lease), hosts over
//! SSH (or a local child process for `switch = "local"`), health from the same sources as the
//! dashboard (`kubernetes::poll_once`, `etcd::poll_once`, firing alerts from Mimir).

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::lock::{LEASE_NAME, LEASE_NAMESPACE};
use super::world::{
    Alert, AutoUpgrade, BootState, ClusterOps, CommandSpec, DrainPod, Eviction, GateResult,
    HealthInputs, HealthProvider, HostOps, LeaseRecord, LeaseWrite, NodeStatus, SystemClock, World,
};
use crate::base::Env;
use crate::config::{KubernetesConfig, MimirConfig};
use crate::inventory::{Host, Inventory};
use crate::model::host::{BootFiles, HostFacts};
use crate::sources::kubernetes::convert::{self, CORDONED_BY_ANNOTATION};
use crate::sources::ssh::{HostsClient, OutputChunk};

/// The real world for a command context.
pub async fn world(env: &Env) -> Result<World> {
    let cluster = Arc::new(KubeCluster::new(&env.config.kubernetes).await?);
    let ssh = Arc::new(
        HostsClient::new(&env.config.ssh, &env.inventory)
            .wrap_err("cannot set up SSH to the hosts")?,
    );
    let hosts = Arc::new(SshHosts::new(ssh));
    let health = Arc::new(LiveHealth {
        kubernetes: env.config.kubernetes.clone(),
        etcd: env.config.etcd.clone(),
        mimir: env.config.mimir.clone(),
        inventory: env.inventory.clone(),
    });
    Ok(World {
        cluster,
        hosts,
        health,
        clock: Arc::new(SystemClock),
    })
}

/// Where run journals go: `[upgrade] journal_dir`, else `$XDG_STATE_HOME/homeinfra-tui/runs`.
pub fn journal_dir(cfg: &crate::config::UpgradeConfig) -> Result<std::path::PathBuf> {
    cfg.journal_dir
        .clone()
        .or_else(super::journal::default_dir)
        .ok_or_else(|| {
            eyre!("no journal directory: set [upgrade] journal_dir, XDG_STATE_HOME or HOME")
        })
}

/// A new run's plan: the flake from `[upgrade] flake` (or `[nix] flake`), the order from the
/// inventory, `[upgrade] order` and `only`, the etcd leader (from `world`) last.
pub async fn new_plan(
    env: &Env,
    world: &super::world::World,
    only: &[String],
) -> Result<super::Plan> {
    let flake = env
        .config
        .upgrade
        .flake
        .clone()
        .or_else(|| env.config.nix.flake.clone())
        .ok_or_else(|| {
            eyre!("no flake to build: set [upgrade] flake (or [nix] flake) in the config")
        })?;
    let health = world.health.gather(&[]).await;
    let etcd = health.etcd.and_then(|r| r.ok());
    super::plan(
        &env.inventory,
        etcd.as_ref(),
        &env.config.upgrade.order,
        only,
        &flake,
        &super::new_run_id(),
    )
}

/// Cordon `node` for the TUI's `c` key: `spec.unschedulable = true` (strategic-merge patch)
/// and the `homeinfra-tui/cordoned-by: <run_id>` annotation — the engine's own cordon step.
/// For a manual cordon pass e.g. [`manual_run_id`].
pub async fn cordon(client: &kube::Client, node: &str, run_id: &str) -> Result<()> {
    KubeCluster::from_client(client.clone())
        .cordon(node, run_id)
        .await
}

/// Uncordon `node` and drop our annotation (the TUI's `c` key on a cordoned node).
pub async fn uncordon(client: &kube::Client, node: &str) -> Result<()> {
    KubeCluster::from_client(client.clone())
        .uncordon(node)
        .await
}

/// The run id recorded for a cordon by hand: `manual-<user>@<machine>`.
pub fn manual_run_id() -> String {
    let holder = super::lock::holder_identity("x");
    let who = holder.split(' ').next().unwrap_or("unknown");
    format!("manual-{who}")
}

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

/// Kubernetes through kube-rs.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
}

impl KubeCluster {
    pub async fn new(cfg: &KubernetesConfig) -> Result<Self> {
        Ok(Self {
            client: drain_client(cfg).await?,
        })
    }

    pub fn from_client(client: kube::Client) -> Self {
        Self { client }
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), LEASE_NAMESPACE)
    }

    async fn pdb_for(&self, pod: &DrainPod) -> Option<String> {
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &pod.namespace);
        let list = api.list(&ListParams::default()).await.ok()?;
        list.items.iter().find_map(|p| {
            let sel = p.spec.as_ref()?.selector.as_ref()?;
            let ml = sel.match_labels.clone().unwrap_or_default();
            let matches_exprs = sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
            (matches_exprs
                && !ml.is_empty()
                && ml.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
            .then(|| {
                format!(
                    "{}/{}",
                    pod.namespace,
                    p.metadata.name.clone().unwrap_or_default()
                )
            })
        })
    }
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

impl ClusterOps for KubeCluster {
    fn node<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<NodeStatus>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let n = api
                .get(node)
                .await
                .map_err(|e| kube_err(&format!("get node {node}"), e))?;
            let info = convert::node(&n);
            Ok(NodeStatus {
                ready: info.ready,
                unschedulable: info.unschedulable,
                cordoned_by: info.cordoned_by_run,
                kubelet_version: info.kubelet_version,
            })
        })
    }

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
                Err(kube::Error::Api(s)) if s.code == 429 => Ok(Eviction::Blocked {
                    pdb: self.pdb_for(pod).await,
                    message: s.message.clone(),
                }),
                Err(e) => Err(kube_err(&format!("evict {}", pod.key()), e)),
            }
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

/// Hosts over SSH; local child processes for `CommandSpec::Local`.
pub struct SshHosts {
    ssh: Arc<HostsClient>,
    /// Timeout of the short probes (reachable, boot state).
    probe_timeout: Duration,
}

impl SshHosts {
    pub fn new(ssh: Arc<HostsClient>) -> Self {
        Self {
            ssh,
            probe_timeout: Duration::from_secs(10),
        }
    }

    async fn run_text(&self, host: &Host, command: &str) -> Result<String> {
        let out = tokio::time::timeout(self.probe_timeout, self.ssh.run(&host.id, command))
            .await
            .map_err(|_| eyre!("{}: `{command}` timed out", host.id))?
            .map_err(|e| eyre!("{}: {e}", host.id))?;
        if !out.success() {
            return Err(eyre!(
                "{}: `{command}` exited with {:?}: {}",
                host.id,
                out.exit_status,
                out.stderr_lossy().trim()
            ));
        }
        Ok(out.stdout_lossy())
    }
}

/// Split chunks into lines (a partial last line is kept until more arrives).
#[derive(Default)]
struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8], out: &mpsc::UnboundedSender<String>) {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line);
            let _ = out.send(text.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    fn finish(&mut self, out: &mpsc::UnboundedSender<String>) {
        if !self.buf.is_empty() {
            let _ = out.send(String::from_utf8_lossy(&self.buf).trim_end().to_string());
            self.buf.clear();
        }
    }
}

/// Run a command here (`sh -c`), streaming its lines; killed on timeout.
pub async fn exec_local(
    command: &str,
    timeout: Duration,
    lines: mpsc::UnboundedSender<String>,
) -> Result<Option<u32>> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .wrap_err_with(|| format!("cannot run `{command}`"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                tx: mpsc::UnboundedSender<String>| async move {
        if let Some(r) = r {
            let mut l = BufReader::new(r).lines();
            while let Ok(Some(line)) = l.next_line().await {
                let _ = tx.send(line);
            }
        }
    };
    let a = pump(
        stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        lines.clone(),
    );
    let b = pump(
        stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        lines,
    );
    let all = async {
        let (_, _, status) = tokio::join!(a, b, child.wait());
        status
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(status) => {
            let status = status.wrap_err_with(|| format!("`{command}` did not finish"))?;
            Ok(status.code().and_then(|c| u32::try_from(c).ok()))
        }
        Err(_) => Err(eyre!("`{command}` timed out after {}s", timeout.as_secs())),
    }
}

/// The boot-state probe: `key=path` lines.
pub const BOOT_STATE_COMMAND: &str = "for f in kernel initrd kernel-modules; do \
echo \"booted_$f=$(readlink -f /run/booted-system/$f 2>/dev/null)\"; \
echo \"current_$f=$(readlink -f /run/current-system/$f 2>/dev/null)\"; done; \
echo \"booted=$(readlink -f /run/booted-system 2>/dev/null)\"; \
echo \"current=$(readlink -f /run/current-system 2>/dev/null)\"";

/// Parse the boot-state probe's output.
pub fn parse_boot_state(text: &str) -> BootState {
    let kv: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| kv.get(k).filter(|v| !v.is_empty()).map(|v| v.to_string());
    let mut facts = HostFacts {
        booted_system: get("booted"),
        current_system: get("current"),
        booted_boot: BootFiles {
            kernel: get("booted_kernel"),
            initrd: get("booted_initrd"),
            kernel_modules: get("booted_kernel-modules"),
        },
        current_boot: BootFiles {
            kernel: get("current_kernel"),
            initrd: get("current_initrd"),
            kernel_modules: get("current_kernel-modules"),
        },
        ..Default::default()
    };
    facts.compute_reboot_needed();
    BootState {
        booted_system: facts.booted_system,
        current_system: facts.current_system,
        reboot_needed: facts.reboot_needed,
        reasons: facts.reboot_reasons,
    }
}

/// The auto-upgrade probe.
pub const AUTO_UPGRADE_COMMAND: &str = "echo \"active=$(systemctl is-active nixos-upgrade.service 2>/dev/null)\"; \
echo \"load=$(systemctl show -p LoadState --value nixos-upgrade.timer 2>/dev/null)\"; \
echo \"next=$(systemctl show --timestamp=unix -p NextElapseUSecRealtime --value nixos-upgrade.timer 2>/dev/null)\"";

/// Parse the auto-upgrade probe's output.
pub fn parse_auto_upgrade(text: &str) -> AutoUpgrade {
    let kv: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let active = kv.get("active").copied().unwrap_or("");
    AutoUpgrade {
        running: match active {
            "active" | "activating" | "reloading" => Some(true),
            "" => None,
            _ => Some(false),
        },
        next_run: kv
            .get("next")
            .and_then(|v| v.strip_prefix('@'))
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|s| Timestamp::from_second(s).ok()),
        timer_present: kv.get("load").is_some_and(|v| *v == "loaded"),
    }
}

impl HostOps for SshHosts {
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move {
            match command {
                CommandSpec::Local(c) => exec_local(c, timeout, lines).await,
                CommandSpec::Remote(c) => {
                    let (ctx, mut crx) = mpsc::unbounded_channel::<OutputChunk>();
                    let splitter = async move {
                        let mut out = LineSplitter::default();
                        let mut err = LineSplitter::default();
                        while let Some(chunk) = crx.recv().await {
                            match chunk {
                                OutputChunk::Stdout(d) => out.push(&d, &lines),
                                OutputChunk::Stderr(d) => err.push(&d, &lines),
                            }
                        }
                        out.finish(&lines);
                        err.finish(&lines);
                    };
                    let run = async {
                        let r = self.ssh.run_streaming(&host.id, c, timeout, ctx).await;
                        r.map_err(|e| eyre!("{}: {e}", host.id))
                    };
                    let (r, ()) = tokio::join!(run, splitter);
                    Ok(r?.exit_status)
                }
            }
        })
    }

    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>> {
        Box::pin(async move {
            let text = self.run_text(host, BOOT_STATE_COMMAND).await?;
            Ok(parse_boot_state(&text))
        })
    }

    fn reboot<'a>(&'a self, host: &'a Host, command: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match tokio::time::timeout(self.probe_timeout, self.ssh.run(&host.id, command)).await {
                // The connection may drop, or the command be cut short: the reboot is under way.
                Err(_) | Ok(Err(_)) => Ok(()),
                Ok(Ok(out)) if out.success() || out.exit_status.is_none() => Ok(()),
                Ok(Ok(out)) => Err(eyre!(
                    "{}: `{command}` exited with {:?}: {}",
                    host.id,
                    out.exit_status,
                    out.stderr_lossy().trim()
                )),
            }
        })
    }

    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.run_text(host, "true").await.is_ok() })
    }

    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>> {
        Box::pin(async move {
            let text = self.run_text(host, AUTO_UPGRADE_COMMAND).await?;
            Ok(parse_auto_upgrade(&text))
        })
    }

    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let text = self
                .run_text(host, "k3s --version 2>/dev/null | head -n1 || true")
                .await?;
            // `k3s version v1.30.4+k3s1 (abcdef)`
            Ok(text
                .split_whitespace()
                .find(|w| w.starts_with('v') && w.contains('.'))
                .map(str::to_string))
        })
    }
}

/// The same sources as the dashboard.
pub struct LiveHealth {
    pub kubernetes: KubernetesConfig,
    pub etcd: crate::config::EtcdConfig,
    pub mimir: MimirConfig,
    pub inventory: Inventory,
}

impl LiveHealth {
    fn prometheus(&self) -> Option<Result<prometheus_http_query::Client, String>> {
        let url = self.mimir.url.as_deref()?.trim_end_matches('/');
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.mimir.tenant
            && let Ok(v) = reqwest::header::HeaderValue::from_str(t)
        {
            headers.insert("X-Scope-OrgID", v);
        }
        if let Some(f) = &self.mimir.auth.bearer_token_file {
            match std::fs::read_to_string(f) {
                Ok(tok) => {
                    if let Ok(v) =
                        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", tok.trim()))
                    {
                        headers.insert(reqwest::header::AUTHORIZATION, v);
                    }
                }
                Err(e) => {
                    return Some(Err(format!(
                        "cannot read the bearer token file {}: {e}",
                        f.display()
                    )));
                }
            }
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(self.mimir.timeout_secs.max(1)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        Some(client.and_then(|c| {
            prometheus_http_query::Client::from(c, url).map_err(|e| format!("{url}: {e}"))
        }))
    }
}

async fn series(
    client: &prometheus_http_query::Client,
    q: &str,
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let r = client.query(q).get().await.map_err(|e| e.to_string())?;
    Ok(match r.data() {
        prometheus_http_query::response::Data::Vector(v) => v
            .iter()
            .map(|s| s.metric().clone().into_iter().collect())
            .collect(),
        prometheus_http_query::response::Data::Matrix(m) => m
            .iter()
            .map(|s| s.metric().clone().into_iter().collect())
            .collect(),
        prometheus_http_query::response::Data::Scalar(_) => vec![BTreeMap::new()],
    })
}

impl HealthProvider for LiveHealth {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            let cluster = crate::sources::kubernetes::poll_once(&self.kubernetes);
            let etcd = async {
                if !self.etcd.enabled || self.inventory.control_planes().next().is_none() {
                    return None;
                }
                Some(crate::sources::etcd::poll_once(&self.etcd, &self.inventory).await)
            };
            let prom = self.prometheus();
            let metrics = async {
                match prom {
                    None => (None, Vec::new()),
                    Some(Err(e)) => (
                        Some(Err(e.clone())),
                        gates
                            .iter()
                            .map(|q| GateResult {
                                query: q.clone(),
                                series: Err(e.clone()),
                            })
                            .collect(),
                    ),
                    Some(Ok(c)) => {
                        let alerts = series(&c, "ALERTS{alertstate=\"firing\"}").await.map(|v| {
                            v.into_iter()
                                .map(|m| Alert {
                                    name: m.get("alertname").cloned().unwrap_or_default(),
                                    severity: m.get("severity").cloned().unwrap_or_default(),
                                    subject: ["instance", "node", "namespace", "job"]
                                        .iter()
                                        .find_map(|k| m.get(*k).cloned())
                                        .unwrap_or_default(),
                                })
                                .collect()
                        });
                        let mut g = Vec::new();
                        for q in gates {
                            g.push(GateResult {
                                query: q.clone(),
                                series: series(&c, q).await.map(|v| v.len()),
                            });
                        }
                        (Some(alerts), g)
                    }
                }
            };
            let (cluster, etcd, (alerts, gates)) = tokio::join!(cluster, etcd, metrics);
            HealthInputs {
                cluster,
                etcd,
                alerts,
                gates,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_state_parses() {
        let b = parse_boot_state(
            "booted_kernel=/nix/store/a-linux/bzImage\ncurrent_kernel=/nix/store/b-linux/bzImage\n\
             booted_initrd=/i\ncurrent_initrd=/i\nbooted_kernel-modules=/m\ncurrent_kernel-modules=/m\n\
             booted=/nix/store/s1\ncurrent=/nix/store/s2\n",
        );
        assert_eq!(b.reboot_needed, Some(true));
        assert_eq!(b.reasons, ["kernel"]);
        let b = parse_boot_state("booted=\ncurrent=\n");
        assert_eq!(b.reboot_needed, None);
    }

    #[test]
    fn auto_upgrade_parses() {
        let a = parse_auto_upgrade("active=inactive\nload=loaded\nnext=@1800000000\n");
        assert_eq!(a.running, Some(false));
        assert!(a.timer_present);
        assert_eq!(a.next_run, Timestamp::from_second(1_800_000_000).ok());
        let a = parse_auto_upgrade("active=activating\nload=not-found\nnext=\n");
        assert_eq!(
            (a.running, a.next_run, a.timer_present),
            (Some(true), None, false)
        );
    }

    #[tokio::test]
    async fn local_exec_streams_lines_and_exit_status() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let code = exec_local(
            "echo one; echo two >&2; exit 3",
            Duration::from_secs(10),
            tx,
        )
        .await
        .unwrap();
        assert_eq!(code, Some(3));
        let mut got = Vec::new();
        while let Ok(l) = rx.try_recv() {
            got.push(l);
        }
        got.sort();
        assert_eq!(got, ["one", "two"]);
    }
}
