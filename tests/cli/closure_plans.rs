//! Closure diffs without Nix: the real binary against the simulator, run with a `PATH` that
//! holds no `nix` (the config `sim` writes says `closure_source = "sim"`). Each scenario gives
//! its order or its refusal in `upgrade --dry-run --json`; the plan's per-node summary is the
//! one `diff HOST --json` gives; a host with no change is skipped; a drifted host is a warning
//! of `check`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use homeinfra_tui::sim::{self, SimHandle, SimOptions};
use serde_json::Value;

/// The binary with its state in `state` and a `PATH` of one empty directory: no nix.
fn bin(h: &SimHandle, state: &Path, args: &[&str]) -> Output {
    let empty = state.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .arg("--config")
        .arg(h.config_path())
        .arg("--hosts")
        .arg(h.hosts_path())
        .arg("--log-file")
        .arg(state.join("log.txt"))
        .args(args)
        .env("PATH", &empty)
        .env("XDG_STATE_HOME", state)
        .env("XDG_CACHE_HOME", state.join("cache"))
        .env("HOME", state)
        .env_remove("KUBECONFIG")
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

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

async fn start(scenario: &str, dir: &Path) -> SimHandle {
    start_all(&[scenario], dir).await
}

async fn start_all(scenarios: &[&str], dir: &Path) -> SimHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let names: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
    sim::start(
        SimOptions {
            speed: 20.0,
            scenarios: sim::scenario::parse_all(&names).unwrap(),
            ..Default::default()
        },
        dir,
    )
    .await
    .unwrap()
}

/// `upgrade --dry-run --json` of a new simulator with `scenario`: (exit code, document).
async fn dry_run(scenario: &str) -> (Option<i32>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = start(scenario, dir.path()).await;
    let o =
        tokio::task::block_in_place(|| bin(&h, state.path(), &["upgrade", "--dry-run", "--json"]));
    h.shutdown().await;
    (o.status.code(), json(&o))
}

fn order(doc: &Value) -> Vec<String> {
    doc["plan"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

fn refusals(doc: &Value) -> Vec<(String, String, String)> {
    doc["forecast"]["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["guard"].as_str().unwrap_or("").to_string(),
                r["message"].as_str().unwrap_or("").to_string(),
                r["fix"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_k3s_minor_bump_goes_servers_first_the_leader_last() {
    let (code, doc) = dry_run("k3s-minor-bump").await;
    assert_eq!(code, Some(0), "{doc:#}");
    let f = &doc["forecast"];
    assert_eq!(f["order"]["rule"], "servers-first", "{f:#}");
    assert!(
        f["order"]["reason"]
            .as_str()
            .unwrap()
            .contains("1.31 → 1.32"),
        "{f:#}"
    );
    let entries = doc["plan"]["entries"].as_array().unwrap();
    let roles: Vec<&str> = entries
        .iter()
        .map(|e| e["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.last(), Some(&"agent"), "{roles:?}");
    // The etcd leader is the last server.
    assert_eq!(entries[2]["etcd_leader"], true, "{entries:#?}");
    assert!(entries[..2].iter().all(|e| e["etcd_leader"] == false));
    assert!(refusals(&doc).is_empty(), "{:?}", refusals(&doc));
    assert_eq!(doc["would_start"], true);
    // Every node's k3s goes up a minor.
    for n in f["nodes"].as_array().unwrap() {
        let bumps = n["summary"]["bumps"].as_array().unwrap();
        let k3s = bumps.iter().find(|b| b["package"] == "k3s").unwrap();
        assert_eq!(k3s["from"], "1.31.4+k3s1");
        assert_eq!(k3s["to"], "1.32.3+k3s1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_a_minor_and_downgrading_are_refused_with_the_supported_path() {
    let (code, doc) = dry_run("k3s-skip-minor").await;
    assert_eq!(code, Some(2), "{doc:#}");
    assert_eq!(doc["would_start"], false);
    let r = refusals(&doc);
    assert_eq!(r.len(), 4, "{r:?}");
    for (guard, message, fix) in &r {
        assert_eq!(guard, "k3s-skew");
        assert!(
            message.contains("from 1.31.4+k3s1 to 1.33.1+k3s1, more than one minor"),
            "{message}"
        );
        assert!(fix.contains("pkgs.k3s_1_32"), "{fix}");
    }

    let (code, doc) = dry_run("k3s-downgrade").await;
    assert_eq!(code, Some(2), "{doc:#}");
    let r = refusals(&doc);
    assert_eq!(r.len(), 4, "{r:?}");
    for (guard, message, fix) in &r {
        assert_eq!(guard, "k3s-skew");
        assert!(
            message.contains("from 1.31.4+k3s1 down to 1.30.11+k3s1"),
            "{message}"
        );
        assert!(fix.contains("pkgs.k3s_1_31"), "{fix}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_update_keeps_todays_order_and_reboots_every_node() {
    let (code, doc) = dry_run("kernel-update").await;
    assert_eq!(code, Some(0), "{doc:#}");
    let f = &doc["forecast"];
    assert_eq!(f["order"]["rule"], "agents-first", "{f:#}");
    assert_eq!(order(&doc)[0], "node4");
    let reboots: Vec<&str> = f["reboots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        reboots,
        order(&doc).iter().map(String::as_str).collect::<Vec<_>>()
    );
    for n in f["nodes"].as_array().unwrap() {
        assert_eq!(n["reboot"]["will"], "yes", "{n:#}");
        assert!(
            n["reboot"]["why"]
                .as_str()
                .unwrap()
                .contains("reboot = auto"),
            "{n:#}"
        );
        let bumps = n["summary"]["bumps"].as_array().unwrap();
        assert!(bumps.iter().any(|b| b["package"] == "kernel"), "{n:#}");
        assert!(!bumps.iter().any(|b| b["package"] == "k3s"), "{n:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_no_change_is_skipped() {
    let (code, doc) = dry_run("no-change").await;
    assert_eq!(code, Some(0), "{doc:#}");
    let skipped = doc["forecast"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["node"], "node4");
    assert!(
        skipped[0]["reason"].as_str().unwrap().contains("no change"),
        "{skipped:#?}"
    );
    assert_eq!(order(&doc), ["node2", "node3", "node1"]);
}

/// The plan's summary of a node is what `diff HOST --json` says of its host; `diff` shows
/// classified sections; the drifted host is a warning of `check` (with nix nowhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_agrees_with_diff_and_check_sees_the_drifted_host() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = start("drifted-host", dir.path()).await;
    let s = state.path().to_path_buf();
    let run = |args: &[&str]| tokio::task::block_in_place(|| bin(&h, &s, args));

    let o = run(&["upgrade", "--dry-run", "--json"]);
    let plan = json(&o);
    let nodes = plan["forecast"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 4, "{plan:#}");
    for n in &nodes {
        let host = n["host"].as_str().unwrap();
        let o = run(&["diff", host, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let d = json(&o);
        assert_eq!(d["summary"], n["summary"], "{host}: {d:#}\nplan: {n:#}");
        assert_eq!(d["old_path"], n["deployed"], "{host}");
        assert_eq!(d["new_path"], n["target"], "{host}");
        assert!(d["summary"]["changes"].as_u64().unwrap() > 0, "{d:#}");
        if host == "instance_2" {
            // The hand-deployed system differs from the flake's by its configuration only.
            continue;
        }
        // Classified: the kernel needs a reboot, containerd a restart.
        let sections = &d["sections"];
        let names = |k: &str| -> Vec<String> {
            sections[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            names("reboot_required").contains(&"linux".to_string()),
            "{sections:#}"
        );
        assert!(
            names("service_restarts").contains(&"containerd".to_string()),
            "{sections:#}"
        );
    }
    // The text form too.
    let o = run(&["diff", "instance_1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Reboot required") && out.contains("Service restarts"),
        "{out}"
    );

    let o = run(&["check", "--json", "--timeout", "20"]);
    let doc = json(&o);
    let findings = doc["findings"].as_array().unwrap();
    let drifted: Vec<&Value> = findings
        .iter()
        .filter(|f| f["code"] == "host.drifted")
        .collect();
    assert_eq!(drifted.len(), 1, "{findings:#?}");
    assert_eq!(drifted[0]["severity"], "warning");
    assert_eq!(drifted[0]["subject"], "instance_2", "{drifted:#?}");
    // The others have an update pending (the flake moved on), not drift.
    let pending = findings
        .iter()
        .filter(|f| f["code"] == "host.update_pending")
        .count();
    assert_eq!(pending, 3, "{findings:#?}");
    assert_eq!(o.status.code(), Some(1), "a warning: {}", text(&o));
    h.shutdown().await;
}

/// The plan's storage notes: with Longhorn's `replica-replenishment-wait-interval` below a
/// rebooting node's expected downtime (no earlier run: the 300 s default), the plan warns per
/// node — in `--json` and in the text — naming the setting and both durations; with
/// Longhorn's default (600 s) it does not. The drain policy is named either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replenishment_wait_below_the_expected_downtime_is_warned_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = start_all(&["kernel-update", "replenishment-wait=60"], dir.path()).await;
    let o =
        tokio::task::block_in_place(|| bin(&h, state.path(), &["upgrade", "--dry-run", "--json"]));
    let t = tokio::task::block_in_place(|| bin(&h, state.path(), &["upgrade", "--dry-run"]));
    h.shutdown().await;
    let doc = json(&o);
    let storage = &doc["forecast"]["storage"];
    assert_eq!(
        storage["settings"]["replica-replenishment-wait-interval"], "60",
        "{storage:#}"
    );
    assert_eq!(storage["downtime_secs"], 300, "{storage:#}");
    let notes = storage["notes"].as_array().unwrap();
    let warned: Vec<&str> = notes
        .iter()
        .filter(|n| n["setting"] == "replica-replenishment-wait-interval")
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        warned,
        order(&doc).iter().map(String::as_str).collect::<Vec<_>>(),
        "{storage:#}"
    );
    let first = notes
        .iter()
        .find(|n| n["setting"] == "replica-replenishment-wait-interval")
        .unwrap();
    let msg = first["message"].as_str().unwrap();
    assert!(
        msg.contains("needless full rebuild") && msg.contains("(60 s)") && msg.contains("300 s"),
        "{msg}"
    );
    assert!(
        notes.iter().any(|n| n["setting"] == "node-drain-policy"
            && n["message"]
                .as_str()
                .unwrap()
                .contains("block-if-contains-last-replica")),
        "{storage:#}"
    );
    let out = text(&t);
    assert!(out.contains("needless full rebuild"), "{out}");
    assert!(
        out.contains("replica-replenishment-wait-interval=60"),
        "{out}"
    );

    // Longhorn's default wait (600 s) is longer than the 300 s expected: no warning.
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = start_all(&["kernel-update"], dir.path()).await;
    let o =
        tokio::task::block_in_place(|| bin(&h, state.path(), &["upgrade", "--dry-run", "--json"]));
    h.shutdown().await;
    let doc = json(&o);
    let storage = &doc["forecast"]["storage"];
    assert_eq!(
        storage["settings"]["replica-replenishment-wait-interval"], "600",
        "{storage:#}"
    );
    let notes = storage["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .all(|n| n["setting"] != "replica-replenishment-wait-interval"),
        "{storage:#}"
    );
}
