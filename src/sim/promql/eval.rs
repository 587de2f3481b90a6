//! PromQL evaluation (Prometheus 2.x semantics) over a [`Provider`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, BinModifier, BinaryExpr, Call, Expr, LabelModifier, Offset,
    VectorMatchCardinality, VectorSelector,
};

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

/// Parse a query: syntax errors and unsupported constructs are `BadData`.
pub fn parse(query: &str) -> Result<Expr, EvalError> {
    let expr = promql_parser::parser::parse(query)
        .map_err(|e| EvalError::BadData(format!("invalid parameter \"query\": {e}")))?;
    check_supported(&expr)?;
    Ok(expr)
}

const FUNCS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "histogram_quantile",
    "abs",
    "ceil",
    "floor",
    "sqrt",
    "exp",
    "ln",
    "log2",
    "log10",
    "clamp_min",
    "clamp_max",
    "vector",
    "scalar",
    "time",
];

fn op_name(e: &BinaryExpr) -> String {
    e.op.to_string()
}

/// Refuse what the evaluator does not implement, before evaluating anything.
pub fn check_supported(e: &Expr) -> Result<(), EvalError> {
    match e {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::StringLiteral(_) => Err(unsupported("string literals")),
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(_) => Err(unsupported("subqueries")),
        Expr::Extension(_) => Err(unsupported("extensions")),
        Expr::Call(c) => {
            if !FUNCS.contains(&c.func.name) {
                return Err(unsupported(&format!("function {}()", c.func.name)));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !matches!(op.as_str(), "sum" | "avg" | "min" | "max" | "count") {
                return Err(unsupported(&format!("aggregation {op}")));
            }
            if a.param.is_some() {
                return Err(unsupported("aggregation parameters"));
            }
            check_supported(&a.expr)
        }
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier {
                if matches!(
                    m.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                ) {
                    return Err(unsupported("group_left/group_right"));
                }
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(unsupported("fill modifiers"));
                }
            }
            if op_name(b) == "atan2" {
                return Err(unsupported("atan2"));
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), EvalError> {
    if vs.at.is_some() {
        return Err(unsupported("the @ modifier"));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` inside label matchers"));
    }
    Ok(())
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut ms: Vec<Matcher> = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name
        && !ms.iter().any(|m| m.name == "__name__")
    {
        ms.push(Matcher::new(MatchOp::Equal, "__name__", name));
    }
    ms
}

/// The matchers of a series selector (for `/series` `match[]`).
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, EvalError> {
    match promql_parser::parser::parse(s) {
        Ok(Expr::VectorSelector(vs)) => {
            check_selector(&vs)?;
            Ok(selector_matchers(&vs))
        }
        Ok(_) => Err(EvalError::BadData(format!(
            "invalid parameter \"match[]\": {s} is not a series selector"
        ))),
        Err(e) => Err(EvalError::BadData(format!(
            "invalid parameter \"match[]\": {e}"
        ))),
    }
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

    fn call(&mut self, c: &Call, t: i64) -> Result<QueryValue, EvalError> {
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

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<QueryValue, EvalError> {
        let op = a.op.to_string();
        let op = op.as_str();
        let input = self.vector_arg(&a.expr, t)?;
        struct Group {
            labels: Labels,
            value: f64,
            mean: f64,
            count: f64,
        }
        let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
        for s in input {
            let key = group_labels(&s.labels, a.modifier.as_ref());
            match groups.get_mut(&key) {
                None => {
                    groups.insert(
                        key.clone(),
                        Group {
                            labels: key,
                            value: s.value,
                            mean: s.value,
                            count: 1.0,
                        },
                    );
                }
                Some(g) => {
                    g.count += 1.0;
                    match op {
                        "sum" => g.value += s.value,
                        "max" if g.value < s.value || g.value.is_nan() => g.value = s.value,
                        "min" if g.value > s.value || g.value.is_nan() => g.value = s.value,
                        "avg" => {
                            if g.mean.is_infinite() {
                                if s.value.is_infinite() && (g.mean > 0.0) == (s.value > 0.0) {
                                    continue;
                                }
                                if !s.value.is_infinite() && !s.value.is_nan() {
                                    continue;
                                }
                            }
                            g.mean += s.value / g.count - g.mean / g.count;
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(QueryValue::Vector(
            groups
                .into_values()
                .map(|g| Sample {
                    value: match op {
                        "count" => g.count,
                        "avg" => g.mean,
                        _ => g.value,
                    },
                    labels: Arc::new(g.labels),
                })
                .collect(),
        ))
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<QueryValue, EvalError> {
        let op = op_name(b);
        let op = op.as_str();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=");
        match (lhs, rhs) {
            (QueryValue::Scalar(l), QueryValue::Scalar(r)) => {
                let (v, keep) = elem_op(op, l, r)?;
                Ok(QueryValue::Scalar(if comparison {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }))
            }
            (QueryValue::Vector(vs), QueryValue::Scalar(sc)) => {
                vector_scalar(op, vs, sc, false, (return_bool, comparison), &self.names)
            }
            (QueryValue::Scalar(sc), QueryValue::Vector(vs)) => {
                vector_scalar(op, vs, sc, true, (return_bool, comparison), &self.names)
            }
            (QueryValue::Vector(l), QueryValue::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                match op {
                    "and" | "or" | "unless" => Ok(QueryValue::Vector(set_op(op, l, r, matching))),
                    _ => vector_vector(
                        op,
                        l,
                        r,
                        b.modifier.as_ref(),
                        (return_bool, comparison),
                        &self.names,
                    ),
                }
            }
            _ => Err(unsupported("binary operators on range vectors")),
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

fn group_labels(l: &Labels, m: Option<&LabelModifier>) -> Labels {
    match m {
        None => Labels::new(),
        Some(LabelModifier::Include(by)) => l
            .iter()
            .filter(|(k, _)| by.labels.iter().any(|b| b == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(without)) => l
            .iter()
            .filter(|(k, _)| *k != "__name__" && !without.labels.iter().any(|b| b == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
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

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
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

fn elem_op(op: &str, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return Err(unsupported(&format!("operator {other}"))),
    })
}

fn vector_scalar(
    op: &str,
    vs: Vec<Sample>,
    sc: f64,
    swap: bool,
    flags: (bool, bool),
    names: &NameMemo,
) -> Result<QueryValue, EvalError> {
    let (return_bool, comparison) = flags;
    let mut out = Vec::with_capacity(vs.len());
    for s in vs {
        let (l, r) = if swap { (sc, s.value) } else { (s.value, sc) };
        let (mut value, mut keep) = elem_op(op, l, r)?;
        if comparison && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if !comparison || return_bool {
                names.drop(s.labels)
            } else {
                s.labels
            };
            out.push(Sample { labels, value });
        }
    }
    if !comparison || return_bool {
        check_unique(&out)?;
    }
    Ok(QueryValue::Vector(out))
}

/// The labels two series are matched on: `on (…)`, all but `ignoring (…)`, or all; never
/// `__name__` unless listed in `on`.
fn matched_labels<'l>(
    l: &'l Labels,
    matching: Option<&'l LabelModifier>,
) -> impl Iterator<Item = (&'l String, &'l String)> {
    l.iter().filter(move |(k, _)| match matching {
        Some(LabelModifier::Include(on)) => on.labels.iter().any(|x| x == *k),
        Some(LabelModifier::Exclude(ign)) => {
            *k != "__name__" && !ign.labels.iter().any(|x| x == *k)
        }
        None => *k != "__name__",
    })
}

fn signature(l: &Labels, matching: Option<&LabelModifier>) -> u64 {
    hash_labels(matched_labels(l, matching))
}

fn set_op(op: &str, l: Vec<Sample>, r: Vec<Sample>, m: Option<&LabelModifier>) -> Vec<Sample> {
    match op {
        "and" => {
            let rs: HashSet<_> = r.iter().map(|s| signature(&s.labels, m)).collect();
            l.into_iter()
                .filter(|s| rs.contains(&signature(&s.labels, m)))
                .collect()
        }
        "unless" => {
            let rs: HashSet<_> = r.iter().map(|s| signature(&s.labels, m)).collect();
            l.into_iter()
                .filter(|s| !rs.contains(&signature(&s.labels, m)))
                .collect()
        }
        _ => {
            let ls: HashSet<_> = l.iter().map(|s| signature(&s.labels, m)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !ls.contains(&signature(&s.labels, m))),
            );
            out
        }
    }
}

fn vector_vector(
    op: &str,
    l: Vec<Sample>,
    r: Vec<Sample>,
    modifier: Option<&BinModifier>,
    flags: (bool, bool),
    names: &NameMemo,
) -> Result<QueryValue, EvalError> {
    let (return_bool, comparison) = flags;
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let mut right: HashMap<u64, Sample> = HashMap::new();
    for s in r {
        let sig = signature(&s.labels, matching);
        if right.contains_key(&sig) {
            let group: Vec<_> = matched_labels(&s.labels, matching).collect();
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {group:?} on the right hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        right.insert(sig, s);
    }
    let mut out = Vec::new();
    let mut inserted = HashSet::new();
    for ls in l {
        let sig = signature(&ls.labels, matching);
        let Some(rs) = right.get(&sig) else { continue };
        let (mut value, keep) = elem_op(op, ls.value, rs.value)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels = ls.labels;
        if !comparison || return_bool {
            labels = names.drop(labels);
        }
        match matching {
            Some(LabelModifier::Include(on)) => {
                Arc::make_mut(&mut labels).retain(|k, _| on.labels.iter().any(|x| x == k));
            }
            Some(LabelModifier::Exclude(ign)) if !ign.labels.is_empty() => {
                Arc::make_mut(&mut labels).retain(|k, _| !ign.labels.iter().any(|x| x == k));
            }
            _ => {}
        }
        if !inserted.insert(hash_labels(labels.iter())) {
            return Err(EvalError::Execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        out.push(Sample { labels, value });
    }
    Ok(QueryValue::Vector(out))
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
