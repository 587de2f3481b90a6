//! Metrics (Mimir) and Logs (Loki) panes.

use crate::model::metrics::{LogLevel, MetricSeries};

use super::{App, Cell, Pane, Row, Table, Tone, source_note};

/// Block characters for sparklines, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `width` characters over the series, scaled to `[0, max]` (or to the
/// series' own maximum when `max` is `None`); each character averages its share of points.
pub fn sparkline(s: &MetricSeries, width: usize, max: Option<f64>) -> String {
    if s.points.is_empty() || width == 0 {
        return String::new();
    }
    let vals: Vec<f64> = s
        .points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    if vals.is_empty() {
        return String::new();
    }
    let top = max
        .unwrap_or_else(|| vals.iter().copied().fold(0.0, f64::max))
        .max(f64::MIN_POSITIVE);
    let n = vals.len();
    let cols = width.min(n);
    (0..cols)
        .map(|c| {
            let (a, b) = (c * n / cols, ((c + 1) * n / cols).max(c * n / cols + 1));
            let avg = vals[a..b].iter().sum::<f64>() / (b - a) as f64;
            let idx = ((avg / top) * 7.0).round().clamp(0.0, 7.0) as usize;
            BARS[idx]
        })
        .collect()
}

fn pct(s: &MetricSeries, warn: f64, crit: f64) -> Cell {
    match s.current {
        None => Cell::toned("no data", Tone::Muted),
        Some(v) => {
            let tone = if v >= crit {
                Tone::Critical
            } else if v >= warn {
                Tone::Warning
            } else {
                Tone::Normal
            };
            Cell::toned(format!("{v:>3.0}% {}", sparkline(s, 12, Some(100.0))), tone)
        }
    }
}

fn rate(s: &MetricSeries) -> Cell {
    match s.current {
        None => Cell::toned("–", Tone::Muted),
        Some(v) => Cell::new(format!(
            "{}/s {}",
            super::bytes(v.max(0.0) as u64),
            sparkline(s, 8, None)
        )),
    }
}

pub(super) fn metrics(app: &App) -> Table {
    let m = &app.snapshot.mimir;
    let th = &app.config.thresholds;
    let rows = m
        .data
        .as_ref()
        .map(|st| {
            app.inventory
                .hosts
                .iter()
                .map(|h| {
                    let hm = st.host(&h.id);
                    let cells = match hm {
                        Some(hm) if !hm.is_no_data() => vec![
                            Cell::new(&h.id),
                            pct(&hm.cpu_pct, 80.0, 95.0),
                            pct(&hm.memory_pct, 85.0, 95.0),
                            pct(
                                &hm.root_fs_pct,
                                th.host_disk_warning_pct,
                                th.host_disk_critical_pct,
                            ),
                            rate(&hm.net_rx_bps),
                            rate(&hm.net_tx_bps),
                        ],
                        _ => vec![
                            Cell::new(&h.id),
                            Cell::toned("no data", Tone::Muted),
                            Cell::new(""),
                            Cell::new(""),
                            Cell::new(""),
                            Cell::new(""),
                        ],
                    };
                    Row {
                        key: h.id.clone(),
                        aliases: vec![h.hostname.clone()],
                        cells,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let firing = m
        .data
        .as_ref()
        .map_or(0, |s| s.alerts.iter().filter(|a| !a.silenced).count());
    let silenced = m
        .data
        .as_ref()
        .map_or(0, |s| s.alerts.iter().filter(|a| a.silenced).count());
    let subtitle = m.data.as_ref().map(|_| {
        let muted = if silenced > 0 {
            format!(", {silenced} silenced")
        } else {
            String::new()
        };
        if firing == 0 {
            (format!("no alerts firing{muted}"), Tone::Ok)
        } else {
            (format!("{firing} alert(s) firing{muted}"), Tone::Critical)
        }
    });
    Table {
        drop_order: vec![0, 0, 0, 1, 3, 2],
        note: source_note(&m.status, "Mimir", "[mimir] url", m.data.is_some())
            .or_else(|| failing_queries(app)),
        subtitle,
        ..Table::new(
            vec!["HOST", "CPU", "MEMORY", "ROOT FS", "NET RX", "NET TX"],
            vec![12, 17, 17, 17, 19, 19],
            rows,
        )
    }
}

/// A query failing while the others answer: which, since when, why (and how many more).
fn failing_queries(app: &App) -> Option<(String, Tone)> {
    let st = app.snapshot.mimir.data.as_ref()?;
    let mut failing = st.failing_queries();
    let (name, since, why) = failing.next()?;
    let more = failing.count();
    let when = jiff::Timestamp::from_second(since)
        .map(|t| t.to_zoned(app.tz.clone()).strftime("%H:%M:%S").to_string())
        .unwrap_or_default();
    let tail = if more > 0 {
        format!(" (+{more} more failing: see Findings)")
    } else {
        String::new()
    };
    Some((
        format!("Mimir query {name} failing since {when}: {why}{tail}"),
        Tone::Warning,
    ))
}

/// The host the Logs pane follows: the Hosts pane's selection.
pub fn logs_host(app: &App) -> Option<String> {
    app.selected_key(Pane::Hosts)
}

pub(super) fn logs(app: &App) -> Table {
    let l = &app.snapshot.loki;
    let host = logs_host(app);
    let lines = host
        .as_ref()
        .and_then(|h| l.data.as_ref().and_then(|st| st.hosts.get(h)));
    let rows = lines
        .map(|hl| {
            hl.lines
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    let tone = match line.level {
                        LogLevel::Critical | LogLevel::Error => Tone::Critical,
                        LogLevel::Warning => Tone::Warning,
                        LogLevel::Debug => Tone::Muted,
                        _ => Tone::Normal,
                    };
                    let time = line
                        .timestamp()
                        .map(|t| t.to_zoned(app.tz.clone()).strftime("%H:%M:%S").to_string())
                        .unwrap_or_default();
                    let level = format!("{:?}", line.level).to_lowercase();
                    Row {
                        key: format!("{i}"),
                        aliases: vec![],
                        cells: vec![
                            Cell::new(time),
                            Cell::toned(level, tone),
                            Cell::toned(&line.line, tone),
                        ],
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let error = host
        .as_ref()
        .and_then(|h| l.data.as_ref().and_then(|st| st.errors.get(h)))
        .map(|e| (format!("Loki: {e}"), Tone::Critical));
    Table {
        drop_order: vec![2, 1, 0],
        note: source_note(&l.status, "Loki", "[loki] url", l.data.is_some()).or(error),
        subtitle: host.map(|h| (format!("{h} (select in Hosts)"), Tone::Muted)),
        ..Table::new(vec!["TIME", "LEVEL", "LINE"], vec![8, 8, 40], rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_and_averages() {
        let s = MetricSeries {
            current: Some(50.0),
            points: (0..8).map(|i| (i, i as f64 * 100.0 / 7.0)).collect(),
        };
        assert_eq!(sparkline(&s, 8, Some(100.0)), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&s, 4, Some(100.0)).chars().count(), 4);
        assert_eq!(sparkline(&MetricSeries::default(), 8, None), "");
        let flat = MetricSeries {
            current: Some(0.0),
            points: vec![(0, 0.0), (1, 0.0)],
        };
        assert_eq!(sparkline(&flat, 8, None), "▁▁");
    }
}
