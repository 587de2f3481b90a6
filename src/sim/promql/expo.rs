//! Prometheus text exposition / OpenMetrics text into a [`MemStore`], and series back into
//! OpenMetrics text (what `promtool tsdb create-blocks-from openmetrics` reads).

use std::collections::BTreeMap;

use super::{Labels, MemStore, Series};

/// Timestamps in the text: Prometheus's format uses milliseconds, OpenMetrics seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Parse exposition text. Samples without a timestamp get `default_ts_ms`. Errors name the line.
pub fn parse(text: &str, format: Format, default_ts_ms: i64) -> Result<MemStore, String> {
    let mut by_labels: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |m: &str| format!("line {}: {m}: {line}", no + 1);
        let (labels, rest) = parse_series(line).map_err(|m| err(&m))?;
        let mut parts = rest.split_whitespace();
        let value = parts
            .next()
            .and_then(parse_value)
            .ok_or_else(|| err("bad value"))?;
        let ts = match parts.next() {
            None => default_ts_ms,
            Some(t) => match format {
                Format::Prometheus => t.parse::<i64>().map_err(|_| err("bad timestamp"))?,
                Format::OpenMetrics => {
                    let s: f64 = t.parse().map_err(|_| err("bad timestamp"))?;
                    (s * 1000.0).round() as i64
                }
            },
        };
        by_labels.entry(labels).or_default().push((ts, value));
    }
    Ok(MemStore {
        series: by_labels
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.0);
                samples.dedup_by_key(|s| s.0);
                Series { labels, samples }
            })
            .collect(),
    })
}

/// `name{a="b",c="d"} rest` → labels (with `__name__`) and `rest`.
fn parse_series(line: &str) -> Result<(Labels, &str), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let mut labels = Labels::new();
    labels.insert("__name__".into(), line[..name_end].to_string());
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end: usize;
        loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(&(i, c)) = chars.peek() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                end = i + 1;
                break;
            }
            let eq = r[i..].find('=').ok_or("label without =")? + i;
            let key = r[i..eq].trim().to_string();
            while let Some((j, _)) = chars.peek() {
                if *j <= eq {
                    chars.next();
                } else {
                    break;
                }
            }
            if chars.next().map(|x| x.1) != Some('"') {
                return Err("label value must be quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated label value".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.insert(key, value);
        }
        rest = &r[end..];
    }
    Ok((labels, rest.trim_start()))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Series as OpenMetrics text (untyped families, timestamps in seconds, `# EOF` at the end).
/// Series of one metric name stay together, as OpenMetrics requires.
pub fn to_openmetrics(series: &[Series]) -> String {
    let mut sorted: Vec<&Series> = series.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    sorted.sort_by(|a, b| a.labels.get("__name__").cmp(&b.labels.get("__name__")));
    let mut out = String::new();
    for s in sorted {
        let name = s.labels.get("__name__").map_or("", String::as_str);
        let lbl: Vec<String> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        for (t, v) in &s.samples {
            let secs = *t as f64 / 1000.0;
            out.push_str(&format!(
                "{name}{{{}}} {} {secs}\n",
                lbl.join(","),
                super::api::fmt_value(*v)
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition() {
        let text = "# HELP x y\n# TYPE up gauge\nup{job=\"node\",instance=\"a:1\"} 1\nh_bucket{le=\"+Inf\",q=\"a\\\"b\"} 3 1000\nplain 2.5e3\n";
        let s = parse(text, Format::Prometheus, 7).unwrap();
        assert_eq!(s.series.len(), 3);
        let h = s
            .series
            .iter()
            .find(|s| s.labels["__name__"] == "h_bucket")
            .unwrap();
        assert_eq!(h.labels["q"], "a\"b");
        assert_eq!(h.samples, vec![(1000, 3.0)]);
        let p = s
            .series
            .iter()
            .find(|s| s.labels["__name__"] == "plain")
            .unwrap();
        assert_eq!(p.samples, vec![(7, 2500.0)]);
        let back = parse(&to_openmetrics(&s.series), Format::OpenMetrics, 0).unwrap();
        assert_eq!(back.series, s.series);
        assert!(parse("x{a=b} 1", Format::Prometheus, 0).is_err());
    }
}
