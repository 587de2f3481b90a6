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
    /// Hosts read at the same time.
    pub max_concurrency: usize,
    /// How often host facts are read.
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NixConfig {
    /// The flake holding `nixosConfigurations.<host>` (a path or flake reference).
    pub flake: Option<String>,
    /// The `nix` binary.
    pub nix: String,
    /// Where cached diffs are kept (default under `$XDG_CACHE_HOME`).
    pub cache_dir: Option<PathBuf>,
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
            trust_host_store: false,
        }
    }
}
