//! Snapshots of a whole homelab for TestBackend tests: healthy, and degraded (a node down and
//! cordoned, an etcd member down, a volume degraded and rebuilding, another faulted, alerts
//! firing, a host that needs a reboot, a host drifted from the flake). Built by hand, so drawings are stable.

use std::path::Path;
use std::sync::Arc;

use homeinfra_tui::app::{App, Keymap};
use homeinfra_tui::config::Config;
use homeinfra_tui::model::cluster::{
    ClusterState, LonghornState, NodeInfo, PodRow, Replica, Volume,
};
use homeinfra_tui::model::etcd::{EtcdMember, EtcdState};
use homeinfra_tui::model::host::HostFacts;
use homeinfra_tui::model::metrics::{Alert, MetricsState};
use homeinfra_tui::model::{Snapshot, Sourced};
use homeinfra_tui::operations::closure_diff::fleet::FleetTargets;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub const NOW: i64 = 1_700_000_000;

/// A long PVC name (the Longhorn pane shows it whole on a wide screen).
pub const LONG_PVC: &str = "monitoring/storage-loki-compactor-0";
/// A whole NixOS version (the Hosts pane shows it whole on a wide screen).
pub const NIXOS: &str = "25.05.20250612.abcdef0";

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW).unwrap()
}

fn sourced<T>(v: T) -> Sourced<T> {
    let mut s = Sourced::configured();
    s.record(Ok(v), now());
    s
}

fn node(name: &str, cp: bool, ready: bool, cordoned: bool) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        ready: Some(ready),
        unschedulable: cordoned,
        kubelet_version: "v1.31.4+k3s1".into(),
        roles: if cp {
            vec!["control-plane".into(), "etcd".into(), "master".into()]
        } else {
            vec![]
        },
        zone: Some("rack-a".into()),
        created: Some(jiff::Timestamp::from_second(NOW - 86_400 * 40).unwrap()),
        ..Default::default()
    }
}

fn volume(name: &str, pvc: &str, robustness: &str, size_gib: u64) -> Volume {
    Volume {
        name: name.into(),
        size_bytes: size_gib << 30,
        number_of_replicas: 3,
        state: "attached".into(),
        robustness: robustness.into(),
        pvc: Some(pvc.into()),
        last_backup_at: Some(jiff::Timestamp::from_second(NOW - 3_600 * 5).unwrap()),
        ..Default::default()
    }
}

fn replica(volume: &str, node: &str, healthy: bool, rebuilding: bool) -> Replica {
    Replica {
        name: format!("{volume}-r-{node}"),
        volume: volume.into(),
        node: node.into(),
        current_state: if healthy { "running" } else { "stopped" }.into(),
        healthy,
        rebuilding,
    }
}

fn member(id: u64, name: &str, ip: &str, healthy: bool, leader: bool) -> EtcdMember {
    EtcdMember {
        id,
        name: name.into(),
        client_urls: vec![format!("https://{ip}:2379")],
        endpoint: Some(format!("https://{ip}:2379")),
        reachable: healthy,
        healthy,
        is_leader: leader,
        db_size_bytes: Some(24 << 20),
        quota_bytes: Some(2 << 30),
        raft_index_lag: Some(0),
        ..Default::default()
    }
}

/// The homelab of `hosts.json`, healthy or degraded.
pub fn snapshot(degraded: bool) -> Snapshot {
    let d = degraded;
    let nodes = vec![
        node("node1", true, true, false),
        node("node2", true, true, false),
        node("node3", true, !d, d),
        node("sat1", false, true, false),
    ];
    let pods = nodes
        .iter()
        .flat_map(|n| {
            (0..3).map(|i| PodRow {
                namespace: "default".into(),
                name: format!("web-{}-{i}", n.name),
                node: Some(n.name.clone()),
                phase: "Running".into(),
                ready_containers: 1,
                total_containers: 1,
                ..Default::default()
            })
        })
        .collect::<Vec<_>>()
        .into();
    let uuid_a = "pvc-3f2a9c4e-8d1b-4e7a-9c55-0b6f1d2e3a4b";
    let uuid_b = "pvc-91c0d7aa-52e4-4b8f-a1e3-7d9f20c4b612";
    let uuid_c = "pvc-0a7e5b31-c2d8-4f96-8e14-5b3c9a7d2e80";
    let volumes = vec![
        volume(uuid_a, LONG_PVC, if d { "degraded" } else { "healthy" }, 10),
        volume(uuid_b, "default/postgres-data", "healthy", 20),
        volume(
            uuid_c,
            "media/jellyfin-config",
            if d { "faulted" } else { "healthy" },
            5,
        ),
    ];
    let mut replicas = Vec::new();
    for v in [uuid_a, uuid_b, uuid_c] {
        for n in ["node1", "node2", "node3"] {
            let broken = d && n == "node3" && v != uuid_b;
            replicas.push(replica(v, n, !broken, broken && v == uuid_a));
        }
    }
    let cluster = ClusterState {
        server_version: Some("v1.31.4+k3s1".into()),
        nodes,
        pods,
        pdbs: vec![],
        longhorn: LonghornState {
            installed: true,
            volumes,
            replicas,
            ..Default::default()
        },
        etcd_snapshots: None,
        certificates: None,
    };
    let etcd = EtcdState {
        members: vec![
            member(0x8e9e05c52164694d, "node1-3f2a", "192.0.2.11", true, true),
            member(0x91bc3c398fb3c146, "node2-91c0", "192.0.2.12", true, false),
            member(0xfd422379fda50e48, "node3-0a7e", "192.0.2.13", !d, false),
        ],
        leader: Some(0x8e9e05c52164694d),
        ..Default::default()
    };
    let alerts = if d {
        vec![
            Alert {
                name: "NodeDown".into(),
                severity: "critical".into(),
                host: Some("instance_3".into()),
                ..Default::default()
            },
            Alert {
                name: "VolumeDegraded".into(),
                severity: "warning".into(),
                ..Default::default()
            },
        ]
    } else {
        vec![]
    };
    let mimir = MetricsState {
        alerts,
        at: NOW,
        ..Default::default()
    };
    let hosts = ["instance_1", "instance_2", "instance_3", "satellite_1"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let facts = HostFacts {
                hostname: Some(id.to_string()),
                nixos_version: Some(NIXOS.into()),
                generation: Some(40 + i as u64),
                uptime_secs: Some(86_400 * 3),
                reboot_needed: Some(d && *id == "instance_2"),
                current_system: Some(system(id, deployed_release(d, id))),
                failed_units: Some(vec![]),
                ..Default::default()
            };
            (id.to_string(), sourced(facts))
        })
        .collect();
    Snapshot {
        cluster: sourced(Arc::new(cluster)),
        etcd: sourced(etcd),
        mimir: sourced(Arc::new(mimir)),
        loki: Sourced::not_configured("Loki: not configured — set [loki] url"),
        hosts,
    }
}

/// The hostname of an inventory id in hosts.json.
fn hostname(id: &str) -> &'static str {
    match id {
        "instance_1" => "node1",
        "instance_2" => "node2",
        "instance_3" => "node3",
        _ => "sat1",
    }
}

/// A host's system as the flake builds it (or as deployed) at `release`.
fn system(id: &str, release: &str) -> String {
    format!(
        "/nix/store/{}-nixos-system-{}-{release}",
        "a".repeat(32),
        hostname(id)
    )
}

/// What a host runs: the flake's release, except the degraded world's satellite, which runs
/// a newer one the flake does not build (drifted).
fn deployed_release(degraded: bool, id: &str) -> &'static str {
    if degraded && id == "satellite_1" {
        "25.05.20250701.fedcba9"
    } else {
        NIXOS
    }
}

pub fn app(degraded: bool) -> App {
    let text = std::fs::read_to_string("hosts.json").unwrap();
    let inv = homeinfra_tui::inventory::parse(Path::new("hosts.json"), &text).unwrap();
    let mut config = Config::default();
    config.nix.flake = Some("/srv/homelab".into());
    let targets = inv
        .hosts
        .iter()
        .map(|h| (h.id.clone(), Ok(system(&h.id, NIXOS))))
        .collect();
    let mut app = App::new(
        inv,
        config,
        Keymap::default(),
        snapshot(degraded),
        "homelab".into(),
        false,
        now(),
    );
    app.tz = jiff::tz::TimeZone::UTC;
    app.drift.targets = Some(FleetTargets {
        fingerprint: Some("sha256-worlds".into()),
        targets,
    });
    app.invalidate();
    app
}

/// Draw `app` at `w`×`h` with the default theme (or without colour).
pub fn terminal(app: &App, w: u16, h: u16, no_color: bool) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let theme = homeinfra_tui::ui::Theme::load(None, no_color).unwrap();
    term.draw(|f| homeinfra_tui::ui::draw(f, app, &theme))
        .unwrap();
    term
}

/// Row `y` of the screen as text (trailing blanks trimmed).
pub fn row(term: &Terminal<TestBackend>, y: u16) -> String {
    let buf = term.backend().buffer();
    let mut line = String::new();
    for x in 0..buf.area.width {
        line.push_str(buf[(x, y)].symbol());
    }
    line.trim_end().to_string()
}

/// The whole screen as text.
pub fn screen(term: &Terminal<TestBackend>) -> String {
    let h = term.backend().buffer().area.height;
    (0..h).map(|y| row(term, y) + "\n").collect()
}

/// Row `y` as runs of one foreground colour: `[Green]✓ etcd 3/3 …`.
pub fn colours(term: &Terminal<TestBackend>, y: u16) -> String {
    let buf = term.backend().buffer();
    let mut out = String::new();
    let mut cur = None;
    for x in 0..buf.area.width {
        let c = &buf[(x, y)];
        if c.symbol() == " " && cur.is_some() {
            out.push(' ');
            continue;
        }
        if cur != Some(c.fg) {
            cur = Some(c.fg);
            out.push_str(&format!("[{:?}]", c.fg));
        }
        out.push_str(c.symbol());
    }
    out.trim_end().to_string()
}
