//! Cases a healthy Debian etcd 3.4 does not produce on demand, against a scripted stand-in
//! for the JSON gateway on loopback: a member list that only a quorum serves (etcd ≥ 3.5),
//! a member reachable only through its advertised client URL, an endpoint that is not in the
//! member list, etcd 3.6's `dbSizeQuota`, alarms; and the spawned source task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use homeinfra_tui::config::{EtcdConfig, Thresholds};
use homeinfra_tui::inventory::Inventory;
use homeinfra_tui::model::{Snapshot, Sourced, assess};
use homeinfra_tui::sources::Update;
use homeinfra_tui::sources::etcd::{Poller, Settings, poll_once, spawn};

/// What one fake member answers.
#[derive(Clone)]
struct Script {
    status: Value,
    members: Result<Value, Value>,
}

type Shared = Arc<Mutex<Script>>;

async fn status(State(s): State<Shared>) -> Response {
    let v = s.lock().unwrap().status.clone();
    axum::Json(v).into_response()
}

async fn members(State(s): State<Shared>) -> Response {
    match s.lock().unwrap().members.clone() {
        Ok(v) => axum::Json(v).into_response(),
        Err(v) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(v)).into_response(),
    }
}

async fn health() -> Response {
    axum::Json(json!({"health": "true"})).into_response()
}

/// Start a fake member; returns its URL and its script.
async fn fake(script: Script) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route("/v3/maintenance/status", post(status))
        .route("/v3/cluster/member/list", post(members))
        .route("/health", get(health))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}

fn status_json(id: u64, leader: u64) -> Value {
    json!({
        "header": {"cluster_id": "7", "member_id": id.to_string(), "raft_term": "2"},
        "version": "3.6.0", "dbSize": "1000", "dbSizeQuota": "1200",
        "leader": leader.to_string(), "raftIndex": "10", "raftTerm": "2"
    })
}

fn list_json(members: &[(u64, &str, &str)]) -> Value {
    let m: Vec<Value> = members
        .iter()
        .map(|(id, name, url)| json!({"ID": id.to_string(), "name": name, "clientURLs": [url]}))
        .collect();
    json!({"header": {"cluster_id": "7"}, "members": m})
}

fn cfg(endpoints: &[&str]) -> EtcdConfig {
    EtcdConfig {
        endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
        // Nothing listens on port 1: metrics are unavailable here.
        metrics_urls: vec!["http://127.0.0.1:1/metrics".into()],
        timeout_ms: 500,
        refresh_secs: 1,
        ..Default::default()
    }
}

/// Three members; e3 is only reachable through the client URL the member list advertises.
async fn three() -> (Vec<String>, Vec<Shared>) {
    let id = |i: u64| u64::MAX - i; // ids beyond i64, as real ones are
    let blank = Script {
        status: json!({}),
        members: Ok(json!({})),
    };
    let mut urls = Vec::new();
    let mut scripts = Vec::new();
    for _ in 0..3 {
        let (u, s) = fake(blank.clone()).await;
        urls.push(u);
        scripts.push(s);
    }
    let list = list_json(&[
        (id(1), "e1", &urls[0]),
        (id(2), "e2", &urls[1]),
        (id(3), "e3", &urls[2]),
    ]);
    for (i, s) in scripts.iter().enumerate() {
        *s.lock().unwrap() = Script {
            status: status_json(id(i as u64 + 1), id(1)),
            members: Ok(list.clone()),
        };
    }
    (urls, scripts)
}

#[tokio::test]
async fn members_behind_advertised_urls_quota_and_alarms() {
    let (urls, scripts) = three().await;
    // e1 reports a NOSPACE alarm about e2.
    scripts[0].lock().unwrap().status["errors"] =
        json!([format!("memberID:{} alarm:NOSPACE", u64::MAX - 2)]);
    let state = poll_once(&cfg(&[&urls[0], &urls[1]]), &Inventory::default())
        .await
        .unwrap();
    assert_eq!(state.members.len(), 3);
    assert!(state.members.iter().all(|m| m.healthy), "{state:#?}");
    let e3 = state.members.iter().find(|m| m.name == "e3").unwrap();
    assert_eq!(e3.endpoint.as_deref(), Some(urls[2].as_str()));
    assert_eq!(state.leader, Some(u64::MAX - 1));
    assert!(state.members.iter().all(|m| m.quota_bytes == Some(1200)));
    assert_eq!(state.members[0].alarms.len(), 1);

    let mut snap = Snapshot {
        etcd: Sourced::configured(),
        ..Default::default()
    };
    let now = jiff::Timestamp::now();
    snap.etcd.record(Ok(state), now);
    let f = assess(&snap, &Inventory::default(), &Thresholds::default(), now);
    let codes: Vec<_> = f
        .iter()
        .map(|f| (f.code.as_str(), f.subject.as_str()))
        .collect();
    // 1000 of 1200 bytes is 83 %: each member's DB is near its quota.
    assert_eq!(
        codes,
        vec![
            ("etcd.alarm", "e2"),
            ("etcd.db_quota", "e1"),
            ("etcd.db_quota", "e2"),
            ("etcd.db_quota", "e3")
        ]
    );
}

#[tokio::test]
async fn member_list_from_the_last_poll_when_no_member_serves_it() {
    let (urls, scripts) = three().await;
    let endpoints: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut poller = Poller::new(Settings::new(&cfg(&endpoints), &Inventory::default()));
    let first = poller.poll(jiff::Timestamp::now()).await.unwrap();
    assert!(first.notes.iter().all(|n| !n.contains("member list")));

    // Quorum lost on a newer etcd: the member list is refused, statuses say "no leader".
    for (i, s) in scripts.iter().enumerate() {
        let mut s = s.lock().unwrap();
        s.members = Err(json!({"error": "etcdserver: no leader", "code": 14}));
        s.status = status_json(u64::MAX - i as u64 - 1, 0);
        s.status["errors"] = json!(["etcdserver: no leader"]);
    }
    let state = poller.poll(jiff::Timestamp::now()).await.unwrap();
    let names: Vec<&str> = state.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["e1", "e2", "e3"]);
    assert!(state.members.iter().all(|m| m.reachable && !m.healthy));
    assert_eq!(state.leader, None);
    assert!(
        state.notes[0].starts_with(
            "the member list could not be read (HTTP 503: etcdserver: no leader); using the one read at "
        ),
        "{:?}",
        state.notes
    );

    // A fresh poller has no list to fall back on: each endpoint is a member of its own.
    let state = poll_once(&cfg(&endpoints), &Inventory::default())
        .await
        .unwrap();
    assert_eq!(state.members.len(), 3);
    assert_eq!(state.members[0].name, urls[0]);
    assert_eq!(
        state.notes[0],
        "the member list could not be read: HTTP 503: etcdserver: no leader"
    );
}

#[tokio::test]
async fn an_endpoint_outside_the_member_list_is_noted() {
    let (urls, _scripts) = three().await;
    let (stranger, _s) = fake(Script {
        status: status_json(42, u64::MAX - 1),
        members: Ok(list_json(&[])),
    })
    .await;
    let state = poll_once(&cfg(&[&urls[0], &stranger]), &Inventory::default())
        .await
        .unwrap();
    assert!(
        state
            .notes
            .iter()
            .any(|n| n
                == &format!("{stranger} answered as member 2a, which is not in the member list")),
        "{:?}",
        state.notes
    );
}

#[tokio::test]
async fn the_source_task_sends_updates_and_stops_with_its_receiver() {
    let (urls, _scripts) = three().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let task = spawn(&cfg(&[&urls[0]]), &Inventory::default(), tx);
    let Some(Update::Etcd(Ok(state))) = rx.recv().await else {
        panic!("expected an etcd state first");
    };
    assert_eq!(state.members.len(), 3);
    // The next poll comes after refresh_secs.
    let Some(Update::Etcd(Ok(_))) = rx.recv().await else {
        panic!("expected a second etcd state");
    };
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task ends once nobody listens")
        .unwrap();

    // A dead endpoint: an error update naming it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let task = spawn(&cfg(&["http://127.0.0.1:1"]), &Inventory::default(), tx);
    let Some(Update::Etcd(Err(e))) = rx.recv().await else {
        panic!("expected an error");
    };
    assert!(
        e.starts_with("no etcd endpoint answered: http://127.0.0.1:1: "),
        "{e}"
    );
    task.abort();
}
