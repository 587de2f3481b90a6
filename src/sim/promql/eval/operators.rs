//! Aggregations (`sum`, `avg`, `min`, `max`, `count` with `by`/`without`) and binary
//! operators: arithmetic and comparisons (with `bool`) between scalars and vectors, vector
//! matching with `on`/`ignoring`, and the set operators `and`, `or`, `unless`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::{AggregateExpr, BinModifier, BinaryExpr, LabelModifier};

use super::check::op_name;
use super::{
    EvalError, Evaluator, NameMemo, QueryValue, Sample, check_unique, hash_labels, unsupported,
};
use crate::sim::promql::Labels;

impl Evaluator<'_> {
    /// An aggregation over the groups of its `by`/`without` labels.
    pub(super) fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<QueryValue, EvalError> {
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

    /// A binary operator between scalars and instant vectors.
    pub(super) fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<QueryValue, EvalError> {
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

/// The labels of an aggregation's group.
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

/// An arithmetic or comparison operator on two values: the result and whether a
/// comparison keeps the element.
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

/// A vector and a scalar (`swap`: the scalar is on the left); `flags`: (bool, comparison).
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

/// The hash of the labels two series are matched on.
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> u64 {
    hash_labels(matched_labels(l, matching))
}

/// `and`, `or`, `unless`.
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

/// Two vectors, one-to-one; `flags`: (bool, comparison).
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
