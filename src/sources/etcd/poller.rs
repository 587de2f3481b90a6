//! One poll of etcd: every endpoint's status, member list and health, and every metrics URL,
//! in parallel; members nobody answered for are asked at their own client URL; the leader is
//! the one the member with the highest term reports. Metrics scrapes are matched to members
//! and their disk latencies computed over the previous scrape.

use std::collections::HashMap;

use futures::future::join_all;
use jiff::Timestamp;

use super::gateway::{Gateway, HealthResponse, MemberListResponse, StatusResponse, normalize};
use super::merge::{merge_reply, summarize_errors};
use super::metrics::{self, MemberHistory};
use super::{Settings, TlsFiles, build_client};
use crate::config::K3S_ETCD_TLS_DIR;
use crate::model::etcd::{EtcdMember, EtcdState, url_host};

/// What one endpoint answered in one poll.
pub(super) struct EndpointReply {
    pub(super) endpoint: String,
    pub(super) status: Result<StatusResponse, String>,
    pub(super) members: Option<Result<MemberListResponse, String>>,
    pub(super) health: Result<HealthResponse, String>,
}

/// Ask `endpoint` for its status and health (and the member list).
async fn ask(gw: &Gateway, endpoint: String, with_member_list: bool) -> EndpointReply {
    let list = async {
        if with_member_list {
            Some(gw.member_list(&endpoint).await)
        } else {
            None
        }
    };
    let (status, members, health) = tokio::join!(gw.status(&endpoint), list, gw.health(&endpoint));
    EndpointReply {
        endpoint,
        status,
        members,
        health,
    }
}

/// Polls etcd; keeps the previous metrics scrape of every member between polls.
pub struct Poller {
    settings: Settings,
    pub(super) gateway: Option<Gateway>,
    histories: HashMap<String, MemberHistory>,
    /// The last member list read, for polls where no member serves it.
    last_list: Option<(Timestamp, MemberListResponse)>,
}

impl Poller {
    /// A poller that has not polled yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            gateway: None,
            histories: HashMap::new(),
            last_list: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The gateway client, built on first use (and again after a failure: the TLS files may
    /// appear or be fixed while we run).
    pub(super) fn gateway(&mut self) -> Result<Gateway, String> {
        if let Some(gw) = &self.gateway {
            return Ok(gw.clone());
        }
        let gw = Gateway::new(build_client(&self.settings.tls, self.settings.timeout)?);
        self.gateway = Some(gw.clone());
        Ok(gw)
    }

    /// One poll of every endpoint and metrics URL. `Err` only when no endpoint answered at
    /// all (or none is configured); members that do not answer are down in an `Ok` state.
    pub async fn poll(&mut self, now: Timestamp) -> Result<EtcdState, String> {
        if self.settings.endpoints.is_empty() {
            return Err(
                "no etcd endpoints: set [etcd] endpoints or give hosts the role init/server".into(),
            );
        }
        let gw = self.gateway()?;
        let asks = join_all(
            self.settings
                .endpoints
                .iter()
                .map(|e| ask(&gw, e.clone(), true)),
        );
        let scrapes = join_all(self.settings.metrics_urls.iter().map(|u| {
            let gw = gw.clone();
            let u = u.clone();
            async move {
                let r = gw.metrics_text(&u).await;
                (u, r)
            }
        }));
        let (mut replies, scrapes) = tokio::join!(asks, scrapes);

        // The member list: from a member that knows a leader if possible.
        let fresh = replies
            .iter()
            .filter(|r| r.status.as_ref().is_ok_and(|s| s.leader_id().is_some()))
            .chain(replies.iter())
            .find_map(|r| r.members.as_ref().and_then(|m| m.as_ref().ok()))
            .cloned();

        if fresh.is_none() && replies.iter().all(|r| r.status.is_err()) {
            let errors = replies.iter().map(|r| {
                let e = r.status.as_ref().err().map_or("", String::as_str);
                (r.endpoint.as_str(), e)
            });
            let mut msg = format!("no etcd endpoint answered: {}", summarize_errors(errors));
            if self.settings.tls == TlsFiles::default()
                && self
                    .settings
                    .endpoints
                    .iter()
                    .any(|e| e.starts_with("https://"))
            {
                msg.push_str(&format!(
                    "; no TLS files are configured and k3s' are not in {K3S_ETCD_TLS_DIR}: set [etcd] ca_file, cert_file and key_file"
                ));
            }
            return Err(msg);
        }

        let mut state = EtcdState::default();
        let list = match fresh {
            Some(l) => {
                self.last_list = Some((now, l.clone()));
                Some(l)
            }
            None => {
                let why = replies
                    .iter()
                    .find_map(|r| r.members.as_ref().and_then(|m| m.as_ref().err()))
                    .cloned()
                    .unwrap_or_default();
                // Newer etcd serves the member list only with quorum: the last one we read
                // still says who should be there.
                match &self.last_list {
                    Some((when, l)) => {
                        state.notes.push(format!(
                            "the member list could not be read ({why}); using the one read at {}",
                            when.strftime("%H:%M:%S")
                        ));
                        Some(l.clone())
                    }
                    None => {
                        state
                            .notes
                            .push(format!("the member list could not be read: {why}"));
                        None
                    }
                }
            }
        };
        if let Some(l) = &list {
            state.cluster_id = l.header.cluster_id;
            for m in &l.members {
                state.members.push(EtcdMember {
                    id: m.id.unwrap_or(0),
                    name: m.name.clone(),
                    client_urls: m.client_urls.iter().map(|u| normalize(u)).collect(),
                    is_learner: m.is_learner,
                    error: Some("did not answer".into()),
                    ..Default::default()
                });
            }
        }

        // Members nobody answered for whose client URLs we did not ask: ask those too.
        let asked: Vec<String> = replies.iter().map(|r| r.endpoint.clone()).collect();
        let answered: Vec<u64> = replies
            .iter()
            .filter_map(|r| r.status.as_ref().ok()?.header.member_id)
            .collect();
        let extra: Vec<String> = state
            .members
            .iter()
            .filter(|m| !answered.contains(&m.id))
            .filter(|m| !m.client_urls.iter().any(|u| asked.contains(u)))
            .filter_map(|m| m.client_urls.first().cloned())
            .collect();
        if !extra.is_empty() {
            replies.extend(join_all(extra.into_iter().map(|e| ask(&gw, e, false))).await);
        }

        for r in &replies {
            merge_reply(&mut state, r, list.is_some());
        }

        // The leader: as reported by the member with the highest term.
        state.leader = replies
            .iter()
            .filter_map(|r| r.status.as_ref().ok())
            .filter(|s| s.leader_id().is_some())
            .max_by_key(|s| s.raft_term.unwrap_or(0))
            .and_then(StatusResponse::leader_id);
        for m in &mut state.members {
            m.is_leader = m.reachable && Some(m.id) == state.leader;
        }

        self.apply_metrics(&mut state, scrapes, now);
        state.compute_index_lag();
        Ok(state)
    }

    /// Match each scrape to its member and put its figures there.
    fn apply_metrics(
        &mut self,
        state: &mut EtcdState,
        scrapes: Vec<(String, Result<String, String>)>,
        now: Timestamp,
    ) {
        let window = self.settings.leader_window.as_secs() as i64;
        for (i, (url, result)) in scrapes.into_iter().enumerate() {
            let text = match result {
                Ok(t) => t,
                Err(e) => {
                    // A dead member's metrics are gone too; only say so for live ones.
                    if self
                        .metrics_owner(state, &url, i, None)
                        .is_some_and(|m| m.reachable)
                    {
                        state.notes.push(format!("metrics {url}: {e}"));
                    }
                    continue;
                }
            };
            let scrape = metrics::parse(&text);
            let Some(idx) = self.metrics_owner_index(state, &url, i, scrape.member_id) else {
                state
                    .notes
                    .push(format!("metrics {url}: no member of the member list"));
                continue;
            };
            let figures = self
                .histories
                .entry(url.clone())
                .or_default()
                .observe(scrape, now, window);
            let m = &mut state.members[idx];
            figures.apply(m);
            m.metrics_url = Some(url);
        }
    }

    /// The member a metrics URL belongs to (see [`Self::metrics_owner_index`]).
    fn metrics_owner<'a>(
        &self,
        state: &'a EtcdState,
        url: &str,
        i: usize,
        id: Option<u64>,
    ) -> Option<&'a EtcdMember> {
        self.metrics_owner_index(state, url, i, id)
            .map(|idx| &state.members[idx])
    }

    /// Which member a metrics URL belongs to: by the id it reports, else the endpoint at the
    /// same position in the configuration, else the member whose client URL has its host.
    fn metrics_owner_index(
        &self,
        state: &EtcdState,
        url: &str,
        i: usize,
        id: Option<u64>,
    ) -> Option<usize> {
        if let Some(id) = id
            && let Some(idx) = state.members.iter().position(|m| m.id == id)
        {
            return Some(idx);
        }
        if self.settings.metrics_urls.len() == self.settings.endpoints.len()
            && let Some(ep) = self.settings.endpoints.get(i)
            && let Some(idx) = state.members.iter().position(|m| {
                m.endpoint.as_deref() == Some(ep.as_str()) || m.client_urls.contains(ep)
            })
        {
            return Some(idx);
        }
        let host = url_host(url)?;
        let mut on_host = state
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.client_urls.iter().any(|u| url_host(u) == Some(host)));
        match (on_host.next(), on_host.next()) {
            (Some((idx, _)), None) => Some(idx),
            _ => None,
        }
    }
}
