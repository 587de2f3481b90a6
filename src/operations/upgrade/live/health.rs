//! Health for the guards and waits, from the same sources as the dashboard: the cluster
//! (`kubernetes::poll_once`, with Longhorn's API discovery), etcd (`etcd::poll_once`), firing
//! alerts and the extra PromQL gates through the dashboard's own Mimir client (tenant, basic
//! auth or bearer token, CA: the `[mimir]` settings), whose messages name only the server's
//! origin. With `[alertmanager] url` the alerts come from Alertmanager instead (active, neither
//! silenced nor inhibited), so the operator's silences are respected.

use futures::future::BoxFuture;

use crate::base::Env;
use crate::config::{EtcdConfig, KubernetesConfig};
use crate::inventory::Inventory;
use crate::operations::upgrade::world::{
    Alert, GateResult, HealthInputs, HealthProvider, ReadTimes,
};
use crate::sources::alertmanager::Alertmanager;
use crate::sources::mimir::Mimir;

/// The same sources as the dashboard.
pub struct LiveHealth {
    pub kubernetes: KubernetesConfig,
    pub etcd: EtcdConfig,
    /// The Mimir client (`None`: no `[mimir] url`; `Err`: it could not be built, why).
    pub mimir: Option<Result<Mimir, String>>,
    /// The Alertmanager client (`None`: no `[alertmanager] url`): the alerts then come from it.
    pub alertmanager: Option<Result<Alertmanager, String>>,
    pub inventory: Inventory,
}

impl LiveHealth {
    pub fn new(env: &Env) -> Self {
        let cfg = &env.config;
        Self {
            kubernetes: cfg.kubernetes.clone(),
            etcd: cfg.etcd.clone(),
            mimir: cfg.mimir.url.as_ref().map(|_| {
                Mimir::new(&cfg.mimir)
                    .map_err(|e| crate::sources::http::redact_userinfo(&format!("{e:#}")))
            }),
            alertmanager: cfg.alertmanager.url.as_ref().map(|_| {
                Alertmanager::new(&cfg.alertmanager)
                    .map_err(|e| crate::sources::http::redact_userinfo(&format!("{e:#}")))
            }),
            inventory: env.inventory.clone(),
        }
    }

    /// Whether etcd is monitored at all (else the etcd guards cannot verify).
    fn etcd_monitored(&self) -> bool {
        self.etcd.enabled
            && (!self.etcd.endpoints.is_empty() || self.inventory.control_planes().next().is_some())
    }
}

/// The firing alerts, from the `ALERTS` series.
async fn firing(m: &Mimir) -> Result<Vec<Alert>, String> {
    let series = m.instant_series("ALERTS{alertstate=\"firing\"}").await?;
    Ok(series
        .into_iter()
        .map(|l| Alert {
            name: l.get("alertname").cloned().unwrap_or_default(),
            severity: l.get("severity").cloned().unwrap_or_default(),
            subject: ["instance", "node", "namespace", "job"]
                .iter()
                .find_map(|k| l.get(*k).cloned())
                .unwrap_or_default(),
        })
        .collect())
}

/// The alerts Alertmanager would notify about: active, not silenced, not inhibited.
async fn unmuted(am: &Alertmanager) -> Result<Vec<Alert>, String> {
    Ok(am
        .alerts(false)
        .await?
        .into_iter()
        .filter(|a| !a.muted())
        .map(|a| Alert {
            name: a.name().to_string(),
            severity: a.severity(),
            subject: a.subject(),
        })
        .collect())
}

impl HealthProvider for LiveHealth {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            let now = || Some(jiff::Timestamp::now());
            let cluster = async {
                let r = crate::sources::kubernetes::poll_once(&self.kubernetes).await;
                (r, now())
            };
            let etcd = async {
                if !self.etcd_monitored() {
                    return (None, None);
                }
                let r = crate::sources::etcd::poll_once(&self.etcd, &self.inventory).await;
                (Some(r), now())
            };
            let metrics = async {
                match &self.mimir {
                    None => (None, Vec::new(), None),
                    Some(Err(e)) => (
                        Some(Err(e.clone())),
                        gates
                            .iter()
                            .map(|q| GateResult {
                                query: q.clone(),
                                series: Err(e.clone()),
                            })
                            .collect(),
                        now(),
                    ),
                    Some(Ok(m)) => {
                        let alerts = firing(m).await;
                        let mut g = Vec::new();
                        for q in gates {
                            g.push(GateResult {
                                query: q.clone(),
                                series: m.instant_series(q).await.map(|v| v.len()),
                            });
                        }
                        (Some(alerts), g, now())
                    }
                }
            };
            // Alertmanager, when configured, answers for the alerts (read at the same time).
            let metrics = async {
                let (alerts, g, at) = metrics.await;
                match &self.alertmanager {
                    None => (alerts, g, at),
                    Some(Err(e)) => (Some(Err(e.clone())), g, at.or_else(now)),
                    Some(Ok(am)) => (Some(unmuted(am).await), g, at.or_else(now)),
                }
            };
            let ((cluster, cluster_at), (etcd, etcd_at), (alerts, gates, metrics_at)) =
                tokio::join!(cluster, etcd, metrics);
            HealthInputs {
                cluster,
                etcd,
                alerts,
                gates,
                read_at: ReadTimes {
                    cluster: cluster_at,
                    etcd: etcd_at,
                    metrics: metrics_at,
                },
            }
        })
    }
}
