//! The series definitions of a generated fleet: each series is its labels and a smooth
//! deterministic function of time (constants, gauges and counters made of sine waves, CPU idle
//! time), for node_exporter, etcd, Longhorn, `up` and `ALERTS`.

use std::f64::consts::PI;

use super::{GenAlert, GenConfig};
use crate::sim::promql::Labels;

/// FNV-1a, for per-host parameters that stay the same from run to run.
pub(super) fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A number in [0, 1) from a seed string.
fn unit(seed: &str) -> f64 {
    (hash(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Time origin for the waves (keeps counter values moderate).
const EPOCH_S: f64 = 1_700_000_000.0;

/// `rate · (1 + amp · sin(ωt + φ))`, and its integral from the epoch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wave {
    rate: f64,
    amp: f64,
    period_s: f64,
    phase: f64,
}

impl Wave {
    fn at(&self, t: f64) -> f64 {
        let w = 2.0 * PI / self.period_s;
        self.rate * (1.0 + self.amp * (w * t + self.phase).sin())
    }
    fn integral(&self, t: f64) -> f64 {
        let w = 2.0 * PI / self.period_s;
        self.rate * (t - self.amp / w * ((w * t + self.phase).cos() - self.phase.cos()))
    }
}

/// How a series' value follows time.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    Const(f64),
    /// `scale · wave(t)`.
    Gauge(f64, Wave),
    /// `start + ∫wave`.
    Counter(f64, Wave),
    /// CPU idle seconds: `t − Σ ∫parts` (plus a start).
    Idle(f64, Vec<Wave>),
}

impl Kind {
    /// The same series with nothing moving (`sim --frozen`): gauges at their mean, counters
    /// growing at their mean rate (so every `rate` is a constant).
    pub(super) fn frozen(self) -> Kind {
        let still = |w: Wave| Wave { amp: 0.0, ..w };
        match self {
            Kind::Const(v) => Kind::Const(v),
            Kind::Gauge(scale, w) => Kind::Const(scale * w.rate),
            Kind::Counter(start, w) => Kind::Counter(start, still(w)),
            Kind::Idle(start, parts) => Kind::Idle(start, parts.into_iter().map(still).collect()),
        }
    }

    /// The value at `t_ms` (unix milliseconds).
    pub(super) fn value(&self, t_ms: i64) -> f64 {
        let t = t_ms as f64 / 1000.0 - EPOCH_S;
        match self {
            Kind::Const(v) => *v,
            Kind::Gauge(scale, w) => scale * w.at(t),
            Kind::Counter(start, w) => start + w.integral(t),
            Kind::Idle(start, parts) => {
                start + t - parts.iter().map(|w| w.integral(t)).sum::<f64>()
            }
        }
    }
}

/// One generated series.
#[derive(Debug, Clone)]
pub(super) struct Def {
    pub(super) labels: Labels,
    pub(super) kind: Kind,
}

/// A label set with its metric name.
fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    std::iter::once(("__name__".to_string(), name.to_string()))
        .chain(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Fsync/commit latency distributions: cumulative fraction of observations per `le`.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];
/// Healthy WAL fsync: p99 ≈ 3.9 ms.
const FSYNC_OK: [f64; 14] = [
    0.60, 0.90, 0.993, 0.998, 0.9995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
];
/// Slow disk: p99 = 80 ms (0.064 + 0.064 · 0.25).
const FSYNC_SLOW: [f64; 14] = [
    0.05, 0.20, 0.45, 0.70, 0.88, 0.96, 0.9875, 0.9975, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
];
/// Healthy backend commit: p99 ≈ 7.7 ms.
const COMMIT_OK: [f64; 14] = [
    0.30, 0.70, 0.95, 0.993, 0.999, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
];

/// Every series of the fleet `cfg` describes.
pub(super) fn build(cfg: &GenConfig) -> Vec<Def> {
    let mut out = Vec::new();
    let mut push = |labels: Labels, kind: Kind| out.push(Def { labels, kind });
    for h in &cfg.hosts {
        let inst = format!("{}:9100", h.ip);
        let base = [
            ("instance", inst.as_str()),
            ("job", "node"),
            ("nodename", h.hostname.as_str()),
        ];
        let down = cfg.down.contains(&h.id);
        push(
            labels("up", &[("instance", &inst), ("job", "node")]),
            Kind::Const(if down { 0.0 } else { 1.0 }),
        );
        if down {
            continue;
        }
        let u = |s: &str| unit(&format!("{}/{s}", h.id));
        let busy = 0.05 + 0.35 * u("busy");
        for cpu in 0..h.cpus {
            let c = cpu.to_string();
            let seed = |m: &str| u(&format!("{c}/{m}"));
            let user = Wave {
                rate: busy * 0.7,
                amp: 0.5,
                period_s: 600.0 + 600.0 * seed("pu"),
                phase: 6.0 * seed("fu"),
            };
            let system = Wave {
                rate: busy * 0.25,
                amp: 0.3,
                period_s: 900.0,
                phase: 6.0 * seed("fs"),
            };
            let iowait = Wave {
                rate: busy * 0.05,
                amp: 0.8,
                period_s: 300.0,
                phase: 6.0 * seed("fi"),
            };
            let with = |mode: &str| {
                let mut l = base.to_vec();
                l.push(("cpu", c.as_str()));
                l.push(("mode", mode));
                labels("node_cpu_seconds_total", &l)
            };
            let start = 1.0e5 * (1.0 + seed("start"));
            push(with("user"), Kind::Counter(start * busy * 0.7, user));
            push(with("system"), Kind::Counter(start * busy * 0.25, system));
            push(with("iowait"), Kind::Counter(start * busy * 0.05, iowait));
            push(with("idle"), Kind::Idle(start, vec![user, system, iowait]));
        }
        let mem_total = 8.0 * 1024f64.powi(3) * (1.0 + (hash(&h.id) % 4) as f64);
        push(
            labels("node_memory_MemTotal_bytes", &base),
            Kind::Const(mem_total),
        );
        let used = 0.3 + 0.4 * u("mem");
        push(
            labels("node_memory_MemAvailable_bytes", &base),
            Kind::Gauge(
                mem_total,
                Wave {
                    rate: 1.0 - used,
                    amp: 0.1,
                    period_s: 1800.0,
                    phase: 6.0 * u("memph"),
                },
            ),
        );
        for (mount, device, fstype, size) in [
            ("/", "/dev/sda2", "ext4", 250.0 * 1024f64.powi(3)),
            ("/boot", "/dev/sda1", "vfat", 1024f64.powi(3)),
        ] {
            let mut l = base.to_vec();
            l.extend([
                ("mountpoint", mount),
                ("device", device),
                ("fstype", fstype),
            ]);
            push(labels("node_filesystem_size_bytes", &l), Kind::Const(size));
            let free = 0.2 + 0.6 * u(mount);
            push(
                labels("node_filesystem_avail_bytes", &l),
                Kind::Gauge(
                    size,
                    Wave {
                        rate: free,
                        amp: 0.01,
                        period_s: 3600.0,
                        phase: 0.0,
                    },
                ),
            );
        }
        for dev in ["eth0", "lo"] {
            let mut l = base.to_vec();
            l.push(("device", dev));
            for (dir, scale) in [("receive", 1.0), ("transmit", 0.6)] {
                let rate = scale * 2.0e5 * (0.2 + u(&format!("{dev}/{dir}")));
                push(
                    labels(&format!("node_network_{dir}_bytes_total"), &l),
                    Kind::Counter(
                        1.0e9 * u(dir),
                        Wave {
                            rate,
                            amp: 0.6,
                            period_s: 420.0,
                            phase: 6.0 * u(&format!("{dev}{dir}ph")),
                        },
                    ),
                );
            }
        }
    }
    let leader = cfg
        .hosts
        .iter()
        .find(|h| h.control_plane)
        .map(|h| h.id.clone());
    for h in cfg.hosts.iter().filter(|h| h.control_plane) {
        let inst = format!("{}:2381", h.ip);
        let base = [("instance", inst.as_str()), ("job", "etcd")];
        if cfg.etcd_down.contains(&h.id) || cfg.down.contains(&h.id) {
            push(labels("up", &base), Kind::Const(0.0));
            continue;
        }
        push(labels("up", &base), Kind::Const(1.0));
        let slow = cfg.slow_disk.as_deref() == Some(h.id.as_str());
        let u = |s: &str| unit(&format!("{}/etcd/{s}", h.id));
        for (metric, fractions, mean) in [
            (
                "etcd_disk_wal_fsync_duration_seconds",
                if slow { FSYNC_SLOW } else { FSYNC_OK },
                if slow { 0.012 } else { 0.0012 },
            ),
            (
                "etcd_disk_backend_commit_duration_seconds",
                if slow { FSYNC_SLOW } else { COMMIT_OK },
                if slow { 0.015 } else { 0.0025 },
            ),
        ] {
            let obs = Wave {
                rate: 5.0 + 10.0 * u(metric),
                amp: 0.3,
                period_s: 500.0,
                phase: 6.0 * u("ph"),
            };
            let start = 1.0e5 * (1.0 + u("start"));
            for (le, frac) in LATENCY_BUCKETS.iter().zip(fractions) {
                let le = format!("{le}");
                let mut l = base.to_vec();
                l.push(("le", le.as_str()));
                push(
                    labels(&format!("{metric}_bucket"), &l),
                    Kind::Counter(
                        start * frac,
                        Wave {
                            rate: obs.rate * frac,
                            ..obs
                        },
                    ),
                );
            }
            let mut l = base.to_vec();
            l.push(("le", "+Inf"));
            push(
                labels(&format!("{metric}_bucket"), &l),
                Kind::Counter(start, obs),
            );
            push(
                labels(&format!("{metric}_count"), &base),
                Kind::Counter(start, obs),
            );
            push(
                labels(&format!("{metric}_sum"), &base),
                Kind::Counter(
                    start * mean,
                    Wave {
                        rate: obs.rate * mean,
                        ..obs
                    },
                ),
            );
        }
        push(labels("etcd_server_has_leader", &base), Kind::Const(1.0));
        push(
            labels("etcd_server_is_leader", &base),
            Kind::Const(if leader.as_deref() == Some(h.id.as_str()) {
                1.0
            } else {
                0.0
            }),
        );
        push(
            labels("etcd_server_leader_changes_seen_total", &base),
            Kind::Const(1.0),
        );
        push(
            labels("etcd_mvcc_db_total_size_in_bytes", &base),
            Kind::Gauge(
                1.0,
                Wave {
                    rate: 40.0e6 + 20.0e6 * u("db"),
                    amp: 0.05,
                    period_s: 7200.0,
                    phase: 0.0,
                },
            ),
        );
        push(
            labels("etcd_server_quota_backend_bytes", &base),
            Kind::Const(2.0 * 1024f64.powi(3)),
        );
    }
    for h in &cfg.hosts {
        let inst = format!("{}:9500", h.ip);
        let base = [("instance", inst.as_str()), ("job", "longhorn")];
        let mut l = base.to_vec();
        l.extend([("node", h.hostname.as_str()), ("condition", "ready")]);
        push(labels("longhorn_node_status", &l), Kind::Const(1.0));
        let mut l = base.to_vec();
        l.push(("node", h.hostname.as_str()));
        let cap = 500.0 * 1024f64.powi(3);
        push(
            labels("longhorn_node_storage_capacity_bytes", &l),
            Kind::Const(cap),
        );
        push(
            labels("longhorn_node_storage_usage_bytes", &l),
            Kind::Const(cap * (0.1 + 0.5 * unit(&format!("{}/lh", h.id)))),
        );
    }
    for v in &cfg.volumes {
        let ip = cfg
            .hosts
            .iter()
            .find(|h| h.hostname == v.node)
            .map_or("127.0.0.1".to_string(), |h| h.ip.clone());
        let inst = format!("{ip}:9500");
        let l = [
            ("instance", inst.as_str()),
            ("job", "longhorn"),
            ("node", v.node.as_str()),
            ("pvc_namespace", "default"),
            ("volume", v.name.as_str()),
        ];
        push(
            labels("longhorn_volume_robustness", &l),
            Kind::Const(v.robustness as f64),
        );
        push(labels("longhorn_volume_state", &l), Kind::Const(2.0));
        push(
            labels("longhorn_volume_capacity_bytes", &l),
            Kind::Const(v.capacity_bytes),
        );
        push(
            labels("longhorn_volume_actual_size_bytes", &l),
            Kind::Const(v.capacity_bytes * (0.2 + 0.6 * unit(&v.name))),
        );
    }
    let mut alerts = cfg.alerts.clone();
    if let Some(h) = cfg
        .slow_disk
        .as_ref()
        .and_then(|id| cfg.hosts.iter().find(|h| &h.id == id))
    {
        alerts.push(GenAlert {
            name: "EtcdHighFsyncDurations".into(),
            severity: "warning".into(),
            instance: Some(format!("{}:2381", h.ip)),
        });
    }
    for a in &alerts {
        let mut l = vec![
            ("alertname", a.name.as_str()),
            ("alertstate", "firing"),
            ("severity", a.severity.as_str()),
        ];
        if let Some(i) = &a.instance {
            l.push(("instance", i.as_str()));
        }
        push(labels("ALERTS", &l), Kind::Const(1.0));
    }
    out
}
