//! Generated logs: deterministic k3s, etcd and kernel lines per host, a line every few seconds
//! per stream, some of them errors; knobs for a slow disk (etcd's fdatasync warnings) and
//! hosts that are down (silent).

use std::sync::RwLock;

use super::{Labels, LogSource};
use crate::sim::sync::{read, write};

/// One host of the generated log fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHost {
    pub hostname: String,
    pub control_plane: bool,
}

#[derive(Debug, Clone, Default)]
struct Knobs {
    /// Hostname whose etcd logs slow fdatasync warnings.
    slow_disk: Option<String>,
    /// Hostnames that log nothing (down).
    down: Vec<String>,
    /// `sim --frozen`: no line after this time (unix nanoseconds).
    frozen_at: Option<i128>,
}

/// Deterministic k3s / etcd / kernel lines per host: a line every few seconds per stream, about
/// one in eight of them an error, failure or (rarely) a panic.
pub struct LogGenerator {
    hosts: Vec<LogHost>,
    knobs: RwLock<Knobs>,
}

impl std::fmt::Debug for LogGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGenerator")
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

const K3S_LINES: &[&str] = &[
    "level=info msg=\"Tunnel server egress proxy mode: agent\"",
    "I1126 {hms}.000000    {pid} event.go:389] \"Event occurred\" object=\"kube-system/coredns\" reason=\"ScalingReplicaSet\"",
    "level=info msg=\"Connecting to proxy\" url=\"wss://127.0.0.1:6443/v1-k3s/connect\"",
    "I1126 {hms}.000000    {pid} controller.go:615] quota admission added evaluator for: leases.coordination.k8s.io",
    "level=info msg=\"Reconciling bootstrap data between datastore and disk\"",
    "I1126 {hms}.000000    {pid} kubelet.go:2421] \"SyncLoop UPDATE\" source=\"api\" pods=[\"longhorn-system/instance-manager\"]",
    "level=warning msg=\"Proxy error: write failed: io: read/write on closed pipe\"",
    "E1126 {hms}.000000    {pid} pod_workers.go:1298] \"Error syncing pod, skipping\" err=\"failed to \\\"StartContainer\\\" with CrashLoopBackOff\"",
];
const ETCD_LINES: &[&str] = &[
    "{\"level\":\"info\",\"msg\":\"saved snapshot\",\"snapshot-index\":{n}}",
    "{\"level\":\"info\",\"msg\":\"compacted raft logs\",\"index\":{n}}",
    "{\"level\":\"info\",\"msg\":\"finished scheduled compaction\",\"compact-revision\":{n}}",
    "{\"level\":\"warn\",\"msg\":\"apply request took too long\",\"took\":\"112ms\",\"expected-duration\":\"100ms\"}",
    "{\"level\":\"info\",\"msg\":\"store.index: compact {n}\"}",
    "{\"level\":\"error\",\"msg\":\"failed to send out heartbeat on time\",\"heartbeat-interval\":\"100ms\"}",
];
const KERNEL_LINES: &[&str] = &[
    "kernel: eth0: Link is Up - 1Gbps/Full - flow control rx/tx",
    "kernel: EXT4-fs (sda2): mounted filesystem with ordered data mode",
    "kernel: cni0: port 2(veth{n}) entered forwarding state",
    "kernel: nf_conntrack: default automatic helper assignment has been turned off",
    "kernel: usb 1-1: new high-speed USB device number {n} using xhci_hcd",
    "kernel: ata1.00: failed command: READ FPDMA QUEUED",
    "kernel: I/O error, dev sda, sector {n} op 0x0:(READ)",
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl LogGenerator {
    pub fn new(hosts: Vec<LogHost>) -> Self {
        Self {
            hosts,
            knobs: RwLock::new(Knobs::default()),
        }
    }

    /// The hosts of an inventory.
    pub fn from_inventory(inv: &crate::inventory::Inventory) -> Self {
        Self::new(
            inv.hosts
                .iter()
                .map(|h| LogHost {
                    hostname: h.hostname.clone(),
                    control_plane: h.role.is_control_plane(),
                })
                .collect(),
        )
    }

    /// One member's etcd complains about slow fdatasync (matches the metrics' slow-disk knob).
    pub fn set_slow_disk(&self, hostname: Option<String>) {
        write(&self.knobs).slow_disk = hostname;
    }

    /// No new line from `at_ns` on (`sim --frozen`): the lines before it stay queryable.
    pub fn freeze_at(&self, at_ns: i128) {
        write(&self.knobs).frozen_at = Some(at_ns);
    }

    /// A host that is down logs nothing.
    pub fn set_down(&self, hostname: &str, down: bool) {
        let mut k = write(&self.knobs);
        k.down.retain(|h| h != hostname);
        if down {
            k.down.push(hostname.to_string());
        }
    }

    fn stream(host: &str, unit: &str, job: &str) -> Labels {
        [
            ("host", host),
            ("job", job),
            ("unit", unit),
            ("service_name", unit.trim_end_matches(".service")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl LogSource for LogGenerator {
    fn streams(&self) -> Vec<Labels> {
        let mut out = Vec::new();
        for h in &self.hosts {
            out.push(Self::stream(&h.hostname, "k3s.service", "systemd-journal"));
            out.push(Self::stream(&h.hostname, "kernel", "systemd-journal"));
            if h.control_plane {
                out.push(Self::stream(&h.hostname, "etcd", "systemd-journal"));
            }
        }
        out
    }

    fn lines(&self, stream: &Labels, start_ns: i128, end_ns: i128) -> Vec<(i128, String)> {
        let host = stream.get("host").map(String::as_str).unwrap_or("");
        let unit = stream.get("unit").map(String::as_str).unwrap_or("");
        let knobs = read(&self.knobs).clone();
        if knobs.down.iter().any(|d| d == host) {
            return Vec::new();
        }
        let end_ns = knobs.frozen_at.map_or(end_ns, |f| end_ns.min(f));
        let (period_s, templates): (i128, &[&str]) = match unit {
            "k3s.service" => (7, K3S_LINES),
            "etcd" => (11, ETCD_LINES),
            _ => (23, KERNEL_LINES),
        };
        let slow = knobs.slow_disk.as_deref() == Some(host) && unit == "etcd";
        let seed = hash_str(host) ^ hash_str(unit);
        let period = period_s * 1_000_000_000;
        let offset = (seed % 1_000_000_000) as i128;
        let mut k = (start_ns - offset).div_euclid(period);
        let mut out = Vec::new();
        loop {
            let t = k * period + offset;
            if t > end_ns {
                break;
            }
            if t >= start_ns {
                let r = mix(seed ^ k as u64);
                // Mostly the first (benign) templates; errors less often.
                let n = templates.len() as u64;
                let idx = if r.is_multiple_of(8) {
                    (n - 1 - (r >> 8) % 2) as usize
                } else {
                    ((r >> 8) % (n - 2)) as usize
                };
                let secs = (t / 1_000_000_000) as i64;
                let hms = jiff::Timestamp::from_second(secs)
                    .map(|ts| ts.strftime("%H:%M:%S").to_string())
                    .unwrap_or_default();
                let mut line = templates[idx]
                    .replace("{hms}", &hms)
                    .replace("{pid}", &(1000 + seed % 9000).to_string())
                    .replace("{n}", &(k.rem_euclid(1_000_000)).to_string());
                if slow && r.is_multiple_of(2) {
                    line = "{\"level\":\"warn\",\"msg\":\"slow fdatasync\",\"took\":\"1.2s\",\"expected-duration\":\"1s\"}".to_string();
                }
                if unit == "kernel" && r.is_multiple_of(997) {
                    line =
                        "kernel: Kernel panic - not syncing: Fatal exception in interrupt".into();
                }
                out.push((t, line));
            }
            k += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_are_deterministic_and_in_window() {
        let g = LogGenerator::new(vec![LogHost {
            hostname: "node1".into(),
            control_plane: true,
        }]);
        let s = g.streams();
        assert_eq!(s.len(), 3);
        let a = g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000);
        let b = g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000);
        assert_eq!(a, b);
        assert!(a.len() >= 80 && a.len() <= 90, "{}", a.len());
        assert!(a.iter().any(|(_, l)| l.to_lowercase().contains("fail")));
        g.set_down("node1", true);
        assert!(
            g.lines(&s[0], 1_000_000_000_000_000_000, 1_000_000_600_000_000_000)
                .is_empty()
        );
    }

    #[test]
    fn a_frozen_generator_logs_nothing_new() {
        let g = LogGenerator::new(vec![LogHost {
            hostname: "node1".into(),
            control_plane: false,
        }]);
        let s = g.streams();
        let t0 = 1_000_000_000_000_000_000i128;
        let before = g.lines(&s[0], t0, t0 + 600_000_000_000);
        g.freeze_at(t0 + 300_000_000_000);
        let frozen = g.lines(&s[0], t0, t0 + 600_000_000_000);
        assert!(!frozen.is_empty() && frozen.len() < before.len());
        assert!(frozen.iter().all(|(t, _)| *t <= t0 + 300_000_000_000));
        assert_eq!(frozen[..], before[..frozen.len()]);
        assert!(
            g.lines(&s[0], t0 + 300_000_000_001, t0 + 900_000_000_000)
                .is_empty()
        );
    }
}
