//! The SSH client (russh): one connection per host, reused with a channel per command,
//! keepalive, reconnect with exponential backoff, connect and command timeouts, and a bound on
//! concurrent commands across all hosts (`SshPool`).
//!
//! Auth: ssh-agent first, then identity files (ed25519, ecdsa, rsa). Never passwords. Host keys
//! are checked against known_hosts files (`known_hosts` module) before anything else happens.
//! Error messages name the host, the files and fingerprints, never key material.
//!
//! Files: this one holds the client's types (errors, settings, command results); `pool` the
//! per-host connections (reuse, backoff, state); `exec` running one command on a channel
//! (stdin, streaming, timeouts); `connect` the handshake, host key check and jump hosts;
//! `auth` the agent and identity-file authentication.

mod auth;
mod connect;
mod exec;
mod pool;

use std::path::PathBuf;
use std::time::Duration;

pub use pool::SshPool;

use crate::config::SshConfig;
use crate::model::host::SshProblem;
use crate::probes::Reply;

/// An SSH failure: what kind (for the assessment) and a message for humans. The message starts
/// with `problem.prefix()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshError {
    pub problem: SshProblem,
    pub message: String,
    /// Passphrase-protected identity files that could not be used (no passphrase given, or a
    /// wrong one): the TUI may ask for the passphrase once and call `SshPool::set_passphrase`.
    pub locked_keys: Vec<PathBuf>,
}

impl SshError {
    pub fn new(problem: SshProblem, detail: impl AsRef<str>) -> Self {
        Self {
            problem,
            message: format!("{}: {}", problem.prefix(), detail.as_ref()),
            locked_keys: Vec::new(),
        }
    }
}

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SshError {}

/// Where to find an ssh-agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// `$SSH_AUTH_SOCK`, when set.
    Env,
    Socket(PathBuf),
    Disabled,
}

/// Client behaviour, from `[ssh]`.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Default timeout of `run`; `run_streaming` takes its own.
    pub command_timeout: Duration,
    /// Send a keepalive after this long without traffic; the connection is dropped after three
    /// unanswered ones. `None`: no keepalive.
    pub keepalive: Option<Duration>,
    pub accept_new: bool,
    pub agent: AgentSource,
    /// Commands running at once across all hosts.
    pub max_concurrency: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// For hints (`~` instead of the home directory).
    pub home: Option<PathBuf>,
}

impl ClientSettings {
    pub fn from_config(cfg: &SshConfig) -> Self {
        Self {
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            command_timeout: Duration::from_secs(cfg.command_timeout_secs.max(1)),
            keepalive: (cfg.keepalive_secs > 0).then(|| Duration::from_secs(cfg.keepalive_secs)),
            accept_new: cfg.accept_new,
            agent: AgentSource::Env,
            max_concurrency: cfg.max_concurrency.max(1),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The result of a finished command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The remote exit status (`None` when the command was killed by a signal).
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// As a probe reads it.
    pub fn reply(&self) -> Reply {
        Reply {
            stdout: self.stdout_lossy(),
            stderr: self.stderr_lossy(),
            exit_status: self.exit_status,
            exit_signal: self.exit_signal.clone(),
        }
    }
}

/// How a streamed command ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
}

/// A piece of output as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// The connection state of one host, for the Hosts pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Never tried.
    Idle,
    Connected,
    /// Failing since `since` (consecutive failures), last error kept.
    Failing {
        since: std::time::SystemTime,
        failures: u32,
        error: SshError,
    },
}
