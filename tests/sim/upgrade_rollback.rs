//! The switch that reverts itself (issue 15) end to end: the real binary against the
//! simulator. Before each switch the host's revert timer is armed (`systemd-run
//! --on-active=…`, modelled by the simulated host: armed, fired, disarmed); a healthy switch is
//! confirmed over a new SSH login and the timer disarmed; `switch-breaks-network` leaves the
//! host unreachable after its switch until its own timer takes it back to its previous system,
//! and the run reports that and stops with the node cordoned.

use serde_json::Value;

use crate::common::sim as simh;
use crate::upgrade_safety::{follow, home, node_json, requests, section};
use homeinfra_tui::probes::revert::RevertTimer;

/// The kinds of the SSH commands node4's host received, in order.
fn kinds_for(ssh: &[Value], host: &str) -> Vec<String> {
    ssh.iter()
        .filter(|r| r["host"] == host)
        .map(|r| r["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

fn armed(events: &[Value], node: &str) -> Value {
    events
        .iter()
        .find(|v| v["event"] == "revert_armed" && v["node"] == node)
        .cloned()
        .unwrap_or_else(|| panic!("no revert_armed for {node}: {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_that_breaks_the_network_reverts_by_itself_and_the_run_stops_cordoned() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["switch-breaks-network"], 20.0, dir.path()).await;
    let before = h
        .world()
        .host_systems("node4")
        .expect("node4's systems")
        .current()
        .system
        .path();
    let hm = home(&h, |cfg| {
        section(cfg, "upgrade").insert("confirm_timeout_secs".into(), 4.into());
    });
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_ne!(code, Some(0), "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{events:#?}");
    let outcome = last["outcome"].to_string();
    assert!(
        outcome.contains(
            "node4 rolled itself back: the new system was not confirmed within 4 s — sshd unreachable after activation"
        ),
        "{outcome}"
    );
    assert!(outcome.contains("stays cordoned"), "{outcome}");
    assert!(
        outcome.contains(&before),
        "names the previous system: {outcome}"
    );
    // Journaled with the system it goes back to, before the switch.
    let a = armed(&events, "node4");
    assert_eq!(a["previous"], before.as_str(), "{a}");
    assert_eq!(a["secs"], 4, "{a}");
    let unit = a["unit"].as_str().unwrap().to_string();
    assert!(unit.starts_with("homeinfra-revert-"), "{unit}");
    // The host runs its previous system again, answers, its timer fired; never rolled back
    // over SSH, never rebooted.
    let now = h
        .world()
        .host_systems("node4")
        .unwrap()
        .current()
        .system
        .path();
    assert_eq!(now, before, "back on the previous system");
    let hs = h.world().host("node4").unwrap();
    assert!(!hs.unreachable && hs.up, "reachable again");
    assert_eq!(
        h.ssh().revert_timer(h.world(), "node4", &unit),
        Some(RevertTimer::Fired)
    );
    let (_, ssh) = requests(&h).await;
    let kinds = kinds_for(&ssh, "node4");
    let at = |k: &str| kinds.iter().position(|x| x == k);
    assert!(
        at("arm-revert").is_some() && at("arm-revert") < at("switch"),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "rollback" || k == "reboot"),
        "{kinds:?}"
    );
    let n = node_json(&h, "node4").await;
    assert_eq!(n["spec"]["unschedulable"], true, "node4 stays cordoned");
    let ready = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .clone();
    assert_eq!(ready, "True", "node4 Ready again on its previous system");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_run_confirms_each_switch_and_leaves_no_armed_timer() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, dir.path()).await;
    let hm = home(&h, |_| {});
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_eq!(code, Some(0), "{events:#?}");
    let a = armed(&events, "node4");
    assert_eq!(a["secs"], 120, "the default confirm_timeout_secs: {a}");
    let confirm = events
        .iter()
        .find(|v| v["event"] == "step_finished" && v["node"] == "node4" && v["step"] == "confirm")
        .expect("a confirm step");
    let msg = confirm["outcome"].to_string();
    assert!(
        msg.contains("confirmed") && msg.contains("disarmed"),
        "{msg}"
    );
    // The new system stays: current is the flake's, not the one the timer would go back to.
    let now = h
        .world()
        .host_systems("node4")
        .unwrap()
        .current()
        .system
        .path();
    assert_ne!(now, a["previous"].as_str().unwrap());
    assert!(
        h.ssh().revert_units(h.world()).is_empty(),
        "no timer left: {:?}",
        h.ssh().revert_units(h.world())
    );
    let (_, ssh) = requests(&h).await;
    let kinds = kinds_for(&ssh, "node4");
    let at = |k: &str| kinds.iter().position(|x| x == k);
    assert!(
        at("arm-revert") < at("switch") && at("switch") < at("disarm"),
        "{kinds:?}"
    );
    h.shutdown().await;
}
