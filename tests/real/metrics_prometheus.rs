//! The Mimir client against the REAL Prometheus of `scripts/test-env.sh` (route prefix
//! `/prometheus`, 1 s scrape of a real node_exporter and the real 3-member etcd).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory::{self, Inventory};
use homeinfra_tui::sources::mimir::{self, Mimir};

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One control plane at 127.0.0.1: node_exporter (127.0.0.1:19100) and the etcd members
/// (127.0.0.1:2381x) all map to it.
fn loopback_inventory() -> Inventory {
    inventory::parse(
        std::path::Path::new("hosts.json"),
        r#"{"local": {"hostname":"localnode","system":"x86_64-linux","profile":"p","role":"init",
            "region":"r","zone":"z","ip":"127.0.0.1","gateway":"127.0.0.254","maskLength":8}}"#,
    )
    .unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn cfg(url: &str) -> MimirConfig {
    MimirConfig {
        url: Some(url.to_string()),
        timeout_secs: 5,
        ..Default::default()
    }
}

/// Poll `refresh` until `done` holds (Prometheus needs ~6 s for its first samples).
async fn poll_until(
    m: &Mimir,
    inv: &Inventory,
    secs: u64,
    done: impl Fn(&homeinfra_tui::model::metrics::MetricsState) -> bool,
) -> homeinfra_tui::model::metrics::MetricsState {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = m.refresh(inv, now()).await;
        match st {
            Ok(st) if done(&st) => return st,
            other if Instant::now() > end => panic!("condition not met in {secs} s: {other:#?}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Put a key into the shared test etcd now and then (its own prefix; nothing else touched).
async fn write_etcd_keys() {
    let Ok(eps) = std::env::var("HOMEINFRA_TEST_ETCD_ENDPOINTS") else {
        return;
    };
    let ep = eps.split(',').next().unwrap_or_default().to_string();
    let http = reqwest::Client::new();
    for i in 0..600u32 {
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let body = serde_json::json!({"key": b("homeinfra-test/metrics/tick"), "value": b(&i.to_string())});
        let _ = http
            .post(format!("{ep}/v3/kv/put"))
            .json(&body)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_default_query_returns_data() {
    let Some(url) = common::require_env("HOMEINFRA_TEST_PROM_URL", "real Prometheus") else {
        return;
    };
    init();
    let inv = loopback_inventory();
    let m = Mimir::new(&cfg(&url)).unwrap();
    m.validate().await.unwrap();
    // fsync/commit quantiles are NaN while etcd writes nothing: keep writing a test key.
    let writer = tokio::spawn(write_etcd_keys());
    let st = poll_until(&m, &inv, 60, |st| {
        let h = &st.hosts["local"];
        st.query_errors.is_empty()
            && !h.is_no_data()
            && [
                &h.cpu_pct,
                &h.memory_pct,
                &h.root_fs_pct,
                &h.net_rx_bps,
                &h.net_tx_bps,
            ]
            .iter()
            .all(|s| s.current.is_some() && !s.points.is_empty())
            && st.etcd.len() == 3
            && st.etcd.values().all(|e| {
                e.wal_fsync_p99_ms.is_some()
                    && e.backend_commit_p99_ms.is_some()
                    && e.has_leader == Some(true)
                    && e.db_size_bytes.is_some()
                    && e.quota_bytes.is_some()
                    && e.leader_changes.is_some()
            })
    })
    .await;
    writer.abort();
    let h = &st.hosts["local"];
    for (name, s) in [
        ("cpu", &h.cpu_pct),
        ("memory", &h.memory_pct),
        ("fs", &h.root_fs_pct),
    ] {
        let v = s.current.unwrap();
        assert!((0.0..=100.0).contains(&v), "{name} = {v}");
    }
    assert!(h.net_rx_bps.current.unwrap() >= 0.0);
    for e in st.etcd.values() {
        assert_eq!(e.host.as_deref(), Some("local"));
        assert!(e.wal_fsync_p99_ms.unwrap() > 0.0 && e.wal_fsync_p99_ms.unwrap() < 10_000.0);
        assert!(e.quota_bytes.unwrap() > e.db_size_bytes.unwrap());
    }
    // Sparkline points are 30 s apart inside the 30 min window.
    let pts = &h.memory_pct.points;
    assert!(pts.windows(2).all(|w| (w[1].0 - w[0].0) % 30 == 0));
    assert!(pts.first().unwrap().0 >= st.at - 1800);
    // No alert rules on the shared Prometheus: the alert query answers, with nothing firing.
    assert!(st.alerts.is_empty());
}

#[tokio::test]
async fn bad_promql_override_names_the_query_and_prometheus_message() {
    let Some(url) = common::require_env("HOMEINFRA_TEST_PROM_URL", "real Prometheus") else {
        return;
    };
    init();
    let mut c = cfg(&url);
    c.queries.insert(
        "memory".into(),
        "sum by (instance (node_memory_MemTotal_bytes)".into(),
    );
    let err = Mimir::new(&c)
        .unwrap()
        .validate()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("query \"memory\" is invalid"), "{err}");
    // Prometheus's own parser message (not ours).
    assert!(err.contains("parse error"), "{err}");
}

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, HeaderMap)>>>);

/// A recording proxy in front of the real Prometheus: keeps every request's path and headers.
async fn proxy(State((rec, upstream)): State<(Recorded, String)>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    rec.0
        .lock()
        .unwrap()
        .push((path.clone(), req.headers().clone()));
    let origin = upstream.trim_end_matches("/prometheus");
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{origin}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ct = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.unwrap();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    if let Some(ct) = ct {
        r.headers_mut().insert("content-type", ct);
    }
    r
}

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn tenant_and_basic_auth_reach_the_server() {
    let Some(upstream) = common::require_env("HOMEINFRA_TEST_PROM_URL", "real Prometheus") else {
        return;
    };
    init();
    let rec = Recorded::default();
    let app = Router::new()
        .fallback(proxy)
        .with_state((rec.clone(), upstream.clone()));
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let mut c = cfg(&format!("{base}/prometheus/"));
    c.tenant = Some("homelab".into());
    c.auth.basic_auth_user = Some("ops".into());
    c.auth.basic_auth_password_file = Some(pw);
    let m = Mimir::new(&c).unwrap();
    let st = m.refresh(&loopback_inventory(), now()).await.unwrap();
    assert!(st.query_errors.is_empty(), "{:?}", st.query_errors);
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        mimir::DEFAULT_QUERIES.len(),
        "one request per query"
    );
    for (path, h) in &seen {
        // No double slash despite the trailing slash in the configured URL.
        assert!(path.starts_with("/prometheus/api/v1/query"), "{path}");
        assert_eq!(h["x-scope-orgid"], "homelab");
        // base64("ops:s3cret-pw")
        assert_eq!(h["authorization"], "Basic b3BzOnMzY3JldC1wdw==");
    }
    // The client's Debug output never shows the credentials.
    assert!(!format!("{m:?}").contains("b3Bz"));
}

#[tokio::test]
async fn unauthorized_and_unreachable_read_clearly() {
    init();
    // Mimir answers 401 in plain text.
    let app = Router::new()
        .fallback(|| async { (StatusCode::UNAUTHORIZED, "no org id\n").into_response() });
    let base = serve(app).await;
    let mut c = cfg(&format!("{base}/prometheus"));
    c.auth.bearer_token_file = None;
    let m = Mimir::new(&c).unwrap();
    let err = m.refresh(&loopback_inventory(), now()).await.unwrap_err();
    assert_eq!(err, "Mimir: unauthorized (check [mimir] credentials)");

    // Nothing listens: an error naming the address and the cause, never a panic.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let m = Mimir::new(&cfg(&format!("http://127.0.0.1:{port}/prometheus"))).unwrap();
    let err = m.refresh(&loopback_inventory(), now()).await.unwrap_err();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    // Sourced keeps "since when" across failures.
    let mut s = homeinfra_tui::model::Sourced::<u32>::configured();
    let t0 = jiff::Timestamp::now();
    s.record(Err(err.clone()), t0);
    s.record(Err(err), t0 + jiff::SignedDuration::from_secs(15));
    assert_eq!(s.status.error.unwrap().since, t0);
}

/// An auth proxy in front of the real Prometheus: only `ops:s3cret-pw` gets through.
async fn auth_proxy(state: State<(Recorded, String)>, req: Request) -> Response {
    // base64("ops:s3cret-pw")
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some("Basic b3BzOnMzY3JldC1wdw==")
    {
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    proxy(state, req).await
}

/// The upgrade guards read alerts and gates through the same Mimir client as the dashboard:
/// behind basic auth they see the real Prometheus; with a wrong password they cannot verify,
/// and no message shows the password or the URL's userinfo.
#[tokio::test]
async fn the_upgrade_guards_read_a_mimir_behind_basic_auth() {
    use homeinfra_tui::operations::upgrade::live::LiveHealth;
    use homeinfra_tui::operations::upgrade::world::HealthProvider;
    let Some(upstream) = common::require_env("HOMEINFRA_TEST_PROM_URL", "real Prometheus") else {
        return;
    };
    init();
    let rec = Recorded::default();
    let app = Router::new()
        .fallback(auth_proxy)
        .with_state((rec.clone(), upstream.clone()));
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let health = |mimir: MimirConfig| {
        let mut config = homeinfra_tui::config::Config {
            mimir,
            ..Default::default()
        };
        config.etcd.enabled = false;
        LiveHealth::new(&homeinfra_tui::base::Env::new(config, loopback_inventory()))
    };
    let gates = vec!["up{job=\"node\"} == 0".to_string()];

    let mut c = cfg(&format!("{base}/prometheus"));
    c.auth.basic_auth_user = Some("ops".into());
    c.auth.basic_auth_password_file = Some(pw.clone());
    let h = health(c).gather(&gates).await;
    let alerts = h.alerts.expect("metrics configured");
    assert!(alerts.is_ok(), "{alerts:?}");
    assert_eq!(h.gates.len(), 1);
    assert_eq!(h.gates[0].series, Ok(0), "{:?}", h.gates);
    assert!(h.read_at.metrics.is_some());
    assert!(!rec.0.lock().unwrap().is_empty(), "through the auth proxy");

    // A wrong password: cannot verify, the message names the server, not the secret.
    std::fs::write(&pw, "wrong-pw\n").unwrap();
    let mut c = cfg(&format!("{base}/prometheus"));
    c.auth.basic_auth_user = Some("ops".into());
    c.auth.basic_auth_password_file = Some(pw.clone());
    let h = health(c).gather(&gates).await;
    let err = h.alerts.expect("metrics configured").unwrap_err();
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!err.contains("wrong-pw") && !err.contains("b3Bz"), "{err}");
    assert!(h.gates[0].series.is_err());

    // Credentials in the URL itself are never shown back.
    let port = base.rsplit(':').next().unwrap();
    let c = cfg(&format!("http://ops:url-s3cret@127.0.0.1:{port}/nowhere"));
    let h = health(c).gather(&gates).await;
    let err = match h.alerts.expect("metrics configured") {
        Ok(a) => panic!("{a:?}"),
        Err(e) => e,
    };
    let gate_err = h.gates[0].series.clone().unwrap_err();
    for m in [&err, &gate_err] {
        assert!(!m.contains("url-s3cret") && !m.contains("ops:"), "{m}");
    }
}
