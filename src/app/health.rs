//! The health line: the whole story of the homelab in a few items (nodes, etcd, volumes,
//! alerts, reboots, drifted hosts, the upgrade run), each with a tone and a glyph so it reads
//! without colour. Plain data: the UI fits the items into one line ([`fit`]), tests read them.

use crate::model::SourceStatus;
use crate::operations::closure_diff::fleet::DriftState;

use super::App;
use super::panes::Tone;
use super::upgrade::short_run_id;

/// One item of the health line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthItem {
    /// What it is about ("nodes", "etcd", "volumes", "alerts", "reboot", "drift", "upgrade").
    pub what: &'static str,
    pub tone: Tone,
    /// The long form (wide screens).
    pub full: String,
    /// The short form (narrow screens).
    pub short: String,
    /// How much it matters when it is fine: lower is kept longer.
    rank: u8,
}

impl HealthItem {
    fn new(what: &'static str, tone: Tone, full: String, short: String, rank: u8) -> Self {
        Self {
            what,
            tone,
            full,
            short,
            rank,
        }
    }

    /// The glyph of its tone: it reads with `NO_COLOR` too.
    pub fn glyph(&self) -> &'static str {
        glyph(self.tone)
    }

    /// Bad news is kept before good news; then by rank.
    fn keep_order(&self) -> (u8, u8) {
        let sev = match self.tone {
            Tone::Critical => 0,
            Tone::Warning => 1,
            Tone::Info => 2,
            Tone::Muted | Tone::Normal => 3,
            Tone::Ok => 4,
        };
        (sev, self.rank)
    }
}

/// The glyph of a tone: `●` critical, `▲` warning, `»` info, `✓` ok, `?` unknown.
pub fn glyph(t: Tone) -> &'static str {
    match t {
        Tone::Critical => "●",
        Tone::Warning => "▲",
        Tone::Info => "»",
        Tone::Ok => "✓",
        Tone::Muted | Tone::Normal => "?",
    }
}

/// What a source without data says: `None` when it is not configured (no item).
fn no_data(
    st: &SourceStatus,
    what: &'static str,
    label: &str,
    rank: u8,
    has_data: bool,
) -> Option<Option<HealthItem>> {
    if !st.configured {
        return Some(None);
    }
    if st.error.is_some() {
        return Some(Some(HealthItem::new(
            what,
            Tone::Critical,
            format!("{label} unreachable"),
            format!("{label} down"),
            rank,
        )));
    }
    (!has_data).then(|| {
        Some(HealthItem::new(
            what,
            Tone::Muted,
            format!("{label} waiting"),
            label.to_string(),
            rank,
        ))
    })
}

/// The items of the health line, most important first.
pub fn items(app: &App) -> Vec<HealthItem> {
    let mut out = Vec::new();
    let c = &app.snapshot.cluster;
    let e = &app.snapshot.etcd;
    // etcd
    match no_data(&e.status, "etcd", "etcd", 0, e.data.is_some()) {
        Some(item) => out.extend(item),
        None => {
            if let Some(st) = &e.data {
                let q = st.quorum();
                let (tone, tail, short_tail) = if !q.holds() {
                    (
                        Tone::Critical,
                        format!("quorum lost (needs {})", q.needed()),
                        "no quorum".to_string(),
                    )
                } else if q.tolerates() == 0 {
                    (Tone::Warning, "no failure tolerated".into(), "tol0".into())
                } else {
                    let n = q.tolerates();
                    let s = if n == 1 { "" } else { "s" };
                    (
                        Tone::Ok,
                        format!("tolerates {n} failure{s}"),
                        format!("tol{n}"),
                    )
                };
                out.push(HealthItem::new(
                    "etcd",
                    tone,
                    format!("etcd {}/{} healthy, {tail}", q.healthy, q.voting),
                    format!("etcd {}/{} {short_tail}", q.healthy, q.voting),
                    0,
                ));
            }
        }
    }
    // nodes and volumes
    match no_data(&c.status, "nodes", "nodes", 1, c.data.is_some()) {
        Some(item) => {
            out.extend(item);
            out.extend(no_data(&c.status, "volumes", "volumes", 2, false).flatten());
        }
        None => {
            if let Some(cl) = &c.data {
                let total = cl.nodes.len();
                let ready = cl.nodes.iter().filter(|n| n.ready == Some(true)).count();
                let cordoned = cl.nodes.iter().filter(|n| n.unschedulable).count();
                let tone = if ready < total {
                    Tone::Critical
                } else if cordoned > 0 {
                    Tone::Warning
                } else {
                    Tone::Ok
                };
                let (cf, cs) = if cordoned > 0 {
                    (
                        format!(" ({cordoned} cordoned)"),
                        format!(" {cordoned}cord"),
                    )
                } else {
                    (String::new(), String::new())
                };
                out.push(HealthItem::new(
                    "nodes",
                    tone,
                    format!("nodes {ready}/{total} Ready{cf}"),
                    format!("nodes {ready}/{total}{cs}"),
                    1,
                ));
                if cl.longhorn.error.is_some() {
                    // Longhorn is its own source: unread, not "all healthy" from old rows.
                    out.push(HealthItem::new(
                        "volumes",
                        Tone::Critical,
                        "volumes unreachable".into(),
                        "volumes down".into(),
                        2,
                    ));
                } else if cl.longhorn.installed {
                    out.push(volumes(cl));
                }
            }
        }
    }
    // alerts
    let m = &app.snapshot.mimir;
    match no_data(&m.status, "alerts", "alerts", 3, m.data.is_some()) {
        Some(item) => out.extend(item),
        None => {
            if let Some(st) = &m.data {
                let n = st.alerts.iter().filter(|a| !a.silenced).count();
                let crit = st
                    .alerts
                    .iter()
                    .any(|a| !a.silenced && a.severity == "critical");
                let tone = match (n, crit) {
                    (0, _) => Tone::Ok,
                    (_, true) => Tone::Critical,
                    _ => Tone::Warning,
                };
                let s = if n == 1 { "" } else { "s" };
                out.push(HealthItem::new(
                    "alerts",
                    tone,
                    format!("{n} alert{s} firing"),
                    format!("{n} alert{s}"),
                    3,
                ));
            }
        }
    }
    // hosts needing a reboot
    let reboot: Vec<&str> = app
        .inventory
        .hosts
        .iter()
        .filter(|h| {
            app.snapshot
                .hosts
                .get(&h.id)
                .and_then(|s| s.data.as_ref())
                .is_some_and(|f| f.reboot_needed == Some(true))
        })
        .map(|h| h.id.as_str())
        .collect();
    if !reboot.is_empty() {
        let n = reboot.len();
        let full = if n <= 2 {
            format!("reboot needed: {}", reboot.join(", "))
        } else {
            format!("{n} hosts need a reboot")
        };
        out.push(HealthItem::new(
            "reboot",
            Tone::Warning,
            full,
            format!("{n} reboot"),
            4,
        ));
    }
    out.extend(drift(app));
    if let Some(item) = upgrade(app) {
        out.push(item);
    }
    if out.is_empty() {
        out.push(HealthItem::new(
            "sources",
            Tone::Muted,
            "no health data: no source is configured".into(),
            "no health data".into(),
            0,
        ));
    }
    out
}

fn volumes(cl: &crate::model::cluster::ClusterState) -> HealthItem {
    let lh = &cl.longhorn;
    let total = lh.volumes.len();
    let count = |r: &str| lh.volumes.iter().filter(|v| v.robustness == r).count();
    let healthy = count("healthy");
    let degraded = count("degraded");
    let faulted = count("faulted");
    let rebuilding_set = lh.rebuilding_volumes();
    let is_rebuilding =
        |v: &crate::model::cluster::Volume| rebuilding_set.contains(v.name.as_str());
    let rebuilding = lh.volumes.iter().filter(|v| is_rebuilding(v)).count();
    let tone = if faulted > 0 {
        Tone::Critical
    } else if healthy < total || rebuilding > 0 {
        Tone::Warning
    } else {
        Tone::Ok
    };
    let mut parts = Vec::new();
    let mut short = Vec::new();
    // A volume rebuilding is degraded too: the short form counts it once, as rebuilding.
    let degraded_idle = lh
        .volumes
        .iter()
        .filter(|v| v.robustness == "degraded" && !is_rebuilding(v))
        .count();
    for (n, long, brief, n_short) in [
        (faulted, "faulted", "flt", faulted),
        (degraded, "degraded", "deg", degraded_idle),
        (rebuilding, "rebuilding", "rbd", rebuilding),
    ] {
        if n > 0 {
            parts.push(format!("{n} {long}"));
        }
        if n_short > 0 {
            short.push(format!("{n_short}{brief}"));
        }
    }
    let tail = |p: &[String]| {
        if p.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.join(", "))
        }
    };
    HealthItem::new(
        "volumes",
        tone,
        format!("volumes {healthy}/{total} healthy{}", tail(&parts)),
        format!(
            "vol {healthy}/{total}{}",
            short.iter().map(|s| format!(" {s}")).collect::<String>()
        ),
        2,
    )
}

/// Hosts that run a system the flake does not build (the Hosts pane's DRIFT column): none
/// without a flake. A pending update is not drift.
fn drift(app: &App) -> Option<HealthItem> {
    let states: Vec<(&str, DriftState)> = app
        .inventory
        .hosts
        .iter()
        .map(|h| Some((h.id.as_str(), app.drift_of_host(&h.id)?.state)))
        .collect::<Option<_>>()?;
    if states.is_empty() {
        return None;
    }
    let drifted: Vec<&str> = states
        .iter()
        .filter(|(_, s)| *s == DriftState::Drifted)
        .map(|(id, _)| *id)
        .collect();
    let unknown = states
        .iter()
        .filter(|(_, s)| *s == DriftState::Unknown)
        .count();
    let n = drifted.len();
    let item = |tone, full: String, short: &str| {
        HealthItem::new("drift", tone, full, short.to_string(), 5)
    };
    Some(if n > 0 {
        let full = match n {
            1 => format!("1 host drifted: {}", drifted[0]),
            2 => format!("2 hosts drifted: {}", drifted.join(", ")),
            _ => format!("{n} hosts drifted"),
        };
        item(Tone::Warning, full, &format!("{n} drift"))
    } else if app.drift.task.is_some() && app.drift.targets.is_none() {
        item(Tone::Muted, "drift: evaluating".into(), "drift…")
    } else if unknown == states.len() {
        item(Tone::Muted, "drift unknown".into(), "drift ?")
    } else if unknown > 0 {
        item(
            Tone::Muted,
            format!("no drift seen ({unknown} unknown)"),
            "drift ?",
        )
    } else {
        item(Tone::Ok, "no host drifted".into(), "no drift")
    })
}

/// The upgrade run followed: which run, where it is.
fn upgrade(app: &App) -> Option<HealthItem> {
    let u = &app.upgrade;
    if let Some(i) = &u.interrupted {
        let at =
            i.at.as_ref()
                .map(|(n, s)| format!(" at {n} {s}"))
                .unwrap_or_default();
        return Some(HealthItem::new(
            "upgrade",
            Tone::Warning,
            format!("upgrade {} interrupted{at}", short_run_id(&i.run_id)),
            "upgrade interrupted".into(),
            0,
        ));
    }
    let p = u.progress.as_ref().filter(|p| !p.is_finished())?;
    let (done, total) = p.counts();
    let (node, step) = p
        .current()
        .map(|n| {
            (
                n.node.clone(),
                n.steps
                    .last()
                    .map(|s| format!(" {}", s.step))
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let whose = match (u.found, u.pid) {
        (true, Some(pid)) => format!("run {} pid {pid}", short_run_id(&p.run_id)),
        _ => format!("run {}", short_run_id(&p.run_id)),
    };
    let paused = if u.paused { " paused" } else { "" };
    // A one-node maintenance (`D`, `drain NODE`) reads as such, not as an upgrade of one.
    if crate::operations::upgrade::drain::is_drain_run(&p.run_id) {
        return Some(HealthItem::new(
            "upgrade",
            Tone::Info,
            format!("maintenance {node}{step}{paused} ({whose})"),
            format!("maint {node}{step}"),
            0,
        ));
    }
    Some(HealthItem::new(
        "upgrade",
        Tone::Info,
        format!("upgrade {done}/{total} {node}{step}{paused} ({whose})"),
        format!("upg {done}/{total} {node}{step}"),
        0,
    ))
}

/// How the items fit in `width` columns: which items show (in order) in which form, and how
/// many were left out. Items go short first (the least important first), then the spacing
/// tightens, then the least important are left out (the marker counts them).
pub fn fit(items: &[HealthItem], width: usize) -> Fitted<'_> {
    // The glyph and a space before the text; tight, the glyph alone.
    let cell = |i: &HealthItem, short: bool, tight: bool| {
        2 - usize::from(tight) + if short { &i.short } else { &i.full }.chars().count()
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|i| items[*i].keep_order());
    let mut f = Fitted {
        shown: Vec::new(),
        dropped: 0,
        tight: false,
    };
    let mut short = vec![false; items.len()];
    let mut kept = vec![true; items.len()];
    let need = |short: &[bool], kept: &[bool], tight: bool| {
        let n_kept = kept.iter().filter(|k| **k).count();
        let dropped = items.len() - n_kept;
        let cells: usize = (0..items.len())
            .filter(|i| kept[*i])
            .map(|i| cell(&items[i], short[i], tight))
            .sum();
        let sep = if tight { 1 } else { 2 };
        let lead = usize::from(!tight);
        lead + cells + sep * n_kept.saturating_sub(1) + if dropped > 0 { sep + 3 } else { 0 }
    };
    for i in order.iter().rev() {
        if need(&short, &kept, false) <= width {
            break;
        }
        short[*i] = true;
    }
    f.tight = need(&short, &kept, false) > width;
    for i in order.iter().rev() {
        if need(&short, &kept, f.tight) <= width {
            break;
        }
        kept[*i] = false;
    }
    f.shown = (0..items.len())
        .filter(|i| kept[*i])
        .map(|i| (&items[i], short[i]))
        .collect();
    f.dropped = kept.iter().filter(|k| !**k).count();
    f
}

/// Items as they fit in one line.
#[derive(Debug)]
pub struct Fitted<'a> {
    /// The items shown, in order, and whether in their short form.
    pub shown: Vec<(&'a HealthItem, bool)>,
    /// How many were left out.
    pub dropped: usize,
    /// One space between items, none before the first, none after each glyph.
    pub tight: bool,
}
