//! One node's maintenance in the dashboard, with the real binary in tmux: `D` on a node plans
//! its drain (guards, PDBs, silences), `y` asks once more, the run shows beside the live health
//! column at 120×35 until the node is held in maintenance, the header names it, and `c` on the
//! node ends the maintenance (asks first). Read-only refuses `D`.

use crate::tui_e2e::Tmux;

#[test]
fn drain_a_node_in_the_demo_beside_live_health_then_c_ends_it() {
    let Some(t) = Tmux::new() else { return };
    t.start_sized("dr", 120, 35, "demo --speed 20");
    t.wait_for_secs("dr", "demo (simulated homelab)", 30);
    t.keys("dr", &["2"]);
    t.wait_for("dr", "v1.31");
    t.keys("dr", &["D"]);
    let s = t.wait_for_secs("dr", "Dry run: nothing has changed", 60);
    assert!(s.contains("Maintenance (drain)"), "{s}");
    assert!(s.contains("Drain node1"), "{s}");
    assert!(s.contains("PodDisruptionBudgets"), "{s}");
    t.keys("dr", &["y"]);
    t.wait_for("dr", "Drain node1 and hold it in maintenance?");
    t.keys("dr", &["y"]);
    // The run beside the live health column, until the node is held.
    let s = t.wait_for_secs("dr", "· in maintenance", 90);
    assert!(s.contains("live health"), "{s}");
    assert!(s.contains("tolerates"), "etcd's quorum in the column: {s}");
    assert!(s.contains(" node1 Ready cordoned"), "{s}");
    assert!(s.contains("drain✓"), "the drain step done: {s}");
    // Back on the dashboard: the header and the Nodes pane say it.
    t.keys("dr", &["Escape"]);
    t.wait_gone("dr", "live health");
    let s = t.screen("dr");
    let nodes_pane = s
        .lines()
        .filter(|l| l.contains("node1 ") && l.contains("in maint"))
        .count();
    assert!(nodes_pane >= 1, "the Nodes pane says it: {s}");
    assert!(
        !s.contains("etcd snapshot"),
        "a drain takes no snapshot: {s}"
    );
    t.keys("dr", &["c"]);
    t.wait_for(
        "dr",
        "End the maintenance: uncordon the node and expire its silences?",
    );
    t.keys("dr", &["y"]);
    t.wait_for_secs("dr", "1/1: run finished", 60);
    t.keys("dr", &["q"]);
    t.assert_restored("dr", "EXIT=0");
}

#[test]
fn read_only_refuses_drain() {
    let Some(t) = Tmux::new() else { return };
    t.start("dro", "--read-only demo");
    t.wait_for("dro", "READ-ONLY");
    t.keys("dro", &["2"]);
    t.wait_for("dro", "v1.31");
    t.keys("dro", &["D"]);
    t.wait_for("dro", "read-only mode: drains are disabled");
    t.keys("dro", &["q"]);
    t.assert_restored("dro", "EXIT=0");
}
