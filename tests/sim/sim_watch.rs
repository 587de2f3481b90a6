//! kube-rs (the app's own client) against the simulator: watchers see cordons, evictions
//! and reboots as events; conflicts, 429 and 410 behave like a real API server.

use crate::common;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use homeinfra_tui::sim::{Scenario, SimHandle};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

async fn start(scenarios: Vec<Scenario>, speed: f64) -> (SimHandle, tempfile::TempDir) {
    common::sim::start_with(scenarios, speed).await
}

async fn client(h: &SimHandle) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(h.kubeconfig_path()).unwrap();
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

fn ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Wait until the watcher delivers something matching `f`.
async fn wait_for<T, F: Fn(&watcher::Event<T>) -> bool>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<watcher::Event<T>>,
    what: &str,
    f: F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event for {what}"))
            .unwrap();
        if f(&ev) {
            return;
        }
    }
}

fn spawn_watch<K>(api: Api<K>) -> tokio::sync::mpsc::UnboundedReceiver<watcher::Event<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Ok(Some(ev)) = s.try_next().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_cordon_eviction_and_reboot() {
    let (h, _dir) = start(vec![], 20.0).await;
    let c = client(&h).await;
    let nodes: Api<Node> = Api::all(c.clone());
    let pods: Api<Pod> = Api::namespaced(c.clone(), "apps");
    let mut node_events = spawn_watch(nodes.clone());
    let mut pod_events = spawn_watch(pods.clone());
    wait_for(&mut node_events, "initial node list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    wait_for(&mut pod_events, "initial pod list", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;

    // Cordon, as kubectl does it.
    let patch = serde_json::json!({"spec": {"unschedulable": true}});
    nodes
        .patch("node2", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_for(&mut node_events, "cordon", |e| match e {
        watcher::Event::Apply(n) => {
            n.metadata.name.as_deref() == Some("node2")
                && n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
                && n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t.key == "node.kubernetes.io/unschedulable")
                    })
        }
        _ => false,
    })
    .await;

    // Evict a web pod: it terminates, goes away, and a replacement appears elsewhere.
    let list = pods.list(&Default::default()).await.unwrap();
    let victim = list
        .items
        .iter()
        .find(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web-"))
        })
        .unwrap();
    let victim_name = victim.metadata.name.clone().unwrap();
    let victim_node = victim.spec.as_ref().unwrap().node_name.clone().unwrap();
    pods.evict(&victim_name, &EvictParams::default())
        .await
        .unwrap();
    wait_for(&mut pod_events, "eviction", |e| matches!(e, watcher::Event::Delete(p) if p.metadata.name.as_deref() == Some(victim_name.as_str()))).await;
    wait_for(&mut pod_events, "replacement", |e| match e {
        watcher::Event::Apply(p) => {
            let n = p.metadata.name.as_deref().unwrap_or("");
            n.starts_with("web-")
                && n != victim_name
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|node| node != victim_node && node != "node2")
        }
        _ => false,
    })
    .await;

    // Reboot: NotReady (Unknown), then Ready again.
    h.world().reboot("node4").unwrap();
    wait_for(&mut node_events, "node4 down", |e| {
        matches!(e, watcher::Event::Apply(n)
        if n.metadata.name.as_deref() == Some("node4") && ready(n).as_deref() == Some("Unknown"))
    })
    .await;
    wait_for(&mut node_events, "node4 back", |e| {
        matches!(e, watcher::Event::Apply(n)
        if n.metadata.name.as_deref() == Some("node4") && ready(n).as_deref() == Some("True"))
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_budgets_and_expired_versions() {
    let (h, _dir) = start(vec![Scenario::PdbBlocks], 20.0).await;
    let c = client(&h).await;
    let nodes: Api<Node> = Api::all(c.clone());
    // Update with a stale resourceVersion: 409 Conflict.
    let mut n = nodes.get("node1").await.unwrap();
    let stale = n.clone();
    n.metadata
        .labels
        .get_or_insert_default()
        .insert("a".into(), "b".into());
    nodes
        .replace("node1", &Default::default(), &n)
        .await
        .unwrap();
    let err = nodes
        .replace("node1", &Default::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("{other:?}"),
    }
    // Eviction blocked by the budget: 429 naming it.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "apps");
    match pods
        .evict("postgres-0", &EvictParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 429);
            assert_eq!(s.reason, "TooManyRequests");
            let causes = format!("{:?}", s.details);
            assert!(
                causes.contains(
                    "The disruption budget postgres needs 1 healthy pods and has 1 currently"
                ),
                "{causes}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A watch from a version older than the history: 410 Gone, then the watcher re-lists.
    let wp = kube::api::WatchParams::default().timeout(5);
    let mut stream = nodes.watch(&wp, "1").await.unwrap().boxed();
    match stream.next().await.unwrap() {
        Ok(kube::api::WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    // A watch from the current version is held open until its timeout.
    let rv = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = kube::api::WatchParams::default().timeout(2);
    let started = std::time::Instant::now();
    let mut stream = nodes.watch(&wp, &rv).await.unwrap().boxed();
    while let Some(ev) = stream.next().await {
        ev.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(1900));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_bookmarks() {
    let (h, _dir) = start(vec![], 20.0).await;
    let c = client(&h).await;
    let nodes: Api<Node> = Api::all(c);
    let rv = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = kube::api::WatchParams::default().timeout(3); // bookmarks are on by default
    let mut stream = nodes.watch(&wp, &rv).await.unwrap().boxed();
    let mut bookmarks = 0;
    while let Some(ev) = stream.next().await {
        if let kube::api::WatchEvent::Bookmark(b) = ev.unwrap() {
            assert!(
                b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
            );
            bookmarks += 1;
        }
    }
    // 10 s of simulated time at speed 20 = 0.5 s between bookmarks.
    assert!(bookmarks >= 3, "{bookmarks} bookmarks");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_deserializes_into_k8s_openapi_types() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Namespace};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let (h, _dir) = start(vec![Scenario::LastReplica], 20.0).await;
    let c = client(&h).await;
    // Some events exist.
    let nodes: Api<Node> = Api::all(c.clone());
    let patch = serde_json::json!({"spec": {"unschedulable": true}});
    nodes
        .patch("node4", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let lp = Default::default();
    assert_eq!(nodes.list(&lp).await.unwrap().items.len(), 4);
    assert!(
        !Api::<Pod>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        Api::<Namespace>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    assert!(
        !Api::<Deployment>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !Api::<ReplicaSet>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !Api::<StatefulSet>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !Api::<DaemonSet>::all(c.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let pdbs = Api::<PodDisruptionBudget>::all(c.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    assert!(pdbs.iter().any(|p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.disruptions_allowed == 0)
    }));
    let leases = Api::<Lease>::namespaced(c.clone(), "kube-node-lease")
        .list(&lp)
        .await
        .unwrap()
        .items;
    assert_eq!(leases.len(), 4);
    assert!(
        leases
            .iter()
            .all(|l| l.spec.as_ref().unwrap().renew_time.is_some())
    );
    assert!(
        !Api::<Lease>::namespaced(c.clone(), "kube-system")
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mut events = Vec::new();
    for _ in 0..50 {
        events = Api::<Event>::all(c.clone()).list(&lp).await.unwrap().items;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("NodeNotSchedulable"))
    );
    let crds = Api::<CustomResourceDefinition>::all(c.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    assert!(
        crds.iter()
            .any(|c| c.metadata.name.as_deref() == Some("volumes.longhorn.io"))
    );
    // Longhorn's objects through the dynamic API, as discovery finds them.
    let discovery = kube::discovery::Discovery::new(c.clone())
        .run()
        .await
        .unwrap();
    for kind in [
        "Volume",
        "Replica",
        "Backup",
        "BackupTarget",
        "RecurringJob",
        "Setting",
    ] {
        let (ar, _) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.group == "longhorn.io" && ar.kind == kind)
            .unwrap_or_else(|| panic!("discovery lacks longhorn.io {kind}"));
        assert_eq!(ar.version, "v1beta2");
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(c.clone(), "longhorn-system", &ar);
        assert!(!api.list(&lp).await.unwrap().items.is_empty(), "{kind}");
    }
    h.shutdown().await;
}
