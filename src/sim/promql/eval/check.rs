//! What the evaluator supports: parsing a query (syntax errors and unsupported constructs
//! are `bad_data`, never answered wrongly), series selectors and their matchers.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{BinaryExpr, Expr, Offset, VectorMatchCardinality, VectorSelector};

use super::{EvalError, unsupported};

/// Parse a query: syntax errors and unsupported constructs are `BadData`.
pub fn parse(query: &str) -> Result<Expr, EvalError> {
    let expr = promql_parser::parser::parse(query)
        .map_err(|e| EvalError::BadData(format!("invalid parameter \"query\": {e}")))?;
    check_supported(&expr)?;
    Ok(expr)
}

/// The functions the evaluator implements.
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

pub(super) fn op_name(e: &BinaryExpr) -> String {
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

/// Selectors without `@` or `or` inside their matchers.
fn check_selector(vs: &VectorSelector) -> Result<(), EvalError> {
    if vs.at.is_some() {
        return Err(unsupported("the @ modifier"));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` inside label matchers"));
    }
    Ok(())
}

/// A selector's `offset` in milliseconds.
pub(super) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// The matchers of a selector, its metric name included.
pub(super) fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
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
