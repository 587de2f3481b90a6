//! The TOML configuration file. Every section is optional with defaults in code; unknown keys
//! and wrong types are errors naming the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kubernetes: KubernetesConfig,
    pub etcd: EtcdConfig,
    pub mimir: MimirConfig,
    pub loki: LokiConfig,
    pub ssh: SshConfig,
    pub nix: NixConfig,
    pub upgrade: UpgradeConfig,
    pub ui: UiConfig,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Turn the Kubernetes sources off entirely.
    pub enabled: bool,
    /// A kubeconfig file (else `KUBECONFIG`, `~/.kube/config` or in-cluster, as kubectl).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (else the current one).
    pub context: Option<String>,
    /// Namespace of Longhorn's resources.
    pub longhorn_namespace: String,
    /// Per-request timeout.
    pub timeout_secs: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kubeconfig: None,
            context: None,
            longhorn_namespace: "longhorn-system".into(),
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    pub enabled: bool,
    /// Client URLs of the members; default `https://<ip>:2379` of every init/server host.
    pub endpoints: Vec<String>,
    /// Metrics URLs of the members; default `http://<ip>:2381/metrics` of every init/server host.
    pub metrics_urls: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Timeout per call and endpoint.
    pub timeout_ms: u64,
    pub refresh_secs: u64,
}

/// Where k3s keeps the etcd client certificates.
pub const K3S_ETCD_TLS_DIR: &str = "/var/lib/rancher/k3s/server/tls/etcd";

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoints: Vec::new(),
            metrics_urls: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            timeout_ms: 1000,
            refresh_secs: 5,
        }
    }
}

/// Credentials shared by Mimir and Loki. Secrets come from files or environment variables,
/// never from the config text itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuth {
    pub basic_auth_user: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    pub basic_auth_password_env: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MimirConfig {
    /// Base URL including Mimir's `/prometheus` prefix.
    pub url: Option<String>,
    /// Sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub auth: HttpAuth,
    pub timeout_secs: u64,
    pub refresh_secs: u64,
    /// Label that maps series to inventory hosts.
    pub host_label: String,
    /// PromQL overrides, by query name.
    pub queries: BTreeMap<String, String>,
}

impl Default for MimirConfig {
    fn default() -> Self {
        Self {
            url: None,
            tenant: None,
            auth: HttpAuth::default(),
            timeout_secs: 10,
            refresh_secs: 15,
            host_label: "instance".into(),
            queries: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LokiConfig {
    pub url: Option<String>,
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub auth: HttpAuth,
    /// LogQL per host; `{hostname}` and `{id}` are replaced.
    pub query_template: String,
    pub lines: usize,
    pub timeout_secs: u64,
    pub refresh_secs: u64,
    /// How far back to look.
    pub window_mins: u64,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self {
            url: None,
            tenant: None,
            auth: HttpAuth::default(),
            query_template: r#"{host="{hostname}"} |~ "(?i)(error|fail|panic)""#.into(),
            lines: 200,
            timeout_secs: 10,
            refresh_secs: 30,
            window_mins: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    pub enabled: bool,
    pub user: Option<String>,
    pub port: u16,
    pub identity_files: Vec<PathBuf>,
    /// An extra known_hosts file, checked after `~/.ssh/known_hosts` and
    /// `/etc/ssh/ssh_known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Trust unknown host keys on first use (OpenSSH's `accept-new`).
    pub accept_new: bool,
    /// Use `sudo -n` for what needs root.
    pub sudo: bool,
    /// Read `~/.ssh/config`.
    pub use_ssh_config: bool,
    pub connect_timeout_secs: u64,
    pub command_timeout_secs: u64,
    pub keepalive_secs: u64,
    pub max_concurrency: usize,
    pub refresh_secs: u64,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            user: None,
            port: 22,
            identity_files: Vec::new(),
            known_hosts: None,
            accept_new: false,
            sudo: true,
            use_ssh_config: true,
            connect_timeout_secs: 5,
            command_timeout_secs: 30,
            keepalive_secs: 15,
            max_concurrency: 8,
            refresh_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NixConfig {
    /// The flake holding `nixosConfigurations.<host>` (a path or flake reference).
    pub flake: Option<String>,
    /// The `nix` binary.
    pub nix: String,
    /// Where cached diffs are kept (default under `$XDG_CACHE_HOME`).
    pub cache_dir: Option<PathBuf>,
}

impl Default for NixConfig {
    fn default() -> Self {
        Self {
            flake: None,
            nix: "nix".into(),
            cache_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RebootPolicy {
    Auto,
    Ask,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// `sudo nixos-rebuild switch --flake <flake>#<host>` on the host over SSH.
    Remote,
    /// `nixos-rebuild switch --flake <path>#<host> --target-host ... --use-remote-sudo` here.
    Local,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// Flake reference the hosts can reach; defaults to `[nix] flake`.
    pub flake: Option<String>,
    pub switch: SwitchMode,
    pub reboot: RebootPolicy,
    /// Host ids in the order to upgrade; default agents, then servers, the etcd leader last.
    pub order: Vec<String>,
    pub drain_timeout_secs: u64,
    pub eviction_grace_secs: Option<i64>,
    pub delete_emptydir_data: bool,
    pub switch_timeout_secs: u64,
    pub reboot_timeout_secs: u64,
    pub ready_timeout_secs: u64,
    pub etcd_timeout_secs: u64,
    pub longhorn_timeout_secs: u64,
    pub settle_secs: u64,
    /// Refuse while an alert of at least this severity fires.
    pub block_on_alert_severity: String,
    /// Extra PromQL gates: the upgrade refuses while any returns a series.
    pub gates: Vec<String>,
    /// `"HH:MM-HH:MM"` local time (e.g. `"01:00-05:00"`); empty = any time.
    pub maintenance_window: Option<String>,
    /// Where run journals are kept (default `$XDG_STATE_HOME/homeinfra-tui/runs`).
    pub journal_dir: Option<PathBuf>,
    /// Switch command run on the host over SSH (`switch = "remote"`); `{flake}`, `{host}`
    /// (hostname) and `{id}` (inventory id) are replaced.
    pub switch_command: String,
    /// Switch command run here (`switch = "local"`); also `{target}` (`user@address`).
    pub local_switch_command: String,
    /// Rollback command run on the host when it does not come back healthy.
    pub rollback_command: String,
    /// Reboot command run on the host.
    pub reboot_command: String,
    /// How often the wait loops (drain, reboot, health) look again.
    pub poll_secs: u64,
    /// An etcd member counts as caught up below this raft index lag.
    pub etcd_max_lag: u64,
    /// `nixos-upgrade.timer` due within this many seconds counts as "due during the run".
    pub auto_upgrade_horizon_secs: u64,
    /// Duration of the upgrade lock's Lease (renewed at a third of it).
    pub lock_duration_secs: u64,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        Self {
            flake: None,
            switch: SwitchMode::Remote,
            reboot: RebootPolicy::Auto,
            order: Vec::new(),
            drain_timeout_secs: 600,
            eviction_grace_secs: None,
            delete_emptydir_data: true,
            switch_timeout_secs: 1800,
            reboot_timeout_secs: 600,
            ready_timeout_secs: 600,
            etcd_timeout_secs: 300,
            longhorn_timeout_secs: 1800,
            settle_secs: 30,
            block_on_alert_severity: "critical".into(),
            gates: Vec::new(),
            maintenance_window: None,
            journal_dir: None,
            switch_command: "sudo nixos-rebuild switch --flake {flake}#{host}".into(),
            local_switch_command:
                "nixos-rebuild switch --flake {flake}#{host} --target-host {target} --use-remote-sudo"
                    .into(),
            rollback_command: "sudo nixos-rebuild switch --rollback".into(),
            reboot_command: "sudo systemctl reboot".into(),
            poll_secs: 5,
            etcd_max_lag: 1000,
            auto_upgrade_horizon_secs: 3 * 3600,
            lock_duration_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (built in or in `themes/`) or a path to a theme file.
    pub theme: Option<String>,
    /// Key overrides: key (e.g. `"x"`, `"ctrl-r"`, `"F5"`) → action name (e.g. `"refresh"`)
    /// in every layer, or a `[ui.keys.<layer>]` table of them for one layer.
    pub keys: BTreeMap<String, KeyOverride>,
    /// Clock tick.
    pub tick_ms: u64,
}

/// One entry of `[ui.keys]`: `key = "action"` (every layer that has the action), or a
/// `[ui.keys.<layer>]` table of `key = "action"` for that layer alone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeyOverride {
    Action(String),
    Layer(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for KeyOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyOverride;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an action name (e.g. \"quit\") or a table of key = \"action\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyOverride, E> {
                Ok(KeyOverride::Action(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyOverride, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.insert(k, v);
                }
                Ok(KeyOverride::Layer(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: None,
            keys: BTreeMap::new(),
            tick_ms: 1000,
        }
    }
}

/// Health thresholds used by `assess`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub etcd_fsync_p99_warning_ms: f64,
    pub etcd_fsync_p99_critical_ms: f64,
    pub etcd_commit_p99_warning_ms: f64,
    pub etcd_commit_p99_critical_ms: f64,
    pub etcd_db_quota_warning_pct: f64,
    pub etcd_db_quota_critical_pct: f64,
    pub etcd_leader_changes_warning: u64,
    pub etcd_leader_changes_window_mins: u64,
    pub longhorn_min_replicas: u32,
    pub longhorn_disk_warning_pct: f64,
    /// Backup is stale when older than this many times its recurring job interval.
    pub longhorn_backup_interval_factor: f64,
    pub host_disk_warning_pct: f64,
    pub host_disk_critical_pct: f64,
    /// Data older than this many refresh intervals is reported as stale.
    pub stale_after_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            etcd_fsync_p99_warning_ms: 10.0,
            etcd_fsync_p99_critical_ms: 100.0,
            etcd_commit_p99_warning_ms: 25.0,
            etcd_commit_p99_critical_ms: 250.0,
            etcd_db_quota_warning_pct: 80.0,
            etcd_db_quota_critical_pct: 95.0,
            etcd_leader_changes_warning: 4,
            etcd_leader_changes_window_mins: 15,
            longhorn_min_replicas: 2,
            longhorn_disk_warning_pct: 85.0,
            longhorn_backup_interval_factor: 2.0,
            host_disk_warning_pct: 85.0,
            host_disk_critical_pct: 95.0,
            stale_after_secs: 120,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where the default config lives: `$XDG_CONFIG_HOME/homeinfra-tui/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    crate::paths::config_home().map(|d| d.join("homeinfra-tui").join("config.toml"))
}

/// Load the configuration: an explicit file must exist; the default file may be absent.
pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok((Config::default(), None)),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text).map(|c| (c, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok((Config::default(), None))
        }
        Err(e) => Err(ConfigError(format!(
            "{}: cannot read config: {e}",
            path.display()
        ))),
    }
}

/// Parse config text; `path` is used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| describe(path, text, &e))?;
    config.validate(path)?;
    Ok(config)
}

impl Config {
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let file = path.display();
        for (section, url) in [("mimir", &self.mimir.url), ("loki", &self.loki.url)] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(ConfigError(format!(
                    "{file}: key \"{section}.url\": \"{u}\" must start with http:// or https://"
                )));
            }
        }
        for e in &self.etcd.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "{file}: key \"etcd.endpoints\": \"{e}\" must start with http:// or https://"
                )));
            }
        }
        if let Some(w) = &self.upgrade.maintenance_window
            && !w.is_empty()
            && parse_window(w).is_none()
        {
            return Err(ConfigError(format!(
                "{file}: key \"upgrade.maintenance_window\": \"{w}\" is not of the form \"HH:MM-HH:MM\""
            )));
        }
        Ok(())
    }
}

/// Parse `"HH:MM-HH:MM"` into minutes since midnight.
pub fn parse_window(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    Some((hm(a)?, hm(b)?))
}

/// Turn a toml error into `file:line:column: key "section.key": message`.
pub(crate) fn describe(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let file = path.display();
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError(format!("{file}: {msg}"));
    };
    let (line, col) = line_col(text, span.start);
    match key_at(text, span.start) {
        Some(key) => ConfigError(format!("{file}:{line}:{col}: key \"{key}\": {msg}")),
        None => ConfigError(format!("{file}:{line}:{col}: {msg}")),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key of the `key = value` line containing `offset`, with its `[table]` prefix.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        let name = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
        return Some(name.to_string());
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[["))
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("config.toml"), text)
    }

    #[test]
    fn empty_is_defaults() {
        assert_eq!(p("").unwrap(), Config::default());
        assert_eq!(Config::default().mimir.refresh_secs, 15);
        assert_eq!(Config::default().thresholds.etcd_fsync_p99_warning_ms, 10.0);
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = p("[mimir]\nurl = \"http://127.0.0.1:9009/prometheus\"\ntenant = \"homelab\"\n[ui.keys]\nx = \"quit\"\n").unwrap();
        assert_eq!(
            c.mimir.url.as_deref(),
            Some("http://127.0.0.1:9009/prometheus")
        );
        assert_eq!(c.mimir.refresh_secs, 15);
        assert_eq!(
            c.ui.keys.get("x"),
            Some(&KeyOverride::Action("quit".into()))
        );
        assert_eq!(c.loki, LokiConfig::default());
    }

    #[test]
    fn key_overrides_per_layer_are_tables() {
        let c = p("[ui.keys]\nx = \"quit\"\n[ui.keys.diff]\nE = \"export\"\n").unwrap();
        let mut diff = BTreeMap::new();
        diff.insert("E".to_string(), "export".to_string());
        assert_eq!(c.ui.keys.get("diff"), Some(&KeyOverride::Layer(diff)));
        let err = p("[ui.keys]\nx = 3\n").unwrap_err().0;
        assert!(err.contains("an action name"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = p("[ssh]\nuser = \"ops\"\nprot = 22\n").unwrap_err().0;
        assert!(
            err.starts_with("config.toml:3:1: key \"ssh.prot\": unknown field `prot`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = p("[grafana]\nurl = \"x\"\n").unwrap_err().0;
        assert!(err.starts_with("config.toml:1:"), "{err}");
        assert!(err.contains("unknown field `grafana`"), "{err}");
    }

    #[test]
    fn wrong_type_names_key() {
        let err = p("[etcd]\n# comment\ntimeout_ms = \"fast\"\n")
            .unwrap_err()
            .0;
        assert!(
            err.starts_with(
                "config.toml:3:14: key \"etcd.timeout_ms\": invalid type: string \"fast\""
            ),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let err = p("[ui\ntheme = 1").unwrap_err().0;
        assert!(err.starts_with("config.toml:1:"), "{err}");
    }

    #[test]
    fn bad_enum_value() {
        let err = p("[upgrade]\nreboot = \"sometimes\"\n").unwrap_err().0;
        assert!(
            err.starts_with(
                "config.toml:2:10: key \"upgrade.reboot\": unknown variant `sometimes`"
            ),
            "{err}"
        );
    }

    #[test]
    fn semantic_checks() {
        let err = p("[mimir]\nurl = \"mimir:9009\"\n").unwrap_err().0;
        assert_eq!(
            err,
            "config.toml: key \"mimir.url\": \"mimir:9009\" must start with http:// or https://"
        );
        let err = p("[upgrade]\nmaintenance_window = \"1-5\"\n")
            .unwrap_err()
            .0;
        assert!(err.contains("upgrade.maintenance_window"), "{err}");
        assert_eq!(parse_window("01:00-05:30"), Some((60, 330)));
        assert_eq!(parse_window("25:00-05:30"), None);
    }

    #[test]
    fn missing_explicit_file_is_an_error_but_default_is_not() {
        let err = load(Some(Path::new("/nonexistent/homeinfra.toml")))
            .unwrap_err()
            .0;
        assert!(
            err.starts_with("/nonexistent/homeinfra.toml: cannot read config:"),
            "{err}"
        );
    }
}
