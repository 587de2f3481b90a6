//! PromQL evaluation (Prometheus 2.x semantics) over a [`Provider`]: the evaluator, its
//! selectors and range windows, instant and range queries. `check` decides what is
//! supported, `functions` and `operators` implement the rest.

mod check;
mod functions;
mod operators;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::{Expr, VectorSelector};

pub use self::check::{check_supported, parse, parse_selector};
use self::check::{offset_ms, selector_matchers};
use super::{Labels, Provider, Series};

/// Prometheus's default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;
/// Prometheus refuses range queries with more points per series than this.
pub const MAX_POINTS: i64 = 11_000;

/// Why a query was refused: `BadData` is HTTP 400 (`bad_data`), `Execution` HTTP 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    BadData(String),
    Execution(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::BadData(m) | EvalError::Execution(m) => f.write_str(m),
        }
    }
}

fn unsupported(what: &str) -> EvalError {
    EvalError::BadData(format!(
        "unsupported by the simulator's PromQL evaluator: {what}"
    ))
}

/// One element of an instant vector (labels shared, so a step copies no strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Arc<Labels>,
    pub value: f64,
}

/// A fetched series: its labels, the same without `__name__`, and its samples.
struct Fetched {
    labels: Arc<Labels>,
    nameless: Arc<Labels>,
    samples: Vec<(i64, f64)>,
}

/// A function of a range vector's points and the window `[start, end]`.
type RangeFn = fn(&[(i64, f64)], i64, i64) -> Option<f64>;

/// Per series with samples in a window: its index among the fetched series and the points.
type Spans = Vec<(usize, Vec<(i64, f64)>)>;

/// Drops `__name__`, reusing the precomputed name-less labels of fetched series.
#[derive(Default)]
struct NameMemo(HashMap<usize, Arc<Labels>>);

impl NameMemo {
    fn drop(&self, l: Arc<Labels>) -> Arc<Labels> {
        if !l.contains_key("__name__") {
            return l;
        }
        // Only pointers of live fetched series are keys (the cache keeps them alive).
        if let Some(n) = self.0.get(&(Arc::as_ptr(&l) as usize)) {
            return n.clone();
        }
        let mut m = (*l).clone();
        m.remove("__name__");
        Arc::new(m)
    }
}

fn hash_labels<'l>(it: impl Iterator<Item = (&'l String, &'l String)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in it {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// Evaluates one parsed query over `[start_ms, end_ms]` (an instant query has start = end).
pub struct Evaluator<'a> {
    provider: &'a dyn Provider,
    start_ms: i64,
    end_ms: i64,
    cache: HashMap<String, Arc<Vec<Fetched>>>,
    names: NameMemo,
}

impl<'a> Evaluator<'a> {
    pub fn new(provider: &'a dyn Provider, start_ms: i64, end_ms: i64) -> Self {
        Self {
            provider,
            start_ms,
            end_ms,
            cache: HashMap::new(),
            names: NameMemo::default(),
        }
    }

    /// The selector's series over the whole query window (fetched once per query).
    fn fetch(&mut self, vs: &VectorSelector, range_ms: i64) -> Arc<Vec<Fetched>> {
        let off = offset_ms(&vs.offset);
        let key = format!("{vs}|{range_ms}|{off}");
        if let Some(s) = self.cache.get(&key) {
            return s.clone();
        }
        let from = self.start_ms - off - range_ms.max(LOOKBACK_MS);
        let to = self.end_ms - off;
        let fetched: Vec<Fetched> = self
            .provider
            .select(&selector_matchers(vs), from, to)
            .into_iter()
            .map(|s| {
                let mut nameless = s.labels.clone();
                nameless.remove("__name__");
                Fetched {
                    labels: Arc::new(s.labels),
                    nameless: Arc::new(nameless),
                    samples: s.samples,
                }
            })
            .collect();
        for f in &fetched {
            self.names
                .0
                .insert(Arc::as_ptr(&f.labels) as usize, f.nameless.clone());
        }
        let s = Arc::new(fetched);
        self.cache.insert(key, s.clone());
        s
    }

    pub fn eval(&mut self, e: &Expr, t: i64) -> Result<QueryValue, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(QueryValue::Scalar(n.val)),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                QueryValue::Scalar(v) => Ok(QueryValue::Scalar(-v)),
                QueryValue::Vector(vs) => Ok(QueryValue::Vector(
                    vs.into_iter()
                        .map(|s| Sample {
                            labels: self.names.drop(s.labels),
                            value: -s.value,
                        })
                        .collect(),
                )),
                QueryValue::Matrix(_) => Err(unsupported("unary minus on a range vector")),
            },
            Expr::VectorSelector(vs) => {
                let series = self.fetch(vs, 0);
                let rt = t - offset_ms(&vs.offset);
                let mut out = Vec::new();
                for s in series.iter() {
                    let i = s.samples.partition_point(|(ts, _)| *ts <= rt);
                    if i == 0 {
                        continue;
                    }
                    let (ts, v) = s.samples[i - 1];
                    if ts < rt - LOOKBACK_MS || is_stale(v) {
                        continue;
                    }
                    out.push(Sample {
                        labels: s.labels.clone(),
                        value: v,
                    });
                }
                Ok(QueryValue::Vector(out))
            }
            Expr::MatrixSelector(ms) => {
                let range = ms.range.as_millis() as i64;
                let (series, spans) = self.window(&ms.vs, range, t);
                Ok(QueryValue::Matrix(
                    spans
                        .into_iter()
                        .map(|(i, pts)| Series {
                            labels: (*series[i].labels).clone(),
                            samples: pts,
                        })
                        .collect(),
                ))
            }
            Expr::Call(c) => self.call(c, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::StringLiteral(_) | Expr::Subquery(_) | Expr::Extension(_) => {
                Err(unsupported("this expression"))
            }
        }
    }

    /// Samples of each series in `[t - offset - range, t - offset]` (Prometheus 2.x: closed):
    /// the fetched series and, per non-empty window, its index and points.
    fn window(&mut self, vs: &VectorSelector, range: i64, t: i64) -> (Arc<Vec<Fetched>>, Spans) {
        let series = self.fetch(vs, range);
        let end = t - offset_ms(&vs.offset);
        let start = end - range;
        let spans = series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let a = s.samples.partition_point(|(ts, _)| *ts < start);
                let b = s.samples.partition_point(|(ts, _)| *ts <= end);
                let pts: Vec<(i64, f64)> = s.samples[a..b]
                    .iter()
                    .copied()
                    .filter(|(_, v)| !is_stale(*v))
                    .collect();
                (!pts.is_empty()).then_some((i, pts))
            })
            .collect();
        (series, spans)
    }

    fn vector_arg(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>, EvalError> {
        match self.eval(e, t)? {
            QueryValue::Vector(v) => Ok(v),
            _ => Err(EvalError::BadData("expected an instant vector".into())),
        }
    }

    fn scalar_arg(&mut self, e: &Expr, t: i64) -> Result<f64, EvalError> {
        match self.eval(e, t)? {
            QueryValue::Scalar(v) => Ok(v),
            _ => Err(EvalError::BadData("expected a scalar".into())),
        }
    }
}

const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Prometheus refuses vectors with two elements of the same label set.
fn check_unique(v: &[Sample]) -> Result<(), EvalError> {
    let mut seen = HashSet::new();
    for s in v {
        if !seen.insert(hash_labels(s.labels.iter())) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// An instant query at `t_ms`.
pub fn instant(provider: &dyn Provider, expr: &Expr, t_ms: i64) -> Result<QueryValue, EvalError> {
    let mut ev = Evaluator::new(provider, t_ms, t_ms);
    let v = ev.eval(expr, t_ms)?;
    if let QueryValue::Vector(v) = &v {
        check_unique(v)?;
    }
    Ok(v)
}

/// A range query: the expression at every step from `start_ms` to `end_ms`; series sorted by
/// labels, as Prometheus returns them.
pub fn range(
    provider: &dyn Provider,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Vec<Series>, EvalError> {
    if step_ms <= 0 {
        return Err(EvalError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(EvalError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if (end_ms - start_ms) / step_ms >= MAX_POINTS {
        return Err(EvalError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    if matches!(expr, Expr::MatrixSelector(_)) {
        return Err(EvalError::BadData(
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
        ));
    }
    let mut ev = Evaluator::new(provider, start_ms, end_ms);
    let mut out: BTreeMap<Arc<Labels>, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start_ms;
    while t <= end_ms {
        match ev.eval(expr, t)? {
            QueryValue::Scalar(v) => out.entry(Arc::new(Labels::new())).or_default().push((t, v)),
            QueryValue::Vector(vs) => {
                check_unique(&vs)?;
                for s in vs {
                    out.entry(s.labels).or_default().push((t, s.value));
                }
            }
            QueryValue::Matrix(_) => {
                return Err(EvalError::BadData(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
        }
        t += step_ms;
    }
    Ok(out
        .into_iter()
        .map(|(labels, samples)| Series {
            labels: Arc::unwrap_or_clone(labels),
            samples,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::MemStore;
    use super::functions::bucket_quantile;
    use super::*;

    fn store() -> MemStore {
        let mut s = MemStore::default();
        let mk = |name: &str, extra: &[(&str, &str)], f: &dyn Fn(i64) -> f64| Series {
            labels: std::iter::once(("__name__".to_string(), name.to_string()))
                .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
            samples: (0..=40).map(|i| (i * 15_000, f(i * 15_000))).collect(),
        };
        s.series
            .push(mk("c", &[("instance", "a")], &|t| t as f64 / 1000.0));
        s.series
            .push(mk("c", &[("instance", "b")], &|t| 2.0 * t as f64 / 1000.0));
        s.series.push(mk("g", &[("instance", "a")], &|_| 5.0));
        s.series.push(mk("g", &[("instance", "b")], &|_| 7.0));
        s
    }

    fn inst(q: &str, t: i64) -> Result<QueryValue, EvalError> {
        instant(&store(), &parse(q)?, t)
    }

    fn vals(v: QueryValue) -> Vec<(String, f64)> {
        let QueryValue::Vector(v) = v else {
            panic!("{v:?}")
        };
        let mut out: Vec<_> = v
            .into_iter()
            .map(|s| (format!("{:?}", s.labels), s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn rate_of_a_linear_counter_is_its_slope() {
        let v = vals(inst("rate(c[2m])", 600_000).unwrap());
        assert_eq!(v.len(), 2);
        assert!((v[0].1 - 1.0).abs() < 1e-9, "{v:?}");
        assert!((v[1].1 - 2.0).abs() < 1e-9, "{v:?}");
        let s = vals(inst("sum(rate(c[2m]))", 600_000).unwrap());
        assert!((s[0].1 - 3.0).abs() < 1e-9);
    }

    #[test]
    fn binary_ops_and_filters() {
        let v = vals(inst("g * 2 > 12", 600_000).unwrap());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1, 14.0);
        let v = vals(inst("g > bool 6", 600_000).unwrap());
        assert_eq!(v.iter().map(|x| x.1).collect::<Vec<_>>(), vec![0.0, 1.0]);
        let v = vals(inst("g / on (instance) rate(c[1m])", 600_000).unwrap());
        assert!((v[0].1 - 5.0).abs() < 1e-9 && (v[1].1 - 3.5).abs() < 1e-9);
        let v = vals(inst("g and on (instance) g > 6", 600_000).unwrap());
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn lookback_and_unsupported() {
        assert_eq!(vals(inst("g", 600_000 + LOOKBACK_MS).unwrap()).len(), 2);
        assert_eq!(vals(inst("g", 600_001 + LOOKBACK_MS).unwrap()).len(), 0);
        for q in [
            "topk(1, g)",
            "g[5m:1m]",
            "label_replace(g, \"a\", \"b\", \"c\", \"d\")",
        ] {
            assert!(matches!(parse(q), Err(EvalError::BadData(_))), "{q}");
        }
        assert!(matches!(parse("sum(g"), Err(EvalError::BadData(_))));
    }

    #[test]
    fn quantile_interpolates() {
        let b = vec![(0.1, 50.0), (0.2, 90.0), (f64::INFINITY, 100.0)];
        assert!((bucket_quantile(0.5, b.clone()) - 0.1).abs() < 1e-12);
        assert!((bucket_quantile(0.7, b.clone()) - 0.15).abs() < 1e-12);
        assert_eq!(bucket_quantile(0.99, b), 0.2);
    }
}
