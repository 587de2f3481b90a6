//! The SSH source task and `gather_once` against the real test sshd, with settings resolved
//! from `[ssh]` and the inventory the way the app does it.

use crate::common::ssh as ssh_support;

use std::time::Duration;

use homeinfra_tui::config::{SshConfig, Thresholds};
use homeinfra_tui::inventory::{Host, Inventory, Role};
use homeinfra_tui::model::{self, Severity, Snapshot};
use homeinfra_tui::sources::Update;
use homeinfra_tui::sources::ssh;
use ssh_support::*;

fn host(id: &str, role: Role, ip: &str, port: u16, user: &str) -> Host {
    crate::common::ssh_host(id, role, ip.parse().expect("ip"), port, user)
}

fn setup() -> Option<(SshConfig, Inventory)> {
    let s = shared()?;
    let cfg = SshConfig {
        identity_files: vec![s.key.clone()],
        known_hosts: Some(s.known_hosts.clone()),
        connect_timeout_secs: 3,
        command_timeout_secs: 20,
        refresh_secs: 1,
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![
            host("good", Role::Server, "192.0.2.11", s.port, &s.user),
            host("dead", Role::Agent, "192.0.2.12", free_port(), &s.user),
        ],
        ..Default::default()
    };
    Some((cfg, inv))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn spawn_sends_one_update_per_host_and_refreshes() {
    let Some((cfg, inv)) = setup() else { return };
    rt().block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let task = ssh::spawn(&cfg, &inv, tx);
        let mut good = 0;
        let mut dead = 0;
        // Two rounds (refresh_secs = 1): each host reports twice.
        while good < 2 || dead < 2 {
            let u = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("an update in time")
                .expect("the task is alive");
            let Update::Host { id, result } = u else {
                panic!("unexpected update {u:?}")
            };
            match id.as_str() {
                "good" => {
                    let f = result.expect("facts from the test sshd");
                    assert!(f.hostname.is_some() && f.uptime_secs.is_some(), "{f:?}");
                    good += 1;
                }
                "dead" => {
                    let e = result.expect_err("nothing listens there");
                    assert!(e.starts_with("ssh unreachable"), "{e}");
                    dead += 1;
                }
                other => panic!("unknown host {other}"),
            }
        }
        // Dropping the receiver ends the task.
        drop(rx);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the task ends when nobody listens")
            .expect("no panic");
    });
}

#[test]
fn gather_once_feeds_check() {
    let Some((cfg, inv)) = setup() else { return };
    let hosts = rt().block_on(ssh::gather_once(&cfg, &inv, Duration::from_secs(20)));
    assert_eq!(hosts.len(), 2);
    assert!(hosts["good"].data.is_some() && hosts["good"].status.error.is_none());
    assert!(hosts["dead"].data.is_none() && hosts["dead"].status.error.is_some());
    let snap = Snapshot {
        hosts,
        ..Default::default()
    };
    let findings = model::assess(&snap, &inv, &Thresholds::default(), jiff::Timestamp::now());
    let dead: Vec<_> = findings.iter().filter(|f| f.subject == "dead").collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].code.as_str(), dead[0].severity),
        ("host.ssh_unreachable", Severity::Critical)
    );
    assert!(findings.iter().all(|f| f.area() == "host"), "{findings:?}");

    // Off: every host not configured, no finding.
    let off = SshConfig {
        enabled: false,
        ..cfg
    };
    let hosts = rt().block_on(ssh::gather_once(&off, &inv, Duration::from_secs(5)));
    assert!(hosts.values().all(|s| !s.status.configured));
}

#[test]
fn hosts_client_runs_commands_by_host_id() {
    let Some((cfg, inv)) = setup() else { return };
    rt().block_on(async {
        let c = ssh::HostsClient::new(&cfg, &inv).expect("client");
        let out = c
            .run(&homeinfra_tui::testing::writes(), "good", "echo $USER")
            .await
            .expect("run");
        assert_eq!(
            out.stdout_lossy().trim(),
            inv.hosts[0].ssh_user.as_deref().unwrap()
        );
        assert_eq!(c.state("good"), ssh::ConnState::Connected);
        let e = c
            .run(&homeinfra_tui::testing::writes(), "nope", "true")
            .await
            .unwrap_err();
        assert!(e.message.contains("not a host of the inventory"), "{e}");
        let e = c
            .run(&homeinfra_tui::testing::writes(), "dead", "true")
            .await
            .unwrap_err();
        assert!(
            matches!(c.state("dead"), ssh::ConnState::Failing { failures: 1, .. }),
            "{e}"
        );
    });
}
