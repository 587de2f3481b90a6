//! Drawing: pure functions of the app state into a ratatui frame.

mod diff;
mod health;
mod popups;
pub mod theme;
mod upgrade;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Row, Table, TableState, Wrap};

use crate::app::panes::{self, Tone};
use crate::app::{Action, App, Layer, LayoutFacts, Mode, Pane, TextInput};
use crate::model::Severity;
pub use theme::Theme;

/// Below this size the dashboard shows one pane at a time with a tab bar.
pub const WIDE_MIN: (u16, u16) = (120, 32);

/// Where each pane goes for a given screen size.
pub struct Areas {
    pub header: Rect,
    /// The health line under the header (every size).
    pub health: Rect,
    pub tabs: Option<Rect>,
    pub panes: Vec<(Pane, Rect)>,
    pub footer: Rect,
}

pub fn areas(area: Rect, app: &App) -> Areas {
    let [header, health, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    if area.width >= WIDE_MIN.0 && area.height >= WIDE_MIN.1 {
        let rows = Layout::vertical([
            Constraint::Percentage(30),
            Constraint::Percentage(24),
            Constraint::Percentage(22),
            Constraint::Percentage(24),
        ])
        .split(body);
        let halves = |r: Rect| {
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(r);
            (a, b)
        };
        let (hosts, nodes) = halves(rows[0]);
        let (etcd, longhorn) = halves(rows[1]);
        let (metrics, logs) = halves(rows[2]);
        Areas {
            header,
            health,
            tabs: None,
            panes: vec![
                (Pane::Hosts, hosts),
                (Pane::Nodes, nodes),
                (Pane::Etcd, etcd),
                (Pane::Longhorn, longhorn),
                (Pane::Metrics, metrics),
                (Pane::Logs, logs),
                // The Recovery pane takes the findings' place while it has the focus.
                if app.focus == Pane::Recovery {
                    (Pane::Recovery, rows[3])
                } else {
                    (Pane::Findings, rows[3])
                },
            ],
            footer,
        }
    } else {
        let [tabs, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(body);
        // Keep the findings in sight under the focused pane when there is room.
        let panes = if app.focus != Pane::Findings && rest.height >= 16 {
            let strip = (rest.height / 3).max(6);
            let [main, findings] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(strip)]).areas(rest);
            vec![(app.focus, main), (Pane::Findings, findings)]
        } else {
            vec![(app.focus, rest)]
        };
        Areas {
            header,
            health,
            tabs: Some(tabs),
            panes,
            footer,
        }
    }
}

/// Table rows that fit in the focused pane (for paging).
pub fn focused_rows(area: Rect, app: &App) -> usize {
    let a = areas(area, app);
    a.panes
        .iter()
        .find(|(p, _)| *p == app.focus)
        .map_or(1, |(_, r)| r.height.saturating_sub(4).max(1) as usize)
}

/// Draw one frame.
pub fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let _ = render(f, app, theme);
}

/// Draw one frame and report what the state needs to know of its layout: the dashboard,
/// then every view on the mode stack from the bottom up (help over the diff view shows both).
pub fn render(f: &mut Frame, app: &App, theme: &Theme) -> LayoutFacts {
    let area = f.area();
    f.render_widget(Block::default().style(theme.base), area);
    let a = areas(area, app);
    draw_header(f, a.header, app, theme);
    health::draw(f, a.health, app, theme);
    if let Some(t) = a.tabs {
        draw_tabs(f, t, app, theme);
    }
    for (pane, rect) in &a.panes {
        draw_pane(f, *rect, app, *pane, theme);
    }
    draw_footer(f, a.footer, app, theme);
    let mut overlay_rows = None;
    for mode in app.modes() {
        let rows = match mode {
            Mode::Help => {
                popups::help(f, area, app, theme);
                None
            }
            Mode::Detail(key) => Some(popups::detail(f, area, app, key, theme)),
            Mode::Diff(host) => Some(diff::draw(f, area, app, host, theme)),
            Mode::Confirm(p) => {
                popups::confirm(f, area, app, &p.question(), theme);
                None
            }
            Mode::Upgrade => {
                upgrade::draw(f, area, app, theme);
                None
            }
            Mode::Leaving => {
                popups::leaving(f, area, app, &app.leaving_text(), theme);
                None
            }
            Mode::Normal | Mode::Filtering => None,
        };
        overlay_rows = rows.or(overlay_rows);
    }
    LayoutFacts {
        page_rows: focused_rows(area, app),
        overlay_rows,
    }
}

/// A filter as shown: `/text` with the cursor drawn while it is edited.
pub fn filter_text(t: &TextInput, editing: bool) -> String {
    if editing {
        let (before, after) = t.split();
        format!("/{before}█{after}")
    } else {
        format!("/{t}")
    }
}

/// `k label` pairs as key and description spans, for a footer or a popup.
fn hint_spans<'a>(hints: &[(String, &str)], theme: &Theme) -> Vec<Span<'a>> {
    let mut spans = Vec::new();
    for (k, label) in hints {
        spans.push(Span::styled(format!(" {k} "), theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.key_desc));
    }
    spans
}

fn tone(theme: &Theme, t: Tone) -> Style {
    match t {
        Tone::Normal => Style::default(),
        Tone::Ok => theme.ok,
        Tone::Info => theme.info,
        Tone::Warning => theme.warning,
        Tone::Critical => theme.critical,
        Tone::Muted => theme.muted,
    }
}

fn draw_header(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let crit = app.count(Severity::Critical);
    let warn = app.count(Severity::Warning);
    let mut left = vec![
        Span::styled(" homeinfra-tui ", theme.header_title),
        Span::styled(format!("│ {} ", app.context), theme.header),
    ];
    if app.read_only {
        left.push(Span::styled(" READ-ONLY ", theme.badge));
        left.push(Span::styled(" ", theme.header));
    }
    let count_style = |n: usize, s: Style| {
        if n > 0 {
            s.patch(theme.header).fg(s.fg.unwrap_or_default())
        } else {
            theme.header
        }
    };
    left.push(Span::styled("│ ", theme.header));
    left.push(Span::styled(
        format!("● {crit} critical"),
        count_style(crit, theme.critical),
    ));
    left.push(Span::styled("  ", theme.header));
    left.push(Span::styled(
        format!("▲ {warn} warning"),
        count_style(warn, theme.warning),
    ));
    let expected = app.expected_count();
    if expected > 0 {
        left.push(Span::styled(
            format!("  ◌ {expected} expected"),
            theme.header.patch(theme.muted),
        ));
    }
    if let Some(sum) = app.upgrade.summary() {
        left.push(Span::styled("  │ ", theme.header));
        left.push(Span::styled(format!(" {sum} "), theme.badge));
    }
    let clock = clock(app);
    let [l, r] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(clock.len() as u16 + 2),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(Line::from(left)).style(theme.header), l);
    f.render_widget(Paragraph::new(format!(" {clock} ")).style(theme.header), r);
}

/// The header's clock (`[ui] clock_seconds`: with seconds), and when it next reads differently.
fn clock(app: &App) -> String {
    let now = app.now.to_zoned(app.tz.clone());
    let s = app.now.as_second();
    if app.config.ui.clock_seconds {
        panes::shown_until(s + 1);
        now.strftime("%H:%M:%S").to_string()
    } else {
        // The start of the next minute of the local clock.
        panes::shown_until(s + 60 - i64::from(now.second()));
        now.strftime("%H:%M").to_string()
    }
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = Vec::new();
    for (i, p) in Pane::ALL.iter().enumerate() {
        let style = if *p == app.focus {
            theme.tab_active
        } else {
            theme.tab
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, p.title()), style));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_pane(f: &mut Frame, area: Rect, app: &App, pane: Pane, theme: &Theme) {
    let focused = pane == app.focus;
    let t = app.table(pane);
    let st = app.pane(pane);
    let count = if t.header.is_empty() {
        String::new()
    } else if st.filter.is_empty() {
        format!("({})", t.total)
    } else {
        format!("({}/{}) /{}", t.rows.len(), t.total, st.filter)
    };
    let mut title_spans = vec![
        Span::styled(
            format!(" {} {} ", pane.index() + 1, pane.title()),
            if focused {
                theme.title_focused
            } else {
                theme.title
            },
        ),
        Span::styled(format!("{count} "), theme.muted),
    ];
    if let Some((sub, t)) = &t.subtitle {
        title_spans.push(Span::styled(format!("─ {sub} "), tone(theme, *t)));
    }
    let title = Line::from(title_spans);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let mut rest = inner;
    if let Some((note, nt)) = &t.note {
        let [n, r] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
        f.render_widget(
            Paragraph::new(Span::styled(note.clone(), tone(theme, *nt))),
            n,
        );
        rest = r;
    }
    if t.header.is_empty() {
        return;
    }
    if t.rows.is_empty() {
        let msg = if !st.filter.is_empty() {
            format!("no rows match /{}", st.filter)
        } else if pane == Pane::Findings {
            "no findings".to_string()
        } else {
            "no rows".to_string()
        };
        if t.note.is_none() {
            f.render_widget(Paragraph::new(Span::styled(msg, theme.muted)), rest);
        }
        return;
    }
    if pane == Pane::Logs && app.wrap_logs {
        let lines: Vec<Line> = t
            .rows
            .iter()
            .skip(st.selected.min(t.rows.len() - 1))
            .map(|r| {
                Line::from(
                    r.cells
                        .iter()
                        .map(|c| Span::styled(format!("{} ", c.text), tone(theme, c.tone)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), rest);
        return;
    }
    let (keep, cols) = column_widths(&t, rest.width);
    let last = keep.len().saturating_sub(1);
    let widths: Vec<Constraint> = cols
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == last {
                Constraint::Fill(1)
            } else {
                Constraint::Length(*w)
            }
        })
        .collect();
    // Only the rows that show are built (a table of hundreds of rows, on every frame): the
    // window ratatui would scroll to, the selected row at the bottom once it is below the fold.
    let sel = st.selected.min(t.rows.len() - 1);
    let visible = usize::from(rest.height.saturating_sub(1)).max(1);
    let start = (sel + 1).saturating_sub(visible);
    let rows = t.rows.iter().skip(start).take(visible).map(|r| {
        Row::new(keep.iter().zip(&cols).map(|(c, w)| {
            let (text, tn) = r
                .cells
                .get(*c)
                .map_or(("", Tone::Normal), |c| (c.text.as_str(), c.tone));
            ratatui::widgets::Cell::from(Span::styled(ellipsis(text, *w), tone(theme, tn)))
        }))
    });
    let header: Vec<String> = keep
        .iter()
        .map(|c| match t.sort {
            Some(s) if s.column == *c => {
                format!("{} {}", t.header[*c], if s.reverse { "▼" } else { "▲" })
            }
            _ => t.header[*c].to_string(),
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.table_header))
        .column_spacing(1)
        .row_highlight_style(if focused {
            theme.selected
        } else {
            Style::default()
        });
    let mut state = TableState::default().with_selected(Some(sel - start));
    f.render_stateful_widget(table, rest, &mut state);
}

/// The columns that fit in `width` and the width of each: every column its content (up to its
/// maximum) when there is room; else each gets its minimum, dropping columns by `drop_order`
/// (highest first, 0 never) until the minimums fit, and the columns that want more share what
/// is left evenly. The last column shown takes any rest.
pub fn column_widths(t: &crate::app::panes::Table, width: u16) -> (Vec<usize>, Vec<u16>) {
    let n = t.header.len();
    let want: Vec<u16> = (0..n)
        .map(|c| {
            let content = t.content.get(c).copied().unwrap_or(0).max(1);
            match t.max_widths.get(c).copied().unwrap_or(0) {
                0 => content,
                m => content.min(m),
            }
        })
        .collect();
    let floor: Vec<u16> = (0..n)
        .map(|c| t.widths.get(c).copied().unwrap_or(1).min(want[c]))
        .collect();
    let gaps = |k: &[usize]| k.len().saturating_sub(1) as u32;
    let sum = |k: &[usize], w: &[u16]| k.iter().map(|c| u32::from(w[*c])).sum::<u32>();
    let mut keep: Vec<usize> = (0..n).collect();
    while sum(&keep, &floor) + gaps(&keep) > u32::from(width) {
        let Some((pos, _)) = keep
            .iter()
            .enumerate()
            .filter(|(_, c)| t.drop_order.get(**c).copied().unwrap_or(0) > 0)
            .max_by_key(|(_, c)| t.drop_order.get(**c).copied().unwrap_or(0))
        else {
            break;
        };
        keep.remove(pos);
    }
    let mut got: Vec<u16> = keep.iter().map(|c| floor[*c]).collect();
    let mut left = u32::from(width).saturating_sub(sum(&keep, &floor) + gaps(&keep));
    // Share what is left among the columns that want more, evenly, until none does.
    loop {
        let hungry: Vec<usize> = (0..keep.len())
            .filter(|i| got[*i] < want[keep[*i]])
            .collect();
        if hungry.is_empty() || left == 0 {
            break;
        }
        let share = (left / hungry.len() as u32).max(1);
        for i in hungry {
            if left == 0 {
                break;
            }
            let more = (u32::from(want[keep[i]] - got[i])).min(share).min(left);
            got[i] += more as u16;
            left -= more;
        }
    }
    (keep, got)
}

/// `text` cut to `width` columns with `…` when it does not fit.
pub fn ellipsis(text: &str, width: u16) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    let width = usize::from(width);
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

fn draw_footer(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = Vec::new();
    let filtering_pane = app.mode == Mode::Filtering && !matches!(app.covered(), Mode::Diff(_));
    if filtering_pane {
        let filter = &app.pane(app.focus).filter;
        spans.push(Span::styled(
            format!(" {} ", filter_text(filter, true)),
            theme.filter,
        ));
        let hints = app
            .keymap
            .hints(Layer::Input, &[Action::Submit, Action::Back]);
        for (i, (k, label)) in hints.iter().enumerate() {
            let lead = if i == 0 { "  " } else { "" };
            let trail = if i + 1 == hints.len() { " " } else { "  " };
            spans.push(Span::styled(format!("{lead}{k}"), theme.key));
            spans.push(Span::styled(format!(" {label}{trail}"), theme.key_desc));
        }
    } else if let Some((msg, t)) = &app.status {
        spans.push(Span::styled(format!(" {msg} "), tone(theme, *t)));
    } else {
        spans = hint_spans(&app.keymap.footer(), theme);
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
