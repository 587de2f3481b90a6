//! Upgrade safety (issue 12) against the in-memory fake world: every guard fails closed on
//! missing, errored, stale or unmatched data (and `skip_guards` shows as skipped), the guards
//! run again right before each destructive step, a quick reboot is known by its boot ids, a
//! host still down after the reboot timeout is neither failed nor rolled back and the run
//! resumes from there, the lock's renewals retry within the Lease, a torn journal line.

use std::time::Duration;

use super::engine_support::{opts, plan_of, run_to_end};
use homeinfra_tui::model::cluster::LonghornApi;
use homeinfra_tui::operations::upgrade::engine::StartOptions;
use homeinfra_tui::operations::upgrade::fake::{self, FakeWorld};
use homeinfra_tui::operations::upgrade::guards::{GuardVerdict, Verdict};
use homeinfra_tui::operations::upgrade::journal;
use homeinfra_tui::operations::upgrade::{
    RunOutcome, Settings, Step, UpgradeEvent, dry_run, start,
};

fn settings() -> Settings {
    Settings {
        time_zone: jiff::tz::TimeZone::UTC,
        ..Settings::default()
    }
}

/// The dry run's verdicts for every node of a 4-node fake after `fault`.
async fn verdicts_after(
    s: &Settings,
    fault: impl FnOnce(&mut fake::FakeState),
) -> Vec<(String, Vec<GuardVerdict>)> {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fault(&mut fw.state());
    let p = plan_of(&fw, &inv, "dry");
    let v = dry_run(&fw.read_world(), &inv, &p, s).await;
    assert!(
        fw.log().is_empty(),
        "a dry run writes nothing: {:?}",
        fw.log()
    );
    v.into_iter().map(|(e, v)| (e.node, v)).collect()
}

/// The verdicts of `guard` on `node`.
fn of<'a>(v: &'a [(String, Vec<GuardVerdict>)], node: &str, guard: &str) -> Vec<&'a GuardVerdict> {
    v.iter()
        .filter(|(n, _)| n == node)
        .flat_map(|(_, v)| v)
        .filter(|g| g.guard == guard)
        .collect()
}

/// `guard` on `node` cannot verify (and so refuses), its message containing `says`, with a fix.
fn assert_cannot_verify(v: &[(String, Vec<GuardVerdict>)], node: &str, guard: &str, says: &str) {
    let got = of(v, node, guard);
    assert!(
        got.iter().any(|g| g.verdict == Verdict::CannotVerify
            && !g.pass
            && g.message.contains(says)
            && g.fix.as_deref().is_some_and(|f| !f.is_empty())),
        "{guard} on {node} should be cannot-verify saying {says:?}: {got:#?}"
    );
    assert!(
        got.iter().all(|g| !g.verdict.lets_through()),
        "{guard} on {node}: {got:#?}"
    );
}

#[tokio::test]
async fn the_healthy_fake_passes_every_guard() {
    let v = verdicts_after(&settings(), |_| {}).await;
    assert_eq!(v.len(), 4);
    for (node, verdicts) in &v {
        for g in verdicts {
            assert_eq!(g.verdict, Verdict::Pass, "{node}: {g:?}");
        }
    }
}

#[tokio::test]
async fn every_missing_errored_stale_or_unmatched_input_refuses() {
    let s = settings();
    // The cluster cannot be read: the node guards and Longhorn's cannot verify.
    let v = verdicts_after(&s, |st| {
        st.cluster_error = Some("connection refused".into())
    })
    .await;
    for g in [
        "node-missing",
        "node-not-ready",
        "node-cordoned",
        "degraded-volume",
        "last-replica",
    ] {
        assert_cannot_verify(&v, "node1", g, "connection refused");
    }
    // Everything read long ago: stale data is not seen.
    let v = verdicts_after(&s, |st| st.health_age = Duration::from_secs(3600)).await;
    for g in [
        "node-missing",
        "degraded-volume",
        "last-replica",
        "etcd-member-down",
        "alert-firing",
    ] {
        assert_cannot_verify(&v, "node1", g, "3600s old");
    }
    // The API server listed no node at all.
    let v = verdicts_after(&s, |st| st.nodes.clear()).await;
    assert_cannot_verify(&v, "node1", "node-missing", "listed no node");
    // Longhorn: discovery never answered, errored, serves no longhorn.io, serves another
    // version, the kinds answer 404 (another namespace or version), an empty namespace.
    for (api, missing, volumes, says) in [
        (LonghornApi::Unknown, false, true, "was not discovered"),
        (
            LonghornApi::Error {
                message: "discovery: 503".into(),
            },
            false,
            true,
            "discovery: 503",
        ),
        (
            LonghornApi::NotServed,
            false,
            true,
            "serves no longhorn.io API",
        ),
        (
            LonghornApi::Served {
                versions: vec!["v1beta1".into()],
            },
            false,
            true,
            "serve longhorn.io v1beta1",
        ),
        (
            LonghornApi::Served {
                versions: vec!["v1beta2".into()],
            },
            true,
            true,
            "answered 404 at longhorn.io/v1beta2 in namespace longhorn-system",
        ),
        (
            LonghornApi::Served {
                versions: vec!["v1beta2".into()],
            },
            false,
            false,
            "holds no Longhorn node or volume",
        ),
    ] {
        let v = verdicts_after(&s, |st| {
            st.longhorn.api = api.clone();
            if missing {
                st.longhorn.installed = false;
                st.longhorn.missing_kinds = vec!["volumes".into(), "replicas".into()];
            }
            if !volumes {
                st.longhorn.volumes.clear();
                st.longhorn.nodes.clear();
                st.longhorn.replicas.clear();
            }
        })
        .await;
        for node in ["node1", "node4"] {
            assert_cannot_verify(&v, node, "degraded-volume", says);
            assert_cannot_verify(&v, node, "last-replica", says);
        }
    }
    // An attached volume whose robustness is not reported.
    let v = verdicts_after(&s, |st| st.longhorn.volumes[0].robustness = String::new()).await;
    assert_cannot_verify(
        &v,
        "node1",
        "degraded-volume",
        "robustness is \"not reported\"",
    );
    // etcd not monitored, or not answering, or listing no member.
    let v = verdicts_after(&s, |st| st.etcd = None).await;
    for g in ["etcd-no-leader", "etcd-member-down", "etcd-quorum"] {
        assert_cannot_verify(&v, "node1", g, "etcd is not monitored");
    }
    assert_cannot_verify(&v, "node4", "etcd-member-down", "etcd is not monitored");
    let v = verdicts_after(&s, |st| st.etcd_error = Some("gateway timed out".into())).await;
    assert_cannot_verify(&v, "node2", "etcd-quorum", "gateway timed out");
    let v = verdicts_after(&s, |st| {
        if let Some(e) = st.etcd.as_mut() {
            e.members.clear();
        }
    })
    .await;
    assert_cannot_verify(&v, "node1", "etcd-member-down", "listed no member");
    // A control plane whose etcd member is not matched (renamed member, other address).
    let v = verdicts_after(&s, |st| {
        if let Some(e) = st.etcd.as_mut() {
            let m = e
                .members
                .iter_mut()
                .find(|m| m.name.starts_with("node2-"))
                .unwrap();
            m.name = "elsewhere-0000abcd".into();
            m.client_urls = vec!["https://192.0.2.99:2379".into()];
        }
    })
    .await;
    assert_cannot_verify(
        &v,
        "node2",
        "etcd-quorum",
        "no etcd member matches control plane",
    );
    assert_eq!(of(&v, "node1", "etcd-quorum")[0].verdict, Verdict::Pass);
    // No metrics backend, or one that errors: alerts and gates cannot be seen.
    let v = verdicts_after(&s, |st| st.alerts = None).await;
    assert_cannot_verify(&v, "node3", "alert-firing", "no metrics backend");
    let gated = Settings {
        gates: vec!["up == 0".into()],
        ..settings()
    };
    let v = verdicts_after(&gated, |st| {
        st.metrics_error = Some("401 Unauthorized".into())
    })
    .await;
    assert_cannot_verify(&v, "node3", "alert-firing", "401 Unauthorized");
    assert_cannot_verify(
        &v,
        "node3",
        "promql-gate",
        "the query failed: 401 Unauthorized",
    );
    // The auto-upgrade state unknown.
    let v = verdicts_after(&s, |st| {
        for h in st.hosts.values_mut() {
            h.auto_upgrade.running = None;
        }
    })
    .await;
    assert_cannot_verify(&v, "node4", "auto-upgrade", "did not say whether");
    // A maintenance window that cannot be read refuses.
    let bad_window = Settings {
        maintenance_window: Some("after lunch".into()),
        ..settings()
    };
    let v = verdicts_after(&bad_window, |_| {}).await;
    let g = of(&v, "node1", "maintenance-window");
    assert!(g.iter().all(|g| g.verdict == Verdict::Refuse), "{g:#?}");
}

#[tokio::test]
async fn skip_guards_show_as_skipped_and_let_the_node_through() {
    let s = Settings {
        skip_guards: vec![
            "longhorn".into(),
            "etcd".into(),
            "alerts".into(),
            "auto-upgrade".into(),
        ],
        ..settings()
    };
    let v = verdicts_after(&s, |st| {
        st.longhorn.api = LonghornApi::NotServed;
        st.etcd = None;
        st.alerts = None;
        for h in st.hosts.values_mut() {
            h.auto_upgrade.running = None;
        }
    })
    .await;
    for (node, guards) in [
        (
            "node1",
            &[
                "degraded-volume",
                "last-replica",
                "etcd-no-leader",
                "etcd-member-down",
                "etcd-quorum",
                "alert-firing",
                "auto-upgrade",
            ][..],
        ),
        (
            "node4",
            &[
                "degraded-volume",
                "etcd-member-down",
                "alert-firing",
                "auto-upgrade",
            ][..],
        ),
    ] {
        for g in guards {
            let got = of(&v, node, g);
            assert!(
                !got.is_empty()
                    && got.iter().all(|g| g.verdict == Verdict::Skipped
                        && g.pass
                        && g.message.contains("skip_guards")),
                "{g} on {node}: {got:#?}"
            );
        }
    }
    // Only what the config names is skipped: the node guards still look.
    assert_eq!(of(&v, "node1", "node-missing")[0].verdict, Verdict::Pass);
    // A run goes through with them skipped.
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().etcd = None;
    let p = plan_of(&fw, &inv, "run-s");
    let (o, _) = run_to_end(&fw, &inv, p, s, opts("run-s", None)).await;
    assert_eq!(o, RunOutcome::Completed);
}

#[tokio::test]
async fn a_replica_failing_mid_drain_stops_the_run_before_the_reboot() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    // The first node drained is node4 (agents first); a replica on node1 fails once its
    // first pod is evicted.
    fw.state().fail_replica_after_evictions = Some(("pvc-data-r0".into(), 1));
    let p = plan_of(&fw, &inv, "run-m");
    assert_eq!(p.entries[0].node, "node4");
    let (o, events) = run_to_end(&fw, &inv, p, settings(), opts("run-m", None)).await;
    match &o {
        RunOutcome::Refused {
            node,
            guard,
            message,
        } => {
            assert_eq!(
                (node.as_deref(), guard.as_str()),
                (Some("node4"), "degraded-volume")
            );
            assert!(
                message.contains("right before the switch")
                    && message.contains("pvc-data")
                    && message.contains("stays cordoned"),
                "{message}"
            );
        }
        other => panic!("expected a refusal before the switch, got {other:?}"),
    }
    let log = fw.log();
    assert!(
        log.iter().any(|l| l == "replica-failed pvc-data-r0"),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.starts_with("reboot") || l.starts_with("switch")),
        "nothing destructive after the verdict changed: {log:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            UpgradeEvent::StepStarted {
                step: Step::Reboot | Step::Rollback,
                ..
            }
        )),
        "{events:#?}"
    );
    let st = fw.state();
    assert_eq!(st.nodes["node4"].cordoned_by.as_deref(), Some("run-m"));
    assert!(st.nodes["node4"].unschedulable);
}

#[tokio::test]
async fn a_quick_reboot_is_known_by_its_boot_ids_not_the_old_ready() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    for h in fw.state().hosts.values_mut() {
        h.quick_reboot = true;
    }
    let p = plan_of(&fw, &inv, "run-q");
    let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-q", None)).await;
    assert_eq!(o, RunOutcome::Completed);
    let st = fw.state();
    for (name, n) in &st.nodes {
        // The node kept reporting Ready with its old bootID for a while after the reboot:
        // the run waited until the new boot showed before going on.
        assert_eq!(n.boot_id, format!("{name}-nodeboot-1"), "{name}");
        assert!(
            n.pending_boot_id.is_none() && n.stale_reads == 0,
            "{name}: {n:?}"
        );
        assert!(!n.unschedulable, "{name}");
    }
    for (id, h) in &st.hosts {
        assert_eq!(h.boots, 1, "{id}");
    }
}

fn end_state(fw: &FakeWorld) -> String {
    let st = fw.state();
    let nodes: Vec<String> = st
        .nodes
        .iter()
        .map(|(n, x)| {
            format!(
                "{n} ready={} cordoned={} by={:?} k8s={}",
                x.ready, x.unschedulable, x.cordoned_by, x.kubelet_version
            )
        })
        .collect();
    let hosts: Vec<String> = st
        .hosts
        .iter()
        .map(|(id, h)| format!("{id} current={} booted={}", h.current, h.booted))
        .collect();
    format!("{nodes:#?}\n{hosts:#?}\nlease={:?}", st.lease.is_some())
}

#[tokio::test]
async fn a_host_down_past_the_reboot_timeout_is_still_rebooting_and_resumes() {
    let inv = fake::inventory(4);
    let reference = {
        let fw = FakeWorld::healthy(&inv);
        let p = plan_of(&fw, &inv, "run-d");
        let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-d", None)).await;
        assert_eq!(o, RunOutcome::Completed);
        end_state(&fw)
    };
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    let s = Settings {
        reboot_timeout: Duration::from_secs(60),
        poll: Duration::from_secs(5),
        ..settings()
    };
    // node4 goes first; after its reboot it answers nothing for far longer than the timeout.
    fw.state()
        .hosts
        .get_mut("instance_4")
        .unwrap()
        .down_after_reboot = 10_000;
    let p = plan_of(&fw, &inv, "run-d");
    let (o, events) = run_to_end(&fw, &inv, p, s.clone(), opts("run-d", Some(dir.path()))).await;
    match &o {
        RunOutcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), *step), ("node4", Step::Reboot));
            assert!(
                message.contains("still rebooting")
                    && message.contains("nothing is rolled back")
                    && message.contains("--resume run-d"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!events.iter().any(|e| matches!(
        e,
        UpgradeEvent::StepStarted {
            step: Step::Rollback,
            ..
        }
    )));
    assert!(
        !fw.log().iter().any(|l| l.starts_with("rollback")),
        "{:?}",
        fw.log()
    );
    assert_eq!(
        fw.state().nodes["node4"].cordoned_by.as_deref(),
        Some("run-d")
    );
    // The journal knows the reboot was issued (and the boot ids before it).
    let recs = journal::read(&journal::path_of(dir.path(), "run-d")).unwrap();
    assert!(recs.iter().any(|r| matches!(
        &r.event,
        UpgradeEvent::RebootIssued { node, before } if node == "node4" && !before.host_boot_id.is_empty()
    )));
    let sum = &journal::summarize(&journal::path_of(dir.path(), "run-d")).unwrap();
    // The run stopped there (its journal says where), to be resumed.
    assert_eq!(sum.stopped_at().as_deref(), Some("node4 reboot"));
    // Still down: a resume waits again and stops the same way, not rebooting a second time.
    let resume_at = sum.resume_at.expect("somewhere to resume");
    assert_eq!(resume_at, (0, Step::Reboot));
    let (o, _) = run_to_end(
        &fw,
        &inv,
        sum.plan.clone(),
        s.clone(),
        StartOptions {
            resume: Some(resume_at),
            ..opts("run-d", Some(dir.path()))
        },
    )
    .await;
    assert!(
        matches!(&o, RunOutcome::Failed { step: Step::Reboot, message, .. } if message.contains("still rebooting")),
        "{o:?}"
    );
    assert_eq!(
        fw.log()
            .iter()
            .filter(|l| *l == "reboot instance_4")
            .count(),
        1,
        "{:?}",
        fw.log()
    );
    // The host is back: resume ends as an uninterrupted run.
    fw.state().hosts.get_mut("instance_4").unwrap().down_probes = 0;
    let sum = &journal::summarize(&journal::path_of(dir.path(), "run-d")).unwrap();
    let (o, _) = run_to_end(
        &fw,
        &inv,
        sum.plan.clone(),
        s,
        StartOptions {
            resume: sum.resume_at,
            ..opts("run-d", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    assert_eq!(end_state(&fw), reference);
    let sum = journal::summarize(&journal::path_of(dir.path(), "run-d")).unwrap();
    assert_eq!(sum.finished, Some(RunOutcome::Completed));
}

#[tokio::test]
async fn lease_renewals_fail_for_a_while_retries_survive_a_short_outage() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    // Two failed renewals: retried with backoff well inside the Lease duration.
    fw.state().lease_update_failures = 2;
    let p = plan_of(&fw, &inv, "run-l");
    let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-l", None)).await;
    assert_eq!(o, RunOutcome::Completed);
    let log = fw.log();
    assert_eq!(
        log.iter().filter(|l| *l == "lease-update-failed").count(),
        2,
        "{log:?}"
    );
    assert!(fw.state().lease.is_none(), "released at the end");
}

#[tokio::test]
async fn lease_renewals_failing_past_the_lease_stop_before_the_next_destructive_step() {
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    fw.state().lease_update_failures = u32::MAX;
    let dir = tempfile::tempdir().unwrap();
    let p = plan_of(&fw, &inv, "run-x");
    let (o, _) = run_to_end(&fw, &inv, p, settings(), opts("run-x", Some(dir.path()))).await;
    match &o {
        RunOutcome::Refused {
            node,
            guard,
            message,
        } => {
            assert_eq!((node.as_deref(), guard.as_str()), (Some("node4"), "lock"));
            assert!(
                message.contains("cannot show that this run still holds the upgrade lock")
                    && message.contains("not starting the drain of node4")
                    && message.contains("500"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let log = fw.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("evict") || l.starts_with("switch") || l.starts_with("reboot")),
        "no drain, switch or reboot without the lock: {log:?}"
    );
    assert_eq!(
        fw.state().nodes["node4"].cordoned_by.as_deref(),
        Some("run-x")
    );
    // The API answers again: the run resumes and finishes.
    fw.state().lease_update_failures = 0;
    fw.state().now += jiff::SignedDuration::from_mins(5);
    let sum = &journal::summarize(&journal::path_of(dir.path(), "run-x")).unwrap();
    let (o, _) = run_to_end(
        &fw,
        &inv,
        sum.plan.clone(),
        settings(),
        StartOptions {
            resume: sum.resume_at,
            force_unlock: false,
            ..opts("run-x", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
}

#[tokio::test]
async fn a_torn_journal_line_then_resume_keeps_the_journal_readable() {
    use std::io::Write;
    let inv = fake::inventory(4);
    let fw = FakeWorld::healthy(&inv);
    let dir = tempfile::tempdir().unwrap();
    fw.freeze_at("exec", 1);
    let p = plan_of(&fw, &inv, "run-t");
    let (h, mut rx) = start(
        fw.world(),
        inv.clone(),
        p,
        settings(),
        opts("run-t", Some(dir.path())),
    );
    fw.wait_frozen().await;
    h.kill();
    while rx.recv().await.is_some() {}
    let _ = h.wait().await;
    fw.unfreeze();
    // Killed mid-write: half a record at the end.
    let path = journal::path_of(dir.path(), "run-t");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"ts\":\"2027-01-15T08:00:00Z\",\"event\":\"step_fin")
        .unwrap();
    let sum = &journal::unfinished(dir.path()).unwrap()[0];
    fw.state().now += jiff::SignedDuration::from_mins(5);
    let (o, _) = run_to_end(
        &fw,
        &inv,
        sum.plan.clone(),
        settings(),
        StartOptions {
            resume: sum.resume_at,
            ..opts("run-t", Some(dir.path()))
        },
    )
    .await;
    assert_eq!(o, RunOutcome::Completed);
    let text = std::fs::read_to_string(&path).unwrap();
    for (i, line) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<journal::Record>(line).is_ok(),
            "line {} of the journal is not a record: {line}",
            i + 1
        );
    }
    let sum = journal::summarize(&path).unwrap();
    assert_eq!(sum.finished, Some(RunOutcome::Completed));
    assert_eq!(sum.done.len(), 4);
    assert!(journal::unfinished(dir.path()).unwrap().is_empty());
}
