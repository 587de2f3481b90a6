//! The fake health inputs (cluster, etcd with forced-down members, alerts, gate series) and
//! the virtual clock (sleeping advances it at once).

use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;

use super::FakeWorld;
use crate::operations::upgrade::world::{
    Clock, GateResult, HealthInputs, HealthProvider, ReadTimes,
};

impl HealthProvider for FakeWorld {
    fn gather<'a>(&'a self, gates: &'a [String]) -> BoxFuture<'a, HealthInputs> {
        Box::pin(async move {
            self.checkpoint("health").await;
            let cluster = self.cluster_state();
            let st = self.state();
            let etcd = st.etcd.clone().map(|mut e| {
                // A member is down while its node is NotReady, or when forced down.
                for m in &mut e.members {
                    let host_node = st
                        .nodes
                        .iter()
                        .find(|(name, _)| m.name.starts_with(&format!("{name}-")));
                    let node_down = host_node.is_some_and(|(_, n)| !n.ready);
                    let forced = st
                        .etcd_down
                        .iter()
                        .any(|h| m.name.starts_with(&format!("{h}-")));
                    if node_down || forced {
                        m.healthy = false;
                        m.reachable = false;
                        m.error = Some("connection refused".into());
                        if m.is_leader {
                            m.is_leader = false;
                        }
                    }
                }
                if e.leader_member().is_none_or(|m| !m.healthy) {
                    e.leader = e.members.iter().find(|m| m.healthy).map(|m| m.id);
                }
                Ok(e)
            });
            let at = st
                .now
                .checked_sub(jiff::SignedDuration::try_from(st.health_age).unwrap_or_default())
                .ok();
            let etcd = match &st.etcd_error {
                Some(e) => Some(Err(e.clone())),
                None => etcd,
            };
            let metrics_error = st.metrics_error.clone();
            HealthInputs {
                cluster: match &st.cluster_error {
                    Some(e) => Err(e.clone()),
                    None => Ok(cluster),
                },
                read_at: ReadTimes {
                    cluster: at,
                    etcd: etcd.as_ref().and(at),
                    metrics: st.alerts.as_ref().and(at),
                },
                etcd,
                alerts: match &metrics_error {
                    Some(e) => st.alerts.as_ref().map(|_| Err(e.clone())),
                    None => st.alerts.clone().map(Ok),
                },
                gates: gates
                    .iter()
                    .map(|q| GateResult {
                        query: q.clone(),
                        series: match &metrics_error {
                            Some(e) => Err(e.clone()),
                            None => Ok(st.gates.get(q).copied().unwrap_or(0)),
                        },
                    })
                    .collect(),
            }
        })
    }
}

impl Clock for FakeWorld {
    fn now(&self) -> Timestamp {
        self.state().now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.checkpoint("sleep").await;
            {
                let mut st = self.state();
                let sd = jiff::SignedDuration::try_from(d).unwrap_or_default();
                st.now = st.now.checked_add(sd).unwrap_or(st.now);
            }
            tokio::task::yield_now().await;
        })
    }
}
