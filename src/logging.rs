//! Logging via tracing to a file, never to the terminal (the TUI owns it).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use color_eyre::eyre::{Result, WrapErr};
use tracing_subscriber::EnvFilter;

/// The default log file: `$XDG_STATE_HOME/homeinfra-tui/homeinfra-tui.log`.
pub fn default_log_path() -> Option<PathBuf> {
    crate::paths::app_state_dir().map(|d| d.join("homeinfra-tui.log"))
}

/// Set up the global subscriber. An explicit `--log-file` that cannot be opened is an error;
/// a default log file that cannot be created only disables logging. `verbose`: 0 info,
/// 1 debug, 2+ trace.
pub fn init(log_file: Option<&std::path::Path>, verbose: u8) -> Result<()> {
    let (path, explicit) = match log_file {
        Some(p) => (Some(p.to_path_buf()), true),
        None => (default_log_path(), false),
    };
    let Some(path) = path else { return Ok(()) };
    let open = || -> std::io::Result<std::fs::File> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        // Ours alone: the log may name hosts, nodes and runs.
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&path)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if explicit => {
            return Err(e).wrap_err_with(|| format!("cannot open log file {}", path.display()));
        }
        Err(_) => return Ok(()),
    };
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("HOMEINFRA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,homeinfra_tui={level}")));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}
