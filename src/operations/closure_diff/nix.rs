//! Running `nix` as child processes: output streamed as progress, cancellation that kills the
//! whole process group, nix's own error text on failure.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, eyre};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::parse::strip_ansi;

/// Progress of a running diff, rendered live by the diff view and printed by the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// A step began ("building the target system").
    Step { elapsed: Duration, message: String },
    /// A line nix printed on stderr (build logs, warnings), without colour codes.
    Output { elapsed: Duration, line: String },
}

impl Progress {
    pub fn elapsed(&self) -> Duration {
        match self {
            Progress::Step { elapsed, .. } | Progress::Output { elapsed, .. } => *elapsed,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed().as_secs_f64();
        match self {
            Progress::Step { message, .. } => write!(f, "[{secs:6.1}s] {message}"),
            Progress::Output { line, .. } => write!(f, "[{secs:6.1}s]   {line}"),
        }
    }
}

/// Where progress goes (or nowhere), with the clock of the whole operation.
#[derive(Debug, Clone)]
pub struct Reporter {
    start: Instant,
    tx: Option<mpsc::Sender<Progress>>,
}

impl Reporter {
    pub fn new(tx: mpsc::Sender<Progress>) -> Self {
        Self {
            start: Instant::now(),
            tx: Some(tx),
        }
    }

    /// Progress is dropped.
    pub fn silent() -> Self {
        Self {
            start: Instant::now(),
            tx: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    async fn send(&self, p: Progress) {
        if let Some(tx) = &self.tx {
            // A receiver that went away (view closed) is not an error for the operation.
            let _ = tx.send(p).await;
        }
    }

    pub async fn step(&self, message: impl Into<String>) {
        self.send(Progress::Step {
            elapsed: self.elapsed(),
            message: message.into(),
        })
        .await;
    }

    pub async fn output(&self, line: impl Into<String>) {
        self.send(Progress::Output {
            elapsed: self.elapsed(),
            line: line.into(),
        })
        .await;
    }
}

/// The operation was cancelled (Esc, Ctrl-C); nix's process group was killed.
/// Find it with `report.downcast_ref::<Cancelled>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// How long a cancelled process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr kept for the error message of a failed command.
const STDERR_TAIL: usize = 60;

/// How to run nix.
#[derive(Debug, Clone)]
pub struct Nix {
    /// The `nix` binary.
    pub program: PathBuf,
    /// Extra environment (`NIX_CONF_DIR`, `NIX_SSHOPTS`, ...).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory of every command (default: inherited).
    pub cwd: Option<PathBuf>,
    /// Pass `--offline` (no substituters, no fetching of flake inputs).
    pub offline: bool,
}

impl Nix {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            env: Vec::new(),
            cwd: None,
            offline: false,
        }
    }

    pub fn from_config(config: &crate::config::NixConfig) -> Self {
        Self::new(&config.nix)
    }

    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run `nix <args>`: stderr streams to `reporter` line by line, stdout is returned.
    /// Fails with nix's error text when it exits non-zero, with [`Cancelled`] when `cancel`
    /// fires (after killing nix's whole process group).
    pub async fn run<I, S>(
        &self,
        args: I,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Ok(self.run_full(args, reporter, cancel).await?.stdout)
    }

    /// As [`Nix::run`], also returning the last lines nix printed on stderr.
    pub async fn run_full<I, S>(
        &self,
        args: I,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        // Flakes and the nix command work even where nix.conf does not enable them.
        let mut argv: Vec<OsString> = vec![
            "--extra-experimental-features".into(),
            "nix-command flakes".into(),
        ];
        if self.offline {
            argv.push("--offline".into());
        }
        argv.extend(args.into_iter().map(Into::into));
        let shown = format!(
            "nix {}",
            argv[2..]
                .iter()
                .filter(|a| *a != "--offline")
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run_program(self, &argv, &shown, reporter, cancel).await
    }
}

/// What a successful command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    /// The last lines of stderr (at most 60), without colour codes.
    pub stderr_tail: Vec<String>,
}

/// Spawn `nix.program argv` (any program: `ssh` too) in its own process group and supervise
/// it; `shown` names the command in errors.
pub(crate) async fn run_program(
    nix: &Nix,
    argv: &[OsString],
    shown: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Output> {
    if cancel.is_cancelled() {
        return Err(Cancelled.into());
    }
    let program = &nix.program;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(argv)
        .envs(nix.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &nix.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .wrap_err_with(|| format!("cannot run `{}`", program.display()))?;
    let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));

    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| eyre!("no stdout pipe for `{shown}`"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| eyre!("no stderr pipe for `{shown}`"))?;
    let stdout_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).await.map(|_| buf)
    });
    let stderr_task = {
        let reporter = reporter.clone();
        tokio::spawn(async move {
            let mut tail = std::collections::VecDeque::with_capacity(STDERR_TAIL);
            let mut lines = BufReader::new(stderr).split(b'\n');
            while let Ok(Some(raw)) = lines.next_segment().await {
                let text = String::from_utf8_lossy(&raw);
                let line = strip_ansi(text.trim_end_matches('\r')).into_owned();
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
                reporter.output(line).await;
            }
            tail
        })
    };

    let status = tokio::select! {
        status = child.wait() => status.wrap_err_with(|| format!("waiting for `{shown}`"))?,
        () = cancel.cancelled() => {
            group.terminate(&mut child).await;
            stdout_task.abort();
            stderr_task.abort();
            return Err(Cancelled.into());
        }
    };
    group.finished();
    let out = stdout_task
        .await
        .wrap_err("stdout reader failed")?
        .wrap_err_with(|| format!("reading the output of `{shown}`"))?;
    let tail = stderr_task.await.wrap_err("stderr reader failed")?;
    if !status.success() {
        return Err(eyre!(
            "`{shown}` failed ({status}):\n{}",
            error_text(tail.iter().map(String::as_str))
        ));
    }
    let stdout =
        String::from_utf8(out).wrap_err_with(|| format!("`{shown}` printed invalid UTF-8"))?;
    Ok(Output {
        stdout,
        stderr_tail: tail.into(),
    })
}

/// Build log lines kept before nix's error (with `-L`, nix does not repeat them in it).
const LOG_BEFORE_ERROR: usize = 10;

/// nix's error text: from its first `error:` line on, with the build log lines just before
/// it (`drv> ...`); else the last lines it printed.
pub fn error_text<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let lines: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let start = match lines
        .iter()
        .position(|l| l.trim_start().starts_with("error"))
    {
        Some(e) => {
            let log = lines[..e]
                .iter()
                .rev()
                .take(LOG_BEFORE_ERROR)
                .take_while(|l| is_build_log(l))
                .count();
            e - log
        }
        None => lines.len().saturating_sub(20),
    };
    let text = lines[start..].join("\n");
    if text.is_empty() {
        "(nix printed nothing on stderr)".into()
    } else {
        text
    }
}

/// `name> text`: a line of a builder's log as `nix build -L` prints it.
fn is_build_log(line: &str) -> bool {
    line.split_once("> ")
        .is_some_and(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace))
}

/// The child's process group (`process_group(0)`: nix and whatever it forks in it, e.g. ssh).
///
/// nix runs each builder in a session of its own and stops them when it gets SIGTERM, so a
/// cancel sends SIGTERM to the group first and SIGKILL only after [`KILL_GRACE`]. Dropped
/// while nix still runs (the future was dropped without a cancel), it does the same from a
/// short-lived thread.
struct GroupGuard(Option<i32>);

fn signal_group(pgid: i32, sig: libc::c_int) {
    // SAFETY: killpg only sends a signal; the group id is the one created for our child
    // (`process_group(0)`), so no unrelated process is hit.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

impl GroupGuard {
    /// SIGTERM the group, wait a little for the child, then SIGKILL what is left.
    async fn terminate(&mut self, child: &mut tokio::process::Child) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
            {
                signal_group(pgid, libc::SIGKILL);
                let _ = child.wait().await;
            }
        }
        self.finished();
    }

    /// The child has exited: anything it left in its group goes too.
    fn finished(&mut self) {
        if let Some(pgid) = self.0.take() {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            signal_group(pgid, libc::SIGTERM);
            std::thread::spawn(move || {
                std::thread::sleep(KILL_GRACE);
                signal_group(pgid, libc::SIGKILL);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_sh(
        script: &str,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<String> {
        // A stand-in for nix; `Nix::run` would prepend nix's own flags.
        let nix = Nix::new("/bin/sh");
        let argv: Vec<OsString> = vec!["-c".into(), script.into()];
        Ok(run_program(&nix, &argv, script, reporter, cancel)
            .await?
            .stdout)
    }

    #[tokio::test]
    async fn streams_stderr_and_returns_stdout() {
        let (tx, mut rx) = mpsc::channel(16);
        let reporter = Reporter::new(tx);
        let out = run_sh(
            "echo one >&2; printf '\\033[31mtwo\\033[0m\\n' >&2; echo result",
            &reporter,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out, "result\n");
        drop(reporter);
        let mut lines = Vec::new();
        while let Some(p) = rx.recv().await {
            if let Progress::Output { line, .. } = p {
                lines.push(line);
            }
        }
        assert_eq!(lines, ["one", "two"]);
    }

    #[tokio::test]
    async fn failure_carries_nix_error_text() {
        let err = run_sh(
            "echo 'building foo' >&2; echo 'error: builder for foo failed' >&2; \
             echo '       last 1 log lines:' >&2; exit 1",
            &Reporter::silent(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        let msg = format!("{err}");
        let (command, text) = msg.split_once('\n').unwrap();
        assert!(command.ends_with("failed (exit status: 1):"), "{msg}");
        assert_eq!(
            text,
            "error: builder for foo failed\n       last 1 log lines:"
        );
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!(
            "sleep 300 & echo $! > {}; echo started >&2; wait",
            pidfile.display()
        );
        let cancel = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(16);
        let reporter = Reporter::new(tx);
        let task = {
            let cancel = cancel.clone();
            tokio::spawn(async move { run_sh(&script, &reporter, &cancel).await })
        };
        // Wait for the grandchild to exist, then cancel.
        let first = rx.recv().await.unwrap();
        assert!(matches!(first, Progress::Output { ref line, .. } if line == "started"));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        cancel.cancel();
        let err = task.await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<Cancelled>().is_some());
        assert!(
            gone(pid).await,
            "grandchild {pid} still running after cancel"
        );
    }

    /// Whether `pid` is gone (or a zombie: PID 1 here does not reap orphans).
    async fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if stat.is_empty() || state == Some('Z') {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_group_too() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!(
            "sleep 300 & echo $! > {}; echo started >&2; wait",
            pidfile.display()
        );
        let (tx, mut rx) = mpsc::channel(16);
        let reporter = Reporter::new(tx);
        let task =
            tokio::spawn(
                async move { run_sh(&script, &reporter, &CancellationToken::new()).await },
            );
        assert!(rx.recv().await.is_some());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        task.abort();
        let _ = task.await;
        assert!(gone(pid).await, "grandchild {pid} still running after drop");
    }

    #[test]
    fn error_text_keeps_the_build_log_before_the_error() {
        let lines = [
            "building '/nix/store/x.drv'...",
            "x> compiling",
            "x> oops: broken",
            "error: builder for '/nix/store/x.drv' failed with exit code 3",
        ];
        assert_eq!(
            error_text(lines.into_iter()),
            "x> compiling\nx> oops: broken\nerror: builder for '/nix/store/x.drv' failed with exit code 3"
        );
    }

    #[test]
    fn error_text_falls_back_to_the_tail() {
        assert_eq!(error_text(["a", "b"].into_iter()), "a\nb");
        assert_eq!(
            error_text(std::iter::empty()),
            "(nix printed nothing on stderr)"
        );
    }

    #[test]
    fn progress_displays_elapsed() {
        let p = Progress::Step {
            elapsed: Duration::from_millis(2345),
            message: "building".into(),
        };
        assert_eq!(p.to_string(), "[   2.3s] building");
    }
}
