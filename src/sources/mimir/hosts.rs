//! Mapping series to inventory hosts by their `instance` (or configured) label or
//! `nodename`: ip, hostname (full or short) or id, with or without a port.

use std::collections::HashMap;

use crate::inventory::Inventory;

/// Finds the inventory host of a series by ip, hostname (full or short) or id.
pub struct HostIndex {
    by_key: HashMap<String, String>,
}

impl HostIndex {
    /// Index every host of `inv` by id, lowercase hostname and ip.
    pub fn new(inv: &Inventory) -> Self {
        let mut by_key = HashMap::new();
        for h in &inv.hosts {
            by_key.insert(h.id.clone(), h.id.clone());
            by_key.insert(h.hostname.to_ascii_lowercase(), h.id.clone());
            by_key.insert(h.ip.to_string(), h.id.clone());
        }
        Self { by_key }
    }

    /// The host id for one label value (`10.0.0.11:9100`, `node1`, `node1.lan`, `[::1]:9100`).
    pub fn lookup(&self, value: &str) -> Option<&str> {
        let v = strip_port(value).to_ascii_lowercase();
        if let Some(id) = self.by_key.get(&v) {
            return Some(id);
        }
        if v.parse::<std::net::IpAddr>().is_err()
            && let Some((short, _)) = v.split_once('.')
        {
            return self.by_key.get(short).map(String::as_str);
        }
        None
    }

    /// The host of a series: the configured label first, then `nodename`.
    pub fn host_of(&self, labels: &HashMap<String, String>, host_label: &str) -> Option<&str> {
        [host_label, "nodename"]
            .iter()
            .filter_map(|l| labels.get(*l))
            .find_map(|v| self.lookup(v))
    }
}

/// `10.0.0.1:9100` → `10.0.0.1`, `[fe80::1]:9100` → `fe80::1`, `node1:9100` → `node1`;
/// a bare IPv6 address stays as it is.
pub fn strip_port(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if v.matches(':').count() == 1
        && let Some((host, port)) = v.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return host;
    }
    v
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn inv() -> Inventory {
        crate::inventory::parse(
            Path::new("hosts.json"),
            r#"{
              "instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
              "instance_2": {"hostname":"node2","system":"x86_64-linux","profile":"p","role":"agent","region":"r","zone":"z","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24}
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(strip_port("node1:9100"), "node1");
        assert_eq!(strip_port("[fe80::1]:9100"), "fe80::1");
        assert_eq!(strip_port("fe80::1"), "fe80::1");
        assert_eq!(strip_port("node1"), "node1");
    }

    #[test]
    fn maps_series_to_hosts() {
        let idx = HostIndex::new(&inv());
        assert_eq!(idx.lookup("192.0.2.11:9100"), Some("instance_1"));
        assert_eq!(idx.lookup("node2:9100"), Some("instance_2"));
        assert_eq!(idx.lookup("NODE2.lan"), Some("instance_2"));
        assert_eq!(idx.lookup("192.0.2.99:9100"), None);
        let mut labels = HashMap::new();
        labels.insert("instance".to_string(), "10.9.9.9:9100".to_string());
        labels.insert("nodename".to_string(), "node1".to_string());
        assert_eq!(idx.host_of(&labels, "instance"), Some("instance_1"));
    }
}
