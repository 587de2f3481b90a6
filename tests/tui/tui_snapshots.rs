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

fn sample_diff() -> homeinfra_tui::model::closure::ClosureDiff {
    use homeinfra_tui::operations::closure_diff::{classify, parse};
    let text = "linux: 6.6.1 → 6.6.8, +195.3 KiB\nk3s: 1.30.2 → 1.31.0, -97.7 KiB\nhtop: ∅ → 3.3.0, +293.6 KiB\n\
                nfs-utils: 2.6.4 → ∅, -196.0 KiB\nopenssh: +43.9 KiB\nnixos-system-node1: 24.05.1 → 24.05.2\n\
                something odd happened here\n";
    classify::classify(
        parse::parse(text),
        classify::Context {
            old_path: "/nix/store/aaaa-nixos-system-node1-24.05.1".into(),
            new_path: "/nix/store/bbbb-nixos-system-node1-24.05.2".into(),
            boot_links: None,
            old_closure_size: Some(1_000_000_000),
            new_closure_size: Some(1_000_300_000),
        },
    )
}

#[test]
fn diff_view_progress_result_and_filter() {
    use homeinfra_tui::app::Effect;
    use homeinfra_tui::tasks::{TaskEvent, TaskMsg};
    let mut a = app();
    let Effect::Start(task) = a.start_diff("instance_1", None) else {
        panic!("the diff is a task");
    };
    let id = task.id;
    a.push(homeinfra_tui::app::Mode::Diff("instance_1".into()));
    for l in [
        "[0.0s] instance_1: deployed system /nix/store/aaaa",
        "[0.4s] building the target system of instance_1",
    ] {
        a.update(Msg::Task(TaskMsg {
            id,
            event: TaskEvent::Progress(l.into()),
        }));
    }
    insta::assert_snapshot!("diff_running_80x24", render(&a, 80, 24));
    a.update(Msg::Task(TaskMsg {
        id,
        event: TaskEvent::Diff(Ok(Box::new(sample_diff()))),
    }));
    insta::assert_snapshot!("diff_done_100x30", render(&a, 100, 30));
    keys(&mut a, "/k3s\n");
    insta::assert_snapshot!("diff_filtered_100x30", render(&a, 100, 30));
    // Esc closes the view; the Hosts pane shows the pending badge.
    keys(&mut a, "\x1b");
    a.update(Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    let t = homeinfra_tui::app::panes::table(&a, homeinfra_tui::app::Pane::Hosts);
    let state = &t.rows[0].cells.last().unwrap().text;
    assert_eq!(state, "pending: 6 changes, reboot");
}

#[test]
fn hints_and_help_follow_the_layered_keymap() {
    use homeinfra_tui::app::{Effect, Mode};
    use homeinfra_tui::config::KeyOverride;
    use homeinfra_tui::tasks::{TaskEvent, TaskMsg};
    let diff_keys = |app: &mut App| {
        let Effect::Start(task) = app.start_diff("instance_1", None) else {
            panic!("the diff is a task");
        };
        app.update(Msg::Task(TaskMsg {
            id: task.id,
            event: TaskEvent::Diff(Ok(Box::new(sample_diff()))),
        }));
        app.push(Mode::Diff("instance_1".into()));
    };
    let mut a = app();
    diff_keys(&mut a);
    let title = |s: &str| {
        s.lines()
            .find(|l| l.contains("Closure diff"))
            .unwrap_or("")
            .to_string()
    };
    let plain = render(&a, 120, 30);
    assert!(
        title(&plain).contains("— Esc back · / filter · e export · r recompute"),
        "{plain}"
    );
    let mut o = std::collections::BTreeMap::new();
    o.insert(
        "diff".to_string(),
        KeyOverride::Layer(
            [
                ("x".to_string(), "export".to_string()),
                ("e".to_string(), "none".to_string()),
                ("F5".to_string(), "refresh".to_string()),
                ("r".to_string(), "none".to_string()),
            ]
            .into_iter()
            .collect(),
        ),
    );
    let mut b = app();
    b.keymap = Keymap::with_overrides(&o).unwrap();
    diff_keys(&mut b);
    let rebound = render(&b, 120, 30);
    assert!(
        title(&rebound).contains("— Esc back · / filter · x export · d recompute"),
        "the first key left: {rebound}"
    );
    // ? in the diff view lists the diff view's keys and the global ones
    keys(&mut b, "?");
    let help = render(&b, 120, 30);
    assert!(help.contains("export the diff as text"), "{help}");
    assert!(help.contains("d F5"), "{help}");
    assert!(help.contains("quit"), "{help}");
    assert!(!help.contains("cordon"), "not the dashboard's: {help}");
    keys(&mut b, "j");
    assert_eq!(b.mode, Mode::Diff("instance_1".into()));
}
