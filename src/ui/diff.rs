//! The closure-diff view: nix's progress while it builds, then the classified changes by
//! section with the reboot verdict and size totals.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Theme;
use crate::app::diff::{DiffLine, DiffView};
use crate::app::{Action, App, Layer, Mode};
use crate::model::closure::{Bump, ChangeKind, ClosureDiff, PackageChange, SignedSize};

/// Draw the view; returns how many lines its body shows (for paging).
pub fn draw(f: &mut Frame, area: Rect, app: &App, host: &str, theme: &Theme) -> usize {
    let r = super::popups::popup_exact(
        area,
        area.width.saturating_sub(4).max(20),
        area.height.saturating_sub(2).max(5),
    );
    f.render_widget(Clear, r);
    let empty = DiffView::default();
    let view = app.diffs.get(host).unwrap_or(&empty);
    let keys = app.keymap.hint_line(
        Layer::Diff,
        &[
            Action::Back,
            Action::Filter,
            Action::Export,
            Action::Refresh,
        ],
    );
    let title = format!(" Closure diff › {host} (deployed → flake) — {keys} ");
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border_focused)
        .title(Span::styled(title, theme.title_focused))
        .style(theme.popup);
    let inner = block.inner(r);
    f.render_widget(block, r);
    let editing = app.mode == Mode::Filtering && *app.covered() == Mode::Diff(host.to_string());
    match &view.result {
        Some(Ok(d)) => draw_result(f, inner, view, d, editing, theme),
        Some(Err(e)) => {
            let [top, rest] =
                Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(inner);
            f.render_widget(
                Paragraph::new(vec![Line::from(Span::styled(
                    format!("diff failed: {e}"),
                    theme.critical,
                ))])
                .wrap(Wrap { trim: false }),
                top,
            );
            draw_log(f, rest, view, app, theme)
        }
        None => draw_log(f, inner, view, app, theme),
    }
}

fn draw_log(f: &mut Frame, area: Rect, view: &DiffView, app: &App, theme: &Theme) -> usize {
    let elapsed = match (view.started, view.finished) {
        (Some(s), Some(e)) => e.as_second() - s.as_second(),
        (Some(s), None) => {
            crate::app::panes::shown_until(app.now.as_second() + 1);
            app.now.as_second() - s.as_second()
        }
        _ => 0,
    };
    let head = if view.running {
        let stop = match app.keymap.keys_for(Layer::Diff, Action::Back).first() {
            Some(k) => format!(" — {k} cancels"),
            None => String::new(),
        };
        Span::styled(format!("building… {elapsed} s{stop}"), theme.warning)
    } else {
        Span::styled(format!("nix output ({elapsed} s)"), theme.muted)
    };
    let [h, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    f.render_widget(Paragraph::new(head), h);
    // Follow the tail while running.
    let height = body.height as usize;
    let lines: Vec<Line> = view
        .log
        .tail(height)
        .map(|l| Line::raw(l.clone()))
        .collect();
    f.render_widget(Paragraph::new(lines).style(theme.popup), body);
    height
}

fn bump_style(theme: &Theme, c: &PackageChange) -> Style {
    match (c.kind, c.bump) {
        (ChangeKind::Downgrade, _) => theme.critical,
        (_, Some(Bump::Major)) => theme.critical,
        (_, Some(Bump::Minor)) => theme.warning,
        (_, Some(Bump::Patch)) => theme.ok,
        (ChangeKind::Added, _) => theme.ok,
        (ChangeKind::Removed, _) => theme.warning,
        _ => theme.muted,
    }
}

fn draw_result(
    f: &mut Frame,
    area: Rect,
    view: &DiffView,
    d: &ClosureDiff,
    editing: bool,
    theme: &Theme,
) -> usize {
    let [summary, filter, body] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let verdict = if d.is_up_to_date() {
        Span::styled(
            "up to date: the deployed system is what the flake builds",
            theme.ok,
        )
    } else if d.reboot.required {
        Span::styled(
            format!("REBOOT REQUIRED — {}", d.reboot.reason),
            theme.critical,
        )
    } else {
        Span::styled(format!("no reboot needed — {}", d.reboot.reason), theme.ok)
    };
    let size = match d.totals.closure_size_delta {
        Some(delta) => format!("closure {}", SignedSize(delta)),
        None => format!("listed {}", SignedSize(d.totals.listed_size_delta)),
    };
    let restarts: Vec<&str> = d.restarts().map(|c| c.name.as_str()).collect();
    let security: Vec<&str> = d.security_relevant().map(|c| c.name.as_str()).collect();
    let mut second = vec![Span::styled(
        format!("{} changes, {size}", d.totals.changes),
        theme.popup,
    )];
    if !restarts.is_empty() {
        second.push(Span::styled(
            format!(" · restarts: {}", restarts.join(", ")),
            theme.warning,
        ));
    }
    if !security.is_empty() {
        second.push(Span::styled(
            format!(" · security: {}", security.join(", ")),
            theme.info,
        ));
    }
    if !d.unparsed.is_empty() {
        second.push(Span::styled(
            format!(" · {} unparsed line(s) shown verbatim", d.unparsed.len()),
            theme.warning,
        ));
    }
    let paths = Span::styled(format!("{} → {}", d.old_path, d.new_path), theme.muted);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(verdict),
            Line::from(second),
            Line::from(paths),
        ]),
        summary,
    );
    let ftext = if editing {
        Span::styled(
            format!(" {} ", super::filter_text(&view.filter, true)),
            theme.filter,
        )
    } else if !view.filter.is_empty() {
        Span::styled(
            format!(" {} ", super::filter_text(&view.filter, false)),
            theme.muted,
        )
    } else {
        Span::raw("")
    };
    f.render_widget(Paragraph::new(ftext), filter);

    let rows = view.rows();
    let namew = rows
        .iter()
        .filter_map(|r| match r {
            DiffLine::Change(c) => Some(c.name.chars().count()),
            _ => None,
        })
        .max()
        .unwrap_or(10)
        .min(40);
    let lines: Vec<Line> = rows
        .iter()
        .skip(view.scroll)
        .take(body.height as usize)
        .map(|r| match r {
            DiffLine::Heading(s, n) => Line::from(Span::styled(
                format!("{} ({n})", s.title()),
                theme.table_header,
            )),
            DiffLine::Change(c) => {
                let bump = c.bump.map(|b| b.as_str()).unwrap_or("");
                let size = c
                    .size_delta
                    .map(|s| SignedSize(s).to_string())
                    .unwrap_or_default();
                Line::from(vec![
                    Span::raw(format!("  {:<namew$} ", c.name)),
                    Span::styled(format!("{:<32} ", c.versions()), bump_style(theme, c)),
                    Span::styled(format!("{bump:<6} "), bump_style(theme, c)),
                    Span::styled(size, theme.muted),
                ])
            }
            DiffLine::Unparsed(u) => Line::from(Span::styled(format!("  ? {u}"), theme.warning)),
        })
        .collect();
    if lines.is_empty() && !d.is_up_to_date() {
        f.render_widget(
            Paragraph::new(Span::styled(
                format!("no change matches /{}", view.filter),
                theme.muted,
            )),
            body,
        );
    } else {
        f.render_widget(Paragraph::new(lines), body);
    }
    body.height as usize
}
