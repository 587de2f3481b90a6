//! The pool: one connection per host id, opened on first use and reused (a channel per
//! command), reconnecting with exponential backoff after failures; the per-host connection
//! state for the Hosts pane; the bound on commands running at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use russh::client::Handle;
use tokio::sync::{Mutex, Semaphore, mpsc};
use zeroize::Zeroizing;

use super::connect::{ClientHandler, connect};
use super::{ClientSettings, CommandOutput, ConnState, ExitInfo, OutputChunk, SshError};
use crate::sources::ssh::ssh_config::Target;

/// Many hosts, one connection each, bounded concurrency.
pub struct SshPool {
    pub(super) settings: Arc<ClientSettings>,
    hosts: StdMutex<HashMap<String, Arc<HostConn>>>,
    pub(super) limit: Arc<Semaphore>,
    pub(super) passphrases: Passphrases,
}

/// Passphrases of identity files, given once by the user; kept in memory only, wiped on drop.
pub(super) type Passphrases = Arc<StdMutex<HashMap<PathBuf, Zeroizing<String>>>>;

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

    /// Close the connection of one host id (the next command logs in anew).
    pub async fn disconnect(&self, id: &str) {
        let conn = self.hosts.lock().ok().and_then(|h| h.get(id).cloned());
        if let Some(c) = conn {
            let mut s = c.session.lock().await;
            if let Some(sess) = s.take() {
                sess.bye().await;
            }
        }
    }

    /// Close the connection of one host id unless a command runs on it (the next command
    /// logs in anew): for a source that reads seldom and would rather not keep it open.
    pub async fn close_if_idle(&self, id: &str) {
        let conn = self.hosts.lock().ok().and_then(|h| h.get(id).cloned());
        if let Some(c) = conn {
            let mut s = c.session.lock().await;
            // A command counts itself busy before it asks for the session (under this lock).
            if c.busy.load(Ordering::SeqCst) == 0
                && let Some(sess) = s.take()
            {
                if let Ok(mut f) = c.failures.lock() {
                    f.connected = false;
                }
                sess.bye().await;
            }
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
                sess.bye().await;
            }
        }
    }

    pub(super) fn conn(&self, target: &Target) -> Arc<HostConn> {
        let mut hosts = match self.hosts.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        hosts
            .entry(target.id.clone())
            .or_insert_with(|| Arc::new(HostConn::default()))
            .clone()
    }
}

/// A live session with the target it was opened for.
struct Session {
    pub(super) handle: Arc<Handle<ClientHandler>>,
    target: Target,
    /// Jump host sessions the connection runs through (kept alive with it).
    _jumps: Vec<Handle<ClientHandler>>,
}

impl Session {
    /// Tell the server the connection ends (its task and buffers go when it has).
    async fn bye(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await;
    }
}

#[derive(Default)]
pub(super) struct HostConn {
    session: Mutex<Option<Session>>,
    failures: StdMutex<Failures>,
    /// Commands running on (or about to ask for) the session.
    busy: AtomicUsize,
}

/// A command's claim on its host's connection, while it runs ([`HostConn::claim`]).
pub(super) struct Busy(Arc<HostConn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
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
    /// Count a command as running until the claim is dropped: [`SshPool::close_if_idle`]
    /// leaves the connection open meanwhile.
    pub(super) fn claim(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

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

    pub(super) async fn session(
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

    pub(super) async fn drop_session(&self, handle: &Arc<Handle<ClientHandler>>) {
        let mut guard = self.session.lock().await;
        if guard
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.handle, handle))
        {
            *guard = None;
        }
    }

    /// Forget the current session if it is closed (a dead connection is not reused).
    pub(super) async fn drop_current(&self) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.handle.is_closed()) {
            *guard = None;
            if let Ok(mut f) = self.failures.lock() {
                f.connected = false;
            }
        }
    }
}
