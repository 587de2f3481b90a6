//! The Mimir client against the simulator's Prometheus face (what `demo` runs): every default
//! query answers for every host, the slow-disk knob shows as an 80 ms fsync p99 and an alert, a
//! down node_exporter is "no data", and the metadata endpoints and error shape are Prometheus's.

use std::sync::Arc;

use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory;
use homeinfra_tui::model::Severity;
use homeinfra_tui::sim::promql;
use homeinfra_tui::sources::mimir::{Mimir, alert_findings};
use serde_json::Value;

fn inv() -> inventory::Inventory {
    inventory::parse(
        std::path::Path::new("hosts.json"),
        r#"{
          "instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
          "instance_2": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"server","region":"r","zone":"z","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24},
          "instance_3": {"hostname":"node3","system":"x86_64-linux","profile":"p","role":"server","region":"r","zone":"z","ip":"192.0.2.13","gateway":"192.0.2.1","maskLength":24},
          "instance_4": {"hostname":"node4","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"192.0.2.14","gateway":"192.0.2.1","maskLength":24}
        }"#,
    )
    .unwrap()
}

#[tokio::test]
async fn mimir_client_against_the_sim() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = inv();
    let (generator, prom) = promql::for_inventory(&inv);
    // Both faces mount side by side (as the sim serves them).
    let app = prom.merge(homeinfra_tui::sim::loki::for_inventory(&inv).1);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/prometheus", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let cfg = MimirConfig {
        url: Some(base.clone()),
        ..Default::default()
    };
    let m = Mimir::new(&cfg).unwrap();
    m.validate().await.unwrap();
    let now = jiff::Timestamp::now().as_second();
    let st = m.refresh(&inv, now).await.unwrap();
    assert!(st.query_errors.is_empty(), "{:?}", st.query_errors);
    assert!(st.unmapped.is_empty(), "{:?}", st.unmapped);
    for (id, h) in &st.hosts {
        for s in [
            &h.cpu_pct,
            &h.memory_pct,
            &h.root_fs_pct,
            &h.net_rx_bps,
            &h.net_tx_bps,
        ] {
            assert!(s.current.is_some(), "{id}");
            assert_eq!(s.points.len(), 61, "{id}: 30 min at 30 s");
        }
        let cpu = h.cpu_pct.current.unwrap();
        assert!((0.0..100.0).contains(&cpu), "{id}: cpu {cpu}");
    }
    assert_eq!(st.etcd.len(), 3);
    for e in st.etcd.values() {
        assert!(e.wal_fsync_p99_ms.unwrap() < 10.0, "{e:?}");
        assert_eq!(e.has_leader, Some(true));
        assert!(e.host.is_some());
    }
    assert!(st.alerts.is_empty());

    // Knobs: a slow disk on instance_2, node_exporter of instance_4 down.
    generator.update(|c| {
        c.slow_disk = Some("instance_2".into());
        c.down.insert("instance_4".into());
    });
    let st = m.refresh(&inv, now).await.unwrap();
    let slow = st.etcd_at("192.0.2.12").unwrap();
    assert!(
        (slow.wal_fsync_p99_ms.unwrap() - 80.0).abs() < 0.01,
        "{slow:?}"
    );
    assert!(st.etcd_at("192.0.2.11").unwrap().wal_fsync_p99_ms.unwrap() < 10.0);
    assert!(st.hosts["instance_4"].is_no_data());
    assert!(!st.hosts["instance_3"].is_no_data());
    let f = alert_findings(&st);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].severity, f[0].subject.as_str()),
        (Severity::Warning, "instance_2")
    );

    // Metadata endpoints and the error shape.
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = get(format!("{base}/api/v1/labels")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"__name__") && names.contains(&"instance") && names.contains(&"le"));
    let (s, v) = get(format!(
        "{base}/api/v1/series?match[]={}",
        urlencode(r#"up{job="etcd"}"#)
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["data"][0]["__name__"], "up");
    let (s, v) = get(format!("{base}/api/v1/label/job/values")).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], serde_json::json!(["etcd", "longhorn", "node"]));
    let (s, v) = get(format!(
        "{base}/api/v1/query?query={}",
        urlencode("quantile_over_time(0.5, up[5m])")
    ))
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let (s, v) = get(format!("{base}/api/v1/query?query={}", urlencode("up +"))).await;
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")));
    // Longhorn series are there for whoever asks.
    let (s, v) = get(format!(
        "{base}/api/v1/query?query={}",
        urlencode("count(longhorn_volume_robustness == 1)")
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["result"][0]["value"][1], "4");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Queries coalesce: however often a refresh is asked for, no query is ever in flight twice.
#[tokio::test]
async fn never_two_of_one_query_in_flight() {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::extract::{RawQuery, State};
    use homeinfra_tui::sources::mimir;

    let _ = rustls::crypto::ring::default_provider().install_default();
    #[derive(Default)]
    struct Track {
        now: HashMap<String, usize>,
        max: HashMap<String, usize>,
        total: usize,
    }
    type Shared = Arc<Mutex<Track>>;
    async fn slow(
        State(t): State<Shared>,
        RawQuery(q): RawQuery,
        body: String,
    ) -> axum::Json<Value> {
        // The PromQL text identifies the query (times differ from round to round).
        let all = format!("{}&{body}", q.unwrap_or_default());
        let key = form_urlencoded::parse(all.as_bytes())
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        {
            let mut t = t.lock().unwrap();
            t.total += 1;
            let n = {
                let n = t.now.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            let m = t.max.entry(key.clone()).or_default();
            *m = (*m).max(n);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        *t.lock().unwrap().now.get_mut(&key).unwrap() -= 1;
        axum::Json(
            serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
        )
    }
    let track: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::any(slow))
        .with_state(track.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/prometheus", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app.into_make_service()).await.unwrap() });
    let cfg = MimirConfig {
        url: Some(base),
        refresh_secs: 1,
        ..Default::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let h = mimir::spawn(cfg, Arc::new(inv()), tx);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    for _ in 0..40 {
        h.refresh_now();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.task.abort();
    let t = track.lock().unwrap();
    // Validation plus a few rounds happened…
    assert!(t.total >= 2 * mimir::DEFAULT_QUERIES.len(), "{}", t.total);
    assert_eq!(t.max.len(), mimir::DEFAULT_QUERIES.len());
    // …and never two of the same query at once.
    assert!(
        t.max.values().all(|m| *m == 1),
        "{:?}",
        t.max.values().max()
    );
}

/// `check`'s one-shot gather: data when configured, a note when not, an error (with since
/// when) when unreachable.
#[tokio::test]
async fn gather_once_for_check() {
    use homeinfra_tui::sources::mimir::gather_once;
    use std::time::Duration;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = inv();
    let (_g, app) = promql::for_inventory(&inv);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = MimirConfig {
        url: Some(format!("http://{}/prometheus", l.local_addr().unwrap())),
        ..Default::default()
    };
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let s = gather_once(&cfg, &inv, Duration::from_secs(10)).await;
    assert!(s.status.error.is_none(), "{:?}", s.status.error);
    assert_eq!(s.data.unwrap().hosts.len(), 4);
    let s = gather_once(&MimirConfig::default(), &inv, Duration::from_secs(1)).await;
    assert!(!s.status.configured);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let cfg = MimirConfig {
        url: Some(format!("http://127.0.0.1:{port}/prometheus")),
        ..Default::default()
    };
    let s = gather_once(&cfg, &inv, Duration::from_secs(5)).await;
    assert!(s.status.configured && s.data.is_none());
    assert!(s.status.error.unwrap().message.contains("refused"));
}

/// The simulator's Alertmanager face with our own client: the world's alerts (the slow-disk
/// knob's), a silence that mutes one (the alert says by which), `silenced=false` leaving it
/// out (what the alert guard reads), an extension in place (same id), and an expiry; the Mimir
/// client's alert list, taken from Alertmanager, marks the silenced alert as such.
#[tokio::test]
async fn alertmanager_face_honours_silences() {
    use homeinfra_tui::config::{AlertmanagerConfig, SilenceMatcher};
    use homeinfra_tui::sim::alertmanager::AlertmanagerFace;
    use homeinfra_tui::sources::alertmanager::Alertmanager;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = inv();
    let (generator, prom) = promql::for_inventory(&inv);
    generator.update(|c| c.slow_disk = Some("instance_2".into()));
    let app = prom.merge(AlertmanagerFace::new(generator.clone()).router());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let cfg = AlertmanagerConfig {
        url: Some(format!("http://{addr}/alertmanager")),
        ..Default::default()
    };
    let am = Alertmanager::new(&cfg).unwrap();
    let all = am.alerts(false).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].name(), "EtcdHighFsyncDurations");
    assert_eq!(all[0].subject(), "192.0.2.12:2381");

    let m = SilenceMatcher::parse(r#"instance=~"192\.0\.2\.12(:[0-9]+)?""#).unwrap();
    let ends = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    let id = am.create_silence(&[m], ends, "test").await.unwrap();
    assert!(
        am.alerts(false).await.unwrap().is_empty(),
        "silenced: left out"
    );
    let muted = am.alerts(true).await.unwrap();
    assert_eq!(muted[0].silenced_by, vec![id.clone()]);
    let s = am.silence(&id).await.unwrap().unwrap();
    assert_eq!(s.status.state, "active");

    // The Mimir client's list comes from Alertmanager and marks it.
    let mimir = Mimir::new(&MimirConfig {
        url: Some(format!("http://{addr}/prometheus")),
        ..Default::default()
    })
    .unwrap()
    .with_alertmanager(Some(am.clone()));
    let st = mimir
        .refresh(&inv, jiff::Timestamp::now().as_second())
        .await
        .unwrap();
    assert_eq!(st.alerts.len(), 1);
    assert!(st.alerts[0].silenced, "{:?}", st.alerts);
    assert_eq!(st.alerts[0].host.as_deref(), Some("instance_2"));

    // Extended in place: same id, later end.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    assert_eq!(am.extend(&id, later, "test").await.unwrap(), id);
    let s2 = am.silence(&id).await.unwrap().unwrap();
    assert!(s2.ends_at > s.ends_at, "{} vs {}", s2.ends_at, s.ends_at);

    am.expire(&id).await.unwrap();
    assert_eq!(
        am.silence(&id).await.unwrap().unwrap().status.state,
        "expired"
    );
    assert_eq!(am.alerts(false).await.unwrap().len(), 1, "firing again");
    // Unknown silences: expiring them is no error, reading them says none.
    am.expire("no-such-id").await.unwrap();
    assert!(am.silence("no-such-id").await.unwrap().is_none());
}
