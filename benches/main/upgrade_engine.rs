//! The upgrade engine's own overhead: a whole rolling run against the in-memory fake world,
//! every delay zero (the virtual clock jumps), per node. Target: < 1 s per node.
//! `cargo bench --bench main -- upgrade_run`

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::{RunOutcome, Settings, plan, start};
use homeinfra_tui::testing::{self, fake::FakeWorld};

fn run_once(rt: &tokio::runtime::Runtime, nodes: usize, journal: Option<&std::path::Path>) {
    rt.block_on(async {
        let inv = testing::cluster(nodes);
        let fw = FakeWorld::healthy(&inv);
        let etcd = fw.state().etcd.clone();
        let run_id = format!("bench-{}", rand_suffix());
        let p = plan(&inv, etcd.as_ref(), &[], &[], testing::FLAKE, &run_id).unwrap();
        let s = Settings {
            settle: Duration::ZERO,
            time_zone: jiff::tz::TimeZone::UTC,
            ..Settings::default()
        };
        let (h, mut rx) = start(
            fw.world(),
            inv,
            p,
            s,
            StartOptions {
                holder: format!("bench@host 1 {run_id}"),
                journal_dir: journal.map(|d| d.to_path_buf()),
                ..Default::default()
            },
        );
        while rx.recv().await.is_some() {}
        let o = h.wait().await;
        assert_eq!(o, RunOutcome::Completed);
    });
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The upgrade-engine benchmarks.
pub fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("upgrade_run");
    for nodes in [4usize, 20] {
        g.throughput(Throughput::Elements(nodes as u64));
        g.bench_with_input(BenchmarkId::new("no_journal", nodes), &nodes, |b, &n| {
            b.iter(|| run_once(&rt, n, None))
        });
    }
    // With the fsynced journal (what a real run pays per step).
    let dir = tempfile::tempdir().unwrap();
    g.sample_size(10);
    g.throughput(Throughput::Elements(4));
    g.bench_function(BenchmarkId::new("fsynced_journal", 4), |b| {
        b.iter(|| run_once(&rt, 4, Some(dir.path())))
    });
    g.finish();
}
