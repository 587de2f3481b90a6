//! The sections of the data sources: `[kubernetes]`, `[etcd]`, `[mimir]`, `[loki]` (with the
//! credentials they share), `[ssh]` and `[nix]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// Poll etcd at all (off for a cluster without embedded etcd).
    pub enabled: bool,
    /// Client URLs of the members; default `https://<ip>:2379` of every init/server host.
    pub endpoints: Vec<String>,
    /// Metrics URLs of the members; default `http://<ip>:2381/metrics` of every init/server host.
    pub metrics_urls: Vec<String>,
    /// CA of the members' certificates; default k3s's `server-ca.crt` when present.
    pub ca_file: Option<PathBuf>,
    /// Client certificate; default k3s's `client.crt` under its etcd TLS directory when present.
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate; default k3s's `client.key` when present.
    pub key_file: Option<PathBuf>,
    /// Timeout per call and endpoint.
    pub timeout_ms: u64,
    /// How often the members are polled.
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuth {
    /// Basic auth user name.
    pub basic_auth_user: Option<String>,
    /// File holding the basic auth password (read at start; never logged).
    pub basic_auth_password_file: Option<PathBuf>,
    /// Environment variable holding the basic auth password.
    pub basic_auth_password_env: Option<String>,
    /// File holding a bearer token, sent as `Authorization: Bearer`.
    pub bearer_token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for this server, besides the system roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MimirConfig {
    /// Base URL including Mimir's `/prometheus` prefix.
    pub url: Option<String>,
    /// Sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub auth: HttpAuth,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// How often metrics and alerts are queried.
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

/// The default silence matchers: the node's hostname, inventory id and address on the
/// `instance` (with an optional port), `node` and `host` labels; one silence each, since the
/// matchers of one silence are ANDed.
pub const DEFAULT_SILENCE_MATCHERS: [&str; 3] = [
    r#"instance=~"{any}(:[0-9]+)?""#,
    r#"node=~"{any}""#,
    r#"host=~"{any}""#,
];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL of the Alertmanager (`/api/v2/...` is appended); for Mimir's, include its
    /// `/alertmanager` prefix. With it the alert guard reads Alertmanager's active alerts (not
    /// silenced, not inhibited) and each node of a run is silenced while it is worked on.
    pub url: Option<String>,
    /// Sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub auth: HttpAuth,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// Silence each node while a run works on it (before its cordon, until after its uncordon).
    pub silences: bool,
    /// One silence per entry, each one matcher: `label="value"`, `label=~"regex"` (`!=`, `!~`
    /// too). `{hostname}`, `{id}`, `{ip}` are replaced (regex-escaped in a regex), `{any}` by
    /// the three as alternatives.
    pub silence_matchers: Vec<String>,
    /// A silence ends this long after its last extension: the run extends it while the node is
    /// in progress, so the silence of a run that died lapses by itself.
    pub silence_secs: u64,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: None,
            tenant: None,
            auth: HttpAuth::default(),
            timeout_secs: 10,
            silences: true,
            silence_matchers: DEFAULT_SILENCE_MATCHERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            silence_secs: 900,
        }
    }
}

/// One Alertmanager matcher: `name`, `value`, regex or not, equal or not (as API v2 writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    /// Read `label="value"`, `label=~"regex"`, `label!="value"` or `label!~"regex"` (the value
    /// quoted or not); `None` when it is none of these.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let i = t.find(['=', '!'])?;
        let name = t[..i].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &t[i..];
        let (is_equal, is_regex, value) = if let Some(v) = rest.strip_prefix("=~") {
            (true, true, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (false, true, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (false, false, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (true, false, v)
        } else {
            return None;
        };
        let v = value.trim();
        let v = match v.strip_prefix('"') {
            Some(inner) => inner.strip_suffix('"')?.replace("\\\\", "\\"),
            None => v.to_string(),
        };
        if v.is_empty() {
            return None;
        }
        Some(Self {
            name: name.to_string(),
            value: v,
            is_regex,
            is_equal,
        })
    }

    /// As Alertmanager shows it: `instance=~"node3(:[0-9]+)?"`.
    pub fn text(&self) -> String {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (true, true) => "=~",
            (false, false) => "!=",
            (false, true) => "!~",
        };
        format!("{}{op}\"{}\"", self.name, self.value)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LokiConfig {
    /// Base URL of Loki's HTTP API (`/loki/api/v1/...` is appended).
    pub url: Option<String>,
    /// Sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub auth: HttpAuth,
    /// LogQL per host; `{hostname}` and `{id}` are replaced.
    pub query_template: String,
    /// Most recent lines kept per host.
    pub lines: usize,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// How often logs are queried.
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// Read host facts over SSH at all.
    pub enabled: bool,
    /// Login user (else `sshUser` of the host, `~/.ssh/config`, then `$USER`).
    pub user: Option<String>,
    /// Port (else `sshPort` of the host or `~/.ssh/config`).
    pub port: u16,
    /// Private keys to try after the SSH agent.
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
    /// Timeout to connect and authenticate.
    pub connect_timeout_secs: u64,
    /// Timeout of one command (the facts script).
    pub command_timeout_secs: u64,
    /// Keepalive interval on open connections.
    pub keepalive_secs: u64,
    /// Hosts read at the same time (connections opened at once included). 32: a 200-host
    /// round (and `check`) is not held up by hosts waiting their turn.
    pub max_concurrency: usize,
    /// How often host facts are read.
    pub refresh_secs: u64,
    /// A host's connection stays open from one facts round to the next when they are at most
    /// this many seconds apart: no new login each round. Rounds further apart close it after
    /// each host's round (about 120 KiB less memory per host while idle, no keepalives) and
    /// log in anew the next round. `check` always closes each host's connection when done.
    pub keep_open_secs: u64,
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
            max_concurrency: 32,
            refresh_secs: 60,
            keep_open_secs: 30,
        }
    }
}

/// Where closure data (diffs, boot links, sizes, the flake's systems) comes from.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClosureSourceKind {
    /// Run `nix` here (a real cluster).
    #[default]
    Nix,
    /// Ask the simulated homelab's store (written by `homeinfra-tui sim`; no nix needed).
    Sim,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NixConfig {
    /// The flake holding `nixosConfigurations.<host>` (a path or flake reference).
    pub flake: Option<String>,
    /// The `nix` binary.
    pub nix: String,
    /// Where cached diffs are kept (default under `$XDG_CACHE_HOME`).
    pub cache_dir: Option<PathBuf>,
    /// `nix` (default) or `sim`: the simulator's store answers (its control API at `sim_url`).
    pub closure_source: ClosureSourceKind,
    /// The simulator's control API (`https://127.0.0.1:PORT`), with `closure_source = "sim"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_url: Option<String>,
    /// The CA certificate of the simulator's API (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_ca_file: Option<PathBuf>,
    /// A file holding the simulator's bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_token_file: Option<PathBuf>,
    /// How many closure diffs (or evaluations) run at once for a plan or the fleet's drift.
    pub concurrency: usize,
    /// Fetch a host's deployed closure without checking its signatures (`nix copy
    /// --no-check-sigs`): only for hosts whose locally built, unsigned store you trust.
    /// Default false: signatures are checked.
    pub trust_host_store: bool,
}

impl Default for NixConfig {
    fn default() -> Self {
        Self {
            flake: None,
            nix: "nix".into(),
            cache_dir: None,
            closure_source: ClosureSourceKind::Nix,
            sim_url: None,
            sim_ca_file: None,
            sim_token_file: None,
            concurrency: 8,
            trust_host_store: false,
        }
    }
}
