//! Upgrade safety (issue 12) end to end: the real binary against the simulator, its faults
//! applied through the control API (`/sim/v1/faults`) or in-process. The guards fail closed on
//! what the simulator hides (Longhorn at another version or namespace, etcd's gateways gone,
//! etcd not monitored), `skip_guards` shows as skipped, read-only commands write nothing
//! (`/sim/v1/requests`: no Kubernetes write, no mutating SSH command), a replica failing mid-
//! drain stops the run before the switch and the reboot, a quick reboot is known by its boot
//! ids, and Lease writes failing for a while stop a run before its next destructive step.

use std::path::PathBuf;
use std::time::Duration;

use homeinfra_tui::sim::{Scenario, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::sim as simh;

/// A home for the binary: its own config (the simulator's, changed by `edit`), state and HOME.
pub(crate) struct Home {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
}

pub(crate) fn home(h: &SimHandle, edit: impl FnOnce(&mut toml::Table)) -> Home {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(h.config_path()).unwrap())
        .expect("the simulator's config");
    let up = cfg
        .entry("upgrade")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap();
    up.insert("flake".into(), "github:me/infra".into());
    up.insert("settle_secs".into(), 0.into());
    up.insert("poll_secs".into(), 1.into());
    edit(&mut cfg);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    Home { dir, config }
}

pub(crate) fn section<'a>(cfg: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    cfg.entry(name)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap()
}

pub(crate) fn command(h: &SimHandle, home: &Home, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"));
    c.arg("--config")
        .arg(&home.config)
        .arg("--hosts")
        .arg(h.hosts_path())
        .arg("--log-file")
        .arg(home.dir.path().join("log.txt"))
        .args(args)
        .env("HOME", home.dir.path())
        .env("XDG_STATE_HOME", home.dir.path().join("state"))
        .env("XDG_CONFIG_HOME", home.dir.path().join("cfg"))
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

/// Run the binary to its end: (exit code, stdout, stderr).
pub(crate) async fn run(
    h: &SimHandle,
    home: &Home,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let o = tokio::time::timeout(Duration::from_secs(300), command(h, home, args).output())
        .await
        .expect("the command ends")
        .expect("run the binary");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `upgrade --dry-run --json`: the document.
async fn dry_run(h: &SimHandle, home: &Home) -> Value {
    let (code, out, err) = run(h, home, &["upgrade", "--dry-run", "--json"]).await;
    assert!(matches!(code, Some(0) | Some(2)), "{code:?}\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

/// The verdicts of `guard` on `node` in a dry-run document.
fn verdicts<'a>(doc: &'a Value, node: &str, guard: &str) -> Vec<&'a Value> {
    doc["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node"] == node)
        .flat_map(|n| n["verdicts"].as_array().unwrap())
        .filter(|v| v["guard"] == guard)
        .collect()
}

fn assert_verdict(doc: &Value, node: &str, guard: &str, verdict: &str, says: &str) {
    let got = verdicts(doc, node, guard);
    assert!(
        !got.is_empty()
            && got
                .iter()
                .any(|v| v["verdict"] == verdict
                    && v["message"].as_str().unwrap_or("").contains(says)),
        "{guard} on {node}: want {verdict} saying {says:?}, got {got:#?}"
    );
    if verdict != "pass" && verdict != "skipped" {
        assert!(got.iter().all(|v| v["pass"] == false), "{got:#?}");
    }
}

fn control_for(h: &SimHandle) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `POST /sim/v1/faults {"scenario": name}`.
async fn apply(h: &SimHandle, name: &str) {
    let r = control_for(h)
        .post(format!("{}/sim/v1/faults", h.api_url()))
        .bearer_auth(h.token())
        .json(&serde_json::json!({ "scenario": name }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{name}: {}", r.status());
}

/// `DELETE /sim/v1/faults/NAME`.
async fn clear(h: &SimHandle, name: &str) {
    let r = control_for(h)
        .delete(format!("{}/sim/v1/faults/{name}", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{name}: {}", r.status());
}

/// `GET /sim/v1/requests`: (Kubernetes writes, SSH commands).
pub(crate) async fn requests(h: &SimHandle) -> (Vec<Value>, Vec<Value>) {
    let r = control_for(h)
        .get(format!("{}/sim/v1/requests", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    (
        v["requests"].as_array().cloned().unwrap_or_default(),
        v["ssh"].as_array().cloned().unwrap_or_default(),
    )
}

pub(crate) fn mutating(ssh: &[Value]) -> Vec<&Value> {
    ssh.iter().filter(|r| r["mutating"] == true).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fail_closed_case_refuses_in_the_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, dir.path()).await;
    let plain = home(&h, |_| {});

    // Healthy: Longhorn and etcd are seen and pass.
    let doc = dry_run(&h, &plain).await;
    for g in ["degraded-volume", "last-replica", "etcd-member-down"] {
        assert_verdict(&doc, "node4", g, "pass", "");
    }
    assert_verdict(&doc, "node1", "etcd-quorum", "pass", "");

    // Longhorn's CRDs only at v1beta1 (through the control API): not "not installed".
    apply(&h, "longhorn-v1beta1").await;
    let doc = dry_run(&h, &plain).await;
    for g in ["degraded-volume", "last-replica"] {
        assert_verdict(&doc, "node4", g, "cannot-verify", "longhorn.io v1beta1");
    }
    assert_eq!(doc["would_start"], false);
    clear(&h, "longhorn-v1beta1").await;

    // Longhorn in another namespace than the configured one.
    h.world()
        .apply_scenario(&Scenario::LonghornOtherNamespace)
        .unwrap();
    let doc = dry_run(&h, &plain).await;
    for g in ["degraded-volume", "last-replica"] {
        assert_verdict(
            &doc,
            "node2",
            g,
            "cannot-verify",
            "namespace longhorn-system holds no Longhorn node or volume",
        );
    }

    // etcd's gateways serve nothing.
    apply(&h, "etcd-metrics-missing").await;
    let doc = dry_run(&h, &plain).await;
    for node in ["node1", "node4"] {
        let got = verdicts(&doc, node, "etcd-member-down");
        assert!(
            !got.is_empty() && got.iter().all(|v| v["pass"] == false),
            "{node}: {got:#?}"
        );
    }
    let q = verdicts(&doc, "node1", "etcd-quorum");
    assert!(
        !q.is_empty()
            && q.iter()
                .all(|v| v["pass"] == false && v["verdict"] != "pass"),
        "{q:#?}"
    );

    // The operator says this cluster has neither: both shown as skipped, and the run may go.
    let skipping = home(&h, |cfg| {
        section(cfg, "upgrade").insert(
            "skip_guards".into(),
            toml::Value::Array(vec!["longhorn".into(), "etcd".into()]),
        );
    });
    let doc = dry_run(&h, &skipping).await;
    for g in [
        "degraded-volume",
        "last-replica",
        "etcd-member-down",
        "etcd-quorum",
    ] {
        assert_verdict(&doc, "node1", g, "skipped", "skip_guards");
    }
    let skipped = doc["skipped_guards"].to_string();
    assert!(
        skipped.contains("etcd-quorum") && skipped.contains("last-replica"),
        "{skipped}"
    );
    let (_, text, _) = run(&h, &skipping, &["upgrade", "--dry-run"]).await;
    assert!(text.contains("skipped"), "{text}");
    clear(&h, "etcd-metrics-missing").await;
    h.world()
        .clear_scenario("longhorn-other-namespace")
        .unwrap();

    // etcd not monitored at all.
    let unmonitored = home(&h, |cfg| {
        section(cfg, "etcd").insert("enabled".into(), false.into());
    });
    let doc = dry_run(&h, &unmonitored).await;
    assert_verdict(
        &doc,
        "node1",
        "etcd-quorum",
        "cannot-verify",
        "etcd is not monitored",
    );
    assert_verdict(
        &doc,
        "node4",
        "etcd-member-down",
        "cannot-verify",
        "etcd is not monitored",
    );

    // Everything cleared: the dry run passes again.
    let doc = dry_run(&h, &plain).await;
    assert_verdict(&doc, "node4", "degraded-volume", "pass", "");
    assert_verdict(&doc, "node1", "etcd-quorum", "pass", "");
    let (writes, ssh) = requests(&h).await;
    assert!(writes.is_empty(), "dry runs write nothing: {writes:#?}");
    assert!(mutating(&ssh).is_empty(), "{:#?}", mutating(&ssh));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["degraded-volume"], 20.0, dir.path()).await;
    let hm = home(&h, |_| {});
    let (code, out, err) = run(&h, &hm, &["--read-only", "check", "--json"]).await;
    assert!(code.is_some(), "{out}\n{err}");
    let (code, _, err) = run(&h, &hm, &["upgrade", "--dry-run", "--json"]).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&h, &hm, &["--read-only", "upgrade", "--dry-run"]).await;
    assert_eq!(code, Some(2), "{err}");
    // Refused by the command line before anything is read.
    for args in [
        &["--read-only", "upgrade", "--dry-run", "--abandon", "run-x"][..],
        &["upgrade", "--dry-run", "--resume", "run-x"][..],
    ] {
        let (code, _, err) = run(&h, &hm, args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("cannot be used with"), "{args:?}: {err}");
    }
    // A real run and an abandon under --read-only are refused.
    for args in [
        &["--read-only", "upgrade", "--yes"][..],
        &["--read-only", "upgrade", "--abandon", "run-x"][..],
    ] {
        let (code, out, err) = run(&h, &hm, args).await;
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(
            format!("{out}{err}").contains("read-only"),
            "{args:?}: {out}{err}"
        );
    }
    let (writes, ssh) = requests(&h).await;
    assert!(writes.is_empty(), "no Kubernetes write: {writes:#?}");
    assert!(!ssh.is_empty(), "the commands did read the hosts");
    assert!(mutating(&ssh).is_empty(), "{:#?}", mutating(&ssh));
    h.shutdown().await;
}

/// A headless run's JSON events as they come; `on` is called with each line.
pub(crate) async fn follow(
    h: &SimHandle,
    home: &Home,
    args: &[&str],
    mut on: impl FnMut(&Value) -> Option<&'static str>,
) -> (Option<i32>, Vec<Value>) {
    let mut c = command(h, home, args);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("start the binary");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut events = Vec::new();
    let body = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let Ok(v) = serde_json::from_str::<Value>(&l) else {
                continue;
            };
            if let Some(fault) = on(&v) {
                apply(h, fault).await;
            }
            events.push(v);
        }
    };
    tokio::time::timeout(Duration::from_secs(300), body)
        .await
        .expect("the run ends");
    let status = child.wait().await.unwrap();
    (status.code(), events)
}

pub(crate) fn started(v: &Value, node: &str, step: &str) -> bool {
    v["event"] == "step_started" && v["node"] == node && v["step"] == step
}

pub(crate) async fn node_json(h: &SimHandle, node: &str) -> Value {
    let r = control_for(h)
        .get(format!("{}/api/v1/nodes/{node}", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_failing_mid_drain_stops_the_run_before_the_switch_and_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, dir.path()).await;
    let hm = home(&h, |_| {});
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |v| started(v, "node4", "drain").then_some("replica-fails-during-drain"),
    )
    .await;
    assert_ne!(code, Some(0), "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{events:#?}");
    let outcome = last["outcome"].to_string();
    assert!(
        outcome.contains("degraded-volume") && outcome.contains("stays cordoned"),
        "{outcome}"
    );
    // The switch step stopped at its re-check, before any command; no reboot.
    assert!(
        !events.iter().any(|v| started(v, "node4", "reboot")),
        "{events:#?}"
    );
    let (_, ssh) = requests(&h).await;
    assert!(
        mutating(&ssh).is_empty(),
        "no switch, no reboot: {:#?}",
        mutating(&ssh)
    );
    let n = node_json(&h, "node4").await;
    assert_eq!(n["spec"]["unschedulable"], true, "node4 stays cordoned");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_reboot_is_known_by_the_boot_ids() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["quick-reboot"], 20.0, dir.path()).await;
    let hm = home(&h, |_| {});
    let before = node_json(&h, "node4").await["status"]["nodeInfo"]["bootID"].clone();
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_eq!(code, Some(0), "{events:#?}");
    let reboot = events
        .iter()
        .find(|v| v["event"] == "step_finished" && v["node"] == "node4" && v["step"] == "reboot")
        .expect("a reboot step");
    let msg = reboot["outcome"].to_string();
    assert!(msg.contains("boot id") && msg.contains('→'), "{msg}");
    assert!(
        events
            .iter()
            .any(|v| v["event"] == "reboot_issued" && v["node"] == "node4"),
        "{events:#?}"
    );
    let after = node_json(&h, "node4").await;
    assert_ne!(after["status"]["nodeInfo"]["bootID"], before, "a new boot");
    assert_ne!(after["spec"]["unschedulable"], true, "uncordoned");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_writes_failing_stop_the_run_before_its_next_destructive_step() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, dir.path()).await;
    let short_lease = |cfg: &mut toml::Table| {
        section(cfg, "upgrade").insert("lock_duration_secs".into(), 8.into());
    };
    // A short outage (inside the Lease duration): the renewals' retries get through.
    let hm = home(&h, short_lease);
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |v| started(v, "node4", "drain").then_some("lease-fails=4"),
    )
    .await;
    assert_eq!(code, Some(0), "{events:#?}");
    let (writes, _) = requests(&h).await;
    assert!(
        writes
            .iter()
            .any(|w| w["status"] == 500 && w["path"].as_str().unwrap_or("").contains("leases")),
        "the fault did answer 500: {writes:#?}"
    );
    // A long one: the run stops before the switch, node cordoned, saying why.
    let hm = home(&h, short_lease);
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node3"],
        |v| started(v, "node3", "drain").then_some("lease-fails=600"),
    )
    .await;
    assert_ne!(code, Some(0), "{events:#?}");
    let outcome = events.last().unwrap()["outcome"].to_string();
    assert!(
        outcome.contains("upgrade lock") && outcome.contains("stays cordoned"),
        "{outcome}"
    );
    assert!(
        !events.iter().any(|v| started(v, "node3", "reboot")),
        "{events:#?}"
    );
    let (_, ssh) = requests(&h).await;
    let node3_id = h
        .inventory()
        .hosts
        .iter()
        .find(|x| x.hostname == "node3")
        .unwrap()
        .id
        .clone();
    let m = mutating(&ssh);
    assert!(
        !m.iter().any(|r| r["host"] == node3_id.as_str()),
        "nothing switched or rebooted on node3: {m:#?}"
    );
    assert_eq!(node_json(&h, "node3").await["spec"]["unschedulable"], true);
    clear(&h, "lease-fails").await;
    h.shutdown().await;
}

/// The pre-upgrade etcd snapshot through the real binary and the simulator's SSH face: the
/// plan shows the step (JSON and text; `off` says so); under `snapshot-failing` a run is
/// refused with k3s's error, the only mutating SSH command the snapshot, no node touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_the_snapshot_and_a_failing_one_refuses_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["snapshot-failing"], 20.0, dir.path()).await;
    let hm = home(&h, |_| {});
    let doc = dry_run(&h, &hm).await;
    let snap = &doc["pre_snapshot"];
    assert_eq!(snap["policy"], "require", "{doc:#}");
    let name = snap["name"].as_str().unwrap();
    assert!(name.starts_with("homeinfra-"), "{snap:#}");
    assert_eq!(
        name.strip_prefix("homeinfra-"),
        doc["plan"]["run_id"].as_str()
    );
    let servers: Vec<&str> = snap["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(servers.len(), 3, "{snap:#}");
    assert!(snap.get("skipped").is_none(), "{snap:#}");
    let (_, text, err) = run(&h, &hm, &["upgrade", "--dry-run"]).await;
    assert!(
        text.contains("pre-upgrade etcd snapshot homeinfra-")
            && text.contains(&format!("on {}", servers[0])),
        "{text}\n{err}"
    );
    let off = home(&h, |cfg| {
        section(cfg, "upgrade").insert("pre_snapshot".into(), "off".into());
    });
    let doc = dry_run(&h, &off).await;
    assert!(
        doc["pre_snapshot"]["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("\"off\"")),
        "{doc:#}"
    );
    // A dry run takes no snapshot.
    let (_, ssh) = requests(&h).await;
    assert!(mutating(&ssh).is_empty(), "{:#?}", mutating(&ssh));

    let (code, events) = follow(&h, &hm, &["upgrade", "--yes", "--json"], |_| None).await;
    assert_eq!(code, Some(2), "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["outcome"]["status"], "refused", "{last:#}");
    assert_eq!(last["outcome"]["guard"], "pre-snapshot", "{last:#}");
    let msg = last["outcome"]["message"].as_str().unwrap();
    assert!(msg.contains("database space exceeded"), "{msg}");
    assert!(
        events
            .iter()
            .any(|v| v["event"] == "snapshot_finished" && v["outcome"]["result"] == "failed"),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|v| v["event"] == "step_started"),
        "no node started: {events:#?}"
    );
    let (writes, ssh) = requests(&h).await;
    let kinds: Vec<&str> = mutating(&ssh)
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["etcd-snapshot-save"], "{ssh:#?}");
    assert!(
        writes.iter().all(|w| w.to_string().contains("leases")),
        "only the lock was written: {writes:#?}"
    );
    for n in ["node1", "node2", "node3", "node4"] {
        assert_ne!(node_json(&h, n).await["spec"]["unschedulable"], true, "{n}");
    }
    h.shutdown().await;
}
