//! What a closure diff means for one node, in a few fields: how many changes, whether it
//! reboots (yes / no / unknown, and why), which services restart, the version steps of the
//! packages that matter for a cluster (kernel, systemd, k3s, containerd), the closure size
//! delta and the high-risk changes (SSH, networking and firewall, the boot loader, the k3s
//! token). Pure: derived from a [`ClosureDiff`]; the upgrade plan shows it per node and
//! `diff --json` carries it, so both say the same.
//!
//! Risks are read from the lines nix prints: a configuration file whose size changes by less
//! than 8 KiB and whose derivation carries no version is not printed by
//! `nix store diff-closures`, so no flag can be raised for it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::classify::{BOOT_LINKS, compare_versions, is_kernel_package};
use crate::model::closure::{Bump, ChangeKind, ClosureDiff, PackageChange, SignedSize};

/// Yes, no, or cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Yes,
    No,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "no",
            Verdict::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The packages whose versions the plan names.
pub const TRACKED: [&str; 4] = ["kernel", "systemd", "k3s", "containerd"];

/// A version step of one tracked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionBump {
    /// `kernel`, `systemd`, `k3s` or `containerd`.
    pub package: String,
    /// The highest version in the old closure (`None`: added).
    pub from: Option<String>,
    /// The highest version in the new closure (`None`: removed).
    pub to: Option<String>,
    /// How big the step is (for upgrades and downgrades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump: Option<Bump>,
    pub downgrade: bool,
}

impl VersionBump {
    /// `k3s 1.31.4+k3s1 → 1.32.3+k3s1 (minor)`.
    pub fn line(&self) -> String {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "∅".into());
        let mut s = format!("{} {} → {}", self.package, v(&self.from), v(&self.to));
        if self.downgrade {
            s.push_str(" (downgrade)");
        } else if let Some(b) = self.bump {
            s.push_str(&format!(" ({})", b.as_str()));
        }
        s
    }
}

/// A kind of high-risk change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskKind {
    /// openssh or the sshd configuration: a mistake locks the operator out.
    Ssh,
    /// Networking or the firewall: a mistake cuts the host off.
    Network,
    /// The boot loader: a mistake leaves the host unbootable.
    Bootloader,
    /// The k3s token (secret): a mismatch keeps the node out of the cluster.
    K3sToken,
}

impl RiskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::Ssh => "ssh",
            RiskKind::Network => "network",
            RiskKind::Bootloader => "bootloader",
            RiskKind::K3sToken => "k3s-token",
        }
    }

    /// What could go wrong, for the operator.
    pub fn why(self) -> &'static str {
        match self {
            RiskKind::Ssh => "openssh or the sshd configuration changes: keep a session open",
            RiskKind::Network => "networking or the firewall changes: the host could drop off",
            RiskKind::Bootloader => "the boot loader changes: check the next boot",
            RiskKind::K3sToken => "the k3s token changes: the node could not rejoin",
        }
    }

    /// The risk of a package name, if any.
    pub fn of(name: &str) -> Option<RiskKind> {
        let n = name.to_ascii_lowercase();
        let any = |prefixes: &[&str]| prefixes.iter().any(|p| n.starts_with(p));
        if n.contains("k3s") && n.contains("token") {
            Some(RiskKind::K3sToken)
        } else if n == "openssh"
            || n.starts_with("openssh-")
            || n.starts_with("sshd")
            || n.contains("sshd_config")
            || n.contains("unit-sshd")
        {
            Some(RiskKind::Ssh)
        } else if any(&[
            "firewall",
            "nixos-firewall",
            "unit-firewall",
            "nftables",
            "iptables",
            "network-setup",
            "unit-network",
            "dhcpcd",
            "iproute2",
            "wireguard",
            "cni-plugin",
            "flannel",
        ]) {
            Some(RiskKind::Network)
        } else if any(&[
            "grub",
            "systemd-boot",
            "install-grub",
            "install-systemd-boot",
            "efibootmgr",
            "extlinux-conf-builder",
        ]) {
            Some(RiskKind::Bootloader)
        } else {
            None
        }
    }
}

/// One high-risk change: its kind and the diff line that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub kind: RiskKind,
    pub package: String,
    pub line: String,
}

/// What one node goes through, from its closure diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// Nothing changes (the node runs what `switch` would activate).
    pub up_to_date: bool,
    /// Changed packages.
    pub changes: usize,
    pub reboot: Verdict,
    /// Why (not), in one sentence.
    pub reboot_reason: String,
    /// The boot links (kernel, initrd, kernel modules) change: what the engine's reboot step
    /// looks at after the switch. `None` when they could not be read.
    pub boot_links_changed: Option<bool>,
    /// Services that restart on switch (`k3s`, `containerd`, ...).
    pub restarts: Vec<String>,
    /// Version steps of the kernel, systemd, k3s and containerd (those that change).
    pub bumps: Vec<VersionBump>,
    /// New minus old closure size (bytes), when both are known.
    pub closure_size_delta: Option<i64>,
    pub risks: Vec<Risk>,
}

impl ChangeSummary {
    /// The summary of a diff.
    pub fn of(diff: &ClosureDiff) -> ChangeSummary {
        let up_to_date = diff.is_up_to_date();
        let links = &diff.reboot.boot_links;
        let links_read = links.iter().any(|b| b.old.is_some() || b.new.is_some());
        let boot_links_changed = links_read.then(|| links.iter().any(|b| b.changed()));
        let (reboot, reboot_reason) = if up_to_date {
            (Verdict::No, "up to date".to_string())
        } else if diff.reboot.required {
            (Verdict::Yes, diff.reboot.reason.clone())
        } else if !links_read {
            (
                Verdict::Unknown,
                format!(
                    "the boot links ({}) could not be compared and no kernel or systemd package changed",
                    BOOT_LINKS.join(", ")
                ),
            )
        } else {
            (Verdict::No, diff.reboot.reason.clone())
        };
        let mut restarts: Vec<String> = diff.restarts().map(|c| c.name.clone()).collect();
        restarts.sort();
        restarts.dedup();
        let changes: Vec<&PackageChange> = diff.sections.iter().map(|(_, c)| c).collect();
        let bumps = TRACKED
            .iter()
            .filter_map(|p| bump_of(p, &changes))
            .collect();
        let mut risks: Vec<Risk> = changes
            .iter()
            .filter_map(|c| {
                RiskKind::of(&c.name).map(|kind| Risk {
                    kind,
                    package: c.name.clone(),
                    line: c.line.clone(),
                })
            })
            .collect();
        risks.sort_by(|a, b| (a.kind, &a.package).cmp(&(b.kind, &b.package)));
        ChangeSummary {
            up_to_date,
            changes: diff.totals.changes,
            reboot,
            reboot_reason,
            boot_links_changed,
            restarts,
            bumps,
            closure_size_delta: diff.totals.closure_size_delta,
            risks,
        }
    }

    /// The step of one tracked package (`k3s`, `kernel`, ...), if it changes.
    pub fn bump(&self, package: &str) -> Option<&VersionBump> {
        self.bumps.iter().find(|b| b.package == package)
    }

    /// One line for the plan: `12 changes · reboot: yes (kernel changed) · restarts k3s ·
    /// k3s 1.31.4+k3s1 → 1.32.3+k3s1 (minor) · +3.2 MiB · risk: ssh`.
    pub fn line(&self) -> String {
        if self.up_to_date {
            return "no change".into();
        }
        let n = self.changes;
        let mut parts = vec![format!("{n} change{}", if n == 1 { "" } else { "s" })];
        parts.push(format!("reboot: {} ({})", self.reboot, self.reboot_reason));
        if !self.restarts.is_empty() {
            parts.push(format!("restarts {}", self.restarts.join(", ")));
        }
        for b in &self.bumps {
            parts.push(b.line());
        }
        if let Some(d) = self.closure_size_delta {
            parts.push(SignedSize(d).to_string());
        }
        if !self.risks.is_empty() {
            let mut kinds: Vec<&str> = self.risks.iter().map(|r| r.kind.as_str()).collect();
            kinds.dedup();
            parts.push(format!("risk: {}", kinds.join(", ")));
        }
        parts.join(" · ")
    }
}

/// The change of a tracked package among the changes (the kernel is `linux` or a variant).
fn bump_of(package: &str, changes: &[&PackageChange]) -> Option<VersionBump> {
    let matches = |c: &&&PackageChange| match package {
        // The kernel itself: `linux` or a variant (`linux-hardened`), not the initrd.
        "kernel" => is_kernel_package(&c.name) && c.name.starts_with("linux"),
        p => c.name == p,
    };
    let c = changes.iter().find(matches)?;
    if c.kind == ChangeKind::Rebuilt {
        return None;
    }
    let highest = |v: &[String]| {
        v.iter()
            .max_by(|a, b| compare_versions(a, b))
            .map(|s| s.to_string())
    };
    Some(VersionBump {
        package: package.to_string(),
        from: highest(&c.old),
        to: highest(&c.new),
        bump: c.bump,
        downgrade: c.kind == ChangeKind::Downgrade,
    })
}

/// `(major, minor)` of a k3s or kubelet version: `v1.31.4+k3s1` and `1.31.4+k3s1` → (1, 31).
pub fn k3s_minor(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '+', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::closure::BootLink;
    use crate::operations::closure_diff::{classify, parse};

    fn links(changed: bool) -> Option<Vec<BootLink>> {
        Some(
            BOOT_LINKS
                .iter()
                .map(|n| BootLink {
                    name: n.to_string(),
                    old: Some(format!("/nix/store/a-{n}")),
                    new: Some(format!(
                        "/nix/store/{}-{n}",
                        if changed { "b" } else { "a" }
                    )),
                })
                .collect(),
        )
    }

    fn diff(text: &str, boot_links: Option<Vec<BootLink>>) -> ClosureDiff {
        classify::classify(
            parse::parse(text),
            classify::Context {
                old_path: "/nix/store/old".into(),
                new_path: "/nix/store/new".into(),
                boot_links,
                old_closure_size: Some(1_000_000),
                new_closure_size: Some(1_300_000),
            },
        )
    }

    #[test]
    fn summary_names_versions_restarts_and_risks() {
        let d = diff(
            "containerd: 2.0.4 → 2.0.5, +12.0 KiB\n\
             firewall-start: +9.1 KiB\n\
             k3s: 1.31.4+k3s1 → 1.32.3+k3s1, +1.2 MiB\n\
             linux: 6.12.55 → 6.12.58, +200.0 KiB\n\
             openssh: 9.9p2 → 10.0p2\n\
             systemd: 257.6 → 257.8, +20.0 KiB\n",
            links(true),
        );
        let s = ChangeSummary::of(&d);
        assert!(!s.up_to_date);
        assert_eq!(s.changes, 6);
        assert_eq!(s.reboot, Verdict::Yes);
        assert_eq!(s.boot_links_changed, Some(true));
        assert_eq!(s.restarts, ["containerd", "k3s"]);
        let k3s = s.bump("k3s").unwrap();
        assert_eq!(k3s.from.as_deref(), Some("1.31.4+k3s1"));
        assert_eq!(k3s.to.as_deref(), Some("1.32.3+k3s1"));
        assert_eq!(k3s.bump, Some(Bump::Minor));
        assert_eq!(s.bump("kernel").unwrap().to.as_deref(), Some("6.12.58"));
        assert_eq!(
            s.bumps
                .iter()
                .map(|b| b.package.as_str())
                .collect::<Vec<_>>(),
            ["kernel", "systemd", "k3s", "containerd"]
        );
        assert_eq!(s.closure_size_delta, Some(300_000));
        let kinds: Vec<RiskKind> = s.risks.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RiskKind::Ssh, RiskKind::Network]);
        let line = s.line();
        assert!(line.starts_with("6 changes · reboot: yes ("), "{line}");
        assert!(
            line.contains("k3s 1.31.4+k3s1 → 1.32.3+k3s1 (minor)"),
            "{line}"
        );
        assert!(line.ends_with("risk: ssh, network"), "{line}");
    }

    #[test]
    fn reboot_unknown_without_links_and_no_when_links_agree() {
        let s = ChangeSummary::of(&diff("htop: ∅ → 3.3.0, +293.6 KiB\n", None));
        assert_eq!(s.reboot, Verdict::Unknown);
        assert_eq!(s.boot_links_changed, None);
        let s = ChangeSummary::of(&diff("htop: ∅ → 3.3.0, +293.6 KiB\n", links(false)));
        assert_eq!(s.reboot, Verdict::No);
        let s = ChangeSummary::of(&diff("", links(false)));
        assert!(s.up_to_date);
        assert_eq!(s.line(), "no change");
    }

    #[test]
    fn downgrades_and_minors() {
        let d = diff("k3s: 1.31.4+k3s1 → 1.30.10+k3s1\n", links(false));
        let b = ChangeSummary::of(&d).bump("k3s").cloned().unwrap();
        assert!(b.downgrade);
        assert!(b.line().ends_with("(downgrade)"));
        assert_eq!(k3s_minor("v1.31.4+k3s1"), Some((1, 31)));
        assert_eq!(k3s_minor("1.32.0"), Some((1, 32)));
        assert_eq!(k3s_minor("garbage"), None);
        assert_eq!(RiskKind::of("k3s-token"), Some(RiskKind::K3sToken));
        assert_eq!(RiskKind::of("grub"), Some(RiskKind::Bootloader));
        assert_eq!(RiskKind::of("htop"), None);
    }
}
