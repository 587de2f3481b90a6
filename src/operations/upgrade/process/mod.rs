//! The engine as its own process, and how others follow it (STYLE rule 13: the dashboard
//! starts and attaches to a run, it never owns its lifetime).
//!
//! The engine process is `homeinfra-tui upgrade` — in the foreground of a terminal, or
//! detached from it (`--detach`: a new session without a controlling terminal, output to the
//! run's log). Either way it journals every event (see [`journal`](super::journal)) and serves
//! a control socket for its run, `<journal_dir>/<run-id>.sock` (mode 0600 in a 0700
//! directory, removed when the run ends):
//! - [`wire`]: the protocol, line-delimited JSON — a hello, then every event with its
//!   sequence number (command output too, which the journal omits); controls the other way;
//! - [`server`]: the engine's side;
//! - [`client`]: connecting, and following a run — its journal first, then the socket, each
//!   event once by sequence number;
//! - [`spawn`]: starting the engine detached and waiting until its run has started;
//! - [`plan_file`]: the confirmed plan handed to the engine (`--plan FILE`);
//! - [`find`]: the runs in a journal directory that are unfinished, and whether their engine
//!   still answers (a live run to attach to) or not (an interrupted run to resume or abandon).

pub mod client;
pub mod find;
pub mod plan_file;
pub mod server;
pub mod spawn;
pub mod wire;

use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, eyre};

pub use client::{Follow, Followed, follow, probe};
pub use find::{FoundRun, find};
pub use plan_file::{load_plan, write_plan};
pub use server::Server;
pub use spawn::{EngineCommand, Started};
pub use wire::{Hello, ServerLine};

/// The control socket of a run.
pub fn socket_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.sock"))
}

/// The log of a detached engine (its standard output and error, and its tracing log).
pub fn log_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.log"))
}

/// The confirmed plan handed to an engine (`upgrade --plan FILE`).
pub fn plan_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.plan.json"))
}

/// A run id names files: letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && !run_id.starts_with('.')
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(eyre!(
            "`{run_id}` is not a run id (letters, digits, `-`, `_`, `.`; see `ls` of the journal directory)"
        ))
    }
}

/// Create the journal directory if needed and keep it private (0700): the sockets, journals
/// and logs in it are the operator's alone.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    std::fs::create_dir_all(dir)
        .map_err(|e| eyre!("cannot create the journal directory {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir)
        .map_err(|e| eyre!("cannot read the journal directory {}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            eyre!(
                "cannot make the journal directory {} private (0700): {e}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// Create (or open for appending) a private file (0600).
pub fn private_append(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| eyre!("cannot open {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_files_only() {
        assert!(check_run_id("20261201-120000-abcd").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x;rm", "é"] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_journal_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("runs");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let f = dir.join("x.log");
        drop(private_append(&f).unwrap());
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
