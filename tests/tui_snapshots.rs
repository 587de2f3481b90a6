//! The dashboard drawn into ratatui's TestBackend at 80×24 and 200×60, snapshotted with insta.
//! The clock is injected, so snapshots are stable.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use homeinfra_tui::app::{App, Keymap, Msg};
use homeinfra_tui::config::Config;
use homeinfra_tui::model::Snapshot;
use homeinfra_tui::model::Sourced;
use homeinfra_tui::ui::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn app() -> App {
    let text = std::fs::read_to_string("hosts.json").unwrap();
    let inv = homeinfra_tui::inventory::parse(Path::new("hosts.json"), &text).unwrap();
    let off = |n: &str| format!("{n}: offline (--offline) — no network");
    let snap = Snapshot {
        cluster: Sourced::not_configured(off("Kubernetes")),
        etcd: Sourced::not_configured(off("etcd")),
        mimir: Sourced::not_configured("Mimir: not configured — set [mimir] url"),
        loki: Sourced::not_configured("Loki: not configured — set [loki] url"),
        hosts: Default::default(),
    };
    let mut app = App::new(
        inv,
        Config::default(),
        Keymap::default(),
        snap,
        "offline".into(),
        true,
        jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    );
    app.tz = jiff::tz::TimeZone::UTC;
    app
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let theme = Theme::load(None, false).unwrap();
    term.draw(|f| ui::draw(f, app, &theme)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }
}

#[test]
fn main_screen_small_and_large() {
    let a = app();
    insta::assert_snapshot!("main_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("main_200x60", render(&a, 200, 60));
}

#[test]
fn help_overlay() {
    let mut a = app();
    keys(&mut a, "?");
    insta::assert_snapshot!("help_80x24", render(&a, 80, 24));
    insta::assert_snapshot!("help_200x60", render(&a, 200, 60));
}

#[test]
fn filter_in_progress_and_applied() {
    let mut a = app();
    keys(&mut a, "/node");
    insta::assert_snapshot!("filtering_80x24", render(&a, 80, 24));
    keys(&mut a, "\n");
    insta::assert_snapshot!("filtered_200x60", render(&a, 200, 60));
}

#[test]
fn detail_and_other_panes() {
    let mut a = app();
    keys(&mut a, "jjj\n");
    insta::assert_snapshot!("detail_80x24", render(&a, 80, 24));
    keys(&mut a, "\x1b2");
    insta::assert_snapshot!("nodes_offline_80x24", render(&a, 80, 24));
}
