//! The simulator's SSH face, through the app's own SSH client: facts from every host,
//! scenarios (`reboot-needed`, `unreachable-host`), a wrong client key refused, the upgrade's
//! commands (`nixos-rebuild switch` streaming, `--rollback`, `reboot`) driving the simulated
//! world, every probe's answer read by its own parser, each command recorded (kind, mutating)
//! in `/sim/v1/requests`, and inventory values a shell would interpret refused before any
//! command is built.

use crate::common;

use std::path::Path;
use std::time::Duration;

use homeinfra_tui::config::UpgradeConfig;
use homeinfra_tui::model::host::{HostFacts, SshProblem};
use homeinfra_tui::probes::auto_upgrade::AutoUpgradeProbe;
use homeinfra_tui::probes::boot::{BootFacts, BootIdProbe, BootStateProbe};
use homeinfra_tui::probes::facts::FactsProbe;
use homeinfra_tui::probes::k3s::K3sVersionProbe;
use homeinfra_tui::probes::reachable::ReachableProbe;
use homeinfra_tui::probes::rebuild::CommandVars;
use homeinfra_tui::probes::{Probe, Reply};
use homeinfra_tui::sim::{self};
use homeinfra_tui::sources::ssh::{self, HostsClient, OutputChunk};
use tokio::sync::mpsc;

async fn start(scenarios: &[&str], dir: &Path) -> sim::SimHandle {
    common::sim::start_in(scenarios, 50.0, dir).await
}

async fn all_facts(h: &sim::SimHandle) -> Vec<(String, Result<HostFacts, String>)> {
    let got = ssh::gather_once(h.ssh_config(), h.inventory(), Duration::from_secs(10)).await;
    got.into_iter()
        .map(|(id, s)| {
            let r = match (&s.data, &s.status.error) {
                (_, Some(e)) => Err(e.message.clone()),
                (Some(d), None) => Ok(d.clone()),
                (None, None) => Err("no data".into()),
            };
            (id, r)
        })
        .collect()
}

/// Poll `f` every 20 ms until it holds (at most 30 s).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn node_ready(h: &sim::SimHandle, name: &str) -> String {
    let node = h
        .world()
        .store
        .get(&sim::resources::NODES, "", name)
        .unwrap();
    node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_from_every_host_through_the_written_config() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;

    // The files `sim --dir` writes, read back as the app reads them.
    let key = h.ssh_config().identity_files[0].clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let known = std::fs::read_to_string(dir.path().join("sim/ssh/known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 4, "{known}");
    assert!(
        known
            .lines()
            .all(|l| l.starts_with("[127.0.0.") && l.contains(" ssh-ed25519 "))
    );
    let ctx = common::sim::env(&h);
    assert!(ctx.config.ssh.enabled);
    assert!(!ctx.config.ssh.use_ssh_config);
    let got = ssh::gather_once(&ctx.config.ssh, &ctx.inventory, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4);
    for (id, s) in &got {
        assert!(s.status.error.is_none(), "{id}: {:?}", s.status.error);
        let f = s.data.as_ref().unwrap();
        let host = ctx.inventory.hosts.iter().find(|x| &x.id == id).unwrap();
        assert_eq!(f.hostname.as_deref(), Some(host.hostname.as_str()));
        assert_eq!(f.reboot_needed, Some(false), "{id}: {f:?}");
        assert!(f.parse_issues.is_empty(), "{id}: {:?}", f.parse_issues);
        assert!(
            f.current_system
                .as_deref()
                .unwrap()
                .contains(&format!("-nixos-system-{}-", host.hostname))
        );
        assert_eq!(f.k3s_state.as_deref(), Some("active"));
        assert!(f.generation.is_some() && f.uptime_secs.is_some());
        let socks = f.posture.listening.as_ref().unwrap();
        assert_eq!(
            socks.iter().any(|s| s.port == 6443),
            host.role.is_control_plane(),
            "{id}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_reboot_needed_and_unreachable_host() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(
        &["reboot-needed", "unreachable-host"],
        &dir.path().join("sim"),
    )
    .await;
    let results = all_facts(&h).await;
    let first_cp = h.inventory().control_planes().next().unwrap().id.clone();
    let down: Vec<String> = h
        .world()
        .hosts()
        .into_iter()
        .filter(|x| x.unreachable)
        .map(|x| x.id)
        .collect();
    assert_eq!(down.len(), 1);
    for (id, r) in results {
        if down.contains(&id) {
            let e = r.unwrap_err();
            assert_eq!(SshProblem::of_message(&e), SshProblem::Unreachable, "{e}");
            continue;
        }
        let f = r.unwrap_or_else(|e| panic!("{id}: {e}"));
        let want = id == first_cp;
        assert_eq!(f.reboot_needed, Some(want), "{id}: {f:?}");
        if want {
            assert!(f.reboot_reasons.contains(&"kernel".to_string()));
            assert_ne!(f.current_system, f.booted_system);
        }
    }
    // The host comes back when the scenario is cleared.
    h.world().clear_scenario("unreachable-host").unwrap();
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let mut ok = false;
    for _ in 0..200 {
        if client.facts(&down[0]).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "{} never answered again", down[0]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    // Another key, made by ssh-keygen's format through russh.
    let other = russh::keys::PrivateKey::from(
        russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[7u8; 32]),
    );
    let path = dir.path().join("other_key");
    std::fs::write(
        &path,
        other
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut cfg = h.ssh_config().clone();
    cfg.identity_files = vec![path];
    let client = HostsClient::new(&cfg, h.inventory()).unwrap();
    let id = h.inventory().hosts[0].id.clone();
    let e = client
        .run(&homeinfra_tui::testing::writes(), &id, "true")
        .await
        .unwrap_err();
    assert_eq!(e.problem, SshProblem::AuthFailed, "{e}");

    // The right key runs commands; unknown ones exit 127 with a message.
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let out = client
        .run(&homeinfra_tui::testing::writes(), &id, "true")
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0));
    let out = client
        .run(&homeinfra_tui::testing::writes(), &id, "frobnicate --now")
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(127));
    assert!(out.stderr_lossy().contains("frobnicate: not found"));

    // A fresh host has an older generation to roll back to (same kernel: no reboot).
    let before = client.facts(&id).await.unwrap();
    let out = client
        .run(
            &homeinfra_tui::testing::writes(),
            &id,
            "nixos-rebuild switch --rollback",
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0), "{}", out.stderr_lossy());
    let after = client.facts(&id).await.unwrap();
    assert_eq!(after.generation, before.generation.map(|g| g - 1));
    assert_ne!(after.current_system, before.current_system);
    assert_eq!(after.reboot_needed, Some(false));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_streams_then_rollback_then_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    let host = h.inventory().hosts[3].clone();
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let before = client.facts(&host.id).await.unwrap();
    assert_eq!(before.reboot_needed, Some(false));

    // nixos-rebuild switch: output arrives in several chunks, the system changes.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cmd = format!(
        "sudo -n nixos-rebuild switch --flake github:user/homelab#{}",
        host.hostname
    );
    let exit = client
        .run_streaming(
            &homeinfra_tui::testing::writes(),
            &host.id,
            &cmd,
            Duration::from_secs(30),
            tx,
        )
        .await
        .unwrap();
    assert_eq!(exit.exit_status, Some(0));
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    assert!(chunks.len() >= 3, "{chunks:?}");
    let text: String = chunks
        .iter()
        .map(|c| match c {
            OutputChunk::Stdout(b) | OutputChunk::Stderr(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
        })
        .collect();
    assert!(text.contains("activating the configuration"), "{text}");
    let after = client.facts(&host.id).await.unwrap();
    assert_ne!(after.current_system, before.current_system);
    assert_eq!(after.generation, before.generation.map(|g| g + 1));
    assert_eq!(after.reboot_needed, Some(true), "{after:?}");
    assert!(h.world().host(&host.hostname).unwrap().reboot_needed);
    let link = client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "readlink -f /run/current-system",
        )
        .await
        .unwrap();
    assert_eq!(
        link.stdout_lossy().trim(),
        after.current_system.as_deref().unwrap()
    );

    // --rollback: back to the booted system, no reboot needed.
    let out = client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "sudo nixos-rebuild switch --rollback",
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0), "{}", out.stderr_lossy());
    let back = client.facts(&host.id).await.unwrap();
    assert_eq!(back.current_system, before.current_system);
    assert_eq!(back.reboot_needed, Some(false));

    // Switch again, then reboot: NotReady, then Ready with the new system booted.
    let (tx, _rx) = mpsc::unbounded_channel();
    client
        .run_streaming(
            &homeinfra_tui::testing::writes(),
            &host.id,
            &cmd,
            Duration::from_secs(30),
            tx,
        )
        .await
        .unwrap();
    let switched = client.facts(&host.id).await.unwrap();
    assert_eq!(switched.reboot_needed, Some(true));
    let boots = h.world().host(&host.hostname).unwrap().boots;
    // The reboot may end the command before or after its exit status is seen.
    match client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "sudo systemctl reboot",
        )
        .await
    {
        Ok(out) => assert_eq!(out.exit_status, Some(0)),
        Err(e) => assert_eq!(e.problem, SshProblem::Unreachable, "{e}"),
    }
    eventually("the host goes down", || {
        h.world().host(&host.hostname).unwrap().rebooting
    })
    .await;
    // Down: SSH is refused.
    let e = client.facts(&host.id).await.unwrap_err();
    assert_eq!(e.problem, SshProblem::Unreachable, "{e}");
    eventually("the node is NotReady", || {
        node_ready(&h, &host.hostname) != "True"
    })
    .await;
    eventually("the host is back", || {
        let s = h.world().host(&host.hostname).unwrap();
        s.up && s.boots == boots + 1
    })
    .await;
    eventually("the node is Ready", || {
        node_ready(&h, &host.hostname) == "True"
    })
    .await;
    let mut rebooted = None;
    for _ in 0..200 {
        if let Ok(f) = client.facts(&host.id).await {
            rebooted = Some(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rebooted = rebooted.expect("SSH back after the reboot");
    assert_eq!(rebooted.reboot_needed, Some(false), "{rebooted:?}");
    assert_eq!(rebooted.booted_system, switched.current_system);
    assert!(rebooted.uptime_secs.unwrap() < before.uptime_secs.unwrap());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quirks_show_in_check_and_fail_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&["reboot-needed"], &dir.path().join("sim")).await;
    h.ssh()
        .set_quirks(
            "node4",
            sim::ssh::Quirks {
                failed_units: vec!["restic-backups-daily.service".into()],
                weak_sshd: true,
                switch_fails: true,
            },
        )
        .unwrap();
    assert!(h.ssh().set_quirks("nope", Default::default()).is_err());

    // `check --json` by the real binary reads the host findings over SSH.
    let home = dir.path();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_homeinfra-tui"))
        .arg("--config")
        .arg(h.config_path())
        .arg("--hosts")
        .arg(h.hosts_path())
        .args(["check", "--json", "--timeout", "10"])
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("cfg"))
        .env_remove("KUBECONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let found = |code: &str, subject: &str| {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == code && f["subject"] == subject)
    };
    assert!(found("host.reboot_needed", "instance_1"), "{doc:#}");
    assert!(found("host.failed_units", "instance_4"), "{doc:#}");
    assert!(found("host.sshd_x11_forwarding", "instance_4"), "{doc:#}");
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["code"].as_str().unwrap().starts_with("host.ssh_")),
        "{doc:#}"
    );

    // A failing switch: exit 1, a build error on stderr, the system unchanged.
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let before = client.facts("instance_4").await.unwrap();
    let out = client
        .run(
            &homeinfra_tui::testing::writes(),
            "instance_4",
            "sudo nixos-rebuild switch --flake .#node4",
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(1));
    assert!(out.stderr_lossy().contains("failed with exit code 1"));
    let after = client.facts("instance_4").await.unwrap();
    assert_eq!(after.current_system, before.current_system);
    assert_eq!(after.reboot_needed, Some(false));
    h.shutdown().await;
}

/// OpenSSH's own client accepts the written known_hosts and key (strict host key checking),
/// and sees exit codes as a real host gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_client_uses_the_written_files() {
    let Some(ssh_bin) = common::require_program("ssh") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    let cfg = h.ssh_config().clone();
    let host = &h.inventory().hosts[1];
    let run = |command: &'static str| {
        let mut c = tokio::process::Command::new(&ssh_bin);
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            cfg.known_hosts.as_ref().unwrap().display()
        ))
        .arg("-i")
        .arg(&cfg.identity_files[0])
        .arg("-p")
        .arg(cfg.port.to_string())
        .arg(format!("operator@{}", host.ip))
        .arg(command)
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", dir.path());
        c
    };
    let out = run("readlink -f /run/current-system")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        path.starts_with("/nix/store/")
            && path.ends_with(&format!(
                "-nixos-system-{}-25.05.20251119.e4f5a6b",
                host.hostname
            )),
        "{path}"
    );
    let out = run("no-such-command").output().await.unwrap();
    assert_eq!(out.status.code(), Some(127));
    h.shutdown().await;
}

/// Ask `probe` on host `id` through the app's client and read the answer with its parser.
async fn ask<P: Probe>(client: &HostsClient, id: &str, probe: &P) -> (Reply, P::Output)
where
    P::Output: std::fmt::Debug,
{
    let reply = client
        .ask(id, probe, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let out = probe
        .parse(&reply)
        .unwrap_or_else(|e| panic!("{id}: {e}: {reply:?}"));
    (reply, out)
}

/// `GET /sim/v1/requests` as a client of the control API.
async fn control_requests(h: &sim::SimHandle) -> serde_json::Value {
    let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/sim/v1/requests", h.api_url()))
        .bearer_auth(h.token())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_is_answered_through_its_renderer_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&["reboot-needed"], &dir.path().join("sim")).await;
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let first_cp = h.inventory().control_planes().next().unwrap().id.clone();
    for host in &h.inventory().hosts.clone() {
        let id = host.id.as_str();
        let facts_probe = FactsProbe { sudo: true };
        let (reply, facts) = ask(&client, id, &facts_probe).await;
        assert!(reply.success() && reply.stderr.is_empty(), "{reply:?}");
        assert!(
            facts.parse_issues.is_empty(),
            "{id}: {:?}",
            facts.parse_issues
        );
        // What the sim printed is exactly what the renderer prints for what was parsed.
        assert_eq!(facts_probe.render(&facts), reply, "{id}");

        let (reply, boot) = ask(&client, id, &BootStateProbe).await;
        assert_eq!(BootStateProbe.render(&boot), reply);
        assert_eq!(boot, BootFacts::from_facts(&facts), "{id}");
        assert!(boot.current.complete() && boot.booted.complete());
        assert_eq!(
            boot.reboot_needed().0,
            Some(id == first_cp),
            "{id}: {boot:?}"
        );

        let (_, boot_id) = ask(&client, id, &BootIdProbe).await;
        let boot_id = boot_id.expect("a boot id");
        let (_, again) = ask(&client, id, &BootIdProbe).await;
        assert_eq!(
            again.as_deref(),
            Some(boot_id.as_str()),
            "stable within a boot"
        );

        let (_, au) = ask(&client, id, &AutoUpgradeProbe).await;
        assert_eq!(au.running(), Some(false));
        assert!(au.timer_present());
        let next = au.next_run.unwrap();
        let in_facts: jiff::Timestamp = facts.upgrade_next_run.as_deref().unwrap().parse().unwrap();
        assert!(
            (next - in_facts).get_seconds().abs() <= 5,
            "{next} vs {in_facts}"
        );

        let (_, k3s) = ask(&client, id, &K3sVersionProbe).await;
        let node = h
            .world()
            .store
            .get(&sim::resources::NODES, "", &host.hostname)
            .unwrap();
        assert_eq!(
            k3s.as_deref(),
            node.pointer("/status/nodeInfo/kubeletVersion")
                .and_then(|v| v.as_str()),
            "{id}"
        );
        ask(&client, id, &ReachableProbe).await;
    }
    // Boot ids differ between hosts.
    let mut ids = Vec::new();
    for host in h.inventory().hosts.clone() {
        ids.push(ask(&client, &host.id, &BootIdProbe).await.1);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), h.inventory().hosts.len());

    // Every one of them recorded, none mutating, with its host.
    let got = h.ssh().requests();
    for kind in [
        "facts",
        "boot-state",
        "boot-id",
        "auto-upgrade",
        "k3s-version",
        "reachable",
    ] {
        for host in &h.inventory().hosts {
            assert!(
                got.iter()
                    .any(|r| r.kind == kind && r.id == host.id && r.host == host.hostname),
                "{kind} on {}: {got:#?}",
                host.id
            );
        }
    }
    assert!(got.iter().all(|r| !r.mutating), "{got:#?}");
    let facts = got.iter().find(|r| r.kind == "facts").unwrap();
    assert_eq!(facts.command, "sh -s", "the script itself is not recorded");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_commands_are_recorded_as_mutating() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    let host = h.inventory().hosts[1].clone();
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    let cfg = UpgradeConfig::default();
    let vars = CommandVars::new("github:homelab/infra", &host, "operator").unwrap();
    let (_, boot_before) = ask(&client, &host.id, &BootIdProbe).await;

    let switch = vars.fill(&cfg.switch_command);
    let out = client
        .run(&homeinfra_tui::testing::writes(), &host.id, &switch)
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0), "{}", out.stderr_lossy());
    let rollback = vars.fill(&cfg.rollback_command);
    let out = client
        .run(&homeinfra_tui::testing::writes(), &host.id, &rollback)
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0), "{}", out.stderr_lossy());
    let out = client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "nixos-rebuild boot",
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(1));
    let out = client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "frobnicate --now",
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(127));
    let out = client
        .run(&homeinfra_tui::testing::writes(), &host.id, "hostname")
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy().trim(), host.hostname);
    match client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            &cfg.reboot_command,
        )
        .await
    {
        Ok(out) => assert_eq!(out.exit_status, Some(0)),
        Err(e) => assert_eq!(e.problem, SshProblem::Unreachable, "{e}"),
    }

    let doc = control_requests(&h).await;
    let ssh: Vec<(String, String, bool, String)> = doc["ssh"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
                r["mutating"].as_bool().unwrap(),
                r["command"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let id = host.id.clone();
    let want = [
        (
            id.clone(),
            "boot-id".to_string(),
            false,
            "cat /proc/sys/kernel/random/boot_id 2>/dev/null || true".to_string(),
        ),
        (id.clone(), "switch".into(), true, switch.clone()),
        (id.clone(), "rollback".into(), true, rollback.clone()),
        (
            id.clone(),
            "other-rebuild".into(),
            true,
            "nixos-rebuild boot".into(),
        ),
        (
            id.clone(),
            "unknown".into(),
            true,
            "frobnicate --now".into(),
        ),
        (id.clone(), "shell".into(), false, "hostname".into()),
        (
            id.clone(),
            "reboot".into(),
            true,
            cfg.reboot_command.clone(),
        ),
    ];
    assert_eq!(ssh, want);
    assert!(
        doc["ssh"][0]["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert_eq!(doc["ssh"][0]["host"], host.hostname.as_str());
    // The Kubernetes writes are still listed beside them.
    assert!(doc["requests"].is_array());

    // The reboot gave the host a new boot id. As with sshd, the host may still answer
    // with its old boot for a moment after the reboot command returned, so the old id is
    // not the end of the wait; only a new one is.
    let mut answers = Vec::new();
    for _ in 0..400 {
        if let Ok(r) = client
            .ask(&host.id, &BootIdProbe, Duration::from_secs(5))
            .await
            && let Ok(Some(b)) = BootIdProbe.parse(&r)
        {
            let new = Some(&b) != boot_before.as_ref();
            answers.push(b);
            if new {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = answers.last().cloned();
    assert!(after.is_some(), "the host never answered after its reboot");
    assert_ne!(
        after, boot_before,
        "the host kept its boot id after the reboot (answers: {answers:?})"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_values_a_shell_would_read_never_reach_a_command() {
    use homeinfra_tui::operations::upgrade::engine::StartOptions;
    use homeinfra_tui::operations::upgrade::{self, RunOutcome, Settings, Step, live};

    common::sim::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut inv = sim::hosts::default_inventory();
    inv.hosts[3].ssh_user = Some("ops;reboot".into());
    let h = sim::start(
        sim::SimOptions {
            inventory: Some(inv),
            speed: 50.0,
            ..Default::default()
        },
        &dir.path().join("sim"),
    )
    .await
    .unwrap();
    let env = common::sim::env(&h);
    assert_eq!(
        env.inventory.hosts[3].ssh_user.as_deref(),
        Some("ops;reboot")
    );
    let world = live::world(&env, &homeinfra_tui::testing::writes())
        .await
        .unwrap();

    // A new run is refused before anything is touched, naming the host and the field.
    let e = live::new_plan(&env, &world.read, &[]).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(r#"host "instance_4": field "sshUser": "ops;reboot""#),
        "{msg}"
    );

    // A plan made anyway (a resumed run, an inventory changed since): the switch step refuses
    // to build its command and sends nothing.
    let p = upgrade::plan(
        &env.inventory,
        None,
        &[],
        &["node4".into()],
        "github:homelab/infra",
        "run-unsafe",
    )
    .unwrap();
    let settings = Settings {
        settle: Duration::ZERO,
        ..Settings::from_config(&env.config.upgrade)
    };
    let (run, mut rx) = upgrade::start(
        world,
        env.inventory.clone(),
        p,
        settings,
        StartOptions {
            holder: "t@x 1 run-unsafe".into(),
            ..Default::default()
        },
    );
    while rx.recv().await.is_some() {}
    match run.wait().await {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), step), ("node4", Step::Switch));
            assert!(
                message.contains(r#"host "instance_4": field "sshUser""#)
                    && message.contains("refusing to put it into a shell command"),
                "{message}"
            );
        }
        other => panic!("expected the switch to be refused: {other:?}"),
    }
    let sent = h.ssh().requests();
    assert!(
        sent.iter().any(|r| r.id == "instance_4"),
        "the probes ran: {sent:#?}"
    );
    assert!(sent.iter().all(|r| !r.mutating), "{sent:#?}");
    h.shutdown().await;
}

/// What a host's Node object says of its system: OS image, kernel, kubelet version.
fn node_info(h: &sim::SimHandle, name: &str) -> (String, String, String) {
    let n = h
        .world()
        .store
        .get(&sim::resources::NODES, "", name)
        .unwrap();
    let s = |k: &str| {
        n["status"]["nodeInfo"][k]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    (s("osImage"), s("kernelVersion"), s("kubeletVersion"))
}

/// The same as the host's facts over SSH say it: the NixOS build, the booted kernel (from its
/// store path `…-linux-6.12.55/bzImage`), the k3s it runs.
async fn facts_info(client: &HostsClient, id: &str) -> (String, String, String) {
    let f = client.facts(id).await.unwrap();
    let kernel = f
        .booted_boot
        .kernel
        .as_deref()
        .and_then(|p| p.split("-linux-").nth(1))
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("a booted kernel path: {f:?}"))
        .to_string();
    let (_, k3s) = ask(client, id, &K3sVersionProbe).await;
    (
        format!("NixOS {} (Warbler)", f.nixos_version.unwrap()),
        kernel,
        k3s.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_report_the_system_their_hosts_run_through_switch_and_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    let client = HostsClient::new(h.ssh_config(), h.inventory()).unwrap();
    for host in &h.inventory().hosts {
        assert_eq!(
            node_info(&h, &host.hostname),
            facts_info(&client, &host.id).await,
            "{} at start",
            host.id
        );
    }
    let host = h.inventory().hosts[3].clone();
    let before = node_info(&h, &host.hostname);
    let cmd = format!(
        "sudo -n nixos-rebuild switch --flake github:user/homelab#{}",
        host.hostname
    );
    let (tx, _rx) = mpsc::unbounded_channel();
    let out = client
        .run_streaming(
            &homeinfra_tui::testing::writes(),
            &host.id,
            &cmd,
            Duration::from_secs(30),
            tx,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0));
    // The switch: a new OS image, the kernel booted stays until the reboot.
    let switched = node_info(&h, &host.hostname);
    assert_ne!(switched.0, before.0);
    assert_eq!(switched.1, before.1);
    assert_eq!(switched, facts_info(&client, &host.id).await);
    let boots = h.world().host(&host.hostname).unwrap().boots;
    match client
        .run(
            &homeinfra_tui::testing::writes(),
            &host.id,
            "sudo systemctl reboot",
        )
        .await
    {
        Ok(out) => assert_eq!(out.exit_status, Some(0)),
        Err(e) => assert_eq!(e.problem, SshProblem::Unreachable, "{e}"),
    }
    eventually("the host is back", || {
        let s = h.world().host(&host.hostname).unwrap();
        s.up && s.boots == boots + 1
    })
    .await;
    let mut facts = None;
    for _ in 0..200 {
        if client.facts(&host.id).await.is_ok() {
            facts = Some(facts_info(&client, &host.id).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let facts = facts.expect("SSH back after the reboot");
    let rebooted = node_info(&h, &host.hostname);
    assert_ne!(rebooted.1, before.1, "the new kernel runs");
    assert_eq!(rebooted, facts);
    h.shutdown().await;
}

/// A frozen homelab (`sim --frozen`) answers each facts round as the last, but for the uptime
/// and the load, through the periodic source's own path (facts, then the recovery reads kept
/// from the round before): what an idle dashboard re-reads every `[ssh] refresh_secs` must
/// not look like a change, or each round costs it an assessment and a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_homelab_answers_each_facts_round_alike() {
    let (h, _dir) = common::sim::start_opts(sim::SimOptions {
        frozen: true,
        ..Default::default()
    })
    .await;
    let env = common::sim::env(&h);
    let client = HostsClient::new(&env.config.ssh, &env.inventory)
        .unwrap()
        .with_recovery(&env.config.recovery, &env.inventory);
    let every = Duration::from_secs(3600);
    let shown = |f: &HostFacts| {
        let mut v = serde_json::to_value(f).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("uptime_secs");
        o.remove("load");
        v
    };
    for host in &env.inventory.hosts {
        let (first, read) = client.facts_reusing(&host.id, None, every).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (second, _) = client.facts_reusing(&host.id, read, every).await.unwrap();
        let (a, b) = (shown(&first), shown(&second));
        let differ: Vec<&String> = a
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| b.get(k.as_str()) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            differ.is_empty(),
            "{}: {differ:?} changed\n{a:#}\n{b:#}",
            host.id
        );
        assert!(first.parse_issues.is_empty(), "{:?}", first.parse_issues);
    }
    h.shutdown().await;
}

/// `[ssh] keep_open_secs`: rounds further apart than it close each host's connection once
/// its facts are in (and the next round logs in anew and reads them again); rounds closer
/// keep it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_source_keeps_connections_open_only_between_close_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&[], &dir.path().join("sim")).await;
    let env = common::sim::env(&h);
    for keep_open in [false, true] {
        let client =
            std::sync::Arc::new(HostsClient::new(&env.config.ssh, &env.inventory).unwrap());
        let (tx, mut rx) = mpsc::channel(64);
        let task = tokio::spawn(ssh::run_periodic(
            client.clone(),
            Duration::from_secs(1),
            Duration::ZERO,
            keep_open,
            tx,
        ));
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        while seen.len() < env.inventory.hosts.len() || seen.values().any(|n| *n < 2) {
            let u = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("an update in time")
                .expect("the source is alive");
            let homeinfra_tui::sources::Update::Host { id, result } = u else {
                continue;
            };
            let facts = result.unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(facts.hostname.is_some(), "{id}");
            let state = client.pool().state(&id);
            assert_eq!(
                matches!(state, ssh::ConnState::Connected),
                keep_open,
                "{id} (keep_open {keep_open}): {state:?}"
            );
            *seen.entry(id).or_default() += 1;
        }
        task.abort();
    }
    h.shutdown().await;
}

/// A round that closes connections holds at most `[ssh] max_concurrency` of them open: a
/// host's whole round (facts, recovery reads, the close) takes one place, so hosts do not all
/// log in and then wait, connected, for their next command's turn. Hosts are read in the
/// inventory's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_round_holds_at_most_max_concurrency_connections() {
    // Twelve hosts: `instance_10` sorts before `instance_2`, the inventory does not.
    let (h, _dir) = common::sim::start_opts(sim::SimOptions {
        nodes: Some(12),
        ..Default::default()
    })
    .await;
    let mut env = common::sim::env(&h);
    env.config.ssh.max_concurrency = 1;
    let client = std::sync::Arc::new(
        HostsClient::new(&env.config.ssh, &env.inventory)
            .unwrap()
            .with_recovery(&env.config.recovery, &env.inventory),
    );
    let (tx, mut rx) = mpsc::channel(64);
    let task = tokio::spawn(ssh::run_periodic(
        client.clone(),
        Duration::from_secs(3600),
        Duration::ZERO,
        false,
        tx,
    ));
    let ids: Vec<String> = env.inventory.hosts.iter().map(|h| h.id.clone()).collect();
    assert!(ids.len() >= 3, "{ids:?}");
    let (mut most, mut got) = (0, 0);
    let mut order = Vec::new();
    while got < ids.len() {
        let open = ids
            .iter()
            .filter(|id| matches!(client.pool().state(id), ssh::ConnState::Connected))
            .count();
        most = most.max(open);
        match tokio::time::timeout(Duration::from_millis(1), rx.recv()).await {
            Ok(Some(homeinfra_tui::sources::Update::Host { id, result })) => {
                result.unwrap_or_else(|e| panic!("{id}: {e}"));
                order.push(id);
                got += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the source ended"),
            Err(_) => {}
        }
    }
    assert!(most >= 1, "no connection was ever seen open");
    assert_eq!(
        most, 1,
        "more connections open at once than max_concurrency"
    );
    // One at a time, in the inventory's order: the Hosts pane fills from the top.
    assert_eq!(order, ids);
    task.abort();
    h.shutdown().await;
}
