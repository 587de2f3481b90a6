//! The SSH client (russh): one connection per host, reused with a channel per command,
//! keepalive, reconnect with exponential backoff, connect and command timeouts, and a bound on
//! concurrent commands across all hosts (`SshPool`).
//!
//! Auth: ssh-agent first, then identity files (ed25519, ecdsa, rsa). Never passwords. Host keys
//! are checked against known_hosts files (`known_hosts` module) before anything else happens.
//! Error messages name the host, the files and fingerprints, never key material.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig};
use tokio::sync::{Mutex, Semaphore, mpsc};
use zeroize::Zeroizing;

use super::known_hosts::{self, Verdict};
use super::ssh_config::{Target, display_path};
use crate::config::SshConfig;
use crate::model::host::SshProblem;

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

/// Many hosts, one connection each, bounded concurrency.
pub struct SshPool {
    settings: Arc<ClientSettings>,
    hosts: StdMutex<HashMap<String, Arc<HostConn>>>,
    limit: Arc<Semaphore>,
    passphrases: Passphrases,
}

/// Passphrases of identity files, given once by the user; kept in memory only, wiped on drop.
type Passphrases = Arc<StdMutex<HashMap<PathBuf, Zeroizing<String>>>>;

impl SshPool {
    pub fn new(settings: ClientSettings) -> Self {
        let limit = Arc::new(Semaphore::new(settings.max_concurrency.max(1)));
        Self {
            settings: Arc::new(settings),
            hosts: StdMutex::new(HashMap::new()),
            limit,
            passphrases: Arc::default(),
        }
    }

    /// Remember the passphrase of a protected identity file (asked once by the TUI) and retry
    /// failing hosts at once. Never logged or shown.
    pub fn set_passphrase(&self, key: &Path, passphrase: String) {
        if let Ok(mut p) = self.passphrases.lock() {
            p.insert(key.to_path_buf(), Zeroizing::new(passphrase));
        }
        self.reset_backoff();
    }

    /// Let every failing host be retried on its next command, without waiting for its backoff.
    pub fn reset_backoff(&self) {
        let conns: Vec<Arc<HostConn>> = match self.hosts.lock() {
            Ok(h) => h.values().cloned().collect(),
            Err(_) => return,
        };
        for c in conns {
            if let Ok(mut f) = c.failures.lock() {
                f.next_try = None;
            }
        }
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Run `command` and collect its output, bounded by the configured command timeout.
    pub async fn run(&self, target: &Target, command: &str) -> Result<CommandOutput, SshError> {
        self.run_with_stdin(target, command, None, self.settings.command_timeout)
            .await
    }

    /// Run `command`, feeding `stdin` (then EOF), bounded by `timeout`.
    pub async fn run_with_stdin(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, SshError> {
        let mut out = CommandOutput::default();
        let exit = self
            .exec(target, command, stdin, timeout, &mut |chunk| match chunk {
                OutputChunk::Stdout(d) => out.stdout.extend_from_slice(&d),
                OutputChunk::Stderr(d) => out.stderr.extend_from_slice(&d),
            })
            .await?;
        out.exit_status = exit.exit_status;
        out.exit_signal = exit.exit_signal;
        Ok(out)
    }

    /// Run `command` and send its output to `tx` chunk by chunk as it arrives (for live
    /// `nixos-rebuild` output). A closed receiver does not stop the command.
    pub async fn run_streaming(
        &self,
        target: &Target,
        command: &str,
        timeout: Duration,
        tx: mpsc::UnboundedSender<OutputChunk>,
    ) -> Result<ExitInfo, SshError> {
        self.exec(target, command, None, timeout, &mut |chunk| {
            let _ = tx.send(chunk);
        })
        .await
    }

    /// The connection state of a host id.
    pub fn state(&self, id: &str) -> ConnState {
        let conn = self.hosts.lock().ok().and_then(|h| h.get(id).cloned());
        match conn {
            None => ConnState::Idle,
            Some(c) => c.state(),
        }
    }

    /// Close every connection (they reconnect on the next command).
    pub async fn disconnect_all(&self) {
        let conns: Vec<Arc<HostConn>> = match self.hosts.lock() {
            Ok(h) => h.values().cloned().collect(),
            Err(_) => return,
        };
        for c in conns {
            let mut s = c.session.lock().await;
            if let Some(sess) = s.take() {
                let _ = sess
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "bye", "en")
                    .await;
            }
        }
    }

    fn conn(&self, target: &Target) -> Arc<HostConn> {
        let mut hosts = match self.hosts.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        hosts
            .entry(target.id.clone())
            .or_insert_with(|| Arc::new(HostConn::default()))
            .clone()
    }

    async fn exec(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        sink: &mut (dyn FnMut(OutputChunk) + Send),
    ) -> Result<ExitInfo, SshError> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| SshError::new(SshProblem::Other, "the SSH pool is shutting down"))?;
        let conn = self.conn(target);
        let mut attempt = 0;
        let mut channel = loop {
            attempt += 1;
            let handle = conn
                .session(target, &self.settings, &self.passphrases)
                .await?;
            // A hung server would never confirm the channel: bound the wait.
            let opened =
                tokio::time::timeout(self.settings.connect_timeout, handle.channel_open_session())
                    .await
                    .unwrap_or(Err(russh::Error::ConnectionTimeout));
            match opened {
                Ok(ch) => break ch,
                Err(e) => {
                    // The server may have closed an idle connection: reconnect once.
                    conn.drop_session(&handle).await;
                    if attempt >= 2 {
                        return Err(SshError::new(
                            SshProblem::Unreachable,
                            format!("{}: cannot open a channel: {e}", target.display()),
                        ));
                    }
                }
            }
        };

        let work = async {
            channel.exec(true, command).await.map_err(|e| {
                SshError::new(
                    SshProblem::Unreachable,
                    format!("{}: cannot start command: {e}", target.display()),
                )
            })?;
            if let Some(input) = stdin {
                channel.data_bytes(input.to_vec()).await.map_err(|e| {
                    SshError::new(
                        SshProblem::Unreachable,
                        format!("{}: cannot send input: {e}", target.display()),
                    )
                })?;
            }
            if stdin.is_some() {
                let _ = channel.eof().await;
            }
            let mut exit = ExitInfo::default();
            let reader = &mut channel;
            // Read until the channel is gone: the exit status may come before the last data.
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => sink(OutputChunk::Stdout(data.to_vec())),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        sink(OutputChunk::Stderr(data.to_vec()))
                    }
                    ChannelMsg::ExitStatus { exit_status } => exit.exit_status = Some(exit_status),
                    ChannelMsg::ExitSignal {
                        signal_name,
                        error_message,
                        ..
                    } => {
                        let mut s = format!("{signal_name:?}");
                        if !error_message.is_empty() {
                            s.push_str(&format!(" ({error_message})"));
                        }
                        exit.exit_signal = Some(s);
                    }
                    ChannelMsg::Failure => {
                        return Err(SshError::new(
                            SshProblem::Other,
                            format!(
                                "{}: the server refused to run the command",
                                target.display()
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            Ok::<_, SshError>(exit)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(exit)) if exit.exit_status.is_some() || exit.exit_signal.is_some() => Ok(exit),
            Ok(Ok(_)) => {
                // No exit status: the connection died under the command.
                conn.drop_current().await;
                Err(SshError::new(
                    SshProblem::Unreachable,
                    format!(
                        "{}: connection lost while running `{}`",
                        target.display(),
                        short(command)
                    ),
                ))
            }
            Ok(Err(e)) => {
                conn.drop_current().await;
                Err(e)
            }
            Err(_) => {
                // Ask the server to kill the command, then close the channel (sshd then closes
                // the command's pipes).
                let _ = channel.signal(Sig::KILL).await;
                let _ = channel.close().await;
                conn.drop_current().await;
                Err(SshError::new(
                    SshProblem::Timeout,
                    format!(
                        "{}: `{}` did not finish within {} s",
                        target.display(),
                        short(command),
                        timeout.as_secs_f64()
                    ),
                ))
            }
        }
    }
}

fn short(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    let mut s: String = first.chars().take(60).collect();
    if s.len() < command.len() {
        s.push('…');
    }
    s
}

/// A live session with the target it was opened for.
struct Session {
    handle: Arc<Handle<ClientHandler>>,
    target: Target,
    /// Jump host sessions the connection runs through (kept alive with it).
    _jumps: Vec<Handle<ClientHandler>>,
}

#[derive(Default)]
struct HostConn {
    session: Mutex<Option<Session>>,
    failures: StdMutex<Failures>,
}

#[derive(Default)]
struct Failures {
    count: u32,
    since: Option<std::time::SystemTime>,
    next_try: Option<Instant>,
    last: Option<SshError>,
    connected: bool,
}

impl HostConn {
    fn state(&self) -> ConnState {
        let f = match self.failures.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        match (&f.last, f.since) {
            (Some(e), Some(since)) if f.count > 0 => ConnState::Failing {
                since,
                failures: f.count,
                error: e.clone(),
            },
            _ if f.connected => ConnState::Connected,
            _ => ConnState::Idle,
        }
    }

    async fn session(
        &self,
        target: &Target,
        settings: &ClientSettings,
        passphrases: &Passphrases,
    ) -> Result<Arc<Handle<ClientHandler>>, SshError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            if !s.handle.is_closed() && s.target == *target {
                return Ok(s.handle.clone());
            }
            *guard = None;
        }
        {
            let f = match self.failures.lock() {
                Ok(f) => f,
                Err(p) => p.into_inner(),
            };
            if let (Some(next), Some(last)) = (f.next_try, &f.last)
                && Instant::now() < next
            {
                let wait = next.saturating_duration_since(Instant::now());
                return Err(SshError {
                    problem: last.problem,
                    message: format!(
                        "{} (next attempt in {:.0} s)",
                        last.message,
                        wait.as_secs_f64().ceil()
                    ),
                    locked_keys: last.locked_keys.clone(),
                });
            }
        }
        match connect(target, settings, passphrases).await {
            Ok((handle, jumps)) => {
                let handle = Arc::new(handle);
                *guard = Some(Session {
                    handle: handle.clone(),
                    target: target.clone(),
                    _jumps: jumps,
                });
                let mut f = match self.failures.lock() {
                    Ok(f) => f,
                    Err(p) => p.into_inner(),
                };
                *f = Failures {
                    connected: true,
                    ..Default::default()
                };
                Ok(handle)
            }
            Err(e) => {
                let mut f = match self.failures.lock() {
                    Ok(f) => f,
                    Err(p) => p.into_inner(),
                };
                f.count += 1;
                f.connected = false;
                f.since.get_or_insert_with(std::time::SystemTime::now);
                let factor = 2u32.saturating_pow(f.count.saturating_sub(1).min(16));
                let delay = settings
                    .backoff_initial
                    .saturating_mul(factor)
                    .min(settings.backoff_max);
                f.next_try = Some(Instant::now() + delay);
                f.last = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn drop_session(&self, handle: &Arc<Handle<ClientHandler>>) {
        let mut guard = self.session.lock().await;
        if guard
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.handle, handle))
        {
            *guard = None;
        }
    }

    /// Forget the current session if it is closed (a dead connection is not reused).
    async fn drop_current(&self) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.handle.is_closed()) {
            *guard = None;
            if let Ok(mut f) = self.failures.lock() {
                f.connected = false;
            }
        }
    }
}

/// Why the handshake failed, when it was our decision.
#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    HostKey(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

struct ClientHandler {
    target: Target,
    accept_new: bool,
    home: Option<PathBuf>,
}

impl ClientHandler {
    fn verify(&self, key: &PublicKey) -> Result<(), SshError> {
        let t = &self.target;
        let fp = known_hosts::fingerprint(key);
        let alg = key.algorithm().as_str().to_string();
        match known_hosts::check(&t.host, t.port, key, &t.known_hosts) {
            Verdict::Known { .. } => Ok(()),
            Verdict::Unknown { other_types }
                if self.accept_new
                    && other_types.is_empty()
                    && !t.known_hosts_write.starts_with("~") =>
            {
                known_hosts::append(&t.known_hosts_write, &t.host, t.port, key).map_err(|e| {
                    SshError::new(
                        SshProblem::Other,
                        format!(
                            "cannot record the host key of {} in {}: {e}",
                            known_hosts::lookup_name(&t.host, t.port),
                            t.known_hosts_write.display()
                        ),
                    )
                })?;
                tracing::warn!(
                    host = %t.host, port = t.port, fingerprint = %fp,
                    "accept_new: permanently added the host key to {}",
                    t.known_hosts_write.display()
                );
                Ok(())
            }
            Verdict::Unknown { other_types } => {
                let file = display_path(&t.known_hosts_write, self.home.as_deref());
                let other = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (keys of other types are known for it: {}; check before trusting)",
                        other_types.join(", ")
                    )
                };
                Err(SshError::new(
                    SshProblem::HostKeyUnknown,
                    format!(
                        "{} is not in any known_hosts file{other}; its {alg} key fingerprint is {fp}. \
                         After checking it, trust it with: ssh-keyscan -p {} {} >> {file} \
                         (or set [ssh] accept_new = true)",
                        known_hosts::lookup_name(&t.host, t.port),
                        t.port,
                        t.host,
                    ),
                ))
            }
            Verdict::Changed { path, line } => Err(SshError::new(
                SshProblem::HostKeyChanged,
                format!(
                    "REMOTE HOST IDENTIFICATION HAS CHANGED for {}! Someone could be eavesdropping \
                     on you right now (man-in-the-middle attack), or the host key was replaced. \
                     The {alg} key sent by the host has fingerprint {fp}; the offending key is in \
                     {}:{line}. Refusing to connect. If the change is expected, remove it with: \
                     ssh-keygen -R '{}' -f {}",
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display(),
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display(),
                ),
            )),
            Verdict::Revoked { path, line } => Err(SshError::new(
                SshProblem::HostKeyChanged,
                format!(
                    "the {alg} host key of {} ({fp}) is marked @revoked in {}:{line}. Refusing to connect.",
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display()
                ),
            )),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.verify(key).map_err(HandlerError::HostKey)?;
                Ok(true)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(HandlerError::HostKey(SshError::new(
                SshProblem::Other,
                format!(
                    "{} offered a host certificate; only plain host keys are supported",
                    self.target.display()
                ),
            ))),
        }
    }
}

/// A session and the jump host sessions it runs through.
type Connected = (Handle<ClientHandler>, Vec<Handle<ClientHandler>>);

/// Connect to `target`, through its jump hosts (`ProxyJump`) when it has any: the session and
/// the jump sessions it runs through (outermost last).
fn connect<'a>(
    target: &'a Target,
    settings: &'a ClientSettings,
    passphrases: &'a Passphrases,
) -> futures::future::BoxFuture<'a, Result<Connected, SshError>> {
    Box::pin(async move {
        let Some(jump) = target.jump.as_deref() else {
            return connect_one(target, settings, passphrases, None)
                .await
                .map(|h| (h, Vec::new()));
        };
        let (jump_handle, mut jumps) = connect(jump, settings, passphrases).await.map_err(|e| {
            let mut e2 = SshError::new(
                e.problem,
                format!(
                    "{} via jump host {}: {}",
                    target.display(),
                    jump.display(),
                    e.message
                ),
            );
            e2.locked_keys = e.locked_keys;
            e2
        })?;
        let channel = jump_handle
            .channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                SshError::new(
                    SshProblem::Unreachable,
                    format!(
                        "{}: jump host {} could not open a connection to it: {}",
                        target.display(),
                        jump.display(),
                        describe_russh(&e)
                    ),
                )
            })?;
        let handle =
            connect_one(target, settings, passphrases, Some(channel.into_stream())).await?;
        jumps.push(jump_handle);
        Ok((handle, jumps))
    })
}

/// Handshake, host key check and authentication with one host, over TCP or over `stream`
/// (a channel through a jump host), within the connect timeout.
async fn connect_one(
    target: &Target,
    settings: &ClientSettings,
    passphrases: &Passphrases,
    stream: Option<russh::ChannelStream<client::Msg>>,
) -> Result<Handle<ClientHandler>, SshError> {
    let config = Arc::new(client::Config {
        preferred: preferred_for(target),
        keepalive_interval: settings.keepalive,
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let handler = ClientHandler {
        target: target.clone(),
        accept_new: settings.accept_new,
        home: settings.home.clone(),
    };
    let addr = (target.host.clone(), target.port);
    let connected = tokio::time::timeout(settings.connect_timeout, async {
        match stream {
            Some(s) => client::connect_stream(config, s, handler).await,
            None => client::connect(config, addr, handler).await,
        }
    })
    .await;
    let mut handle = match connected {
        Err(_) => {
            return Err(SshError::new(
                SshProblem::Unreachable,
                format!(
                    "{}: no answer within {} s",
                    target.display(),
                    settings.connect_timeout.as_secs()
                ),
            ));
        }
        Ok(Err(HandlerError::HostKey(e))) => return Err(e),
        Ok(Err(HandlerError::Ssh(e))) => {
            return Err(SshError::new(
                SshProblem::Unreachable,
                format!("{}: {}", target.display(), describe_russh(&e)),
            ));
        }
        Ok(Ok(h)) => h,
    };
    match tokio::time::timeout(
        settings.connect_timeout,
        authenticate(&mut handle, target, settings, passphrases),
    )
    .await
    {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SshError::new(
            SshProblem::Unreachable,
            format!(
                "{}: authentication did not finish within {} s",
                target.display(),
                settings.connect_timeout.as_secs()
            ),
        )),
    }
}

/// Offer the host key types already known for this host first (as OpenSSH does), so a host
/// recorded with only an RSA or ECDSA key is not refused for showing its ed25519 key.
fn preferred_for(target: &Target) -> russh::Preferred {
    let mut p = russh::Preferred::default();
    let known = known_hosts::known_algorithms(&target.host, target.port, &target.known_hosts);
    if known.is_empty() {
        return p;
    }
    let same = |a: &russh::keys::Algorithm, b: &russh::keys::Algorithm| {
        use russh::keys::Algorithm::Rsa;
        a == b || (matches!(a, Rsa { .. }) && matches!(b, Rsa { .. }))
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = p
        .key
        .iter()
        .cloned()
        .partition(|a| known.iter().any(|k| same(k, a)));
    first.extend(rest);
    p.key = std::borrow::Cow::Owned(first);
    p
}

fn describe_russh(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::HUP => "the connection was closed".into(),
        other => other.to_string(),
    }
}

async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    settings: &ClientSettings,
    passphrases: &Passphrases,
) -> Result<(), SshError> {
    let mut locked: Vec<PathBuf> = Vec::new();
    let user = target.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // 1. ssh-agent.
    let agent = match &settings.agent {
        AgentSource::Disabled => None,
        AgentSource::Socket(p) => match AgentClient::connect_uds(p).await {
            Ok(a) => Some(a.dynamic()),
            Err(e) => {
                notes.push(format!("ssh-agent at {}: {e}", p.display()));
                None
            }
        },
        AgentSource::Env => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(p) if !p.is_empty() => match AgentClient::connect_uds(&p).await {
                Ok(a) => Some(a.dynamic()),
                Err(e) => {
                    notes.push(format!("ssh-agent ($SSH_AUTH_SOCK): {e}"));
                    None
                }
            },
            _ => None,
        },
    };
    if let Some(mut agent) = agent {
        match agent.request_identities().await {
            Ok(ids) => {
                // Agent keys that belong to the configured identity files go first (a server
                // stops after MaxAuthTries); with IdentitiesOnly, only those are tried.
                let wanted: Vec<PublicKey> = target
                    .identity_files
                    .iter()
                    .filter_map(|p| {
                        let mut pub_path = p.clone().into_os_string();
                        pub_path.push(".pub");
                        russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
                    })
                    .collect();
                let is_wanted = |k: &PublicKey| wanted.iter().any(|w| w.key_data() == k.key_data());
                let mut keys: Vec<PublicKey> = ids
                    .into_iter()
                    .filter_map(|id| match id {
                        AgentIdentity::PublicKey { key, .. } => Some(key),
                        _ => None,
                    })
                    .filter(|k| !target.identities_only || is_wanted(k))
                    .collect();
                keys.sort_by_key(|k| !is_wanted(k));
                for key in keys {
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash(handle).await
                    } else {
                        None
                    };
                    let fp = known_hosts::fingerprint(&key);
                    match handle
                        .authenticate_publickey_with(user.clone(), key, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => tried.push(format!("agent key {fp}")),
                        Err(_) if handle.is_closed() => {
                            notes.push(closed_during_auth());
                            break;
                        }
                        Err(e) => notes.push(format!("agent key {fp}: {e}")),
                    }
                }
            }
            Err(e) => notes.push(format!("ssh-agent: cannot list keys: {e}")),
        }
    }

    // 2. Identity files.
    for path in &target.identity_files {
        if !path.is_file() {
            continue;
        }
        let pass = passphrases.lock().ok().and_then(|p| p.get(path).cloned());
        let key = match russh::keys::load_secret_key(path, pass.as_ref().map(|p| p.as_str())) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                notes.push(format!(
                    "{} is passphrase-protected: load it into ssh-agent first (ssh-add {}) or enter its passphrase",
                    path.display(),
                    path.display()
                ));
                locked.push(path.clone());
                continue;
            }
            Err(_) if pass.is_some() => {
                // Do not keep a passphrase that does not open the key.
                if let Ok(mut p) = passphrases.lock() {
                    p.remove(path);
                }
                notes.push(format!(
                    "cannot unlock {} with the passphrase given",
                    path.display()
                ));
                locked.push(path.clone());
                continue;
            }
            Err(e) => {
                notes.push(format!("cannot read key {}: {e}", path.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(handle).await
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(user.clone(), key).await {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => tried.push(path.display().to_string()),
            Err(_) if handle.is_closed() => {
                notes.push(closed_during_auth());
                break;
            }
            Err(e) => notes.push(format!("{}: {}", path.display(), describe_russh(&e))),
        }
    }

    let mut msg = format!("{} refused ", target.display());
    if tried.is_empty() {
        msg = format!(
            "{}: no usable key (no ssh-agent key, no readable identity file among {})",
            target.display(),
            target
                .identity_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        msg.push_str(&tried.join(", "));
    }
    if !notes.is_empty() {
        msg.push_str("; ");
        msg.push_str(&notes.join("; "));
    }
    let mut e = SshError::new(SshProblem::AuthFailed, msg);
    e.locked_keys = locked;
    Err(e)
}

fn closed_during_auth() -> String {
    "the server closed the connection during authentication (too many keys offered for its \
     MaxAuthTries? set IdentitiesOnly yes for this host in ~/.ssh/config)"
        .into()
}

async fn rsa_hash(h: &Handle<ClientHandler>) -> Option<russh::keys::HashAlg> {
    h.best_supported_rsa_hash().await.ok().flatten().flatten()
}
