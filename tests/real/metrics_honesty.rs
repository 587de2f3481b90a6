//! Keeps the simulator honest: the same samples go into a REAL Prometheus (backfilled with
//! `promtool tsdb create-blocks-from openmetrics`, served by our own Prometheus on our own port)
//! and into the sim's evaluator (parsed from the same OpenMetrics text); every expression —
//! every default query included — must give the same answer in both, within float tolerance.

use crate::common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeinfra_tui::sim::promql::generator::{GenAlert, GenConfig, GenHost, Generator};
use homeinfra_tui::sim::promql::{self, Provider, Series, expo};
use homeinfra_tui::sources::mimir::DEFAULT_QUERIES;
use serde_json::Value;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The data: a generated fleet (one slow-disk member, one host with node_exporter down, an
/// alert) plus a counter with resets.
fn data(start_ms: i64, end_ms: i64) -> Vec<Series> {
    let hosts = (1..=4)
        .map(|i| GenHost {
            id: format!("h{i}"),
            hostname: format!("node{i}"),
            ip: format!("127.0.1.{i}"),
            control_plane: i <= 3,
            cpus: 2,
        })
        .collect();
    let cfg = GenConfig {
        hosts,
        volumes: Vec::new(),
        alerts: vec![GenAlert {
            name: "HostHighLoad".into(),
            severity: "critical".into(),
            instance: Some("127.0.1.1:9100".into()),
        }],
        slow_disk: Some("h2".into()),
        down: ["h4".to_string()].into_iter().collect(),
        etcd_down: Default::default(),
        scrape_interval_ms: 15_000,
    };
    let g = Generator::new(cfg);
    g.update(|c| {
        c.volumes
            .push(homeinfra_tui::sim::promql::generator::GenVolume {
                name: "pvc-data".into(),
                node: "node1".into(),
                robustness: 2,
                capacity_bytes: 1e10,
            })
    });
    let mut out = g.select(&[], start_ms, end_ms);
    // A counter that resets twice.
    let mut v = 0.0;
    let mut samples = Vec::new();
    let mut t = start_ms - start_ms.rem_euclid(15_000);
    let mut i = 0;
    while t <= end_ms {
        v = if i % 97 == 50 {
            3.0
        } else {
            v + 7.5 + (i % 5) as f64
        };
        samples.push((t, v));
        t += 15_000;
        i += 1;
    }
    out.push(Series {
        labels: [
            ("__name__", "test_requests_total"),
            ("instance", "127.0.1.1:9100"),
            ("job", "node"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        samples,
    });
    out
}

const EXTRA: &[&str] = &[
    "up",
    "rate(test_requests_total[5m])",
    "increase(test_requests_total[10m])",
    "irate(test_requests_total[1m])",
    "increase(node_network_receive_bytes_total[10m])",
    r#"irate(node_cpu_seconds_total{mode="user"}[1m])"#,
    "sum without (cpu, mode) (rate(node_cpu_seconds_total[5m]))",
    "count by (job) (up)",
    "min by (instance) (node_filesystem_avail_bytes)",
    "avg(node_memory_MemAvailable_bytes)",
    "max(etcd_mvcc_db_total_size_in_bytes) / 1024 / 1024",
    "node_memory_MemAvailable_bytes / on (instance) node_memory_MemTotal_bytes > bool 0.5",
    r#"node_filesystem_avail_bytes{mountpoint=~"/|/boot"} < 100e9"#,
    r#"rate(node_network_transmit_bytes_total{device!="lo"}[2m]) * 8"#,
    "histogram_quantile(0.5, rate(etcd_disk_backend_commit_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.9, sum without (instance) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[3m])))",
    "longhorn_volume_robustness != 1",
    "sum by (node) (longhorn_node_storage_usage_bytes) / sum by (node) (longhorn_node_storage_capacity_bytes)",
    "up unless on (instance) node_memory_MemTotal_bytes",
    "up == 0 or etcd_server_has_leader",
    "avg_over_time(node_memory_MemAvailable_bytes[5m])",
    "max_over_time(etcd_mvcc_db_total_size_in_bytes[10m]) - min_over_time(etcd_mvcc_db_total_size_in_bytes[10m])",
    "delta(etcd_mvcc_db_total_size_in_bytes[10m])",
    "2 * 3 + 1",
    "-etcd_server_is_leader + 1",
    "node_memory_MemTotal_bytes - ignoring (job) node_memory_MemAvailable_bytes",
    "count(node_cpu_seconds_total) by (instance) > 4",
    "5 > bool 3",
    "rate(test_requests_total[5m] offset 5m)",
    "sum_over_time(up[2m]) / count_over_time(up[2m])",
    "idelta(test_requests_total[2m])",
    "clamp_max(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes, 0.5)",
    "abs(delta(etcd_mvcc_db_total_size_in_bytes[10m]))",
    "vector(scalar(count(up))) + time() - time()",
    "sqrt(sum by (instance) (irate(node_network_receive_bytes_total[1m])))",
    "sum(rate(etcd_disk_wal_fsync_duration_seconds_sum[5m])) / sum(rate(etcd_disk_wal_fsync_duration_seconds_count[5m]))",
];

type Answer = (String, BTreeMap<String, Vec<(f64, f64)>>);

/// `resultType` and, per label set, the `(t, v)` points of a Prometheus API answer.
fn answer(v: &Value) -> Answer {
    assert_eq!(v["status"], "success", "{v}");
    let d = &v["data"];
    let kind = d["resultType"].as_str().unwrap().to_string();
    let pt = |p: &Value| {
        let t = p[0].as_f64().unwrap();
        let s = p[1].as_str().unwrap();
        let v = match s {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => s.parse().unwrap(),
        };
        (t, v)
    };
    let mut out = BTreeMap::new();
    if kind == "scalar" {
        out.insert(String::new(), vec![pt(&d["result"])]);
        return (kind, out);
    }
    for r in d["result"].as_array().unwrap() {
        let key = serde_json::to_string(&r["metric"]).unwrap();
        let pts = if let Some(vals) = r["values"].as_array() {
            vals.iter().map(pt).collect()
        } else {
            vec![pt(&r["value"])]
        };
        out.insert(key, pts);
    }
    (kind, out)
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

fn compare(what: &str, real: &Answer, sim: &Answer) {
    assert_eq!(real.0, sim.0, "{what}: result type");
    assert_eq!(
        real.1.keys().collect::<Vec<_>>(),
        sim.1.keys().collect::<Vec<_>>(),
        "{what}: series differ"
    );
    for (k, rp) in &real.1 {
        let sp = &sim.1[k];
        assert_eq!(rp.len(), sp.len(), "{what} {k}: point count");
        for (r, s) in rp.iter().zip(sp) {
            assert!(
                close(r.0, s.0) && close(r.1, s.1),
                "{what} {k}: real {r:?} sim {s:?}"
            );
        }
    }
}

#[tokio::test]
async fn sim_evaluator_matches_real_prometheus() {
    let (Some(promtool), Some(prometheus)) = (
        common::require_program("promtool"),
        common::require_program("prometheus"),
    ) else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // Two hours of history, ending ten minutes ago, on a 15 s grid.
    let end_ms = {
        let now = jiff::Timestamp::now().as_millisecond();
        now - now.rem_euclid(60_000) - 10 * 60_000
    };
    let start_ms = end_ms - 2 * 3600 * 1000;
    let series = data(start_ms, end_ms);
    let text = expo::to_openmetrics(&series);
    let om = dir.path().join("data.om");
    std::fs::write(&om, &text).unwrap();
    let tsdb = dir.path().join("tsdb");
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global: {scrape_interval: 15s}\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let real = format!("http://127.0.0.1:{port}/prometheus");
    let _prom = Proc(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.route-prefix=/prometheus")
            .arg(format!("--web.external-url={real}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The sim's face over the same text.
    let store = expo::parse(&text, expo::Format::OpenMetrics, 0).unwrap();
    assert_eq!(store.series.len(), series.len());
    let provider: Arc<dyn Provider> = Arc::new(store);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}/prometheus", l.local_addr().unwrap());
    let app = promql::router(provider);
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let http = reqwest::Client::new();
    let get = |base: String, path: &'static str, params: Vec<(&'static str, String)>| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/api/v1/{path}"))
                .form(&params)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Wait for the real one to load the blocks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{real}/-/ready")).send().await
            && r.status().is_success()
        {
            let (_, v) = get(
                real.clone(),
                "query",
                vec![
                    ("query", "count(up)".into()),
                    ("time", (end_ms / 1000).to_string()),
                ],
            )
            .await;
            if v["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "own Prometheus did not come up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut exprs: Vec<String> = DEFAULT_QUERIES
        .iter()
        .map(|q| q.promql.to_string())
        .collect();
    exprs.extend(EXTRA.iter().map(|s| s.to_string()));
    assert!(exprs.len() >= 15);
    let mut compared = 0;
    for e in &exprs {
        // Instant queries on and off the scrape grid.
        for t in [
            end_ms,
            end_ms - 7 * 60_000 - 7_500,
            start_ms + 20 * 60_000 + 1_000,
        ] {
            let p = vec![
                ("query", e.clone()),
                ("time", format!("{}", t as f64 / 1000.0)),
            ];
            let (rs, rv) = get(real.clone(), "query", p.clone()).await;
            let (ss, sv) = get(sim.clone(), "query", p).await;
            assert_eq!(rs, 200, "{e}: {rv}");
            assert_eq!(ss, 200, "{e}: {sv}");
            compare(&format!("instant {e} @{t}"), &answer(&rv), &answer(&sv));
            compared += 1;
        }
        // The sparkline query shape: 30 min at 30 s.
        let p = vec![
            ("query", e.clone()),
            ("start", ((end_ms - 1_800_000) / 1000).to_string()),
            ("end", (end_ms / 1000).to_string()),
            ("step", "30".to_string()),
        ];
        let (rs, rv) = get(real.clone(), "query_range", p.clone()).await;
        let (ss, sv) = get(sim.clone(), "query_range", p).await;
        assert_eq!((rs, ss), (200, 200), "{e}: {rv} / {sv}");
        let (ra, sa) = (answer(&rv), answer(&sv));
        compare(&format!("range {e}"), &ra, &sa);
        compared += 1;
    }
    eprintln!(
        "{} expressions, {compared} answers identical within 1e-9",
        exprs.len()
    );

    // Every default query found something in this data (the comparison was not vacuous).
    for q in DEFAULT_QUERIES {
        let p = vec![
            ("query", q.promql.to_string()),
            ("time", (end_ms / 1000).to_string()),
        ];
        let (_, v) = get(sim.clone(), "query", p).await;
        assert!(
            !v["data"]["result"].as_array().unwrap().is_empty(),
            "{}: no data",
            q.name
        );
    }

    // Errors: both refuse bad PromQL with bad_data / HTTP 400.
    let p = vec![("query", "sum(rate(up[5m])".to_string())];
    let (rs, rv) = get(real.clone(), "query", p.clone()).await;
    let (ss, sv) = get(sim.clone(), "query", p).await;
    assert_eq!((rs, ss), (400, 400));
    assert_eq!(rv["errorType"], "bad_data");
    assert_eq!(sv["errorType"], "bad_data");
    // What the sim does not implement is refused the same way, never answered wrongly.
    let (ss, sv) = get(
        sim.clone(),
        "query",
        vec![("query", "topk(2, up)".to_string())],
    )
    .await;
    assert_eq!(ss, 400);
    assert_eq!(sv["errorType"], "bad_data");
    assert_eq!(sv["status"], "error");
}
