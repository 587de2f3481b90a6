//! The TOML configuration file. Every section is optional with defaults in code; unknown keys
//! and wrong types are errors naming the file, the line and the key.
//!
//! Here: the whole [`Config`], loading and checking it. The sections are in `sources`,
//! `upgrade` and `ui`; `errors` writes the messages.

mod errors;
mod recovery;
mod sources;
mod ui;
mod upgrade;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::errors::redact_url;
pub(crate) use self::errors::{at_key, describe};
pub use self::recovery::{RecoveryConfig, SECRETS_DIR, SecretSpec, secret_path};
pub use self::sources::{
    AlertmanagerConfig, ClosureSourceKind, DEFAULT_SILENCE_MATCHERS, EtcdConfig, HttpAuth,
    K3S_ETCD_TLS_DIR, KubernetesConfig, LokiConfig, MimirConfig, NixConfig, SilenceMatcher,
    SshConfig,
};
pub use self::ui::{KeyOverride, Thresholds, UiConfig};
pub use self::upgrade::{
    BootOnce, PreSnapshot, RebootPolicy, SKIPPABLE_GUARDS, SwitchMode, UpgradeConfig, parse_window,
};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Kubernetes API (nodes, pods, PDBs, Longhorn's resources), through the kubeconfig.
    pub kubernetes: KubernetesConfig,
    /// k3s's embedded etcd: each member's JSON gateway and metrics.
    pub etcd: EtcdConfig,
    /// Mimir (or any Prometheus API): per-host metrics, etcd latency, firing alerts.
    pub mimir: MimirConfig,
    /// Loki: recent error lines per host.
    pub loki: LokiConfig,
    /// Alertmanager: the alerts the guard reads (silences respected), the silences of a run.
    pub alertmanager: AlertmanagerConfig,
    /// The hosts over SSH: NixOS facts, reboot needed, hardening posture; the upgrade's switch.
    pub ssh: SshConfig,
    /// Nix and the flake: closure diffs (what an update changes).
    pub nix: NixConfig,
    /// The guarded rolling upgrade.
    pub upgrade: UpgradeConfig,
    /// Recovery readiness: the secrets every host needs, the etcd snapshot schedule.
    pub recovery: RecoveryConfig,
    /// The dashboard: theme, keys, clock.
    pub ui: UiConfig,
    /// What the health rules call a warning or critical.
    pub thresholds: Thresholds,
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
    config.validate(path, text)?;
    Ok(config)
}

impl Config {
    /// What serde cannot check: URL schemes, the maintenance window's form.
    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        for (key, url) in [
            ("mimir.url", &self.mimir.url),
            ("loki.url", &self.loki.url),
            ("alertmanager.url", &self.alertmanager.url),
        ] {
            if let Some(u) = url
                && !http(u)
            {
                let shown = redact_url(u);
                return Err(at_key(
                    path,
                    text,
                    key,
                    &format!("\"{shown}\" must start with http:// or https://"),
                ));
            }
        }
        for e in &self.etcd.endpoints {
            if !http(e) {
                let shown = redact_url(e);
                return Err(at_key(
                    path,
                    text,
                    "etcd.endpoints",
                    &format!("\"{shown}\" must start with http:// or https://"),
                ));
            }
        }
        if self.nix.closure_source == ClosureSourceKind::Sim {
            let url = self.nix.sim_url.as_deref().unwrap_or("");
            // The simulator binds loopback only: anything else is not a simulator.
            let loopback = [
                "https://127.",
                "http://127.",
                "https://localhost",
                "http://localhost",
            ];
            if !loopback.iter().any(|p| url.starts_with(p)) {
                return Err(at_key(
                    path,
                    text,
                    "nix.sim_url",
                    &format!(
                        "closure_source = \"sim\" needs the simulator's URL on loopback (https://127.0.0.1:PORT, written by `homeinfra-tui sim`), not \"{}\"",
                        redact_url(url)
                    ),
                ));
            }
        }
        for m in &self.alertmanager.silence_matchers {
            if SilenceMatcher::parse(m).is_none() {
                return Err(at_key(
                    path,
                    text,
                    "alertmanager.silence_matchers",
                    &format!(
                        "\"{m}\" is not a matcher: write label=\"value\" or label=~\"regex\" (!= and !~ too)"
                    ),
                ));
            }
        }
        for g in &self.upgrade.skip_guards {
            if !upgrade::SKIPPABLE_GUARDS.iter().any(|(n, _)| n == g) {
                let names: Vec<&str> = upgrade::SKIPPABLE_GUARDS.iter().map(|(n, _)| *n).collect();
                return Err(at_key(
                    path,
                    text,
                    "upgrade.skip_guards",
                    &format!(
                        "\"{g}\" is not a guard that can be skipped (valid: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        for name in &self.recovery.secrets {
            if let Err(e) = secret_path(name) {
                return Err(at_key(path, text, "recovery.secrets", &e));
            }
        }
        let rc = &self.recovery;
        if (SecretSpec {
            name: String::new(),
            owner: rc.secret_owner.clone(),
            mode: rc.secret_mode.clone(),
        })
        .mode_bits()
        .is_none()
        {
            return Err(at_key(
                path,
                text,
                "recovery.secret_mode",
                &format!("{:?} is not an octal mode like \"0400\"", rc.secret_mode),
            ));
        }
        if !recovery::plain_user(&rc.secret_owner) {
            return Err(at_key(
                path,
                text,
                "recovery.secret_owner",
                &format!("{:?} is not a user name", rc.secret_owner),
            ));
        }
        if !recovery::cron_shaped(&self.thresholds.etcd_snapshot_cron) {
            return Err(at_key(
                path,
                text,
                "thresholds.etcd_snapshot_cron",
                &format!(
                    "\"{}\" is not a 5-field cron expression like \"0 */12 * * *\"",
                    self.thresholds.etcd_snapshot_cron
                ),
            ));
        }
        if let Some(w) = &self.upgrade.maintenance_window
            && !w.is_empty()
            && parse_window(w).is_none()
        {
            return Err(at_key(
                path,
                text,
                "upgrade.maintenance_window",
                &format!("\"{w}\" is not of the form \"HH:MM-HH:MM\""),
            ));
        }
        Ok(())
    }
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
        let mut diff = std::collections::BTreeMap::new();
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
    fn pre_snapshot_values_and_a_bad_one() {
        assert_eq!(p("").unwrap().upgrade.pre_snapshot, PreSnapshot::Require);
        for (v, want) in [
            ("require", PreSnapshot::Require),
            ("try", PreSnapshot::Try),
            ("off", PreSnapshot::Off),
        ] {
            let c = p(&format!("[upgrade]\npre_snapshot = \"{v}\"\n")).unwrap();
            assert_eq!(c.upgrade.pre_snapshot, want);
        }
        let err = p("[upgrade]\npre_snapshot = \"maybe\"\n").unwrap_err().0;
        assert!(
            err.starts_with(
                "config.toml:2:16: key \"upgrade.pre_snapshot\": unknown variant `maybe`, expected one of `require`, `try`, `off`"
            ),
            "{err}"
        );
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
            "config.toml:2:1: key \"mimir.url\": \"mimir:9009\" must start with http:// or https://"
        );
        let err = p("[upgrade]\nskip_guards = [\"etcd\", \"longhron\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"upgrade.skip_guards\": \"longhron\" is not a guard that can be skipped (valid: longhorn, etcd, alerts, auto-upgrade, k3s-skew)"),
            "{err}"
        );
        assert_eq!(
            p("[upgrade]\nskip_guards = [\"longhorn\", \"etcd\", \"k3s-skew\"]\n")
                .unwrap()
                .upgrade
                .skip_guards,
            ["longhorn", "etcd", "k3s-skew"]
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
