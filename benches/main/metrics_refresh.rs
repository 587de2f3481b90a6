//! What one Mimir refresh costs the app at 200 hosts, against the sim's Prometheus face.
//!
//! The sim's face runs in a child process (this same benchmark binary with [`SERVE_FLAG`]), so
//! the CPU time measured here (getrusage of this process) is the client's alone: HTTP, JSON
//! decoding, host mapping, building the `MetricsState`. Criterion reports that CPU time per
//! refresh (not wall time); the share of one core at the default 15 s refresh is printed too.
//!
//! `cargo bench --bench main -- metrics_refresh` (add `--profile dev` for a quick debug-build
//! figure).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory::{Host, Inventory, Role};
use homeinfra_tui::sim::promql::{self, GenConfig, Generator, Provider};
use homeinfra_tui::sources::mimir::{DEFAULT_QUERIES, Mimir};
use homeinfra_tui::testing;

/// The argument that turns this binary into the sim's Prometheus face.
pub const SERVE_FLAG: &str = "--serve-metrics-face";

const HOSTS: usize = 200;
const REFRESH_SECS: f64 = 15.0;

fn inventory() -> Inventory {
    let hosts = (0..HOSTS)
        .map(|i| {
            let role = match i {
                0 => Role::Init,
                1 | 2 => Role::Server,
                _ => Role::Agent,
            };
            let ip = [10, 77, (i / 250) as u8, (i % 250 + 1) as u8];
            Host {
                hostname: format!("node{i:03}"),
                ..testing::host(&format!("host{i:03}"), role, ip)
            }
        })
        .collect();
    testing::inventory(hosts)
}

fn cpu_secs_self() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of another process, from /proc (clock ticks of 100 Hz on Linux).
fn cpu_secs_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Serve the sim's Prometheus face for the bench inventory on 127.0.0.1 until stdin closes;
/// the first line printed is its address.
pub fn serve() {
    let inv = inventory();
    let mut cfg = GenConfig::from_inventory(&inv);
    cfg.slow_disk = Some("host001".into());
    let provider: Arc<dyn Provider> = Arc::new(Generator::new(cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        println!("{}", l.local_addr().expect("addr"));
        let _ = std::io::stdout().flush();
        // Stop when the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            std::process::exit(0);
        });
        let _ = axum::serve(l, promql::router(provider)).await;
    });
}

/// The face in a child process; stopped (stdin closed, then killed) on drop.
struct Face(Child);

impl Face {
    fn start() -> (Self, String) {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg(SERVE_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sim server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server address");
        (Face(child), format!("http://{}/prometheus", line.trim()))
    }
}

impl Drop for Face {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The client and the face it asks, set up once the benchmark is selected.
struct Setup {
    face: Face,
    rt: tokio::runtime::Runtime,
    mimir: Mimir,
    inv: Inventory,
    /// Sparkline points per refresh.
    points: usize,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Setup {
    fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (face, url) = Face::start();
        let inv = inventory();
        let cfg = MimirConfig {
            url: Some(url),
            timeout_secs: 60,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mimir = Mimir::new(&cfg).expect("client");
        // Warm-up round (connections, allocator), checked: every host has data.
        let st = rt
            .block_on(mimir.refresh(&inv, now()))
            .expect("first refresh");
        let with_data = st.hosts.values().filter(|h| !h.is_no_data()).count();
        assert_eq!(with_data, HOSTS, "every host must have data");
        assert!(st.query_errors.is_empty(), "{:?}", st.query_errors);
        let points = st
            .hosts
            .values()
            .map(|h| {
                h.cpu_pct.points.len()
                    + h.memory_pct.points.len()
                    + h.root_fs_pct.points.len()
                    + h.net_rx_bps.points.len()
                    + h.net_tx_bps.points.len()
            })
            .sum();
        Self {
            face,
            rt,
            mimir,
            inv,
            points,
        }
    }
}

/// The metrics-refresh benchmark: client CPU time per refresh.
pub fn bench(c: &mut Criterion) {
    let mut setup: Option<Setup> = None;
    // (client CPU s, server CPU s, refreshes)
    let mut totals = (0.0f64, 0.0f64, 0u64);
    let mut g = c.benchmark_group("metrics_refresh");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function(format!("client CPU per refresh at {HOSTS} hosts"), |b| {
        let s = setup.get_or_insert_with(Setup::start);
        b.iter_custom(|iters| {
            let server_pid = s.face.0.id();
            let (c0, s0) = (cpu_secs_self(), cpu_secs_of(server_pid));
            for _ in 0..iters {
                let st =
                    s.rt.block_on(s.mimir.refresh(&s.inv, now()))
                        .expect("refresh");
                std::hint::black_box(st);
            }
            let (client, server) = (cpu_secs_self() - c0, cpu_secs_of(server_pid) - s0);
            totals = (totals.0 + client, totals.1 + server, totals.2 + iters);
            Duration::from_secs_f64(client)
        })
    });
    g.finish();
    let Some(s) = setup else { return };
    let rounds = totals.2.max(1) as f64;
    let (client, server) = (totals.0 / rounds, totals.1 / rounds);
    println!(
        "metrics refresh at {HOSTS} hosts ({} queries, {} sparkline points per refresh): \
         client CPU {:.1} ms per refresh = {:.2} % of a core at a {REFRESH_SECS} s refresh \
         (sim server CPU {:.1} ms, not part of the app's cost)",
        DEFAULT_QUERIES.len(),
        s.points,
        client * 1000.0,
        client / REFRESH_SECS * 100.0,
        server * 1000.0
    );
}
