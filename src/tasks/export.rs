//! A host's closure diff written as plain text under `$XDG_STATE_HOME/homeinfra-tui/diffs/`
//! (0600, like every file we create).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::closure::ClosureDiff;

/// Write the file under `state_dir` (the app's state directory, `None` without a home);
/// `Ok` is its path, `Err` says what went wrong (for the footer).
pub(super) fn write(
    state_dir: Option<&Path>,
    host: &str,
    diff: &ClosureDiff,
    stamp: &str,
) -> Result<PathBuf, String> {
    let dir = state_dir
        .map(|d| d.join("diffs"))
        .ok_or_else(|| "cannot export: no home directory".to_string())?;
    let path = dir.join(format!("{host}-{stamp}.txt"));
    let text = format!(
        "host: {host}\n{}",
        crate::operations::closure_diff::render::to_text(diff, false)
    );
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(text.as_bytes())
    });
    match written {
        Ok(()) => Ok(path),
        Err(e) => Err(format!("cannot export to {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_text_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = ClosureDiff {
            old_path: "/nix/store/a".into(),
            new_path: "/nix/store/b".into(),
            ..Default::default()
        };
        let path = write(Some(dir.path()), "instance_1", &d, "20240101-000000").unwrap();
        assert_eq!(
            path,
            dir.path().join("diffs/instance_1-20240101-000000.txt")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("host: instance_1\nold: /nix/store/a\n"),
            "{text}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            write(None, "instance_1", &d, "x").unwrap_err(),
            "cannot export: no home directory"
        );
    }
}
