//! The health line under the header: the whole story at every size, with and without colour.

use super::worlds::{self, app, colours, row, terminal};
use homeinfra_tui::app::health;
use homeinfra_tui::app::panes::Tone;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 35), (200, 60)];

fn lines(degraded: bool, no_color: bool) -> String {
    let a = app(degraded);
    let mut out = String::new();
    for (w, h) in SIZES {
        let t = terminal(&a, w, h, no_color);
        out.push_str(&format!("{w}x{h}\n{}\n{}\n", row(&t, 1), colours(&t, 1)));
    }
    out
}

#[test]
fn healthy_world_at_every_size() {
    insta::assert_snapshot!("health_healthy", lines(false, false));
}

#[test]
fn degraded_world_at_every_size() {
    insta::assert_snapshot!("health_degraded", lines(true, false));
}

#[test]
fn degraded_world_without_colour() {
    let text = lines(true, true);
    insta::assert_snapshot!("health_degraded_no_color", text);
    // Without colour every item still says its severity by its glyph.
    let a = app(true);
    let t = terminal(&a, 80, 24, true);
    let buf = t.backend().buffer();
    for x in 0..80 {
        assert_eq!(buf[(x, 1)].fg, ratatui::style::Color::Reset, "column {x}");
    }
    let line = row(&t, 1);
    for g in ["●", "▲"] {
        assert!(line.contains(g), "{g} in {line}");
    }
}

#[test]
fn the_items_tell_the_degraded_story() {
    let a = app(true);
    let items = health::items(&a);
    let by = |w: &str| items.iter().find(|i| i.what == w).unwrap();
    assert_eq!(by("nodes").full, "nodes 3/4 Ready (1 cordoned)");
    assert_eq!(by("nodes").tone, Tone::Critical);
    assert_eq!(by("etcd").full, "etcd 2/3 healthy, no failure tolerated");
    assert_eq!(by("etcd").tone, Tone::Warning);
    assert_eq!(
        by("volumes").full,
        "volumes 1/3 healthy (1 faulted, 1 degraded, 1 rebuilding)"
    );
    assert_eq!(by("volumes").tone, Tone::Critical);
    assert_eq!(by("alerts").full, "2 alerts firing");
    assert_eq!(by("reboot").full, "reboot needed: instance_2");
    assert_eq!(by("drift").full, "1 host drifted: satellite_1");
    assert_eq!(by("drift").short, "1 drift");
    assert_eq!(by("drift").tone, Tone::Warning);
    let healthy = health::items(&app(false));
    let drift = healthy.iter().find(|i| i.what == "drift").unwrap();
    assert_eq!(drift.full, "no host drifted");
    assert!(healthy.iter().all(|i| i.tone == Tone::Ok), "{healthy:?}");
    assert!(healthy.iter().all(|i| i.glyph() == "✓"));
}

#[test]
fn narrow_lines_drop_the_least_important_first_and_say_so() {
    let a = app(true);
    let items = health::items(&a);
    // Wide: every item, long.
    let f = health::fit(&items, 300);
    assert_eq!((f.shown.len(), f.dropped), (items.len(), 0));
    assert!(f.shown.iter().all(|(_, short)| !short));
    // 80 columns: the whole degraded story, short.
    let f = health::fit(&items, 80);
    assert_eq!(f.dropped, 0, "{f:?}");
    // Very narrow: bad news first, the rest counted by the marker.
    let f = health::fit(&items, 40);
    let dropped = f.dropped;
    assert!(dropped > 0);
    assert_eq!(f.shown.len() + dropped, items.len());
    assert!(
        f.shown.iter().all(|(i, _)| i.tone == Tone::Critical),
        "{f:?}"
    );
    let t = terminal(&a, 40, 24, false);
    let line = row(&t, 1);
    assert!(line.contains(&format!("+{dropped}…")), "{line}");
    // A healthy world keeps etcd and the nodes over the rest.
    let h = app(false);
    let items = health::items(&h);
    let f = health::fit(&items, 45);
    let whats: Vec<&str> = f.shown.iter().map(|(i, _)| i.what).collect();
    assert_eq!(whats[..2], ["etcd", "nodes"]);
    let _ = worlds::NOW;
}
