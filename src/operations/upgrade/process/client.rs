//! Connecting to a run's control socket, and following a run: every event of its journal,
//! then the live ones from the socket, each exactly once and in order (by sequence number),
//! with controls going the other way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::wire::{self, Hello, ServerLine};
use crate::operations::upgrade::journal::{self, Record};
use crate::operations::upgrade::{Control, UpgradeEvent};

/// How long connecting and the hello may take.
const CONNECT: Duration = Duration::from_secs(3);

/// A connection to a run's engine, greeted.
pub struct Connection {
    pub hello: Hello,
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

/// Connect to the socket at `path` and read its hello.
pub async fn connect(path: &Path) -> Result<Connection> {
    let greet = async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| eyre!("cannot connect to {}: {e}", path.display()))?;
        let (r, write) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|e| eyre!("{}: {e}", path.display()))?
            .ok_or_else(|| eyre!("{}: closed before its hello", path.display()))?;
        match ServerLine::decode(&first) {
            Ok(ServerLine::Hello(hello)) => Ok(Connection {
                hello,
                lines,
                write,
            }),
            Ok(other) => Err(eyre!("{}: said {other:?} before its hello", path.display())),
            Err(e) => Err(eyre!("{}: {e}", path.display())),
        }
    };
    tokio::time::timeout(CONNECT, greet)
        .await
        .map_err(|_| eyre!("{}: no hello within {CONNECT:?}", path.display()))?
}

impl Connection {
    /// The next line from the server; `None` when it closed the connection.
    pub async fn next(&mut self) -> Result<Option<ServerLine>> {
        loop {
            let Some(line) = self
                .lines
                .next_line()
                .await
                .map_err(|e| eyre!("the control socket: {e}"))?
            else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            return ServerLine::decode(&line)
                .map(Some)
                .map_err(|e| eyre!("the control socket: {e}"));
        }
    }

    /// Send a control to the run.
    pub async fn send(&mut self, c: &Control) -> Result<()> {
        let mut line = wire::encode_control(c);
        line.push('\n');
        self.write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| eyre!("cannot send {c:?} to the run: {e}"))
    }
}

/// Whether the engine of `run_id` answers on its socket in `dir`: its hello, or `None`.
pub async fn probe(dir: &Path, run_id: &str) -> Option<Hello> {
    let path = super::socket_path(dir, run_id);
    if !path.exists() {
        return None;
    }
    connect(&path).await.ok().map(|c| c.hello)
}

/// What a follower reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The next event of the run (from the journal or live).
    Event(Record),
    /// The run took this control.
    Ack(Control),
    /// The engine did not take a line (a control it could not read, or it is busy).
    Refused(String),
    /// The engine went away before its run finished: the run is interrupted.
    Lost(String),
}

/// A run being followed. Dropping it stops following; it never stops the run.
pub struct Follow {
    pub hello: Hello,
    pub events: mpsc::Receiver<Followed>,
    pub controls: mpsc::Sender<Control>,
}

/// Attach to run `run_id` in `dir`: its journal so far, then its socket. Fails when its
/// engine does not answer (the run is finished or interrupted: see its journal).
pub async fn follow(dir: &Path, run_id: &str) -> Result<Follow> {
    super::check_run_id(run_id)?;
    let path = super::socket_path(dir, run_id);
    let conn = connect(&path).await.map_err(|e| {
        eyre!("run {run_id} has no engine answering ({e:#}): it is finished or interrupted")
    })?;
    let hello = conn.hello.clone();
    let (etx, erx) = mpsc::channel(1024);
    let (ctx, crx) = mpsc::channel(64);
    tokio::spawn(follow_loop(path, conn, etx, crx));
    Ok(Follow {
        hello,
        events: erx,
        controls: ctx,
    })
}

/// The journal's records, from a blocking thread.
async fn read_journal(path: PathBuf) -> Vec<Record> {
    tokio::task::spawn_blocking(move || journal::read(&path).unwrap_or_default())
        .await
        .unwrap_or_default()
}

async fn follow_loop(
    socket: PathBuf,
    mut conn: Connection,
    tx: mpsc::Sender<Followed>,
    mut controls: mpsc::Receiver<Control>,
) {
    // The highest sequence number passed on; records without one come first, once.
    let mut last: u64 = 0;
    let mut first = true;
    loop {
        let hello = conn.hello.clone();
        for rec in read_journal(hello.journal.clone()).await {
            let keep = match rec.seq {
                None => first,
                Some(s) => s > last && s < hello.next_seq,
            };
            if !keep {
                continue;
            }
            last = last.max(rec.seq.unwrap_or(0));
            let done = matches!(rec.event, UpgradeEvent::RunFinished { .. });
            if tx.send(Followed::Event(rec)).await.is_err() {
                return;
            }
            if done {
                return;
            }
        }
        first = false;
        // Live, until the server closes.
        let mut lagged = false;
        let mut controls_open = true;
        loop {
            tokio::select! {
                l = conn.next() => match l {
                    Ok(Some(ServerLine::Event(rec))) => {
                        let Some(seq) = rec.seq else { continue };
                        if seq <= last {
                            continue;
                        }
                        last = seq;
                        let done = matches!(rec.event, UpgradeEvent::RunFinished { .. });
                        if tx.send(Followed::Event(rec)).await.is_err() || done {
                            return;
                        }
                    }
                    Ok(Some(ServerLine::Ack(c))) => {
                        if tx.send(Followed::Ack(c)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(ServerLine::Error(e))) => {
                        if tx.send(Followed::Refused(e)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(ServerLine::Lagged(_))) => {
                        lagged = true;
                        break;
                    }
                    Ok(Some(ServerLine::Hello(_))) => {}
                    Ok(None) | Err(_) => break,
                },
                c = controls.recv(), if controls_open => match c {
                    Some(c) => {
                        if let Err(e) = conn.send(&c).await
                            && tx.send(Followed::Refused(format!("{e:#}"))).await.is_err()
                        {
                            return;
                        }
                    }
                    None => controls_open = false,
                },
                () = tx.closed() => return,
            }
        }
        if lagged && let Ok(c) = connect(&socket).await {
            conn = c;
            continue;
        }
        // The engine closed without a last event on the socket: its journal may still have it.
        let pid = conn.hello.pid;
        let run_id = conn.hello.run_id.clone();
        let mut finished = false;
        for rec in read_journal(conn.hello.journal.clone()).await {
            if rec.seq.is_some_and(|s| s > last) {
                last = rec.seq.unwrap_or(last);
                finished |= matches!(rec.event, UpgradeEvent::RunFinished { .. });
                if tx.send(Followed::Event(rec)).await.is_err() {
                    return;
                }
            }
        }
        if !finished {
            let _ = tx
                .send(Followed::Lost(format!(
                    "the engine of run {run_id} (pid {pid}) went away before the run finished: resume it with `homeinfra-tui upgrade --resume {run_id}` or abandon it with `homeinfra-tui upgrade --abandon {run_id}`"
                )))
                .await;
        }
        return;
    }
}
