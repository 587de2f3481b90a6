//! Classification of parsed diff lines: upgrade or downgrade and how big a step, reboot,
//! service restart and security relevance, the reboot verdict and the totals.

use std::cmp::Ordering;

use crate::model::closure::{
    BootLink, Bump, ChangeKind, ClosureDiff, Impact, PackageChange, RebootVerdict, Section, Totals,
};

use super::parse::{ParsedDiff, ParsedLine};

/// The symlinks of a NixOS system that decide whether a switch needs a reboot.
pub const BOOT_LINKS: [&str; 3] = ["kernel", "initrd", "kernel-modules"];

/// Services that restart when their package changes (k3s embeds etcd; open-iscsi is Longhorn's).
pub const RESTART_PACKAGES: &[&str] = &["k3s", "containerd", "etcd", "openiscsi", "open-iscsi"];

/// Security-relevant packages.
pub const SECURITY_PACKAGES: &[&str] = &["openssh", "openssl", "sudo", "glibc"];

/// Packages that start with `linux-` but are not the kernel.
const NOT_KERNEL: &[&str] = &[
    "linux-pam",
    "linux-headers",
    "linux-api-headers",
    "linux-firmware",
];

/// The kernel, its modules or the initrd (by package name).
pub fn is_kernel_package(name: &str) -> bool {
    matches!(
        name,
        "linux" | "initrd" | "initrd-linux" | "kernel-modules" | "kernel-modules-shrunk"
    ) || (name.starts_with("linux-") && !NOT_KERNEL.contains(&name))
}

/// systemd itself (PID 1 is only replaced by a reboot), and its variants.
pub fn is_systemd_package(name: &str) -> bool {
    name == "systemd" || name.starts_with("systemd-")
}

/// What we know besides the diff lines.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub old_path: String,
    pub new_path: String,
    /// The boot links of both systems; `None` when they could not be read.
    pub boot_links: Option<Vec<BootLink>>,
    pub old_closure_size: Option<u64>,
    pub new_closure_size: Option<u64>,
}

/// Turn parsed lines into the classified, sectioned result.
pub fn classify(parsed: ParsedDiff, ctx: Context) -> ClosureDiff {
    let links = ctx
        .boot_links
        .filter(|l| l.iter().any(|b| b.old.is_some() || b.new.is_some()));
    let changed_links: Vec<&BootLink> = links.iter().flatten().filter(|b| b.changed()).collect();
    // With boot links, they decide for the kernel; without, the package names do.
    let kernel_reboot = links.as_ref().map(|_| !changed_links.is_empty());

    let mut diff = ClosureDiff {
        old_path: ctx.old_path,
        new_path: ctx.new_path,
        unparsed: parsed.unparsed,
        ..Default::default()
    };
    let mut kernel_pkgs = Vec::new();
    let mut systemd_pkgs = Vec::new();
    for line in parsed.lines {
        let kernel = is_kernel_package(&line.name);
        let systemd = is_systemd_package(&line.name);
        if kernel {
            kernel_pkgs.push(line.name.clone());
        }
        if systemd {
            systemd_pkgs.push(line.name.clone());
        }
        let impact = Impact {
            reboot: systemd || (kernel && kernel_reboot.unwrap_or(true)),
            service_restart: RESTART_PACKAGES.contains(&line.name.as_str()),
            security: SECURITY_PACKAGES.contains(&line.name.as_str()),
        };
        let change = to_change(line, impact);
        // Saturating: hostile or corrupt input can list sizes near the limits of i64.
        diff.totals.listed_size_delta = diff
            .totals
            .listed_size_delta
            .saturating_add(change.size_delta.unwrap_or(0));
        diff.totals.changes += 1;
        diff.sections.get_mut(Section::of(&change)).push(change);
    }

    let mut reasons = Vec::new();
    if !changed_links.is_empty() {
        let names: Vec<&str> = changed_links.iter().map(|b| b.name.as_str()).collect();
        reasons.push(format!("{} changed", names.join(", ")));
    } else if links.is_none() && !kernel_pkgs.is_empty() {
        reasons.push(format!(
            "{} changed (boot links not compared)",
            kernel_pkgs.join(", ")
        ));
    }
    if !systemd_pkgs.is_empty() {
        reasons.push(format!("{} changed", systemd_pkgs.join(", ")));
    }
    let required = !reasons.is_empty();
    let reason = if required {
        reasons.join("; ")
    } else if diff.sections.is_empty() && diff.unparsed.is_empty() {
        "up to date".to_string()
    } else if !kernel_pkgs.is_empty() {
        format!(
            "no reboot: {} changed but the kernel, initrd and kernel-modules links are the same",
            kernel_pkgs.join(", ")
        )
    } else {
        "no reboot: kernel, initrd, kernel modules and systemd are unchanged".to_string()
    };
    diff.reboot = RebootVerdict {
        required,
        reason,
        boot_links: links.unwrap_or_default(),
    };
    diff.totals = Totals {
        old_closure_size: ctx.old_closure_size,
        new_closure_size: ctx.new_closure_size,
        closure_size_delta: match (ctx.old_closure_size, ctx.new_closure_size) {
            (Some(a), Some(b)) => Some(b as i64 - a as i64),
            _ => None,
        },
        ..diff.totals
    };
    diff
}

fn to_change(line: ParsedLine, impact: Impact) -> PackageChange {
    let (kind, bump) = match (line.old.is_empty(), line.new.is_empty()) {
        (true, true) => (ChangeKind::Rebuilt, None),
        (true, false) => (ChangeKind::Added, None),
        (false, true) => (ChangeKind::Removed, None),
        (false, false) => {
            let old = highest(&line.old);
            let new = highest(&line.new);
            let kind = if compare_versions(new, old) == Ordering::Less {
                ChangeKind::Downgrade
            } else {
                ChangeKind::Upgrade
            };
            (kind, Some(bump(old, new)))
        }
    };
    PackageChange {
        name: line.name,
        kind,
        old: line.old,
        new: line.new,
        size_delta: line.size_delta,
        bump,
        impact,
        line: line.line,
    }
}

fn highest(versions: &[String]) -> &str {
    versions
        .iter()
        .max_by(|a, b| compare_versions(a, b))
        .map_or("", |s| s.as_str())
}

/// The components of a version as Nix splits them: runs of digits or of other characters,
/// separated by `.` and `-`.
pub fn components(version: &str) -> impl Iterator<Item = &str> {
    let mut rest = version;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(['.', '-']);
        if rest.is_empty() {
            return None;
        }
        let digits = rest.as_bytes()[0].is_ascii_digit();
        let end = rest
            .char_indices()
            .find(|&(_, c)| c == '.' || c == '-' || c.is_ascii_digit() != digits)
            .map_or(rest.len(), |(i, _)| i);
        let (head, tail) = rest.split_at(end);
        rest = tail;
        Some(head)
    })
}

fn is_number(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())
}

fn compare_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Nix's `componentsLT`: numbers numerically; a missing component is less than a number;
/// `pre` is less than anything; `2.3a < 2.3.1`; other strings lexicographically.
fn component_lt(c1: &str, c2: &str) -> bool {
    let (n1, n2) = (is_number(c1), is_number(c2));
    if n1 && n2 {
        compare_numbers(c1, c2) == Ordering::Less
    } else if (c1.is_empty() && n2) || (c1 == "pre" && c2 != "pre") {
        true
    } else if c2 == "pre" {
        false
    } else if n2 {
        true
    } else if n1 {
        false
    } else {
        c1 < c2
    }
}

/// Compare two versions the way Nix does (`nix-env --compare-versions`).
pub fn compare_versions(v1: &str, v2: &str) -> Ordering {
    let mut a = components(v1);
    let mut b = components(v2);
    loop {
        let (c1, c2) = (a.next(), b.next());
        if c1.is_none() && c2.is_none() {
            return Ordering::Equal;
        }
        let (c1, c2) = (c1.unwrap_or(""), c2.unwrap_or(""));
        if component_lt(c1, c2) {
            return Ordering::Less;
        }
        if component_lt(c2, c1) {
            return Ordering::Greater;
        }
    }
}

/// How big the step from `old` to `new` is: the position of the first component that differs
/// (major, minor, patch); `Other` beyond, for non-numeric differences, and for date-like or
/// non-numeric versions (`2024-01-01`, `unstable-...`).
pub fn bump(old: &str, new: &str) -> Bump {
    let plain_number_first = |v: &str| {
        components(v)
            .next()
            .is_some_and(|f| is_number(f) && f.len() < 4)
    };
    if !plain_number_first(old) || !plain_number_first(new) {
        return Bump::Other;
    }
    let (mut a, mut b) = (components(old), components(new));
    for i in 0.. {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        let same = match (x, y) {
            (Some(x), Some(y)) if is_number(x) && is_number(y) => {
                compare_numbers(x, y) == Ordering::Equal
            }
            (x, y) => x == y,
        };
        if same {
            continue;
        }
        let numeric = x.is_none_or(is_number) && y.is_none_or(is_number);
        return match i {
            _ if !numeric => Bump::Other,
            0 => Bump::Major,
            1 => Bump::Minor,
            2 => Bump::Patch,
            _ => Bump::Other,
        };
    }
    Bump::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::closure_diff::parse::parse;

    #[test]
    fn versions_compare_like_nix() {
        use Ordering::*;
        for (a, b, o) in [
            ("1.0", "2.3", Less),
            ("2.1", "2.3", Less),
            ("2.3", "2.3", Equal),
            ("2.5", "2.3", Greater),
            ("3.1", "2.3", Greater),
            ("2.3.1", "2.3", Greater),
            ("2.3.1", "2.3a", Greater),
            ("2.3pre1", "2.3", Less),
            ("2.3pre3", "2.3pre12", Less),
            ("2.3a", "2.3c", Less),
            ("2.3pre1", "2.3c", Less),
            ("2.3pre1", "2.3q", Less),
            ("6.6.1-modules", "6.6.8-modules", Less),
            ("6.6.1", "6.6.1-modules", Less),
            ("10", "9", Greater),
            ("007", "7", Equal),
            ("99999999999999999999999", "100000000000000000000000", Less),
            ("", "1.0", Less),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn bump_sizes() {
        assert_eq!(bump("6.6.1", "6.6.8"), Bump::Patch);
        assert_eq!(bump("1.30.2", "1.31.0"), Bump::Minor);
        assert_eq!(bump("1.30.2", "2.0"), Bump::Major);
        assert_eq!(bump("9.7p1", "9.8p1"), Bump::Minor);
        assert_eq!(bump("9.7p1", "9.7p2"), Bump::Other);
        assert_eq!(bump("1.2.3.4", "1.2.3.5"), Bump::Other);
        assert_eq!(bump("1.2", "1.2.1"), Bump::Patch);
        assert_eq!(bump("2024-01-01", "2024-02-01"), Bump::Other);
        assert_eq!(
            bump("unstable-2024-01-01", "unstable-2024-02-01"),
            Bump::Other
        );
        assert_eq!(bump("", "1.0"), Bump::Other);
        assert_eq!(bump("1.0rc1", "1.0"), Bump::Other);
    }

    fn links(kernel_changed: bool) -> Option<Vec<BootLink>> {
        Some(
            BOOT_LINKS
                .iter()
                .map(|n| BootLink {
                    name: n.to_string(),
                    old: Some(format!("/nix/store/a-{n}")),
                    new: Some(if kernel_changed && *n == "kernel" {
                        format!("/nix/store/b-{n}")
                    } else {
                        format!("/nix/store/a-{n}")
                    }),
                })
                .collect(),
        )
    }

    const SAMPLE: &str = "htop: ∅ → 3.3.0, +293.6 KiB\n\
        k3s: 1.30.2 → 1.31.0, -97.7 KiB\n\
        linux: 6.6.1 → 6.6.8, +195.3 KiB\n\
        nfs-utils: 2.6.4 → ∅, -196.0 KiB\n\
        nixos-system-node1: 24.05.1 → 24.05.2\n\
        openssh: +43.9 KiB\n\
        zlib: 1.3.1 → 1.2.13\n\
        what is this\n";

    fn names(c: &[PackageChange]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn sample_is_sectioned_and_confirmed_by_links() {
        let ctx = Context {
            old_path: "/nix/store/old".into(),
            new_path: "/nix/store/new".into(),
            boot_links: links(true),
            old_closure_size: Some(5_000_000),
            new_closure_size: Some(5_200_000),
        };
        let d = classify(parse(SAMPLE), ctx);
        let s = &d.sections;
        assert_eq!(names(&s.reboot_required), ["linux"]);
        assert_eq!(names(&s.service_restarts), ["k3s"]);
        assert_eq!(names(&s.upgrades), ["nixos-system-node1"]);
        assert_eq!(names(&s.downgrades), ["zlib"]);
        assert_eq!(names(&s.added), ["htop"]);
        assert_eq!(names(&s.removed), ["nfs-utils"]);
        assert_eq!(names(&s.rebuilt), ["openssh"]);
        assert!(s.rebuilt[0].impact.security);
        assert_eq!(s.reboot_required[0].kind, ChangeKind::Upgrade);
        assert_eq!(s.reboot_required[0].bump, Some(Bump::Patch));
        assert_eq!(s.service_restarts[0].bump, Some(Bump::Minor));
        assert_eq!(d.unparsed, ["what is this"]);
        assert!(d.reboot.required);
        assert_eq!(d.reboot.reason, "kernel changed");
        assert_eq!(d.totals.changes, 7);
        assert_eq!(d.totals.closure_size_delta, Some(200_000));
        assert_eq!(
            d.totals.listed_size_delta,
            300_646 - 100_045 + 199_987 - 200_704 + 44_954
        );
        assert!(!d.is_up_to_date());
        assert_eq!(d.badge(), "7 changes, reboot");
        assert_eq!(d.security_relevant().count(), 1);
    }

    #[test]
    fn kernel_package_without_link_change_needs_no_reboot() {
        let ctx = Context {
            boot_links: links(false),
            ..Default::default()
        };
        let d = classify(parse("linux: 6.6.1 → 6.6.8\n"), ctx);
        assert!(!d.reboot.required);
        assert!(
            d.reboot.reason.contains("links are the same"),
            "{}",
            d.reboot.reason
        );
        assert_eq!(names(&d.sections.upgrades), ["linux"]);
    }

    #[test]
    fn without_links_the_package_names_decide() {
        let d = classify(parse("linux: 6.6.1 → 6.6.8\n"), Context::default());
        assert!(d.reboot.required);
        assert!(d.reboot.reason.contains("not compared"));
        assert!(d.reboot.boot_links.is_empty());
        // Links that exist on neither side count as "could not read".
        let none = Some(
            BOOT_LINKS
                .iter()
                .map(|n| BootLink {
                    name: n.to_string(),
                    old: None,
                    new: None,
                })
                .collect(),
        );
        let ctx = Context {
            boot_links: none,
            ..Default::default()
        };
        assert!(
            classify(parse("linux: 6.6.1 → 6.6.8\n"), ctx)
                .reboot
                .required
        );
    }

    #[test]
    fn systemd_needs_reboot_and_links_alone_too() {
        let d = classify(
            parse("systemd: 255.4 → 256.1, +1.0 MiB\n"),
            Context {
                boot_links: links(false),
                ..Default::default()
            },
        );
        assert!(d.reboot.required);
        assert_eq!(d.reboot.reason, "systemd changed");
        assert_eq!(names(&d.sections.reboot_required), ["systemd"]);
        // An initrd rebuilt with the same versions: no line names the kernel, the link decides.
        let d = classify(
            parse("nixos-system-node1: 24.05.1 → 24.05.2\n"),
            Context {
                boot_links: links(true),
                ..Default::default()
            },
        );
        assert!(d.reboot.required);
    }

    #[test]
    fn empty_diff_is_up_to_date() {
        let d = classify(
            parse(""),
            Context {
                old_path: "/nix/store/x".into(),
                new_path: "/nix/store/x".into(),
                boot_links: links(false),
                ..Default::default()
            },
        );
        assert!(d.is_up_to_date());
        assert!(!d.reboot.required);
        assert_eq!(d.reboot.reason, "up to date");
        assert_eq!(d.badge(), "up to date");
    }

    #[test]
    fn kernel_and_service_names() {
        for k in ["linux", "linux-hardened", "initrd-linux", "kernel-modules"] {
            assert!(is_kernel_package(k), "{k}");
        }
        for k in [
            "linux-pam",
            "util-linux",
            "linux-headers",
            "firmware-linux-nonfree",
        ] {
            assert!(!is_kernel_package(k), "{k}");
        }
        assert!(is_systemd_package("systemd-minimal") && !is_systemd_package("systemdd"));
    }
}
