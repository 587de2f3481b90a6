//! The `[recovery]` section: which recovery facts the SSH source reads
//! and the sops-nix secrets every host must hold (the etcd snapshot schedule and the expiry
//! and clock limits are in `[thresholds]`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One sops-nix secret every host must have: present, non-empty, this owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The sops-nix name: the file is `/run/secrets/<name>`.
    pub name: String,
    pub owner: String,
    /// Octal, e.g. "0400".
    pub mode: String,
}

impl SecretSpec {
    /// The mode as bits; `None` when it is not octal.
    pub fn mode_bits(&self) -> Option<u32> {
        u32::from_str_radix(self.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
    }
}

/// `[recovery]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Read k3s's certificate files, the secrets and the clock over SSH with the host facts.
    pub host_checks: bool,
    /// The sops-nix secrets every host must hold (`/run/secrets/<name>`).
    pub secrets: Vec<String>,
    /// Their expected owner (sops-nix's default is root).
    pub secret_owner: String,
    /// Their expected mode, octal (sops-nix's default is "0400").
    pub secret_mode: String,
    /// How often the dashboard reads them again (certificates, secrets, clock: two to four
    /// commands per host); a host that rebooted or switched its system is read at its next facts
    /// round. 0: with every facts round. `check` and the upgrade always read them.
    pub refresh_secs: u64,
}

impl RecoveryConfig {
    /// Each expected secret with its owner and mode.
    pub fn secret_specs(&self) -> Vec<SecretSpec> {
        self.secrets
            .iter()
            .map(|name| SecretSpec {
                name: name.clone(),
                owner: self.secret_owner.clone(),
                mode: self.secret_mode.clone(),
            })
            .collect()
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            host_checks: true,
            secrets: vec!["k3s_token".into()],
            secret_owner: "root".into(),
            secret_mode: "0400".into(),
            refresh_secs: 300,
        }
    }
}

/// Where sops-nix puts its secrets.
pub const SECRETS_DIR: &str = "/run/secrets";

/// The path of sops-nix secret `name`; `Err` names what is wrong. Names may hold `/`
/// (sops-nix makes subdirectories) but nothing a shell would read.
pub fn secret_path(name: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|p| p.is_empty() || p == "..")
    {
        return Err(format!(
            "secret name {name:?} must be a relative sops-nix name like \"k3s_token\" or \"k3s/token\""
        ));
    }
    if let Some(c) = name.chars().find(|c| !ok(*c)) {
        return Err(format!(
            "secret name {name:?} holds {c:?}: only letters, digits, `.`, `_`, `-` and `/` are allowed"
        ));
    }
    Ok(format!("{SECRETS_DIR}/{name}"))
}

/// A user name a command line may hold.
pub(super) fn plain_user(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Five cron fields or one of the `@` shorthands.
pub(super) fn cron_shaped(s: &str) -> bool {
    s.split_whitespace().count() == 5
        || matches!(
            s.trim(),
            "@hourly" | "@daily" | "@midnight" | "@weekly" | "@monthly" | "@yearly" | "@annually"
        )
}
