//! A classified closure diff: what changes between two NixOS system closures, and whether the
//! change needs a reboot or service restarts. Pure data (serde): built by
//! `operations::closure_diff`, read by the diff view, `diff --json` and the rolling upgrade.
//!
//! Every changed package appears in exactly one section, the first that applies, in the order
//! of [`Section::ALL`]: a kernel change is listed under "Reboot required" (not again under
//! "Upgrades"); its [`PackageChange::kind`] still says it is an upgrade.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a package's versions changed between the two closures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Newer version(s).
    Upgrade,
    /// Older version(s).
    Downgrade,
    /// Not in the old closure (`∅ → 1.0`).
    Added,
    /// Not in the new closure (`1.0 → ∅`).
    Removed,
    /// Same version, different store path (only the size line: `openssh: +43.9 KiB`).
    Rebuilt,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Upgrade => "upgrade",
            ChangeKind::Downgrade => "downgrade",
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Rebuilt => "rebuilt",
        }
    }
}

/// How big a version step is, from the first version component that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    /// A difference after the third component, or in a non-numeric part (`9.7p1 → 9.7p2`,
    /// `unstable-2024-01-01 → unstable-2024-02-01`).
    Other,
    /// `1.2.3 → 1.2.4`
    Patch,
    /// `1.2.3 → 1.3.0`
    Minor,
    /// `1.2.3 → 2.0.0`
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::Major => "major",
            Bump::Minor => "minor",
            Bump::Patch => "patch",
            Bump::Other => "other",
        }
    }
}

/// What a package change means for the running system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Impact {
    /// Kernel, initrd, kernel modules (confirmed by the system's boot links) or systemd.
    pub reboot: bool,
    /// A cluster service that restarts on switch: k3s, containerd, etcd, open-iscsi.
    pub service_restart: bool,
    /// Security-relevant: openssh, openssl, sudo, glibc.
    pub security: bool,
}

/// One line of `nix store diff-closures`, parsed and classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// The package name (the store path name without version).
    pub name: String,
    pub kind: ChangeKind,
    /// Versions only in the old closure (empty for added and rebuilt packages). An empty string
    /// is an empty version (nix prints `ε`).
    pub old: Vec<String>,
    /// Versions only in the new closure.
    pub new: Vec<String>,
    /// Size change in bytes as nix printed it (rounded to 0.1 of the unit); `None` when nix
    /// printed none (|Δ| < 8 KiB).
    pub size_delta: Option<i64>,
    /// For upgrades and downgrades: the step between the highest old and highest new version.
    pub bump: Option<Bump>,
    pub impact: Impact,
    /// The line as nix printed it, without colour codes.
    pub line: String,
}

impl PackageChange {
    /// `6.6.1 → 6.6.8`, `∅ → 3.3.0`, or "" for a rebuilt package.
    pub fn versions(&self) -> String {
        if self.old.is_empty() && self.new.is_empty() {
            return String::new();
        }
        format!(
            "{} → {}",
            show_versions(&self.old),
            show_versions(&self.new)
        )
    }
}

/// Versions as nix prints them: `∅` for none, `ε` for the empty version, `, ` between.
pub fn show_versions(versions: &[String]) -> String {
    if versions.is_empty() {
        return "∅".into();
    }
    let shown: Vec<&str> = versions
        .iter()
        .map(|v| if v.is_empty() { "ε" } else { v.as_str() })
        .collect();
    shown.join(", ")
}

/// The sections of the diff view and of the text output, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    RebootRequired,
    ServiceRestarts,
    Upgrades,
    Downgrades,
    Added,
    Removed,
    Rebuilt,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::RebootRequired,
        Section::ServiceRestarts,
        Section::Upgrades,
        Section::Downgrades,
        Section::Added,
        Section::Removed,
        Section::Rebuilt,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::RebootRequired => "Reboot required",
            Section::ServiceRestarts => "Service restarts",
            Section::Upgrades => "Upgrades",
            Section::Downgrades => "Downgrades",
            Section::Added => "Added",
            Section::Removed => "Removed",
            Section::Rebuilt => "Rebuilt",
        }
    }

    /// The section a change belongs to: reboot first, then service restart, then its kind.
    pub fn of(change: &PackageChange) -> Section {
        if change.impact.reboot {
            Section::RebootRequired
        } else if change.impact.service_restart {
            Section::ServiceRestarts
        } else {
            match change.kind {
                ChangeKind::Upgrade => Section::Upgrades,
                ChangeKind::Downgrade => Section::Downgrades,
                ChangeKind::Added => Section::Added,
                ChangeKind::Removed => Section::Removed,
                ChangeKind::Rebuilt => Section::Rebuilt,
            }
        }
    }
}

/// Changed packages by section; each change is in exactly one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    pub reboot_required: Vec<PackageChange>,
    pub service_restarts: Vec<PackageChange>,
    pub upgrades: Vec<PackageChange>,
    pub downgrades: Vec<PackageChange>,
    pub added: Vec<PackageChange>,
    pub removed: Vec<PackageChange>,
    pub rebuilt: Vec<PackageChange>,
}

impl Sections {
    pub fn get(&self, section: Section) -> &[PackageChange] {
        match section {
            Section::RebootRequired => &self.reboot_required,
            Section::ServiceRestarts => &self.service_restarts,
            Section::Upgrades => &self.upgrades,
            Section::Downgrades => &self.downgrades,
            Section::Added => &self.added,
            Section::Removed => &self.removed,
            Section::Rebuilt => &self.rebuilt,
        }
    }

    pub fn get_mut(&mut self, section: Section) -> &mut Vec<PackageChange> {
        match section {
            Section::RebootRequired => &mut self.reboot_required,
            Section::ServiceRestarts => &mut self.service_restarts,
            Section::Upgrades => &mut self.upgrades,
            Section::Downgrades => &mut self.downgrades,
            Section::Added => &mut self.added,
            Section::Removed => &mut self.removed,
            Section::Rebuilt => &mut self.rebuilt,
        }
    }

    /// Every change, in section order.
    pub fn iter(&self) -> impl Iterator<Item = (Section, &PackageChange)> {
        Section::ALL
            .into_iter()
            .flat_map(move |s| self.get(s).iter().map(move |c| (s, c)))
    }

    pub fn len(&self) -> usize {
        Section::ALL.iter().map(|s| self.get(*s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One of the boot links of a NixOS system (`kernel`, `initrd`, `kernel-modules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootLink {
    pub name: String,
    /// Link target in the old system; `None` when it has no such link.
    pub old: Option<String>,
    pub new: Option<String>,
}

impl BootLink {
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

/// Whether switching from the old to the new system needs a reboot, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootVerdict {
    pub required: bool,
    /// One sentence for the operator: why (not).
    pub reason: String,
    /// The boot links compared; empty when they could not be read (then the verdict rests on
    /// package names alone).
    pub boot_links: Vec<BootLink>,
}

/// Sizes and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Changed packages (lines that parsed).
    pub changes: usize,
    /// Sum of the size deltas nix printed (bytes; small deltas are not printed by nix).
    pub listed_size_delta: i64,
    /// `nix path-info -S` closure size of the old system (bytes), when known.
    pub old_closure_size: Option<u64>,
    pub new_closure_size: Option<u64>,
    /// New minus old closure size, when both are known.
    pub closure_size_delta: Option<i64>,
}

/// The classified difference between two system closures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureDiff {
    /// Store path of the old system (deployed, or built with the current lock).
    pub old_path: String,
    /// Store path of the new system (the target).
    pub new_path: String,
    pub sections: Sections,
    pub totals: Totals,
    pub reboot: RebootVerdict,
    /// Lines nix printed that we could not parse, verbatim (without colour codes).
    pub unparsed: Vec<String>,
}

impl ClosureDiff {
    /// Nothing changes: identical systems (nix prints nothing).
    pub fn is_up_to_date(&self) -> bool {
        self.old_path == self.new_path
            || (self.sections.is_empty() && self.unparsed.is_empty() && !self.reboot.required)
    }

    pub fn restarts(&self) -> impl Iterator<Item = &PackageChange> {
        self.sections
            .iter()
            .filter_map(|(_, c)| c.impact.service_restart.then_some(c))
    }

    pub fn security_relevant(&self) -> impl Iterator<Item = &PackageChange> {
        self.sections
            .iter()
            .filter_map(|(_, c)| c.impact.security.then_some(c))
    }

    /// A short badge for the Hosts pane: "up to date", "34 changes, reboot".
    pub fn badge(&self) -> String {
        if self.is_up_to_date() {
            return "up to date".into();
        }
        let n = self.totals.changes;
        let mut s = format!("{n} change{}", if n == 1 { "" } else { "s" });
        if self.reboot.required {
            s.push_str(", reboot");
        } else if !self.sections.service_restarts.is_empty() {
            s.push_str(", restarts");
        }
        s
    }
}

/// A byte count with a sign, as nix prints it: `+195.3 KiB`, `-1.2 MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedSize(pub i64);

impl fmt::Display for SignedSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "+" };
        write!(f, "{sign}{}", HumanSize(self.0.unsigned_abs()))
    }
}

/// A byte count in KiB, MiB, GiB, ... with one decimal (at least KiB, as nix does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, kind: ChangeKind, impact: Impact) -> PackageChange {
        PackageChange {
            name: name.into(),
            kind,
            old: vec!["1".into()],
            new: vec!["2".into()],
            size_delta: None,
            bump: None,
            impact,
            line: String::new(),
        }
    }

    #[test]
    fn section_of_prefers_reboot_then_restart() {
        let reboot = Impact {
            reboot: true,
            service_restart: true,
            security: false,
        };
        assert_eq!(
            Section::of(&change("linux", ChangeKind::Upgrade, reboot)),
            Section::RebootRequired
        );
        let restart = Impact {
            service_restart: true,
            ..Impact::default()
        };
        assert_eq!(
            Section::of(&change("k3s", ChangeKind::Downgrade, restart)),
            Section::ServiceRestarts
        );
        assert_eq!(
            Section::of(&change("htop", ChangeKind::Added, Impact::default())),
            Section::Added
        );
    }

    #[test]
    fn sizes_render_like_nix() {
        assert_eq!(SignedSize(200_000).to_string(), "+195.3 KiB");
        assert_eq!(SignedSize(-200_704).to_string(), "-196.0 KiB");
        assert_eq!(SignedSize(3 * 1024 * 1024).to_string(), "+3.0 MiB");
        assert_eq!(HumanSize(5 * 1024 * 1024 * 1024).to_string(), "5.0 GiB");
        assert_eq!(HumanSize(0).to_string(), "0.0 KiB");
    }

    #[test]
    fn versions_render_like_nix() {
        let mut c = change("x", ChangeKind::Upgrade, Impact::default());
        c.old = vec!["1.2".into(), "1.3".into()];
        c.new = vec!["".into()];
        assert_eq!(c.versions(), "1.2, 1.3 → ε");
        c.old.clear();
        assert_eq!(c.versions(), "∅ → ε");
        c.new.clear();
        assert_eq!(c.versions(), "");
    }

    #[test]
    fn badge_and_up_to_date() {
        let mut d = ClosureDiff {
            old_path: "/nix/store/a".into(),
            new_path: "/nix/store/b".into(),
            ..Default::default()
        };
        assert!(d.is_up_to_date());
        assert_eq!(d.badge(), "up to date");
        d.sections
            .upgrades
            .push(change("a", ChangeKind::Upgrade, Impact::default()));
        d.totals.changes = 1;
        d.reboot.required = true;
        assert_eq!(d.badge(), "1 change, reboot");
    }
}
