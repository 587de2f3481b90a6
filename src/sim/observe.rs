//! The simulator's Mimir (Prometheus query API), Loki and Alertmanager faces on one loopback port, following
//! the world's state (down hosts, stopped etcd members, slow disks).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr};
use tokio_util::sync::CancellationToken;

/// The running faces and their generators (knobs can change at runtime).
pub struct Faces {
    /// `http://127.0.0.1:PORT/prometheus`
    pub mimir_url: String,
    /// `http://127.0.0.1:PORT`
    pub loki_url: String,
    /// `http://127.0.0.1:PORT/alertmanager`
    pub alertmanager_url: String,
    pub metrics: Arc<super::promql::Generator>,
    pub logs: Arc<super::loki::LogGenerator>,
}

/// Serve both faces on 127.0.0.1 until `stop`, kept in step with `world`: its down,
/// rebooting or unreachable hosts, stopped etcd members and slow disks (so every scenario
/// shows there as it does in the world).
pub async fn start(world: Arc<super::World>, stop: CancellationToken) -> Result<Faces> {
    let (metrics, prom) = super::promql::for_inventory(&world.inventory);
    let (logs, loki) = super::loki::for_inventory(&world.inventory);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .await
            .wrap_err("cannot listen on 127.0.0.1 for the Mimir/Loki faces")?;
    let addr = listener.local_addr().wrap_err("no local address")?;
    if world.frozen {
        metrics.freeze();
        logs.freeze_at(jiff::Timestamp::now().as_nanosecond());
    }
    // In step from the first query on, then following the world.
    apply(&world, &metrics, &logs, &knobs(&world));
    tokio::spawn(follow_world(
        world.clone(),
        metrics.clone(),
        logs.clone(),
        stop.clone(),
    ));
    let am = super::alertmanager::AlertmanagerFace::new(metrics.clone()).router();
    let faults = world.face_faults.clone();
    let app = super::faults::guard(prom, faults.clone(), "mimir")
        .merge(super::faults::guard(loki, faults.clone(), "loki"))
        .merge(super::faults::guard(am, faults, "alertmanager"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(Faces {
        mimir_url: format!("http://{addr}/prometheus"),
        loki_url: format!("http://{addr}"),
        alertmanager_url: format!("http://{addr}/alertmanager"),
        metrics,
        logs,
    })
}

/// What the faces take from the world: hosts down, rebooting or unreachable; hosts of stopped
/// etcd members; the host of a slow-disk member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Knobs {
    down: BTreeSet<String>,
    etcd_down: BTreeSet<String>,
    /// (id, hostname) of the host whose etcd member has a slow disk.
    slow_disk: Option<(String, String)>,
}

fn knobs(world: &super::World) -> Knobs {
    world.with_etcd(|etcd, hosts| {
        let host_of = |hostname: &str| {
            hosts
                .get(hostname)
                .map(|h| (h.id.clone(), h.hostname.clone()))
        };
        Knobs {
            down: hosts
                .values()
                .filter(|h| !h.up || h.rebooting || h.unreachable)
                .map(|h| h.id.clone())
                .collect(),
            etcd_down: etcd
                .members
                .iter()
                .filter(|m| m.stopped)
                .filter_map(|m| host_of(&m.hostname).map(|(id, _)| id))
                .collect(),
            slow_disk: etcd
                .members
                .iter()
                .find(|m| m.slow_disk)
                .and_then(|m| host_of(&m.hostname)),
        }
    })
}

fn apply(
    world: &super::World,
    metrics: &super::promql::Generator,
    logs: &super::loki::LogGenerator,
    k: &Knobs,
) {
    let (down, etcd_down, slow) = (k.down.clone(), k.etcd_down.clone(), k.slow_disk.clone());
    metrics.update(move |c| {
        c.down = down;
        c.etcd_down = etcd_down;
        c.slow_disk = slow.map(|(id, _)| id);
    });
    logs.set_slow_disk(k.slow_disk.as_ref().map(|(_, hostname)| hostname.clone()));
    for h in &world.inventory.hosts {
        logs.set_down(&h.hostname, k.down.contains(&h.id));
    }
}

/// Twice a second: hosts that are down, rebooting or unreachable lose their exporters (and logs),
/// stopped etcd members their metrics — as Prometheus would see it.
async fn follow_world(
    world: Arc<super::World>,
    metrics: Arc<super::promql::Generator>,
    logs: Arc<super::loki::LogGenerator>,
    stop: CancellationToken,
) {
    let mut last = knobs(&world);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        let now = knobs(&world);
        if now != last {
            apply(&world, &metrics, &logs, &now);
            last = now;
        }
    }
}
