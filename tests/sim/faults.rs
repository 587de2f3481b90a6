//! Faults per face (issue 18), end to end: the real binary against the simulator, each face
//! hung, answering garbage, answering 500, slow or flapping (through `/sim/v1/faults`).
//! `check --json` says "could not check" (exit 3) naming only the source behind the faulty
//! face (Longhorn its own, beside the nodes and pods; SSH per host) and still reports the
//! others; `upgrade --dry-run --json` refuses: the guards that read the faulty face cannot
//! verify, none passes on what it could not read, the others still decide. A host really down
//! is still critical (exit 2) through its node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use homeinfra_tui::sim::SimHandle;
use serde_json::Value;

use crate::common::sim as simh;

/// Every fault kind on `face`, as the control API takes them. The slow one is slower than any
/// timeout of the config below; the flap starts down and stays down longer than a run.
fn faults_of(face: &str) -> Vec<String> {
    vec![
        format!("hang={face}"),
        format!("garbage={face}"),
        format!("http-500={face}"),
        format!("slow={face}:30"),
        format!("flap={face}:120"),
    ]
}

/// The simulator's config with short timeouts (every source gives up within a few seconds),
/// in `dir`.
fn short_config(h: &SimHandle, dir: &Path) -> PathBuf {
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(h.config_path()).unwrap()).unwrap();
    crate::common::short_source_timeouts(&mut cfg);
    crate::common::set_key(&mut cfg, "upgrade", "flake", "github:me/infra".into());
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path
}

/// Run the binary with `args` to its end: (exit code, stdout, stderr).
async fn run(h: &SimHandle, config: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
    run_env(h, config, home, args, &[]).await
}

/// [`run`] with extra environment variables.
async fn run_env(
    h: &SimHandle,
    config: &Path,
    home: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
            .arg("--config")
            .arg(config)
            .arg("--hosts")
            .arg(h.hosts_path())
            .arg("--log-file")
            .arg(home.join("log.txt"))
            .args(args)
            .env("HOME", home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CONFIG_HOME", home.join("cfg"))
            .env_remove("KUBECONFIG")
            .env_remove("SSH_AUTH_SOCK")
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{args:?} did not end within 240 s"))
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn control(h: &SimHandle) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `POST /sim/v1/faults {"scenario": name}`.
pub(crate) async fn apply(h: &SimHandle, name: &str) {
    let r = control(h)
        .post(format!("{}/sim/v1/faults", h.api_url()))
        .bearer_auth(h.token())
        .json(&serde_json::json!({ "scenario": name }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "{name}: {status}: {}",
        r.text().await.unwrap_or_default()
    );
}

/// `DELETE /sim/v1/faults/NAME`.
pub(crate) async fn clear(h: &SimHandle, name: &str) {
    let r = control(h)
        .delete(format!("{}/sim/v1/faults/{name}", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{name}: {}", r.status());
}

/// `GET /sim/v1/faults`.
async fn faults_now(h: &SimHandle) -> Value {
    control(h)
        .get(format!("{}/sim/v1/faults", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The source `check` reads a face through (Longhorn's CRDs come through the Kubernetes API
/// but Longhorn is its own source: its failure leaves the nodes and pods).
fn source_of(face: &str) -> &str {
    face
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_cannot_check_only_the_source_behind_a_faulty_face() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, &dir.path().join("sim")).await;
    let config = short_config(&h, &dir.path().join("home"));
    let home = dir.path().join("home");
    let check = ["check", "--json", "--timeout", "5"];

    // Healthy: every source read, the findings each source gives.
    let (code, out, err) = run(&h, &config, &home, &check).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let healthy = codes(&doc);
    assert!(
        !healthy.iter().any(|c| c.starts_with("source.")),
        "{code}: {doc:#}"
    );
    // What shows the Kubernetes source (Longhorn's volumes) and the SSH one (host facts) read.
    assert!(
        healthy.iter().any(|c| c == "longhorn.unencrypted"),
        "{doc:#}"
    );
    assert!(
        healthy.iter().any(|c| c == "host.update_pending"),
        "{doc:#}"
    );

    let mut seen = Vec::new();
    for face in [
        "kubernetes",
        "longhorn",
        "etcd",
        "mimir",
        "loki",
        "alertmanager",
        "ssh",
    ] {
        for fault in faults_of(face) {
            apply(&h, &fault).await;
            let state = faults_now(&h).await;
            assert!(
                state["faces"][face]["fault"].is_string()
                    && state["faces"][face]["since"].is_string(),
                "{fault}: {state:#}"
            );
            let (code, out, err) = run(&h, &config, &home, &check).await;
            clear(&h, &fault).await;
            let doc: Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{fault}: {e}: {out}\n{err}"));
            let got = codes(&doc);
            let failing: Vec<&String> = got
                .iter()
                .filter(|c| c.starts_with("source.") && c.ends_with(".unreachable"))
                .collect();
            if face == "ssh" {
                // SSH is read per host: every host says why, no source is "unreachable";
                // facts that could not be read are "could not check" (exit 3), not critical,
                // and the cluster is still reported.
                assert_eq!(code, 3, "{fault}: {doc:#}");
                assert_eq!(doc["status"], "unknown", "{fault}: {doc:#}");
                assert!(failing.is_empty(), "{fault}: {doc:#}");
                for host in h.inventory().hosts.iter() {
                    assert!(
                        doc["findings"].as_array().unwrap().iter().any(|f| {
                            f["subject"] == host.id.as_str()
                                && f["code"].as_str().is_some_and(|c| {
                                    c == "host.ssh_unreachable" || c == "host.facts_unreadable"
                                })
                        }),
                        "{fault}: {} not reported: {doc:#}",
                        host.id
                    );
                }

                assert!(
                    got.iter().any(|c| c == "longhorn.unencrypted"),
                    "{fault}: {doc:#}"
                );
            } else {
                let want = format!("source.{}.unreachable", source_of(face));
                assert_eq!(code, 3, "{fault}: {doc:#}");
                assert_eq!(failing, vec![&want], "{fault}: only {want}: {doc:#}");
                let finding = doc["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["code"] == want.as_str())
                    .unwrap();
                let msg = finding["message"].as_str().unwrap_or("");
                assert!(msg.contains("unreachable since "), "{fault}: {msg}");
                // The others are still read and reported.
                assert!(
                    got.iter().any(|c| c == "host.update_pending"),
                    "{fault}: {doc:#}"
                );
                if !matches!(face, "kubernetes" | "longhorn") {
                    assert!(
                        got.iter().any(|c| c == "longhorn.unencrypted"),
                        "{fault}: {doc:#}"
                    );
                }
            }
            seen.push(format!("{fault}: exit {code}"));
        }
    }
    eprintln!("{}", seen.join("\n"));

    // Everything cleared: healthy again.
    let state = faults_now(&h).await;
    assert_eq!(state["faces"], serde_json::json!({}), "{state:#}");
    let (code, out, _) = run(&h, &config, &home, &check).await;
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(
        !codes(&doc).iter().any(|c| c.starts_with("source.")),
        "{code}: {doc:#}"
    );
    h.shutdown().await;
}

/// The guards of a dry-run document whose verdict is not "pass", by guard name.
fn not_passing(doc: &Value) -> Vec<(String, String, String)> {
    doc["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["verdicts"].as_array().unwrap())
        .filter(|v| v["verdict"] != "pass")
        .map(|v| {
            (
                v["guard"].as_str().unwrap_or("").to_string(),
                v["verdict"].as_str().unwrap_or("").to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Whether any verdict of `guard` passed.
fn passed(doc: &Value, guard: &str) -> bool {
    doc["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["verdicts"].as_array().unwrap())
        .any(|v| v["guard"] == guard && v["pass"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_guards_cannot_verify_under_each_fault() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, &dir.path().join("sim")).await;
    let config = short_config(&h, &dir.path().join("home"));
    let home = dir.path().join("home");
    let dry = ["upgrade", "--dry-run", "--json"];

    let (code, out, err) = run(&h, &config, &home, &dry).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(doc["would_start"], true, "{code}: {:#?}", not_passing(&doc));

    // The guards each face feeds.
    let guards_of = |face: &str| -> &[&str] {
        match face {
            "kubernetes" => &["node-missing", "node-not-ready", "k3s-skew"],
            "longhorn" => &["degraded-volume", "last-replica"],
            "etcd" => &["etcd-member-down", "etcd-quorum"],
            // With [alertmanager] url (the simulator's config sets it), the alert guard reads
            // Alertmanager's active alerts, not Prometheus's ALERTS.
            "alertmanager" => &["alert-firing"],
            _ => &["auto-upgrade"],
        }
    };
    let mut seen = Vec::new();
    for face in ["kubernetes", "longhorn", "etcd", "alertmanager", "ssh"] {
        for fault in faults_of(face) {
            apply(&h, &fault).await;
            let (code, out, err) = run(&h, &config, &home, &dry).await;
            clear(&h, &fault).await;
            let doc: Value =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{fault}: {e}: {out}\n{err}"));
            let bad = not_passing(&doc);
            assert_eq!(doc["would_start"], false, "{fault}: {bad:#?}");
            assert_eq!(code, 2, "{fault}: {bad:#?}\n{err}");
            for g in guards_of(face) {
                assert!(
                    bad.iter()
                        .any(|(guard, verdict, _)| guard == g && verdict == "cannot-verify"),
                    "{fault}: {g} should not verify: {bad:#?}"
                );
                assert!(!passed(&doc, g), "{fault}: {g} passed: {bad:#?}");
            }
            if face == "longhorn" {
                // Longhorn is its own source: the nodes were read, their guards decide.
                for g in ["node-missing", "node-not-ready", "node-cordoned"] {
                    assert!(passed(&doc, g), "{fault}: {g} did not pass: {bad:#?}");
                }
            }
            seen.push(format!(
                "{fault}: {}",
                bad.iter()
                    .map(|(g, v, _)| format!("{g} {v}"))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    // No guard reads Loki, nor Mimir once the alerts come from Alertmanager (and no gate
    // query is configured): with either hung, the dry run decides as before.
    for fault in ["hang=loki", "hang=mimir"] {
        apply(&h, fault).await;
        let (_, out, err) = run(&h, &config, &home, &dry).await;
        clear(&h, fault).await;
        let doc: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{fault}: {e}: {out}\n{err}"));
        assert_eq!(
            doc["would_start"],
            true,
            "{fault}: {:#?}",
            not_passing(&doc)
        );
    }
    eprintln!("{}", seen.join("\n"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_host_gone_mid_command_and_a_changed_host_key() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, &dir.path().join("sim")).await;
    let config = short_config(&h, &dir.path().join("home"));
    let home = dir.path().join("home");
    let check = ["check", "--json", "--timeout", "5"];
    let host_findings = |doc: &Value, id: &str| -> Vec<String> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["subject"] == id
                    && f["code"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("host.ssh"))
            })
            .map(|f| {
                format!(
                    "{} {}",
                    f["code"].as_str().unwrap(),
                    f["message"].as_str().unwrap()
                )
            })
            .collect()
    };

    // Cut mid-command: node2's facts could not be read (exit 3, could not check); a changed
    // host key is known to be wrong (exit 2).
    for (fault, code, says, want_exit) in [
        (
            "ssh-cut=node2",
            "host.ssh_unreachable",
            "connection lost",
            3,
        ),
        ("host-key-changed=node2", "host.ssh_host_key_changed", "", 2),
    ] {
        apply(&h, fault).await;
        let (exit, out, err) = run(&h, &config, &home, &check).await;
        let doc: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{fault}: {e}: {out}\n{err}"));
        assert_eq!(exit, want_exit, "{fault}: {doc:#}");
        let got = host_findings(&doc, "instance_2");
        assert!(
            got.iter().any(|f| f.starts_with(code) && f.contains(says)),
            "{fault}: {got:#?}"
        );
        for other in ["instance_1", "instance_3", "instance_4"] {
            assert!(
                host_findings(&doc, other).is_empty(),
                "{fault}: {other}: {doc:#}"
            );
        }
        // The upgrade refuses: node2's SSH guards cannot verify.
        let (_, out, err) = run(&h, &config, &home, &["upgrade", "--dry-run", "--json"]).await;
        let dry: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{fault}: {e}: {out}\n{err}"));
        assert_eq!(
            dry["would_start"],
            false,
            "{fault}: {:#?}",
            not_passing(&dry)
        );
        assert!(
            !passed(&dry, "auto-upgrade")
                || not_passing(&dry).iter().any(|(g, v, m)| {
                    g == "auto-upgrade" && v == "cannot-verify" && m.contains("instance_2")
                }),
            "{fault}: {:#?}",
            not_passing(&dry)
        );
        clear(&h, fault).await;
        // Cleared: node2 is read again.
        let (_, out, _) = run(&h, &config, &home, &check).await;
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert!(
            host_findings(&doc, "instance_2").is_empty(),
            "{fault} cleared: {doc:#}"
        );
    }
    h.shutdown().await;
}

/// The client side: the key only in ssh-agent, and the agent's socket goes away between two
/// checks. The first logs in through the agent; the second says, per host, that the login was
/// refused and why (the agent's socket), and nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_socket_gone_is_a_login_refused_naming_the_agent() {
    let (Some(agent), Some(add)) = (
        crate::common::require_program("ssh-agent"),
        crate::common::require_program("ssh-add"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, &dir.path().join("sim")).await;
    let home = dir.path().join("home");
    let config = short_config(&h, &home);
    // Only the agent holds the key: the configured identity file does not exist.
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    cfg["ssh"].as_table_mut().unwrap().insert(
        "identity_files".into(),
        toml::Value::Array(vec![home.join("no-such-key").display().to_string().into()]),
    );
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = std::process::Command::new(agent)
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = h.ssh_config().identity_files[0].clone();
    let added = std::process::Command::new(add)
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let check = ["check", "--json", "--timeout", "5"];
    let ssh_findings = |doc: &Value| -> Vec<(String, String)> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["code"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("host.ssh"))
            })
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    let (_, out, err) = run_env(&h, &config, &home, &check, &[("SSH_AUTH_SOCK", &sock)]).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert!(
        ssh_findings(&doc).is_empty(),
        "logged in through the agent: {doc:#}"
    );

    // The agent is gone, and its socket with it.
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = std::fs::remove_file(&sock);
    let (code, out, err) = run_env(&h, &config, &home, &check, &[("SSH_AUTH_SOCK", &sock)]).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let got = ssh_findings(&doc);
    assert_eq!(
        got.len(),
        h.inventory().hosts.len(),
        "one per host: {got:#?}"
    );
    assert!(
        got.iter()
            .all(|(c, m)| c == "host.ssh_auth_failed" && m.contains("SSH_AUTH_SOCK")),
        "{got:#?}"
    );
    // Every host's facts unread: could not check, the cluster still reported.
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        codes(&doc).iter().any(|c| c == "longhorn.unencrypted"),
        "{doc:#}"
    );
    h.shutdown().await;
}

/// A host really down (the simulator's `unreachable-host`: no SSH, its node Unknown) is not
/// merely "could not check": its node's finding is critical and `check` exits 2, its SSH
/// finding beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_really_down_is_critical_through_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["unreachable-host"], 20.0, &dir.path().join("sim")).await;
    let config = short_config(&h, &dir.path().join("home"));
    let home = dir.path().join("home");
    let (code, out, err) = run(&h, &config, &home, &["check", "--json", "--timeout", "5"]).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let got = codes(&doc);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["status"], "critical", "{doc:#}");
    let down: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "node.not_ready")
        .collect();
    assert_eq!(down.len(), 1, "{doc:#}");
    assert_eq!(down[0]["severity"], "critical", "{doc:#}");
    assert!(
        got.iter().any(|c| c == "host.ssh_unreachable"),
        "its SSH finding beside it: {doc:#}"
    );
    h.shutdown().await;
}

/// One Mimir query failing while the others answer (here `net_tx` overridden with a function
/// the simulator's Prometheus refuses): `check` names the query in a warning finding (which,
/// since when, Prometheus's reason) and reads everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mimir_query_is_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, &dir.path().join("sim")).await;
    let home = dir.path().join("home");
    let config = short_config(&h, &home);
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let mut queries = toml::Table::new();
    queries.insert(
        "net_tx".into(),
        "holt_winters(node_network_transmit_bytes_total[5m], 0.5, 0.5)".into(),
    );
    cfg["mimir"]
        .as_table_mut()
        .unwrap()
        .insert("queries".into(), toml::Value::Table(queries));
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    let (code, out, err) = run(&h, &config, &home, &["check", "--json", "--timeout", "5"]).await;
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let failed: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "source.mimir.query_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{doc:#}");
    assert_eq!(failed[0]["subject"], "net_tx", "{doc:#}");
    assert_eq!(failed[0]["severity"], "warning", "{doc:#}");
    let msg = failed[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Mimir query net_tx failing since ") && msg.contains("holt_winters"),
        "{msg}"
    );
    // Mimir as a whole was read: no source unreachable, the other sources reported.
    let got = codes(&doc);
    assert!(!got.iter().any(|c| c.ends_with(".unreachable")), "{doc:#}");
    assert!(got.iter().any(|c| c == "host.update_pending"), "{doc:#}");
    assert_eq!(code, 1, "{doc:#}");
    h.shutdown().await;
}
