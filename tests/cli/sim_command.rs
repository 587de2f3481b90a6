//! `homeinfra-tui sim` as a user runs it: files written, `ready` printed, SIGTERM stops it.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_homeinfra-tui");

#[test]
fn sim_command_serves_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["sim", "--dir"])
        .arg(dir.path())
        .args(["--nodes", "6", "--scenario", "slow-disk", "--speed", "4"])
        .arg("--hosts")
        .arg(dir.path().join("no-such-hosts.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");

    let config_path = dir.path().join("config.toml");
    let config = homeinfra_tui::config::parse(
        &config_path,
        &std::fs::read_to_string(&config_path).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config.kubernetes.kubeconfig.as_deref(),
        Some(dir.path().join("kubeconfig").as_path())
    );
    assert_eq!(config.etcd.endpoints.len(), 3);
    assert_eq!(config.etcd.metrics_urls.len(), 3);
    let hosts_path = dir.path().join("hosts.json");
    let inv = homeinfra_tui::inventory::parse(
        &hosts_path,
        &std::fs::read_to_string(&hosts_path).unwrap(),
    )
    .unwrap();
    assert_eq!(inv.hosts.len(), 6);
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    let mut ips: Vec<_> = inv.hosts.iter().map(|h| h.ip).collect();
    assert!(ips.iter().all(|ip| ip.is_loopback()));
    ips.dedup();
    assert_eq!(ips.len(), 6);
    // Every endpoint in the config is on a control plane's own loopback address.
    for (e, h) in config.etcd.endpoints.iter().zip(inv.control_planes()) {
        assert!(e.starts_with(&format!("http://{}:", h.ip)), "{e}");
    }
    let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains("server: https://127.0.0.1:"));

    if let Some(kubectl) = common::require_program("kubectl") {
        let home = tempfile::tempdir().unwrap();
        let out = Command::new(kubectl)
            .env("HOME", home.path())
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .args(["get", "nodes", "-o", "name"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sim did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unknown_scenario_is_an_error_listing_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["sim", "--dir"])
        .arg(dir.path())
        .args(["--scenario", "meltdown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scenario \"meltdown\""), "{err}");
    assert!(err.contains("healthy, degraded-volume, last-replica, etcd-member-down, slow-disk, node-never-returns, pdb-blocks, reboot-needed, stale-backup, unreachable-host"), "{err}");
    assert!(!Path::new(&dir.path().join("kubeconfig")).exists());
}
