//! etcd cluster health as seen through the JSON gateway of every member, plus each member's
//! metrics (straight from its `/metrics` endpoint, or from Mimir).
//!
//! Pure data and arithmetic: the quorum helpers here are used by `assess`, by the etcd pane's
//! title and by the upgrade guard ("would quorum still hold without this member?").

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::inventory::Host;

/// The etcd cluster, merged from the member list and each endpoint's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdState {
    pub members: Vec<EtcdMember>,
    /// Member id of the leader, when some member reports one.
    pub leader: Option<u64>,
    /// Cluster id, from the first answering member.
    pub cluster_id: Option<u64>,
    /// Endpoints that answered but could not be matched to a member of the member list, and
    /// other problems that belong to no member (e.g. the member list could not be read).
    pub notes: Vec<String>,
}

/// One etcd member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdMember {
    /// Member id (a u64; etcd's JSON gateway sends it as a string).
    pub id: u64,
    /// Member name (empty for a member that was added but never started).
    pub name: String,
    pub client_urls: Vec<String>,
    /// A learner does not vote and does not count towards quorum.
    pub is_learner: bool,
    /// The URL its status was read from.
    pub endpoint: Option<String>,
    /// The metrics URL its disk latencies were read from.
    pub metrics_url: Option<String>,
    /// Answered its status call.
    pub reachable: bool,
    /// Reachable, no errors in its status, and it knows a leader.
    pub healthy: bool,
    /// Why it is not healthy (connection error, "etcdserver: no leader", ...).
    pub error: Option<String>,
    /// Alarms this member reports, e.g. `NOSPACE` on member `e1`.
    pub alarms: Vec<Alarm>,
    pub is_leader: bool,
    /// Whether the member knows a leader (status `leader` field or `etcd_server_has_leader`).
    pub has_leader: Option<bool>,
    pub version: Option<String>,
    pub raft_term: Option<u64>,
    pub raft_index: Option<u64>,
    /// How far its raft index is behind the highest index among members.
    pub raft_index_lag: Option<u64>,
    pub db_size_bytes: Option<u64>,
    pub db_size_in_use_bytes: Option<u64>,
    /// The backend quota (`etcd_server_quota_backend_bytes`); `None` when unknown.
    pub quota_bytes: Option<u64>,
    /// WAL fsync p99 in milliseconds.
    pub wal_fsync_p99_ms: Option<f64>,
    /// Backend commit p99 in milliseconds.
    pub backend_commit_p99_ms: Option<f64>,
    /// Leader changes seen in the configured window.
    pub leader_changes: Option<u64>,
}

/// A raised etcd alarm (alarms are cluster-wide: every member reports all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// The member the alarm is about.
    pub member_id: u64,
    /// `NOSPACE` or `CORRUPT`.
    pub kind: String,
}

impl Alarm {
    /// Parse the gateway's status error text `memberID:123 alarm:NOSPACE`.
    pub fn parse(text: &str) -> Option<Alarm> {
        let mut member_id = None;
        let mut kind = None;
        for part in text.split_whitespace() {
            if let Some(id) = part.strip_prefix("memberID:") {
                member_id = id.parse().ok();
            } else if let Some(k) = part.strip_prefix("alarm:") {
                kind = Some(k.to_string());
            }
        }
        Some(Alarm {
            member_id: member_id?,
            kind: kind?,
        })
    }
}

/// etcd's default backend quota (2 GiB), which k3s keeps unless `quota-backend-bytes` is set.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl EtcdMember {
    /// A name for messages: the member name, or its id in hex as etcdctl prints it.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x}", self.id)
        } else {
            self.name.clone()
        }
    }

    /// Whether this member runs on `host`: k3s names members `<hostname>-<8 hex>`; otherwise
    /// its client URL points at the host's ip.
    pub fn is_on_host(&self, host: &Host) -> bool {
        if self.name == host.hostname || self.name == host.id {
            return true;
        }
        if let Some(suffix) = self.name.strip_prefix(&format!("{}-", host.hostname))
            && !suffix.is_empty()
            && suffix.chars().all(|c| c.is_ascii_hexdigit())
        {
            return true;
        }
        let ip = host.ip.to_string();
        self.client_urls
            .iter()
            .any(|u| url_host(u).is_some_and(|h| h == ip))
    }

    /// DB size as a percentage of the quota, when both are known.
    pub fn db_quota_pct(&self) -> Option<f64> {
        let (size, quota) = (self.db_size_bytes?, self.quota_bytes?);
        (quota > 0).then(|| size as f64 * 100.0 / quota as f64)
    }
}

/// The host part of a URL like `https://10.0.0.1:2379/x` (`[..]` stripped for IPv6).
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split_once(':').map_or(authority, |(h, _)| h))
}

/// Quorum arithmetic over the voting (non-learner) members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    /// Voting members in the member list.
    pub voting: usize,
    /// Healthy voting members.
    pub healthy: usize,
}

impl Quorum {
    /// Members needed for quorum: a majority of the voting members.
    pub fn needed(&self) -> usize {
        self.voting / 2 + 1
    }

    pub fn holds(&self) -> bool {
        self.voting > 0 && self.healthy >= self.needed()
    }

    /// How many more members may fail with quorum still holding (0 when it does not hold).
    pub fn tolerates(&self) -> usize {
        self.healthy.saturating_sub(self.needed())
    }
}

impl fmt::Display for Quorum {
    /// "3/3 healthy — tolerates 1 failure", "2/3 healthy — no further failure tolerated",
    /// "1/3 healthy — quorum lost (needs 2)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} healthy — ", self.healthy, self.voting)?;
        if self.voting == 0 {
            f.write_str("no members known")
        } else if !self.holds() {
            write!(f, "quorum lost (needs {})", self.needed())
        } else {
            match self.tolerates() {
                0 => f.write_str("no further failure tolerated"),
                1 => f.write_str("tolerates 1 failure"),
                n => write!(f, "tolerates {n} failures"),
            }
        }
    }
}

impl EtcdState {
    pub fn member(&self, id: u64) -> Option<&EtcdMember> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The member running on an inventory host (see [`EtcdMember::is_on_host`]).
    pub fn member_on_host(&self, host: &Host) -> Option<&EtcdMember> {
        self.members.iter().find(|m| m.is_on_host(host))
    }

    /// The one member whose client URL is on `addr` (a host, or `host:port` as Prometheus'
    /// `instance` label has it), for figures that come from elsewhere (Mimir). `None` when no
    /// member or several members live there.
    pub fn member_at_mut(&mut self, addr: &str) -> Option<&mut EtcdMember> {
        let host = url_host(addr)?;
        let mut on_host = self
            .members
            .iter_mut()
            .filter(|m| m.client_urls.iter().any(|u| url_host(u) == Some(host)));
        match (on_host.next(), on_host.next()) {
            (Some(m), None) => Some(m),
            _ => None,
        }
    }

    pub fn leader_member(&self) -> Option<&EtcdMember> {
        self.leader.and_then(|id| self.member(id))
    }

    pub fn quorum(&self) -> Quorum {
        let voting = self.members.iter().filter(|m| !m.is_learner);
        Quorum {
            voting: voting.clone().count(),
            healthy: voting.filter(|m| m.healthy).count(),
        }
    }

    /// The quorum if member `id` went down (it still counts as a voting member: taking a node
    /// down for an upgrade does not remove it from the member list).
    pub fn quorum_without(&self, id: u64) -> Quorum {
        let mut q = self.quorum();
        if let Some(m) = self.member(id)
            && !m.is_learner
            && m.healthy
        {
            q.healthy -= 1;
        }
        q
    }

    /// Would quorum still hold if member `id` went down? False when it does not hold now.
    pub fn quorum_holds_without(&self, id: u64) -> bool {
        self.quorum_without(id).holds()
    }

    /// Highest leader-change count among members within the window, when any member knows.
    pub fn leader_changes(&self) -> Option<u64> {
        self.members.iter().filter_map(|m| m.leader_changes).max()
    }

    /// Every alarm any member reports, once.
    pub fn alarms(&self) -> Vec<&Alarm> {
        let mut out: Vec<&Alarm> = Vec::new();
        for a in self.members.iter().flat_map(|m| &m.alarms) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// Fill `raft_index_lag` of every member with a known index from the highest index.
    pub fn compute_index_lag(&mut self) {
        let max = self.members.iter().filter_map(|m| m.raft_index).max();
        for m in &mut self.members {
            m.raft_index_lag = match (max, m.raft_index) {
                (Some(max), Some(i)) => Some(max.saturating_sub(i)),
                _ => None,
            };
        }
    }
}

/// The quorum state for the etcd pane's title: "3/3 healthy — tolerates 1 failure".
pub fn quorum_summary(state: &EtcdState) -> String {
    state.quorum().to_string()
}

/// Would quorum still hold without member `id`? (The upgrade guard asks this.)
pub fn quorum_holds_without(state: &EtcdState, id: u64) -> bool {
    state.quorum_holds_without(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, healthy: bool) -> EtcdMember {
        EtcdMember {
            id,
            name: name.into(),
            reachable: healthy,
            healthy,
            ..Default::default()
        }
    }

    fn state(health: &[bool]) -> EtcdState {
        EtcdState {
            members: health
                .iter()
                .enumerate()
                .map(|(i, h)| member(i as u64 + 1, &format!("e{}", i + 1), *h))
                .collect(),
            leader: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn quorum_summaries() {
        let cases: &[(&[bool], &str, bool)] = &[
            (
                &[true, true, true],
                "3/3 healthy — tolerates 1 failure",
                true,
            ),
            (
                &[true, false, true],
                "2/3 healthy — no further failure tolerated",
                true,
            ),
            (
                &[false, false, true],
                "1/3 healthy — quorum lost (needs 2)",
                false,
            ),
            (&[true; 5], "5/5 healthy — tolerates 2 failures", true),
            (&[true], "1/1 healthy — no further failure tolerated", true),
            (&[], "0/0 healthy — no members known", false),
        ];
        for (health, want, holds) in cases {
            let s = state(health);
            assert_eq!(quorum_summary(&s), *want, "{health:?}");
            assert_eq!(s.quorum().holds(), *holds, "{health:?}");
        }
    }

    #[test]
    fn quorum_without_a_member() {
        let s = state(&[true, true, true]);
        assert!(quorum_holds_without(&s, 2));
        let s = state(&[true, false, true]);
        // Taking down a healthy member of a degraded cluster loses quorum...
        assert!(!quorum_holds_without(&s, 1));
        // ...taking down the one that is already down changes nothing.
        assert!(quorum_holds_without(&s, 2));
        // An unknown id changes nothing either.
        assert!(quorum_holds_without(&s, 99));
        let s = state(&[false, false, true]);
        assert!(!quorum_holds_without(&s, 1));
    }

    #[test]
    fn learners_do_not_vote() {
        let mut s = state(&[true, true, true, false]);
        s.members[3].is_learner = true;
        assert_eq!(quorum_summary(&s), "3/3 healthy — tolerates 1 failure");
        s.members[3].healthy = true;
        assert!(quorum_holds_without(&s, 1));
        assert_eq!(s.quorum_without(4), s.quorum());
    }

    #[test]
    fn member_on_host_and_labels() {
        let host: Host = Host {
            hostname: "node1".into(),
            ..crate::testing::host("instance_1", crate::inventory::Role::Init, [192, 0, 2, 11])
        };
        let mut m = member(0xabc, "node1-1a2b3c4d", true);
        assert!(m.is_on_host(&host));
        m.name = "node10-1a2b3c4d".into();
        assert!(!m.is_on_host(&host));
        m.client_urls = vec!["https://192.0.2.11:2379".into()];
        assert!(m.is_on_host(&host));
        m.name.clear();
        assert_eq!(m.label(), "abc");
        let mut s = EtcdState {
            members: vec![m.clone()],
            ..Default::default()
        };
        assert!(s.member_at_mut("192.0.2.11:2381").is_some());
        assert!(s.member_at_mut("192.0.2.12:2381").is_none());
        s.members.push(m.clone());
        assert!(s.member_at_mut("192.0.2.11").is_none(), "ambiguous");
        assert_eq!(url_host("https://[::1]:2379"), Some("::1"));
        assert_eq!(url_host("http://127.0.0.1:2381/metrics"), Some("127.0.0.1"));
        assert_eq!(url_host("etcd.local"), Some("etcd.local"));
    }

    #[test]
    fn alarms_parse_and_dedupe() {
        let a = Alarm::parse("memberID:3619358829194788999 alarm:NOSPACE").unwrap();
        assert_eq!(
            (a.member_id, a.kind.as_str()),
            (3619358829194788999, "NOSPACE")
        );
        assert_eq!(Alarm::parse("etcdserver: no leader"), None);
        let mut s = state(&[true, true]);
        s.members[0].alarms = vec![a.clone()];
        s.members[1].alarms = vec![a.clone()];
        assert_eq!(s.alarms(), vec![&a]);
    }

    #[test]
    fn index_lag_and_quota_pct() {
        let mut s = state(&[true, true, false]);
        s.members[0].raft_index = Some(100);
        s.members[1].raft_index = Some(90);
        s.compute_index_lag();
        assert_eq!(s.members[0].raft_index_lag, Some(0));
        assert_eq!(s.members[1].raft_index_lag, Some(10));
        assert_eq!(s.members[2].raft_index_lag, None);
        s.members[0].db_size_bytes = Some(50);
        s.members[0].quota_bytes = Some(200);
        assert_eq!(s.members[0].db_quota_pct(), Some(25.0));
    }
}
