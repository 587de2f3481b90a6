//! The hardening posture policy: sshd (`PasswordAuthentication no`, `PermitRootLogin no`,
//! `X11Forwarding no`), an active firewall, fail2ban running, the k3s token secret present,
//! public ports limited to 22 (+80/tcp, 443/tcp, 53/udp on control planes), and etcd, k3s and
//! kubelet ports only where the role needs them.

use super::push;
use crate::inventory::{Host, Role};
use crate::model::host::{Fail2ban, HostFacts, ListenSocket, Proto};
use crate::model::{Finding, Severity};

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

/// The posture findings of `host`.
pub(super) fn posture(host: &Host, f: &HostFacts, out: &mut Vec<Finding>) {
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
