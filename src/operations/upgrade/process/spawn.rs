//! Starting the engine as its own process, detached: a new session (`setsid`), so no
//! controlling terminal and no hangup when the terminal or the SSH session that started it
//! goes; stdin from /dev/null; stdout and stderr appended to the run's log (0600). The process
//! that starts it waits until the run has started (or ended), then leaves it alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};

use super::client;
use super::wire::{Hello, ServerLine};
use crate::operations::upgrade::{RunOutcome, UpgradeEvent, journal};

/// How to run this program's `upgrade` again: the executable and the global flags
/// (`--config`, `--hosts`, `--kubeconfig`, `--context`, `-v`) of the process that starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineCommand {
    exe: PathBuf,
    global: Vec<OsString>,
    /// More `upgrade` flags every engine gets (the demo's `--stop-with-pid`).
    extra: Vec<OsString>,
}

impl EngineCommand {
    pub fn new(exe: PathBuf, global: Vec<OsString>) -> Self {
        Self {
            exe,
            global,
            extra: Vec::new(),
        }
    }

    /// This very program (`std::env::current_exe`; if that cannot be read, the name it was
    /// started by) with these global flags.
    pub fn this_program(global: Vec<OsString>) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|e| {
            tracing::warn!("cannot find this program's executable ({e}): engines start by name");
            std::env::args_os()
                .next()
                .map_or_else(|| PathBuf::from("homeinfra-tui"), PathBuf::from)
        });
        Self::new(exe, global)
    }

    /// Every engine started from here also gets these `upgrade` flags.
    pub fn with_upgrade_flags(mut self, flags: Vec<OsString>) -> Self {
        self.extra = flags;
        self
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The arguments of `exe GLOBAL upgrade ARGS`, after the executable.
    pub fn argv(&self, log_file: Option<&Path>, args: &[OsString]) -> Vec<OsString> {
        let mut v = self.global.clone();
        if let Some(l) = log_file {
            v.push("--log-file".into());
            v.push(l.as_os_str().to_os_string());
        }
        v.push("upgrade".into());
        v.extend(self.extra.iter().cloned());
        v.extend(args.iter().cloned());
        v
    }

    /// `exe GLOBAL upgrade ARGS`, stdin from /dev/null, for a child whose output is read.
    pub fn upgrade(&self, args: &[OsString]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.exe);
        c.args(self.argv(None, args)).stdin(Stdio::null());
        c
    }
}

/// Start `exe GLOBAL --log-file LOG upgrade ARGS` in a session of its own, its output appended
/// to `log` (created 0600).
pub fn spawn_detached(cmd: &EngineCommand, log: &Path, args: &[OsString]) -> Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let out = super::private_append(log)?;
    let err = out
        .try_clone()
        .wrap_err_with(|| format!("cannot open {} twice", log.display()))?;
    let mut c = std::process::Command::new(cmd.exe());
    c.args(cmd.argv(Some(log), args))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: between fork and exec the child only calls setsid, which is async-signal-safe
    // and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn()
        .wrap_err_with(|| format!("cannot start {}", cmd.exe().display()))
}

/// How a detached engine started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Its run started: it goes on on its own.
    Running(Hello),
    /// Its run ended already (refused, or nothing to do).
    Finished(Hello, RunOutcome),
    /// The process ended without serving its run: its exit status and the end of its log.
    Exited { code: Option<i32>, log_tail: String },
    /// It did not say within the wait that its run started (its hello, when it answered).
    Slow(Option<Hello>),
}

/// The last `n` lines of a file (for the message when an engine ended at once).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Wait until the engine `child` serves run `run_id` in `dir` and says the run started, it
/// ends, or `within` passes. `base`: the run's next sequence number before the engine started
/// ([`journal::next_seq`]; a resumed run's journal has an older start).
pub async fn wait_started(
    child: &mut Child,
    dir: &Path,
    run_id: &str,
    base: u64,
    log: &Path,
    within: Duration,
) -> Started {
    let socket = super::socket_path(dir, run_id);
    let deadline = tokio::time::Instant::now() + within;
    let mut hello = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Started::Exited {
                code: status.code(),
                log_tail: tail(log, 20),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Started::Slow(hello);
        }
        let Ok(mut conn) = client::connect(&socket).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let h = conn.hello.clone();
        hello = Some(h.clone());
        // What happened before this connection is in the journal.
        let journal = h.journal.clone();
        let before =
            tokio::task::spawn_blocking(move || journal::read(&journal).unwrap_or_default())
                .await
                .unwrap_or_default();
        let early = before
            .into_iter()
            .filter(|r| r.seq.is_some_and(|s| s >= base && s < h.next_seq))
            .find_map(|r| started(&h, r.event));
        if let Some(s) = early {
            return s;
        }
        let watch = async {
            loop {
                match conn.next().await {
                    Ok(Some(ServerLine::Event(r))) => {
                        if let Some(s) = started(&h, r.event) {
                            return Some(s);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return None,
                }
            }
        };
        match tokio::time::timeout_at(deadline, watch).await {
            Ok(Some(s)) => return s,
            // Closed without a word: the process is ending; look again.
            Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => return Started::Slow(hello),
        }
    }
}

/// The start (or the end) of the run, from one of its events.
fn started(h: &Hello, ev: UpgradeEvent) -> Option<Started> {
    match ev {
        UpgradeEvent::RunStarted { .. } => Some(Started::Running(h.clone())),
        UpgradeEvent::RunFinished { outcome } => Some(Started::Finished(h.clone(), outcome)),
        _ => None,
    }
}

/// The error for an engine that ended at once.
pub fn exited_error(code: Option<i32>, log_tail: &str, log: &Path) -> color_eyre::eyre::Report {
    eyre!(
        "the upgrade engine ended at once (exit status {}); the end of its log {}:\n{log_tail}",
        code.map_or_else(|| "none: killed".to_string(), |c| c.to_string()),
        log.display()
    )
}
