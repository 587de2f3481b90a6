//! The update mode: what `nix flake update` would change, without touching the user's
//! checkout (a local flake is updated in a temporary copy, a remote one built with a recreated
//! lock).

use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, WrapErr};
use tokio_util::sync::CancellationToken;

use super::build::build_toplevel;
use super::diff_paths;
use super::nix::{Nix, Reporter};
use crate::model::closure::ClosureDiff;

/// The result of the update mode.
#[derive(Debug, Clone)]
pub struct UpdateOutcome {
    pub diff: ClosureDiff,
    /// What `nix flake update` said it changed (its stderr), empty for remote flakes.
    pub lock_changes: Vec<String>,
}

/// A flake reference to a local directory, split so that the directory can be replaced:
/// `prefix + dir + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LocalFlake {
    prefix: String,
    dir: PathBuf,
    suffix: String,
}

/// A local flake reference split into its parts; `None` for remote ones (`github:...`).
fn local_flake(flake: &str) -> Option<LocalFlake> {
    let (prefix, rest) = if let Some(r) = flake.strip_prefix("git+file://") {
        ("git+file://", r)
    } else if let Some(r) = flake.strip_prefix("git+file:") {
        ("git+file:", r)
    } else if let Some(r) = flake.strip_prefix("path:") {
        ("path:", r)
    } else if flake.starts_with('/') || flake.starts_with('.') || flake.starts_with('~') {
        ("", flake)
    } else {
        return None;
    };
    let split = rest.find(['?', '#']).unwrap_or(rest.len());
    let (dir, suffix) = rest.split_at(split);
    let dir = match dir.strip_prefix("~/") {
        Some(r) => crate::paths::home()?.join(r),
        None => PathBuf::from(dir),
    };
    Some(LocalFlake {
        prefix: prefix.to_string(),
        dir,
        suffix: suffix.to_string(),
    })
}

/// What `nix flake update` would change, as the seed's `check.sh` does (build, update the
/// lock, build, diff) without touching the user's checkout:
///
/// 1. build with the current lock (`--no-write-lock-file`);
/// 2. a local flake is copied to a temporary directory (the whole git work tree, `.git`
///    included, when the flake is in one, so nix sees the same files), `nix flake update`
///    runs there, and the copy is built; a remote flake (`github:...`) has no checkout to
///    protect: it is built with `--recreate-lock-file --no-write-lock-file`;
/// 3. the two systems are diffed. The temporary copy is removed afterwards.
pub async fn update_diff(
    nix: &Nix,
    flake: &str,
    host: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<UpdateOutcome> {
    reporter
        .step(format!("building {host} with the current lock"))
        .await;
    let current = build_toplevel(nix, flake, host, &[], reporter, cancel).await?;

    let (updated, lock_changes) = match local_flake(flake) {
        Some(local) => {
            let dir = tokio::fs::canonicalize(&local.dir)
                .await
                .wrap_err_with(|| format!("flake directory {}", local.dir.display()))?;
            reporter
                .step(format!(
                    "copying {} to a temporary directory",
                    dir.display()
                ))
                .await;
            let (tmp, copied_flake_dir) = tokio::task::spawn_blocking(move || copy_flake(&dir))
                .await
                .wrap_err("copying the flake")??;
            let copy_ref = format!(
                "{}{}{}",
                local.prefix,
                copied_flake_dir.display(),
                local.suffix
            );
            reporter.step("nix flake update (in the copy)").await;
            // Run in the copy with no flake argument: Nix 2.8 takes the flake as a positional
            // argument, Nix >= 2.19 takes input names there (and the flake as `--flake`).
            let in_copy = Nix {
                cwd: Some(copied_flake_dir.clone()),
                ..nix.clone()
            };
            let update = in_copy
                .run_full(["flake", "update"], reporter, cancel)
                .await?;
            let lock_changes = update.stderr_tail;
            reporter
                .step(format!("building {host} with the updated lock"))
                .await;
            let updated = build_toplevel(nix, &copy_ref, host, &[], reporter, cancel).await;
            drop(tmp);
            (updated?, lock_changes)
        }
        None => {
            reporter
                .step(format!("building {host} with all inputs updated"))
                .await;
            let updated = build_toplevel(
                nix,
                flake,
                host,
                &["--recreate-lock-file"],
                reporter,
                cancel,
            )
            .await?;
            (updated, Vec::new())
        }
    };
    let diff = diff_paths(nix, &current, &updated, reporter, cancel).await?;
    Ok(UpdateOutcome { diff, lock_changes })
}

/// Copy a flake directory (or the git work tree around it) into a new temporary directory;
/// returns the directory guard and the flake's directory inside the copy.
fn copy_flake(flake_dir: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let root = flake_dir
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(flake_dir);
    let relative = flake_dir
        .strip_prefix(root)
        .wrap_err("flake directory outside its git work tree")?;
    let tmp = tempfile::Builder::new()
        .prefix("homeinfra-tui-update-")
        .tempdir()
        .wrap_err("cannot create a temporary directory")?;
    let copy_root = tmp.path().join("flake");
    copy_tree(root, &copy_root)?;
    let inside = copy_root.join(relative);
    Ok((tmp, inside))
}

/// Recursive copy that keeps symlinks as symlinks and file permissions.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).wrap_err_with(|| format!("creating {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).wrap_err_with(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let entry = entry.wrap_err_with(|| format!("reading {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .wrap_err_with(|| format!("reading {}", src.display()))?;
        if kind.is_symlink() {
            let target =
                std::fs::read_link(&src).wrap_err_with(|| format!("reading {}", src.display()))?;
            std::os::unix::fs::symlink(&target, &dst)
                .wrap_err_with(|| format!("creating {}", dst.display()))?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)
                .wrap_err_with(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
        // Sockets, fifos and devices are not part of a flake: skipped.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_flake_refs() {
        let l = local_flake("git+file:///src/infra?dir=sub").unwrap();
        assert_eq!(
            (l.prefix.as_str(), l.dir.as_path(), l.suffix.as_str()),
            ("git+file://", Path::new("/src/infra"), "?dir=sub")
        );
        let l = local_flake("path:/x").unwrap();
        assert_eq!(
            (l.prefix.as_str(), l.dir.as_path()),
            ("path:", Path::new("/x"))
        );
        assert_eq!(local_flake("./infra").unwrap().dir, Path::new("./infra"));
        assert!(local_flake("github:me/infra").is_none());
        assert!(local_flake("git+https://example.org/infra").is_none());
    }

    #[test]
    fn copy_keeps_symlinks_and_git_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/flake.nix"), "{}").unwrap();
        std::os::unix::fs::symlink("/nix/store/x", root.join("result")).unwrap();
        let (tmp, inside) = copy_flake(&root.join("sub")).unwrap();
        assert!(inside.ends_with("flake/sub"));
        assert_eq!(
            std::fs::read_to_string(inside.join("flake.nix")).unwrap(),
            "{}"
        );
        let copy_root = tmp.path().join("flake");
        assert!(copy_root.join(".git").is_dir());
        assert_eq!(
            std::fs::read_link(copy_root.join("result")).unwrap(),
            Path::new("/nix/store/x")
        );
    }
}
