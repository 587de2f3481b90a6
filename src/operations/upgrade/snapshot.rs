//! The etcd snapshot before the first control plane of a run (`[upgrade] pre_snapshot`):
//! `k3s etcd-snapshot save --name homeinfra-<run id>` on a healthy server, then its
//! `ETCDSnapshotFile` ready. Here: what the plan says about it (which servers, the name, or
//! why there is none). The runner's step is `engine::steps::snapshot`.
//!
//! It runs right after the run starts, before its first node, whenever the nodes still to
//! run include a control plane: so a failed snapshot under `require` refuses the run with
//! nothing touched, agents included. A run of agents only changes no etcd member: no step.

use serde::Serialize;

use super::Plan;
use crate::config::PreSnapshot;
use crate::inventory::Inventory;

/// The prefix of every snapshot an upgrade takes (`homeinfra-<run id>`).
pub const SNAPSHOT_PREFIX: &str = "homeinfra-";

/// A server the snapshot may be taken on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotServer {
    /// Inventory host id.
    pub host: String,
    /// Kubernetes node name.
    pub node: String,
}

/// The snapshot step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotPlan {
    pub policy: PreSnapshot,
    /// `--name`: k3s names the file `<name>-<node>-<unix seconds>`.
    pub name: String,
    /// Where it is taken: the first of these that is Ready then (etcd leader last).
    pub servers: Vec<SnapshotServer>,
    /// Why there is no step (policy off, no control plane to touch, no server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl SnapshotPlan {
    /// The step runs.
    pub fn takes(&self) -> bool {
        self.skipped.is_none()
    }

    /// A few words for the dashboard's plan view (beside the lock).
    pub fn short(&self) -> String {
        match (&self.skipped, self.servers.first()) {
            (Some(why), _) => format!("no etcd snapshot: {why}"),
            (None, Some(s)) => format!(
                "etcd snapshot {} on {} first ({})",
                self.name,
                s.node,
                self.policy.as_str()
            ),
            (None, None) => format!("etcd snapshot {} first", self.name),
        }
    }

    /// One line for the plan.
    pub fn line(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("no pre-upgrade etcd snapshot: {why}");
        }
        let mut on = match self.servers.first() {
            Some(s) => s.node.clone(),
            None => "a server".into(),
        };
        if self.servers.len() > 1 {
            let rest: Vec<&str> = self.servers[1..].iter().map(|s| s.node.as_str()).collect();
            on.push_str(&format!(" (if it is not Ready: {})", rest.join(", ")));
        }
        let failure = match self.policy {
            PreSnapshot::Require => "a failed snapshot refuses the run",
            _ => "a failed snapshot is a warning and the run goes on",
        };
        format!(
            "pre-upgrade etcd snapshot {} on {on}, before the first node; {failure} ([upgrade] pre_snapshot = \"{}\")",
            self.name,
            self.policy.as_str()
        )
    }
}

/// The snapshot name of a run.
pub fn snapshot_name(run_id: &str) -> String {
    format!("{SNAPSHOT_PREFIX}{run_id}")
}

/// The snapshot step of `plan` for the nodes from index `from` on (a resumed run: those still
/// to run).
pub fn snapshot_plan(
    plan: &Plan,
    inv: &Inventory,
    policy: PreSnapshot,
    from: usize,
) -> SnapshotPlan {
    let name = snapshot_name(&plan.run_id);
    let leader: Vec<&str> = plan
        .entries
        .iter()
        .filter(|e| e.etcd_leader)
        .map(|e| e.host.as_str())
        .collect();
    let mut servers: Vec<SnapshotServer> = inv
        .control_planes()
        .map(|h| SnapshotServer {
            host: h.id.clone(),
            node: h.hostname.clone(),
        })
        .collect();
    // The leader last (a stable sort keeps the inventory's order otherwise).
    servers.sort_by_key(|s| leader.contains(&s.host.as_str()));
    let touches_server = plan
        .entries
        .iter()
        .skip(from)
        .any(|e| e.role.is_control_plane());
    let skipped = if policy == PreSnapshot::Off {
        Some("[upgrade] pre_snapshot = \"off\"".to_string())
    } else if !touches_server {
        Some("the plan touches no control plane (agents only: no etcd member changes)".into())
    } else if servers.is_empty() {
        Some("the inventory has no server to take it on".into())
    } else {
        None
    };
    SnapshotPlan {
        policy,
        name,
        servers,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::testing::{entry, plan};

    #[test]
    fn servers_leader_last_and_why_there_is_none() {
        let inv = crate::testing::cluster(5);
        let mut p = plan(
            "r1",
            [
                entry("instance_4", "node4", Role::Agent),
                entry("instance_2", "node2", Role::Server),
                entry("instance_1", "node1", Role::Init),
            ],
        );
        p.entries[2].etcd_leader = true;
        let sp = snapshot_plan(&p, &inv, PreSnapshot::Require, 0);
        assert!(sp.takes());
        assert_eq!(sp.name, "homeinfra-r1");
        let nodes: Vec<&str> = sp.servers.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(nodes, ["node2", "node3", "node1"]);
        let line = sp.line();
        assert!(line.contains("homeinfra-r1 on node2"), "{line}");
        assert!(line.contains("refuses the run"), "{line}");
        assert_eq!(
            sp.short(),
            "etcd snapshot homeinfra-r1 on node2 first (require)"
        );
        let json = serde_json::to_value(&sp).unwrap();
        assert_eq!(json["policy"], "require");
        assert_eq!(json["servers"][0]["host"], "instance_2");

        let off = snapshot_plan(&p, &inv, PreSnapshot::Off, 0);
        assert!(!off.takes());
        assert!(off.line().contains("\"off\""), "{}", off.line());
        let agents = plan("r2", [entry("instance_4", "node4", Role::Agent)]);
        let none = snapshot_plan(&agents, &inv, PreSnapshot::Require, 0);
        assert!(!none.takes());
        assert!(none.line().contains("agents only"), "{}", none.line());
        // Resumed past every server: nothing left to protect.
        let past = snapshot_plan(&p, &inv, PreSnapshot::Try, 3);
        assert!(!past.takes());
    }
}
