//! The Metrics and Logs panes show what the Mimir and Loki sources bring: against the
//! simulator's faces, and the Metrics pane against a REAL Prometheus scraping a real
//! node_exporter.

use crate::common;

use std::path::Path;
use std::time::Duration;

use homeinfra_tui::app::panes::{self, Tone};
use homeinfra_tui::app::{Action, App, Keymap, Pane};
use homeinfra_tui::config::Config;
use homeinfra_tui::model::{Snapshot, Sourced};

fn app(inv: homeinfra_tui::inventory::Inventory, config: Config, snap: Snapshot) -> App {
    App::new(
        inv,
        config,
        Keymap::default(),
        snap,
        "test".into(),
        true,
        jiff::Timestamp::now(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panes_show_the_simulators_metrics_and_logs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let opts = homeinfra_tui::sim::SimOptions {
        scenarios: vec![homeinfra_tui::sim::Scenario::SlowDisk],
        ..Default::default()
    };
    let h = homeinfra_tui::sim::start(opts, dir.path()).await.unwrap();
    let cfg = homeinfra_tui::config::load(Some(&h.config_path()))
        .unwrap()
        .0;
    let inv = homeinfra_tui::inventory::load(&h.hosts_path()).unwrap();
    let t = Duration::from_secs(10);
    let snap = Snapshot {
        mimir: homeinfra_tui::sources::mimir::gather_once(&cfg.mimir, &inv, t).await,
        loki: homeinfra_tui::sources::loki::gather_once(&cfg.loki, &inv, t).await,
        ..Default::default()
    };
    let mut a = app(inv.clone(), cfg, snap);
    let m = panes::table(&a, Pane::Metrics);
    assert_eq!(m.rows.len(), inv.hosts.len());
    for r in &m.rows {
        let cpu = &r.cells[1].text;
        assert!(
            cpu.contains('%') && cpu.chars().any(|c| ('▁'..='█').contains(&c)),
            "{}: {cpu}",
            r.key
        );
    }
    assert_eq!(
        m.subtitle.as_ref().map(|s| s.1),
        Some(Tone::Critical),
        "slow-disk fires an alert"
    );
    assert!(
        a.findings.iter().any(|f| f.code.starts_with("alert.")),
        "{:?}",
        a.findings
    );
    // the Logs pane follows the Hosts pane's selection
    let l = panes::table(&a, Pane::Logs);
    assert!(
        !l.rows.is_empty(),
        "no log lines for {:?}",
        panes::logs_host(&a)
    );
    assert!(l.subtitle.unwrap().0.starts_with(&inv.hosts[0].id));
    a.on_action(Action::Down);
    assert!(
        panes::table(&a, Pane::Logs)
            .subtitle
            .unwrap()
            .0
            .starts_with(&inv.hosts[1].id)
    );
    // a filter narrows the lines
    a.on_action(Action::FocusLogs);
    let all = panes::table(&a, Pane::Logs).rows.len();
    a.panes[Pane::Logs.index()].filter = "etcd".into();
    let some = panes::table(&a, Pane::Logs).rows;
    assert!(
        some.len() <= all
            && some.iter().all(|r| r
                .cells
                .iter()
                .any(|c| c.text.to_lowercase().contains("etcd")))
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pane_against_a_real_prometheus() {
    let Some(url) = common::require_env("HOMEINFRA_TEST_PROM_URL", "a real Prometheus") else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let inv = homeinfra_tui::inventory::parse(
        Path::new("hosts.json"),
        r#"{"local": {"hostname": "localhost", "system": "x86_64-linux", "profile": "test", "role": "init",
            "region": "here", "zone": "lo", "ip": "127.0.0.1", "gateway": "127.0.0.1", "maskLength": 8}}"#,
    )
    .unwrap();
    let mut config = Config::default();
    config.mimir.url = Some(url);
    config.mimir.tenant = Some("homelab".into());
    // node_exporter's first rates need two scrapes: poll, don't sleep blindly.
    let mut last = String::new();
    for _ in 0..60 {
        let snap = Snapshot {
            mimir: homeinfra_tui::sources::mimir::gather_once(
                &config.mimir,
                &inv,
                Duration::from_secs(5),
            )
            .await,
            loki: Sourced::not_configured("Loki: not configured"),
            ..Default::default()
        };
        let a = app(inv.clone(), config.clone(), snap);
        let m = panes::table(&a, Pane::Metrics);
        last = format!("{:?} {:?}", m.note, m.rows.first().map(|r| &r.cells));
        if let Some(r) = m.rows.first()
            && r.cells[1].text.contains('%')
            && r.cells[2].text.contains('%')
            && r.cells[3].text.contains('%')
        {
            assert_eq!(r.key, "local");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the Metrics pane never showed the real node_exporter's figures: {last}");
}

/// The simulator's Prometheus face follows its world: a stopped etcd member has no disk
/// latencies there either, so the etcd pane shows none for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_has_no_metrics_in_the_simulator() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let opts = homeinfra_tui::sim::SimOptions {
        scenarios: vec![homeinfra_tui::sim::Scenario::EtcdMemberDown],
        ..Default::default()
    };
    let h = homeinfra_tui::sim::start(opts, dir.path()).await.unwrap();
    let ctx = common::sim::env(&h);
    let snap = homeinfra_tui::sources::gather_once(&ctx, Duration::from_secs(10)).await;
    assert!(snap.mimir.data.is_some(), "{:?}", snap.mimir.status);
    let a = app(ctx.inventory.clone(), ctx.config.clone(), snap);
    let t = panes::table(&a, Pane::Etcd);
    let down: Vec<_> = t
        .rows
        .iter()
        .filter(|r| r.cells[2].text == "down")
        .collect();
    assert_eq!(down.len(), 1, "{:?}", t.rows);
    let fsync = t.header.iter().position(|c| *c == "FSYNC p99").unwrap();
    assert_eq!(down[0].cells[fsync].text, "–", "{:?}", down[0]);
    let up = t
        .rows
        .iter()
        .find(|r| r.cells[2].text == "healthy")
        .unwrap();
    assert!(up.cells[fsync].text.ends_with("ms"), "{:?}", up);
    h.shutdown().await;
}
