//! The run outlives the dashboard (STYLE rule 13), with the real binary in tmux: a run started
//! from one dashboard goes on when that dashboard is killed (SIGKILL), hung up on (SIGHUP) or
//! quit (`q`, `q`); each new dashboard finds it and attaches, and its header says so; the run
//! finishes on its own. The simulator runs in a process of its own (`sim --dir`). And the
//! demo, whose simulated cluster lives in the dashboard: quitting it stops its engine.

use crate::common::engine::{
    SimProcess, alive, cluster_end_state, planned_nodes, runs_dir, wait_dead, wait_finished,
    wait_gone, wait_run_id,
};
use crate::tui_e2e::Tmux;

use homeinfra_tui::operations::upgrade::RunOutcome;
use homeinfra_tui::operations::upgrade::process::socket_path;

/// The engine's pid, from the run's control socket (its hello).
fn engine_pid(t: &Tmux, run_id: &str) -> u32 {
    let c = crate::common::engine::RawClient::connect(&socket_path(&runs_dir(&t.state()), run_id));
    c.pid()
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn the_run_outlives_killed_hung_up_and_quit_dashboards() {
    let Some(t) = Tmux::new() else { return };
    let sim = SimProcess::start(8.0);
    let args = format!(
        "--config {} --hosts {}",
        sim.config().display(),
        sim.hosts().display()
    );
    // Dashboard a starts the run.
    t.start_sized("a", 200, 50, &args);
    t.wait_for_secs("a", "homeinfra-sim", 30);
    t.keys("a", &["U"]);
    t.wait_for_secs("a", "Dry run: nothing has changed", 60);
    t.keys("a", &["y"]);
    t.wait_for("a", "Start the rolling upgrade of 4 node(s)?");
    t.keys("a", &["y"]);
    let s = t.wait_for_secs("a", "— attached", 60);
    assert!(
        s.contains("engine pid"),
        "the run view names its engine: {s}"
    );
    let run_id = wait_run_id(&t.state(), 10);
    let engine = engine_pid(&t, &run_id);
    assert_ne!(
        engine as i32,
        t.pid("a"),
        "the engine is a process of its own"
    );

    // SIGKILL: the dashboard is gone, the run is not.
    signal(t.pid("a"), "KILL");
    t.wait_for("a", "EXIT=137");
    assert!(alive(engine), "the engine died with the dashboard");

    // Dashboard b finds the live run and attaches; then it is hung up on.
    t.start_sized("b", 200, 50, &args);
    let s = t.wait_for_secs("b", "— attached", 30);
    let short = format!("{}-…", run_id.split('-').next().unwrap_or_default());
    assert!(
        s.contains(&format!("{short} running")),
        "the header names the run: {s}"
    );
    signal(t.pid("b"), "HUP");
    t.wait_for("b", "EXIT=");
    assert!(alive(engine), "the engine died with a hung-up dashboard");

    // Dashboard c: q says the run goes on (and offers abort), q again leaves.
    t.start_sized("c", 200, 50, &args);
    t.wait_for_secs("c", "— attached", 30);
    t.keys("c", &["q"]);
    let s = t.wait_for("c", "goes on without the dashboard");
    assert!(s.contains(&format!("pid {engine}")), "{s}");
    assert!(s.contains("abort it at the next safe point"), "{s}");
    t.keys("c", &["q"]);
    let s = t.wait_for("c", "EXIT=0");
    assert!(
        s.contains(&format!(
            "upgrade {run_id} goes on without the dashboard (engine pid {engine})"
        )),
        "the last word on the terminal: {s}"
    );
    assert!(alive(engine), "the engine died when the dashboard quit");

    // The run finishes on its own: journal completed, every node uncordoned, lock released.
    let outcome = wait_finished(&t.state(), &run_id, 400);
    assert_eq!(outcome, RunOutcome::Completed);
    wait_dead(engine, 20);
    wait_gone(&socket_path(&runs_dir(&t.state()), &run_id), 5);
    let nodes = planned_nodes(&t.state(), &run_id);
    assert_eq!(nodes.len(), 4);
    let rt = tokio::runtime::Runtime::new().unwrap();
    crate::common::sim::init_crypto();
    let (cordoned, lease) = rt.block_on(cluster_end_state(&sim.config(), &nodes));
    assert!(cordoned.is_empty(), "left cordoned: {cordoned:?}");
    assert_eq!(lease, None, "the lock is released");
}

#[test]
fn quitting_the_demo_during_a_run_stops_its_engine() {
    let Some(t) = Tmux::new() else { return };
    t.start_sized("d", 160, 40, "--hosts hosts.json demo --speed 2");
    t.wait_for_secs("d", "demo (simulated homelab)", 30);
    t.keys("d", &["U"]);
    t.wait_for_secs("d", "Dry run: nothing has changed", 60);
    t.keys("d", &["y"]);
    t.wait_for("d", "Start the rolling upgrade");
    t.keys("d", &["y"]);
    t.wait_for_secs("d", "engine pid", 60);
    t.keys("d", &["q"]);
    let s = t.wait_for(
        "d",
        "the demo's simulated cluster stops with it; the engine stops at its next step",
    );
    let pid: u32 = s
        .split("pid ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no engine pid on the screen: {s}"));
    assert!(alive(pid));
    t.keys("d", &["q"]);
    let s = t.wait_for("d", "EXIT=0");
    assert!(s.contains("the engine stops at its next step"), "{s}");
    // Its cluster is gone: the engine stops rather than wait for it.
    wait_dead(pid, 30);
}
