//! The switch step over the REAL sshd (127.0.0.1:2222 from scripts/test-env.sh): a fake
//! `nixos-rebuild` in a test-owned directory prints lines and waits for the test to answer
//! the first one, so the step can only pass when output is streamed live; a failing command
//! fails the step and leaves the node cordoned; the read-only probes on a host without NixOS.
//! The switch tests log in to a private sshd that looks like a NixOS host
//! (`common::nixos_host`: `/run/current-system`, fake systemd-run/systemctl), since every
//! switch arms the host's revert timer first. Cluster, health and clock are the fakes.

use crate::common::nixos_host::{self, NixosLikeHost};
use crate::common::ssh as ssh_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use homeinfra_tui::config::{SshConfig, SwitchMode};
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::live::{SshHosts, SshWriter};
use homeinfra_tui::operations::upgrade::world::{HostRead, ReadWorld, World, Writers};
use homeinfra_tui::operations::upgrade::{
    RunOutcome, Settings, Step, StepOutcome, UpgradeEvent, plan, start,
};
use homeinfra_tui::sources::ssh::HostsClient;
use ssh_support::*;

fn world_with_real_ssh(fw: &Arc<FakeWorld>, s: &SharedSshd) -> World {
    world_over(
        fw,
        target(
            "instance_4",
            &s.host,
            s.port,
            &s.user,
            Some(&s.key),
            &s.known_hosts,
        ),
    )
}

/// The fake world with instance_4's SSH going to `t`.
fn world_over(fw: &Arc<FakeWorld>, t: homeinfra_tui::sources::ssh::Target) -> World {
    let mut targets = BTreeMap::new();
    targets.insert("instance_4".to_string(), t);
    let ssh = Arc::new(HostsClient::with_targets(
        &SshConfig::default(),
        settings(),
        targets,
    ));
    let fake = fw.world();
    let writes = homeinfra_tui::testing::writes();
    World {
        read: ReadWorld {
            hosts: Arc::new(SshHosts::new(ssh.clone())),
            ..fake.read
        },
        write: Writers::new(
            &writes,
            fake.write.cluster.clone(),
            Arc::new(SshWriter::new(&writes, ssh)),
        ),
    }
}

/// A directory the sshd's user can read, with a fake `nixos-rebuild`.
fn fake_rebuild_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("homeinfra-upgrade-ssh-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = dir.path().join("nixos-rebuild");
    let go = dir.path().join("go");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo \"fake nixos-rebuild $*\"\n\
             echo 'building the system configuration...'\n\
             i=0; while [ ! -e {go} ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done\n\
             [ -e {go} ] || {{ echo 'nobody answered: output was not streamed' >&2; exit 9; }}\n\
             echo 'activating the configuration...' >&2\n\
             echo 'done'\n",
            go = go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn settings_with(switch_command: String) -> Settings {
    Settings {
        switch: SwitchMode::Remote,
        switch_command,
        settle: std::time::Duration::ZERO,
        time_zone: jiff::tz::TimeZone::UTC,
        // The sshd's machine runs no systemd: no nixos-upgrade state to see, said so.
        skip_guards: vec!["auto-upgrade".into()],
        ..Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_output_streams_over_real_ssh() {
    let Some(s) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    let nixos = NixosLikeHost::start();
    let dir = fake_rebuild_dir();
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .kernel_changes = false;
    let p = plan(
        &inv,
        None,
        &[],
        &["node4".into()],
        "github:me/infra",
        "run-ssh",
    )
    .unwrap();
    let cmd = format!(
        "PATH={}:$PATH nixos-rebuild switch --flake {{flake}}#{{host}}",
        dir.path().display()
    );
    let (h, mut rx) = start(
        world_over(&fw, nixos.target("instance_4", &s)),
        inv.clone(),
        p,
        settings_with(cmd),
        StartOptions {
            holder: "t@x 1 run-ssh".into(),
            ..Default::default()
        },
    );
    let mut lines = Vec::new();
    let mut switch_outcome = None;
    while let Some(e) = rx.recv().await {
        match e {
            UpgradeEvent::Output { line, .. } => {
                if line.contains("building the system configuration") {
                    // Answer the first line: only live streaming gets us here in time.
                    std::fs::write(dir.path().join("go"), b"").unwrap();
                }
                lines.push(line);
            }
            UpgradeEvent::StepFinished {
                step: Step::Switch,
                outcome,
                ..
            } => switch_outcome = Some(outcome),
            _ => {}
        }
    }
    let outcome = h.wait().await;
    assert_eq!(switch_outcome, Some(StepOutcome::ok()), "{lines:#?}");
    assert_eq!(outcome, RunOutcome::Completed, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "fake nixos-rebuild switch --flake github:me/infra#node4"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "activating the configuration..."),
        "stderr streamed too"
    );
    assert!(lines.iter().any(|l| l == "done"));
    assert!(!fw.state().nodes["node4"].unschedulable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_switch_over_real_ssh_fails_the_step() {
    let Some(s) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    let nixos = NixosLikeHost::start();
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let p = plan(&inv, None, &[], &["node4".into()], "f", "run-ssh-fail").unwrap();
    let (h, mut rx) = start(
        world_over(&fw, nixos.target("instance_4", &s)),
        inv.clone(),
        p,
        settings_with("echo 'error: attribute missing'; exit 4".into()),
        StartOptions {
            holder: "t@x 1 run-ssh-fail".into(),
            ..Default::default()
        },
    );
    let mut lines = Vec::new();
    while let Some(e) = rx.recv().await {
        if let UpgradeEvent::Output { line, .. } = e {
            lines.push(line);
        }
    }
    match h.wait().await {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), step), ("node4", Step::Switch));
            assert!(message.contains("status 4"), "{message}");
            // Nothing was activated: the host's revert timer is disarmed, not left to fire.
            assert!(
                message.contains("nothing was activated") && message.contains("disarmed"),
                "{message}"
            );
        }
        other => panic!("expected the switch to fail: {other:?}"),
    }
    assert!(
        lines.iter().any(|l| l == "error: attribute missing"),
        "{lines:?}"
    );
    let st = fw.state();
    assert_eq!(
        st.nodes["node4"].cordoned_by.as_deref(),
        Some("run-ssh-fail")
    );
    assert!(st.log.iter().all(|l| !l.starts_with("reboot")));
    assert!(
        nixos.units().is_empty(),
        "no timer left: {:?}",
        nixos.units()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_over_real_ssh_on_a_host_without_nixos() {
    let Some(s) = shared() else { return };
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let w = world_with_real_ssh(&fw, &s);
    let host = inv.host("instance_4").unwrap();
    // Debian: no /run/booted-system, no systemd unit, no k3s — all "unknown", no error.
    let b = w.read.hosts.boot_state(host).await.unwrap();
    assert_eq!(b.reboot_needed, None);
    assert!(w.read.hosts.reachable(host).await);
    let a = w.read.hosts.auto_upgrade(host).await.unwrap();
    assert_ne!(a.running, Some(true));
    assert_eq!(w.read.hosts.k3s_version(host).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_id_over_real_ssh_is_this_kernels() {
    let Some(s) = shared() else { return };
    let mut targets = BTreeMap::new();
    targets.insert(
        "instance_4".to_string(),
        target(
            "instance_4",
            &s.host,
            s.port,
            &s.user,
            Some(&s.key),
            &s.known_hosts,
        ),
    );
    let ssh = HostsClient::with_targets(&SshConfig::default(), settings(), targets);
    let hosts = SshHosts::new(Arc::new(ssh));
    let inv = fake::inventory(4);
    let host = inv.host("instance_4").unwrap();
    // The test sshd runs on this machine: the same kernel, the same boot.
    let here = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let got = hosts.boot_id(host).await.unwrap();
    assert_eq!(got, here.trim());
}
