//! `--read-only` holds for the dashboard as a user drives it: the real binary in tmux against
//! the simulator in its own process, every key that could write pressed and confirmed (cordon,
//! the rolling upgrade, a diff, a refresh), then the simulator's own record of what it received
//! shows no Kubernetes write and no mutating SSH command — while the dashboard did read.

use crate::common::engine::SimProcess;
use crate::tui_e2e::Tmux;

#[test]
fn a_read_only_dashboard_writes_nothing_whatever_is_pressed() {
    let Some(t) = Tmux::new() else { return };
    if crate::common::require_program("curl").is_none() {
        return;
    }
    let sim = SimProcess::start(8.0);
    let args = format!(
        "--read-only --config {} --hosts {}",
        sim.config().display(),
        sim.hosts().display()
    );
    t.start_sized("ro", 200, 50, &args);
    t.wait_for_secs("ro", "READ-ONLY", 30);
    t.wait_for_secs("ro", "v1.31", 30);
    // Cordon a node, confirmed.
    t.keys("ro", &["2", "j", "c"]);
    t.wait_for("ro", "read-only mode: cordon and uncordon are disabled");
    t.keys("ro", &["y"]);
    // The rolling upgrade, confirmed twice.
    t.keys("ro", &["U"]);
    t.wait_for("ro", "read-only mode: upgrades are disabled");
    t.keys("ro", &["y", "y"]);
    // A closure diff of a host, a refresh, back.
    t.keys("ro", &["Escape", "1", "j", "d"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    t.keys("ro", &["Escape", "r"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    t.keys("ro", &["q"]);
    t.assert_restored("ro", "EXIT=0");

    let (writes, ssh) = sim.requests();
    assert!(writes.is_empty(), "no Kubernetes write: {writes:#?}");
    assert!(!ssh.is_empty(), "the dashboard did read the hosts over SSH");
    let mutating: Vec<_> = ssh.iter().filter(|r| r["mutating"] == true).collect();
    assert!(
        mutating.is_empty(),
        "no mutating SSH command: {mutating:#?}"
    );
}
