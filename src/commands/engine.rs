//! The engine process (`homeinfra-tui upgrade` running a run), and its two neighbours:
//! `--detach` (start it in a session of its own and leave it) and `--attach RUN` (follow a
//! running one from another terminal).
//!
//! The engine outlives whoever started it: it survives SIGHUP and a closed or broken standard
//! output or error (it goes on, journaling, and logs its lines to its log file instead), and
//! serves the run's control socket (`operations::upgrade::process`) until the run ends. The
//! first SIGINT or SIGTERM aborts at the next safe point, the second stops at once.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio::signal::unix::{SignalKind, signal};

use crate::base::{Env, error_chain};
use crate::operations::upgrade::engine::{self, StartOptions};
use crate::operations::upgrade::process::{
    self, EngineCommand, Followed, Server, Started, spawn, wire,
};
use crate::operations::upgrade::text::{
    EXIT_FAILED, EXIT_OK, EXIT_REFUSED, exit_code, format_event, format_outcome,
};
use crate::operations::upgrade::world::World;
use crate::operations::upgrade::{Control, Plan, RunOutcome, Settings, Step, UpgradeEvent};
use crate::operations::upgrade::{journal, lock};

/// How long `--detach` waits for the engine to say its run started.
const START_WAIT: Duration = Duration::from_secs(120);

/// After the process the demo's simulated cluster lives in is gone, how long the run gets to
/// reach a safe point before the engine stops at once.
const ORPHAN_GRACE: Duration = Duration::from_secs(3);

/// Standard output and error that may go away (a closed pipe, a hung-up terminal): the run
/// goes on, and what it would have printed goes to the log file instead.
pub struct Out {
    json: bool,
    gone: bool,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self { json, gone: false }
    }

    fn write(&mut self, err: bool, text: &str) {
        if !self.gone {
            let ok = if err {
                let mut e = std::io::stderr().lock();
                writeln!(e, "{text}").and_then(|_| e.flush())
            } else {
                let mut o = std::io::stdout().lock();
                writeln!(o, "{text}").and_then(|_| o.flush())
            };
            match ok {
                Ok(()) => return,
                Err(e) => {
                    self.gone = true;
                    tracing::warn!(
                        "standard {} is gone ({e}): the run goes on; its lines go to this log",
                        if err { "error" } else { "output" }
                    );
                }
            }
        }
        tracing::info!("{text}");
    }

    /// A line on standard output.
    pub fn line(&mut self, text: &str) {
        self.write(false, text);
    }

    /// A line on standard error.
    pub fn note(&mut self, text: &str) {
        self.write(true, text);
    }

    /// One event, as text or a JSON line.
    pub fn event(&mut self, ev: &UpgradeEvent) {
        let text = if self.json {
            serde_json::to_string(ev).unwrap_or_default()
        } else {
            format_event(ev)
        };
        self.line(&text);
    }

    /// The terminal hung up: nothing more goes to it.
    pub fn hangup(&mut self) {
        if !self.gone {
            self.gone = true;
            tracing::warn!(
                "the terminal hung up (SIGHUP): the run goes on; its lines go to this log"
            );
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn is_gone(&self) -> bool {
        self.gone
    }
}

/// Ask a yes/no question on the terminal (default no; no terminal or no answer: no).
pub async fn confirm(question: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::stdout();
        if write!(out, "{question} [y/N] ")
            .and_then(|_| out.flush())
            .is_err()
        {
            return false;
        }
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        is_yes(&line)
    })
    .await
    .unwrap_or(false)
}

/// Only `y` or `yes` (any case, surrounding blanks ignored) is a yes; Enter alone is not.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// What the engine runs.
pub struct Run {
    pub env: Env,
    pub world: World,
    pub plan: Plan,
    pub resume: Option<(usize, Step)>,
    pub settings: Settings,
    pub journal_dir: PathBuf,
}

/// How it runs.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub json: bool,
    /// Approve reboot questions without asking.
    pub yes: bool,
    pub force_unlock: bool,
    pub wait_for_operator: bool,
    pub stop_with_pid: Option<u32>,
}

/// A refusal as the command prints it.
pub fn refuse(out: &mut Out, guard: &str, message: String) -> u8 {
    let o = RunOutcome::Refused {
        node: None,
        guard: guard.into(),
        message,
    };
    if out.json {
        out.line(
            &serde_json::to_string(&UpgradeEvent::RunFinished { outcome: o.clone() })
                .unwrap_or_default(),
        );
    } else {
        out.note(&format_outcome(&o));
    }
    EXIT_REFUSED
}

/// Resolves when process `pid` is gone (never without a pid).
async fn gone(pid: Option<u32>) {
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    loop {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Run the engine in this process: serve the run's socket, print its events, obey signals.
pub async fn run_engine(run: Run, flags: Flags) -> Result<u8> {
    let mut out = Out::new(flags.json);
    let Run {
        env,
        world,
        plan,
        resume,
        settings,
        journal_dir,
    } = run;
    let run_id = plan.run_id.clone();
    let mut server = match Server::bind(&journal_dir, &run_id).await {
        Ok(s) => s,
        Err(e) => return Ok(refuse(&mut out, "control-socket", error_chain(&e))),
    };
    let mut from_clients = server.take_controls();
    // Signals are ours before the run starts: a hangup never stops it.
    let mut hup = signal(SignalKind::hangup()).wrap_err("cannot watch SIGHUP")?;
    let mut int = signal(SignalKind::interrupt()).wrap_err("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).wrap_err("cannot watch SIGTERM")?;
    let opts = StartOptions {
        holder: lock::holder_identity(&run_id),
        force_unlock: flags.force_unlock,
        journal_dir: Some(journal_dir.clone()),
        interactive: flags.wait_for_operator,
        resume,
        first_seq: journal::next_seq(&journal::path_of(&journal_dir, &run_id)),
    };
    let (handle, mut events) =
        engine::start_sequenced(world, env.inventory.clone(), plan, settings, opts);
    out.note(&format!(
        "run {run_id}: engine pid {}, control socket {}; follow it from elsewhere: `homeinfra-tui upgrade --attach {run_id}`",
        std::process::id(),
        server.path().display()
    ));
    let mut interrupts = 0u8;
    let mut question: Option<tokio::task::JoinHandle<bool>> = None;
    let orphaned = gone(flags.stop_with_pid);
    tokio::pin!(orphaned);
    let mut orphan_deadline: Option<tokio::time::Instant> = None;
    let mut outcome = None;
    let stop_now = |out: &mut Out, why: &str| {
        out.note(&format!(
            "{why}: stopped at once; resume with `homeinfra-tui upgrade --resume {run_id}` or `--abandon {run_id}`"
        ));
    };
    loop {
        tokio::select! {
            rec = events.recv() => {
                let Some(rec) = rec else { break };
                server.publish(&rec);
                out.event(&rec.event);
                match &rec.event {
                    UpgradeEvent::Waiting { what, detail, .. }
                        if what == "confirm-reboot" && !flags.wait_for_operator =>
                    {
                        if flags.yes || out.is_gone() {
                            let c = if flags.yes { Control::Approve } else { Control::Decline };
                            handle.send(c).await;
                        } else {
                            question = Some(tokio::spawn(confirm(detail.clone())));
                        }
                    }
                    UpgradeEvent::RunFinished { outcome: o } => outcome = Some(o.clone()),
                    _ => {}
                }
            }
            Some(c) = async { match from_clients.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                out.note(&format!("control from an attached client: {}", wire::encode_control(&c)));
                handle.send(c).await;
            }
            yes = async { match question.as_mut() { Some(q) => q.await.unwrap_or(false), None => std::future::pending().await } } => {
                question = None;
                handle.send(if yes { Control::Approve } else { Control::Decline }).await;
            }
            _ = hup.recv() => out.hangup(),
            _ = async { tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} } } => {
                interrupts += 1;
                if interrupts == 1 {
                    out.note(&format!("interrupt: aborting at the next safe point (journal: run {run_id}); interrupt again to stop at once"));
                    handle.send(Control::Abort).await;
                } else {
                    stop_now(&mut out, "interrupted twice");
                    handle.kill();
                    server.close().await;
                    return Ok(EXIT_FAILED);
                }
            }
            () = &mut orphaned, if orphan_deadline.is_none() => {
                out.note(&format!(
                    "process {} (the demo, where the simulated cluster lives) is gone: aborting at the next step",
                    flags.stop_with_pid.unwrap_or_default()
                ));
                handle.send(Control::Abort).await;
                orphan_deadline = Some(tokio::time::Instant::now() + ORPHAN_GRACE);
            }
            () = async { match orphan_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                stop_now(&mut out, "the simulated cluster is gone");
                handle.kill();
                server.close().await;
                return Ok(EXIT_FAILED);
            }
        }
    }
    server.close().await;
    let outcome = match outcome {
        Some(o) => o,
        None => handle.wait().await,
    };
    Ok(exit_code(&outcome))
}

/// `--detach`: start `upgrade ARGS` (which runs the run) in a session of its own, wait until
/// its run started, say how to follow it, and leave it.
pub async fn detach(
    cmd: &EngineCommand,
    journal_dir: &Path,
    run_id: &str,
    args: Vec<OsString>,
    json: bool,
) -> Result<u8> {
    let mut out = Out::new(json);
    process::check_run_id(run_id)?;
    process::private_dir(journal_dir)?;
    let log = process::log_path(journal_dir, run_id);
    let base = journal::next_seq(&journal::path_of(journal_dir, run_id));
    let mut child = spawn::spawn_detached(cmd, &log, &args)?;
    let pid = child.id();
    let started =
        spawn::wait_started(&mut child, journal_dir, run_id, base, &log, START_WAIT).await;
    let socket = process::socket_path(journal_dir, run_id);
    let say_detached = |out: &mut Out, started: bool| {
        if out.json {
            out.line(
                &serde_json::json!({"detached": {
                    "run_id": run_id,
                    "pid": pid,
                    "socket": socket,
                    "log": log,
                    "started": started,
                }})
                .to_string(),
            );
        } else {
            out.line(&format!(
                "run {run_id} {} in the background: engine pid {pid}, log {}",
                if started { "runs" } else { "is starting" },
                log.display()
            ));
            out.line(&format!(
                "follow it: homeinfra-tui upgrade --attach {run_id}   (Ctrl-C there detaches; `--attach {run_id} --abort` stops it at the next safe point)"
            ));
        }
    };
    match started {
        Started::Running(_) => {
            say_detached(&mut out, true);
            Ok(EXIT_OK)
        }
        Started::Slow(_) => {
            say_detached(&mut out, false);
            Ok(EXIT_OK)
        }
        Started::Finished(_, o) => {
            if json {
                out.line(
                    &serde_json::to_string(&UpgradeEvent::RunFinished { outcome: o.clone() })
                        .unwrap_or_default(),
                );
            } else {
                out.note(&format_outcome(&o));
            }
            Ok(exit_code(&o))
        }
        Started::Exited { code, log_tail } => {
            let e = spawn::exited_error(code, &log_tail, &log);
            out.note(&format!("error: {}", error_chain(&e)));
            Ok(code
                .and_then(|c| u8::try_from(c).ok())
                .filter(|c| *c != 0)
                .unwrap_or(super::EXIT_ERROR))
        }
    }
}

/// `--attach RUN`: follow a run from its journal and its socket until it ends or Ctrl-C
/// (which detaches: the run goes on). Lines typed on stdin are controls.
pub async fn attach(
    journal_dir: &Path,
    run_id: &str,
    json: bool,
    abort: bool,
    read_only: bool,
) -> Result<u8> {
    let mut out = Out::new(json);
    process::check_run_id(run_id)?;
    if abort && read_only {
        return Ok(refuse(
            &mut out,
            "read-only",
            "read-only mode (--read-only): --attach only watches; no --abort".into(),
        ));
    }
    let mut f = match process::follow(journal_dir, run_id).await {
        Ok(f) => f,
        Err(_) => return not_running(&mut out, journal_dir, run_id),
    };
    let pid = f.hello.pid;
    out.note(&format!(
        "attached to run {run_id} (engine pid {pid}); Ctrl-C detaches, the run goes on{}",
        if read_only {
            " (read-only: watching only)"
        } else {
            "; type pause, resume, abort, retry, skip NODE, approve or decline to control it"
        }
    ));
    if abort {
        let _ = f.controls.send(Control::Abort).await;
    }
    let (line_tx, mut typed) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt as _;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if line_tx.send(l).await.is_err() {
                return;
            }
        }
    });
    let mut int = signal(SignalKind::interrupt()).wrap_err("cannot watch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).wrap_err("cannot watch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).wrap_err("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            e = f.events.recv() => match e {
                Some(Followed::Event(rec)) => {
                    out.event(&rec.event);
                    if let UpgradeEvent::RunFinished { outcome } = &rec.event {
                        return Ok(exit_code(outcome));
                    }
                }
                Some(Followed::Ack(c)) => out.note(&format!("the run took {}", wire::encode_control(&c))),
                Some(Followed::Refused(e)) => out.note(&format!("the run did not take that: {e}")),
                Some(Followed::Lost(m)) => {
                    out.note(&m);
                    return Ok(EXIT_FAILED);
                }
                None => {
                    out.note("the connection to the run ended");
                    return Ok(EXIT_FAILED);
                }
            },
            l = typed.recv(), if !typed.is_closed() => {
                let Some(l) = l else { continue };
                if l.trim().is_empty() {
                    continue;
                }
                if read_only {
                    out.note("read-only mode (--read-only): watching only, no controls");
                    continue;
                }
                match wire::parse_typed(&l) {
                    Ok(c) => {
                        let _ = f.controls.send(c).await;
                    }
                    Err(e) => out.note(&e),
                }
            }
            _ = async { tokio::select! { _ = int.recv() => {}, _ = term.recv() => {}, _ = hup.recv() => {} } } => {
                out.note(&format!(
                    "detached from run {run_id}: it goes on (engine pid {pid}); follow it again with `homeinfra-tui upgrade --attach {run_id}`"
                ));
                return Ok(EXIT_OK);
            }
        }
    }
}

/// What `--attach` says about a run whose engine does not answer.
fn not_running(out: &mut Out, journal_dir: &Path, run_id: &str) -> Result<u8> {
    let path = journal::path_of(journal_dir, run_id);
    if !path.exists() {
        return Err(eyre!(
            "no run {run_id}: no journal {} (runs are listed in {})",
            path.display(),
            journal_dir.display()
        ));
    }
    let sum = journal::summarize(&path)?;
    if let Some(o) = &sum.finished {
        out.note(&format!("run {run_id} is over: {}", format_outcome(o)));
        return Ok(exit_code(o));
    }
    let at = sum
        .interrupted
        .as_ref()
        .map(|(n, s)| format!(" at {n} {s}"))
        .unwrap_or_default();
    out.note(&format!(
        "run {run_id} is not running: its engine is gone, the run was interrupted{at}; resume it with `homeinfra-tui upgrade --resume {run_id}` or abandon it with `homeinfra-tui upgrade --abandon {run_id}`"
    ));
    Ok(EXIT_FAILED)
}

/// Is `stdin` a terminal (a question can be asked)?
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::is_yes;

    #[test]
    fn only_y_or_yes_confirms() {
        for yes in ["y", "Y", "yes", "YES", " yes \n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "ye", "yes please", "oui"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
