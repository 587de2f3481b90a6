//! What nix prints, written: the lines of `nix store diff-closures OLD NEW` for two closures
//! (Nix 2.8's algorithm: paths grouped by package name, versions only on one side, the NAR
//! size delta shown from 8 KiB, ANSI-coloured sizes, sorted by name) and the output of
//! `nix path-info -S --json` (2.8's array form). The simulator answers through these, and the
//! tests below bind them to the parsers ([`crate::operations::closure_diff::parse::parse`], `closure_diff::store`), so the
//! text the app reads in a demo is the text real nix would print.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::json;

/// One store path of a closure: its name (the store path without `/nix/store/<hash>-`) and
/// its NAR size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreItem {
    pub name: String,
    pub nar_size: u64,
}

impl StoreItem {
    pub fn new(name: impl Into<String>, nar_size: u64) -> Self {
        Self {
            name: name.into(),
            nar_size,
        }
    }
}

/// A store path name split as nix's `DrvName` does: the name runs up to the first `-` that is
/// followed by something other than a letter; the rest is the version (`linux-6.6.1` →
/// `linux`, `6.6.1`; `etc` → `etc`, ``).
pub fn drv_name(name: &str) -> (&str, &str) {
    let b = name.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'-' && b.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()) {
            return (&name[..i], &name[i + 1..]);
        }
    }
    (name, "")
}

/// The output name nix strips before grouping (`linux-6.6.1-modules` → `linux-6.6.1`):
/// diff-closures' `(.*)-([a-z]+|lib32|lib64)`.
fn strip_output(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail))
            if !head.is_empty()
                && (tail == "lib32"
                    || tail == "lib64"
                    || (!tail.is_empty() && tail.bytes().all(|c| c.is_ascii_lowercase()))) =>
        {
            head
        }
        _ => name,
    }
}

/// package name → version → total NAR size.
fn grouped(items: &[StoreItem]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for i in items {
        let (name, version) = drv_name(strip_output(&i.name));
        *out.entry(name.to_string())
            .or_default()
            .entry(version.to_string())
            .or_default() += i.nar_size;
    }
    out
}

fn show_versions(v: &BTreeSet<&str>) -> String {
    if v.is_empty() {
        return "∅".into();
    }
    v.iter()
        .map(|s| if s.is_empty() { "ε" } else { s })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The output of `nix store diff-closures` between two closures, as Nix 2.8 prints it (sizes
/// in KiB, coloured red when growing and green when shrinking, whatever the terminal).
pub fn diff_closures(before: &[StoreItem], after: &[StoreItem]) -> String {
    let (b, a) = (grouped(before), grouped(after));
    let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let empty = BTreeMap::new();
    let mut out = String::new();
    for name in names {
        let bv = b.get(name).unwrap_or(&empty);
        let av = a.get(name).unwrap_or(&empty);
        let delta = av.values().sum::<u64>() as i64 - bv.values().sum::<u64>() as i64;
        let show_delta = delta.abs() >= 8 * 1024;
        let removed: BTreeSet<&str> = bv
            .keys()
            .filter(|v| !av.contains_key(*v))
            .map(String::as_str)
            .collect();
        let added: BTreeSet<&str> = av
            .keys()
            .filter(|v| !bv.contains_key(*v))
            .map(String::as_str)
            .collect();
        if !show_delta && removed.is_empty() && added.is_empty() {
            continue;
        }
        let mut items = Vec::new();
        if !removed.is_empty() || !added.is_empty() {
            items.push(format!(
                "{} → {}",
                show_versions(&removed),
                show_versions(&added)
            ));
        }
        if show_delta {
            let colour = if delta > 0 {
                "\x1b[31;1m"
            } else {
                "\x1b[32;1m"
            };
            items.push(format!("{colour}{:+.1} KiB\x1b[0m", delta as f64 / 1024.0));
        }
        let _ = writeln!(out, "{name}: {}", items.join(", "));
    }
    out
}

/// One path for [`path_info`]: the full store path, its NAR size and its closure size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: String,
    pub nar_size: u64,
    pub closure_size: u64,
}

/// The output of `nix path-info -S --json PATHS` (Nix 2.8: an array of objects).
pub fn path_info(paths: &[PathInfo]) -> String {
    let items: Vec<serde_json::Value> = paths
        .iter()
        .map(|p| {
            json!({
                "path": p.path,
                "narSize": p.nar_size,
                "closureSize": p.closure_size,
                "valid": true,
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::closure_diff::parse::parse;

    #[test]
    fn names_split_like_nix() {
        assert_eq!(drv_name("linux-6.6.1"), ("linux", "6.6.1"));
        assert_eq!(drv_name("initrd-linux-6.6.1"), ("initrd-linux", "6.6.1"));
        assert_eq!(
            drv_name("nixos-system-node1-25.05.1"),
            ("nixos-system-node1", "25.05.1")
        );
        assert_eq!(drv_name("k3s-1.31.4+k3s1"), ("k3s", "1.31.4+k3s1"));
        assert_eq!(drv_name("etc"), ("etc", ""));
        assert_eq!(drv_name("unit-k3s.service"), ("unit-k3s.service", ""));
        assert_eq!(strip_output("linux-6.6.1-modules"), "linux-6.6.1");
        assert_eq!(strip_output("firewall-start"), "firewall");
        assert_eq!(strip_output("k3s-1.31.4+k3s1"), "k3s-1.31.4+k3s1");
    }

    #[test]
    fn rendered_diff_reads_back_through_the_parser() {
        let before = [
            StoreItem::new("linux-6.6.1", 4_000_000),
            StoreItem::new("linux-6.6.1-modules", 100_000),
            StoreItem::new("k3s-1.30.2", 1_000_000),
            StoreItem::new("openssh-9.7p1", 5_000),
            StoreItem::new("nfs-utils-2.6.4", 200_000),
            StoreItem::new("nixos-system-node1-24.05.1", 2_000),
            StoreItem::new("etc", 30_000),
        ];
        let after = [
            StoreItem::new("linux-6.6.8", 4_200_000),
            StoreItem::new("linux-6.6.8-modules", 100_000),
            StoreItem::new("k3s-1.31.0", 900_000),
            StoreItem::new("openssh-9.7p1", 50_000),
            StoreItem::new("htop-3.3.0", 300_000),
            StoreItem::new("nixos-system-node1-24.05.2", 2_100),
            StoreItem::new("etc", 31_000),
        ];
        let text = diff_closures(&before, &after);
        // Sizes are coloured the way nix colours them.
        assert!(text.contains("\x1b[31;1m+195.3 KiB\x1b[0m"), "{text:?}");
        let p = parse(&text);
        assert!(p.unparsed.is_empty(), "{:?}", p.unparsed);
        let lines: Vec<String> = p.lines.iter().map(|l| l.line.clone()).collect();
        assert_eq!(
            lines,
            [
                "htop: ∅ → 3.3.0, +293.0 KiB",
                "k3s: 1.30.2 → 1.31.0, -97.7 KiB",
                "linux: 6.6.1 → 6.6.8, +195.3 KiB",
                "nfs-utils: 2.6.4 → ∅, -195.3 KiB",
                "nixos-system-node1: 24.05.1 → 24.05.2",
                "openssh: +43.9 KiB",
            ]
        );
        assert_eq!(p.lines[2].size_delta, Some(199_987));
        assert_eq!(diff_closures(&before, &before), "");
    }

    #[test]
    fn path_info_reads_back() {
        let text = path_info(&[PathInfo {
            path: "/nix/store/a-x".into(),
            nar_size: 5,
            closure_size: 96,
        }]);
        assert_eq!(
            crate::operations::closure_diff::store::parse_path_info(&text).unwrap(),
            [("/nix/store/a-x".to_string(), 96)]
        );
    }
}
