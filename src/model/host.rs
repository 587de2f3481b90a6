//! Facts only the host itself knows, gathered over SSH.

use serde::{Deserialize, Serialize};

/// What one SSH round trip told us about a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub nixos_version: Option<String>,
    pub current_system: Option<String>,
    pub booted_system: Option<String>,
    /// Booted and current differ in kernel, initrd or kernel modules; `None` when unknown.
    pub reboot_needed: Option<bool>,
    pub generation: Option<u64>,
    pub uptime_secs: Option<u64>,
    pub failed_units: Vec<String>,
}
