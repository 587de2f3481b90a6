//! PromQL's functions: the range functions (`rate`, `irate`, `increase`, `delta`, `idelta`,
//! `*_over_time`) with Prometheus 2.x's extrapolation, `histogram_quantile` over classic
//! buckets, and the element-wise ones (`abs`, `clamp_min`, `vector`, `scalar`, `time`, ...).

use std::collections::BTreeMap;
use std::sync::Arc;

use promql_parser::parser::{Call, Expr};

use super::check::offset_ms;
use super::{EvalError, Evaluator, QueryValue, RangeFn, Sample, check_unique, unsupported};
use crate::sim::promql::Labels;

impl Evaluator<'_> {
    pub(super) fn call(&mut self, c: &Call, t: i64) -> Result<QueryValue, EvalError> {
        let name = c.func.name;
        let args = &c.args.args;
        let range_fn = |f: RangeFn, this: &mut Self| -> Result<QueryValue, EvalError> {
            let Expr::MatrixSelector(ms) = args[0].as_ref() else {
                return Err(unsupported(
                    "range functions over anything but a range selector",
                ));
            };
            let range = ms.range.as_millis() as i64;
            let end = t - offset_ms(&ms.vs.offset);
            let mut out = Vec::new();
            let (series, spans) = this.window(&ms.vs, range, t);
            for (i, pts) in spans {
                if let Some(v) = f(&pts, end - range, end) {
                    out.push(Sample {
                        labels: series[i].nameless.clone(),
                        value: v,
                    });
                }
            }
            check_unique(&out)?;
            Ok(QueryValue::Vector(out))
        };
        match name {
            "rate" => range_fn(|s, a, b| extrapolated(s, a, b, true, true), self),
            "increase" => range_fn(|s, a, b| extrapolated(s, a, b, true, false), self),
            "delta" => range_fn(|s, a, b| extrapolated(s, a, b, false, false), self),
            "irate" => range_fn(|s, _, _| instant_delta(s, true), self),
            "idelta" => range_fn(|s, _, _| instant_delta(s, false), self),
            "avg_over_time" => range_fn(
                |s, _, _| {
                    let mut mean = 0.0;
                    let mut n = 0.0;
                    for (_, v) in s {
                        n += 1.0;
                        mean += (v - mean) / n;
                    }
                    Some(mean)
                },
                self,
            ),
            "sum_over_time" => range_fn(|s, _, _| Some(s.iter().map(|x| x.1).sum()), self),
            "count_over_time" => range_fn(|s, _, _| Some(s.len() as f64), self),
            "min_over_time" => range_fn(
                |s, _, _| {
                    Some(
                        s.iter()
                            .map(|x| x.1)
                            .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }),
                    )
                },
                self,
            ),
            "max_over_time" => range_fn(
                |s, _, _| {
                    Some(
                        s.iter()
                            .map(|x| x.1)
                            .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }),
                    )
                },
                self,
            ),
            "histogram_quantile" => {
                let q = self.scalar_arg(&args[0], t)?;
                let v = self.vector_arg(&args[1], t)?;
                Ok(QueryValue::Vector(histogram_quantile(q, v)))
            }
            "abs" | "ceil" | "floor" | "sqrt" | "exp" | "ln" | "log2" | "log10" => {
                let f: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "sqrt" => f64::sqrt,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    _ => f64::log10,
                };
                let v = self.vector_arg(&args[0], t)?;
                let out: Vec<Sample> = v
                    .into_iter()
                    .map(|s| Sample {
                        labels: self.names.drop(s.labels),
                        value: f(s.value),
                    })
                    .collect();
                check_unique(&out)?;
                Ok(QueryValue::Vector(out))
            }
            "clamp_min" | "clamp_max" => {
                let v = self.vector_arg(&args[0], t)?;
                let bound = self.scalar_arg(&args[1], t)?;
                let out: Vec<Sample> = v
                    .into_iter()
                    .map(|s| Sample {
                        labels: self.names.drop(s.labels),
                        value: if name == "clamp_min" {
                            s.value.max(bound)
                        } else {
                            s.value.min(bound)
                        },
                    })
                    .collect();
                check_unique(&out)?;
                Ok(QueryValue::Vector(out))
            }
            "vector" => {
                let v = self.scalar_arg(&args[0], t)?;
                Ok(QueryValue::Vector(vec![Sample {
                    labels: Arc::new(Labels::new()),
                    value: v,
                }]))
            }
            "scalar" => {
                let v = self.vector_arg(&args[0], t)?;
                Ok(QueryValue::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "time" => Ok(QueryValue::Scalar(t as f64 / 1000.0)),
            other => Err(unsupported(&format!("function {other}()"))),
        }
    }
}

/// Prometheus's `extrapolatedRate` (2.x).
fn extrapolated(
    pts: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let mut correction = 0.0;
    let mut last = 0.0;
    for (_, v) in pts {
        if counter && *v < last {
            correction += last;
        }
        last = *v;
    }
    let first = pts[0];
    let lastp = pts[pts.len() - 1];
    let mut result = last - first.1 + correction;
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (range_end - lastp.0) as f64 / 1000.0;
    let sampled = (lastp.0 - first.0) as f64 / 1000.0;
    let avg_between = sampled / (pts.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_between / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_between / 2.0
    };
    result *= interval / sampled;
    if rate {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus's `instantValue` (`irate`, `idelta`).
fn instant_delta(pts: &[(i64, f64)], rate: bool) -> Option<f64> {
    let n = pts.len();
    if n < 2 {
        return None;
    }
    let (pt, pv) = pts[n - 2];
    let (lt, lv) = pts[n - 1];
    let mut result = if rate && lv < pv { lv } else { lv - pv };
    let dt = lt - pt;
    if dt == 0 {
        return None;
    }
    if rate {
        result /= dt as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus's `bucketQuantile` over classic histogram buckets (`le` label).
fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for s in v {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        let Some(upper) = parse_le(le) else { continue };
        let mut key = (*s.labels).clone();
        key.remove("le");
        key.remove("__name__");
        groups.entry(key).or_default().push((upper, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels: Arc::new(labels),
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

/// A bucket's `le` bound.
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// The `q`-quantile of `(upper bound, cumulative count)` buckets.
pub(super) fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    match b.last() {
        Some(l) if l.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce equal upper bounds.
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (u, n) in b {
        match c.last_mut() {
            Some(last) if last.0 == u => last.1 += n,
            _ => c.push((u, n)),
        }
    }
    // Ensure monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for x in c.iter_mut() {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = c.len() - 1;
    let idx = c[..n].partition_point(|x| x.1 < rank);
    if idx == n {
        return c[n - 1].0;
    }
    if idx == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let mut start = 0.0;
    let end = c[idx].0;
    let mut count = c[idx].1;
    if idx > 0 {
        start = c[idx - 1].0;
        count -= c[idx - 1].1;
        rank -= c[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}
