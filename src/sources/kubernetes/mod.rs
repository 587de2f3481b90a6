//! Kubernetes and Longhorn through kube-rs watchers (never periodic LISTs): nodes, pods, PDBs
//! and the Longhorn CRDs, shrunk to compact rows on arrival, merged into one `ClusterState`
//! and sent coalesced (at most every 250 ms) to the inbox.

pub mod convert;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::{Update, UpdateTx};
use crate::config::KubernetesConfig;
use crate::model::cluster::{
    ClusterState, LONGHORN_VERSION, LonghornApi, LonghornError, LonghornState,
};

/// The kinds we keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Node,
    Pod,
    Pdb,
    Volume,
    Replica,
    LonghornNode,
    Backup,
    BackupTarget,
    RecurringJob,
    Setting,
    /// A volume's engine (its replicas' rebuild progress).
    Engine,
    /// k3s's `ETCDSnapshotFile` (cluster-scoped).
    EtcdSnapshot,
    /// cert-manager's `Certificate`.
    Certificate,
}

impl Kind {
    fn is_longhorn(self) -> bool {
        !matches!(
            self,
            Kind::Node | Kind::Pod | Kind::Pdb | Kind::EtcdSnapshot | Kind::Certificate
        )
    }

    /// A custom resource that may not be installed (its 404 means "not there").
    fn optional(self) -> bool {
        self.is_longhorn() || matches!(self, Kind::EtcdSnapshot | Kind::Certificate)
    }

    fn longhorn_plural(self) -> (&'static str, &'static str) {
        match self {
            Kind::Volume => ("Volume", "volumes"),
            Kind::Replica => ("Replica", "replicas"),
            Kind::LonghornNode => ("Node", "nodes"),
            Kind::Backup => ("Backup", "backups"),
            Kind::BackupTarget => ("BackupTarget", "backuptargets"),
            Kind::RecurringJob => ("RecurringJob", "recurringjobs"),
            Kind::Setting => ("Setting", "settings"),
            Kind::Engine => ("Engine", "engines"),
            _ => ("", ""),
        }
    }
}

const LONGHORN_KINDS: &[Kind] = &[
    Kind::Volume,
    Kind::Replica,
    Kind::LonghornNode,
    Kind::Backup,
    Kind::BackupTarget,
    Kind::RecurringJob,
    Kind::Setting,
    Kind::Engine,
];

/// A compact row of any kind.
#[derive(Debug, Clone)]
enum Row {
    Node(crate::model::cluster::NodeInfo),
    Pod(crate::model::cluster::PodRow),
    Pdb(crate::model::cluster::PdbInfo),
    Volume(crate::model::cluster::Volume),
    Replica(crate::model::cluster::Replica),
    LonghornNode(crate::model::cluster::LonghornNode),
    Backup(crate::model::cluster::Backup),
    BackupTarget(crate::model::cluster::BackupTarget),
    RecurringJob(crate::model::cluster::RecurringJob),
    Setting(String, String),
    /// An engine's replicas being rebuilt.
    Engine(Vec<crate::model::cluster::ReplicaRebuild>),
    EtcdSnapshot(crate::model::recovery::EtcdSnapshot),
    Certificate(crate::model::recovery::ManagedCertificate),
}

/// The recovery kinds: k3s's etcd snapshot records and cert-manager's certificates.
const RECOVERY_KINDS: &[Kind] = &[Kind::EtcdSnapshot, Kind::Certificate];

fn recovery_api(client: &Client, kind: Kind) -> Api<DynamicObject> {
    let (group, version, k, plural) = match kind {
        Kind::EtcdSnapshot => (
            "k3s.cattle.io",
            "v1",
            "ETCDSnapshotFile",
            "etcdsnapshotfiles",
        ),
        _ => ("cert-manager.io", "v1", "Certificate", "certificates"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: k.into(),
        plural: plural.into(),
    };
    Api::all_with(client.clone(), &ar)
}

/// k3s's `ETCDSnapshotFile` resource (`k3s.cattle.io/v1`, cluster-scoped), for the upgrade's
/// pre-upgrade snapshot.
pub fn etcd_snapshot_api(client: &Client) -> Api<DynamicObject> {
    recovery_api(client, Kind::EtcdSnapshot)
}

fn recovery_row(kind: Kind) -> impl Fn(DynamicObject) -> Row + Send + Sync + 'static {
    move |o: DynamicObject| {
        let v = dyn_value(o);
        match kind {
            Kind::EtcdSnapshot => Row::EtcdSnapshot(convert::etcd_snapshot(&v)),
            _ => Row::Certificate(convert::managed_certificate(&v)),
        }
    }
}

fn longhorn_row(kind: Kind, v: &serde_json::Value) -> Row {
    match kind {
        Kind::Volume => Row::Volume(convert::volume(v)),
        Kind::Replica => Row::Replica(convert::replica(v)),
        Kind::LonghornNode => Row::LonghornNode(convert::longhorn_node(v)),
        Kind::Backup => Row::Backup(convert::backup(v)),
        Kind::BackupTarget => Row::BackupTarget(convert::backup_target(v)),
        Kind::RecurringJob => Row::RecurringJob(convert::recurring_job(v)),
        Kind::Engine => Row::Engine(convert::engine_rebuilds(v)),
        _ => {
            let (k, v) = convert::setting(v);
            Row::Setting(k, v)
        }
    }
}

// Rows are moved through a channel one at a time: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Change {
    Reset(Kind, Vec<(String, Row)>),
    Upsert(Kind, String, Row),
    Delete(Kind, String),
    Error(Kind, String, bool),
}

/// Build a client as kubectl would: an explicit kubeconfig file, else `KUBECONFIG` (several
/// files) or `~/.kube/config`, else in-cluster; `context` picks a context.
pub async fn client(cfg: &KubernetesConfig) -> Result<Client, String> {
    let opts = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let mut config = if let Some(path) = &cfg.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
    } else if cfg.context.is_some() {
        kube::Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| format!("kubeconfig: {e}"))?
    } else {
        kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes config found: {e}"))?
    };
    config.connect_timeout = Some(Duration::from_secs(cfg.timeout_secs.max(1)));
    build_client(config).map_err(|e| format!("cannot create Kubernetes client: {e}"))
}

/// At most this much is read from a connection at a time (hyper's default lets a connection's
/// read buffer grow to 400 KiB).
const READ_BUF_MAX: usize = 64 * 1024;

/// kube's own client stack (`Client::try_from(config)`: TLS from the kubeconfig, its timeouts,
/// retries, credentials and headers) but for the read buffer: hyper grows a connection's buffer
/// on a big LIST page and keeps it for the connection's life, so the dozen watches held about
/// 5 MiB of empty buffers while nothing was read. Here each read takes at most
/// [`READ_BUF_MAX`]. kube's HTTP tracing spans are left out.
fn build_client(config: kube::Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt as _;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let mut connector =
        hyper_timeout::TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .http1_max_buf_size(READ_BUF_MAX)
            .build(connector);
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

fn key_of<K: Resource>(o: &K) -> String {
    let m = o.meta();
    match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name.clone().unwrap_or_default()),
        None => m.name.clone().unwrap_or_default(),
    }
}

fn is_not_found(e: &watcher::Error) -> bool {
    let s = e.to_string();
    s.contains("404") || s.contains("NotFound") || s.contains("not found")
}

/// How a watcher's stream ended.
enum Ended {
    /// The receiver went away: stop.
    Closed,
    /// An error (sent as a change); whether a full list had been delivered before it.
    Failed { listed: bool },
}

/// Forward a watcher's events, shrunk, as changes, until the first error.
async fn forward<K, S, F>(kind: Kind, stream: S, conv: &F, tx: &mpsc::Sender<Change>) -> Ended
where
    K: Resource + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    F: Fn(K) -> Row,
{
    let mut listed = false;
    futures::pin_mut!(stream);
    let mut buffer: Vec<(String, Row)> = Vec::new();
    while let Some(ev) = stream.next().await {
        let change = match ev {
            Ok(watcher::Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                buffer.push((key_of(&o), conv(o)));
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                listed = true;
                Change::Reset(kind, std::mem::take(&mut buffer))
            }
            Ok(watcher::Event::Apply(o)) => {
                let key = key_of(&o);
                Change::Upsert(kind, key, conv(o))
            }
            Ok(watcher::Event::Delete(o)) => Change::Delete(kind, key_of(&o)),
            Err(e) => {
                let nf = is_not_found(&e);
                if tx
                    .send(Change::Error(kind, e.to_string(), nf))
                    .await
                    .is_err()
                {
                    return Ended::Closed;
                }
                return Ended::Failed { listed };
            }
        };
        if tx.send(change).await.is_err() {
            return Ended::Closed;
        }
    }
    Ended::Failed { listed }
}

fn spawn_watch<K, F>(
    api: Api<K>,
    kind: Kind,
    conv: F,
    tx: mpsc::Sender<Change>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    F: Fn(K) -> Row + Send + Sync + 'static,
{
    // After an error the watcher starts over with a fresh list (after a backoff): a watch
    // that resumed quietly would never say it is well again, so the kind's error would stay.
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let stream = watcher(api.clone(), watcher::Config::default());
            match forward(kind, stream, &conv, &tx).await {
                Ended::Closed => return,
                Ended::Failed { listed } => {
                    if listed {
                        backoff = Duration::from_secs(1);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    })
}

fn longhorn_api(client: &Client, ns: &str, kind: Kind) -> Api<DynamicObject> {
    let (k, plural) = kind.longhorn_plural();
    let ar = ApiResource {
        group: "longhorn.io".into(),
        version: LONGHORN_VERSION.into(),
        api_version: format!("longhorn.io/{LONGHORN_VERSION}"),
        kind: k.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Longhorn's `Engine` kind in namespace `ns` (the rebuild progress of the upgrade's wait).
pub fn longhorn_engine_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    longhorn_api(client, ns, Kind::Engine)
}

/// Longhorn's `Setting` kind in namespace `ns` (the upgrade plan's storage notes).
pub fn longhorn_setting_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    longhorn_api(client, ns, Kind::Setting)
}

/// A dynamic object as the JSON the converters read (`metadata`, `spec`, `status`, …), built
/// from its parts instead of serialising the whole object again.
fn dyn_value(o: DynamicObject) -> serde_json::Value {
    let mut map = match o.data {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    map.insert(
        "metadata".into(),
        serde_json::to_value(o.metadata).unwrap_or_default(),
    );
    serde_json::Value::Object(map)
}

fn dyn_row(kind: Kind) -> impl Fn(DynamicObject) -> Row + Send + Sync + 'static {
    move |o: DynamicObject| {
        let v = dyn_value(o);
        longhorn_row(kind, &v)
    }
}

/// What the API server serves of `longhorn.io` (its API discovery): the Longhorn CRDs are
/// installed or not, whatever one kind answers.
pub async fn discover_longhorn(client: &Client) -> LonghornApi {
    match client.list_api_groups().await {
        Ok(list) => match list.groups.iter().find(|g| g.name == "longhorn.io") {
            Some(g) => LonghornApi::Served {
                versions: g.versions.iter().map(|v| v.version.clone()).collect(),
            },
            None => LonghornApi::NotServed,
        },
        Err(e) => LonghornApi::Error {
            message: format!("Kubernetes API discovery (/apis) failed: {e}"),
        },
    }
}

/// Everything known so far, by kind and key.
#[derive(Default)]
struct Store {
    rows: BTreeMap<Kind, BTreeMap<String, Row>>,
    /// The pods, apart from [`Store::rows`]: by far the most rows, kept in the order of their
    /// `namespace/name` key as the one list the state shares (sending a state clones no pod).
    pods: Arc<Vec<crate::model::cluster::PodRow>>,
    /// Longhorn kinds that answered 404 (their plural).
    longhorn_missing: std::collections::BTreeSet<&'static str>,
    longhorn_api: LonghornApi,
    longhorn_namespace: String,
    /// Optional kinds whose resource is not served (404).
    missing: std::collections::BTreeSet<Kind>,
    server_version: Option<String>,
    /// Longhorn's own failures, by kind (a watch or a list failed, not with 404): Longhorn is
    /// its own source beside the nodes and pods.
    longhorn_errors: BTreeMap<Kind, String>,
    /// The liveness probe's Longhorn request failed: why.
    longhorn_probe: Option<String>,
    /// Since when Longhorn has been failing (kept while any failure lasts).
    longhorn_since: Option<jiff::Timestamp>,
}

/// `p`'s `namespace/name` key against `key`, without building the key.
fn pod_key_cmp(p: &crate::model::cluster::PodRow, key: &str) -> std::cmp::Ordering {
    let sep: &[u8] = if p.namespace.is_empty() { b"" } else { b"/" };
    p.namespace
        .bytes()
        .chain(sep.iter().copied())
        .chain(p.name.bytes())
        .cmp(key.bytes())
}

impl Store {
    fn apply(&mut self, c: Change) {
        match c {
            Change::Reset(Kind::Pod, rows) => {
                let mut rows: Vec<(String, Row)> = rows;
                // A key listed twice keeps its last row, as a map would: reversed, then a
                // stable sort puts it first among its equals, and dedup keeps the first.
                rows.reverse();
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows.dedup_by(|b, a| a.0 == b.0);
                self.pods = Arc::new(
                    rows.into_iter()
                        .filter_map(|(_, r)| match r {
                            Row::Pod(p) => Some(p),
                            _ => None,
                        })
                        .collect(),
                );
            }
            Change::Upsert(Kind::Pod, key, Row::Pod(p)) => {
                let pods = Arc::make_mut(&mut self.pods);
                match pods.binary_search_by(|q| pod_key_cmp(q, &key)) {
                    Ok(i) => pods[i] = p,
                    Err(i) => pods.insert(i, p),
                }
            }
            Change::Delete(Kind::Pod, key) => {
                if let Ok(i) = self.pods.binary_search_by(|q| pod_key_cmp(q, &key)) {
                    Arc::make_mut(&mut self.pods).remove(i);
                }
            }
            Change::Reset(k, rows) => {
                self.missing.remove(&k);
                self.rows.insert(k, rows.into_iter().collect());
                if k.is_longhorn() {
                    self.longhorn_missing.remove(k.longhorn_plural().1);
                }
            }
            Change::Upsert(k, key, row) => {
                self.rows.entry(k).or_default().insert(key, row);
            }
            Change::Delete(k, key) => {
                self.rows.entry(k).or_default().remove(&key);
            }
            Change::Error(..) => {}
        }
    }

    /// Longhorn's failure as the state says it: the probe's first, else the first kind's.
    fn longhorn_error(&self) -> Option<LonghornError> {
        let message = self
            .longhorn_probe
            .clone()
            .or_else(|| self.longhorn_errors.values().next().cloned())?;
        Some(LonghornError {
            since: self.longhorn_since.unwrap_or_else(jiff::Timestamp::now),
            message,
        })
    }

    /// Keep [`Store::longhorn_since`] in step with the failures (call after each change).
    fn longhorn_failing_since(&mut self, now: jiff::Timestamp) {
        let failing = self.longhorn_probe.is_some() || !self.longhorn_errors.is_empty();
        match (failing, self.longhorn_since) {
            (true, None) => self.longhorn_since = Some(now),
            (false, Some(_)) => self.longhorn_since = None,
            _ => {}
        }
    }

    fn state(&self) -> ClusterState {
        let mut st = ClusterState {
            server_version: self.server_version.clone(),
            longhorn: LonghornState {
                installed: self.longhorn_missing.is_empty(),
                api: self.longhorn_api.clone(),
                version: LONGHORN_VERSION.to_string(),
                namespace: self.longhorn_namespace.clone(),
                missing_kinds: self
                    .longhorn_missing
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
                error: self.longhorn_error(),
                ..Default::default()
            },
            etcd_snapshots: (!self.missing.contains(&Kind::EtcdSnapshot)
                && self.rows.contains_key(&Kind::EtcdSnapshot))
            .then(Vec::new),
            certificates: (!self.missing.contains(&Kind::Certificate)
                && self.rows.contains_key(&Kind::Certificate))
            .then(Vec::new),
            pods: self.pods.clone(),
            ..Default::default()
        };
        for rows in self.rows.values() {
            for row in rows.values() {
                match row.clone() {
                    Row::Node(n) => st.nodes.push(n),
                    // Kept apart (`Store::pods`); none are in `rows`.
                    Row::Pod(_) => {}
                    Row::Pdb(p) => st.pdbs.push(p),
                    Row::Volume(v) => st.longhorn.volumes.push(v),
                    Row::Replica(r) => st.longhorn.replicas.push(r),
                    Row::LonghornNode(n) => st.longhorn.nodes.push(n),
                    Row::Backup(b) => st.longhorn.backups.push(b),
                    Row::BackupTarget(t) => st.longhorn.backup_targets.push(t),
                    Row::RecurringJob(j) => st.longhorn.recurring_jobs.push(j),
                    Row::Setting(k, v) => {
                        st.longhorn.settings.insert(k, v);
                    }
                    Row::Engine(r) => st.longhorn.rebuilds.extend(r),
                    Row::EtcdSnapshot(e) => {
                        if let Some(list) = &mut st.etcd_snapshots {
                            list.push(e);
                        }
                    }
                    Row::Certificate(c) => {
                        if let Some(list) = &mut st.certificates {
                            list.push(c);
                        }
                    }
                }
            }
        }
        st
    }
}

/// Run the Kubernetes source until the receiver goes away.
pub fn spawn(cfg: KubernetesConfig, tx: UpdateTx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        let client = loop {
            match client(&cfg).await {
                Ok(c) => break c,
                Err(e) => {
                    if tx.send(Update::Cluster(Err(e))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        };
        run(client, cfg, tx).await;
    })
}

async fn run(client: Client, cfg: KubernetesConfig, tx: UpdateTx) {
    let (ctx, mut crx) = mpsc::channel::<Change>(1024);
    let ns = cfg.longhorn_namespace.clone();
    let mut tasks = vec![
        spawn_watch(
            Api::<Node>::all(client.clone()),
            Kind::Node,
            |n| Row::Node(convert::node(&n)),
            ctx.clone(),
        ),
        spawn_watch(
            Api::<convert::PodObject>::all(client.clone()),
            Kind::Pod,
            |p| Row::Pod(p.row),
            ctx.clone(),
        ),
        spawn_watch(
            Api::<PodDisruptionBudget>::all(client.clone()),
            Kind::Pdb,
            |p| Row::Pdb(convert::pdb(&p)),
            ctx.clone(),
        ),
    ];
    for k in LONGHORN_KINDS {
        tasks.push(spawn_watch(
            longhorn_api(&client, &ns, *k),
            *k,
            dyn_row(*k),
            ctx.clone(),
        ));
    }
    for k in RECOVERY_KINDS {
        tasks.push(spawn_watch(
            recovery_api(&client, *k),
            *k,
            recovery_row(*k),
            ctx.clone(),
        ));
    }
    drop(ctx);
    let _abort = AbortOnDrop(tasks);

    let mut store = Store {
        server_version: client.apiserver_version().await.ok().map(|v| v.git_version),
        longhorn_api: discover_longhorn(&client).await,
        longhorn_namespace: ns.clone(),
        ..Default::default()
    };
    let mut errors: BTreeMap<Kind, String> = BTreeMap::new();
    // Changes since the last state sent; they go out together a little after the first.
    let mut dirty = false;
    let mut flush_at: Option<tokio::time::Instant> = None;
    // The state last sent: sent again (the same, cheap to compare) when the liveness request
    // finds the API answering and every watch open, so a quiet cluster's view stays fresh.
    let mut last_sent: Option<Arc<ClusterState>> = None;
    // Open watches do not notice a server that stopped answering (kube's read timeout is
    // minutes): a short request every few seconds does, and says so until it answers again.
    let (probe_tx, mut probe_rx) = mpsc::channel::<Probe>(4);
    let _probe = AbortOnDrop(vec![tokio::spawn(liveness(
        client.clone(),
        ns.clone(),
        Duration::from_secs(cfg.timeout_secs.max(1)),
        probe_tx,
    ))]);
    let mut probe_error: Option<String> = None;
    loop {
        if dirty && flush_at.is_none() {
            flush_at = Some(tokio::time::Instant::now() + FLUSH_AFTER);
        }
        tokio::select! {
            p = probe_rx.recv() => {
                let Some(Probe { api: p, longhorn }) = p else { continue };
                if longhorn != store.longhorn_probe {
                    store.longhorn_probe = longhorn;
                    store.longhorn_failing_since(jiff::Timestamp::now());
                    dirty = true;
                }
                if p == probe_error {
                    // Answering, every watch open, nothing new: what was sent is current.
                    if p.is_none()
                        && !dirty
                        && errors.is_empty()
                        && let Some(st) = &last_sent
                        && tx.send(Update::Cluster(Ok(st.clone()))).await.is_err()
                    {
                        return;
                    }
                    continue;
                }
                match &p {
                    Some(msg) => {
                        if tx.send(Update::Cluster(Err(msg.clone()))).await.is_err() {
                            return;
                        }
                    }
                    // Answering again: the rows the watches hold go out at the next tick.
                    None => dirty = true,
                }
                probe_error = p;
            }
            c = crx.recv() => {
                let Some(c) = c else { return };
                match &c {
                    Change::Error(k, msg, not_found) => {
                        if k.is_longhorn() && *not_found {
                            if store.longhorn_missing.insert(k.longhorn_plural().1) {
                                dirty = true;
                            }
                        } else if k.optional() && *not_found {
                            if store.missing.insert(*k) {
                                dirty = true;
                            }
                        } else if k.is_longhorn() {
                            // Longhorn's own status: the nodes and pods stay current.
                            let msg = format!(
                                "Longhorn {}: {msg}",
                                k.longhorn_plural().1
                            );
                            if store.longhorn_errors.get(k) != Some(&msg) {
                                store.longhorn_errors.insert(*k, msg);
                                store.longhorn_failing_since(jiff::Timestamp::now());
                                dirty = true;
                            }
                        } else if errors.get(k) != Some(msg) {
                            errors.insert(*k, msg.clone());
                            if tx.send(Update::Cluster(Err(msg.clone()))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Change::Reset(k, _) | Change::Upsert(k, _, _) | Change::Delete(k, _) => {
                        errors.remove(k);
                        if store.longhorn_errors.remove(k).is_some() {
                            store.longhorn_failing_since(jiff::Timestamp::now());
                        }
                        dirty = true;
                    }
                }
                store.apply(c);
            }
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)), if flush_at.is_some() => {
                flush_at = None;
                if dirty && errors.is_empty() && probe_error.is_none() {
                    dirty = false;
                    let st = Arc::new(store.state());
                    last_sent = Some(st.clone());
                    if tx.send(Update::Cluster(Ok(st))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// How long after a first change the state goes out (a burst of changes goes as one).
const FLUSH_AFTER: Duration = Duration::from_millis(250);

/// How often the liveness request goes out.
const LIVENESS_EVERY: Duration = Duration::from_secs(5);

/// What one liveness round found: why the API (`GET /version`) and why Longhorn's volumes
/// failed, each `None` when it answered.
struct Probe {
    api: Option<String>,
    longhorn: Option<String>,
}

/// Every [`LIVENESS_EVERY`]: `GET /version` and one Longhorn volume (`limit=1`), each within
/// `timeout`; sends what failed (Longhorn apart: it is its own source status).
async fn liveness(client: Client, ns: String, timeout: Duration, tx: mpsc::Sender<Probe>) {
    let volumes = longhorn_api(&client, &ns, Kind::Volume);
    loop {
        tokio::time::sleep(LIVENESS_EVERY).await;
        let secs = timeout.as_secs();
        let version = match tokio::time::timeout(timeout, client.apiserver_version()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("Kubernetes API: GET /version failed: {e}")),
            Err(_) => Some(format!(
                "Kubernetes API: no answer to GET /version within {secs} s"
            )),
        };
        let longhorn = match tokio::time::timeout(
            timeout,
            volumes.list_metadata(&ListParams::default().limit(1)),
        )
        .await
        {
            Ok(Ok(_)) => None,
            // Not installed (or at another version): the watches say so.
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => None,
            Ok(Err(e)) => Some(format!("Longhorn: cannot list volumes: {e}")),
            Err(_) => Some(format!(
                "Longhorn: no answer to a list of volumes within {secs} s"
            )),
        };
        let probe = Probe {
            api: version,
            longhorn,
        };
        if tx.send(probe).await.is_err() {
            return;
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Objects per LIST page in [`list_rows`]: a page's body and objects are all that is held
/// at once (6k pods read whole were ~100 MiB), the rows kept are compact.
const LIST_PAGE: u32 = 500;

async fn list_rows<K, F>(api: Api<K>, conv: F) -> Result<Vec<(String, Row)>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    F: Fn(K) -> Row,
{
    let mut rows = Vec::new();
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let list = match api.list(&params).await {
            Ok(l) => l,
            // The continue token expired between pages (410 Gone): read the list whole.
            Err(kube::Error::Api(s)) if s.code == 410 && params.continue_token.is_some() => {
                let list = api.list(&ListParams::default()).await?;
                return Ok(list
                    .items
                    .into_iter()
                    .map(|o| (key_of(&o), conv(o)))
                    .collect());
            }
            Err(e) => return Err(e),
        };
        rows.extend(list.items.into_iter().map(|o| (key_of(&o), conv(o))));
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = ListParams::default().limit(LIST_PAGE).continue_token(&c),
            None => return Ok(rows),
        }
    }
}

/// One LIST of every kind, for `check` and the upgrade guards, bounded by `[kubernetes]
/// timeout_secs` as a whole (an API server that accepts and never answers is an error, not a
/// wait of kube's five-minute read timeout).
pub async fn poll_once(cfg: &KubernetesConfig) -> Result<ClusterState, String> {
    let secs = cfg.timeout_secs.max(1);
    match tokio::time::timeout(Duration::from_secs(secs), poll_once_unbounded(cfg)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Kubernetes API: no answer within {secs} s ([kubernetes] timeout_secs)"
        )),
    }
}

async fn poll_once_unbounded(cfg: &KubernetesConfig) -> Result<ClusterState, String> {
    let client = client(cfg).await?;
    let mut store = Store {
        longhorn_namespace: cfg.longhorn_namespace.clone(),
        ..Default::default()
    };
    let err = |what: &str, e: kube::Error| format!("Kubernetes API: cannot list {what}: {e}");
    let nodes = list_rows(Api::<Node>::all(client.clone()), |n| {
        Row::Node(convert::node(&n))
    });
    let pods = list_rows(Api::<convert::PodObject>::all(client.clone()), |p| {
        Row::Pod(p.row)
    });
    let pdbs = list_rows(Api::<PodDisruptionBudget>::all(client.clone()), |p| {
        Row::Pdb(convert::pdb(&p))
    });
    // Longhorn is its own source: read beside the rest within three quarters of the bound,
    // so that a hung Longhorn still leaves the nodes and pods (and says so).
    let lh_budget = Duration::from_millis(cfg.timeout_secs.max(1) * 750);
    let longhorn = tokio::time::timeout(lh_budget, async {
        let mut out = Vec::new();
        for k in LONGHORN_KINDS {
            let r = list_rows(
                longhorn_api(&client, &cfg.longhorn_namespace, *k),
                dyn_row(*k),
            )
            .await;
            out.push((*k, r));
        }
        out
    });
    let (nodes, pods, pdbs, longhorn) = tokio::join!(nodes, pods, pdbs, longhorn);
    store.apply(Change::Reset(
        Kind::Node,
        nodes.map_err(|e| err("nodes", e))?,
    ));
    store.apply(Change::Reset(Kind::Pod, pods.map_err(|e| err("pods", e))?));
    store.apply(Change::Reset(
        Kind::Pdb,
        pdbs.map_err(|e| err("poddisruptionbudgets", e))?,
    ));
    match longhorn {
        Ok(lists) => {
            for (k, r) in lists {
                match r {
                    Ok(rows) => store.apply(Change::Reset(k, rows)),
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        store.longhorn_missing.insert(k.longhorn_plural().1);
                    }
                    Err(e) => {
                        let plural = k.longhorn_plural().1;
                        store
                            .longhorn_errors
                            .insert(k, format!("Longhorn: cannot list {plural}: {e}"));
                    }
                }
            }
        }
        Err(_) => {
            store.longhorn_probe = Some(format!(
                "Longhorn: no answer within {:.2} s (of [kubernetes] timeout_secs)",
                lh_budget.as_secs_f64()
            ));
        }
    }
    store.longhorn_failing_since(jiff::Timestamp::now());
    for k in RECOVERY_KINDS {
        match list_rows(recovery_api(&client, *k), recovery_row(*k)).await {
            Ok(rows) => store.apply(Change::Reset(*k, rows)),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                store.missing.insert(*k);
            }
            Err(e) => {
                return Err(err(
                    if *k == Kind::EtcdSnapshot {
                        "etcdsnapshotfiles.k3s.cattle.io"
                    } else {
                        "certificates.cert-manager.io"
                    },
                    e,
                ));
            }
        }
    }
    store.server_version = client.apiserver_version().await.ok().map(|v| v.git_version);
    store.longhorn_api = discover_longhorn(&client).await;
    Ok(store.state())
}

/// Whether a Kubernetes configuration can be found at all (an explicit file, `KUBECONFIG`,
/// `~/.kube/config`, or in-cluster). Without one, the source is "not configured", not failing.
pub fn config_available(cfg: &KubernetesConfig) -> bool {
    cfg.kubeconfig.is_some()
        || std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || crate::paths::home().is_some_and(|h| h.join(".kube").join("config").is_file())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::PodRow;

    fn pod(ns: &str, name: &str, phase: &str) -> (String, Row) {
        let p = PodRow {
            namespace: ns.into(),
            name: name.into(),
            phase: phase.into(),
            ..Default::default()
        };
        (format!("{ns}/{name}"), Row::Pod(p))
    }

    fn names(st: &ClusterState) -> Vec<String> {
        st.pods
            .iter()
            .map(|p| format!("{}/{}:{}", p.namespace, p.name, p.phase))
            .collect()
    }

    /// The pods kept apart stay in key order through a list, new and changed pods and
    /// deletions; a state sent before a change still shows what it showed.
    #[test]
    fn pods_follow_their_changes_in_key_order() {
        let mut s = Store::default();
        // "a-b/…" sorts before "a/…" as keys ('-' < '/'): the key order, not the tuple's.
        s.apply(Change::Reset(
            Kind::Pod,
            vec![
                pod("b", "x", "Running"),
                pod("a", "y", "Running"),
                pod("a-b", "z", "Pending"),
            ],
        ));
        let first = s.state();
        assert_eq!(
            names(&first),
            ["a-b/z:Pending", "a/y:Running", "b/x:Running"]
        );
        let (k, r) = pod("a", "w", "Pending");
        s.apply(Change::Upsert(Kind::Pod, k, r));
        let (k, r) = pod("a-b", "z", "Running");
        s.apply(Change::Upsert(Kind::Pod, k, r));
        s.apply(Change::Delete(Kind::Pod, "b/x".into()));
        s.apply(Change::Delete(Kind::Pod, "nope/gone".into()));
        let second = s.state();
        assert_eq!(
            names(&second),
            ["a-b/z:Running", "a/w:Pending", "a/y:Running"]
        );
        assert_eq!(
            names(&first),
            ["a-b/z:Pending", "a/y:Running", "b/x:Running"],
            "a state already sent changed under its reader"
        );
        // No change: the state shares the store's list.
        assert!(Arc::ptr_eq(&second.pods, &s.state().pods));
        // A new list replaces everything; a key listed twice keeps its last row.
        s.apply(Change::Reset(
            Kind::Pod,
            vec![
                pod("c", "q", "Pending"),
                pod("b", "x", "Running"),
                pod("c", "q", "Running"),
            ],
        ));
        assert_eq!(names(&s.state()), ["b/x:Running", "c/q:Running"]);
    }
}
