//! etcd cluster health as seen through the JSON gateway of every member.

use serde::{Deserialize, Serialize};

/// The etcd cluster, merged from the member list and each endpoint's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdState {
    pub members: Vec<EtcdMember>,
    /// Member id of the leader, when some member reports one.
    pub leader: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdMember {
    /// Member id (a u64; etcd's JSON gateway sends it as a string).
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
    /// Answered its status call.
    pub healthy: bool,
    pub error: Option<String>,
    pub is_leader: bool,
    pub raft_term: Option<u64>,
    pub raft_index: Option<u64>,
    pub db_size_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    /// WAL fsync p99 in milliseconds.
    pub wal_fsync_p99_ms: Option<f64>,
    /// Backend commit p99 in milliseconds.
    pub backend_commit_p99_ms: Option<f64>,
    /// Leader changes seen in the configured window.
    pub leader_changes: Option<u64>,
}
