//! The engine's side of the control socket: bind `<journal_dir>/<run-id>.sock` (0600),
//! greet each client, stream every published event to every client, pass their controls to
//! the engine, and remove the socket when the run ends.
//!
//! A hub numbers nothing itself: events come numbered from the engine
//! ([`start_sequenced`](crate::operations::upgrade::engine::start_sequenced)). Subscribing and
//! publishing hold one lock, so a client's hello says exactly which number its stream starts
//! at, and everything before it is already in the journal (the engine journals before it
//! publishes).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Hello, ServerLine};
use crate::operations::upgrade::Control;
use crate::operations::upgrade::journal::{self, Record};

/// Events a client may fall behind before it is dropped (it reads the journal and reconnects).
const BACKLOG: usize = 8192;

/// How long a finished run's clients get to read their last lines.
const DRAIN: Duration = Duration::from_secs(2);

/// A run's control socket, serving.
pub struct Server {
    path: PathBuf,
    hub: Arc<Hub>,
    stop: CancellationToken,
    accept: Option<tokio::task::JoinHandle<JoinSet<()>>>,
    controls: Option<mpsc::Receiver<Control>>,
}

struct Hub {
    run_id: String,
    journal: PathBuf,
    pid: u32,
    state: Mutex<HubState>,
}

struct HubState {
    next_seq: u64,
    tx: Option<broadcast::Sender<Arc<str>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new client's hello and its stream, atomically with respect to `publish`.
    fn subscribe(&self) -> (Hello, Option<broadcast::Receiver<Arc<str>>>) {
        let st = self.lock();
        let hello = Hello {
            run_id: self.run_id.clone(),
            pid: self.pid,
            next_seq: st.next_seq,
            journal: self.journal.clone(),
            version: wire::VERSION,
        };
        (hello, st.tx.as_ref().map(|t| t.subscribe()))
    }
}

impl Server {
    /// Bind the socket of `run_id` in `dir` (made private, 0700) and start accepting. Refuses
    /// when an engine already answers there; a socket file left by a dead engine is replaced.
    pub async fn bind(dir: &Path, run_id: &str) -> Result<Server> {
        super::check_run_id(run_id)?;
        super::private_dir(dir)?;
        let path = super::socket_path(dir, run_id);
        if path.exists() {
            match UnixStream::connect(&path).await {
                Ok(_) => {
                    return Err(eyre!(
                        "run {run_id} is already running: its engine answers on {}; follow it with `homeinfra-tui upgrade --attach {run_id}`",
                        path.display()
                    ));
                }
                Err(_) => {
                    // Nobody listens: an engine killed without cleaning up.
                    std::fs::remove_file(&path).map_err(|e| {
                        eyre!("cannot remove the stale socket {}: {e}", path.display())
                    })?;
                }
            }
        }
        let listener = UnixListener::bind(&path).map_err(|e| {
            eyre!(
                "cannot serve the control socket {}: {e}{}",
                path.display(),
                if path.as_os_str().len() > 100 {
                    " (the path is too long for a socket: set a shorter [upgrade] journal_dir)"
                } else {
                    ""
                }
            )
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            eyre!(
                "cannot make the control socket {} private: {e}",
                path.display()
            )
        })?;
        let journal_path = journal::path_of(dir, run_id);
        let (tx, _) = broadcast::channel(BACKLOG);
        let hub = Arc::new(Hub {
            run_id: run_id.to_string(),
            journal: journal_path.clone(),
            pid: std::process::id(),
            state: Mutex::new(HubState {
                next_seq: journal::next_seq(&journal_path),
                tx: Some(tx),
            }),
        });
        let stop = CancellationToken::new();
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        let accept = tokio::spawn(accept_loop(listener, hub.clone(), ctl_tx, stop.clone()));
        Ok(Server {
            path,
            hub,
            stop,
            accept: Some(accept),
            controls: Some(ctl_rx),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The controls clients send, for the engine (once).
    pub fn take_controls(&mut self) -> Option<mpsc::Receiver<Control>> {
        self.controls.take()
    }

    /// Send an event (numbered by the engine) to every client.
    pub fn publish(&self, rec: &Record) {
        let line: Arc<str> = ServerLine::Event(rec.clone()).encode().into();
        let mut st = self.hub.lock();
        if let Some(seq) = rec.seq {
            st.next_seq = st.next_seq.max(seq + 1);
        }
        if let Some(tx) = &st.tx {
            // No receiver is not an error: nobody is attached.
            let _ = tx.send(line);
        }
    }

    /// The run is over: stop accepting, let the clients read what was published (a moment at
    /// most), close them and remove the socket.
    pub async fn close(mut self) {
        self.hub.lock().tx = None;
        self.stop.cancel();
        if let Some(accept) = self.accept.take()
            && let Ok(mut clients) = accept.await
        {
            let drained = tokio::time::timeout(DRAIN, async {
                while clients.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                clients.abort_all();
            }
        }
        self.remove();
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        self.remove();
    }
}

async fn accept_loop(
    listener: UnixListener,
    hub: Arc<Hub>,
    controls: mpsc::Sender<Control>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let mut clients = JoinSet::new();
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            () = stop.cancelled() => break,
        };
        // Reap the clients that left.
        while clients.try_join_next().is_some() {}
        match conn {
            Ok((stream, _)) => {
                if !same_user(&stream) {
                    tracing::warn!("control socket: refused a client of another user");
                    continue;
                }
                clients.spawn(client(stream, hub.clone(), controls.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    clients
}

/// Only our own user (or root) may connect; the socket's mode says so too.
fn same_user(s: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    s.peer_cred()
        .map(|c| c.uid() == me || c.uid() == 0)
        .unwrap_or(false)
}

async fn client(stream: UnixStream, hub: Arc<Hub>, controls: mpsc::Sender<Control>) {
    let (r, mut w) = stream.into_split();
    let (hello, rx) = hub.subscribe();
    let out = |l: ServerLine| {
        let mut s = l.encode();
        s.push('\n');
        s
    };
    if w.write_all(out(ServerLine::Hello(hello)).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let Some(mut rx) = rx else { return };
    let mut lines = BufReader::new(r).lines();
    let mut reading = true;
    loop {
        tokio::select! {
            m = rx.recv() => {
                let line = match m {
                    Ok(line) => format!("{line}\n"),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = w.write_all(out(ServerLine::Lagged(n)).as_bytes()).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if w.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            l = lines.next_line(), if reading => {
                let reply = match l {
                    Ok(Some(l)) if l.trim().is_empty() => continue,
                    Ok(Some(l)) => match wire::decode_control(&l) {
                        Ok(c) => match controls.try_send(c.clone()) {
                            Ok(()) => ServerLine::Ack(c),
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                ServerLine::Error("the run is busy: send it again".into())
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                ServerLine::Error("the run is ending: it takes no more controls".into())
                            }
                        },
                        Err(e) => ServerLine::Error(e),
                    },
                    // The client closed its side (or broke): it may still read.
                    Ok(None) | Err(_) => {
                        reading = false;
                        continue;
                    }
                };
                if w.write_all(out(reply).as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}
