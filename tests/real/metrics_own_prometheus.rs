//! Our OWN real node_exporters (on 127.0.0.2 and 127.0.0.3, two "hosts") and our own real
//! Prometheus (1 s scrape, an always-firing alert rule, also scraping the shared etcd's metrics
//! read-only), so this test can kill a node_exporter without disturbing anyone:
//! every default query (alerts included) returns data through the running source task, and
//! killing one node_exporter turns that host to "no data" while the other keeps its data.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory::{self, Inventory};
use homeinfra_tui::model::Severity;
use homeinfra_tui::model::metrics::MetricsState;
use homeinfra_tui::sources::Update;
use homeinfra_tui::sources::mimir::{self, Mimir};

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_exporter(bin: &std::path::Path, addr: &str) -> Proc {
    Proc(
        Command::new(bin)
            .arg(format!("--web.listen-address={addr}"))
            .args(["--no-collector.systemd", "--collector.disable-defaults"])
            .args([
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.filesystem",
                "--collector.netdev",
                "--collector.uname",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn inv() -> Inventory {
    inventory::parse(
        std::path::Path::new("hosts.json"),
        r#"{
          "cp": {"hostname":"cp","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"127.0.0.1","gateway":"127.0.0.254","maskLength":8},
          "two": {"hostname":"two","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"127.0.0.2","gateway":"127.0.0.254","maskLength":8},
          "three": {"hostname":"three","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"127.0.0.3","gateway":"127.0.0.254","maskLength":8}
        }"#,
    )
    .unwrap()
}

fn full(st: &MetricsState, id: &str) -> bool {
    let h = &st.hosts[id];
    [
        &h.cpu_pct,
        &h.memory_pct,
        &h.root_fs_pct,
        &h.net_rx_bps,
        &h.net_tx_bps,
    ]
    .iter()
    .all(|s| s.current.is_some() && !s.points.is_empty())
}

/// Keep etcd writing (fsync quantiles are NaN otherwise): one test key, its own prefix.
async fn write_etcd_keys(ep: String) {
    let http = reqwest::Client::new();
    for i in 0..600u32 {
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let body =
            serde_json::json!({"key": b("homeinfra-test/metrics/own"), "value": b(&i.to_string())});
        let _ = http
            .post(format!("{ep}/v3/kv/put"))
            .json(&body)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn default_queries_and_a_killed_node_exporter() {
    let (Some(ne), Some(prom)) = (
        common::require_program("prometheus-node-exporter"),
        common::require_program("prometheus"),
    ) else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let etcd_targets: Vec<String> = std::env::var("HOMEINFRA_TEST_ETCD_METRICS")
        .map(|v| {
            v.split(',')
                .filter_map(|u| u.strip_prefix("http://"))
                .filter_map(|u| u.strip_suffix("/metrics"))
                .map(|s| format!("'{s}'"))
                .collect()
        })
        .unwrap_or_default();
    let writer = std::env::var("HOMEINFRA_TEST_ETCD_ENDPOINTS")
        .ok()
        .and_then(|e| e.split(',').next().map(str::to_string))
        .map(|ep| tokio::spawn(write_etcd_keys(ep)));

    let dir = tempfile::tempdir().unwrap();
    let (p2, p3) = (free_port("127.0.0.2"), free_port("127.0.0.3"));
    let _ne2 = node_exporter(&ne, &format!("127.0.0.2:{p2}"));
    let mut ne3 = Some(node_exporter(&ne, &format!("127.0.0.3:{p3}")));
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n- name: test\n  interval: 1s\n  rules:\n  - alert: HomeinfraTestAlwaysFiring\n    expr: vector(1)\n    labels: {severity: critical, instance: '127.0.0.2:9100'}\n",
    )
    .unwrap();
    let mut yml = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n- job_name: node\n  static_configs: [{{targets: ['127.0.0.2:{p2}', '127.0.0.3:{p3}']}}]\n",
        dir.path().join("rules.yml").display()
    );
    if !etcd_targets.is_empty() {
        yml.push_str(&format!(
            "- job_name: etcd\n  static_configs: [{{targets: [{}]}}]\n",
            etcd_targets.join(", ")
        ));
    }
    std::fs::write(dir.path().join("prometheus.yml"), yml).unwrap();
    let port = free_port("127.0.0.1");
    let url = format!("http://127.0.0.1:{port}/prometheus");
    let _prom = Proc(
        Command::new(&prom)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.route-prefix=/prometheus")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let cfg = MimirConfig {
        url: Some(url.clone()),
        refresh_secs: 1,
        timeout_secs: 5,
        ..Default::default()
    };
    let inv = Arc::new(inv());
    // The source task itself, as the app runs it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let handle = mimir::spawn(cfg.clone(), inv.clone(), tx);
    let deadline = Instant::now() + Duration::from_secs(90);
    let st = loop {
        let u = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("no complete data in 90 s")
            .expect("source ended");
        let Update::Metrics(Ok(st)) = u else { continue };
        let etcd_ok = etcd_targets.is_empty()
            || (st.etcd.len() == etcd_targets.len()
                && st
                    .etcd
                    .values()
                    .all(|e| e.wal_fsync_p99_ms.is_some() && e.backend_commit_p99_ms.is_some()));
        if st.query_errors.is_empty()
            && full(&st, "two")
            && full(&st, "three")
            && !st.alerts.is_empty()
            && etcd_ok
        {
            break st;
        }
    };
    handle.task.abort();
    if let Some(w) = writer {
        w.abort();
    }
    assert!(st.unmapped.is_empty(), "{:?}", st.unmapped);
    let alert = &st.alerts[0];
    assert_eq!(alert.name, "HomeinfraTestAlwaysFiring");
    assert_eq!(alert.host.as_deref(), Some("two"));
    let findings = mimir::alert_findings(&st);
    assert_eq!(findings[0].severity, Severity::Critical);
    assert_eq!(findings[0].subject, "two");

    // Kill host three's node_exporter: it goes to "no data", host two keeps everything.
    drop(ne3.take());
    let m = Mimir::new(&cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = m
            .refresh(&inv, jiff::Timestamp::now().as_second())
            .await
            .unwrap();
        if st.hosts["three"].is_no_data() {
            assert!(
                full(&st, "two"),
                "host two lost data: {:?}",
                st.hosts["two"]
            );
            assert!(st.query_errors.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "host three still has data: {:?}",
            st.hosts["three"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
