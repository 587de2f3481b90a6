//! The simulator's Mimir (Prometheus query API) and Loki faces on one loopback port, with the
//! scenarios' knobs applied (slow disk, unreachable host).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr};
use tokio_util::sync::CancellationToken;

use super::Scenario;
use crate::inventory::{Inventory, Role};

/// The running faces and their generators (knobs can change at runtime).
pub struct Faces {
    /// `http://127.0.0.1:PORT/prometheus`
    pub mimir_url: String,
    /// `http://127.0.0.1:PORT`
    pub loki_url: String,
    pub metrics: Arc<super::promql::Generator>,
    pub logs: Arc<super::loki::LogGenerator>,
}

/// Serve both faces on 127.0.0.1 until `stop`; `world` (when given) keeps them in step with
/// hosts going down and etcd members stopping.
pub async fn start(
    inv: &Inventory,
    scenarios: &[Scenario],
    world: Option<Arc<super::World>>,
    stop: CancellationToken,
) -> Result<Faces> {
    let (metrics, prom) = super::promql::for_inventory(inv);
    let (logs, loki) = super::loki::for_inventory(inv);
    let slow = inv
        .control_planes()
        .nth(1)
        .or_else(|| inv.control_planes().next());
    let unreachable = inv
        .hosts
        .iter()
        .rev()
        .find(|h| h.role == Role::Agent)
        .or(inv.hosts.last());
    for sc in scenarios {
        match sc {
            Scenario::SlowDisk => {
                if let Some(h) = slow {
                    let id = h.id.clone();
                    metrics.update(|c| c.slow_disk = Some(id));
                    logs.set_slow_disk(Some(h.hostname.clone()));
                }
            }
            Scenario::UnreachableHost => {
                if let Some(h) = unreachable {
                    let id = h.id.clone();
                    metrics.update(|c| {
                        c.down.insert(id);
                    });
                    logs.set_down(&h.hostname, true);
                }
            }
            _ => {}
        }
    }
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .await
            .wrap_err("cannot listen on 127.0.0.1 for the Mimir/Loki faces")?;
    let addr = listener.local_addr().wrap_err("no local address")?;
    if let Some(w) = world {
        // In step from the first query on, then following the world.
        apply(&w, &metrics, &logs, &downs(&w));
        tokio::spawn(follow_world(w, metrics.clone(), logs.clone(), stop.clone()));
    }
    let app = prom.merge(loki);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(Faces {
        mimir_url: format!("http://{addr}/prometheus"),
        loki_url: format!("http://{addr}"),
        metrics,
        logs,
    })
}

/// What the faces should treat as down: hosts down, rebooting or unreachable, and the hosts of
/// stopped etcd members.
type Downs = (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
);

fn downs(world: &super::World) -> Downs {
    world.with_etcd(|etcd, hosts| {
        let down = hosts
            .values()
            .filter(|h| !h.up || h.rebooting || h.unreachable)
            .map(|h| h.id.clone())
            .collect();
        let etcd_down = etcd
            .members
            .iter()
            .filter(|m| m.stopped)
            .filter_map(|m| hosts.get(&m.hostname).map(|h| h.id.clone()))
            .collect();
        (down, etcd_down)
    })
}

fn apply(
    world: &super::World,
    metrics: &super::promql::Generator,
    logs: &super::loki::LogGenerator,
    d: &Downs,
) {
    let (down, etcd_down) = (d.0.clone(), d.1.clone());
    metrics.update(move |c| {
        c.down = down;
        c.etcd_down = etcd_down;
    });
    for h in &world.inventory.hosts {
        logs.set_down(&h.hostname, d.0.contains(&h.id));
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
    let mut last = downs(&world);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        let now = downs(&world);
        if now != last {
            apply(&world, &metrics, &logs, &now);
            last = now;
        }
    }
}
