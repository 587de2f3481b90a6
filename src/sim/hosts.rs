//! The simulated hosts: the inventory (given or generated), moved onto loopback addresses.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::inventory::{Host, Inventory, Role};

/// The loopback address of the `index`-th host: 127.0.0.2, 127.0.0.3, ... (then 127.0.1.x).
pub fn loopback_ip(index: usize) -> Ipv4Addr {
    let n = index + 1;
    Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250 + 1) as u8)
}

fn host(i: usize, id: String, hostname: String, role: Role, zone: &str, profile: &str) -> Host {
    Host {
        id,
        hostname,
        system: "x86_64-linux".into(),
        profile: profile.into(),
        role,
        region: "home".into(),
        zone: zone.into(),
        ip: loopback_ip(i),
        gateway: Ipv4Addr::new(127, 0, 0, 1),
        mask_length: 8,
        ssh_host: None,
        ssh_user: None,
        ssh_port: None,
        secrets: Vec::new(),
    }
}

/// The blog's cluster: three control planes and one satellite.
pub fn default_inventory() -> Inventory {
    let zones = ["home-a", "home-b", "home-c", "home-a"];
    let hosts = (0..4)
        .map(|i| {
            let role = match i {
                0 => Role::Init,
                1 | 2 => Role::Server,
                _ => Role::Agent,
            };
            let profile = if role.is_control_plane() {
                "server"
            } else {
                "satellite"
            };
            host(
                i,
                format!("instance_{}", i + 1),
                format!("node{}", i + 1),
                role,
                zones[i],
                profile,
            )
        })
        .collect();
    Inventory {
        path: PathBuf::from("<simulated>"),
        hosts,
        warnings: Vec::new(),
    }
}

/// `n` hosts: three servers (the first is `init`) and `n - 3` agents spread over zones.
pub fn generated_inventory(n: usize) -> Inventory {
    let n = n.max(1);
    let zones = ["zone-a", "zone-b", "zone-c"];
    let hosts = (0..n)
        .map(|i| {
            let (role, name, profile) = match i {
                0 => (Role::Init, format!("cp{}", i + 1), "server"),
                1 | 2 => (Role::Server, format!("cp{}", i + 1), "server"),
                _ => (Role::Agent, format!("sat{:03}", i - 2), "satellite"),
            };
            host(
                i,
                format!("instance_{}", i + 1),
                name,
                role,
                zones[i % zones.len()],
                profile,
            )
        })
        .collect();
    Inventory {
        path: PathBuf::from("<generated>"),
        hosts,
        warnings: Vec::new(),
    }
}

/// A given inventory with every address moved onto loopback (each host its own 127.0.0.N),
/// so nothing the simulator writes points anywhere but this machine.
pub fn to_loopback(inv: &Inventory) -> Inventory {
    let hosts = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Host {
            ip: loopback_ip(i),
            gateway: Ipv4Addr::new(127, 0, 0, 1),
            mask_length: 8,
            ssh_host: None,
            ssh_port: None,
            secrets: Vec::new(),
            ..h.clone()
        })
        .collect();
    Inventory {
        path: inv.path.clone(),
        hosts,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn generated_round_trips_through_the_parser() {
        let inv = generated_inventory(10);
        assert_eq!(inv.control_planes().count(), 3);
        let text = serde_json::to_string_pretty(&inv.to_json()).unwrap();
        let back = crate::inventory::parse(Path::new("hosts.json"), &text).unwrap();
        assert_eq!(back.hosts.len(), 10);
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert!(back.hosts.iter().all(|h| h.ip.is_loopback()));
    }

    #[test]
    fn a_real_inventory_moves_onto_loopback() {
        let text = r#"{
          "instance_1": {"hostname":"cp1","system":"x86_64-linux","profile":"server","role":"init",
            "region":"r","zone":"a","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24,
            "sshHost":"cp1.example.org","sshPort":2200},
          "instance_2": {"hostname":"sat1","system":"aarch64-linux","profile":"satellite","role":"agent",
            "region":"r","zone":"b","ip":"198.51.100.7","gateway":"198.51.100.1","maskLength":24}
        }"#;
        let inv = crate::inventory::parse(Path::new("hosts.json"), text).unwrap();
        let lo = to_loopback(&inv);
        assert_eq!(lo.hosts[0].ip.to_string(), "127.0.0.2");
        assert_eq!(lo.hosts[1].ip.to_string(), "127.0.0.3");
        assert!(
            lo.hosts
                .iter()
                .all(|h| h.gateway.is_loopback() && h.ssh_host.is_none())
        );
        assert_eq!(lo.hosts[1].system, "aarch64-linux");
        let json = serde_json::to_string(&lo.to_json()).unwrap();
        assert!(
            !json.contains("192.0.2")
                && !json.contains("198.51.100")
                && !json.contains("example.org")
        );
    }

    #[test]
    fn loopback_ips_are_distinct_for_many_hosts() {
        let ips: std::collections::HashSet<_> = (0..600).map(loopback_ip).collect();
        assert_eq!(ips.len(), 600);
        assert!(ips.iter().all(|ip| ip.is_loopback() && ip.octets()[3] != 0));
    }
}
