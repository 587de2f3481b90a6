//! Every scenario, seen through the simulator's API; the control API; unknown names.

use std::time::Duration;

use homeinfra_tui::sim::{self, Scenario, SimHandle, SimOptions};
use serde_json::{Value, json};

struct Sim {
    h: SimHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Sim {
    async fn start(scenarios: &[&str]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let scenarios: Vec<Scenario> = scenarios.iter().map(|s| s.parse().unwrap()).collect();
        let dir = tempfile::tempdir().unwrap();
        let h = sim::start(
            SimOptions {
                scenarios,
                speed: 20.0,
                ..Default::default()
            },
            dir.path(),
        )
        .await
        .unwrap();
        let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", h.token()).parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .default_headers(headers)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Self { h, http, _dir: dir }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.h.api_url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.h.api_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn volumes(&self) -> Vec<Value> {
        self.get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumes")
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Poll until `f` holds (controllers run on a short tick).
    async fn eventually<F, Fut>(&self, what: &str, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..80 {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never: {what}");
    }
}

fn ready_status(n: &Value) -> String {
    n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_by_default() {
    let s = Sim::start(&[]).await;
    let vols = s.volumes().await;
    assert_eq!(vols.len(), 4);
    assert!(
        vols.iter().all(|v| v["status"]["robustness"] == "healthy"),
        "{vols:?}"
    );
    let nodes = s.get("/api/v1/nodes").await;
    assert!(
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| ready_status(n) == "True")
    );
    let pdbs = s
        .get("/apis/policy/v1/namespaces/longhorn-system/poddisruptionbudgets")
        .await;
    assert!(
        pdbs["items"].as_array().unwrap().is_empty(),
        "no last replica anywhere"
    );
    let web = s
        .get("/apis/policy/v1/namespaces/apps/poddisruptionbudgets/web")
        .await;
    assert_eq!(web["status"]["disruptionsAllowed"], 1);
    assert_eq!(web["status"]["currentHealthy"], 3);
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_scenarios() {
    let s = Sim::start(&["degraded-volume", "last-replica", "stale-backup"]).await;
    let vols = s.volumes().await;
    assert_eq!(vols.len(), 5);
    let degraded: Vec<_> = vols
        .iter()
        .filter(|v| v["status"]["robustness"] == "degraded")
        .collect();
    assert_eq!(degraded.len(), 1, "{vols:?}");
    let single: Vec<_> = vols
        .iter()
        .filter(|v| v["spec"]["numberOfReplicas"] == 1)
        .collect();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0]["status"]["currentNodeID"], "node1");
    let replicas = s
        .get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/replicas")
        .await;
    let failed: Vec<_> = replicas["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["spec"]["failedAt"] != "")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"]["currentState"], "stopped");
    // Longhorn's block-if-contains-last-replica: a PDB on node1's instance manager.
    let pdbs = s
        .get("/apis/policy/v1/namespaces/longhorn-system/poddisruptionbudgets")
        .await;
    let pdbs = pdbs["items"].as_array().unwrap();
    assert!(
        pdbs.iter().any(
            |p| p["spec"]["selector"]["matchLabels"]["longhorn.io/node"] == "node1"
                && p["spec"]["minAvailable"] == 1
        )
    );
    // Stale backup: some volume's last backup is days old, others are recent.
    let now = jiff::Timestamp::now();
    let ages: Vec<i64> = vols
        .iter()
        .filter_map(|v| {
            v["status"]["lastBackupAt"]
                .as_str()
                .filter(|s| !s.is_empty())
        })
        .map(|t| (now - t.parse::<jiff::Timestamp>().unwrap()).get_seconds() / 3600)
        .collect();
    assert!(ages.iter().any(|h| *h > 72), "{ages:?}");
    assert!(ages.iter().any(|h| *h < 24), "{ages:?}");
    // The degraded volume heals once the fault is cleared.
    let (code, _) = s
        .send(
            reqwest::Method::DELETE,
            "/sim/v1/faults/degraded-volume",
            None,
        )
        .await;
    assert_eq!(code, 200);
    s.eventually("volumes healthy again", || async {
        s.volumes()
            .await
            .iter()
            .filter(|v| v["spec"]["numberOfReplicas"] != 1)
            .all(|v| v["status"]["robustness"] == "healthy")
    })
    .await;
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_scenarios() {
    let s = Sim::start(&[
        "unreachable-host",
        "reboot-needed",
        "node-never-returns=node3",
        "pdb-blocks",
    ])
    .await;
    let n4 = s.get("/api/v1/nodes/node4").await;
    assert_eq!(ready_status(&n4), "Unknown");
    assert!(
        n4["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable")
    );
    let state = s.get("/sim/v1/state").await;
    let hosts = state["hosts"].as_array().unwrap();
    let host = |name: &str| {
        hosts
            .iter()
            .find(|h| h["hostname"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(host("node4")["unreachable"], true);
    assert_eq!(host("node1")["reboot_needed"], true);
    assert_eq!(host("node3")["never_returns"], true);
    let pdb = s
        .get("/apis/policy/v1/namespaces/apps/poddisruptionbudgets/postgres")
        .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);

    // node3 reboots and never comes back; its etcd member stays down.
    let (code, _) = s
        .send(reqwest::Method::POST, "/sim/v1/hosts/node3/reboot", None)
        .await;
    assert_eq!(code, 202);
    s.eventually("node3 NotReady", || async {
        ready_status(&s.get("/api/v1/nodes/node3").await) == "Unknown"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // > the 2 s reboot at speed 20
    assert_eq!(ready_status(&s.get("/api/v1/nodes/node3").await), "Unknown");
    let http = reqwest::Client::new();
    let url3 = &s.h.etcd_urls()[2];
    assert!(
        http.post(format!("{url3}/v3/maintenance/status"))
            .body("{}")
            .send()
            .await
            .is_err()
    );
    // Its replicas stopped: the volumes holding one are degraded.
    let vols = s.volumes().await;
    assert!(
        vols.iter().any(|v| v["status"]["robustness"] == "degraded"),
        "{vols:?}"
    );
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_degrades_then_rebuilds() {
    let s = Sim::start(&[]).await;
    let (code, _) = s
        .send(reqwest::Method::POST, "/sim/v1/hosts/node2/reboot", None)
        .await;
    assert_eq!(code, 202);
    s.eventually("degraded during the reboot", || async {
        s.volumes()
            .await
            .iter()
            .filter(|v| v["status"]["robustness"] == "degraded")
            .count()
            == 3
    })
    .await;
    s.eventually("node2 back", || async {
        ready_status(&s.get("/api/v1/nodes/node2").await) == "True"
    })
    .await;
    for _ in 0..100 {
        if s.volumes()
            .await
            .iter()
            .all(|v| v["status"]["robustness"] == "healthy")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s.volumes()
            .await
            .iter()
            .all(|v| v["status"]["robustness"] == "healthy")
    );
    let node = s.get("/api/v1/nodes/node2").await;
    assert_ne!(node["status"]["nodeInfo"]["bootID"], "", "a new boot id");
    let events = s
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=node2")
        .await;
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"NodeNotReady") && reasons.contains(&"NodeReady"),
        "{reasons:?}"
    );
    s.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_and_errors() {
    let s = Sim::start(&[]).await;
    // Unauthenticated: 401 with a Status body, for the API and the control API alike.
    let anon = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(s.h.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    for path in ["/api/v1/nodes", "/version", "/sim/v1/state"] {
        let r = anon
            .get(format!("{}{path}", s.h.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "Unauthorized");
    }
    // Faults at runtime, with unknown names refused.
    let (code, body) = s
        .send(
            reqwest::Method::POST,
            "/sim/v1/faults",
            Some(json!({"scenario": "meltdown"})),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("valid scenarios: healthy, degraded-volume"),
        "{body}"
    );
    let (code, _) = s
        .send(
            reqwest::Method::POST,
            "/sim/v1/faults",
            Some(json!({"scenario": "pdb-blocks"})),
        )
        .await;
    assert_eq!(code, 200);
    let pdb = s
        .get("/apis/policy/v1/namespaces/apps/poddisruptionbudgets/postgres")
        .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    let (code, body) = s.send(reqwest::Method::POST, "/api/v1/namespaces/apps/pods/postgres-0/eviction",
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "postgres-0", "namespace": "apps"}}))).await;
    assert_eq!(code, 429);
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    // Status errors like the real server's.
    let (code, body) = s
        .send(
            reqwest::Method::GET,
            "/api/v1/namespaces/apps/pods/nope",
            None,
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    let (code, body) = s.send(reqwest::Method::POST, "/api/v1/namespaces/apps/configmaps",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}))).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/namespaces/apps/configmaps",
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
        )
        .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let (code, body) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/namespaces/apps/configmaps",
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));
    let (code, body) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/namespaces/apps/configmaps",
            Some(json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "y"}})),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, body) = s
        .send(
            reqwest::Method::GET,
            "/api/v1/pods?labelSelector=a%20in%20(",
            None,
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    // A merge patch and a stale update.
    let r = s
        .http
        .patch(format!(
            "{}/api/v1/namespaces/apps/configmaps/x",
            s.h.api_url()
        ))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"data":{"b":"2"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cm: Value = r.json().await.unwrap();
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    let mut stale = cm.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, body) = s
        .send(
            reqwest::Method::PUT,
            "/api/v1/namespaces/apps/configmaps/x",
            Some(stale),
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (409, Some("Conflict")));

    // Every write was recorded, with method, path and time; reads were not.
    let reqs = s.get("/sim/v1/requests").await;
    let reqs = reqs["requests"].as_array().unwrap();
    let seen: Vec<(String, String, u64)> = reqs
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        seen.contains(&(
            "POST".into(),
            "/api/v1/namespaces/apps/pods/postgres-0/eviction".into(),
            429
        )),
        "{seen:?}"
    );
    assert!(seen.contains(&(
        "PATCH".into(),
        "/api/v1/namespaces/apps/configmaps/x".into(),
        200
    )));
    assert!(seen.iter().all(|(m, _, _)| m != "GET"));
    assert!(reqs.iter().all(|r| {
        r["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    }));
    s.h.shutdown().await;
}

#[test]
fn unknown_scenario_lists_the_valid_ones() {
    let err = sim::scenario::parse_all(&["healthy".into(), "nope".into()])
        .unwrap_err()
        .to_string();
    for n in sim::scenario::NAMES {
        assert!(err.contains(n), "{err}");
    }
}
