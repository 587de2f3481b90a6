//! What the dashboard does per frame and per refresh at homelab scale, on a snapshot built by
//! hand (no network): a full frame at 200×60 with 200 nodes for every pane (view models cached,
//! as between two changes, and rebuilt, as right after a change), `assess` at 500 nodes / 10k
//! pods / 500 volumes, and the host facts parser for 200 hosts (what one SSH refresh parses).
//!
//! Each frame's own time is kept too, and the 99th percentile over every pane printed (the
//! budget is under 1 ms): criterion's figures are means of batches, which hide a slow frame.
//!
//! `cargo bench --bench main -- dashboard`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use homeinfra_tui::app::{App, Keymap, Pane};
use homeinfra_tui::config::Config;
use homeinfra_tui::inventory::{Inventory, Role};
use homeinfra_tui::model::cluster::{
    ClusterState, LonghornState, NodeInfo, PodRow, Replica, Volume,
};
use homeinfra_tui::model::etcd::{EtcdMember, EtcdState};
use homeinfra_tui::model::host::HostFacts;
use homeinfra_tui::model::metrics::{Alert, MetricsState};
use homeinfra_tui::model::{Snapshot, Sourced};
use homeinfra_tui::testing;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NOW: i64 = 1_800_000_000;

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW).expect("a valid time")
}

fn sourced<T>(v: T) -> Sourced<T> {
    let mut s = Sourced::configured();
    s.record(Ok(v), now());
    s
}

/// `nodes` hosts (three control planes, the rest agents) at documentation addresses: never
/// contacted.
fn inventory(nodes: usize) -> Inventory {
    let hosts = (0..nodes)
        .map(|i| {
            let role = match i {
                0 => Role::Init,
                1 | 2 => Role::Server,
                _ => Role::Agent,
            };
            let ip = [198, 18, (i / 250) as u8, (i % 250 + 1) as u8];
            testing::host(&format!("node{:03}", i + 1), role, ip)
        })
        .collect();
    testing::inventory(hosts)
}

/// A busy, mostly healthy homelab: `pods` pods spread over the nodes, `volumes` 3-replica
/// volumes (a few degraded and rebuilding), three etcd members, a few alerts, facts for every
/// host (a few needing a reboot).
fn snapshot(inv: &Inventory, pods: usize, volumes: usize) -> Snapshot {
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.hostname.as_str()).collect();
    let nodes = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| NodeInfo {
            name: h.hostname.clone(),
            ready: Some(i % 97 != 5),
            unschedulable: i % 113 == 7,
            kubelet_version: "v1.31.4+k3s1".into(),
            roles: if h.role.is_control_plane() {
                vec!["control-plane".into(), "etcd".into(), "master".into()]
            } else {
                vec![]
            },
            zone: Some(format!("rack-{}", i % 4)),
            created: Some(jiff::Timestamp::from_second(NOW - 86_400 * 40).expect("a time")),
            ..Default::default()
        })
        .collect();
    let pods = (0..pods)
        .map(|i| PodRow {
            namespace: ["default", "monitoring", "media", "kube-system"][i % 4].into(),
            name: format!("app-{}-{:05}", i % 37, i),
            node: Some(names[i % names.len()].to_string()),
            phase: if i % 211 == 3 { "Pending" } else { "Running" }.into(),
            ready_containers: 1,
            total_containers: 1,
            restarts: (i % 7) as u32,
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let mut vols = Vec::new();
    let mut replicas = Vec::new();
    for v in 0..volumes {
        let name = format!("pvc-{v:08x}-8d1b-4e7a-9c55-0b6f1d2e3a4b");
        let degraded = v % 50 == 1;
        vols.push(Volume {
            name: name.clone(),
            size_bytes: ((v % 20 + 1) as u64) << 30,
            number_of_replicas: 3,
            state: "attached".into(),
            robustness: if degraded { "degraded" } else { "healthy" }.into(),
            pvc: Some(format!("default/data-{v}")),
            last_backup_at: Some(jiff::Timestamp::from_second(NOW - 3_600 * 5).expect("a time")),
            ..Default::default()
        });
        for r in 0..3 {
            let node = names[(v + r * 7) % names.len()];
            let rebuilding = degraded && r == 2;
            replicas.push(Replica {
                name: format!("{name}-r-{r}"),
                volume: name.clone(),
                node: node.into(),
                current_state: "running".into(),
                healthy: !rebuilding,
                rebuilding,
            });
        }
    }
    let cluster = ClusterState {
        server_version: Some("v1.31.4+k3s1".into()),
        nodes,
        pods: pods.into(),
        pdbs: vec![],
        longhorn: LonghornState {
            installed: true,
            volumes: vols,
            replicas,
            ..Default::default()
        },
        etcd_snapshots: None,
        certificates: None,
    };
    let members = inv
        .hosts
        .iter()
        .filter(|h| h.role.is_control_plane())
        .enumerate()
        .map(|(i, h)| EtcdMember {
            id: i as u64 + 1,
            name: format!("{}-0000abcd", h.hostname),
            client_urls: vec![format!("https://{}:2379", h.ip)],
            endpoint: Some(format!("https://{}:2379", h.ip)),
            reachable: true,
            healthy: true,
            is_leader: i == 0,
            db_size_bytes: Some(24 << 20),
            quota_bytes: Some(2 << 30),
            raft_index_lag: Some(0),
            ..Default::default()
        })
        .collect();
    let etcd = EtcdState {
        members,
        leader: Some(1),
        ..Default::default()
    };
    let alerts = (0..5)
        .map(|i| Alert {
            name: format!("Alert{i}"),
            severity: if i == 0 { "critical" } else { "warning" }.into(),
            host: Some(inv.hosts[i * 3 % inv.hosts.len()].id.clone()),
            ..Default::default()
        })
        .collect();
    let mimir = MetricsState {
        alerts,
        at: NOW,
        ..Default::default()
    };
    let hosts = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.clone(), sourced(facts(&h.hostname, i))))
        .collect();
    Snapshot {
        cluster: sourced(Arc::new(cluster)),
        etcd: sourced(etcd),
        mimir: sourced(Arc::new(mimir)),
        loki: Sourced::not_configured("Loki: not configured — set [loki] url"),
        hosts,
    }
}

fn facts(hostname: &str, i: usize) -> HostFacts {
    HostFacts {
        hostname: Some(hostname.to_string()),
        nixos_version: Some("25.05.20250612.abcdef0".into()),
        current_system: Some(format!("/nix/store/{i:032}-nixos-system-{hostname}")),
        booted_system: Some(format!("/nix/store/{i:032}-nixos-system-{hostname}")),
        generation: Some(40 + i as u64),
        uptime_secs: Some(86_400 * 3 + i as u64),
        load: Some([0.4, 0.3, 0.2]),
        root_fs_used_pct: Some(41.5),
        reboot_needed: Some(i % 31 == 4),
        failed_units: Some(vec![]),
        k3s_state: Some("active".into()),
        upgrade_last_result: Some("success".into()),
        privileged: Some(true),
        ..Default::default()
    }
}

fn app(inv: Inventory, snap: Snapshot) -> App {
    let mut app = App::new(
        inv,
        Config::default(),
        Keymap::default(),
        snap,
        "homelab".into(),
        false,
        now(),
    );
    app.tz = jiff::tz::TimeZone::UTC;
    app.invalidate();
    app
}

/// Run `frame` `iters` times, keeping each run's time in `times` (at most a million kept);
/// their sum, for criterion.
fn timed_frames(iters: u64, times: &mut Vec<Duration>, mut frame: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        frame();
        let d = t.elapsed();
        total += d;
        if times.len() < 1_000_000 {
            times.push(d);
        }
    }
    total
}

/// The given quantiles (0..=1) of `times`, nearest rank; zero when there are none.
fn percentiles<const N: usize>(times: &mut [Duration], qs: [f64; N]) -> [Duration; N] {
    times.sort_unstable();
    qs.map(|q| match times.len() {
        0 => Duration::ZERO,
        n => times[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    })
}

pub fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dashboard");
    g.measurement_time(Duration::from_secs(4));

    // One frame at 200×60 with 200 nodes, per pane.
    let inv = inventory(200);
    let snap = snapshot(&inv, 6_000, 300);
    let mut a = app(inv, snap);
    let theme = homeinfra_tui::ui::Theme::load(None, false).expect("the default theme");
    let mut term = Terminal::new(TestBackend::new(200, 60)).expect("a test terminal");
    // Each frame's own time, cached and rebuilt, over every pane.
    let (mut cached, mut rebuilt) = (Vec::new(), Vec::new());
    for pane in Pane::ALL {
        a.focus = *pane;
        a.invalidate();
        term.draw(|f| homeinfra_tui::ui::draw(f, &a, &theme))
            .expect("draw");
        g.bench_function(
            BenchmarkId::new("frame 200x60, 200 nodes, views cached", format!("{pane:?}")),
            |b| {
                b.iter_custom(|iters| {
                    timed_frames(iters, &mut cached, || {
                        term.draw(|f| homeinfra_tui::ui::draw(f, &a, &theme))
                            .expect("draw");
                    })
                })
            },
        );
        g.bench_function(
            BenchmarkId::new(
                "frame 200x60, 200 nodes, views rebuilt",
                format!("{pane:?}"),
            ),
            |b| {
                b.iter_custom(|iters| {
                    timed_frames(iters, &mut rebuilt, || {
                        a.invalidate();
                        term.draw(|f| homeinfra_tui::ui::draw(f, &a, &theme))
                            .expect("draw");
                    })
                })
            },
        );
    }
    for (what, times) in [
        ("views cached", &mut cached),
        ("views rebuilt", &mut rebuilt),
    ] {
        let [p50, p99, max] = percentiles(times, [0.5, 0.99, 1.0]);
        println!(
            "frame 200x60 at 200 nodes, every pane, {what}: p50 {:.0} µs, p99 {:.0} µs, slowest {:.0} µs over {} frames (budget p99 < 1 ms)",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6,
            times.len()
        );
    }

    // assess at 500 nodes / 10k pods / 500 volumes.
    let inv = inventory(500);
    let snap = snapshot(&inv, 10_000, 500);
    let th = Config::default().thresholds;
    g.bench_function("assess 500 nodes, 10k pods, 500 volumes", |b| {
        b.iter(|| {
            std::hint::black_box(homeinfra_tui::model::assess::assess(
                &snap,
                &inv,
                &th,
                now(),
            ))
        })
    });

    // The facts of 200 hosts, as their scripts print them.
    let outputs: Vec<String> = (0..200)
        .map(|i| homeinfra_tui::probes::facts::render(&facts(&format!("node{i:03}"), i)))
        .collect();
    g.bench_function("facts parser, 200 hosts", |b| {
        b.iter(|| {
            for o in &outputs {
                std::hint::black_box(homeinfra_tui::probes::facts::parse(o));
            }
        })
    });
    g.finish();
}
