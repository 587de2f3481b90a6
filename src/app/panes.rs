//! What each pane shows, as plain data (rows of text with a tone): the UI draws it, the app
//! filters and selects in it, tests read it.

use crate::model::{Severity, SourceStatus};

use super::{App, finding_key};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Hosts,
    Nodes,
    Etcd,
    Longhorn,
    Metrics,
    Logs,
    Findings,
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
    pub rows: Vec<Row>,
    /// Rows before filtering.
    pub total: usize,
    pub note: Option<(String, Tone)>,
}

/// The table of a pane, with the pane's filter applied.
pub fn table(app: &App, pane: Pane) -> Table {
    let mut t = match pane {
        Pane::Hosts => hosts(app),
        Pane::Nodes => nodes(app),
        Pane::Etcd => etcd(app),
        Pane::Longhorn => longhorn(app),
        Pane::Metrics => source_only(&app.snapshot.mimir.status, "Mimir", "[mimir] url"),
        Pane::Logs => source_only(&app.snapshot.loki.status, "Loki", "[loki] url"),
        Pane::Findings => findings(app),
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

fn source_only(st: &SourceStatus, name: &str, how: &str) -> Table {
    Table {
        header: vec![],
        widths: vec![],
        rows: vec![],
        total: 0,
        note: source_note(st, name, how, false),
    }
}

fn hosts(app: &App) -> Table {
    let rows = app
        .inventory
        .hosts
        .iter()
        .map(|h| {
            let worst = app
                .findings
                .iter()
                .filter(|f| f.subject == h.id || f.subject == h.hostname)
                .map(|f| f.severity)
                .max();
            let mut id = Cell::new(&h.id);
            if let Some(s) = worst {
                id.tone = s.into();
            }
            let role_tone = if h.role.is_control_plane() {
                Tone::Info
            } else {
                Tone::Normal
            };
            Row {
                key: h.id.clone(),
                aliases: vec![h.hostname.clone()],
                cells: vec![
                    id,
                    Cell::new(&h.hostname),
                    Cell::toned(h.role.as_str(), role_tone),
                    Cell::new(format!("{}/{}", h.region, h.zone)),
                    Cell::new(format!("{}/{}", h.ip, h.mask_length)),
                    Cell::new(&h.system),
                ],
            }
        })
        .collect();
    Table {
        header: vec!["ID", "HOSTNAME", "ROLE", "REGION/ZONE", "IP", "SYSTEM"],
        widths: vec![12, 12, 6, 14, 16, 14],
        rows,
        total: 0,
        note: None,
    }
}

fn nodes(app: &App) -> Table {
    let c = &app.snapshot.cluster;
    let rows = c
        .data
        .as_ref()
        .map(|cl| {
            cl.nodes
                .iter()
                .map(|n| {
                    let (ready, tone) = match n.ready {
                        Some(true) => ("Ready", Tone::Ok),
                        Some(false) => ("NotReady", Tone::Critical),
                        None => ("Unknown", Tone::Warning),
                    };
                    let pods = cl.pods_on(&n.name).count();
                    let aliases = app
                        .inventory
                        .by_name(&n.name)
                        .map(|h| vec![h.id.clone()])
                        .unwrap_or_default();
                    let mut status = ready.to_string();
                    for p in &n.pressures {
                        status.push(',');
                        status.push_str(p);
                    }
                    Row {
                        key: n.name.clone(),
                        aliases,
                        cells: vec![
                            Cell::new(&n.name),
                            Cell::new(n.roles.join(",")),
                            Cell::new(n.zone.clone().unwrap_or_default()),
                            Cell::toned(
                                status,
                                if n.pressures.is_empty() {
                                    tone
                                } else {
                                    Tone::Warning
                                },
                            ),
                            Cell::toned(
                                if n.unschedulable { "cordoned" } else { "" },
                                Tone::Warning,
                            ),
                            Cell::new(&n.kubelet_version),
                            Cell::new(pods.to_string()),
                            Cell::new(n.created.map(|t| age(app.now, t)).unwrap_or_default()),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        header: vec![
            "NAME", "ROLES", "ZONE", "STATUS", "SCHED", "VERSION", "PODS", "AGE",
        ],
        widths: vec![12, 14, 8, 9, 8, 14, 5, 5],
        rows,
        total: 0,
        note: source_note(
            &c.status,
            "Kubernetes",
            "[kubernetes] kubeconfig (or KUBECONFIG)",
            c.data.is_some(),
        ),
    }
}

fn etcd(app: &App) -> Table {
    let e = &app.snapshot.etcd;
    let rows = e
        .data
        .as_ref()
        .map(|st| {
            let max_index = st.members.iter().filter_map(|m| m.raft_index).max();
            st.members
                .iter()
                .map(|m| {
                    let ms = |v: Option<f64>| {
                        v.map(|x| format!("{x:.1} ms"))
                            .unwrap_or_else(|| "–".into())
                    };
                    let db = match (m.db_size_bytes, m.quota_bytes) {
                        (Some(d), Some(q)) if q > 0 => format!(
                            "{} / {} ({:.0}%)",
                            bytes(d),
                            bytes(q),
                            d as f64 * 100.0 / q as f64
                        ),
                        (Some(d), _) => bytes(d),
                        _ => "–".into(),
                    };
                    let lag = match (max_index, m.raft_index) {
                        (Some(max), Some(i)) => (max.saturating_sub(i)).to_string(),
                        _ => "–".into(),
                    };
                    Row {
                        key: m.name.clone(),
                        aliases: vec![format!("{:x}", m.id)],
                        cells: vec![
                            Cell::new(format!("{}{}", m.name, if m.is_leader { " ★" } else { "" })),
                            Cell::new(m.client_urls.first().cloned().unwrap_or_default()),
                            if m.healthy {
                                Cell::toned("healthy", Tone::Ok)
                            } else {
                                Cell::toned("down", Tone::Critical)
                            },
                            Cell::new(db),
                            Cell::new(ms(m.wal_fsync_p99_ms)),
                            Cell::new(ms(m.backend_commit_p99_ms)),
                            Cell::new(lag),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        header: vec![
            "MEMBER",
            "ENDPOINT",
            "HEALTH",
            "DB / QUOTA",
            "FSYNC p99",
            "COMMIT p99",
            "LAG",
        ],
        widths: vec![10, 22, 8, 22, 10, 10, 5],
        rows,
        total: 0,
        note: source_note(&e.status, "etcd", "[etcd] endpoints", e.data.is_some()),
    }
}

fn longhorn(app: &App) -> Table {
    let c = &app.snapshot.cluster;
    let rows = c
        .data
        .as_ref()
        .map(|cl| {
            cl.longhorn
                .volumes
                .iter()
                .map(|v| {
                    let tone = match v.robustness.as_str() {
                        "healthy" => Tone::Ok,
                        "degraded" => Tone::Warning,
                        "faulted" => Tone::Critical,
                        _ => Tone::Warning,
                    };
                    let mut placement: Vec<String> = cl
                        .longhorn
                        .replicas_of(&v.name)
                        .map(|r| format!("{}{}", r.node, if r.healthy { "" } else { "✗" }))
                        .collect();
                    placement.sort();
                    Row {
                        key: v.name.clone(),
                        aliases: v.pvc.clone().into_iter().collect(),
                        cells: vec![
                            Cell::new(&v.name),
                            Cell::toned(&v.robustness, tone),
                            Cell::new(format!("{}×", v.number_of_replicas)),
                            Cell::new(placement.join(" ")),
                            Cell::new(bytes(v.size_bytes)),
                            Cell::new(
                                v.last_backup_at
                                    .map(|t| age(app.now, t))
                                    .unwrap_or_else(|| "never".into()),
                            ),
                            Cell::toned(
                                if v.encrypted { "yes" } else { "no" },
                                if v.encrypted {
                                    Tone::Normal
                                } else {
                                    Tone::Muted
                                },
                            ),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        header: vec![
            "VOLUME",
            "ROBUSTNESS",
            "REPL",
            "PLACEMENT",
            "SIZE",
            "BACKUP",
            "ENC",
        ],
        widths: vec![16, 10, 4, 24, 8, 7, 3],
        rows,
        total: 0,
        note: source_note(
            &c.status,
            "Kubernetes",
            "[kubernetes] kubeconfig (or KUBECONFIG)",
            c.data.is_some(),
        ),
    }
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
        header: vec!["SEVERITY", "CODE", "SUBJECT", "MESSAGE"],
        widths: vec![8, 24, 12, 30],
        rows,
        total: 0,
        note: None,
    }
}

/// Detail lines (label, value) of a row, plus the findings about it.
pub fn detail(app: &App, pane: Pane, key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if pane == Pane::Hosts
        && let Some(h) = app.inventory.host(key)
    {
        out.push(("id".into(), h.id.clone()));
        out.push(("hostname".into(), h.hostname.clone()));
        out.push(("role".into(), h.role.to_string()));
        out.push(("profile".into(), h.profile.clone()));
        out.push(("system".into(), h.system.clone()));
        out.push(("region / zone".into(), format!("{} / {}", h.region, h.zone)));
        out.push(("ip".into(), format!("{}/{}", h.ip, h.mask_length)));
        out.push(("gateway".into(), h.gateway.to_string()));
        let ssh = format!(
            "{}{}:{}",
            h.ssh_user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            h.ssh_address(),
            h.ssh_port.unwrap_or(app.config.ssh.port)
        );
        out.push(("ssh".into(), ssh));
    } else {
        let t = table(app, pane);
        if let Some(r) = t.rows.iter().find(|r| r.key == key) {
            for (h, c) in t.header.iter().zip(&r.cells) {
                out.push((h.to_lowercase(), c.text.clone()));
            }
        }
    }
    let aliases: Vec<String> = match pane {
        Pane::Hosts => app
            .inventory
            .host(key)
            .map(|h| vec![h.hostname.clone()])
            .unwrap_or_default(),
        _ => app
            .inventory
            .by_name(key)
            .map(|h| vec![h.id.clone()])
            .unwrap_or_default(),
    };
    let related: Vec<_> = app
        .findings
        .iter()
        .filter(|f| f.subject == key || aliases.contains(&f.subject))
        .collect();
    out.push((String::new(), String::new()));
    if related.is_empty() {
        out.push(("findings".into(), "none".into()));
    }
    for f in related {
        out.push((format!("{} {}", f.severity, f.code), f.message.clone()));
    }
    out
}

/// `3d`, `5h`, `12m`, `40s`.
pub fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let s = (now.as_second() - then.as_second()).max(0);
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
