//! Parse + classify a 5,000-line `nix store diff-closures` output (target: < 10 ms).
//!
//! `cargo bench --bench main -- closure_diff`

use std::fmt::Write;
use std::hint::black_box;

use criterion::Criterion;
use homeinfra_tui::model::closure::BootLink;
use homeinfra_tui::operations::closure_diff::{classify, parse};

/// A diff as nix 2.8 prints it (ANSI-coloured sizes), with every line shape and a little
/// garbage, `lines` long.
fn synthetic_diff(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 48);
    let special = ["linux", "k3s", "systemd", "openssh", "glibc", "containerd"];
    for i in 0..lines {
        let name = match special.get(i % 500) {
            Some(s) => (*s).to_string(),
            None => format!("package-{i:05}"),
        };
        let size = |sign: &str, kib: f64| {
            let colour = if sign == "+" { "31;1" } else { "32;1" };
            format!("\x1b[{colour}m{sign}{kib:.1} KiB\x1b[0m")
        };
        let _ = match i % 10 {
            0 => writeln!(
                out,
                "{name}: 1.{}.3 → 1.{}.0, {}",
                i % 7,
                i % 7 + 1,
                size("+", 12.5)
            ),
            1 => writeln!(out, "{name}: ∅ → 2.{}.1, {}", i % 9, size("+", 293.6)),
            2 => writeln!(out, "{name}: 3.{}.4 → ∅, {}", i % 5, size("-", 196.0)),
            3 => writeln!(out, "{name}: {}", size("+", 43.9)),
            4 => writeln!(out, "{name}: 1.2, 1.3 → 1.4, {}", size("-", 8192.4)),
            5 => writeln!(out, "{name}: ε → 0.{i}"),
            6 => writeln!(
                out,
                "{name}: 2.0.{} → 1.9.9, {}",
                i % 4,
                size("-", 1.5 * 1024.0)
            ),
            7 => writeln!(out, "{name}: 24.05.{} → 24.11.{}", i % 3, i % 3),
            8 => writeln!(
                out,
                "  {name}: unstable-2024-01-0{} → unstable-2024-02-01",
                i % 9 + 1
            ),
            _ => writeln!(out, "garbage line {i} that nix never prints"),
        };
    }
    out
}

/// The closure-diff benchmarks.
pub fn bench(c: &mut Criterion) {
    let text = synthetic_diff(5_000);
    assert_eq!(text.lines().count(), 5_000);
    let links: Vec<BootLink> = ["kernel", "initrd", "kernel-modules"]
        .iter()
        .map(|n| BootLink {
            name: n.to_string(),
            old: Some(format!("/nix/store/aaaa-{n}")),
            new: Some(format!("/nix/store/bbbb-{n}")),
        })
        .collect();
    let check = classify::classify(parse::parse(&text), classify::Context::default());
    assert_eq!(check.totals.changes + check.unparsed.len(), 5_000);

    let mut g = c.benchmark_group("closure_diff");
    g.bench_function("parse+classify 5000 lines", |b| {
        b.iter(|| {
            let parsed = parse::parse(black_box(&text));
            let ctx = classify::Context {
                old_path: "/nix/store/old".into(),
                new_path: "/nix/store/new".into(),
                boot_links: Some(links.clone()),
                old_closure_size: Some(1 << 32),
                new_closure_size: Some((1 << 32) + 4096),
            };
            black_box(classify::classify(parsed, ctx))
        })
    });
    g.bench_function("parse only 5000 lines", |b| {
        b.iter(|| black_box(parse::parse(black_box(&text))))
    });
    g.finish();
}
