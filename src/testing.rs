//! Fixture builders for tests and benchmarks: inventory hosts, inventories and upgrade plans.
//! Compiled for the crate's own unit tests and with the `test-util` feature (which the
//! integration tests and benchmarks turn on through the crate's dev-dependency on itself);
//! never part of the release build. The in-memory fake world of the upgrade engine is
//! [`fake`], under the same condition.
//!
//! Fields the builders do not take are public: change them with struct update syntax,
//! `Host { hostname: "node1".into(), ..host("instance_1", Role::Init, [192, 0, 2, 11]) }`.

use std::net::Ipv4Addr;

use crate::inventory::{Host, Inventory, Role};
pub use crate::operations::upgrade::fake;
use crate::operations::upgrade::{Plan, PlanEntry};

/// The write capability, for tests and benchmarks (the release build gets one only from
/// `commands::load`).
pub fn writes() -> crate::base::Writes {
    match crate::base::Writes::unless_read_only(false) {
        Some(w) => w,
        None => unreachable!("unless_read_only(false) always grants"),
    }
}

/// The flake the fixture plans build from.
pub const FLAKE: &str = "github:me/infra";

/// An inventory host `id` (its hostname too) with `role` at `ip`: `x86_64-linux`, profile
/// `server`, region `home`, zone `a`, gateway `.1` of its /24, no SSH overrides.
pub fn host(id: &str, role: Role, ip: impl Into<Ipv4Addr>) -> Host {
    let ip = ip.into();
    let [a, b, c, _] = ip.octets();
    Host {
        id: id.to_string(),
        hostname: id.to_string(),
        system: "x86_64-linux".into(),
        profile: "server".into(),
        role,
        region: "home".into(),
        zone: "a".into(),
        ip,
        gateway: Ipv4Addr::new(a, b, c, 1),
        mask_length: 24,
        ssh_host: None,
        ssh_user: None,
        ssh_port: None,
        secrets: Vec::new(),
    }
}

/// An inventory of `hosts` (read from `hosts.json`, no warnings).
pub fn inventory(hosts: Vec<Host>) -> Inventory {
    Inventory {
        path: "hosts.json".into(),
        hosts,
        warnings: Vec::new(),
    }
}

/// `n` hosts `instance_1..n` with hostnames `node1..n` at 192.0.2.11..: the first three control
/// planes (`init`, `server`, `server`), the rest agents. Documentation addresses: never
/// contacted (for fakes only).
pub fn cluster(n: usize) -> Inventory {
    let hosts = (0..n)
        .map(|i| {
            let role = match i {
                0 => Role::Init,
                1 | 2 => Role::Server,
                _ => Role::Agent,
            };
            Host {
                hostname: format!("node{}", i + 1),
                ..host(
                    &format!("instance_{}", i + 1),
                    role,
                    [192, 0, 2, (i + 11) as u8],
                )
            }
        })
        .collect();
    inventory(hosts)
}

/// A plan entry: inventory host `host`, Kubernetes node `node`, not the etcd leader.
pub fn entry(host: &str, node: &str, role: Role) -> PlanEntry {
    PlanEntry {
        host: host.to_string(),
        node: node.to_string(),
        role,
        etcd_leader: false,
    }
}

/// A plan `run_id` of `entries` in order, building from [`FLAKE`].
pub fn plan(run_id: &str, entries: impl IntoIterator<Item = PlanEntry>) -> Plan {
    Plan {
        run_id: run_id.to_string(),
        flake: FLAKE.to_string(),
        kind: Default::default(),
        entries: entries.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_on_their_own_subnet_and_clusters_have_three_control_planes() {
        let h = host("a", Role::Agent, [192, 0, 2, 10]);
        assert_eq!(h.gateway, Ipv4Addr::new(192, 0, 2, 1));
        assert!(crate::inventory::same_subnet(
            h.ip,
            h.gateway,
            h.mask_length
        ));
        let inv = cluster(5);
        assert_eq!(inv.control_planes().count(), 3);
        assert_eq!(
            inv.by_name("node5").map(|h| h.id.as_str()),
            Some("instance_5")
        );
        // What the builders make is a valid inventory.
        let again = crate::inventory::parse(&inv.path, &inv.to_json().to_string());
        assert_eq!(again.map(|i| i.hosts), Ok(inv.hosts));
    }
}
