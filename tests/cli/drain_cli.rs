//! One node's maintenance by the real binary against the simulator: `drain NODE` shows its
//! plan, drains the node (only DaemonSet, mirror and Longhorn instance-manager pods stay) and
//! leaves a background engine holding it — the lock, the silences in the simulator's
//! Alertmanager, `check --json` marking the node's findings with the run — until
//! `uncordon NODE` ends it (schedulable, silences expired, lock released, engine gone). A
//! blocking PodDisruptionBudget is named (disruptionsAllowed 0) and the drain stops at its
//! timeout with the node cordoned; read-only refuses; an upgrade's lock refuses it, named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::engine::{BIN, alive, fast_config, runs_dir, wait_dead};
use homeinfra_tui::operations::upgrade::live::{KubeCluster, KubeWriter};
use homeinfra_tui::operations::upgrade::{ClusterRead, journal, lock};
use homeinfra_tui::sim::{self, SimHandle, SimOptions};

struct Rig {
    sim: SimHandle,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    /// Engines to kill if the test fails half-way.
    engines: Engines,
}

struct Engines(Vec<u32>);

impl Drop for Engines {
    fn drop(&mut self) {
        for pid in &self.0 {
            if alive(*pid) {
                // SAFETY: a signal to a process this test started.
                unsafe {
                    libc::kill(*pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

impl Rig {
    async fn start(scenarios: &[&str], drain_timeout: Option<i64>) -> Rig {
        crate::common::sim::init_crypto();
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let names: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
        let sim = sim::start(
            SimOptions {
                speed: 20.0,
                scenarios: sim::scenario::parse_all(&names).unwrap(),
                ..Default::default()
            },
            dir.path(),
        )
        .await
        .unwrap();
        let cfg = dir.path().join("config.toml");
        fast_config(&cfg);
        if let Some(t) = drain_timeout {
            let mut c: toml::Table =
                toml::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
            crate::common::set_key(&mut c, "upgrade", "drain_timeout_secs", t.into());
            std::fs::write(&cfg, toml::to_string(&c).unwrap()).unwrap();
        }
        Rig {
            sim,
            dir,
            state,
            engines: Engines(Vec::new()),
        }
    }

    /// The binary with this rig's files: (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .arg("--hosts")
            .arg(self.dir.path().join("hosts.json"))
            .arg("--log-file")
            .arg(self.state.path().join("log.txt"))
            .args(args)
            .env("XDG_STATE_HOME", self.state.path())
            .env("HOME", self.state.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn runs(&self) -> PathBuf {
        runs_dir(self.state.path())
    }

    async fn cluster(&self) -> KubeCluster {
        let env = crate::common::sim::env(&self.sim);
        KubeCluster::new(&env.config.kubernetes).await.unwrap()
    }

    /// `drain NODE --yes --json`: exit code, the JSON lines, stderr; its engine remembered.
    async fn drain(&mut self, node: &str) -> (i32, Vec<serde_json::Value>, String) {
        let (code, out, err) = self.run(&["drain", node, "--yes", "--json"]).await;
        let lines: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if let Some(pid) = lines.iter().find_map(|v| v["detached"]["pid"].as_u64()) {
            self.engines.0.push(pid as u32);
        }
        (code, lines, err)
    }

    /// The simulator's Alertmanager silences: (id, state, comment).
    async fn silences(&self) -> Vec<(String, String, String)> {
        let env = crate::common::sim::env(&self.sim);
        let url = env.config.alertmanager.url.clone().unwrap();
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{url}/api/v2/silences"))
            .header("X-Scope-OrgID", "homelab")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or("").to_string(),
                    s["status"]["state"].as_str().unwrap_or("").to_string(),
                    s["comment"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

fn events(lines: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|v| v["event"] == kind)
        .cloned()
        .collect()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_holds_the_node_in_maintenance_until_uncordon_ends_it() {
    let mut rig = Rig::start(&[], None).await;
    let (code, lines, err) = rig.drain("node4").await;
    assert_eq!(code, 0, "{lines:#?}\n{err}");
    // The plan first: the node, its guards, the PDBs respected, the silences.
    let plan = lines
        .iter()
        .find(|v| v.get("drain_plan").is_some())
        .expect("the plan");
    assert_eq!(plan["drain_plan"]["plan"]["kind"], "drain", "{plan}");
    assert!(
        plan["drain_plan"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["pass"] == true),
        "{plan}"
    );
    let pdbs = plan["drain_plan"]["pdbs"]["Ok"].as_array().unwrap();
    assert!(
        pdbs.iter()
            .any(|p| p.as_str().unwrap().contains("disruptionsAllowed")),
        "{plan}"
    );
    assert!(
        !plan["drain_plan"]["silences"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{plan}"
    );
    let run_id = plan["drain_plan"]["plan"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(run_id.starts_with("drain-"), "{run_id}");
    // Guards → silences → cordon → drain → hold.
    let steps: Vec<String> = events(&lines, "step_finished")
        .iter()
        .map(|e| format!("{}:{}", e["step"].as_str().unwrap(), e["outcome"]["result"]))
        .collect();
    assert_eq!(
        steps,
        ["guards:\"ok\"", "cordon:\"ok\"", "drain:\"ok\""],
        "{lines:#?}"
    );
    assert_eq!(events(&lines, "silenced").len(), 1, "{lines:#?}");
    let hold = events(&lines, "waiting");
    let hold = hold.last().unwrap();
    assert_eq!(hold["what"], "maintenance", "{hold}");
    assert!(
        hold["detail"]
            .as_str()
            .unwrap()
            .contains("in maintenance (drained by "),
        "{hold}"
    );

    // Only DaemonSet, mirror and instance-manager pods stay on it; it is cordoned by the run.
    let cluster = rig.cluster().await;
    let pods = cluster.pods_on("node4").await.unwrap();
    let left: Vec<String> = pods
        .iter()
        .filter(|p| !p.deleting)
        .map(|p| p.key())
        .collect();
    assert!(
        pods.iter()
            .filter(|p| !p.deleting)
            .all(|p| p.daemonset || p.mirror),
        "{left:?}"
    );
    assert!(
        left.iter().any(|k| k.contains("instance-manager")),
        "Longhorn's instance manager stays: {left:?}"
    );
    let st = cluster.node("node4").await.unwrap();
    assert!(st.unschedulable);
    assert_eq!(st.cordoned_by.as_deref(), Some(run_id.as_str()));

    // The engine lives on, holding the lock; its journal is private; the silences are active.
    let pid = *rig.engines.0.first().expect("the engine's pid");
    assert!(alive(pid), "the engine holds the maintenance");
    let held = lock::current(&cluster, jiff::Timestamp::now())
        .await
        .unwrap()
        .expect("the lock");
    assert_eq!(held.run_id(), run_id);
    assert_eq!(mode(&journal::path_of(&rig.runs(), &run_id)), 0o600);
    let ours: Vec<(String, String, String)> = rig
        .silences()
        .await
        .into_iter()
        .filter(|(_, _, c)| c.contains(&run_id))
        .collect();
    assert!(!ours.is_empty(), "silences made for the run");
    assert!(
        ours.iter()
            .all(|(_, s, c)| s == "active" && c.contains("drain run")),
        "{ours:?}"
    );

    // An upgrade refuses while the maintenance holds the lock, naming it.
    let (code, out, err) = rig.run(&["upgrade", "--dry-run"]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(format!("{out}{err}").contains(&run_id), "{out}\n{err}");

    // `check --json`: the node's findings are expected, with the run id (the node rebooted
    // in its maintenance: critical findings about it).
    rig.sim.world().reboot("node4").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, doc) = crate::common::sim::check_json(&rig.sim, rig.state.path()).await;
    assert_eq!(doc["maintenance"]["run_id"], run_id.as_str(), "{doc:#}");
    assert!(
        doc["maintenance"]["nodes"]["node4"]
            .as_str()
            .unwrap()
            .starts_with("in maintenance (drained by "),
        "{doc:#}"
    );
    let about_node4: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let s = f["subject"].as_str().unwrap_or("");
            (s == "node4" || s == "instance_4") && f["severity"] != "info"
        })
        .collect();
    assert!(!about_node4.is_empty(), "{doc:#}");
    for f in &about_node4 {
        assert_eq!(f["maintenance"], run_id.as_str(), "{f}");
    }

    // `uncordon node4` ends it: schedulable, silences expired, lock released, engine gone.
    let (code, out, err) = rig.run(&["uncordon", "node4"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("uncordon ok"), "{out}\n{err}");
    wait_dead(pid, 30);
    let st = cluster.node("node4").await.unwrap();
    assert!(!st.unschedulable);
    assert_eq!(st.cordoned_by, None);
    assert_eq!(
        lock::current(&cluster, jiff::Timestamp::now())
            .await
            .unwrap(),
        None
    );
    let ours: Vec<(String, String, String)> = rig
        .silences()
        .await
        .into_iter()
        .filter(|(_, _, c)| c.contains(&run_id))
        .collect();
    assert!(
        !ours.is_empty() && ours.iter().all(|(_, s, _)| s == "expired"),
        "{ours:?}"
    );
    let sum = journal::summarize(&journal::path_of(&rig.runs(), &run_id)).unwrap();
    assert!(
        matches!(
            sum.finished,
            Some(homeinfra_tui::operations::upgrade::RunOutcome::Completed)
        ),
        "{:?}",
        sum.finished
    );
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_pdb_is_named_and_the_drain_stops_at_its_timeout_cordoned() {
    let mut rig = Rig::start(&["pdb-blocks"], Some(6)).await;
    let cluster = rig.cluster().await;
    let mut node = None;
    for n in ["node1", "node2", "node3", "node4"] {
        if cluster
            .pods_on(n)
            .await
            .unwrap()
            .iter()
            .any(|p| p.labels.get("app").map(String::as_str) == Some("postgres"))
        {
            node = Some(n.to_string());
        }
    }
    let node = node.expect("the postgres pod's node");
    let (code, lines, err) = rig.drain(&node).await;
    assert_eq!(code, 1, "the drain failed: {lines:#?}\n{err}");
    let blocked: Vec<serde_json::Value> = events(&lines, "waiting")
        .into_iter()
        .filter(|w| w["what"] == "eviction-blocked")
        .collect();
    assert!(!blocked.is_empty(), "{lines:#?}");
    let detail = blocked[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("PodDisruptionBudget apps/postgres")
            && detail.contains("disruptionsAllowed 0"),
        "{detail}"
    );
    let end = lines.last().unwrap();
    assert_eq!(end["event"], "run_finished", "{end}");
    let msg = end["outcome"]["message"].as_str().unwrap();
    assert!(
        msg.contains("drain timed out")
            && msg.contains("apps/postgres")
            && msg.contains("stays cordoned"),
        "{msg}"
    );
    let st = cluster.node(&node).await.unwrap();
    assert!(st.unschedulable, "the node stays cordoned");
    // Over: no lock; `uncordon` undoes the cordon the failed run left.
    assert_eq!(
        lock::current(&cluster, jiff::Timestamp::now())
            .await
            .unwrap(),
        None
    );
    let (code, out, err) = rig.run(&["uncordon", &node]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!cluster.node(&node).await.unwrap().unschedulable);
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_drain_and_uncordon() {
    let rig = Rig::start(&[], None).await;
    let drain: &[&str] = &["--read-only", "drain", "node4", "--yes"];
    let uncordon: &[&str] = &["--read-only", "uncordon", "node4"];
    for args in [drain, uncordon] {
        let (code, out, err) = rig.run(args).await;
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(err.contains("read-only"), "{args:?}: {err}");
    }
    let cluster = rig.cluster().await;
    assert!(!cluster.node("node4").await.unwrap().unschedulable);
    assert!(!rig.runs().exists() || std::fs::read_dir(rig.runs()).unwrap().next().is_none());
    rig.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_while_an_upgrade_holds_the_lock_naming_it() {
    let mut rig = Rig::start(&[], None).await;
    let cluster = rig.cluster().await;
    let writes = homeinfra_tui::testing::writes();
    let writer = KubeWriter::new(&writes, cluster.client().clone());
    let run_id = "20261202-000000-beef";
    let holder = lock::holder_identity(run_id);
    let held = lock::acquire(
        &cluster,
        &writer,
        &holder,
        run_id,
        Duration::from_secs(300),
        jiff::Timestamp::now(),
        false,
    )
    .await
    .unwrap();
    assert!(matches!(held, lock::Acquire::Acquired(_)), "{held:?}");
    let (code, lines, err) = rig.drain("node4").await;
    assert_eq!(code, 2, "{lines:#?}\n{err}");
    let end = lines.last().unwrap();
    assert_eq!(end["outcome"]["guard"], "lock", "{end}");
    assert!(
        end["outcome"]["message"].as_str().unwrap().contains(run_id),
        "{end}"
    );
    assert!(!cluster.node("node4").await.unwrap().unschedulable);
    lock::release(&cluster, &writer, run_id).await.unwrap();
    rig.sim.shutdown().await;
}
