//! Reading `hosts.json`: strict JSON in file order, every host's fields checked (errors name
//! the host and the field), cross-host checks (unique hostnames and IPs, a control plane), and
//! warnings for what does not stop the inventory from being used.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{Host, Inventory, InventoryError, InventoryWarning, Role};

/// `system` values Nix knows for Linux machines.
pub const KNOWN_SYSTEMS: &[&str] = &[
    "x86_64-linux",
    "aarch64-linux",
    "i686-linux",
    "armv6l-linux",
    "armv7l-linux",
    "riscv64-linux",
    "powerpc64le-linux",
];

const FIELDS: &[&str] = &[
    "hostname",
    "system",
    "profile",
    "role",
    "region",
    "zone",
    "ip",
    "gateway",
    "maskLength",
    "sshHost",
    "sshUser",
    "sshPort",
    "secrets",
];

/// Parse and validate inventory text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let entries: Entries = serde_json::from_str(text).map_err(|e| InventoryError {
        messages: vec![syntax_message(&file, &e)],
    })?;
    let Entries(entries) = entries;

    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut hosts = Vec::new();

    if entries.is_empty() {
        errors.push(format!("{file}: the inventory has no hosts"));
    }
    for (id, value) in entries {
        match parse_host(&file, &id, &value, &mut warnings) {
            Ok(h) => hosts.push(h),
            Err(mut e) => errors.append(&mut e),
        }
    }

    // Cross-host checks.
    let mut seen_hostnames: HashMap<&str, &str> = HashMap::new();
    let mut seen_ips: HashMap<Ipv4Addr, &str> = HashMap::new();
    for h in &hosts {
        if let Some(other) = seen_hostnames.insert(&h.hostname, &h.id) {
            errors.push(format!(
                "{file}: host \"{}\": field \"hostname\": \"{}\" is already used by host \"{other}\"",
                h.id, h.hostname
            ));
        }
        if let Some(other) = seen_ips.insert(h.ip, &h.id) {
            errors.push(format!(
                "{file}: host \"{}\": field \"ip\": \"{}\" is already used by host \"{other}\"",
                h.id, h.ip
            ));
        }
    }
    if !hosts.is_empty() && errors.is_empty() && !hosts.iter().any(|h| h.role.is_control_plane()) {
        errors.push(format!(
            "{file}: no host has role \"init\" or \"server\": a k3s cluster needs at least one control plane"
        ));
    }
    if !errors.is_empty() {
        return Err(InventoryError { messages: errors });
    }
    Ok(Inventory {
        path: path.to_path_buf(),
        hosts,
        warnings,
    })
}

fn syntax_message(file: &str, e: &serde_json::Error) -> String {
    let mut msg = e.to_string();
    // serde_json appends " at line L column C"; we put the position first, compiler style.
    if let Some(idx) = msg.rfind(" at line ") {
        msg.truncate(idx);
    }
    format!("{file}:{}:{}: invalid JSON: {msg}", e.line(), e.column())
}

fn parse_host(
    file: &str,
    id: &str,
    value: &Value,
    warnings: &mut Vec<InventoryWarning>,
) -> Result<Host, Vec<String>> {
    let mut errors = Vec::new();
    let at =
        |field: &str, what: String| format!("{file}: host \"{id}\": field \"{field}\": {what}");
    let Some(obj) = value.as_object() else {
        return Err(vec![format!(
            "{file}: host \"{id}\": expected an object, found {}",
            json_kind(value)
        )]);
    };
    if id.trim().is_empty() {
        errors.push(format!("{file}: a host id is empty"));
    }
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            warnings.push(InventoryWarning {
                code: "inventory.unknown_field",
                subject: id.to_string(),
                message: format!("host \"{id}\": unknown field \"{key}\" is ignored"),
            });
        }
    }

    let mut string_field = |field: &str, required: bool| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    errors.push(at(field, "is missing".to_string()));
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(at(field, "must not be empty".to_string()));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(at(
                    field,
                    format!("expected a string, found {}", json_kind(other)),
                ));
                None
            }
        }
    };
    let hostname = string_field("hostname", true);
    let system = string_field("system", true);
    let profile = string_field("profile", true);
    let role_s = string_field("role", true);
    let region = string_field("region", true);
    let zone = string_field("zone", true);
    let ip_s = string_field("ip", true);
    let gw_s = string_field("gateway", true);
    let ssh_host = string_field("sshHost", false);
    let ssh_user = string_field("sshUser", false);

    let role = role_s.and_then(|r| match r.as_str() {
        "init" => Some(Role::Init),
        "server" => Some(Role::Server),
        "agent" => Some(Role::Agent),
        other => {
            errors.push(at(
                "role",
                format!("\"{other}\" is not one of \"init\", \"server\", \"agent\""),
            ));
            None
        }
    });
    let mut ipv4 = |field: &str, s: Option<String>| -> Option<Ipv4Addr> {
        let s = s?;
        match s.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(at(field, format!("\"{s}\" is not an IPv4 address")));
                None
            }
        }
    };
    let ip = ipv4("ip", ip_s);
    let gateway = ipv4("gateway", gw_s);

    let mask_length = match obj.get("maskLength") {
        None | Some(Value::Null) => {
            errors.push(at("maskLength", "is missing".to_string()));
            None
        }
        Some(v) => match v.as_u64() {
            Some(n) if n <= 32 => Some(n as u8),
            _ => {
                errors.push(at(
                    "maskLength",
                    format!("{v} is not a whole number from 0 to 32"),
                ));
                None
            }
        },
    };
    let ssh_port = match obj.get("sshPort") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => {
                errors.push(at(
                    "sshPort",
                    format!("{v} is not a port number from 1 to 65535"),
                ));
                None
            }
        },
    };

    let secrets = match obj.get("secrets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(n) => match secret_name_problem(n) {
                        Some(why) => errors.push(at("secrets", format!("[{i}]: {why}"))),
                        None if names.iter().any(|x: &String| x == n) => {}
                        None => names.push(n.to_string()),
                    },
                    None => errors.push(at(
                        "secrets",
                        format!("[{i}]: expected a string, found {}", json_kind(item)),
                    )),
                }
            }
            names
        }
        Some(other) => {
            errors.push(at(
                "secrets",
                format!(
                    "expected an array of sops-nix secret names, found {}",
                    json_kind(other)
                ),
            ));
            Vec::new()
        }
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    // All required values are present when no error was recorded.
    let (
        Some(hostname),
        Some(system),
        Some(profile),
        Some(role),
        Some(region),
        Some(zone),
        Some(ip),
        Some(gateway),
        Some(mask_length),
    ) = (
        hostname,
        system,
        profile,
        role,
        region,
        zone,
        ip,
        gateway,
        mask_length,
    )
    else {
        return Err(vec![format!("{file}: host \"{id}\": incomplete host")]);
    };

    if !KNOWN_SYSTEMS.contains(&system.as_str()) {
        warnings.push(InventoryWarning {
            code: "inventory.unknown_system",
            subject: id.to_string(),
            message: format!(
                "host \"{id}\": field \"system\": \"{system}\" is not a known Linux system ({})",
                KNOWN_SYSTEMS.join(", ")
            ),
        });
    }
    if !same_subnet(ip, gateway, mask_length) {
        warnings.push(InventoryWarning {
            code: "inventory.gateway_outside_subnet",
            subject: id.to_string(),
            message: format!(
                "host \"{id}\": field \"gateway\": {gateway} is outside the subnet {}/{mask_length}",
                network(ip, mask_length)
            ),
        });
    }
    Ok(Host {
        id: id.to_string(),
        hostname,
        system,
        profile,
        role,
        region,
        zone,
        ip,
        gateway,
        mask_length,
        ssh_host,
        ssh_user,
        ssh_port,
        secrets,
    })
}

/// Why `name` is not a sops-nix secret name a command line may hold (`None`: it is one): a
/// relative name of letters, digits, `.`, `_`, `-` and `/` (sops-nix makes subdirectories),
/// no empty or `..` part. The same rule as `[recovery] secrets` (`config::secret_path`).
pub fn secret_name_problem(name: &str) -> Option<String> {
    if name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|p| p.is_empty() || p == "..")
    {
        return Some(format!(
            "secret name {name:?} must be a relative sops-nix name like \"k3s_token\" or \"k3s/token\""
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    name.chars().find(|c| !ok(*c)).map(|c| {
        format!(
            "secret name {name:?} holds {c:?}: only letters, digits, `.`, `_`, `-` and `/` are allowed"
        )
    })
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn network(ip: Ipv4Addr, len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask(len))
}

/// Whether two addresses share the subnet of the given prefix length.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, len: u8) -> bool {
    network(a, len) == network(b, len)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The top-level object, in file order, refusing duplicate host ids (which `fromJSON` would
/// silently collapse).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object keyed by host id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                let mut seen = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if seen.insert(key.clone(), ()).is_some() {
                        return Err(de::Error::custom(format!("duplicate host id \"{key}\"")));
                    }
                    let value: Value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Inventory, InventoryError> {
        parse(Path::new("hosts.json"), text)
    }

    const GOOD: &str = r#"{
      "instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"server","role":"init",
        "region":"home","zone":"rack-a","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24},
      "instance_2": {"hostname":"node2","system":"x86_64-linux","profile":"server","role":"agent",
        "region":"home","zone":"rack-b","ip":"192.0.2.12","gateway":"192.0.2.1","maskLength":24,
        "sshUser":"ops","sshPort":2222}
    }"#;

    #[test]
    fn parses_good_inventory_in_file_order() {
        let inv = p(GOOD).unwrap();
        assert_eq!(inv.hosts.len(), 2);
        assert_eq!(inv.hosts[0].id, "instance_1");
        assert_eq!(inv.hosts[1].ssh_port, Some(2222));
        assert_eq!(inv.hosts[1].ssh_user.as_deref(), Some("ops"));
        assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
        assert_eq!(
            inv.by_name("node2").map(|h| h.id.as_str()),
            Some("instance_2")
        );
    }

    #[test]
    fn syntax_error_names_file_line_column() {
        let err = p("{\n  \"a\": {,}\n}").unwrap_err();
        assert_eq!(err.messages.len(), 1);
        assert!(
            err.messages[0].starts_with("hosts.json:2:9: invalid JSON:"),
            "{}",
            err.messages[0]
        );
    }

    #[test]
    fn trailing_comma_and_comments_are_not_json() {
        assert!(p(r#"{"a": {}, }"#).unwrap_err().messages[0].contains("invalid JSON"));
        assert!(p("// hi\n{}").unwrap_err().messages[0].starts_with("hosts.json:1:1:"));
    }

    #[test]
    fn bad_ip_names_host_and_field() {
        let text = GOOD.replace("192.0.2.12\"", "10.0.0.300\"");
        let err = p(&text).unwrap_err();
        assert_eq!(
            err.messages,
            vec![
                "hosts.json: host \"instance_2\": field \"ip\": \"10.0.0.300\" is not an IPv4 address"
            ]
        );
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let text = r#"{"h": {"hostname": 3, "system":"x86_64-linux","profile":"p","role":"boss",
            "region":"r","ip":"192.0.2.1","gateway":"192.0.2.1","maskLength":33}}"#;
        let err = p(text).unwrap_err();
        assert_eq!(
            err.messages,
            vec![
                "hosts.json: host \"h\": field \"hostname\": expected a string, found a number",
                "hosts.json: host \"h\": field \"zone\": is missing",
                "hosts.json: host \"h\": field \"role\": \"boss\" is not one of \"init\", \"server\", \"agent\"",
                "hosts.json: host \"h\": field \"maskLength\": 33 is not a whole number from 0 to 32",
            ]
        );
    }

    #[test]
    fn duplicates_are_errors() {
        let text = GOOD
            .replace("\"node2\"", "\"node1\"")
            .replace("192.0.2.12", "192.0.2.11");
        let err = p(&text).unwrap_err();
        assert_eq!(
            err.messages,
            vec![
                "hosts.json: host \"instance_2\": field \"hostname\": \"node1\" is already used by host \"instance_1\"",
                "hosts.json: host \"instance_2\": field \"ip\": \"192.0.2.11\" is already used by host \"instance_1\"",
            ]
        );
        let dup_id = r#"{"a": {}, "a": {}}"#;
        let err = p(dup_id).unwrap_err();
        assert!(err.messages[0].contains("duplicate host id \"a\""), "{err}");
    }

    #[test]
    fn needs_a_control_plane() {
        let text = GOOD.replace("\"init\"", "\"agent\"");
        let err = p(&text).unwrap_err();
        assert!(
            err.messages[0].contains("no host has role \"init\" or \"server\""),
            "{err}"
        );
    }

    #[test]
    fn warnings_for_gateway_and_system_and_unknown_fields() {
        let text = GOOD
            .replace("\"gateway\":\"192.0.2.1\",\"maskLength\":24,\n        \"sshUser\"", "\"gateway\":\"198.51.100.1\",\"maskLength\":24,\n        \"sshUser\"")
            .replace("\"system\":\"x86_64-linux\",\"profile\":\"server\",\"role\":\"init\"", "\"system\":\"x86_64-darwin\",\"profile\":\"server\",\"role\":\"init\",\"colour\":\"red\"");
        let inv = p(&text).unwrap();
        let msgs: Vec<_> = inv
            .warnings
            .iter()
            .map(|w| (w.code, w.message.as_str()))
            .collect();
        assert_eq!(
            msgs,
            vec![
                (
                    "inventory.unknown_field",
                    "host \"instance_1\": unknown field \"colour\" is ignored"
                ),
                (
                    "inventory.unknown_system",
                    "host \"instance_1\": field \"system\": \"x86_64-darwin\" is not a known Linux system (x86_64-linux, aarch64-linux, i686-linux, armv6l-linux, armv7l-linux, riscv64-linux, powerpc64le-linux)"
                ),
                (
                    "inventory.gateway_outside_subnet",
                    "host \"instance_2\": field \"gateway\": 198.51.100.1 is outside the subnet 192.0.2.0/24"
                ),
            ]
        );
    }

    #[test]
    fn empty_and_non_object() {
        assert_eq!(
            p("{}").unwrap_err().messages,
            vec!["hosts.json: the inventory has no hosts"]
        );
        assert!(p("[]").unwrap_err().messages[0].contains("invalid JSON"));
        assert_eq!(
            p(r#"{"a": 1}"#).unwrap_err().messages,
            vec!["hosts.json: host \"a\": expected an object, found a number"]
        );
    }

    #[test]
    fn bad_ssh_port() {
        let text = GOOD.replace("2222", "70000");
        assert_eq!(
            p(&text).unwrap_err().messages,
            vec![
                "hosts.json: host \"instance_2\": field \"sshPort\": 70000 is not a port number from 1 to 65535"
            ]
        );
    }

    #[test]
    fn subnet_math() {
        let a: Ipv4Addr = "192.0.2.11".parse().unwrap();
        assert!(same_subnet(a, "192.0.2.1".parse().unwrap(), 24));
        assert!(!same_subnet(a, "192.0.3.1".parse().unwrap(), 24));
        assert!(same_subnet(a, "10.0.0.1".parse().unwrap(), 0));
        assert!(!same_subnet(a, "192.0.2.12".parse().unwrap(), 32));
    }

    #[test]
    fn secrets_per_host_parsed_and_checked() {
        let with = GOOD.replace(
            "\"sshUser\":\"ops\"",
            "\"secrets\":[\"k3s_token\",\"wg/key\",\"k3s_token\"],\"sshUser\":\"ops\"",
        );
        let inv = p(&with).unwrap();
        assert!(inv.hosts[0].secrets.is_empty());
        assert_eq!(inv.hosts[1].secrets, ["k3s_token", "wg/key"], "once each");
        assert!(inv.warnings.is_empty(), "a known field: {:?}", inv.warnings);
        // Kept in the flake's JSON.
        let again = parse(Path::new("x"), &inv.to_json().to_string()).unwrap();
        assert_eq!(again.hosts[1].secrets, ["k3s_token", "wg/key"]);
        for (bad, says) in [
            (
                "\"secrets\":\"k3s_token\"",
                "field \"secrets\": expected an array of sops-nix secret names, found a string",
            ),
            (
                "\"secrets\":[\"ok\", 3]",
                "field \"secrets\": [1]: expected a string, found a number",
            ),
            (
                "\"secrets\":[\"a;reboot\"]",
                "field \"secrets\": [0]: secret name \"a;reboot\" holds ';'",
            ),
            (
                "\"secrets\":[\"../etc/shadow\"]",
                "field \"secrets\": [0]: secret name \"../etc/shadow\" must be a relative sops-nix name",
            ),
        ] {
            let text = GOOD.replace("\"sshUser\":\"ops\"", &format!("{bad},\"sshUser\":\"ops\""));
            let err = p(&text).unwrap_err().messages.join("\n");
            assert!(
                err.contains(&format!("hosts.json: host \"instance_2\": {says}")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn round_trips_to_flake_json() {
        let inv = p(GOOD).unwrap();
        let again = parse(Path::new("x"), &inv.to_json().to_string()).unwrap();
        assert_eq!(inv.hosts, again.hosts);
    }
}
