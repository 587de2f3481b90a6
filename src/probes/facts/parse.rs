//! The parser of the facts block: `key=value` lines between the markers, read tolerantly —
//! what cannot be read is "unknown" plus a parse issue, never an error.

use crate::model::host::{BootFiles, HostFacts};
use crate::probes::clip;

use super::posture;
use super::{BEGIN, END};

/// One value of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    /// The key was not printed.
    Missing,
    /// `?reason`: the host could not tell.
    Unknown,
    Value(&'a str),
}

/// The parsed `key=value` block (first occurrence of a key wins; repeated keys are lists).
#[derive(Debug, Default)]
pub(crate) struct Block<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Block<'a> {
    pub(crate) fn get(&self, key: &str) -> Field<'a> {
        match self.pairs.iter().find(|(k, _)| *k == key) {
            None => Field::Missing,
            Some((_, v)) if v.starts_with('?') => Field::Unknown,
            Some((_, v)) => Field::Value(v.trim()),
        }
    }

    /// The value as printed (`?reason` included); `None` when missing.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim())
    }

    pub(crate) fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub(crate) fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 's {
        self.pairs
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|k| (k, *v)))
    }
}

/// Parse the script's output. Never fails: what cannot be read is unknown and noted in
/// `parse_issues`.
pub fn parse(output: &str) -> HostFacts {
    let mut facts = HostFacts::default();
    let Some(start) = output.find(BEGIN) else {
        facts
            .parse_issues
            .push("the facts script printed no facts block".into());
        return facts;
    };
    let body = &output[start + BEGIN.len()..];
    let body = match body.find(END) {
        Some(end) => &body[..end],
        None => {
            facts
                .parse_issues
                .push("the facts output was cut short (no end marker)".into());
            body
        }
    };
    let mut block = Block::default();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                block.pairs.push((k, v))
            }
            _ => facts.parse_issues.push(format!(
                "unreadable line in the facts output: {}",
                clip(line)
            )),
        }
    }
    fill(&block, &mut facts);
    facts
}

fn fill(b: &Block<'_>, f: &mut HostFacts) {
    let mut issues = Vec::new();
    {
        let mut text = |key: &str| -> Option<String> {
            match b.get(key) {
                Field::Missing => {
                    issues.push(format!("missing field {key}"));
                    None
                }
                Field::Unknown => None,
                Field::Value("") => None,
                Field::Value(v) => Some(v.to_string()),
            }
        };
        f.privileged = text("privileged").map(|v| v == "yes");
        f.hostname = text("hostname");
        f.nixos_version = text("nixos_version");
        f.current_system = text("current_system");
        f.booted_system = text("booted_system");
        f.current_boot = BootFiles {
            kernel: text("current.kernel"),
            initrd: text("current.initrd"),
            kernel_modules: text("current.kernel-modules"),
        };
        f.booted_boot = BootFiles {
            kernel: text("booted.kernel"),
            initrd: text("booted.initrd"),
            kernel_modules: text("booted.kernel-modules"),
        };
        f.k3s_state = text("k3s_state");
        f.upgrade_last_result = text("upgrade_result");
        f.upgrade_last_run = text("upgrade_last_run").filter(|v| v != "n/a");
        f.boot_loader = text("bootloader");
        f.grubenv = text("bootloader.grubenv").map(|v| v == "yes");
    }
    let parsed = |key: &str, issues: &mut Vec<String>| -> Option<String> {
        match b.get(key) {
            Field::Missing => {
                issues.push(format!("missing field {key}"));
                None
            }
            Field::Unknown | Field::Value("") | Field::Value("n/a") => None,
            Field::Value(v) => Some(v.to_string()),
        }
    };
    let garbled = |key: &str, v: &str| format!("unreadable {key}: {}", clip(v));

    if let Some(v) = parsed("system_profile", &mut issues) {
        match parse_generation(&v) {
            Some(g) => f.generation = Some(g),
            None => issues.push(garbled("system_profile", &v)),
        }
    }
    if let Some(v) = parsed("uptime", &mut issues) {
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => f.uptime_secs = Some(s as u64),
            _ => issues.push(garbled("uptime", &v)),
        }
    }
    if let Some(v) = parsed("load", &mut issues) {
        let nums: Vec<f64> = v
            .split_whitespace()
            .filter_map(|x| x.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
            .collect();
        match nums.as_slice() {
            [a, b, c] if v.split_whitespace().count() == 3 => f.load = Some([*a, *b, *c]),
            _ => issues.push(garbled("load", &v)),
        }
    }
    if let Some(v) = parsed("root_fs_used", &mut issues) {
        match v.trim_end_matches('%').parse::<f64>() {
            Ok(p) if v.ends_with('%') && (0.0..=100.0).contains(&p) => f.root_fs_used_pct = Some(p),
            _ => issues.push(garbled("root_fs_used", &v)),
        }
    }
    match b.get("failed_units") {
        Field::Missing => issues.push("missing field failed_units".into()),
        Field::Unknown => {}
        Field::Value(v) => {
            f.failed_units = Some(v.split_whitespace().map(str::to_string).collect());
        }
    }
    if let Some(v) = parsed("upgrade_next_run", &mut issues) {
        match parse_systemd_time(&v) {
            Some(t) => f.upgrade_next_run = Some(t),
            None => issues.push(garbled("upgrade_next_run", &v)),
        }
    }
    posture::fill(b, &mut f.posture, &mut issues);
    f.compute_reboot_needed();
    f.parse_issues.extend(issues);
}

/// `system-42-link` → 42.
pub(super) fn parse_generation(v: &str) -> Option<u64> {
    let name = v.rsplit('/').next()?;
    name.strip_prefix("system-")?
        .strip_suffix("-link")?
        .parse()
        .ok()
}

/// `@1732680000` (systemd `--timestamp=unix`) → RFC 3339; other non-empty text is kept as
/// systemd printed it (older systemd). `n/a`/empty → unknown (no next run).
pub(super) fn parse_systemd_time(v: &str) -> Option<String> {
    let v = v.trim();
    if let Some(secs) = v.strip_prefix('@') {
        let secs: i64 = secs.parse().ok()?;
        return jiff::Timestamp::from_second(secs)
            .ok()
            .map(|t| t.to_string());
    }
    // Older systemd prints e.g. "Fri 2026-11-27 04:00:00 UTC".
    let looks_like_date = v.split_whitespace().any(|w| {
        let parts: Vec<&str> = w.split('-').collect();
        parts.len() == 3 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
    });
    looks_like_date.then(|| v.to_string())
}
