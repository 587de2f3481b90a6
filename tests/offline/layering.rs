//! The layers hold: a table says which top-level module of `src/` may import which, and a
//! test fails on any import edge the table does not allow (a new backward edge). Only the
//! drawing layers may use the terminal crates.
//!
//! Read from the source text: `crate::NAME` paths and `use crate::{NAME, ...}` groups, with
//! comments, `#[cfg(test)]` modules, test-only files and the `test-util` code left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the modules it may import. Lower layers first.
const ALLOWED: &[(&str, &[&str])] = &[
    // Leaves.
    ("paths", &[]),
    ("inventory", &[]),
    ("cli", &[]),
    ("config", &["paths"]),
    ("logging", &["paths"]),
    // What every layer may use.
    ("base", &["config", "inventory"]),
    // Pure data and rules.
    ("model", &["base", "config", "inventory"]),
    // Remote commands: text, parser, renderer.
    ("probes", &["base", "config", "inventory", "model"]),
    // I/O that reads.
    (
        "sources",
        &["base", "config", "inventory", "model", "paths", "probes"],
    ),
    // The simulated homelab: it serves the protocols, it never uses the app's clients.
    ("sim", &["base", "config", "inventory", "model", "probes"]),
    // Long operations.
    (
        "operations",
        &[
            "base",
            "config",
            "inventory",
            "model",
            "paths",
            "probes",
            "sources",
        ],
    ),
    // The dashboard's task registry: runs operations and sources, answers with messages.
    (
        "tasks",
        &[
            "base",
            "config",
            "inventory",
            "model",
            "operations",
            "paths",
            "probes",
            "sources",
        ],
    ),
    // State and keys.
    (
        "app",
        &[
            "base",
            "config",
            "inventory",
            "model",
            "operations",
            "probes",
            "sources",
            "tasks",
        ],
    ),
    // Drawing.
    (
        "ui",
        &[
            "app",
            "base",
            "config",
            "inventory",
            "model",
            "operations",
            "paths",
            "probes",
        ],
    ),
    // The event loop.
    ("tui", &["app", "base", "config", "tasks", "ui"]),
    // Front-ends: anything but each other's internals (the only module `main` calls).
    (
        "commands",
        &[
            "app",
            "base",
            "cli",
            "config",
            "inventory",
            "logging",
            "model",
            "operations",
            "paths",
            "probes",
            "sim",
            "sources",
            "tasks",
            "tui",
            "ui",
        ],
    ),
];

/// Modules only tests build (`#[cfg(any(test, feature = "test-util"))]`).
const TEST_ONLY: &[&str] = &["testing", "operations/upgrade/fake"];

/// Where the terminal crates may be used.
const DRAWING: &[&str] = &["app", "ui", "tui", "commands/dashboard.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`, e.g. `operations/upgrade/guards.rs`.
fn rel(p: &Path) -> String {
    p.strip_prefix(src())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn top_of(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn test_only(rel: &str) -> bool {
    rel.ends_with("/tests.rs")
        || rel.contains("/tests/")
        || TEST_ONLY
            .iter()
            .any(|t| rel == format!("{t}.rs") || rel.starts_with(&format!("{t}/")))
}

/// The code of a file that ships: comments removed, and everything from a `#[cfg(test)]`
/// module on (test modules sit at the end of our files; a test-only item elsewhere is kept,
/// so it can only make the check stricter).
fn shipping_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let cfg_test = t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(any(test");
        if cfg_test
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            Some(_) | None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every top-level module a piece of code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a::b, c, d::{e, f}}`: the first name of each top-level entry.
            let mut depth = 0usize;
            let mut entry_start = true;
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[j..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => entry_start = true,
                    c if entry_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[j..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.insert(name);
                        entry_start = false;
                    }
                    _ => {}
                }
            }
            if !rest.starts_with('}') {
                break;
            }
            continue;
        }
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = after;
    }
    out
}

fn shipping_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let r = rel(&p);
            if r == "lib.rs" || r == "main.rs" || test_only(&r) {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            Some((r, shipping_code(&text)))
        })
        .collect()
}

#[test]
fn every_import_edge_is_allowed_by_the_table() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let files = shipping_files();
    assert!(
        files.len() > 100,
        "expected the whole tree, found {}",
        files.len()
    );
    let mut offenders = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for (rel, code) in &files {
        let top = top_of(rel);
        seen_modules.insert(top.to_string());
        let Some(ok) = allowed.get(top) else {
            offenders.push(format!(
                "{rel}: module `{top}` is not in the layering table (tests/offline/layering.rs)"
            ));
            continue;
        };
        for dep in imports(code) {
            if dep == top || dep == "self" || dep == "super" {
                continue;
            }
            if TEST_ONLY.contains(&dep.as_str()) {
                offenders.push(format!("{rel}: ships code that uses test-only `{dep}`"));
            } else if !ok.contains(dep.as_str()) {
                offenders.push(format!("{rel}: `{top}` may not import `{dep}`"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "import edges the layering table does not allow:\n{}",
        offenders.join("\n")
    );
    // The table names no module that is gone.
    for (m, _) in ALLOWED {
        assert!(
            seen_modules.contains(*m),
            "the table names `{m}`, which has no file"
        );
    }
}

#[test]
fn only_the_drawing_layers_use_terminal_crates() {
    let mut offenders = Vec::new();
    for (rel, code) in shipping_files() {
        let drawing = DRAWING
            .iter()
            .any(|d| rel == *d || top_of(&rel) == *d || rel.starts_with(&format!("{d}/")));
        if drawing {
            continue;
        }
        for (i, line) in code.lines().enumerate() {
            if line.contains("ratatui") || line.contains("crossterm") {
                offenders.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "terminal crates outside app/ui/tui/commands::dashboard:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_and_paths() {
    let code = "use crate::{a::b, c, d::{e, f}};\nlet x = crate::g::h();\n// crate::comment\n";
    let got = imports(&shipping_code(code));
    let want: BTreeSet<String> = ["a", "c", "d", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
    let cut = shipping_code("use crate::x;\n#[cfg(test)]\nmod tests {\n use crate::y;\n}\n");
    assert_eq!(imports(&cut), ["x".to_string()].into_iter().collect());
}

/// The write capability is made in exactly one place of the release build: `commands::load`,
/// from `--read-only` (STYLE.md rule 12). `testing.rs` (the `test-util` feature, never in the
/// release build) and the capability's own module are the only other mentions allowed.
#[test]
fn the_write_capability_is_made_in_one_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut callers = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unless_read_only(") {
                callers.push(format!("{rel}:{}", i + 1));
            }
        }
    }
    let release: Vec<&String> = callers
        .iter()
        .filter(|c| !c.starts_with("testing.rs:") && !c.starts_with("base/write.rs:"))
        .collect();
    assert_eq!(
        release.len(),
        1,
        "the write capability must be made only in commands/mod.rs: {callers:?}"
    );
    assert!(release[0].starts_with("commands/mod.rs:"), "{callers:?}");
    // Writers are built only from it: their constructors take `&Writes`.
    for (file, needle) in [
        (
            "operations/upgrade/live/cluster.rs",
            "pub fn new(_writes: &Writes, client: kube::Client)",
        ),
        (
            "operations/upgrade/live/hosts.rs",
            "pub fn new(writes: &Writes, ssh: Arc<HostsClient>)",
        ),
        (
            "operations/upgrade/journal.rs",
            "pub fn open(_writes: &Writes, dir: &Path, run_id: &str)",
        ),
        ("sources/ssh/mod.rs", "_writes: &crate::base::Writes,"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.contains(needle),
            "{file} must take the capability: {needle}"
        );
    }
}
