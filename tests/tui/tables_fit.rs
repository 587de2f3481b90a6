//! Tables that fit: columns as wide as their content when there is room, `…` only when cut,
//! findings by their subjects' human names; sorting the focused table.

use super::worlds::{LONG_PVC, NIXOS, app, row, screen, terminal};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use homeinfra_tui::app::panes::{self, Table};
use homeinfra_tui::app::{App, Msg, Pane, SortBy};

fn key(a: &mut App, c: char) {
    a.update(Msg::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )));
}

#[test]
fn nothing_is_cut_on_a_wide_screen() {
    let a = app(true);
    let t = terminal(&a, 200, 60, false);
    let s = screen(&t);
    assert!(s.contains(NIXOS), "the whole NixOS version:\n{s}");
    assert!(s.contains(LONG_PVC), "the whole PVC name:\n{s}");
    let hosts = (0..60)
        .map(|y| row(&t, y))
        .find(|l| l.contains("instance_1"))
        .unwrap();
    assert!(!hosts.contains('…'), "{hosts}");
}

#[test]
fn narrow_screens_cut_with_an_ellipsis_and_the_detail_has_it_whole() {
    let mut a = app(true);
    key(&mut a, '1');
    let t = terminal(&a, 80, 24, false);
    let line = (0..24)
        .map(|y| row(&t, y))
        .find(|l| l.contains("instance_1"))
        .unwrap();
    assert!(line.contains('…'), "{line}");
    assert!(!line.contains(NIXOS), "{line}");
    let d = panes::detail(&a, Pane::Hosts, "instance_1");
    assert!(d.iter().any(|(_, v)| v.contains(NIXOS)), "{d:?}");
}

#[test]
fn widths_follow_content_within_min_and_max() {
    let t = Table {
        max_widths: vec![0, 6, 0],
        content: vec![4, 20, 30],
        ..Table::new(vec!["AA", "BB", "CC"], vec![4, 3, 10], vec![])
    };
    // Room: content, the middle one at its maximum.
    let (keep, w) = homeinfra_tui::ui::column_widths(&t, 100);
    assert_eq!(keep, [0, 1, 2]);
    assert_eq!(w, [4, 6, 30]);
    // Tight: minimums, then the rest shared by those that want more.
    let (_, w) = homeinfra_tui::ui::column_widths(&t, 4 + 3 + 10 + 2 + 6);
    assert_eq!(w.iter().sum::<u16>(), 23);
    assert_eq!(w[0], 4);
    assert!(w[1] > 3 && w[2] > 10, "{w:?}");
    assert_eq!(homeinfra_tui::ui::ellipsis("storage-loki-0", 8), "storage…");
    assert_eq!(homeinfra_tui::ui::ellipsis("loki", 8), "loki");
}

#[test]
fn findings_name_their_subjects_and_the_detail_has_the_id() {
    let a = app(true);
    let t = a.table(Pane::Findings);
    let uuid = "pvc-3f2a9c4e-8d1b-4e7a-9c55-0b6f1d2e3a4b";
    let r = t
        .rows
        .iter()
        .find(|r| r.key.ends_with(&format!("|{uuid}")))
        .expect("a finding about the degraded volume");
    assert_eq!(r.cells[2].text, LONG_PVC);
    let d = panes::detail(&a, Pane::Findings, &r.key);
    assert!(
        d.contains(&("subject id".to_string(), uuid.to_string())),
        "{d:?}"
    );
}

fn column(t: &Table, c: usize) -> Vec<String> {
    t.rows.iter().map(|r| r.cells[c].text.clone()).collect()
}

#[test]
fn s_cycles_the_sort_column_and_capital_s_reverses_remembered_per_pane() {
    let mut a = app(true);
    key(&mut a, '4'); // Longhorn
    let before = column(&a.table(Pane::Longhorn), 1);
    key(&mut a, 's');
    assert_eq!(
        a.panes[Pane::Longhorn.index()].sort,
        Some(SortBy {
            column: 0,
            reverse: false
        })
    );
    key(&mut a, 's'); // by PVC
    let t = a.table(Pane::Longhorn);
    let mut want = before.clone();
    want.sort();
    assert_eq!(column(&t, 1), want);
    key(&mut a, 'S');
    want.reverse();
    assert_eq!(column(&a.table(Pane::Longhorn), 1), want);
    // SIZE sorts by value (5 GiB < 10 GiB < 20 GiB), not as text.
    for _ in 0..4 {
        key(&mut a, 's');
    }
    let t = a.table(Pane::Longhorn);
    assert_eq!(t.header[5], "SIZE");
    assert_eq!(column(&t, 5), ["20.0 GiB", "10.0 GiB", "5.0 GiB"]);
    key(&mut a, 'S');
    assert_eq!(
        column(&a.table(Pane::Longhorn), 5),
        ["5.0 GiB", "10.0 GiB", "20.0 GiB"]
    );
    // The header row says so.
    let s = screen(&terminal(&a, 200, 60, false));
    assert!(s.contains("SIZE ▲"), "{s}");
    // Another pane keeps its own order; coming back finds this one as it was.
    key(&mut a, '2');
    assert_eq!(a.panes[Pane::Nodes.index()].sort, None);
    key(&mut a, 's');
    key(&mut a, 's');
    key(&mut a, 'S');
    let nodes = column(&a.table(Pane::Nodes), 1);
    assert!(nodes.first().unwrap() >= nodes.last().unwrap(), "{nodes:?}");
    key(&mut a, '4');
    assert_eq!(
        a.panes[Pane::Longhorn.index()].sort,
        Some(SortBy {
            column: 5,
            reverse: false
        })
    );
    // Past the last column: the source's order again.
    for _ in 0..3 {
        key(&mut a, 's');
    }
    assert_eq!(a.panes[Pane::Longhorn.index()].sort, None);
    assert_eq!(column(&a.table(Pane::Longhorn), 1), before);
}

/// Only the rows that show are drawn, and they are the rows ratatui would scroll to: the
/// selected row always visible, the window starting at the top until the selection passes the
/// fold, then ending at the selection.
#[test]
fn a_table_scrolls_to_keep_the_selection_in_view() {
    let mut scrolled = false;
    for height in 10..=24 {
        let mut a = app(true);
        key(&mut a, '1');
        let ids: Vec<String> = a
            .table(Pane::Hosts)
            .rows
            .iter()
            .map(|r| r.cells[0].text.clone())
            .collect();
        assert!(ids.len() >= 4, "{ids:?}");
        for sel in 0..ids.len() {
            if sel > 0 {
                key(&mut a, 'j');
            }
            let t = terminal(&a, 80, height, false);
            let s = screen(&t);
            let shown: Vec<usize> = (0..ids.len())
                .filter(|i| s.lines().any(|l| l.contains(&format!("{} ", ids[*i]))))
                .collect();
            assert!(shown.contains(&sel), "h {height} sel {sel}: {shown:?}\n{s}");
            if shown.is_empty() {
                continue;
            }
            let (first, last) = (shown[0], *shown.last().unwrap());
            assert_eq!(
                shown,
                (first..=last).collect::<Vec<_>>(),
                "contiguous rows: h {height} sel {sel}\n{s}"
            );
            let visible = shown.len();
            assert_eq!(
                first,
                (sel + 1).saturating_sub(visible),
                "h {height} sel {sel}: the window ends at the selection once past the fold\n{s}"
            );
            scrolled |= first > 0;
        }
    }
    assert!(scrolled, "some height was too short for every host");
}
