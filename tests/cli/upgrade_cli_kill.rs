//! kill -9 of the headless `homeinfra-tui upgrade` at many points, then `--resume`: the same
//! end state as an uninterrupted run. Kubernetes and etcd are the simulator's; every host's
//! SSH goes to a REAL sshd (a private one that looks like a NixOS host, `common::nixos_host`:
//! `/run/current-system`, fake systemd-run/systemctl for the revert timer armed before each
//! switch), where the switch command (a harmless template in place of nixos-rebuild) records
//! that it ran. Kills between a revert timer's arming and its confirm are among the points.

use crate::common::nixos_host::{self, NixosLikeHost};
use crate::common::ssh as ssh_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use homeinfra_tui::config;
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::live::{KubeCluster, drain_client};
use homeinfra_tui::operations::upgrade::{ClusterRead, RunOutcome, UpgradeEvent};
use homeinfra_tui::sim::{self, SimOptions};
use ssh_support::*;

struct Env {
    dir: PathBuf,
    state: PathBuf,
    marks: PathBuf,
}

fn upgrade(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"));
    c.arg("--config")
        .arg(env.dir.join("config.toml"))
        .arg("--hosts")
        .arg(env.dir.join("hosts.json"))
        .arg("--log-file")
        .arg(env.state.join("log.txt"))
        .arg("upgrade")
        .args(args)
        .env("XDG_STATE_HOME", &env.state)
        .env("HOME", &env.state)
        .stdin(Stdio::null());
    c
}

fn setup(dir: &Path, s: &SharedSshd, marks: &Path) {
    let cfg_path = dir.join("config.toml");
    let mut cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let t = cfg.as_table_mut().unwrap();
    let mut section = |name: &str, kv: Vec<(&str, toml::Value)>| {
        let sec = t
            .entry(name)
            .or_insert_with(|| toml::Value::Table(Default::default()));
        for (k, v) in kv {
            sec.as_table_mut().unwrap().insert(k.into(), v);
        }
    };
    let st = |v: &str| toml::Value::String(v.into());
    section(
        "upgrade",
        vec![
            ("flake", st("github:me/infra")),
            (
                "switch_command",
                st(&format!(
                    "echo \"switch {{host}}\" >> {}/switched; echo 'building {{flake}}#{{host}}'; sleep 0.2; echo done",
                    marks.display()
                )),
            ),
            ("settle_secs", toml::Value::Integer(0)),
            ("poll_secs", toml::Value::Integer(1)),
            // The test sshd's machine is no NixOS host with systemd: no nixos-upgrade state,
            // and its system cannot be diffed, so the plan cannot verify the k3s change. Said
            // so, as an operator would (otherwise those guards cannot verify and refuse).
            (
                "skip_guards",
                toml::Value::Array(vec![st("auto-upgrade"), st("k3s-skew")]),
            ),
            // Nor does it run k3s: no etcd snapshot can be taken there (the snapshot's kill
            // and resume points are tested against the fake world and the simulator).
            ("pre_snapshot", st("off")),
        ],
    );
    section(
        "ssh",
        vec![
            ("enabled", toml::Value::Boolean(true)),
            ("user", st(&s.user)),
            ("port", toml::Value::Integer(s.port.into())),
            (
                "identity_files",
                toml::Value::Array(vec![st(&s.key.display().to_string())]),
            ),
            ("known_hosts", st(&s.known_hosts.display().to_string())),
            ("use_ssh_config", toml::Value::Boolean(false)),
        ],
    );
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    // Every host's SSH goes to the real sshd.
    let hosts_path = dir.join("hosts.json");
    let mut hosts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hosts_path).unwrap()).unwrap();
    for (_, h) in hosts.as_object_mut().unwrap() {
        h["sshHost"] = serde_json::json!(s.host);
        h["sshPort"] = serde_json::json!(s.port);
        h["sshUser"] = serde_json::json!(s.user);
    }
    std::fs::write(&hosts_path, serde_json::to_string_pretty(&hosts).unwrap()).unwrap();
}

/// Run to the end; returns the exit code and the run id.
fn run_to_end(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let o = upgrade(env, args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let run_id = out
        .lines()
        .filter_map(|l| serde_json::from_str::<UpgradeEvent>(l).ok())
        .find_map(|e| match e {
            UpgradeEvent::RunStarted { run_id, .. } => Some(run_id),
            _ => None,
        })
        .unwrap_or_default();
    assert!(
        o.status.code().is_some(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.code() != Some(0) {
        eprintln!("{out}\n{}", String::from_utf8_lossy(&o.stderr));
    }
    (o.status.code(), run_id)
}

/// `upgrade` without flags after a kill: refused, naming the run, where it stopped (node and
/// step) and both ways on.
fn offers_the_resume(env: &Env, run_id: &str, at: &str) {
    let o = upgrade(env, &[]).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2), "after a kill at {at}: {said}");
    assert!(
        said.contains(&format!("run {run_id} is unfinished (stopped at {at})"))
            && said.contains(&format!("--resume {run_id}"))
            && said.contains(&format!("--abandon {run_id}")),
        "after a kill at {at}: {said}"
    );
}

/// Where the journal of the one unfinished run says it stopped (node and step). The kill
/// lands right after `seen` started on stdout, but a quick step (a cordon) may have finished
/// and the next one started in the journal before the signal arrived: the offer must name
/// what the journal holds, which is `seen` or one step on (the next node's guards after a
/// settle).
fn journaled_stop(env: &Env, seen: &str) -> String {
    let unfinished = journal::unfinished(&env.state.join("homeinfra-tui/runs")).unwrap();
    assert_eq!(unfinished.len(), 1, "killed at {seen}");
    let at = unfinished[0]
        .stopped_at()
        .unwrap_or_else(|| panic!("the journal says where it stopped (killed at {seen})"));
    let (node, step) = seen.split_once(' ').unwrap();
    let next = homeinfra_tui::operations::upgrade::Step::NORMAL
        .iter()
        .position(|s| s.as_str() == step)
        .and_then(|i| homeinfra_tui::operations::upgrade::Step::NORMAL.get(i + 1))
        .map(|s| format!("{node} {}", s.as_str()));
    // After a settle (settle_secs = 0) the next step is the next node's guards.
    let next_node = step == "settle" && at.ends_with(" guards");
    assert!(
        at == seen || Some(&at) == next.as_ref() || next_node,
        "killed right after {seen} started, the journal says {at}"
    );
    at
}

/// Start a run and kill -9 it right after the `nth` step started; returns the run id.
fn kill_after_step(env: &Env, nth: usize) -> (String, String) {
    let mut child = upgrade(env, &["--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut run_id = String::new();
    let mut at = String::new();
    let mut seen = 0;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<UpgradeEvent>(&line) {
            Ok(UpgradeEvent::RunStarted { run_id: r, .. }) => run_id = r,
            Ok(UpgradeEvent::StepStarted { node, step }) => {
                seen += 1;
                if seen == nth {
                    at = format!("{node} {step}");
                    child.kill().unwrap(); // SIGKILL
                    break;
                }
            }
            _ => {}
        }
    }
    let _ = child.wait();
    assert!(!at.is_empty(), "the run ended before step #{nth}");
    (run_id, at)
}

async fn end_state(c: &KubeCluster, env: &Env, run_id: &str) -> String {
    let mut s = String::new();
    for n in ["node1", "node2", "node3", "node4"] {
        let st = c.node(n).await.unwrap();
        s += &format!("{n} unsched={} by={:?}\n", st.unschedulable, st.cordoned_by);
    }
    s += &format!(
        "lease={:?}\n",
        c.get_lease().await.unwrap().map(|l| l.holder)
    );
    let sum = journal::summarize(&journal::path_of(
        &env.state.join("homeinfra-tui/runs"),
        run_id,
    ))
    .unwrap();
    s += &format!("finished={:?} done={}\n", sum.finished, sum.done.len());
    let marks = std::fs::read_to_string(env.marks.join("switched")).unwrap_or_default();
    let mut switched: Vec<&str> = marks.lines().collect();
    switched.sort();
    switched.dedup();
    s += &format!("switched={switched:?}\n");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_gives_the_same_end_state() {
    let Some(shared_sshd) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    // Every switch arms the host's revert timer first, which needs a host that looks like
    // NixOS: a private sshd with /run/current-system and fake systemd-run/systemctl.
    let nixos = NixosLikeHost::start();
    let sshd = SharedSshd {
        host: "127.0.0.1".into(),
        port: nixos.sshd.port,
        known_hosts: nixos.sshd.known_hosts.clone(),
        ..shared_sshd
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let marks = tempfile::Builder::new()
        .prefix("homeinfra-upgrade-kill-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(marks.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let h = sim::start(
        SimOptions {
            speed: 50.0,
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    setup(dir.path(), &sshd, marks.path());
    let env = Env {
        dir: dir.path().to_path_buf(),
        state: state.path().to_path_buf(),
        marks: marks.path().to_path_buf(),
    };
    let (cfg, _) = config::load(Some(&env.dir.join("config.toml"))).unwrap();
    let c = KubeCluster::from_client(drain_client(&cfg.kubernetes).await.unwrap());

    // The uninterrupted run.
    let (code, run_id) = tokio::task::block_in_place(|| run_to_end(&env, &["--yes", "--json"]));
    assert_eq!(code, Some(0));
    let reference = end_state(&c, &env, &run_id).await;
    assert!(
        reference.contains("finished=Some(Completed) done=4"),
        "{reference}"
    );
    assert!(
        reference.contains(
            "switched=[\"switch node1\", \"switch node2\", \"switch node3\", \"switch node4\"]"
        ),
        "{reference}"
    );
    let reference = reference.replace(&run_id, "RUN");

    // 40 steps in a run (4 nodes × 10): kill after the n-th one started.
    for nth in [1usize, 2, 3, 4, 5, 6, 8, 10, 15, 25, 34] {
        std::fs::write(env.marks.join("switched"), "").unwrap();
        // The last run put every host on the flake's system: a new nixpkgs revision gives
        // each one an update again (a plan leaves out the nodes with no change).
        h.world().flake_update();
        let (run_id, at) = tokio::task::block_in_place(|| kill_after_step(&env, nth));
        let unfinished = journal::unfinished(&env.state.join("homeinfra-tui/runs")).unwrap();
        assert_eq!(unfinished.len(), 1, "killed at {at}");
        let at = journaled_stop(&env, &at);
        offers_the_resume(&env, &run_id, &at);
        let (code, _) = tokio::task::block_in_place(|| {
            run_to_end(&env, &["--yes", "--json", "--resume", &run_id])
        });
        assert_eq!(code, Some(0), "resume after a kill at {at}");
        let got = end_state(&c, &env, &run_id).await.replace(&run_id, "RUN");
        // The hosts switched before the kill are not in this round's marks: count them in.
        let done_before: Vec<String> = journal::read(&journal::path_of(
            &env.state.join("homeinfra-tui/runs"),
            &run_id,
        ))
        .unwrap()
        .iter()
        .filter_map(|r| match &r.event {
            UpgradeEvent::StepFinished { node, step, .. }
                if *step == homeinfra_tui::operations::upgrade::Step::Switch =>
            {
                Some(node.clone())
            }
            _ => None,
        })
        .collect();
        assert!(
            done_before.len() >= 4,
            "every node switched: {done_before:?}"
        );
        let norm = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("switched="))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(norm(&got), norm(&reference), "after a kill at {at}");
        assert!(
            nixos.units().is_empty(),
            "no revert timer left after a kill at {at}: {:?}",
            nixos.units()
        );
        assert!(
            matches!(
                journal::summarize(&journal::path_of(
                    &env.state.join("homeinfra-tui/runs"),
                    &run_id
                ))
                .unwrap()
                .finished,
                Some(RunOutcome::Completed)
            ),
            "after a kill at {at}"
        );
    }
    h.shutdown().await;
}

/// The same against the simulator's own SSH face, where the switch installs a new kernel and
/// the reboot really takes the node down and back: kill -9 at the reboot and wait-healthy
/// steps too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_with_reboots_through_the_simulated_hosts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let h = sim::start(
        SimOptions {
            speed: 50.0,
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    // Keep the simulator's SSH settings; only make the waits short.
    let cfg_path = dir.path().join("config.toml");
    let mut cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let up = cfg
        .as_table_mut()
        .unwrap()
        .entry("upgrade")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap();
    up.insert("settle_secs".into(), toml::Value::Integer(0));
    up.insert("poll_secs".into(), toml::Value::Integer(1));
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let env = Env {
        dir: dir.path().to_path_buf(),
        state: state.path().to_path_buf(),
        marks: marks.path().to_path_buf(),
    };
    let (cfg, _) = config::load(Some(&cfg_path)).unwrap();
    let c = KubeCluster::from_client(drain_client(&cfg.kubernetes).await.unwrap());
    let norm = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("switched="))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let (code, run_id) = tokio::task::block_in_place(|| run_to_end(&env, &["--yes", "--json"]));
    assert_eq!(code, Some(0));
    let reference = norm(&end_state(&c, &env, &run_id).await.replace(&run_id, "RUN"));
    assert!(
        reference.contains("finished=Some(Completed) done=4"),
        "{reference}"
    );
    let journal_of = |id: &str| {
        journal::read(&journal::path_of(&env.state.join("homeinfra-tui/runs"), id)).unwrap()
    };
    let rebooted = journal_of(&run_id)
        .iter()
        .filter(|r| {
            matches!(&r.event, UpgradeEvent::StepFinished { step, outcome, .. }
                if *step == homeinfra_tui::operations::upgrade::Step::Reboot
                    && matches!(outcome, homeinfra_tui::operations::upgrade::StepOutcome::Ok { .. }))
        })
        .count();
    assert_eq!(
        rebooted, 4,
        "every node rebooted through the simulated host"
    );

    // Per node: guards, cordon, drain, arm-revert, switch, confirm, reboot, wait-healthy,
    // make-default, uncordon, settle. 4, 5 and 6 are between the revert timer's arming and
    // its confirm (the simulated host keeps the timer armed); 7, 18, 29 and 40 are reboots
    // (the new generation set to boot once first): killed while the host is down; 8, 9, 19
    // and 20 are between the reboot and make-default (the new generation booted once, the
    // previous one still the default).
    for nth in [2usize, 3, 4, 5, 6, 7, 8, 9, 18, 19, 20, 29, 40] {
        // The last run put every host on the flake's system: a new nixpkgs revision gives
        // each one an update again (a plan leaves out the nodes with no change).
        h.world().flake_update();
        let (run_id, at) = tokio::task::block_in_place(|| kill_after_step(&env, nth));
        let at = journaled_stop(&env, &at);
        offers_the_resume(&env, &run_id, &at);
        let (code, _) = tokio::task::block_in_place(|| {
            run_to_end(&env, &["--yes", "--json", "--resume", &run_id])
        });
        assert_eq!(code, Some(0), "resume after a kill at {at}");
        let got = norm(&end_state(&c, &env, &run_id).await.replace(&run_id, "RUN"));
        assert_eq!(got, reference, "after a kill at {at}");
        assert!(
            h.ssh().revert_units(h.world()).is_empty(),
            "no revert timer left after a kill at {at}: {:?}",
            h.ssh().revert_units(h.world())
        );
        // Every host boots its new generation by default, no one-shot entry left.
        for host in ["node1", "node2", "node3", "node4"] {
            let hs = h.world().host_systems(host).unwrap();
            let bl = h.world().bootloader(host).unwrap();
            assert_eq!(
                bl.default,
                Some(format!("nixos-generation-{}.conf", hs.current().number)),
                "{host} after a kill at {at}: {bl:?}"
            );
            assert_eq!(bl.oneshot, None, "{host} after a kill at {at}");
            assert_eq!(
                *hs.booted,
                *hs.current().system,
                "{host} after a kill at {at}"
            );
        }
    }
    h.shutdown().await;
}
