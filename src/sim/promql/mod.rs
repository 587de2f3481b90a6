//! The simulator's Prometheus face: a PromQL evaluator over in-memory time series (parsed with
//! `promql-parser`), the query HTTP API under `/prometheus/api/v1/…`, a text-exposition loader and
//! a generator of node_exporter, etcd, Longhorn and ALERTS series.
//!
//! The evaluator follows Prometheus 2.x semantics for what it supports (selectors, range
//! vectors, `rate`/`irate`/`increase`/`delta`, `*_over_time`, `sum/avg/min/max/count`,
//! `histogram_quantile`, arithmetic/comparison/set operators with `on`/`ignoring`/`bool`); any
//! other construct is refused with Prometheus's `bad_data` error, never answered wrongly.

pub mod api;
pub mod eval;
pub mod expo;
pub mod generator;

use std::collections::BTreeMap;

use promql_parser::label::Matcher;

pub use api::router;
pub use eval::{EvalError, QueryValue};
pub use generator::{GenConfig, Generator};

/// The Prometheus face for an inventory's fleet: the generator (turn its knobs with
/// [`Generator::update`]) and the router to mount. Point `[mimir] url` at
/// `http://<addr>/prometheus`.
pub fn for_inventory(
    inv: &crate::inventory::Inventory,
) -> (std::sync::Arc<Generator>, axum::Router) {
    let g = std::sync::Arc::new(Generator::new(GenConfig::from_inventory(inv)));
    let r = router(g.clone());
    (g, r)
}

/// A label set, `__name__` included.
pub type Labels = BTreeMap<String, String>;

/// One time series: samples are `(unix milliseconds, value)`, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Where the evaluator reads series from.
pub trait Provider: Send + Sync + 'static {
    /// Every series matching all `matchers`, with its samples in `[start_ms, end_ms]`.
    fn select(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<Series>;
    /// The label sets of every series matching all `matchers` (for `/series` and `/labels`).
    fn label_sets(&self, matchers: &[Matcher]) -> Vec<Labels>;
}

/// Does a label set satisfy every matcher? (A missing label matches as the empty string.)
pub fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers.iter().all(|m| {
        let v = labels.get(&m.name).map(String::as_str).unwrap_or("");
        m.is_match(v)
    })
}

/// A fixed set of series in memory (e.g. loaded from a text exposition).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub series: Vec<Series>,
}

impl Provider for MemStore {
    fn select(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<Series> {
        self.series
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .map(|s| {
                let a = s.samples.partition_point(|(t, _)| *t < start_ms);
                let b = s.samples.partition_point(|(t, _)| *t <= end_ms);
                Series {
                    labels: s.labels.clone(),
                    samples: s.samples[a..b].to_vec(),
                }
            })
            .collect()
    }

    fn label_sets(&self, matchers: &[Matcher]) -> Vec<Labels> {
        self.series
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .map(|s| s.labels.clone())
            .collect()
    }
}
