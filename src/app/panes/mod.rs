//! What each pane shows, as plain data (rows of text with a tone): the UI draws it, the app
//! filters and selects in it, tests read it.

mod cluster;
mod detail;
mod hosts;
mod observe;
mod recovery;

use unicode_width::UnicodeWidthStr;

use crate::model::{Severity, SourceStatus};

use super::{App, finding_key};
pub use detail::detail;
pub use observe::{logs_host, sparkline};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Hosts,
    Nodes,
    Etcd,
    Longhorn,
    Metrics,
    Logs,
    Findings,
    Recovery,
}

impl Pane {
    pub const ALL: &'static [Pane] = &[
        Pane::Hosts,
        Pane::Nodes,
        Pane::Etcd,
        Pane::Longhorn,
        Pane::Metrics,
        Pane::Logs,
        Pane::Findings,
        Pane::Recovery,
    ];

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    pub fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Hosts => "Hosts",
            Pane::Nodes => "Nodes",
            Pane::Etcd => "etcd",
            Pane::Longhorn => "Longhorn",
            Pane::Metrics => "Metrics",
            Pane::Logs => "Logs",
            Pane::Findings => "Findings",
            Pane::Recovery => "Recovery",
        }
    }

    pub fn filterable(self) -> bool {
        true
    }

    /// The pane that shows a finding's subject.
    pub fn for_area(area: &str, code: &str) -> Pane {
        match area {
            "node" => Pane::Nodes,
            "etcd" => Pane::Etcd,
            "longhorn" => Pane::Longhorn,
            "host" | "inventory" => Pane::Hosts,
            "alert" | "metrics" => Pane::Metrics,
            "recovery" => Pane::Recovery,
            "source" => match code.split('.').nth(1) {
                Some("kubernetes") => Pane::Nodes,
                Some("etcd") => Pane::Etcd,
                Some("mimir") => Pane::Metrics,
                Some("loki") => Pane::Logs,
                _ => Pane::Hosts,
            },
            _ => Pane::Findings,
        }
    }
}

/// How a cell or row should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Normal,
    Ok,
    Info,
    Warning,
    Critical,
    Muted,
}

impl From<Severity> for Tone {
    fn from(s: Severity) -> Tone {
        match s {
            Severity::Info => Tone::Info,
            Severity::Warning => Tone::Warning,
            Severity::Critical => Tone::Critical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Normal,
        }
    }
    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Stable identity of the row (host id, node name, ...).
    pub key: String,
    /// Other names the row answers to (a host's hostname, a node's host id).
    pub aliases: Vec<String>,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn matches_subject(&self, subject: &str) -> bool {
        self.key == subject || self.aliases.iter().any(|a| a == subject)
    }

    fn matches_filter(&self, needle: &str) -> bool {
        needle.is_empty()
            || self
                .cells
                .iter()
                .any(|c| c.text.to_lowercase().contains(needle))
            || self.key.to_lowercase().contains(needle)
    }
}

/// A pane's table: header, column widths, rows (already filtered and sorted), and a note
/// about its source (not configured, failing since ..., waiting).
///
/// Column widths come from the content: a column wants its widest cell (or header), at most
/// its `max_widths`; when the pane is narrow it gets at least its `widths` (the minimum), the
/// flexible ones share what is left, and cells cut show `…` (the detail view has them whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<&'static str>,
    /// The minimum width of each column (when its content is that wide).
    pub widths: Vec<u16>,
    /// The most each column takes while others want room (0: no limit).
    pub max_widths: Vec<u16>,
    /// The widest cell or header of each column, over the rows shown.
    pub content: Vec<u16>,
    /// The order the rows are in (shown in the header).
    pub sort: Option<super::SortBy>,
    /// Which columns to drop first when the pane is narrow: higher goes first, 0 never.
    pub drop_order: Vec<u8>,
    pub rows: Vec<Row>,
    /// Rows before filtering.
    pub total: usize,
    pub note: Option<(String, Tone)>,
    /// Shown in the pane's title (e.g. etcd's quorum state).
    pub subtitle: Option<(String, Tone)>,
}

impl Table {
    pub fn new(header: Vec<&'static str>, widths: Vec<u16>, rows: Vec<Row>) -> Table {
        Table {
            drop_order: vec![0; header.len()],
            max_widths: vec![0; header.len()],
            content: vec![0; header.len()],
            sort: None,
            header,
            widths,
            rows,
            total: 0,
            note: None,
            subtitle: None,
        }
    }
}

/// The table of a pane, with the pane's filter applied.
pub fn table(app: &App, pane: Pane) -> Table {
    let mut t = match pane {
        Pane::Hosts => hosts::table(app),
        Pane::Nodes => cluster::nodes(app),
        Pane::Etcd => cluster::etcd(app),
        Pane::Longhorn => cluster::longhorn(app),
        Pane::Metrics => observe::metrics(app),
        Pane::Logs => observe::logs(app),
        Pane::Findings => findings(app),
        Pane::Recovery => recovery::table(app),
    };
    t.total = t.rows.len();
    let needle = app.pane(pane).filter.to_lowercase();
    if !needle.is_empty() {
        t.rows.retain(|r| r.matches_filter(&needle));
    }
    if let Some(s) = app.pane(pane).sort
        && s.column < t.header.len()
    {
        t.rows.sort_by(|a, b| {
            let key = |r: &Row| sort_key(r.cells.get(s.column).map_or("", |c| c.text.as_str()));
            let (ka, kb) = (key(a), key(b));
            // Empty cells stay last either way.
            match (&ka, &kb) {
                (SortKey::Missing, _) | (_, SortKey::Missing) => ka.cmp(&kb),
                _ if s.reverse => kb.cmp(&ka),
                _ => ka.cmp(&kb),
            }
        });
        t.sort = Some(s);
    }
    t.content = (0..t.header.len())
        .map(|c| {
            let head = UnicodeWidthStr::width(t.header[c])
                + usize::from(t.sort.is_some_and(|s| s.column == c)) * 2;
            t.rows
                .iter()
                .filter_map(|r| r.cells.get(c))
                .map(|cell| UnicodeWidthStr::width(cell.text.as_str()))
                .fold(head, usize::max)
                .min(u16::MAX as usize) as u16
        })
        .collect();
    t
}

/// How a cell sorts: numbers (with their unit: `3d`, `1.5 GiB`, `12%`, `40 ms`) by value
/// before text, text case-insensitively; empty and `–` cells last (either way).
#[derive(Debug, PartialEq)]
enum SortKey {
    Number(f64),
    Text(String),
    Missing,
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Missing, SortKey::Missing) => Ordering::Equal,
            (SortKey::Number(_), _) | (SortKey::Text(_), SortKey::Missing) => Ordering::Less,
            _ => Ordering::Greater,
        }
    }
}

fn sort_key(text: &str) -> SortKey {
    let t = text.trim();
    if t.is_empty() || t == "–" || t == "-" {
        return SortKey::Missing;
    }
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(t.len(), |(i, _)| i);
    let (num, rest) = t.split_at(end);
    // Versions (`25.05.2025`) and names that start with digits sort as text.
    let number = (num.matches('.').count() <= 1)
        .then(|| num.parse::<f64>().ok())
        .flatten();
    let Some(n) = number else {
        return SortKey::Text(t.to_lowercase());
    };
    let unit = rest.trim_start();
    let word = unit
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or("");
    let scale = match word {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "" | "ms" | "x" => 1.0,
        _ if unit.starts_with('%') || unit.starts_with('×') || unit.starts_with('/') => 1.0,
        _ => return SortKey::Text(t.to_lowercase()),
    };
    SortKey::Number(n * scale)
}

/// The note a pane shows about its source.
pub fn source_note(
    st: &SourceStatus,
    name: &str,
    how: &str,
    has_data: bool,
) -> Option<(String, Tone)> {
    if !st.configured {
        let text = st
            .note
            .clone()
            .unwrap_or_else(|| format!("{name}: not configured — set {how}"));
        return Some((text, Tone::Muted));
    }
    if let Some(e) = &st.error {
        return Some((
            format!(
                "{name} unreachable since {}: {}",
                e.since.strftime("%H:%M:%S"),
                e.message
            ),
            Tone::Critical,
        ));
    }
    (!has_data).then(|| (format!("{name}: waiting for first data…"), Tone::Muted))
}

/// A finding's subject by its human name: a Longhorn volume by its PVC (`namespace/name`), an
/// etcd member id by the member's name; hosts, nodes and the rest as they are. The detail view
/// shows the id.
pub fn subject_name(app: &App, subject: &str) -> String {
    if let Some(cl) = &app.snapshot.cluster.data
        && let Some(pvc) = cl
            .longhorn
            .volumes
            .iter()
            .find(|v| v.name == subject)
            .and_then(|v| v.pvc.clone())
    {
        return pvc;
    }
    if let Some(e) = &app.snapshot.etcd.data
        && let Some(m) = e.members.iter().find(|m| format!("{:x}", m.id) == subject)
        && !m.name.is_empty()
    {
        return m.name.clone();
    }
    subject.to_string()
}

fn findings(app: &App) -> Table {
    let maintenance = app.maintenance();
    let rows = app
        .findings
        .iter()
        .map(|f| {
            // Expected during the run: calm, with what the run does there.
            let (sev, msg) = match (&f.maintenance, &maintenance) {
                (Some(run), m) => {
                    let doing = m
                        .as_ref()
                        .and_then(|m| {
                            let node = m.node_of(f, &app.inventory)?;
                            Some(format!("{node}: {}", m.nodes.get(node)?))
                        })
                        .unwrap_or_else(|| "in maintenance".into());
                    (
                        Cell::toned("expected", crate::app::Tone::Muted),
                        Cell::toned(
                            format!("{doing} — upgrade {run}: {}", f.message),
                            crate::app::Tone::Muted,
                        ),
                    )
                }
                (None, _) => (
                    Cell::toned(f.severity.as_str(), f.severity.into()),
                    Cell::new(&f.message),
                ),
            };
            Row {
                key: finding_key(f),
                aliases: vec![],
                cells: vec![
                    sev,
                    Cell::new(&f.code),
                    Cell::new(subject_name(app, &f.subject)),
                    msg,
                ],
            }
        })
        .collect();
    Table {
        drop_order: vec![0, 1, 0, 0],
        ..Table::new(
            vec!["SEVERITY", "CODE", "SUBJECT", "MESSAGE"],
            vec![8, 24, 16, 30],
            rows,
        )
    }
}

/// `3d`, `5h`, `12m`, `40s`.
pub fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let s = (now.as_second() - then.as_second()).max(0) as u64;
    // The shown age changes when it reaches its unit's next step (`41d` at day 42).
    let unit = match s {
        s if s >= 86_400 => 86_400,
        s if s >= 3_600 => 3_600,
        s if s >= 60 => 60,
        _ => 1,
    };
    shown_until(now.as_second() + (unit - s % unit) as i64);
    age_secs(s)
}

thread_local! {
    /// The first second at which something the table being built shows by the clock reads
    /// differently (`i64::MAX`: nothing does).
    static SHOWN_UNTIL: std::cell::Cell<i64> = const { std::cell::Cell::new(i64::MAX) };
}

/// Say that what is being built (a table, a frame) shows the clock as it is until second `at`.
pub fn shown_until(at: i64) {
    SHOWN_UNTIL.with(|c| c.set(c.get().min(at)));
}

/// Build with `f` and say until which second (by the clock) its result reads the same: the
/// ages it shows through [`age`], and whatever else it reads the clock for through
/// [`shown_until`] (`i64::MAX` when it shows nothing of the clock).
pub fn valid_until<T>(f: impl FnOnce() -> T) -> (T, i64) {
    let outer = SHOWN_UNTIL.with(|c| c.replace(i64::MAX));
    let t = f();
    let until = SHOWN_UNTIL.with(|c| c.replace(outer));
    // A nested build's clock also bounds the one around it.
    shown_until(until);
    (t, until)
}

/// A duration in seconds as `3d`, `5h`, `12m`, `40s`.
pub fn age_secs(s: u64) -> String {
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `512 B`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
