//! The views that pop up over the dashboard: the `?` help (the keys of the layer it covers),
//! a question, and the detail of a row.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Theme;
use crate::app::panes;
use crate::app::{Action, App, Layer};

fn popup(area: Rect, w_pct: u16, h: u16) -> Rect {
    let w = (area.width * w_pct / 100).max(40.min(area.width));
    let h = h.min(area.height.saturating_sub(2)).max(3.min(area.height));
    let [v] = Layout::vertical([Constraint::Length(h)])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w)])
        .flex(Flex::Center)
        .areas(v);
    r
}

pub(super) fn help(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let rows = app.keymap.help_rows_in(app.help_layer());
    let keyw = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(4);
    // As many columns as needed to fit the screen's height; descriptions shrink (with an
    // ellipsis) when the columns would not fit its width.
    let fit = area.height.saturating_sub(4).max(1) as usize;
    let cols = rows.len().div_ceil(fit).max(1);
    let room = (area.width.saturating_sub(2) as usize / cols).saturating_sub(keyw + 4);
    let descw = rows
        .iter()
        .map(|(_, d)| d.chars().count())
        .max()
        .unwrap_or(10)
        .min(room.max(8));
    let per_col = rows.len().div_ceil(cols);
    let colw = keyw + descw + 4;
    let r = popup_exact(area, (colw * cols + 2) as u16, per_col as u16 + 2);
    let lines: Vec<Line> = (0..per_col)
        .map(|i| {
            let mut spans = Vec::new();
            for c in 0..cols {
                if let Some((k, d)) = rows.get(c * per_col + i) {
                    spans.push(Span::styled(format!(" {k:>keyw$} "), theme.title_focused));
                    let d: String = if d.chars().count() > descw {
                        d.chars().take(descw - 1).chain(['…']).collect()
                    } else {
                        d.to_string()
                    };
                    spans.push(Span::styled(format!(" {d:<descw$} "), theme.popup));
                }
            }
            Line::from(spans)
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).style(theme.popup).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border_focused)
                .title(Span::styled(" Keys — any key closes ", theme.title_focused)),
        ),
        r,
    );
}

pub(super) fn confirm(f: &mut Frame, area: Rect, app: &App, question: &[String], theme: &Theme) {
    let widest = question
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let w = (widest as u16 + 4).max(34);
    let r = popup_exact(area, w, question.len() as u16 + 4);
    f.render_widget(Clear, r);
    let mut lines: Vec<Line> = question
        .iter()
        .map(|l| Line::from(Span::styled(format!(" {l}"), theme.popup)))
        .collect();
    lines.push(Line::from(""));
    let mut answer = Vec::new();
    for (k, label) in app.keymap.hints(Layer::Confirm, &[Action::Confirm]) {
        answer.push(Span::styled(format!(" {k} "), theme.key));
        answer.push(Span::styled(format!(" {label}   "), theme.key_desc));
    }
    answer.push(Span::styled(" any other key ", theme.key));
    answer.push(Span::styled(" no", theme.key_desc));
    lines.push(Line::from(answer));
    f.render_widget(
        Paragraph::new(lines).style(theme.popup).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.warning)
                .title(Span::styled(" Confirm ", theme.warning)),
        ),
        r,
    );
}

/// Quit asked while a run goes on: it goes on; `q` leaves, `a` asks to abort it.
pub(super) fn leaving(f: &mut Frame, area: Rect, app: &App, text: &[String], theme: &Theme) {
    let widest = text.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let w = (widest as u16 + 4).max(40);
    let r = popup_exact(area, w, text.len() as u16 + 4);
    f.render_widget(Clear, r);
    let mut lines: Vec<Line> = text
        .iter()
        .map(|l| Line::from(Span::styled(format!(" {l}"), theme.popup)))
        .collect();
    lines.push(Line::from(""));
    let mut keys = Vec::new();
    let key = |a: Action| {
        app.keymap
            .keys_for(Layer::Upgrade, a)
            .first()
            .map(|k| k.to_string())
    };
    if let Some(q) = key(Action::Quit) {
        keys.push(Span::styled(format!(" {q} "), theme.key));
        keys.push(Span::styled(" leave it running   ", theme.key_desc));
    }
    if !app.read_only
        && let Some(a) = key(Action::Abort)
    {
        keys.push(Span::styled(format!(" {a} "), theme.key));
        keys.push(Span::styled(
            " abort it at the next safe point   ",
            theme.key_desc,
        ));
    }
    keys.push(Span::styled(" any other key ", theme.key));
    keys.push(Span::styled(" stay", theme.key_desc));
    lines.push(Line::from(keys));
    f.render_widget(
        Paragraph::new(lines)
            .style(theme.popup)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.warning)
                    .title(Span::styled(" Quit? The upgrade goes on ", theme.warning)),
            ),
        r,
    );
}

pub(super) fn popup_exact(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let [v] = Layout::vertical([Constraint::Length(h)])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w)])
        .flex(Flex::Center)
        .areas(v);
    r
}

/// The detail of a row; returns how many lines its body shows.
pub(super) fn detail(f: &mut Frame, area: Rect, app: &App, key: &str, theme: &Theme) -> usize {
    let lines = panes::detail(app, app.focus, key);
    let labw = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(4)
        .min(40);
    let r = popup(area, 80, lines.len() as u16 + 2);
    let text: Vec<Line> = lines
        .iter()
        .map(|(l, v)| {
            Line::from(vec![
                Span::styled(format!(" {l:<labw$} "), theme.table_header),
                Span::styled(v.clone(), theme.popup),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .style(theme.popup)
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll.min(u16::MAX as usize) as u16, 0))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.border_focused)
                    .title(Span::styled(
                        format!(
                            " {} › {key} — {} ",
                            app.focus.title(),
                            app.keymap.hint_line(Layer::Dashboard, &[Action::Back])
                        ),
                        theme.title_focused,
                    )),
            ),
        r,
    );
    r.height.saturating_sub(2) as usize
}
