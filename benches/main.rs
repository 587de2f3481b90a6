//! Every benchmark in one binary (one link for `cargo test --all-targets`), one module per
//! subject: `closure_diff` (parse + classify), `upgrade_engine` (a whole run against the fake
//! world), `metrics_refresh` (a Mimir refresh at 200 hosts against the sim's face), `upgrade_plan`
//! (the plan of 200 simulated nodes with their closure diffs), `dashboard` (a frame at 200×60
//! with 200 nodes per pane, `assess` at 500 nodes, the facts parser for 200 hosts),
//! `metrics_decode` (Mimir's range answers for 200 hosts' sparklines, parsed and folded).
//!
//! `cargo bench --bench main` runs them all; `cargo bench --bench main -- metrics_refresh`
//! (or `closure_diff`, `upgrade_run`, `upgrade_plan`, `dashboard`, `metrics_decode`) one group.

#[path = "main/closure_diff.rs"]
mod closure_diff;
#[path = "main/dashboard.rs"]
mod dashboard;
#[path = "main/metrics_decode.rs"]
mod metrics_decode;
#[path = "main/metrics_refresh.rs"]
mod metrics_refresh;
#[path = "main/upgrade_engine.rs"]
mod upgrade_engine;
#[path = "main/upgrade_plan.rs"]
mod upgrade_plan;

use criterion::Criterion;

fn main() {
    // The metrics benchmark runs the sim's Prometheus face in a child: this binary again.
    if std::env::args().any(|a| a == metrics_refresh::SERVE_FLAG) {
        return metrics_refresh::serve();
    }
    let mut c = Criterion::default().configure_from_args();
    dashboard::bench(&mut c);
    metrics_decode::bench(&mut c);
    closure_diff::bench(&mut c);
    upgrade_engine::bench(&mut c);
    upgrade_plan::bench(&mut c);
    metrics_refresh::bench(&mut c);
    c.final_summary();
}
