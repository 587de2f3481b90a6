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

/// Serve both faces on 127.0.0.1 until `stop`.
pub async fn start(
    inv: &Inventory,
    scenarios: &[Scenario],
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
