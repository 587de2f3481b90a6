//! Tests of the host rules, through [`assess`](super::assess).

use std::collections::BTreeMap;

use super::*;
use crate::inventory::Role;
use crate::model::Sourced;
use crate::model::host::{Fail2ban, ListenSocket, Proto};
use crate::model::host::{Firewall, Posture};

fn host(id: &str, role: Role) -> Host {
    Host {
        hostname: format!("{id}-name"),
        ..crate::testing::host(id, role, [192, 0, 2, 10])
    }
}

fn sock(proto: Proto, addr: &str, port: u16) -> ListenSocket {
    ListenSocket {
        proto,
        address: addr.into(),
        port,
        process: None,
    }
}

/// A host that passes every rule.
fn good() -> HostFacts {
    HostFacts {
        privileged: Some(true),
        reboot_needed: Some(false),
        failed_units: Some(vec![]),
        root_fs_used_pct: Some(40.0),
        k3s_state: Some("active".into()),
        upgrade_last_result: Some("success".into()),
        posture: Posture {
            sshd: Some(BTreeMap::from([
                ("passwordauthentication".into(), "no".into()),
                ("permitrootlogin".into(), "no".into()),
                ("x11forwarding".into(), "no".into()),
            ])),
            firewall: Some(Firewall {
                active: true,
                backend: "nftables".into(),
                detail: "d".into(),
            }),
            fail2ban: Some(Fail2ban::Running {
                jails: vec!["sshd".into()],
                banned: 2,
            }),
            listening: Some(vec![
                sock(Proto::Tcp, "0.0.0.0", 22),
                sock(Proto::Tcp, "127.0.0.1", 2381),
                sock(Proto::Tcp, "[::]", 10250),
                sock(Proto::Udp, "*", 8472),
            ]),
            k3s_token_present: Some(true),
        },
        ..Default::default()
    }
}

fn run_with(h: Host, data: Option<HostFacts>, err: Option<&str>) -> Vec<Finding> {
    let mut s = Sourced::configured();
    let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    if let Some(d) = data {
        s.record(Ok(d), t0);
    }
    if let Some(e) = err {
        s.record(Err(e.to_string()), t0);
    }
    let snap = Snapshot {
        hosts: BTreeMap::from([(h.id.clone(), s)]),
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![h],
        ..Default::default()
    };
    let mut out = Vec::new();
    assess(&snap, &inv, &Thresholds::default(), &mut out);
    out
}

fn run(role: Role, f: HostFacts) -> Vec<Finding> {
    run_with(host("h1", role), Some(f), None)
}

fn codes(out: &[Finding]) -> Vec<(&str, Severity)> {
    out.iter().map(|f| (f.code.as_str(), f.severity)).collect()
}

#[test]
fn a_good_host_has_no_findings() {
    assert_eq!(codes(&run(Role::Agent, good())), vec![]);
    let mut f = good();
    if let Some(l) = f.posture.listening.as_mut() {
        l.extend([
            sock(Proto::Tcp, "0.0.0.0", 6443),
            sock(Proto::Tcp, "0.0.0.0", 2379),
            sock(Proto::Tcp, "0.0.0.0", 2380),
            sock(Proto::Tcp, "0.0.0.0", 443),
            sock(Proto::Tcp, "0.0.0.0", 80),
            sock(Proto::Udp, "0.0.0.0", 53),
        ]);
    }
    assert_eq!(codes(&run(Role::Server, f.clone())), vec![]);
    assert_eq!(codes(&run(Role::Init, f)), vec![]);
}

#[test]
fn ssh_errors_by_kind() {
    let cases = [
        (
            SshProblem::HostKeyChanged,
            "host.ssh_host_key_changed",
            Severity::Critical,
        ),
        (
            SshProblem::HostKeyUnknown,
            "host.ssh_host_key_unknown",
            Severity::Warning,
        ),
        (
            SshProblem::AuthFailed,
            "host.ssh_auth_failed",
            Severity::Warning,
        ),
        (
            SshProblem::Unreachable,
            "host.ssh_unreachable",
            Severity::Critical,
        ),
        (
            SshProblem::Timeout,
            "host.ssh_unreachable",
            Severity::Critical,
        ),
        (SshProblem::Other, "host.ssh_error", Severity::Warning),
    ];
    for (p, code, sev) in cases {
        let msg = format!("{}: details", p.prefix());
        let out = run_with(host("h1", Role::Agent), None, Some(&msg));
        assert_eq!(codes(&out), vec![(code, sev)], "{p:?}");
        assert!(out[0].message.ends_with(": details"), "{}", out[0].message);
        assert!(!out[0].message.contains(p.prefix()), "{}", out[0].message);
        assert_eq!(out[0].subject, "h1");
    }
    // Old data is still assessed beside the error.
    let mut f = good();
    f.reboot_needed = Some(true);
    let out = run_with(
        host("h1", Role::Agent),
        Some(f),
        Some("ssh unreachable: x: connection refused"),
    );
    assert_eq!(
        codes(&out),
        vec![
            ("host.ssh_unreachable", Severity::Critical),
            ("host.reboot_needed", Severity::Warning)
        ]
    );
}

#[test]
fn not_configured_or_absent_hosts_are_skipped() {
    let h = host("h1", Role::Agent);
    let snap = Snapshot {
        hosts: BTreeMap::from([("h1".to_string(), Sourced::not_configured("off"))]),
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![h, host("h2", Role::Agent)],
        ..Default::default()
    };
    let mut out = Vec::new();
    assess(&snap, &inv, &Thresholds::default(), &mut out);
    assert!(out.is_empty());
}

#[test]
fn reboot_failed_units_disk_k3s_upgrade_and_unreadable() {
    let mut f = good();
    f.reboot_needed = Some(true);
    f.reboot_reasons = vec!["kernel".into(), "initrd".into()];
    f.failed_units = Some(vec!["a.service".into(), "b.timer".into()]);
    f.root_fs_used_pct = Some(90.0);
    f.k3s_state = Some("inactive".into());
    f.upgrade_last_result = Some("exit-code".into());
    f.parse_issues = vec!["a".into(), "b".into(), "c".into(), "d".into()];
    let out = run(Role::Agent, f.clone());
    assert_eq!(
        codes(&out),
        vec![
            ("host.reboot_needed", Severity::Warning),
            ("host.failed_units", Severity::Warning),
            ("host.root_fs_usage", Severity::Warning),
            ("host.k3s_not_active", Severity::Warning),
            ("host.auto_upgrade_failed", Severity::Warning),
            ("host.facts_unreadable", Severity::Warning),
        ]
    );
    assert!(
        out[0].message.contains("kernel, initrd"),
        "{}",
        out[0].message
    );
    assert!(
        out[1]
            .message
            .contains("2 failed systemd units: a.service, b.timer")
    );
    assert!(out[2].message.contains("90%"));
    assert!(out[5].message.contains("(+1 more)"));

    f.root_fs_used_pct = Some(97.0);
    f.k3s_state = Some("failed".into());
    let out = run(Role::Agent, f);
    assert!(
        out.iter()
            .any(|x| x.code == "host.root_fs_usage" && x.severity == Severity::Critical)
    );
    assert!(
        out.iter()
            .any(|x| x.code == "host.k3s_not_active" && x.severity == Severity::Critical)
    );
}

#[test]
fn sshd_policy() {
    let mut f = good();
    let sshd = f.posture.sshd.as_mut().unwrap();
    sshd.insert("passwordauthentication".into(), "yes".into());
    sshd.insert("permitrootlogin".into(), "prohibit-password".into());
    sshd.insert("x11forwarding".into(), "yes".into());
    let out = run(Role::Agent, f.clone());
    assert_eq!(
        codes(&out),
        vec![
            ("host.sshd_password_authentication", Severity::Critical),
            ("host.sshd_permit_root_login", Severity::Warning),
            ("host.sshd_x11_forwarding", Severity::Warning),
        ]
    );
    f.posture
        .sshd
        .as_mut()
        .unwrap()
        .insert("permitrootlogin".into(), "yes".into());
    let out = run(Role::Agent, f);
    assert!(
        out.iter()
            .any(|x| x.code == "host.sshd_permit_root_login" && x.severity == Severity::Critical)
    );
}

#[test]
fn firewall_fail2ban_token() {
    let mut f = good();
    f.posture.firewall = Some(Firewall {
        active: false,
        backend: "none".into(),
        detail: "neither nft nor iptables is installed".into(),
    });
    f.posture.fail2ban = Some(Fail2ban::NotRunning);
    f.posture.k3s_token_present = Some(false);
    let out = run(Role::Agent, f.clone());
    assert_eq!(
        codes(&out),
        vec![
            ("host.firewall_inactive", Severity::Critical),
            ("host.fail2ban_not_running", Severity::Warning),
            ("host.k3s_token_missing", Severity::Critical),
        ]
    );
    f.posture.fail2ban = Some(Fail2ban::NotInstalled);
    let out = run(Role::Agent, f);
    assert!(out.iter().any(|x| x.message.contains("not installed")));
}

#[test]
fn ports_by_role() {
    let mut f = good();
    f.posture.listening = Some(vec![
        sock(Proto::Tcp, "0.0.0.0", 22),
        sock(Proto::Tcp, "0.0.0.0", 2379),
        sock(Proto::Tcp, "[::]", 6443),
        sock(Proto::Tcp, "0.0.0.0", 2381),
        sock(Proto::Tcp, "0.0.0.0", 10257),
        sock(Proto::Tcp, "0.0.0.0", 10256),
        sock(Proto::Tcp, "127.0.0.1", 2380),
        ListenSocket {
            process: Some("users:((\"nginx\",pid=5,fd=6))".into()),
            ..sock(Proto::Tcp, "0.0.0.0", 443)
        },
        sock(Proto::Tcp, "192.0.2.10", 8080),
        sock(Proto::Udp, "0.0.0.0", 53),
    ]);
    let out = run(Role::Agent, f.clone());
    assert_eq!(
        codes(&out),
        vec![
            ("host.cluster_port_exposed", Severity::Critical),
            ("host.unexpected_public_port", Severity::Warning),
        ]
    );
    let m = &out[0].message;
    assert!(
        m.contains("2379/tcp on 0.0.0.0 (etcd client)")
            && m.contains("6443/tcp")
            && m.contains("2381/tcp")
            && m.contains("10257/tcp on 0.0.0.0 (kube-controller-manager)"),
        "{m}"
    );
    assert!(
        !m.contains("10256"),
        "kube-proxy health is on every node: {m}"
    );
    assert!(!m.contains("2380"), "loopback is not public: {m}");
    let m = &out[1].message;
    assert!(
        m.contains("443/tcp on 0.0.0.0 (nginx)") && m.contains("8080/tcp") && m.contains("53/udp"),
        "{m}"
    );

    // A control plane needs etcd and the API and may serve 80/443/53.
    let out = run(Role::Server, f);
    assert_eq!(
        codes(&out),
        vec![
            ("host.cluster_port_exposed", Severity::Critical),
            ("host.unexpected_public_port", Severity::Warning),
        ]
    );
    // etcd metrics may be scraped on control planes; the controller-manager never public.
    assert!(
        out[0].message.contains("10257/tcp") && !out[0].message.contains("2381"),
        "{}",
        out[0].message
    );
    assert!(
        !out[0].message.contains("2379") && !out[0].message.contains("10256"),
        "{}",
        out[0].message
    );
    assert!(
        out[1].message.contains("8080") && !out[1].message.contains("443/tcp"),
        "{}",
        out[1].message
    );

    // A custom SSH port from the inventory is fine.
    let mut h = host("h1", Role::Agent);
    h.ssh_port = Some(2222);
    let mut f = good();
    f.posture.listening = Some(vec![sock(Proto::Tcp, "0.0.0.0", 2222)]);
    assert!(run_with(h, Some(f), None).is_empty());
}

#[test]
fn unknown_posture_is_info_with_a_sudo_hint() {
    let mut f = good();
    f.privileged = Some(false);
    f.posture = Posture::default();
    let out = run(Role::Agent, f);
    assert_eq!(codes(&out), vec![("host.posture_unknown", Severity::Info)]);
    let m = &out[0].message;
    assert!(
        m.contains("sshd settings, firewall, fail2ban, listening ports, k3s token secret"),
        "{m}"
    );
    assert!(m.contains("sudo = true"), "{m}");
}
