//! The health line under the header: each item in its tone's style with its glyph.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Theme, tone};
use crate::app::App;
use crate::app::health::{self, HealthItem};

/// The line for `items` in `width` columns (shortened and cut as [`health::fit`] says).
pub fn line<'a>(items: &[HealthItem], width: u16, theme: &Theme) -> Line<'a> {
    let fitted = health::fit(items, width as usize);
    let sep = if fitted.tight { " " } else { "  " };
    let mut spans = vec![];
    if !fitted.tight {
        spans.push(Span::raw(" "));
    }
    for (i, (item, short)) in fitted.shown.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(sep));
        }
        let text = if *short { &item.short } else { &item.full };
        let gap = if fitted.tight { "" } else { " " };
        spans.push(Span::styled(
            format!("{}{gap}{text}", item.glyph()),
            tone(theme, item.tone),
        ));
    }
    if fitted.dropped > 0 {
        let n = fitted.dropped;
        spans.push(Span::styled(format!("{sep}+{n}…"), theme.muted));
    }
    Line::from(spans)
}

pub fn draw(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let items = health::items(app);
    f.render_widget(Paragraph::new(line(&items, area.width, theme)), area);
}
