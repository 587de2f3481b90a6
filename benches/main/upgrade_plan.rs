//! The plan of a 200-node simulated homelab with every node's closure diff: the simulator in
//! this process (its API, store and one SSH server per host on 127.0.0.x), the app's own
//! path — each node's deployed system over SSH, the flake's system and the diff from the
//! simulator's store (no nix), the skew guards, the order — with `[nix] concurrency` diffs at
//! once. The target is under 3 s; the plan runs as a task, so the dashboard's loop never waits
//! for it.
//!
//! `cargo bench --bench main -- upgrade_plan`.

use std::time::{Duration, Instant};

use criterion::Criterion;
use homeinfra_tui::base::Env;
use homeinfra_tui::operations::upgrade::{forecast, live};
use homeinfra_tui::sim::{self, SimHandle, SimOptions};
use tokio_util::sync::CancellationToken;

const NODES: usize = 200;

struct Setup {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    handle: SimHandle,
    env: Env,
}

impl Setup {
    fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let handle = rt
            .block_on(sim::start(
                SimOptions {
                    nodes: Some(NODES),
                    speed: 50.0,
                    scenarios: vec![sim::Scenario::K3sMinorBump],
                    ..Default::default()
                },
                dir.path(),
            ))
            .expect("start the simulator");
        let (config, path) =
            homeinfra_tui::config::load(Some(&handle.config_path())).expect("the sim's config");
        let inventory =
            homeinfra_tui::inventory::load(&handle.hosts_path()).expect("the sim's hosts");
        let mut env = Env::new(config, inventory);
        env.config_path = path;
        Self {
            rt,
            _dir: dir,
            handle,
            env,
        }
    }

    /// One whole plan: the world's clients, the order, every node's diff, the guards.
    fn plan(&self) -> usize {
        self.rt.block_on(async {
            let world = live::read_world(&self.env).await.expect("the world");
            let p = live::new_plan(&self.env, &world, &[])
                .await
                .expect("a plan");
            let cancel = CancellationToken::new();
            let (p, f) = forecast::for_env(&self.env, &world, &p, &|_| {}, &cancel)
                .await
                .expect("the forecast");
            assert_eq!(f.nodes.len(), NODES, "every node diffed: {:?}", f.skipped);
            assert!(
                f.nodes.iter().all(|n| n.summary.is_some()),
                "a diff failed: {:?}",
                f.nodes.iter().find_map(|n| n.error.clone())
            );
            assert_eq!(f.order.rule, "servers-first");
            p.entries.len()
        })
    }
}

pub fn bench(c: &mut Criterion) {
    let mut setup: Option<Setup> = None;
    let mut worst = Duration::ZERO;
    let mut g = c.benchmark_group("upgrade_plan");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("plan with diffs of {NODES} simulated nodes"), |b| {
        let s = setup.get_or_insert_with(Setup::start);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                std::hint::black_box(s.plan());
                let e = t.elapsed();
                worst = worst.max(e);
                total += e;
            }
            total
        })
    });
    g.finish();
    if let Some(s) = setup {
        println!(
            "upgrade plan of {NODES} simulated nodes with diffs ({} at once): slowest {:.2} s (target < 3 s)",
            s.env.config.nix.concurrency,
            worst.as_secs_f64()
        );
        s.rt.block_on(s.handle.shutdown());
    }
}
