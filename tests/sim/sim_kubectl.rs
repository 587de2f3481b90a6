//! The stock kubectl against the simulated API server, with the generated kubeconfig.

use crate::common;

use std::path::Path;
use std::time::Duration;

use homeinfra_tui::sim::{self, Scenario, SimHandle};

struct Kubectl {
    bin: std::path::PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    fn new() -> Option<Self> {
        let bin = common::require_program("kubectl")?;
        Some(Self {
            bin,
            home: tempfile::tempdir().unwrap(),
        })
    }

    /// Run kubectl; (success, stdout, stderr).
    async fn run(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(&self.bin)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, h: &SimHandle, args: &[&str]) -> String {
        let (ok, out, err) = self.run(&h.kubeconfig_path(), args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

async fn start(scenarios: Vec<Scenario>, speed: f64) -> (SimHandle, tempfile::TempDir) {
    common::sim::start_with(scenarios, speed).await
}

fn column(table: &str, row_start: &str, header: &str) -> String {
    let mut lines = table.lines();
    let head = lines.next().unwrap();
    let idx = head.split_whitespace().position(|h| h == header).unwrap();
    let row = lines.find(|l| l.starts_with(row_start)).unwrap();
    row.split_whitespace().nth(idx).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_the_cluster() {
    let Some(k) = Kubectl::new() else { return };
    let (h, _dir) = start(vec![], 1.0).await;

    let nodes = k.ok(&h, &["get", "nodes"]).await;
    let header: Vec<&str> = nodes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{nodes}"
    );
    assert_eq!(nodes.lines().count(), 5, "{nodes}");
    assert_eq!(
        column(&nodes, "node1", "ROLES"),
        "control-plane,etcd,master"
    );
    assert_eq!(column(&nodes, "node4", "ROLES"), "<none>");
    assert_eq!(column(&nodes, "node2", "STATUS"), "Ready");
    assert!(column(&nodes, "node1", "VERSION").ends_with("+k3s1"));

    let wide = k.ok(&h, &["get", "nodes", "-o", "wide"]).await;
    assert!(
        wide.lines().next().unwrap().contains("INTERNAL-IP"),
        "{wide}"
    );
    assert_eq!(column(&wide, "node1", "INTERNAL-IP"), "127.0.0.2");
    assert_eq!(column(&wide, "node4", "INTERNAL-IP"), "127.0.0.5");

    let pods = k.ok(&h, &["get", "pods", "-A"]).await;
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let total = pods.lines().count() - 1;
    let (all, _) = h.world().store.list(&sim::resources::PODS, None);
    assert_eq!(total, all.len());
    assert!(pods.contains("postgres-0"), "{pods}");

    let on4 = k
        .ok(
            &h,
            &[
                "get",
                "pods",
                "-A",
                "-o",
                "wide",
                "--field-selector",
                "spec.nodeName=node4",
            ],
        )
        .await;
    let rows: Vec<&str> = on4.lines().skip(1).collect();
    assert!(!rows.is_empty());
    let node_idx = on4
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .position(|c| c == "NODE")
        .unwrap();
    for r in &rows {
        assert_eq!(r.split_whitespace().nth(node_idx), Some("node4"), "{on4}");
    }
    assert!(rows.len() < total);

    let desc = k.ok(&h, &["describe", "node", "node2"]).await;
    for want in [
        "Name:               node2",
        "topology.kubernetes.io/zone=home-b",
        "Unschedulable:      false",
        "InternalIP:  127.0.0.3",
        "Kubelet Version:            v1.31.4+k3s1",
        "Non-terminated Pods:",
        "Allocated resources:",
    ] {
        assert!(desc.contains(want), "missing {want:?} in\n{desc}");
    }

    let vols = k
        .ok(&h, &["get", "volumes.longhorn.io", "-n", "longhorn-system"])
        .await;
    assert!(
        vols.lines().next().unwrap().contains("ROBUSTNESS"),
        "{vols}"
    );
    assert_eq!(vols.lines().count(), 5, "{vols}");

    let leases = k.ok(&h, &["get", "leases", "-n", "kube-system"]).await;
    assert!(
        leases.contains("kube-scheduler") && leases.contains("HOLDER"),
        "{leases}"
    );

    let crds = k.ok(&h, &["get", "crds"]).await;
    assert!(crds.contains("volumes.longhorn.io"), "{crds}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cordon_uncordon_and_drain() {
    let Some(k) = Kubectl::new() else { return };
    let (h, _dir) = start(vec![], 20.0).await;
    let out = k.ok(&h, &["cordon", "node3"]).await;
    assert!(out.contains("node/node3 cordoned"), "{out}");
    let nodes = k.ok(&h, &["get", "nodes"]).await;
    assert_eq!(
        column(&nodes, "node3", "STATUS"),
        "Ready,SchedulingDisabled"
    );
    let node = h
        .world()
        .store
        .get(&sim::resources::NODES, "", "node3")
        .unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    k.ok(&h, &["uncordon", "node3"]).await;
    let node = h
        .world()
        .store
        .get(&sim::resources::NODES, "", "node3")
        .unwrap();
    assert!(node["spec"].get("unschedulable").is_none(), "{node}");
    // The writes were recorded: cordon and uncordon are PATCHes of the node.
    let patches: Vec<_> = h
        .world()
        .writes()
        .into_iter()
        .filter(|w| w.method == "PATCH" && w.path == "/api/v1/nodes/node3")
        .collect();
    assert_eq!(patches.len(), 2);

    let before: Vec<String> = pods_on(&h, "node4");
    let (ok, out, err) = k
        .run(
            &h.kubeconfig_path(),
            &[
                "drain",
                "node4",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout",
                "60s",
            ],
        )
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("node/node4 drained"), "{out}");
    assert!(out.contains("evicted"), "{out}");
    let after = pods_on(&h, "node4");
    // Only DaemonSet pods (and Longhorn's instance manager, recreated in place) remain.
    for p in &after {
        let pod = h
            .world()
            .store
            .list(&sim::resources::PODS, None)
            .0
            .into_iter()
            .find(|x| x["metadata"]["name"] == p.as_str())
            .unwrap();
        let kind = pod["metadata"]["ownerReferences"][0]["kind"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            kind == "DaemonSet" || kind == "InstanceManager",
            "{p} ({kind}) still on node4"
        );
    }
    assert!(after.len() < before.len());
    // Evicted pods come back elsewhere: every Deployment is whole again.
    let mut whole = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (rs, _) = h.world().store.list(&sim::resources::REPLICASETS, None);
        let (pods, _) = h.world().store.list(&sim::resources::PODS, None);
        whole = rs.iter().all(|r| {
            let want = r["spec"]["replicas"].as_u64().unwrap() as usize;
            let have = pods
                .iter()
                .filter(|p| p["metadata"]["ownerReferences"][0]["name"] == r["metadata"]["name"])
                .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
                .filter(|p| p["spec"]["nodeName"] != "node4")
                .count();
            have == want
        });
        if whole {
            break;
        }
    }
    assert!(whole, "evicted pods were not recreated on other nodes");
    let evictions = h
        .world()
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/eviction") && w.status == 201)
        .count();
    assert!(evictions >= 3, "{evictions}");
    h.shutdown().await;
}

fn pods_on(h: &SimHandle, node: &str) -> Vec<String> {
    let (pods, _) = h.world().store.list(&sim::resources::PODS, None);
    pods.iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn node_of(h: &SimHandle, ns: &str, name: &str) -> String {
    let p = h
        .world()
        .store
        .get(&sim::resources::PODS, ns, name)
        .unwrap();
    p["spec"]["nodeName"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_reports_a_blocking_pdb() {
    let Some(k) = Kubectl::new() else { return };
    let (h, _dir) = start(vec![Scenario::PdbBlocks], 20.0).await;
    let node = node_of(&h, "apps", "postgres-0");
    let (ok, out, err) = k
        .run(
            &h.kubeconfig_path(),
            &[
                "drain",
                &node,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout",
                "8s",
            ],
        )
        .await;
    assert!(!ok, "drain should fail:\n{out}\n{err}");
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    assert!(err.contains("postgres-0"), "{err}");
    // The protected pod is still there and running.
    assert_eq!(node_of(&h, "apps", "postgres-0"), node);
    let pdbs = k.ok(&h, &["get", "pdb", "-n", "apps"]).await;
    let row: Vec<&str> = pdbs
        .lines()
        .find(|l| l.starts_with("postgres"))
        .unwrap()
        .split_whitespace()
        .collect();
    // NAME MIN-AVAILABLE MAX-UNAVAILABLE ALLOWED-DISRUPTIONS AGE
    assert_eq!(&row[1..4], ["N/A", "0", "0"], "{pdbs}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longhorn_blocks_draining_the_last_replica() {
    let Some(k) = Kubectl::new() else { return };
    let (h, _dir) = start(vec![Scenario::LastReplica], 20.0).await;
    let pdbs = k.ok(&h, &["get", "pdb", "-n", "longhorn-system"]).await;
    assert!(pdbs.contains("instance-manager-"), "{pdbs}");
    let (ok, out, err) = k
        .run(
            &h.kubeconfig_path(),
            &[
                "drain",
                "node1",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout",
                "6s",
            ],
        )
        .await;
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("disruption budget"), "{err}");
    assert!(err.contains("pods/\"instance-manager-"), "{err}");
    assert!(err.contains("-n \"longhorn-system\""), "{err}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_the_unauthenticated_and_the_malformed() {
    let Some(k) = Kubectl::new() else { return };
    let (h, dir) = start(vec![], 1.0).await;
    // A kubeconfig with the CA but a wrong token instead of the client certificate.
    let text = std::fs::read_to_string(h.kubeconfig_path()).unwrap();
    let anon: String = text
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| {
            if l.trim() == "user:" {
                "  user: {token: not-the-token}".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let anon_path = dir.path().join("anon-kubeconfig");
    std::fs::write(&anon_path, anon).unwrap();
    let (ok, _, err) = k.run(&anon_path, &["get", "nodes"]).await;
    assert!(!ok);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    assert!(h.world().writes().is_empty());

    let (ok, _, err) = k
        .run(
            &h.kubeconfig_path(),
            &["get", "pods", "-A", "--field-selector", "spec.bogus=1"],
        )
        .await;
    assert!(!ok);
    assert!(
        err.contains("field label not supported: spec.bogus"),
        "{err}"
    );
    let (ok, _, err) = k.run(&h.kubeconfig_path(), &["get", "node", "nope"]).await;
    assert!(!ok);
    assert!(err.contains("nodes \"nope\" not found"), "{err}");
    let (ok, _, err) = k.run(&h.kubeconfig_path(), &["cordon", "nope"]).await;
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_table_rows() {
    use tokio::io::AsyncBufReadExt;
    let Some(k) = Kubectl::new() else { return };
    let (h, _dir) = start(vec![], 20.0).await;
    let mut child = tokio::process::Command::new(&k.bin)
        .env("HOME", k.home.path())
        .env("KUBECONFIG", h.kubeconfig_path())
        .args(["get", "nodes", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The initial listing, then the change as a row with the server's columns.
    let mut seen = 0;
    while seen < 5 {
        let l = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!l.contains("Unable to decode"), "{l}");
        seen += 1;
    }
    k.ok(&h, &["cordon", "node1"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let l = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if l.starts_with("node1")
            && l.contains("Ready,SchedulingDisabled")
            && l.contains("control-plane,etcd,master")
        {
            break;
        }
    }
    let _ = child.kill().await;
    h.shutdown().await;
}

/// Longhorn's Engines and Settings as stock kubectl reads them: after a reboot with
/// `slow-rebuild`, a volume's Engine reports its replica's rebuild (address → progress) and
/// the replica in `WO` mode; `replenishment-wait=60` is the Setting's top-level `value`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_engine_rebuild_progress_and_settings() {
    let Some(k) = Kubectl::new() else { return };
    let scenarios = homeinfra_tui::sim::scenario::parse_all(&[
        "slow-rebuild=30".to_string(),
        "replenishment-wait=60".to_string(),
    ])
    .unwrap();
    let (h, _dir) = start(scenarios, 50.0).await;
    let ns = ["-n", "longhorn-system"];
    let setting = k
        .ok(
            &h,
            &[
                &[
                    "get",
                    "settings.longhorn.io",
                    "replica-replenishment-wait-interval",
                    "-o",
                    "jsonpath={.value}",
                ][..],
                &ns[..],
            ]
            .concat(),
        )
        .await;
    assert_eq!(setting, "60");
    h.world().reboot("node4").unwrap();
    let mut seen = None;
    for _ in 0..100 {
        let out = k
            .ok(
                &h,
                &[&["get", "engines.longhorn.io", "-o", "json"][..], &ns[..]].concat(),
            )
            .await;
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let items = doc["items"].as_array().unwrap().clone();
        assert!(!items.is_empty(), "{out}");
        if let Some((e, addr, st)) = items.iter().find_map(|e| {
            let rs = e["status"]["rebuildStatus"].as_object()?;
            let (addr, st) = rs.iter().next()?;
            Some((e.clone(), addr.clone(), st.clone()))
        }) {
            seen = Some((e, addr, st));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (engine, addr, st) = seen.expect("an engine reports a rebuild after the reboot");
    assert_eq!(st["isRebuilding"], true, "{st}");
    assert_eq!(st["state"], "in_progress", "{st}");
    assert!(st["progress"].as_u64().unwrap() < 100, "{st}");
    let name = engine["status"]["currentReplicaAddressMap"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, a)| a.as_str() == Some(addr.as_str()))
        .map(|(n, _)| n.clone())
        .expect("the rebuilt replica is in the address map");
    assert_eq!(
        engine["status"]["replicaModeMap"][&name], "WO",
        "{engine:#}"
    );
    h.shutdown().await;
}
