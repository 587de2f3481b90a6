//! The SSH commands the simulated hosts received, for `GET /sim/v1/requests` (its `ssh` list):
//! which host, which kind of command (a probe's kind, `shell` for the few commands a person
//! types, `unknown` for anything else), and whether it changes the host.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::host::lock;

/// Records kept (the oldest go first).
const MAX_RECORDS: usize = 10_000;

/// One SSH command a simulated host received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshRequest {
    /// The host's hostname.
    pub host: String,
    /// Its inventory id.
    pub id: String,
    /// `facts`, `boot-state`, `boot-id`, `auto-upgrade`, `k3s-version`, `reachable`, `switch`,
    /// `rollback`, `reboot`, `other-rebuild` (see `probes::Kind`), `shell` or `unknown`.
    pub kind: String,
    /// Changes the host. Unknown commands count as mutating: a read-only run sends none.
    pub mutating: bool,
    /// The command line (a script on stdin is not recorded).
    pub command: String,
    /// When it arrived (RFC 3339).
    pub time: String,
}

/// The commands received, oldest first, bounded.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Mutex<VecDeque<SshRequest>>,
}

impl RequestLog {
    pub(super) fn record(&self, host: &str, id: &str, kind: &str, mutating: bool, command: &str) {
        let mut r = lock(&self.records);
        r.push_back(SshRequest {
            host: host.to_string(),
            id: id.to_string(),
            kind: kind.to_string(),
            mutating,
            command: command.to_string(),
            time: jiff::Timestamp::now().to_string(),
        });
        while r.len() > MAX_RECORDS {
            r.pop_front();
        }
    }

    /// Every command received so far.
    pub fn all(&self) -> Vec<SshRequest> {
        lock(&self.records).iter().cloned().collect()
    }
}
