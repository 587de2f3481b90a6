//! Host rules (area `host.`): SSH reachability and host keys, reboot needed, failed units, disk,
//! k3s and auto-upgrade state, unreadable facts, and the hardening posture policy:
//! `PasswordAuthentication no`, `PermitRootLogin no`, `X11Forwarding no`, an active firewall,
//! fail2ban running, public ports limited to 22 (+80/tcp, 443/tcp, 53/udp on control planes),
//! etcd/k3s/kubelet ports only where the role needs them, the k3s token secret present.

use crate::config::Thresholds;
use crate::inventory::{Host, Inventory, Role};
use crate::model::host::{Fail2ban, HostFacts, ListenSocket, Proto, SshProblem};
use crate::model::{Finding, Severity, Snapshot};

pub(super) fn assess(snap: &Snapshot, inv: &Inventory, th: &Thresholds, out: &mut Vec<Finding>) {
    for host in &inv.hosts {
        let Some(entry) = snap.hosts.get(&host.id) else {
            continue;
        };
        if !entry.status.configured {
            continue;
        }
        if let Some(e) = &entry.status.error {
            ssh_error(host, &e.message, e.since, out);
        }
        if let Some(f) = &entry.data {
            facts(host, f, th, out);
            posture(host, f, out);
        }
    }
}

fn push(out: &mut Vec<Finding>, sev: Severity, code: &str, host: &Host, msg: String) {
    out.push(Finding::new(
        sev,
        format!("host.{code}"),
        host.id.clone(),
        msg,
    ));
}

fn ssh_error(host: &Host, message: &str, since: jiff::Timestamp, out: &mut Vec<Finding>) {
    let when = since.strftime("%H:%M:%S");
    let problem = SshProblem::of_message(message);
    // The client's messages start with the problem's name; the finding code says it already.
    let message = message
        .strip_prefix(problem.prefix())
        .map(|m| m.trim_start_matches(':').trim_start())
        .unwrap_or(message);
    let (sev, code, msg) = match problem {
        SshProblem::HostKeyChanged => (
            Severity::Critical,
            "ssh_host_key_changed",
            format!("{}: SSH host key problem: {message}", host.hostname),
        ),
        SshProblem::HostKeyUnknown => (
            Severity::Warning,
            "ssh_host_key_unknown",
            format!("{}: SSH host key not trusted yet: {message}", host.hostname),
        ),
        SshProblem::AuthFailed => (
            Severity::Warning,
            "ssh_auth_failed",
            format!(
                "{}: SSH login refused since {when}: {message}",
                host.hostname
            ),
        ),
        SshProblem::Unreachable | SshProblem::Timeout => (
            Severity::Critical,
            "ssh_unreachable",
            format!(
                "{} unreachable over SSH since {when}: {message}",
                host.hostname
            ),
        ),
        SshProblem::Other => (
            Severity::Warning,
            "ssh_error",
            format!("{}: SSH error since {when}: {message}", host.hostname),
        ),
    };
    push(out, sev, code, host, msg);
}

fn facts(host: &Host, f: &HostFacts, th: &Thresholds, out: &mut Vec<Finding>) {
    let name = &host.hostname;
    if f.reboot_needed == Some(true) {
        push(
            out,
            Severity::Warning,
            "reboot_needed",
            host,
            format!(
                "{name} needs a reboot: the booted system differs from the current one in {}",
                f.reboot_reasons.join(", ")
            ),
        );
    }
    if let Some(units) = &f.failed_units
        && !units.is_empty()
    {
        push(
            out,
            Severity::Warning,
            "failed_units",
            host,
            format!(
                "{name}: {} failed systemd unit{}: {}",
                units.len(),
                if units.len() == 1 { "" } else { "s" },
                units.join(", ")
            ),
        );
    }
    if let Some(pct) = f.root_fs_used_pct {
        let sev = if pct >= th.host_disk_critical_pct {
            Some(Severity::Critical)
        } else if pct >= th.host_disk_warning_pct {
            Some(Severity::Warning)
        } else {
            None
        };
        if let Some(sev) = sev {
            push(
                out,
                sev,
                "root_fs_usage",
                host,
                format!("{name}: root filesystem {pct:.0}% full"),
            );
        }
    }
    if let Some(state) = f.k3s_state.as_deref()
        && state != "active"
    {
        let sev = if state == "failed" {
            Severity::Critical
        } else {
            Severity::Warning
        };
        push(
            out,
            sev,
            "k3s_not_active",
            host,
            format!("{name}: k3s.service is {state}"),
        );
    }
    if let Some(result) = f.upgrade_last_result.as_deref()
        && result != "success"
    {
        push(
            out,
            Severity::Warning,
            "auto_upgrade_failed",
            host,
            format!("{name}: the last nixos-upgrade.service run ended with \"{result}\""),
        );
    }
    if !f.parse_issues.is_empty() {
        let shown: Vec<&str> = f.parse_issues.iter().take(3).map(String::as_str).collect();
        let more = f.parse_issues.len().saturating_sub(shown.len());
        push(
            out,
            Severity::Warning,
            "facts_unreadable",
            host,
            format!(
                "{name}: some facts could not be read (shown as unknown): {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            ),
        );
    }
}

/// A Kubernetes/etcd port and which roles need it reachable.
struct K8sPort {
    proto: Proto,
    port: u16,
    what: &'static str,
    control_plane_only: bool,
}

const K8S_PORTS: &[K8sPort] = &[
    // Scraped from outside when k3s exposes etcd metrics (`etcd-expose-metrics`).
    K8sPort {
        proto: Proto::Tcp,
        port: 2381,
        what: "etcd metrics",
        control_plane_only: true,
    },
    K8sPort {
        proto: Proto::Tcp,
        port: 10256,
        what: "kube-proxy health",
        control_plane_only: false,
    },
    K8sPort {
        proto: Proto::Tcp,
        port: 2379,
        what: "etcd client",
        control_plane_only: true,
    },
    K8sPort {
        proto: Proto::Tcp,
        port: 2380,
        what: "etcd peer",
        control_plane_only: true,
    },
    K8sPort {
        proto: Proto::Tcp,
        port: 6443,
        what: "Kubernetes API",
        control_plane_only: true,
    },
    K8sPort {
        proto: Proto::Tcp,
        port: 10250,
        what: "kubelet",
        control_plane_only: false,
    },
    K8sPort {
        proto: Proto::Udp,
        port: 8472,
        what: "flannel VXLAN",
        control_plane_only: false,
    },
    K8sPort {
        proto: Proto::Udp,
        port: 51820,
        what: "flannel WireGuard",
        control_plane_only: false,
    },
    K8sPort {
        proto: Proto::Udp,
        port: 51821,
        what: "flannel WireGuard (IPv6)",
        control_plane_only: false,
    },
];

/// Ports of the cluster that must never be public on any node (local-only endpoints).
const K8S_LOCAL_ONLY: &[(Proto, u16, &str)] = &[
    (Proto::Tcp, 6444, "k3s supervisor"),
    (Proto::Tcp, 10248, "kubelet healthz"),
    (Proto::Tcp, 10249, "kube-proxy metrics"),
    (Proto::Tcp, 10257, "kube-controller-manager"),
    (Proto::Tcp, 10259, "kube-scheduler"),
];

fn needs(role: Role, p: &K8sPort) -> bool {
    !p.control_plane_only || role.is_control_plane()
}

fn base_allowed(host: &Host, s: &ListenSocket) -> bool {
    let ssh_port = host.ssh_port.unwrap_or(22);
    match s.proto {
        Proto::Tcp if s.port == 22 || s.port == ssh_port => true,
        Proto::Tcp if host.role.is_control_plane() => matches!(s.port, 80 | 443),
        Proto::Udp if host.role.is_control_plane() => s.port == 53,
        _ => false,
    }
}

fn sock_label(s: &ListenSocket) -> String {
    format!("{}/{} on {}", s.port, s.proto.as_str(), s.address)
}

fn posture(host: &Host, f: &HostFacts, out: &mut Vec<Finding>) {
    let name = &host.hostname;
    let p = &f.posture;
    let mut unknown: Vec<&str> = Vec::new();

    match &p.sshd {
        Some(sshd) => {
            let get = |k: &str| sshd.get(k).map(String::as_str);
            if let Some(v) = get("passwordauthentication")
                && v != "no"
            {
                push(
                    out,
                    Severity::Critical,
                    "sshd_password_authentication",
                    host,
                    format!(
                        "{name}: sshd allows password logins (PasswordAuthentication {v}); the policy is \"no\""
                    ),
                );
            }
            if let Some(v) = get("permitrootlogin")
                && v != "no"
            {
                let sev = if v == "yes" {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                push(
                    out,
                    sev,
                    "sshd_permit_root_login",
                    host,
                    format!(
                        "{name}: sshd permits root logins (PermitRootLogin {v}); the policy is \"no\""
                    ),
                );
            }
            if let Some(v) = get("x11forwarding")
                && v != "no"
            {
                push(
                    out,
                    Severity::Warning,
                    "sshd_x11_forwarding",
                    host,
                    format!(
                        "{name}: sshd allows X11 forwarding (X11Forwarding {v}); the policy is \"no\""
                    ),
                );
            }
        }
        None => unknown.push("sshd settings"),
    }

    match &p.firewall {
        Some(fw) if !fw.active => push(
            out,
            Severity::Critical,
            "firewall_inactive",
            host,
            format!("{name}: no active firewall ({})", fw.detail),
        ),
        Some(_) => {}
        None => unknown.push("firewall"),
    }

    match &p.fail2ban {
        Some(Fail2ban::NotInstalled) => push(
            out,
            Severity::Warning,
            "fail2ban_not_running",
            host,
            format!("{name}: fail2ban is not installed"),
        ),
        Some(Fail2ban::NotRunning) => push(
            out,
            Severity::Warning,
            "fail2ban_not_running",
            host,
            format!("{name}: fail2ban is not running"),
        ),
        Some(Fail2ban::Running { .. }) => {}
        None => unknown.push("fail2ban"),
    }

    match &p.listening {
        Some(socks) => {
            let mut exposed = Vec::new();
            let mut unexpected = Vec::new();
            for s in socks.iter().filter(|s| s.is_public()) {
                if let Some(k) = K8S_PORTS
                    .iter()
                    .find(|k| k.proto == s.proto && k.port == s.port)
                {
                    if !needs(host.role, k) {
                        exposed.push(format!("{} ({})", sock_label(s), k.what));
                    }
                } else if let Some((_, _, what)) = K8S_LOCAL_ONLY
                    .iter()
                    .find(|(proto, port, _)| *proto == s.proto && *port == s.port)
                {
                    exposed.push(format!("{} ({what})", sock_label(s)));
                } else if !base_allowed(host, s) {
                    let proc_name = s
                        .process
                        .as_deref()
                        .and_then(|p| p.split('"').nth(1))
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default();
                    unexpected.push(format!("{}{proc_name}", sock_label(s)));
                }
            }
            if !exposed.is_empty() {
                push(
                    out,
                    Severity::Critical,
                    "cluster_port_exposed",
                    host,
                    format!(
                        "{name} ({} node) listens publicly on cluster ports its role does not need: {}",
                        host.role,
                        exposed.join(", ")
                    ),
                );
            }
            if !unexpected.is_empty() {
                push(
                    out,
                    Severity::Warning,
                    "unexpected_public_port",
                    host,
                    format!(
                        "{name}: public listening ports beyond the policy ({}): {}",
                        if host.role.is_control_plane() {
                            "22, 80, 443, 53/udp"
                        } else {
                            "22"
                        },
                        unexpected.join(", ")
                    ),
                );
            }
        }
        None => unknown.push("listening ports"),
    }

    match p.k3s_token_present {
        Some(false) => push(
            out,
            Severity::Critical,
            "k3s_token_missing",
            host,
            format!(
                "{name}: the sops secret /run/secrets/k3s_token is missing: k3s cannot join the cluster"
            ),
        ),
        Some(true) => {}
        None => unknown.push("k3s token secret"),
    }

    if !unknown.is_empty() {
        let hint = if f.privileged == Some(false) {
            " (not root: set [ssh] sudo = true and allow `sudo -n` for the SSH user)"
        } else {
            ""
        };
        push(
            out,
            Severity::Info,
            "posture_unknown",
            host,
            format!("{name}: could not check {}{hint}", unknown.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Sourced;
    use crate::model::host::{Firewall, Posture};

    fn host(id: &str, role: Role) -> Host {
        Host {
            id: id.into(),
            hostname: format!("{id}-name"),
            system: "x86_64-linux".into(),
            profile: "p".into(),
            role,
            region: "r".into(),
            zone: "z".into(),
            ip: "192.0.2.10".parse().unwrap(),
            gateway: "192.0.2.1".parse().unwrap(),
            mask_length: 24,
            ssh_host: None,
            ssh_user: None,
            ssh_port: None,
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
            out.iter().any(
                |x| x.code == "host.sshd_permit_root_login" && x.severity == Severity::Critical
            )
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
            m.contains("443/tcp on 0.0.0.0 (nginx)")
                && m.contains("8080/tcp")
                && m.contains("53/udp"),
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
}
