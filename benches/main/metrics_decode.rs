//! Mimir's answers decoded into the dashboard's sparklines at 200 hosts, with no network: each
//! of the default range queries answered for every host (a 30-minute window at the 30 s step,
//! 61 points a series, as the generator's exporters would give), parsed from its JSON and
//! folded into the metrics state (what one refresh decodes).
//!
//! `cargo bench --bench main -- metrics_decode`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use criterion::Criterion;
use homeinfra_tui::inventory::{Inventory, Role};
use homeinfra_tui::model::metrics::{HostMetrics, MetricsState};
use homeinfra_tui::sources::mimir::{
    DEFAULT_QUERIES, HostIndex, QueryKind, RANGE_SECS, STEP_SECS, apply, decode_answer,
};
use homeinfra_tui::testing;

const HOSTS: usize = 200;
const NOW: i64 = 1_800_000_000;

fn inventory() -> Inventory {
    let hosts = (0..HOSTS)
        .map(|i| {
            let role = if i < 3 { Role::Server } else { Role::Agent };
            let ip = [198, 18, (i / 250) as u8, (i % 250 + 1) as u8];
            testing::host(&format!("node{:03}", i + 1), role, ip)
        })
        .collect();
    testing::inventory(hosts)
}

/// The `data` object of a range query's answer: one series per host (two for the network
/// queries: two interfaces).
fn answer(inv: &Inventory, query: usize) -> String {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    let per_host = if DEFAULT_QUERIES[query].name.starts_with("net_") {
        2
    } else {
        1
    };
    let mut first = true;
    for (i, h) in inv.hosts.iter().enumerate() {
        for dev in 0..per_host {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                r#"{{"metric":{{"instance":"{}:9100","job":"node","device":"eth{dev}"}},"values":["#,
                h.ip
            );
            let mut t = NOW - RANGE_SECS;
            let mut k = 0;
            while t <= NOW {
                if k > 0 {
                    out.push(',');
                }
                let v = 10.0 + ((i * 7 + k * 3 + query) % 80) as f64 + 0.123_456_789;
                let _ = write!(out, r#"[{t},"{v}"]"#);
                t += STEP_SECS;
                k += 1;
            }
            out.push_str("]}");
        }
    }
    out.push_str("]}}");
    out
}

pub fn bench(c: &mut Criterion) {
    let inv = inventory();
    let index = HostIndex::new(&inv);
    let bodies: Vec<(usize, String)> = DEFAULT_QUERIES
        .iter()
        .enumerate()
        .filter(|(_, q)| q.kind == QueryKind::HostRange)
        .map(|(i, _)| (i, answer(&inv, i)))
        .collect();
    let bytes: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    let mut g = c.benchmark_group("metrics_decode");
    g.bench_function(
        format!(
            "{} range answers, {HOSTS} hosts' sparklines ({} KiB of JSON)",
            bodies.len(),
            bytes / 1024
        ),
        |b| {
            b.iter(|| {
                // As the source starts each refresh: every inventory host has an entry.
                let mut state = MetricsState::default();
                for h in &inv.hosts {
                    state.hosts.insert(h.id.clone(), HostMetrics::default());
                }
                let mut unmapped = BTreeSet::new();
                for (i, body) in &bodies {
                    // As the source reads a success: straight into the series.
                    let data = decode_answer(body.as_bytes(), true).expect("a valid answer");
                    apply(
                        &mut state,
                        DEFAULT_QUERIES[*i],
                        data,
                        &index,
                        "instance",
                        NOW,
                        &mut unmapped,
                    );
                }
                assert_eq!(state.hosts.len(), HOSTS);
                assert!(
                    state
                        .hosts
                        .values()
                        .all(|h| !h.cpu_pct.points.is_empty() && !h.net_rx_bps.points.is_empty()),
                    "every host's sparklines decoded"
                );
                std::hint::black_box(state)
            })
        },
    );
    g.finish();
}
