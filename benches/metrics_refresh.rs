//! What one Mimir refresh costs the app at 200 hosts, against the sim's Prometheus face.
//!
//! The sim's face runs in a child process (this same binary with `--serve`), so the CPU time
//! measured here (getrusage of this process) is the client's alone: HTTP, JSON decoding, host
//! mapping, building the `MetricsState`. Reported as "% of one core" at the default 15 s refresh.
//!
//! Run: `cargo bench --bench metrics_refresh` (add `--profile dev` for a quick debug-build figure).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory::{self, Inventory};
use homeinfra_tui::sim::promql::{self, GenConfig, Generator, Provider};
use homeinfra_tui::sources::mimir::Mimir;

const HOSTS: usize = 200;
const ROUNDS: usize = 20;
const REFRESH_SECS: f64 = 15.0;

fn inventory() -> Inventory {
    let mut s = String::from("{");
    for i in 0..HOSTS {
        let role = if i == 0 {
            "init"
        } else if i < 3 {
            "server"
        } else {
            "agent"
        };
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#""host{i:03}": {{"hostname":"node{i:03}","system":"x86_64-linux","profile":"p","role":"{role}","region":"r","zone":"z","ip":"10.77.{}.{}","gateway":"10.77.255.254","maskLength":16}}"#,
            i / 250,
            i % 250 + 1
        ));
    }
    s.push('}');
    match inventory::parse(std::path::Path::new("bench-hosts.json"), &s) {
        Ok(inv) => inv,
        Err(e) => panic!("bench inventory: {e}"),
    }
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

fn serve() {
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

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        return serve();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the sim server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server address");
    let url = format!("http://{}/prometheus", line.trim());
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
    let now = || jiff::Timestamp::now().as_second();
    // Warm-up round (connections, allocator).
    let st = rt
        .block_on(mimir.refresh(&inv, now()))
        .expect("first refresh");
    let with_data = st.hosts.values().filter(|h| !h.is_no_data()).count();
    assert_eq!(with_data, HOSTS, "every host must have data");
    assert!(st.query_errors.is_empty(), "{:?}", st.query_errors);
    let points: usize = st
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

    let (c0, s0, w0) = (cpu_secs_self(), cpu_secs_of(child.id()), Instant::now());
    for _ in 0..ROUNDS {
        let st = rt.block_on(mimir.refresh(&inv, now())).expect("refresh");
        std::hint::black_box(st);
    }
    let (c1, s1, wall) = (cpu_secs_self(), cpu_secs_of(child.id()), w0.elapsed());
    drop(child.stdin.take());
    let _ = child.wait_timeout_compat(Duration::from_secs(5));

    let client = (c1 - c0) / ROUNDS as f64;
    let server = (s1 - s0) / ROUNDS as f64;
    println!(
        "metrics refresh at {HOSTS} hosts ({} queries, {points} sparkline points per refresh)",
        homeinfra_tui::sources::mimir::DEFAULT_QUERIES.len()
    );
    println!(
        "  wall per refresh:        {:8.1} ms",
        wall.as_secs_f64() * 1000.0 / ROUNDS as f64
    );
    println!("  client CPU per refresh:  {:8.1} ms", client * 1000.0);
    println!(
        "  client share of a core at a {REFRESH_SECS} s refresh: {:.2} %",
        client / REFRESH_SECS * 100.0
    );
    println!(
        "  (sim server CPU per refresh: {:.1} ms, not part of the app's cost)",
        server * 1000.0
    );
}

trait WaitCompat {
    fn wait_timeout_compat(&mut self, d: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitCompat for std::process::Child {
    fn wait_timeout_compat(&mut self, d: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.kill();
        self.wait().ok()
    }
}
