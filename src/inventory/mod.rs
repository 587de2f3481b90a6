//! The `hosts.json` inventory: the same file the Nix flake reads with `builtins.fromJSON`.
//!
//! Parsing is strict JSON. Syntax errors name `file:line:column`; value errors name the host
//! and the field. Problems that do not stop the inventory from being used (a gateway outside
//! the subnet, an unknown `system`, an unknown field) are kept as warnings and become findings.//!
//! The inventory's types are here; `parse` reads and checks the file.

mod parse;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::parse::{KNOWN_SYSTEMS, parse, same_subnet, secret_name_problem};
use serde_json::Value;

/// A host's role in the k3s cluster, as the flake spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The first control plane (`clusterInit`).
    Init,
    /// A further control plane (k3s server with embedded etcd).
    Server,
    /// A worker ("satellite") node.
    Agent,
}

impl Role {
    /// Control planes run an etcd member.
    pub fn is_control_plane(self) -> bool {
        matches!(self, Role::Init | Role::Server)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Init => "init",
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// The key of the host in `hosts.json` (e.g. `instance_1`).
    pub id: String,
    pub hostname: String,
    pub system: String,
    pub profile: String,
    pub role: Role,
    pub region: String,
    pub zone: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mask_length: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// The sops-nix secrets this host must hold (`"secrets": ["k3s_token", "wg/key"]`),
    /// checked by the recovery probe besides `[recovery] secrets`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl Host {
    /// The address to reach the host over SSH: `sshHost` when set, else its ip.
    pub fn ssh_address(&self) -> String {
        self.ssh_host.clone().unwrap_or_else(|| self.ip.to_string())
    }
}

/// A problem with the inventory that does not stop it from being used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryWarning {
    /// Stable code, e.g. `inventory.gateway_outside_subnet`.
    pub code: &'static str,
    /// The host id the warning is about (or the file name for file-wide warnings).
    pub subject: String,
    pub message: String,
}

/// The parsed, validated inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Hosts in file order.
    pub hosts: Vec<Host>,
    pub warnings: Vec<InventoryWarning>,
}

impl Inventory {
    pub fn host(&self, id: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// Find a host by its id or its hostname (Kubernetes node names are hostnames).
    pub fn by_name(&self, name: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.hostname == name)
            .or_else(|| self.host(name))
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role.is_control_plane())
    }

    /// Serialize back to the flake's JSON shape (keyed by host id).
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for h in &self.hosts {
            let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.remove("id");
            }
            map.insert(h.id.clone(), v);
        }
        Value::Object(map)
    }
}

/// Why an inventory could not be used. Every message names the file and where it can, the
/// host and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    pub messages: Vec<String>,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("\n"))
    }
}

impl std::error::Error for InventoryError {}

/// Read and validate an inventory file.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
        messages: vec![format!("{}: cannot read inventory: {e}", path.display())],
    })?;
    parse(path, &text)
}
