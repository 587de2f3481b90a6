//! Recovery readiness against the simulator: each recovery scenario's finding in `check
//! --json` (the real binary) and its row in the Recovery pane (TestBackend), and a healthy
//! world with every item ok.

use std::path::Path;
use std::time::Duration;

use crate::common;
use homeinfra_tui::app::{Action, App, Keymap, Pane};
use homeinfra_tui::sim;
use homeinfra_tui::ui::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

async fn start(scenarios: &[&str], dir: &Path) -> sim::SimHandle {
    common::sim::start_in(scenarios, 50.0, dir).await
}

/// The dashboard on the Recovery pane, drawn at 119×100: the screen's text.
async fn recovery_screen(h: &sim::SimHandle) -> (App, String) {
    let mut ctx = common::sim::env(h);
    ctx.config.mimir.url = None;
    ctx.config.loki.url = None;
    let snap = homeinfra_tui::sources::gather_once(&ctx, Duration::from_secs(10)).await;
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
    app.on_action(Action::FocusRecovery);
    assert_eq!(app.focus, Pane::Recovery);
    // Narrower than the wide layout: the focused pane gets the height, every row in view.
    let (w, hgt) = (119u16, 100u16);
    let mut term = Terminal::new(TestBackend::new(w, hgt)).unwrap();
    let theme = Theme::load(None, false).unwrap();
    term.draw(|f| ui::draw(f, &app, &theme)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..hgt {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    (app, out)
}

/// Rows of the pane's table as text cells.
fn pane_rows(app: &App) -> Vec<Vec<String>> {
    app.table(Pane::Recovery)
        .rows
        .iter()
        .map(|r| r.cells.iter().map(|c| c.text.clone()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_scenarios_in_check_json_and_the_pane() {
    common::sim::init_crypto();
    // (scenario, severity, code, the pane row's item and verdict, a word of its note)
    let cases = [
        (
            "stale-etcd-snapshot",
            "warning",
            "recovery.etcd_snapshot_stale",
            ("etcd snapshot", "warning", "3d old"),
        ),
        (
            "snapshot-failing",
            "warning",
            "recovery.etcd_snapshot_failed",
            ("etcd snapshot", "warning", "database space exceeded"),
        ),
        (
            "cert-expiring",
            "warning",
            "recovery.cert_expiring",
            ("certificate", "warning", "serving-kube-apiserver.crt"),
        ),
        (
            "secret-missing",
            "critical",
            "recovery.secret_missing",
            ("secret", "critical", "k3s_token is missing"),
        ),
        (
            "clock-skew",
            "warning",
            "recovery.clock_skew",
            ("clock", "warning", "ahead of this machine"),
        ),
        (
            "etcd-nospace",
            "critical",
            "etcd.alarm",
            ("etcd", "critical", "alarm NOSPACE"),
        ),
        (
            "backup-target-down",
            "critical",
            "longhorn.backup_target_unavailable",
            ("Longhorn backup", "critical", "unavailable"),
        ),
    ];
    for (scenario, sev, code, (item, verdict, word)) in cases {
        let dir = tempfile::tempdir().unwrap();
        let h = start(&[scenario], &dir.path().join("sim")).await;
        let (exit, doc) = common::sim::check_json(&h, dir.path()).await;
        let found = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code && f["severity"] == sev);
        assert!(
            found.is_some(),
            "{scenario}: expected {sev} {code}: {doc:#}"
        );
        let want_exit = if sev == "critical" { 2 } else { 1 };
        assert_eq!(exit, want_exit, "{scenario}: exit code; {doc:#}");
        let (app, screen) = recovery_screen(&h).await;
        let rows = pane_rows(&app);
        let row = rows
            .iter()
            .find(|r| r[0] == item && r[3] == verdict && r[4].contains(word));
        let Some(row) = row else {
            panic!("{scenario}: no {item} row {verdict} with {word:?}: {rows:#?}")
        };
        // The row is drawn: its target (as far as the column shows it) beside its verdict.
        let target: String = row[1].chars().take(12).collect();
        assert!(
            screen
                .lines()
                .any(|l| l.contains(item) && l.contains(&target) && l.contains(verdict)),
            "{scenario}: {item} {target} {verdict} not drawn:\n{screen}"
        );
        assert!(screen.contains("8 Recovery"), "{scenario}:\n{screen}");
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_world_is_recoverable() {
    common::sim::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&["healthy"], &dir.path().join("sim")).await;
    let (exit, doc) = common::sim::check_json(&h, dir.path()).await;
    let recovery: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"].as_str().unwrap().starts_with("recovery."))
        .collect();
    assert!(recovery.is_empty(), "{recovery:#?}");
    assert_eq!(exit, 0, "{doc:#}");
    let (app, _) = recovery_screen(&h).await;
    let rows = pane_rows(&app);
    // Every item is there, and nothing but ok or the informational local-only note.
    for item in [
        "etcd snapshot",
        "Longhorn backup",
        "certificate",
        "secret",
        "clock",
        "etcd",
    ] {
        assert!(
            rows.iter().any(|r| r[0] == item),
            "no {item} row: {rows:#?}"
        );
    }
    for r in &rows {
        assert!(
            r[3] == "ok" || (r[3] == "info" && r[2] == "-"),
            "not ok: {r:?}"
        );
    }
    // Every control plane has its recent local snapshot; the agent has kubelet's certificates.
    let ctx = common::sim::env(&h);
    for cp in ctx.inventory.control_planes() {
        assert!(
            rows.iter()
                .any(|r| r[0] == "etcd snapshot" && r[1] == cp.hostname && r[3] == "ok"),
            "{}: {rows:#?}",
            cp.hostname
        );
    }
    let certs = app
        .snapshot
        .hosts
        .values()
        .filter_map(|s| s.data.as_ref()?.recovery.certs.clone())
        .flatten()
        .filter(|c| c.path.ends_with("/agent/client-kubelet.crt"))
        .count();
    assert_eq!(certs, ctx.inventory.hosts.len());
    h.shutdown().await;
}

/// `k3s etcd-snapshot save` over the SSH face: the snapshot's file and its `ETCDSnapshotFile`
/// record; under `snapshot-failing` it fails and a failed record is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_snapshot_save_over_ssh() {
    use homeinfra_tui::probes::etcd_snapshot::SnapshotSave;
    use homeinfra_tui::probes::words::Word;
    use homeinfra_tui::sources::ssh::HostsClient;
    common::sim::init_crypto();
    let name = Word::name("test", "name", "homeinfra-run1").unwrap();
    for (scenario, ok) in [("healthy", true), ("snapshot-failing", false)] {
        let dir = tempfile::tempdir().unwrap();
        let h = start(&[scenario], &dir.path().join("sim")).await;
        let cp = h.inventory().control_planes().next().unwrap().clone();
        let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
        let out = client
            .run(
                &homeinfra_tui::testing::writes(),
                &cp.id,
                &SnapshotSave::command(&name),
            )
            .await
            .unwrap();
        assert_eq!(out.success(), ok, "{scenario}: {out:?}");
        let (records, _) = h.world().store.list(&sim::resources::ETCD_SNAPSHOTS, None);
        let mine: Vec<_> = records
            .iter()
            .filter(|r| {
                r.pointer("/spec/snapshotName")
                    .and_then(|v| v.as_str())
                    .is_some_and(|n| n.starts_with(&format!("homeinfra-run1-{}-", cp.hostname)))
            })
            .collect();
        assert_eq!(mine.len(), 1, "{scenario}: {records:#?}");
        assert_eq!(mine[0]["status"]["readyToUse"], serde_json::json!(ok));
        if ok {
            let file = SnapshotSave::saved_file(&out.stdout_lossy()).unwrap();
            assert_eq!(mine[0]["spec"]["snapshotName"], serde_json::json!(file));
        } else {
            assert!(
                out.stderr_lossy().contains("database space exceeded"),
                "{out:?}"
            );
        }
        // The request log knows it as a mutating snapshot request.
        let reqs = h.ssh().requests();
        assert!(
            reqs.iter()
                .any(|r| r.kind == "etcd-snapshot-save" && r.mutating),
            "{reqs:?}"
        );
        h.shutdown().await;
    }
}

/// A host's own secrets from the inventory (`"secrets"`) are checked on that host besides
/// `[recovery] secrets`: a row each in the Recovery pane's data, the other hosts unchanged;
/// under `secret-missing` the config's `k3s_token` is still the one found missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_own_secrets_from_the_inventory_are_checked() {
    common::sim::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&["secret-missing"], &dir.path().join("sim")).await;
    let mut ctx = common::sim::env(&h);
    ctx.config.mimir.url = None;
    ctx.config.loki.url = None;
    let first = ctx.inventory.hosts[0].clone();
    ctx.inventory.hosts[0].secrets = vec!["wireguard/key".into(), "k3s_token".into()];
    let snap = homeinfra_tui::sources::gather_once(&ctx, Duration::from_secs(10)).await;
    let rows = homeinfra_tui::model::assess::recovery::rows(
        &snap,
        &ctx.inventory,
        &ctx.config.thresholds,
        jiff::Timestamp::now(),
    );
    let secret_rows: Vec<&homeinfra_tui::model::recovery::RecoveryRow> = rows
        .iter()
        .filter(|r| r.item == homeinfra_tui::model::recovery::Item::Secret)
        .collect();
    let own = format!("{}:wireguard/key", first.hostname);
    assert!(
        secret_rows.iter().any(|r| r.target == own),
        "{secret_rows:#?}"
    );
    // Once per host for k3s_token (the host names it too), and nobody else has the key.
    for host in &ctx.inventory.hosts {
        let token = format!("{}:k3s_token", host.hostname);
        assert_eq!(
            secret_rows.iter().filter(|r| r.target == token).count(),
            1,
            "{token}: {secret_rows:#?}"
        );
        if host.id != first.id {
            assert!(
                !secret_rows
                    .iter()
                    .any(|r| r.target == format!("{}:wireguard/key", host.hostname))
            );
        }
    }
    // The host's file was asked for over SSH.
    let asked = h
        .ssh()
        .requests()
        .iter()
        .any(|r| r.kind == "secrets" && r.command.contains("/run/secrets/wireguard/key"));
    assert!(asked, "{:?}", h.ssh().requests());
    assert!(
        secret_rows
            .iter()
            .any(|r| r.target.ends_with(":k3s_token") && r.code.is_some()),
        "secret-missing still finds the token missing: {secret_rows:#?}"
    );
    h.shutdown().await;
}

/// The dashboard's SSH source reads a host's recovery facts (certificates, secrets, clock: six
/// commands) once per `[recovery] refresh_secs`, not with every facts round: later rounds carry
/// the same reads. A host that rebooted is read again at its next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_source_reads_recovery_facts_again_only_when_due_or_after_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], dir.path()).await;
    let env = common::sim::env(&h);
    let mut ssh = env.config.ssh.clone();
    ssh.refresh_secs = 1;
    let rc = homeinfra_tui::config::RecoveryConfig {
        refresh_secs: 3600,
        ..env.config.recovery.clone()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task = homeinfra_tui::sources::ssh::spawn_with(&ssh, Some(&rc), &env.inventory, tx);
    let kinds = |kind: &str| {
        h.ssh()
            .requests()
            .iter()
            .filter(|r| r.host == "node4" && r.kind == kind)
            .count()
    };
    // node4's answers until `n` facts rounds of it came back with facts.
    let mut rounds = Vec::new();
    let node4 = env
        .inventory
        .hosts
        .iter()
        .find(|h| h.hostname == "node4")
        .map(|h| h.id.clone())
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut until = async |rounds: &mut Vec<homeinfra_tui::model::host::HostFacts>, n: usize| {
        while rounds.len() < n {
            let u = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("node4's round {n} in time"))
                .expect("the source is alive");
            match u {
                homeinfra_tui::sources::Update::Host { id, result: Ok(f) } if id == node4 => {
                    rounds.push(f)
                }
                homeinfra_tui::sources::Update::Host { id, result: Err(e) } if id == node4 => {
                    eprintln!("node4: {e}")
                }
                _ => {}
            }
        }
    };
    until(&mut rounds, 3).await;
    assert_eq!(kinds("certificates"), 1, "{:?}", h.ssh().requests());
    let samples = kinds("clock-now");
    assert!(
        (1..=3).contains(&samples),
        "the samples of one read: {samples}"
    );
    assert!(kinds("facts") >= 3);
    let first = &rounds[0].recovery;
    assert!(first.clock.as_ref().is_some_and(|c| c.offset_ms.is_some()));
    assert!(first.certs.as_ref().is_some_and(|c| !c.is_empty()));
    for r in &rounds[1..] {
        assert_eq!(&r.recovery, first, "later rounds carry the first read");
    }

    // A reboot: read again once the host answers.
    h.world().reboot("node4").unwrap();
    let before = rounds.len();
    while kinds("certificates") < 2 {
        let n = rounds.len() + 1;
        until(&mut rounds, n).await;
    }
    assert!(rounds.len() > before, "facts after the reboot");
    assert_eq!(kinds("certificates"), 2, "read once more, not every round");
    task.abort();
    h.shutdown().await;
}
