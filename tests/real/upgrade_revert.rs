//! The switch that reverts itself over a REAL sshd (a private one, in its own mount
//! namespace: a tmpfs over /run holding `/run/current-system` → a store path) with fake
//! `sudo`, `systemd-run`, `systemctl` and `nixos-rebuild` first on the test user's PATH
//! (sshd's `SetEnv`). Each fake records its arguments; the fake `systemd-run` keeps a timer
//! (waiting → running → elapsed) that, unless `systemctl stop` disarms it in time, fires in a
//! detached process and points `/run/current-system` back at the system its script sets.
//!
//! Cases: the arm and confirm commands go out with the right arguments (unit, delay, the
//! previous system in the script, `--collect`), the confirm logs in anew and disarms; a
//! confirm that cannot succeed (the node NotReady after the switch) leaves the revert to the
//! host, whose timer fires, and the run reports the host back on its previous system.

use crate::common::nixos_host::{self, NEW, OLD};
use crate::common::ssh as ssh_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use homeinfra_tui::config::{SshConfig, SwitchMode};
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::live::{SshHosts, SshWriter};
use homeinfra_tui::operations::upgrade::world::{ReadWorld, SystemClock, World, Writers};
use homeinfra_tui::operations::upgrade::{
    RunOutcome, Settings, Step, StepOutcome, UpgradeEvent, plan, start,
};
use homeinfra_tui::sources::ssh::HostsClient;
use ssh_support::*;

fn world_over(fw: &Arc<FakeWorld>, s: &SharedSshd, sshd: &PrivateSshd, real_clock: bool) -> World {
    let mut targets = BTreeMap::new();
    targets.insert(
        "instance_4".to_string(),
        target(
            "instance_4",
            "127.0.0.1",
            sshd.port,
            &s.user,
            Some(&s.key),
            &sshd.known_hosts,
        ),
    );
    let ssh = Arc::new(HostsClient::with_targets(
        &SshConfig::default(),
        settings(),
        targets,
    ));
    let fake = fw.world();
    let writes = homeinfra_tui::testing::writes();
    let mut read = ReadWorld {
        hosts: Arc::new(SshHosts::new(ssh.clone())),
        ..fake.read
    };
    if real_clock {
        read.clock = Arc::new(SystemClock);
    }
    World {
        read,
        write: Writers::new(
            &writes,
            fake.write.cluster.clone(),
            Arc::new(SshWriter::new(&writes, ssh)),
        ),
    }
}

fn settings_for(confirm_secs: u64) -> Settings {
    Settings {
        switch: SwitchMode::Remote,
        switch_command: "sudo nixos-rebuild switch --flake {flake}#{host}".into(),
        settle: Duration::ZERO,
        poll: Duration::from_millis(300),
        confirm_timeout: Duration::from_secs(confirm_secs),
        time_zone: jiff::tz::TimeZone::UTC,
        // The sshd's machine runs no systemd: no nixos-upgrade state to see, said so.
        skip_guards: vec!["auto-upgrade".into()],
        ..Settings::default()
    }
}

/// The current system of the sshd's sessions, read over a new connection.
async fn current_system(s: &SharedSshd, sshd: &PrivateSshd) -> String {
    let pool = homeinfra_tui::sources::ssh::SshPool::new(settings());
    let t = target(
        "instance_4",
        "127.0.0.1",
        sshd.port,
        &s.user,
        Some(&s.key),
        &sshd.known_hosts,
    );
    let out = pool
        .run(&t, "readlink -f /run/current-system")
        .await
        .expect("readlink over SSH");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn run(
    w: World,
    inv: &homeinfra_tui::inventory::Inventory,
    fw: &Arc<FakeWorld>,
    run_id: &str,
    settings: Settings,
    not_ready_after_switch: bool,
) -> (RunOutcome, Vec<UpgradeEvent>) {
    let p = plan(inv, None, &[], &["node4".into()], "github:me/infra", run_id).unwrap();
    let (h, mut rx) = start(
        w,
        inv.clone(),
        p,
        settings,
        StartOptions {
            holder: format!("t@x 1 {run_id}"),
            ..Default::default()
        },
    );
    let mut events = Vec::new();
    let body = async {
        while let Some(e) = rx.recv().await {
            if not_ready_after_switch
                && matches!(
                    &e,
                    UpgradeEvent::StepFinished {
                        step: Step::Switch,
                        ..
                    }
                )
            {
                fw.state().nodes.get_mut("node4").unwrap().ready = false;
            }
            events.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("the run ends");
    (h.wait().await, events)
}

fn accepted_logins(sshd: &PrivateSshd) -> usize {
    sshd.log()
        .matches("Accepted publickey for operator")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_and_confirm_go_out_with_the_right_arguments_over_real_ssh() {
    let Some(s) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    let f = nixos_host::fakes();
    let sshd = nixos_host::sshd(&f);
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .kernel_changes = false;
    assert_eq!(current_system(&s, &sshd).await, OLD, "{}", sshd.log());
    let before = accepted_logins(&sshd);
    let (outcome, events) = run(
        world_over(&fw, &s, &sshd, false),
        &inv,
        &fw,
        "run-rv",
        settings_for(30),
        false,
    )
    .await;
    let calls = f.calls();
    assert_eq!(outcome, RunOutcome::Completed, "{events:#?}\n{calls:#?}");
    let script = format!(
        "{OLD}/sw/bin/nix-env -p /nix/var/nix/profiles/system --set {OLD} && {OLD}/bin/switch-to-configuration switch"
    );
    let arm = format!(
        "systemd-run [--unit=homeinfra-revert-run-rv] [--description=homeinfra-tui: revert to the previous system unless confirmed] \
         [--on-active=30s] [--timer-property=AccuracySec=1s] [--collect] [/bin/sh] [-c] [{script}]"
    );
    let at = |want: &str| {
        calls
            .iter()
            .position(|c| c == want)
            .unwrap_or_else(|| panic!("no `{want}` in {calls:#?}"))
    };
    let sudo_arm = at(&format!(
        "sudo {}",
        arm.replacen("systemd-run", "[systemd-run]", 1)
    ));
    let armed = at(&arm);
    let switched = at("nixos-rebuild [switch] [--flake] [github:me/infra#node4]");
    let shown = calls
        .iter()
        .rposition(|c| {
            c == "systemctl [show] [-p] [LoadState,ActiveState,SubState] [homeinfra-revert-run-rv.timer] [homeinfra-revert-run-rv.service]"
        })
        .unwrap_or_else(|| panic!("no timer state read: {calls:#?}"));
    let stopped = at("systemctl [stop] [homeinfra-revert-run-rv.timer]");
    assert!(
        sudo_arm < armed && armed < switched && switched < stopped && stopped < shown,
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c == "sudo [systemctl] [stop] [homeinfra-revert-run-rv.timer]"),
        "the disarm runs with sudo: {calls:#?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("fired")), "{calls:#?}");
    // The confirm logged in anew: more than the one connection of the steps before it.
    assert!(
        accepted_logins(&sshd) - before >= 2,
        "a new SSH login: {}",
        sshd.log()
    );
    let confirm = events
        .iter()
        .find_map(|e| match e {
            UpgradeEvent::StepFinished {
                step: Step::Confirm,
                outcome,
                ..
            } => Some(outcome.clone()),
            _ => None,
        })
        .expect("a confirm step");
    assert!(
        matches!(&confirm, StepOutcome::Ok { detail: Some(d) } if d.contains("disarmed")),
        "{confirm:?}"
    );
    // The timer is gone and the new system stays.
    assert!(
        std::fs::read_dir(f.dir.path().join("units"))
            .unwrap()
            .next()
            .is_none(),
        "no timer left"
    );
    assert_eq!(current_system(&s, &sshd).await, NEW);
    assert!(!fw.state().nodes["node4"].unschedulable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_that_fails_leaves_the_revert_to_the_host_over_real_ssh() {
    let Some(s) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    let f = nixos_host::fakes();
    let sshd = nixos_host::sshd(&f);
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .kernel_changes = false;
    let (outcome, events) = run(
        world_over(&fw, &s, &sshd, true),
        &inv,
        &fw,
        "run-rvf",
        settings_for(3),
        true,
    )
    .await;
    let calls = f.calls();
    match &outcome {
        RunOutcome::Failed {
            node,
            step: Step::Confirm,
            message,
        } => {
            assert_eq!(node, "node4");
            assert!(
                message.starts_with(&format!(
                    "node4 rolled itself back: the new system was not confirmed within 3 s — node4 NotReady after activation; instance_4 runs its previous system {OLD} again."
                )),
                "{message}\n{calls:#?}"
            );
            assert!(message.contains("stays cordoned"), "{message}");
        }
        other => panic!(
            "expected the host's own revert reported, got {other:?}\n{events:#?}\n{calls:#?}"
        ),
    }
    // The timer fired on the host (the fake's detached process), running the revert script;
    // the tool never disarmed it and never rolled back over SSH.
    let script = format!(
        "{OLD}/sw/bin/nix-env -p /nix/var/nix/profiles/system --set {OLD} && {OLD}/bin/switch-to-configuration switch"
    );
    assert!(
        calls.iter().any(|c| c == &format!("fired [{script}]")),
        "{calls:#?}"
    );
    assert!(!calls.iter().any(|c| c.contains("[stop]")), "{calls:#?}");
    assert!(
        !calls.iter().any(|c| c.contains("--rollback")),
        "{calls:#?}"
    );
    assert_eq!(current_system(&s, &sshd).await, OLD);
    assert_eq!(
        fw.state().nodes["node4"].cordoned_by.as_deref(),
        Some("run-rvf")
    );
}
