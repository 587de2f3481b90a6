//! Each simulator scenario produces its expected findings: in `check --json` (the real binary
//! against `sim`'s files) and in the dashboard (TestBackend snapshot of the Findings pane).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common;
use homeinfra_tui::app::{App, Keymap};
use homeinfra_tui::sim::{self};
use homeinfra_tui::ui::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn start(scenarios: &[&str], dir: &Path) -> sim::SimHandle {
    common::sim::start_in(scenarios, 50.0, dir).await
}

/// `check --json` by the real binary: (exit code, {(severity, code)}).
async fn check(
    h: &sim::SimHandle,
    home: &Path,
) -> (i32, BTreeSet<(String, String)>, serde_json::Value) {
    let (code, doc) = common::sim::check_json(h, home).await;
    let set = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, set, doc)
}

fn has(set: &BTreeSet<(String, String)>, sev: &str, code: &str) -> bool {
    set.contains(&(sev.to_string(), code.to_string()))
}

fn problems(set: &BTreeSet<(String, String)>) -> Vec<String> {
    set.iter()
        .filter(|(s, _)| s != "info")
        .map(|(s, c)| format!("{s} {c}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_in_check_json() {
    init();
    type Case = (&'static str, Vec<(&'static str, &'static str)>, i32);
    let cases: Vec<Case> = vec![
        ("healthy", vec![], 0),
        (
            "degraded-volume",
            vec![("warning", "longhorn.volume_degraded")],
            1,
        ),
        (
            "last-replica",
            vec![("warning", "longhorn.last_replica")],
            1,
        ),
        ("etcd-member-down", vec![("warning", "etcd.member_down")], 1),
        ("slow-disk", vec![("warning", "etcd.wal_fsync_slow")], 1),
        (
            "stale-backup",
            vec![("warning", "longhorn.backup_stale")],
            1,
        ),
    ];
    for (scenario, want, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let h = start(&[scenario], &dir.path().join("sim")).await;
        let (exit, set, doc) = check(&h, dir.path()).await;
        for (sev, c) in &want {
            assert!(
                has(&set, sev, c),
                "{scenario}: expected {sev} {c}, got {doc:#}"
            );
        }
        if want.is_empty() {
            assert!(
                problems(&set).is_empty(),
                "{scenario}: expected no warnings, got {doc:#}"
            );
        }
        assert_eq!(exit, code, "{scenario}: exit code; {doc:#}");
        assert!(
            set.iter()
                .all(|(_, c)| !c.starts_with("source.kubernetes") && !c.starts_with("source.etcd")),
            "{scenario}: a source failed: {doc:#}"
        );
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_down_message_has_the_arithmetic() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&["etcd-member-down"], &dir.path().join("sim")).await;
    let (_, _, doc) = check(&h, dir.path()).await;
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "etcd.member_down")
        .unwrap();
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("2/3 healthy — no further failure tolerated"),
        "{f}"
    );
    h.shutdown().await;
}

fn render_findings(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(160, 40)).unwrap();
    let theme = Theme::load(None, false).unwrap();
    term.draw(|f| ui::draw(f, app, &theme)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..40 {
        let mut line = String::new();
        for x in 0..160 {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_in_the_dashboard() {
    init();
    for scenario in ["last-replica", "etcd-member-down"] {
        let dir = tempfile::tempdir().unwrap();
        let h = start(&[scenario], &dir.path().join("sim")).await;
        let mut ctx = common::sim::env(&h);
        // Metrics and logs move with the clock: keep Mimir and Loki out of this snapshot (they
        // have their own tests), so etcd's figures come from its members alone.
        ctx.config.mimir.url = None;
        ctx.config.loki.url = None;
        let mut snap = homeinfra_tui::sources::gather_once(&ctx, Duration::from_secs(10)).await;
        // Metrics and logs move with the clock: keep them out of this snapshot (they have their
        // own tests); the scenario's findings are what is compared here.
        snap.mimir =
            homeinfra_tui::model::Sourced::not_configured("Mimir: left out of this snapshot");
        snap.loki =
            homeinfra_tui::model::Sourced::not_configured("Loki: left out of this snapshot");
        let mut app = App::new(
            ctx.inventory.clone(),
            ctx.config.clone(),
            Keymap::default(),
            snap,
            "sim".into(),
            true,
            jiff::Timestamp::now(),
        );
        app.tz = jiff::tz::TimeZone::UTC;
        // Findings pane focused, in the compact layout it fills the screen.
        app.on_action(homeinfra_tui::app::Action::FocusFindings);
        let screen = render_findings(&app);
        let settings = {
            let mut s = insta::Settings::clone_current();
            // The header clock ends its line, right-aligned: HH:MM or
            // HH:MM:SS ([ui] clock_seconds) pads differently, so the padding
            // before it goes with it.
            s.add_filter(r"(?m) +\d\d:\d\d(:\d\d)?$", " [TIME]");
            s.add_filter(r"\b\d\d:\d\d(:\d\d)?\b", "[TIME]");
            s.add_filter(r"127\.0\.0\.\d+:\d+", "[ADDR]");
            s.add_filter(r"\b[0-9a-f]{6,16}\b", "[ID]");
            s.set_snapshot_suffix(scenario);
            s
        };
        settings.bind(|| insta::assert_snapshot!("findings", screen));
        h.shutdown().await;
    }
}

/// During an upgrade run (its Lease held, a node cordoned by it and rebooting), `check --json`
/// marks every finding about that node with the run's id and leaves them out of the exit
/// code, which follows the other findings only (here the slow disk's warning); once the lock is
/// gone, nothing is marked any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_marks_the_findings_of_the_node_a_run_works_on() {
    use homeinfra_tui::operations::upgrade::live::{KubeCluster, KubeWriter};
    use homeinfra_tui::operations::upgrade::lock;
    init();
    let dir = tempfile::tempdir().unwrap();
    let h = common::sim::start_in(&["slow-disk"], 1.0, &dir.path().join("sim")).await;
    let env = common::sim::env(&h);
    let cluster = KubeCluster::new(&env.config.kubernetes).await.unwrap();
    let writes = homeinfra_tui::testing::writes();
    let writer = KubeWriter::new(&writes, cluster.client().clone());
    let run_id = "20261201-m14-maintenance";
    let held = lock::acquire(
        &cluster,
        &writer,
        &lock::holder_identity(run_id),
        run_id,
        Duration::from_secs(300),
        jiff::Timestamp::now(),
        false,
    )
    .await
    .unwrap();
    assert!(matches!(held, lock::Acquire::Acquired(_)), "{held:?}");
    use homeinfra_tui::operations::upgrade::world::ClusterWrite as _;
    writer.cordon("node4", run_id).await.unwrap();
    h.world().reboot("node4").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (exit, doc) = common::sim::check_json(&h, dir.path()).await;
    let findings = doc["findings"].as_array().unwrap();
    let about_node4 = |f: &&serde_json::Value| {
        let s = f["subject"].as_str().unwrap_or("");
        s == "node4" || s == "instance_4" || s.starts_with("node4-")
    };
    let ours: Vec<&serde_json::Value> = findings
        .iter()
        .filter(about_node4)
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(
        ours.iter().any(|f| f["severity"] == "critical"),
        "the rebooting node has critical findings: {doc:#}"
    );
    for f in &ours {
        assert_eq!(f["maintenance"], run_id, "{f}");
    }
    let others: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f.get("maintenance").is_none() && f["severity"] != "info")
        .collect();
    assert!(
        others.iter().all(|f| !about_node4(f)),
        "nothing about node4 is left unmarked: {doc:#}"
    );
    assert!(
        others.iter().any(|f| f["code"] == "etcd.wal_fsync_slow"),
        "another node's finding stays what it is: {doc:#}"
    );
    assert!(
        others.iter().all(|f| f["severity"] != "critical"),
        "{doc:#}"
    );
    assert_eq!(exit, 1, "the exit follows the other findings only: {doc:#}");
    assert_eq!(doc["status"], "warning");
    assert_eq!(doc["maintenance"]["run_id"], run_id);

    // The lock goes: the marking ends.
    lock::release(&cluster, &writer, run_id).await.unwrap();
    let (_, doc) = common::sim::check_json(&h, dir.path()).await;
    assert!(doc.get("maintenance").is_none(), "{doc:#}");
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f.get("maintenance").is_none()),
        "{doc:#}"
    );
    h.shutdown().await;
}
