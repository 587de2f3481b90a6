//! Generated series for the simulated homelab: node_exporter per host, etcd per control plane
//! (fsync/commit histograms, has_leader, db size, quota, leader changes), Longhorn, `up` and
//! `ALERTS`. Values are smooth deterministic functions of time, sampled on a scrape grid, so any
//! window can be produced on demand and counters are truly monotonic.
//!
//! Knobs: `slow_disk` (one member's WAL fsync p99 ≈ 80 ms, plus its alert), `down` (a host's
//! node_exporter gone: `up` = 0 and no node series), extra alerts, volumes.
//!
//! The fleet's description and the generator serving it are here; `series` defines the series.

mod series;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use promql_parser::label::Matcher;

pub use self::series::LATENCY_BUCKETS;
use self::series::{Def, build, hash};
use crate::inventory::Inventory;
use crate::sim::promql::{Labels, Provider, Series, matches};
use crate::sim::sync::{read, write};

/// One host of the generated fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct GenHost {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub control_plane: bool,
    pub cpus: u32,
}

/// A Longhorn volume: `robustness` 1 healthy, 2 degraded, 3 faulted.
#[derive(Debug, Clone, PartialEq)]
pub struct GenVolume {
    pub name: String,
    /// Hostname of the node it is attached to.
    pub node: String,
    pub robustness: u8,
    pub capacity_bytes: f64,
}

/// A firing alert to expose in `ALERTS`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenAlert {
    pub name: String,
    pub severity: String,
    /// `instance` label, e.g. `10.0.0.11:9100`.
    pub instance: Option<String>,
}

/// The fleet to generate series for, and its knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub hosts: Vec<GenHost>,
    pub volumes: Vec<GenVolume>,
    pub alerts: Vec<GenAlert>,
    /// Host id of the etcd member with a slow disk.
    pub slow_disk: Option<String>,
    /// Host ids whose node_exporter is down.
    pub down: BTreeSet<String>,
    /// Host ids whose etcd member is down (stopped, or its host is down).
    pub etcd_down: BTreeSet<String>,
    pub scrape_interval_ms: i64,
}

impl GenConfig {
    /// The fleet of an inventory: node_exporter on `<ip>:9100`, etcd metrics on `<ip>:2381` for
    /// control planes, one Longhorn volume per host.
    pub fn from_inventory(inv: &Inventory) -> Self {
        let hosts: Vec<GenHost> = inv
            .hosts
            .iter()
            .map(|h| GenHost {
                id: h.id.clone(),
                hostname: h.hostname.clone(),
                ip: h.ip.to_string(),
                control_plane: h.role.is_control_plane(),
                cpus: 2 + (hash(&h.id) % 3) as u32 * 2,
            })
            .collect();
        let volumes = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| GenVolume {
                name: format!("pvc-{:08x}", hash(&h.id) as u32 ^ i as u32),
                node: h.hostname.clone(),
                robustness: 1,
                capacity_bytes: 10.0 * 1024f64.powi(3),
            })
            .collect();
        Self {
            hosts,
            volumes,
            alerts: Vec::new(),
            slow_disk: None,
            down: BTreeSet::new(),
            etcd_down: BTreeSet::new(),
            scrape_interval_ms: 15_000,
        }
    }
}
/// The generated series; knobs can be turned while it serves.
pub struct Generator {
    cfg: RwLock<GenConfig>,
    defs: RwLock<Arc<Vec<Def>>>,
    /// `sim --frozen`: every gauge constant, every counter at a constant rate.
    frozen: AtomicBool,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").finish_non_exhaustive()
    }
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let defs = Arc::new(build(&cfg));
        Self {
            cfg: RwLock::new(cfg),
            defs: RwLock::new(defs),
            frozen: AtomicBool::new(false),
        }
    }

    /// Stop every wiggle (`sim --frozen`): the same answer to the same query at any time,
    /// but for the timestamps; knobs turned later keep it frozen.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Relaxed);
        self.update(|_| {});
    }

    fn build_defs(&self, cfg: &GenConfig) -> Arc<Vec<Def>> {
        let defs = build(cfg);
        Arc::new(if self.frozen.load(Ordering::Relaxed) {
            defs.into_iter()
                .map(|d| Def {
                    labels: d.labels,
                    kind: d.kind.frozen(),
                })
                .collect()
        } else {
            defs
        })
    }

    pub fn config(&self) -> GenConfig {
        read(&self.cfg).clone()
    }

    /// Change the knobs (slow disk, down hosts, alerts, volumes).
    pub fn update(&self, f: impl FnOnce(&mut GenConfig)) {
        let mut cfg = write(&self.cfg);
        f(&mut cfg);
        let defs = self.build_defs(&cfg);
        *write(&self.defs) = defs;
    }

    fn defs(&self) -> Arc<Vec<Def>> {
        read(&self.defs).clone()
    }

    fn scrape_ms(&self) -> i64 {
        read(&self.cfg).scrape_interval_ms.max(1)
    }
}

impl Provider for Generator {
    fn select(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<Series> {
        let step = self.scrape_ms();
        let first = start_ms.div_euclid(step) * step
            + if start_ms.rem_euclid(step) == 0 {
                0
            } else {
                step
            };
        self.defs()
            .iter()
            .filter(|d| matches(&d.labels, matchers))
            .map(|d| {
                let mut samples = Vec::new();
                let mut t = first;
                while t <= end_ms {
                    samples.push((t, d.kind.value(t)));
                    t += step;
                }
                Series {
                    labels: d.labels.clone(),
                    samples,
                }
            })
            .collect()
    }

    fn label_sets(&self, matchers: &[Matcher]) -> Vec<Labels> {
        self.defs()
            .iter()
            .filter(|d| matches(&d.labels, matchers))
            .map(|d| d.labels.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::promql::eval;

    fn gen_cfg() -> GenConfig {
        let hosts = (1..=3)
            .map(|i| GenHost {
                id: format!("instance_{i}"),
                hostname: format!("node{i}"),
                ip: format!("192.0.2.{}", 10 + i),
                control_plane: true,
                cpus: 2,
            })
            .collect();
        GenConfig {
            hosts,
            volumes: Vec::new(),
            alerts: Vec::new(),
            slow_disk: None,
            down: BTreeSet::new(),
            etcd_down: BTreeSet::new(),
            scrape_interval_ms: 15_000,
        }
    }

    /// An instant query at `t` (ms), its values by instance, sorted.
    fn by_instance(g: &Generator, e: &promql_parser::parser::Expr, t: i64) -> Vec<(String, f64)> {
        let eval::QueryValue::Vector(v) = eval::instant(g, e, t).unwrap() else {
            panic!()
        };
        let mut out: Vec<_> = v
            .into_iter()
            .map(|s| (s.labels["instance"].clone(), s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn fsync_p99(g: &Generator) -> Vec<(String, f64)> {
        let e = eval::parse("histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))").unwrap();
        by_instance(g, &e, 1_800_000_000_000)
    }

    #[test]
    fn slow_disk_shows_in_fsync_p99() {
        let g = Generator::new(gen_cfg());
        assert!(
            fsync_p99(&g).iter().all(|(_, v)| *v < 0.005),
            "{:?}",
            fsync_p99(&g)
        );
        g.update(|c| c.slow_disk = Some("instance_2".into()));
        let p = fsync_p99(&g);
        assert!((p[1].1 - 0.080).abs() < 1e-6, "{p:?}");
        assert!(p[0].1 < 0.005 && p[2].1 < 0.005);
    }

    #[test]
    fn counters_are_monotonic_and_cpu_adds_up() {
        let g = Generator::new(gen_cfg());
        for s in g.select(&[], 1_800_000_000_000, 1_800_003_600_000) {
            let name = &s.labels["__name__"];
            if name.ends_with("_total") || name.ends_with("_bucket") {
                assert!(s.samples.windows(2).all(|w| w[1].1 >= w[0].1), "{name}");
            }
        }
        let e = eval::parse("sum by (instance) (rate(node_cpu_seconds_total[2m]))").unwrap();
        let eval::QueryValue::Vector(v) = eval::instant(&g, &e, 1_800_000_000_000).unwrap() else {
            panic!()
        };
        for s in v {
            assert!((s.value - 2.0).abs() < 1e-6, "{s:?}");
        }
    }

    #[test]
    fn a_frozen_fleet_answers_the_same_at_any_time() {
        let g = Generator::new(gen_cfg());
        g.freeze();
        let cpu =
            eval::parse("sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[2m]))")
                .unwrap();
        let values = |t: i64| by_instance(&g, &cpu, t);
        let (a, b) = (values(1_800_000_000_000), values(1_800_000_937_000));
        assert_eq!(a.len(), 3);
        for ((ia, va), (ib, vb)) in a.iter().zip(&b) {
            assert_eq!(ia, ib);
            assert!(*va > 0.0 && (va - vb).abs() < 1e-9, "{a:?} {b:?}");
        }
        // Gauges are constants and counters straight lines; a knob turned later keeps the
        // fleet frozen.
        g.update(|c| c.slow_disk = Some("instance_2".into()));
        for s in g.select(&[], 1_800_000_000_000, 1_800_000_600_000) {
            let steps: Vec<f64> = s.samples.windows(2).map(|w| w[1].1 - w[0].1).collect();
            assert!(
                steps
                    .windows(2)
                    .all(|d| (d[0] - d[1]).abs() <= 1e-6 * d[0].abs().max(1.0)),
                "{:?} moves: {steps:?}",
                s.labels
            );
        }
        assert!((fsync_p99(&g)[1].1 - 0.080).abs() < 1e-6);
    }
}
