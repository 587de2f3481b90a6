//! Plain-text rendering of a [`ClosureDiff`] for the CLI and the view's export (`e`).

use std::fmt::Write;

use crate::model::closure::{
    Bump, ChangeKind, ClosureDiff, HumanSize, PackageChange, Section, SignedSize,
};

fn paint(colour: bool, code: &str, s: &str) -> String {
    if colour && !code.is_empty() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn bump_colour(bump: Option<Bump>) -> &'static str {
    match bump {
        Some(Bump::Major) => "1;31",
        Some(Bump::Minor) => "33",
        Some(Bump::Patch) => "32",
        Some(Bump::Other) | None => "",
    }
}

fn versions_column(c: &PackageChange) -> String {
    match c.kind {
        ChangeKind::Rebuilt => "(rebuilt, same version)".to_string(),
        _ => c.versions(),
    }
}

fn notes(c: &PackageChange) -> String {
    let mut n = Vec::new();
    if let Some(b) = c.bump {
        n.push(b.as_str());
    }
    if c.impact.reboot || c.impact.service_restart {
        // The section already says reboot/restart; say what the version step was.
        if c.kind == ChangeKind::Downgrade {
            n.push("downgrade");
        }
    }
    if c.impact.security {
        n.push("security");
    }
    n.join(", ")
}

/// The whole diff as text: header, verdict, sections (old → new, bump, size), unparsed lines,
/// totals. `colour` adds ANSI colours (terminal output only).
pub fn to_text(diff: &ClosureDiff, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "old: {}", diff.old_path);
    let _ = writeln!(out, "new: {}", diff.new_path);
    if diff.is_up_to_date() {
        let _ = writeln!(out, "{}: no changes", paint(colour, "1;32", "UP TO DATE"));
        return out;
    }
    out.push('\n');

    let name_w = diff
        .sections
        .iter()
        .map(|(_, c)| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let ver_w = diff
        .sections
        .iter()
        .map(|(_, c)| versions_column(c).chars().count())
        .max()
        .unwrap_or(0);
    for section in Section::ALL {
        let changes = diff.sections.get(section);
        if changes.is_empty() {
            continue;
        }
        let title_colour = match section {
            Section::RebootRequired => "1;31",
            Section::ServiceRestarts => "1;33",
            _ => "1",
        };
        let _ = writeln!(
            out,
            "{}",
            paint(
                colour,
                title_colour,
                &format!("{} ({})", section.title(), changes.len())
            )
        );
        for c in changes {
            let versions = format!("{:<ver_w$}", versions_column(c));
            let size = c
                .size_delta
                .map(|s| SignedSize(s).to_string())
                .unwrap_or_default();
            let line = format!(
                "  {:<name_w$}  {}  {:>11}  {}",
                c.name,
                paint(colour, bump_colour(c.bump), &versions),
                size,
                notes(c)
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if !diff.unparsed.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                colour,
                "1;35",
                &format!("Unparsed lines ({})", diff.unparsed.len())
            )
        );
        for l in &diff.unparsed {
            let _ = writeln!(out, "  {l}");
        }
    }
    out.push('\n');
    let t = &diff.totals;
    let mut totals = format!(
        "{} change{}",
        t.changes,
        if t.changes == 1 { "" } else { "s" }
    );
    if let (Some(a), Some(b), Some(d)) =
        (t.old_closure_size, t.new_closure_size, t.closure_size_delta)
    {
        let _ = write!(
            totals,
            "; closure {} → {} ({})",
            HumanSize(a),
            HumanSize(b),
            SignedSize(d)
        );
    }
    if t.listed_size_delta != 0 {
        let _ = write!(
            totals,
            "; listed size changes {}",
            SignedSize(t.listed_size_delta)
        );
    }
    let _ = writeln!(out, "{totals}");
    let verdict = if diff.reboot.required {
        paint(colour, "1;31", "REBOOT REQUIRED")
    } else {
        paint(colour, "1;32", "no reboot")
    };
    // The reason may say "no reboot: ..." itself.
    let reason = diff.reboot.reason.trim_start_matches("no reboot: ");
    let _ = writeln!(out, "{verdict}: {reason}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::closure::BootLink;
    use crate::operations::closure_diff::classify::{self, Context};
    use crate::operations::closure_diff::parse::parse;

    #[test]
    fn text_has_sections_sizes_totals_and_verdict() {
        let out = "htop: ∅ → 3.3.0, +293.6 KiB\nk3s: 1.30.2 → 1.31.0, -97.7 KiB\n\
                   linux: 6.6.1 → 6.6.8, +195.3 KiB\nopenssh: +43.9 KiB\nbroken line\n";
        let ctx = Context {
            old_path: "/nix/store/o".into(),
            new_path: "/nix/store/n".into(),
            boot_links: Some(vec![BootLink {
                name: "kernel".into(),
                old: Some("/nix/store/k1".into()),
                new: Some("/nix/store/k2".into()),
            }]),
            old_closure_size: Some(5 * 1024 * 1024),
            new_closure_size: Some(5 * 1024 * 1024 + 445 * 1024),
        };
        let text = to_text(&classify::classify(parse(out), ctx), false);
        assert_eq!(
            text,
            "old: /nix/store/o\nnew: /nix/store/n\n\n\
             Reboot required (1)\n  linux    6.6.1 → 6.6.8             +195.3 KiB  patch\n\
             Service restarts (1)\n  k3s      1.30.2 → 1.31.0            -97.7 KiB  minor\n\
             Added (1)\n  htop     ∅ → 3.3.0                 +293.6 KiB\n\
             Rebuilt (1)\n  openssh  (rebuilt, same version)    +43.9 KiB  security\n\
             Unparsed lines (1)\n  broken line\n\n\
             4 changes; closure 5.0 MiB → 5.4 MiB (+445.0 KiB); listed size changes +435.1 KiB\n\
             REBOOT REQUIRED: kernel changed\n"
        );
    }

    #[test]
    fn up_to_date_text() {
        let d = ClosureDiff {
            old_path: "/nix/store/x".into(),
            new_path: "/nix/store/x".into(),
            ..Default::default()
        };
        assert_eq!(
            to_text(&d, false),
            "old: /nix/store/x\nnew: /nix/store/x\nUP TO DATE: no changes\n"
        );
        assert!(to_text(&d, true).contains("\x1b[1;32mUP TO DATE\x1b[0m"));
    }
}
