//! Facts only the host itself knows, gathered over SSH: the NixOS system, boot state, health
//! and the hardening posture. Every field is optional: `None` means "unknown" (the command was
//! missing, not permitted, or its output could not be read).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kernel, initrd and kernel modules of one NixOS system (full store paths).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFiles {
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub kernel_modules: Option<String>,
}

impl BootFiles {
    /// All three known.
    pub fn complete(&self) -> bool {
        self.kernel.is_some() && self.initrd.is_some() && self.kernel_modules.is_some()
    }
}

/// What one SSH round trip told us about a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub nixos_version: Option<String>,
    /// Target of `/run/current-system`.
    pub current_system: Option<String>,
    /// Target of `/run/booted-system`.
    pub booted_system: Option<String>,
    pub current_boot: BootFiles,
    pub booted_boot: BootFiles,
    /// Booted and current differ in kernel, initrd or kernel modules; `None` when unknown.
    pub reboot_needed: Option<bool>,
    /// Which of `kernel`, `initrd`, `kernel-modules` differ (when `reboot_needed`).
    pub reboot_reasons: Vec<String>,
    /// The system profile's generation number.
    pub generation: Option<u64>,
    /// The boot loader: `systemd-boot`, `grub`, `extlinux`, `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_loader: Option<String>,
    /// GRUB only: its environment block (`/boot/grub/grubenv`, the saved default) is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grubenv: Option<bool>,
    pub uptime_secs: Option<u64>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    /// Root filesystem use in percent.
    pub root_fs_used_pct: Option<f64>,
    /// Failed systemd units; `None` when unknown (no systemd, no permission).
    pub failed_units: Option<Vec<String>>,
    /// `systemctl is-active k3s.service` (`active`, `inactive`, `failed`, ...).
    pub k3s_state: Option<String>,
    /// `Result` of the last `nixos-upgrade.service` run (`success`, `exit-code`, ...).
    pub upgrade_last_result: Option<String>,
    /// When `nixos-upgrade.service` last finished, as systemd prints it.
    pub upgrade_last_run: Option<String>,
    /// When `nixos-upgrade.timer` fires next: RFC 3339 (or as an older systemd printed it).
    pub upgrade_next_run: Option<String>,
    /// Whether the facts script ran with root rights (as root or through `sudo -n`).
    pub privileged: Option<bool>,
    pub posture: Posture,
    /// Certificates, secrets and clock (read by their own probes after the facts script).
    pub recovery: crate::model::recovery::HostRecovery,
    /// Fields that were missing or could not be read (each becomes a finding).
    pub parse_issues: Vec<String>,
}

impl HostFacts {
    /// Compare booted and current boot files; fills `reboot_needed` and `reboot_reasons`.
    pub fn compute_reboot_needed(&mut self) {
        let pairs = [
            (
                "kernel",
                &self.booted_boot.kernel,
                &self.current_boot.kernel,
            ),
            (
                "initrd",
                &self.booted_boot.initrd,
                &self.current_boot.initrd,
            ),
            (
                "kernel-modules",
                &self.booted_boot.kernel_modules,
                &self.current_boot.kernel_modules,
            ),
        ];
        let mut reasons = Vec::new();
        let mut all_known = true;
        for (name, booted, current) in pairs {
            match (booted, current) {
                (Some(b), Some(c)) if b != c => reasons.push(name.to_string()),
                (Some(_), Some(_)) => {}
                _ => all_known = false,
            }
        }
        self.reboot_needed = if !reasons.is_empty() {
            Some(true)
        } else if all_known {
            Some(false)
        } else {
            match (&self.booted_system, &self.current_system) {
                // The very same system is booted: nothing can differ.
                (Some(b), Some(c)) if b == c => Some(false),
                _ => None,
            }
        };
        self.reboot_reasons = reasons;
    }
}

/// The host's hardening posture. `None` everywhere means "could not tell".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Posture {
    /// Effective sshd settings from `sshd -T` (lower-case keys and values), e.g.
    /// `passwordauthentication = "no"`.
    pub sshd: Option<BTreeMap<String, String>>,
    pub firewall: Option<Firewall>,
    pub fail2ban: Option<Fail2ban>,
    /// Listening sockets from `ss -tuln`.
    pub listening: Option<Vec<ListenSocket>>,
    /// `/run/secrets/k3s_token` exists.
    pub k3s_token_present: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    pub active: bool,
    /// `nftables` or `iptables` (or `none`).
    pub backend: String,
    /// A short human summary, e.g. "nftables: 2 input hooks, 14 rules".
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fail2ban {
    NotInstalled,
    NotRunning,
    Running { jails: Vec<String>, banned: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenSocket {
    pub proto: Proto,
    /// The local address as `ss` prints it without the port (`0.0.0.0`, `[::]`, `*`,
    /// `127.0.0.1`, `%lo` suffixes kept).
    pub address: String,
    pub port: u16,
    /// `users:((...))` when `ss -p` could tell.
    pub process: Option<String>,
}

impl ListenSocket {
    /// Reachable from other machines: bound to a wildcard or a non-loopback address.
    pub fn is_public(&self) -> bool {
        let a = self
            .address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split('%')
            .next()
            .unwrap_or("");
        let a = a.trim_end_matches(']');
        if a == "*" || a == "0.0.0.0" || a == "::" || a.is_empty() {
            return true;
        }
        match a.parse::<std::net::IpAddr>() {
            Ok(ip) => !ip.is_loopback(),
            Err(_) => true,
        }
    }
}

/// Why an SSH connection to a host failed, as far as the assessment needs to know. The SSH
/// client's error messages start with these stable prefixes (`SshProblem::prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SshProblem {
    /// No TCP connection, refused, timed out, connection lost.
    Unreachable,
    /// The host key is not in any known_hosts file.
    HostKeyUnknown,
    /// The host key differs from the recorded one (possible man-in-the-middle).
    HostKeyChanged,
    /// The server refused every key we have.
    AuthFailed,
    /// A command ran too long.
    Timeout,
    /// Anything else (protocol error, bad local key file, ...).
    Other,
}

impl SshProblem {
    pub const ALL: [SshProblem; 6] = [
        SshProblem::Unreachable,
        SshProblem::HostKeyUnknown,
        SshProblem::HostKeyChanged,
        SshProblem::AuthFailed,
        SshProblem::Timeout,
        SshProblem::Other,
    ];

    /// The stable prefix of the error message.
    pub fn prefix(self) -> &'static str {
        match self {
            SshProblem::Unreachable => "ssh unreachable",
            SshProblem::HostKeyUnknown => "ssh host key unknown",
            SshProblem::HostKeyChanged => "SSH HOST KEY CHANGED",
            SshProblem::AuthFailed => "ssh authentication failed",
            SshProblem::Timeout => "ssh command timed out",
            SshProblem::Other => "ssh error",
        }
    }

    /// Classify an error message made by the SSH client.
    pub fn of_message(message: &str) -> SshProblem {
        Self::ALL
            .into_iter()
            .find(|p| message.starts_with(p.prefix()))
            .unwrap_or(SshProblem::Other)
    }
}

/// A host's SSH state for the Hosts pane, from its `Sourced` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum SshState {
    /// SSH is off or the host is not in the snapshot.
    NotConfigured,
    /// Configured, no answer yet.
    Waiting,
    /// The last round trip worked.
    Connected,
    /// Failing since `since`; `problem` tells a host key problem from an unreachable host.
    Failing {
        problem: SshProblem,
        since: jiff::Timestamp,
        message: String,
    },
}

impl SshState {
    pub fn of(entry: Option<&crate::model::Sourced<HostFacts>>) -> SshState {
        let Some(e) = entry else {
            return SshState::NotConfigured;
        };
        if !e.status.configured {
            return SshState::NotConfigured;
        }
        match (&e.status.error, e.status.last_ok) {
            (Some(err), _) => SshState::Failing {
                problem: SshProblem::of_message(&err.message),
                since: err.since,
                message: err.message.clone(),
            },
            (None, Some(_)) => SshState::Connected,
            (None, None) => SshState::Waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_state_of_sourced() {
        use crate::model::Sourced;
        let t = jiff::Timestamp::from_second(1000).unwrap();
        assert_eq!(SshState::of(None), SshState::NotConfigured);
        let mut s: Sourced<HostFacts> = Sourced::configured();
        assert_eq!(SshState::of(Some(&s)), SshState::Waiting);
        s.record(Ok(HostFacts::default()), t);
        assert_eq!(SshState::of(Some(&s)), SshState::Connected);
        s.record(Err("SSH HOST KEY CHANGED: x".into()), t);
        assert!(matches!(
            SshState::of(Some(&s)),
            SshState::Failing { problem: SshProblem::HostKeyChanged, since, .. } if since == t
        ));
        let off: Sourced<HostFacts> = Sourced::not_configured("off");
        assert_eq!(SshState::of(Some(&off)), SshState::NotConfigured);
    }

    fn boot(k: &str, i: &str, m: &str) -> BootFiles {
        BootFiles {
            kernel: Some(k.into()),
            initrd: Some(i.into()),
            kernel_modules: Some(m.into()),
        }
    }

    #[test]
    fn reboot_needed_compares_full_paths() {
        let mut f = HostFacts {
            booted_boot: boot("/nix/store/a-linux/bzImage", "/i1", "/m1"),
            current_boot: boot("/nix/store/a-linux/bzImage", "/i1", "/m1"),
            ..Default::default()
        };
        f.compute_reboot_needed();
        assert_eq!(f.reboot_needed, Some(false));
        f.current_boot.kernel = Some("/nix/store/b-linux/bzImage".into());
        f.current_boot.kernel_modules = Some("/m2".into());
        f.compute_reboot_needed();
        assert_eq!(f.reboot_needed, Some(true));
        assert_eq!(f.reboot_reasons, vec!["kernel", "kernel-modules"]);
    }

    #[test]
    fn reboot_unknown_unless_same_system() {
        let mut f = HostFacts {
            booted_boot: boot("/k", "/i", "/m"),
            ..Default::default()
        };
        f.compute_reboot_needed();
        assert_eq!(f.reboot_needed, None);
        f.booted_system = Some("/nix/store/x-nixos-system".into());
        f.current_system = Some("/nix/store/x-nixos-system".into());
        f.compute_reboot_needed();
        assert_eq!(f.reboot_needed, Some(false));
    }

    #[test]
    fn public_addresses() {
        let s = |a: &str| ListenSocket {
            proto: Proto::Tcp,
            address: a.into(),
            port: 22,
            process: None,
        };
        for a in [
            "0.0.0.0",
            "*",
            "[::]",
            "192.0.2.10",
            "[2001:db8::1]",
            "0.0.0.0%eth0",
        ] {
            assert!(s(a).is_public(), "{a}");
        }
        for a in ["127.0.0.1", "[::1]", "127.0.0.53%lo", "127.1.2.3"] {
            assert!(!s(a).is_public(), "{a}");
        }
    }

    #[test]
    fn problem_prefixes_round_trip() {
        for p in SshProblem::ALL {
            assert_eq!(SshProblem::of_message(&format!("{}: x", p.prefix())), p);
        }
        assert_eq!(SshProblem::of_message("whatever"), SshProblem::Other);
    }
}
