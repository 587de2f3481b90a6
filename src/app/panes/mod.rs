//! What each pane shows, as plain data (rows of text with a tone): the UI draws it, the app
//! filters and selects in it, tests read it.

mod cluster;
mod detail;
mod hosts;
mod observe;
mod recovery;

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

/// A pane's table: header, minimum column widths, rows (already filtered), and a note about
/// its source (not configured, failing since ..., waiting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<&'static str>,
    pub widths: Vec<u16>,
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
    t
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

fn findings(app: &App) -> Table {
    let rows = app
        .findings
        .iter()
        .map(|f| Row {
            key: finding_key(f),
            aliases: vec![],
            cells: vec![
                Cell::toned(f.severity.as_str(), f.severity.into()),
                Cell::new(&f.code),
                Cell::new(&f.subject),
                Cell::new(&f.message),
            ],
        })
        .collect();
    Table {
        drop_order: vec![0, 1, 0, 0],
        ..Table::new(
            vec!["SEVERITY", "CODE", "SUBJECT", "MESSAGE"],
            vec![8, 30, 16, 30],
            rows,
        )
    }
}

/// `3d`, `5h`, `12m`, `40s`.
pub fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    age_secs((now.as_second() - then.as_second()).max(0) as u64)
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
