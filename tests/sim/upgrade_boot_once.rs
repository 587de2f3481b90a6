//! The new kernel boots once before it becomes the default (issue 15, item 2) end to end: the
//! real binary against the simulator, whose hosts model their boot loader (one entry per
//! generation, the default, the one-shot entry consumed at boot). A healthy reboot boots the
//! new generation once (the previous one stays the default), and the make-default step makes
//! it the default once the node is healthy on it; `new-kernel-panics` (the one-shot boot
//! fails, the host resets into its default) stops the run with the node cordoned, back on its
//! previous generation; a host with GRUB without a saved default is refused under
//! `boot_once = "require"` and rebooted straight into its new generation under `prefer`.

use serde_json::Value;

use crate::common::sim as simh;
use crate::upgrade_safety::{follow, home, node_json, requests, section};

/// The kinds of the SSH commands `host` received, in order.
fn kinds_for(ssh: &[Value], host: &str) -> Vec<String> {
    ssh.iter()
        .filter(|r| r["host"] == host)
        .map(|r| r["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

fn step<'a>(events: &'a [Value], node: &str, step: &str) -> &'a Value {
    events
        .iter()
        .find(|v| v["event"] == "step_finished" && v["node"] == node && v["step"] == step)
        .unwrap_or_else(|| panic!("no {step} step for {node}: {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_reboot_boots_once_then_makes_the_new_generation_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&[], 20.0, dir.path()).await;
    let before = h.world().host_systems("node4").unwrap();
    let old_default = h.world().bootloader("node4").unwrap().default;
    assert_eq!(
        old_default,
        Some(format!("nixos-generation-{}.conf", before.current().number))
    );
    let hm = home(&h, |_| {});
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_eq!(code, Some(0), "{events:#?}");
    let set = events
        .iter()
        .find(|v| v["event"] == "boot_once_set" && v["node"] == "node4")
        .unwrap_or_else(|| panic!("no boot_once_set: {events:#?}"));
    let now = h.world().host_systems("node4").unwrap();
    let new_entry = format!("nixos-generation-{}.conf", now.current().number);
    assert_eq!(set["entry"], new_entry.as_str(), "{set}");
    assert_eq!(set["via"], "bootctl", "{set}");
    assert_eq!(set["previous"], before.current().system.path().as_str());
    assert_eq!(set["new"], now.current().system.path().as_str());
    assert_eq!(*now.booted, *now.current().system, "booted the new one");
    let reboot = step(&events, "node4", "reboot")["outcome"].to_string();
    assert!(reboot.contains(&new_entry), "{reboot}");
    let md = step(&events, "node4", "make-default")["outcome"].to_string();
    assert!(
        md.contains("ok") && md.contains(&format!("{new_entry} is the boot default now")),
        "{md}"
    );
    let bl = h.world().bootloader("node4").unwrap();
    assert_eq!(bl.default.as_deref(), Some(new_entry.as_str()), "{bl:?}");
    assert_eq!(bl.oneshot, None, "no one-shot entry left: {bl:?}");
    assert!(
        h.ssh().revert_units(h.world()).is_empty(),
        "no armed timer: {:?}",
        h.ssh().revert_units(h.world())
    );
    // The order on the host: the previous system's boot loader (the default kept), the
    // one-shot entry, the reboot, then the new system's boot loader (the new default).
    let (_, ssh) = requests(&h).await;
    let kinds = kinds_for(&ssh, "node4");
    let all = |k: &str| {
        kinds
            .iter()
            .enumerate()
            .filter(|(_, x)| *x == k)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let (defaults, oneshots, reboots) = (all("boot-default"), all("one-shot"), all("reboot"));
    assert_eq!(defaults.len(), 2, "{kinds:?}");
    assert_eq!(oneshots.len(), 1, "{kinds:?}");
    assert_eq!(reboots.len(), 1, "{kinds:?}");
    assert!(
        all("disarm")[0] < defaults[0]
            && defaults[0] < oneshots[0]
            && oneshots[0] < reboots[0]
            && reboots[0] < defaults[1],
        "{kinds:?}"
    );
    let cmds: Vec<&str> = ssh
        .iter()
        .filter(|r| {
            r["host"] == "node4" && (r["kind"] == "boot-default" || r["kind"] == "one-shot")
        })
        .map(|r| r["command"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        cmds,
        [
            format!(
                "sudo {}/bin/switch-to-configuration boot",
                before.current().system.path()
            ),
            format!("sudo bootctl set-oneshot {new_entry}"),
            format!(
                "sudo {}/bin/switch-to-configuration boot",
                now.current().system.path()
            ),
        ],
        "{ssh:#?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kernel_that_panics_comes_back_on_the_previous_generation_and_the_run_stops() {
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["new-kernel-panics"], 20.0, dir.path()).await;
    let before = h.world().host_systems("node4").unwrap();
    let old = before.current().system.path();
    let new_kernel = h.world().flake_system("node4").unwrap().pins.kernel.clone();
    let hm = home(&h, |_| {});
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
        outcome.contains(&format!(
            "node4 did not boot its new generation (kernel {new_kernel}): it came back on the previous one ({old})"
        )),
        "{outcome}"
    );
    assert!(outcome.contains("node4 stays cordoned"), "{outcome}");
    assert_eq!(last["outcome"]["step"], "reboot", "{last}");
    // Back on its previous system, booted, reachable; the previous generation still the
    // default, no one-shot left; never rolled back over SSH, nothing made the default.
    let now = h.world().host_systems("node4").unwrap();
    assert_eq!(now.current().system.path(), old);
    assert_eq!(now.booted.path(), old);
    let hs = h.world().host("node4").unwrap();
    assert!(hs.up && !hs.unreachable && !hs.rebooting, "reachable again");
    let bl = h.world().bootloader("node4").unwrap();
    assert_eq!(
        bl.default,
        Some(format!("nixos-generation-{}.conf", before.current().number))
    );
    assert_eq!(bl.oneshot, None);
    let (_, ssh) = requests(&h).await;
    let kinds = kinds_for(&ssh, "node4");
    assert!(!kinds.iter().any(|k| k == "rollback"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "boot-default").count(),
        1,
        "only the previous system's: {kinds:?}"
    );
    let n = node_json(&h, "node4").await;
    assert_eq!(n["spec"]["unschedulable"], true, "node4 stays cordoned");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grub_without_a_saved_default_is_refused_under_require_and_rebooted_directly_under_prefer()
{
    let dir = tempfile::tempdir().unwrap();
    let h = simh::start_in(&["grub-no-saved-default=node4"], 20.0, dir.path()).await;
    let before = h
        .world()
        .host_systems("node4")
        .unwrap()
        .current()
        .system
        .path();
    // require: refused before anything is touched, naming the node and its loader.
    let hm = home(&h, |cfg| {
        section(cfg, "upgrade").insert("boot_once".into(), "require".into());
    });
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_ne!(code, Some(0), "{events:#?}");
    let outcome = events.last().unwrap()["outcome"].clone();
    assert_eq!(outcome["status"], "refused", "{outcome}");
    assert_eq!(outcome["guard"], "boot-once", "{outcome}");
    let msg = outcome["message"].as_str().unwrap();
    assert!(
        msg.contains("node4 cannot boot once: GRUB without a saved default")
            && msg.contains("boot_once = \"require\""),
        "{msg}"
    );
    assert_eq!(
        h.world()
            .host_systems("node4")
            .unwrap()
            .current()
            .system
            .path(),
        before,
        "nothing switched"
    );
    let (_, ssh) = requests(&h).await;
    assert!(
        !ssh.iter()
            .any(|r| r["host"] == "node4" && r["mutating"] == true),
        "no mutating command: {ssh:#?}"
    );
    // prefer (the default): the plan says so, the reboot goes straight into the new one.
    let hm = home(&h, |_| {});
    let (code, events) = follow(
        &h,
        &hm,
        &["upgrade", "--yes", "--json", "--only", "node4"],
        |_| None,
    )
    .await;
    assert_eq!(code, Some(0), "{events:#?}");
    let said = events.iter().any(|v| {
        v["event"] == "guard_verdicts"
            && v["node"] == "node4"
            && v["verdicts"].as_array().unwrap().iter().any(|g| {
                g["guard"] == "boot-once"
                    && g["pass"] == true
                    && g["message"].as_str().unwrap_or("").contains(
                        "cannot boot once: GRUB without a saved default (no /boot/grub/grubenv) — reboots straight into the new generation",
                    )
            })
    });
    assert!(said, "{events:#?}");
    let md = step(&events, "node4", "make-default")["outcome"].to_string();
    assert!(md.contains("skipped"), "{md}");
    let now = h.world().host_systems("node4").unwrap();
    assert_eq!(*now.booted, *now.current().system);
    assert_ne!(now.current().system.path(), before);
    let (_, ssh) = requests(&h).await;
    let kinds = kinds_for(&ssh, "node4");
    assert!(
        kinds.iter().any(|k| k == "reboot")
            && !kinds.iter().any(|k| k == "one-shot" || k == "boot-default"),
        "{kinds:?}"
    );
    h.shutdown().await;
}
