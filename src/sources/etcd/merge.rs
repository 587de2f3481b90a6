//! Folding what the endpoints answered into the state: one endpoint's status, member list
//! and health into its member (alarms kept apart from health), and the errors of endpoints
//! that did not answer, grouped with hints for TLS problems.

use crate::model::etcd::{Alarm, EtcdMember, EtcdState};

use super::poller::EndpointReply;

/// `a, b: connection refused; c: timed out`, with a hint for TLS problems.
pub(super) fn summarize_errors<'a>(errors: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for (endpoint, e) in errors {
        match groups.iter_mut().find(|(_, g)| *g == e) {
            Some((eps, _)) => eps.push(endpoint),
            None => groups.push((vec![endpoint], e)),
        }
    }
    let mut out: Vec<String> = groups
        .iter()
        .map(|(eps, e)| format!("{}: {e}", eps.join(", ")))
        .collect();
    let all = out.join("; ");
    if all.contains("UnknownIssuer") || all.contains("NotValidForName") {
        out.push(
            "the server certificate is not signed by the CA we trust or not for this address: check [etcd] ca_file and endpoints".into(),
        );
    } else if all.contains("BadCertificate") || all.contains("CertificateRequired") {
        out.push(
            "the server did not accept our client certificate (or we sent none): check [etcd] cert_file and key_file".into(),
        );
    }
    out.join("; ")
}

/// Fold one endpoint's answers into the state.
pub(super) fn merge_reply(state: &mut EtcdState, r: &EndpointReply, list_known: bool) {
    match &r.status {
        Ok(s) => {
            if state.cluster_id.is_none() {
                state.cluster_id = s.header.cluster_id;
            }
            let id = s.header.member_id.unwrap_or(0);
            let idx = match state.members.iter().position(|m| m.id == id) {
                Some(idx) => idx,
                None => {
                    if list_known {
                        state.notes.push(format!(
                            "{} answered as member {id:x}, which is not in the member list",
                            r.endpoint
                        ));
                    }
                    state.members.push(EtcdMember {
                        id,
                        name: r.endpoint.clone(),
                        client_urls: vec![r.endpoint.clone()],
                        is_learner: s.is_learner,
                        ..Default::default()
                    });
                    state.members.len() - 1
                }
            };
            let m = &mut state.members[idx];
            if m.reachable {
                return; // Already heard from it through another endpoint.
            }
            m.endpoint = Some(r.endpoint.clone());
            m.reachable = true;
            m.version = s.version.clone();
            m.raft_term = s.raft_term;
            m.raft_index = s.raft_index;
            m.db_size_bytes = s.db_size;
            m.db_size_in_use_bytes = s.db_size_in_use;
            if s.db_size_quota.is_some() {
                m.quota_bytes = s.db_size_quota;
            }
            m.has_leader = Some(s.leader_id().is_some());
            let health = r.health.as_ref().ok();
            // Alarms are the cluster's, not this member's health: kept apart.
            let mut problems: Vec<String> = Vec::new();
            m.alarms.clear();
            for e in &s.errors {
                match Alarm::parse(e) {
                    Some(a) => m.alarms.push(a),
                    None => problems.push(e.clone()),
                }
            }
            if s.leader_id().is_none() && !problems.iter().any(|e| e.contains("no leader")) {
                problems.push("no leader".into());
            }
            if let Some(h) = health
                && !h.healthy()
                && problems.is_empty()
            {
                problems.push(if h.reason.is_empty() {
                    "/health says unhealthy".into()
                } else {
                    format!("/health says unhealthy: {}", h.reason)
                });
            }
            m.healthy = problems.is_empty();
            m.error = (!problems.is_empty()).then(|| problems.join("; "));
        }
        Err(e) => {
            if let Some(m) = state
                .members
                .iter_mut()
                .find(|m| !m.reachable && m.client_urls.contains(&r.endpoint))
            {
                // The member behind this endpoint, by its client URL.
                m.endpoint = Some(r.endpoint.clone());
                m.error = Some(e.clone());
            } else if !list_known {
                // No member list to tell who this is: a member that is down.
                state.members.push(EtcdMember {
                    name: r.endpoint.clone(),
                    client_urls: vec![r.endpoint.clone()],
                    endpoint: Some(r.endpoint.clone()),
                    error: Some(e.clone()),
                    ..Default::default()
                });
            } else if !state
                .members
                .iter()
                .any(|m| m.client_urls.contains(&r.endpoint))
            {
                state.notes.push(format!("{}: {e}", r.endpoint));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_grouped_with_hints() {
        let e = summarize_errors(
            [
                ("https://a:2379", "invalid peer certificate: UnknownIssuer"),
                ("https://b:2379", "timed out"),
                ("https://c:2379", "invalid peer certificate: UnknownIssuer"),
            ]
            .into_iter(),
        );
        assert_eq!(
            e,
            "https://a:2379, https://c:2379: invalid peer certificate: UnknownIssuer; \
             https://b:2379: timed out; the server certificate is not signed by the CA we \
             trust or not for this address: check [etcd] ca_file and endpoints"
        );
        let e = summarize_errors(
            [("https://a:2379", "received fatal alert: BadCertificate")].into_iter(),
        );
        assert!(e.ends_with("check [etcd] cert_file and key_file"), "{e}");
    }
}
