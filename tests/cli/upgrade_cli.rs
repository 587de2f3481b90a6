//! The headless `homeinfra-tui upgrade` binary against the simulator's API: read-only and
//! unconfirmed runs are refused, the dry run prints the plan and every verdict as JSON, a run
//! refused by a guard exits 2 with its journal closed, `--abandon` undoes only our cordons.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use homeinfra_tui::inventory::Role;
use homeinfra_tui::operations::upgrade::journal::{self, Journal};
use homeinfra_tui::operations::upgrade::{RunOutcome, UpgradeEvent};
use homeinfra_tui::operations::upgrade::{cordon, live};
use homeinfra_tui::sim::{self, SimOptions};
use homeinfra_tui::testing;

fn bin(dir: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--hosts")
        .arg(dir.join("hosts.json"))
        .arg("--log-file")
        .arg(state.join("log.txt"))
        .arg("upgrade")
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env("HOME", state)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_upgrade_against_the_sim() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = sim::start(
        SimOptions {
            speed: 20.0,
            // A degraded volume: every node's degraded-volume guard refuses.
            scenarios: vec![sim::Scenario::DegradedVolume],
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    // The flake to build, and fast SSH failures (the simulated hosts have no SSH face yet).
    let cfg_path = dir.path().join("config.toml");
    let mut cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let set = |cfg: &mut toml::Value, section: &str, key: &str, v: toml::Value| {
        let t = cfg.as_table_mut().unwrap();
        let sec = t
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()));
        sec.as_table_mut().unwrap().insert(key.into(), v);
    };
    set(
        &mut cfg,
        "upgrade",
        "flake",
        toml::Value::String("github:me/infra".into()),
    );
    set(
        &mut cfg,
        "ssh",
        "connect_timeout_secs",
        toml::Value::Integer(2),
    );
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let (d, s) = (dir.path().to_path_buf(), state.path().to_path_buf());
    let run = move |args: &'static [&'static str]| {
        let (d, s) = (d.clone(), s.clone());
        async move {
            tokio::task::spawn_blocking(move || bin(&d, &s, args))
                .await
                .unwrap()
        }
    };

    let o = run(&["--read-only", "--yes"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("read-only"), "{}", text(&o));

    let o = run(&[]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("pass --yes"), "{}", text(&o));

    // Dry run: the plan in order and every guard's verdict; the degraded volume refuses.
    let o = run(&["--dry-run", "--json"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let order: Vec<&str> = doc["plan"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 4);
    assert_eq!(order[0], "node4");
    assert_eq!(doc["plan"]["entries"][3]["etcd_leader"], true);
    let v0 = doc["verdicts"][0]["verdicts"].as_array().unwrap();
    let pass = |g: &str| v0.iter().any(|v| v["guard"] == g && v["pass"] == true);
    assert!(
        pass("etcd-member-down") && pass("auto-upgrade") && pass("node-not-ready"),
        "{v0:#?}"
    );
    assert!(
        v0.iter()
            .any(|v| v["guard"] == "degraded-volume" && v["pass"] == false),
        "{v0:#?}"
    );
    assert_eq!(doc["would_start"], false);

    // A real run: refused by that guard before anything is touched; journal closed, lock free.
    let o = run(&["--yes", "--json", "--only", "node4"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let events: Vec<UpgradeEvent> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event line"))
        .collect();
    assert!(
        matches!(events.first(), Some(UpgradeEvent::RunStarted { .. })),
        "{events:#?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(UpgradeEvent::RunFinished { outcome: RunOutcome::Refused { guard, .. } }) if guard == "degraded-volume"
        ),
        "{events:#?}"
    );
    let runs = state.path().join("homeinfra-tui").join("runs");
    assert!(journal::unfinished(&runs).unwrap().is_empty());
    // `--resume` of that refused run says what it is and what to do instead.
    let Some(UpgradeEvent::RunStarted { run_id, .. }) = events.first() else {
        unreachable!()
    };
    let (d, s, id) = (
        dir.path().to_path_buf(),
        state.path().to_path_buf(),
        run_id.clone(),
    );
    let o = tokio::task::spawn_blocking(move || bin(&d, &s, &["--yes", "--resume", &id]))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("ended refused, not interrupted")
            && t.contains("degraded-volume")
            && t.contains("start a new run"),
        "{t}"
    );
    let client = live::drain_client(
        &homeinfra_tui::config::load(Some(&cfg_path))
            .unwrap()
            .0
            .kubernetes,
    )
    .await
    .unwrap();
    let c = live::KubeCluster::from_client(client.clone());
    let writes = testing::writes();
    let cw = live::KubeWriter::new(&writes, client.clone());
    use homeinfra_tui::operations::upgrade::{ClusterRead, ClusterWrite};
    assert_eq!(c.get_lease().await.unwrap(), None);
    assert!(!c.node("node4").await.unwrap().unschedulable);

    // --abandon: a run "run-z" that cordoned node2 and died; node3 cordoned by hand stays.
    cordon(&writes, &client, "node2", "run-z").await.unwrap();
    cw.cordon("node3", "someone-else").await.unwrap();
    let mut j = Journal::open(&writes, &runs, "run-z").unwrap();
    let plan = testing::plan(
        "run-z",
        ["node2", "node3"]
            .map(|n| testing::entry(&n.replace("node", "instance_"), n, Role::Server)),
    );
    j.append(
        jiff::Timestamp::now(),
        &UpgradeEvent::RunStarted {
            run_id: "run-z".into(),
            plan,
            resumed_at: None,
        },
    )
    .unwrap();
    let o = run(&["--yes"]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unfinished run blocks a new one: {}",
        text(&o)
    );
    assert!(text(&o).contains("--resume run-z"), "{}", text(&o));
    let o = run(&["--abandon", "run-z"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("uncordoned: node2"), "{}", text(&o));
    assert!(!c.node("node2").await.unwrap().unschedulable);
    assert_eq!(
        c.node("node3").await.unwrap().cordoned_by.as_deref(),
        Some("someone-else")
    );
    assert!(journal::unfinished(&runs).unwrap().is_empty());
    h.shutdown().await;
}
