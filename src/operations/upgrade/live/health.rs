//! Health for the guards and waits, from the same sources as the dashboard: the cluster
//! (`kubernetes::poll_once`), etcd (`etcd::poll_once`), firing alerts and the extra PromQL gates
//! from Mimir/Prometheus.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{KubernetesConfig, MimirConfig};
use crate::inventory::Inventory;
use crate::operations::upgrade::world::{Alert, GateResult, HealthInputs, HealthProvider};

/// The same sources as the dashboard.
pub struct LiveHealth {
    pub kubernetes: KubernetesConfig,
    pub etcd: crate::config::EtcdConfig,
    pub mimir: MimirConfig,
    pub inventory: Inventory,
}

impl LiveHealth {
    fn prometheus(&self) -> Option<Result<prometheus_http_query::Client, String>> {
        let url = self.mimir.url.as_deref()?.trim_end_matches('/');
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.mimir.tenant
            && let Ok(v) = reqwest::header::HeaderValue::from_str(t)
        {
            headers.insert("X-Scope-OrgID", v);
        }
        if let Some(f) = &self.mimir.auth.bearer_token_file {
            match std::fs::read_to_string(f) {
                Ok(tok) => {
                    if let Ok(v) =
                        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", tok.trim()))
                    {
                        headers.insert(reqwest::header::AUTHORIZATION, v);
                    }
                }
                Err(e) => {
                    return Some(Err(format!(
                        "cannot read the bearer token file {}: {e}",
                        f.display()
                    )));
                }
            }
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(self.mimir.timeout_secs.max(1)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        Some(client.and_then(|c| {
            prometheus_http_query::Client::from(c, url).map_err(|e| format!("{url}: {e}"))
        }))
    }
}

async fn series(
    client: &prometheus_http_query::Client,
    q: &str,
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let r = client.query(q).get().await.map_err(|e| e.to_string())?;
    Ok(match r.data() {
        prometheus_http_query::response::Data::Vector(v) => v
            .iter()
            .map(|s| s.metric().clone().into_iter().collect())
            .collect(),
        prometheus_http_query::response::Data::Matrix(m) => m
            .iter()
            .map(|s| s.metric().clone().into_iter().collect())
            .collect(),
        prometheus_http_query::response::Data::Scalar(_) => vec![BTreeMap::new()],
    })
}

impl HealthProvider for LiveHealth {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            let cluster = crate::sources::kubernetes::poll_once(&self.kubernetes);
            let etcd = async {
                if !self.etcd.enabled || self.inventory.control_planes().next().is_none() {
                    return None;
                }
                Some(crate::sources::etcd::poll_once(&self.etcd, &self.inventory).await)
            };
            let prom = self.prometheus();
            let metrics = async {
                match prom {
                    None => (None, Vec::new()),
                    Some(Err(e)) => (
                        Some(Err(e.clone())),
                        gates
                            .iter()
                            .map(|q| GateResult {
                                query: q.clone(),
                                series: Err(e.clone()),
                            })
                            .collect(),
                    ),
                    Some(Ok(c)) => {
                        let alerts = series(&c, "ALERTS{alertstate=\"firing\"}").await.map(|v| {
                            v.into_iter()
                                .map(|m| Alert {
                                    name: m.get("alertname").cloned().unwrap_or_default(),
                                    severity: m.get("severity").cloned().unwrap_or_default(),
                                    subject: ["instance", "node", "namespace", "job"]
                                        .iter()
                                        .find_map(|k| m.get(*k).cloned())
                                        .unwrap_or_default(),
                                })
                                .collect()
                        });
                        let mut g = Vec::new();
                        for q in gates {
                            g.push(GateResult {
                                query: q.clone(),
                                series: series(&c, q).await.map(|v| v.len()),
                            });
                        }
                        (Some(alerts), g)
                    }
                }
            };
            let (cluster, etcd, (alerts, gates)) = tokio::join!(cluster, etcd, metrics);
            HealthInputs {
                cluster,
                etcd,
                alerts,
                gates,
            }
        })
    }
}
