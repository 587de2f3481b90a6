//! The app's Kubernetes source (its kube-rs watchers) through the simulator's watch faults
//! (issue 18): a dropped watch connection, `410 Gone` on resume, and a relist with objects
//! changed while the watches were away. After each, the app's view (pods, nodes, Longhorn
//! volumes) equals the simulator's store — nothing lost, nothing twice, nothing stale — and
//! changes made after the resume still arrive. Then a face fault (`http-500=kubernetes`)
//! cleared: the source reports the failure and recovers within its backoff.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use homeinfra_tui::model::cluster::ClusterState;
use homeinfra_tui::sim::resources::{LH_VOLUMES, NODES, PODS};
use homeinfra_tui::sim::store::{name_of, namespace_of};
use homeinfra_tui::sim::{Scenario, SimHandle};
use homeinfra_tui::sources::Update;
use serde_json::json;

use crate::common::sim as simh;

/// (pods, nodes, volumes) as keys.
type View = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

fn sim_view(h: &SimHandle) -> View {
    let store = &h.world().store;
    let (pods, _) = store.list(&PODS, None);
    let (nodes, _) = store.list(&NODES, None);
    let (vols, _) = store.list(&LH_VOLUMES, None);
    (
        pods.iter()
            .map(|p| format!("{}/{}", namespace_of(p), name_of(p)))
            .collect(),
        nodes.iter().map(|n| name_of(n).to_string()).collect(),
        vols.iter().map(|v| name_of(v).to_string()).collect(),
    )
}

/// The app's view, and whether it holds any key twice.
fn app_view(c: &ClusterState) -> (View, bool) {
    let pods: Vec<String> = c
        .pods
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let set: BTreeSet<String> = pods.iter().cloned().collect();
    let dup = set.len() != pods.len();
    (
        (
            set,
            c.nodes.iter().map(|n| n.name.clone()).collect(),
            c.longhorn.volumes.iter().map(|v| v.name.clone()).collect(),
        ),
        dup,
    )
}

/// Read updates until the app's view equals the simulator's (which may move on meanwhile).
async fn converges(
    h: &SimHandle,
    rx: &mut tokio::sync::mpsc::Receiver<Update>,
    last: &mut Option<Arc<ClusterState>>,
    what: &str,
    secs: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(c) = last.as_ref() {
            let (view, dup) = app_view(c);
            assert!(!dup, "{what}: a pod twice in the app's view");
            if view == sim_view(h) {
                return;
            }
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Update::Cluster(Ok(c)))) => *last = Some(c),
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the source ended"),
            Err(_) => {
                let (view, _) = app_view(last.as_ref().expect("some state"));
                let sim = sim_view(h);
                panic!(
                    "{what}: the app's view never matched the simulator's within {secs} s\n\
                     only in the app: {:?}\nonly in the simulator: {:?}",
                    view.0.difference(&sim.0).collect::<Vec<_>>(),
                    sim.0.difference(&view.0).collect::<Vec<_>>()
                );
            }
        }
    }
}

/// The first line of a pod watch resuming from `rv`.
async fn first_watch_line(h: &SimHandle, rv: u64) -> String {
    let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut r = client
        .get(format!(
            "{}/api/v1/pods?watch=true&resourceVersion={rv}",
            h.api_url()
        ))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    let chunk = r.chunk().await.unwrap().unwrap_or_default();
    String::from_utf8_lossy(&chunk)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn extra_pod(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name, "namespace": "apps", "labels": {"app": "fault-test"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_after_drops_gone_and_relists_without_losing_or_duplicating() {
    let (h, _dir) = simh::start(&[], 10.0).await;
    let env = simh::env(&h);
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let task = homeinfra_tui::sources::kubernetes::spawn(env.config.kubernetes.clone(), tx);
    let mut last = None;
    converges(&h, &mut rx, &mut last, "the first list", 30).await;

    // A dropped watch connection: the watchers resume from where they were.
    h.world().apply_scenario(&Scenario::WatchDrop).unwrap();
    h.world()
        .store
        .create(&PODS, extra_pod("after-drop"))
        .unwrap();
    converges(&h, &mut rx, &mut last, "watch-drop", 30).await;
    assert!(
        sim_view(&h).0.contains("apps/after-drop"),
        "the pod made after the drop is in the simulator"
    );

    // 410 Gone on resume: the watchers relist.
    let old_rv = h.world().store.resource_version();
    h.world().apply_scenario(&Scenario::WatchGone).unwrap();
    let first = first_watch_line(&h, old_rv).await;
    assert!(
        first.contains("\"ERROR\"") && first.contains("410"),
        "a resume from before watch-gone answers 410: {first}"
    );
    h.world()
        .store
        .create(&PODS, extra_pod("after-gone"))
        .unwrap();
    converges(&h, &mut rx, &mut last, "watch-gone", 30).await;
    h.world().clear_scenario("watch-gone").unwrap();

    // A relist with changed objects: a pod added and one deleted while the watches were away.
    let before = sim_view(&h).0;
    h.world().apply_scenario(&Scenario::WatchRelist).unwrap();
    let after = sim_view(&h).0;
    assert!(
        after.iter().any(|p| p.starts_with("apps/relist-")) && !before.is_subset(&after),
        "watch-relist changed the pods: {:?} → {:?}",
        before.difference(&after).collect::<Vec<_>>(),
        after.difference(&before).collect::<Vec<_>>()
    );
    converges(&h, &mut rx, &mut last, "watch-relist", 30).await;
    h.world().clear_scenario("watch-relist").unwrap();

    // Still following: changes after all that arrive.
    h.world().store.create(&PODS, extra_pod("late")).unwrap();
    converges(&h, &mut rx, &mut last, "a create after the resumes", 30).await;
    h.world().store.delete(&PODS, "apps", "late").unwrap();
    converges(&h, &mut rx, &mut last, "a delete after the resumes", 30).await;

    // A face fault: the source says so, and after the clear it recovers within its backoff
    // (the watchers' own, at most a few seconds here; the liveness request every 5 s).
    h.world()
        .apply_scenario(&"http-500=kubernetes".parse().unwrap())
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let msg = loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Update::Cluster(Err(e)))) => break e,
            Ok(Some(_)) => {}
            other => panic!("no error under http-500=kubernetes: {other:?}"),
        }
    };
    assert!(
        msg.contains("500") || msg.contains("Internal Server Error"),
        "{msg}"
    );
    h.world()
        .store
        .create(&PODS, extra_pod("during-500"))
        .unwrap();
    h.world().clear_scenario("http-500=kubernetes").unwrap();
    let cleared = std::time::Instant::now();
    converges(&h, &mut rx, &mut last, "after http-500 cleared", 60).await;
    eprintln!(
        "recovered {:.1} s after http-500=kubernetes was cleared",
        cleared.elapsed().as_secs_f64()
    );
    task.abort();
    h.shutdown().await;
}

/// Longhorn is its own source (issue 18): under each fault of the `longhorn` face the
/// Kubernetes source keeps sending the cluster (never an error of its own), with Longhorn's
/// failure (why, since when) beside current nodes and pods: a pod created during the fault
/// arrives. After the clear Longhorn's error goes and its volumes equal the simulator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longhorn_fault_marks_only_longhorn_and_the_nodes_and_pods_keep_updating() {
    let (h, _dir) = simh::start(&[], 10.0).await;
    let env = simh::env(&h);
    let mut kcfg = env.config.kubernetes.clone();
    // The liveness request's timeout: a hung Longhorn is noticed within a few seconds.
    kcfg.timeout_secs = 2;
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let task = homeinfra_tui::sources::kubernetes::spawn(kcfg, tx);
    let mut last = None;
    converges(&h, &mut rx, &mut last, "the first list", 30).await;
    assert!(last.as_ref().unwrap().longhorn.error.is_none());

    for (i, fault) in ["http-500=longhorn", "garbage=longhorn", "hang=longhorn"]
        .into_iter()
        .enumerate()
    {
        h.world().apply_scenario(&fault.parse().unwrap()).unwrap();
        let applied = jiff::Timestamp::now();
        // Longhorn's failure arrives inside a good cluster update.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        let err = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Update::Cluster(Ok(c)))) => {
                    if let Some(e) = c.longhorn.error.clone() {
                        break e;
                    }
                }
                Ok(Some(Update::Cluster(Err(e)))) => {
                    panic!("{fault}: the whole cluster in error: {e}")
                }
                Ok(Some(_)) => {}
                other => panic!("{fault}: Longhorn's failure never said: {other:?}"),
            }
        };
        assert!(
            err.message.starts_with("Longhorn"),
            "{fault}: {}",
            err.message
        );
        assert!(
            err.since.as_second() >= applied.as_second() - 1,
            "{fault}: since {} (applied {applied})",
            err.since
        );
        // The nodes and pods stay current: a pod made now arrives, Longhorn still failing.
        let pod = format!("during-longhorn-{i}");
        h.world().store.create(&PODS, extra_pod(&pod)).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Update::Cluster(Ok(c)))) => {
                    let seen = c.pods.iter().any(|p| p.name == pod);
                    let failing = c.longhorn.error.clone();
                    last = Some(c);
                    if seen {
                        let e = failing.unwrap_or_else(|| {
                            panic!("{fault}: Longhorn's error went while the fault is on")
                        });
                        assert_eq!(e.since, err.since, "{fault}: since kept");
                        break;
                    }
                }
                Ok(Some(Update::Cluster(Err(e)))) => {
                    panic!("{fault}: the whole cluster in error: {e}")
                }
                Ok(Some(_)) => {}
                other => panic!("{fault}: the pod made during the fault never came: {other:?}"),
            }
        }
        h.world().clear_scenario(fault).unwrap();
        // Recovered: Longhorn's error gone, everything equal to the simulator's.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while last.as_ref().unwrap().longhorn.error.is_some() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Update::Cluster(Ok(c)))) => last = Some(c),
                Ok(Some(_)) => {}
                other => panic!("{fault} cleared: Longhorn still failing: {other:?}"),
            }
        }
        converges(&h, &mut rx, &mut last, &format!("{fault} cleared"), 30).await;
    }
    task.abort();
    h.shutdown().await;
}

/// A quiet cluster (a frozen homelab: no event on any watch) stays fresh: while the API
/// answers and every watch is open, the source sends the state it last sent again after each
/// liveness request, the same `Arc` (the app compares it by pointer and renews only the
/// source's freshness), so no "Kubernetes API data is N s old" finding comes of silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_cluster_stays_fresh_with_the_same_state() {
    let (h, _dir) = simh::start_opts(homeinfra_tui::sim::SimOptions {
        frozen: true,
        ..Default::default()
    })
    .await;
    let env = simh::env(&h);
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let task = homeinfra_tui::sources::kubernetes::spawn(env.config.kubernetes.clone(), tx);
    // The first list, then whatever settles right after it.
    let mut st = next_state(&mut rx).await;
    while st.nodes.is_empty() || st.pods.is_empty() {
        st = next_state(&mut rx).await;
    }
    let settled = loop {
        let again = next_state(&mut rx).await;
        if Arc::ptr_eq(&again, &st) {
            break again;
        }
        st = again;
    };
    // Nothing moves: each answer is the very state sent before.
    for _ in 0..2 {
        let again = next_state(&mut rx).await;
        assert!(
            Arc::ptr_eq(&again, &settled),
            "a quiet cluster sent a new state"
        );
    }
    task.abort();
    h.shutdown().await;
}

async fn next_state(rx: &mut tokio::sync::mpsc::Receiver<Update>) -> Arc<ClusterState> {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(Update::Cluster(Ok(st)))) => st,
        other => panic!("expected the cluster's state, got {other:?}"),
    }
}

/// LIST pages far larger than a connection's read buffer (hundreds of pods a page, read in
/// pieces of at most 64 KiB) arrive whole, through the watch and through `poll_once` alike,
/// each pod's row as the simulator serves the pod (its node, phase and containers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_larger_than_the_read_buffer_arrive_whole() {
    let (h, _dir) = simh::start_opts(homeinfra_tui::sim::SimOptions {
        nodes: Some(12),
        scale: homeinfra_tui::sim::build::Scale {
            pods_per_node: Some(60),
            volumes: None,
        },
        frozen: true,
        ..Default::default()
    })
    .await;
    let (served, _) = h.world().store.list(&PODS, None);
    assert!(
        served.len() > 500,
        "one page would hold all {}",
        served.len()
    );
    let env = simh::env(&h);
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let task = homeinfra_tui::sources::kubernetes::spawn(env.config.kubernetes.clone(), tx);
    let mut last = None;
    converges(&h, &mut rx, &mut last, "the first list", 60).await;
    let watched = last.expect("a state");
    let polled = homeinfra_tui::sources::kubernetes::poll_once(&env.config.kubernetes)
        .await
        .expect("poll_once");
    let (view, dup) = app_view(&polled);
    assert!(!dup, "a pod twice in poll_once's state");
    assert_eq!(view, sim_view(&h));
    let sorted = |c: &ClusterState| {
        let mut p = c.pods.to_vec();
        p.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        p
    };
    assert_eq!(sorted(&watched), sorted(&polled));
    for p in &served {
        let row = polled
            .pods
            .iter()
            .find(|r| r.namespace == namespace_of(p) && r.name == name_of(p))
            .expect("every served pod has a row");
        assert_eq!(
            row.node.as_deref(),
            p["spec"]["nodeName"].as_str(),
            "{}",
            row.name
        );
        assert_eq!(row.phase, p["status"]["phase"].as_str().unwrap_or_default());
        let containers = p["spec"]["containers"].as_array().map_or(0, Vec::len);
        assert_eq!(
            usize::from(row.total_containers),
            containers,
            "{}",
            row.name
        );
    }
    task.abort();
    h.shutdown().await;
}
