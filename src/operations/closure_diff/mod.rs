//! Closure diffs: what switching a host to another system closure changes, and whether it
//! needs a reboot.
//!
//! - [`diff_paths`]: two store paths → `nix store diff-closures` → [`parse`] → [`classify`]
//!   (with the boot links of both systems and their `nix path-info -S` closure sizes).
//! - [`update_diff`]: what `nix flake update` would change (the seed's `check.sh`), without
//!   touching the user's checkout.
//! - [`drift_diff`]: the deployed system vs. what the flake builds now.
//!
//! nix runs as child processes ([`nix::Nix`]); progress streams on a channel
//! ([`nix::Reporter`]); a [`CancellationToken`] kills nix's process group.
//!
//! From the TUI (a task per diff; Esc = `cancel.cancel()`):
//!
//! ```text
//! let (tx, rx) = tokio::sync::mpsc::channel(256);        // rx → diff view, live
//! let nix = Nix::from_config(&config.nix);
//! let deployed = facts.current_system;                   // from the SSH host facts
//! let source = NixCopyFromSsh { target: SshTarget::for_host(&host, &config.ssh) };
//! let diff = drift_diff(&nix, &deployed, &source, &flake, &host.id,
//!                       &Reporter::new(tx), &cancel).await?;   // model::closure::ClosureDiff
//! // or: update_diff(&nix, &flake, &host.id, ...).await?.diff
//! // e: render::to_text(&diff, false); badge: diff.badge(); upgrade: diff.reboot.required
//! ```

pub mod classify;
pub mod nix;
pub mod parse;
pub mod render;

use std::path::{Path, PathBuf};
use std::pin::Pin;

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio_util::sync::CancellationToken;

pub use self::nix::{Cancelled, Nix, Progress, Reporter};
use crate::model::closure::{BootLink, ClosureDiff};

/// Diff two system closures that are in the local store.
pub async fn diff_paths(
    nix: &Nix,
    old: &str,
    new: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    let old = resolve_store_path(old).await?;
    let new = resolve_store_path(new).await?;
    reporter
        .step(format!("nix store diff-closures {old} {new}"))
        .await;
    let output = nix
        .run(["store", "diff-closures", &old, &new], reporter, cancel)
        .await?;
    let parsed = parse::parse(&output);
    let boot_links = read_boot_links(Path::new(&old), Path::new(&new)).await;
    reporter.step("nix path-info -S (closure sizes)").await;
    let sizes = closure_sizes(nix, &[&old, &new], reporter, cancel).await?;
    let size_of = |p: &str| sizes.iter().find(|(path, _)| path == p).map(|(_, s)| *s);
    let ctx = classify::Context {
        old_closure_size: size_of(&old),
        new_closure_size: size_of(&new),
        old_path: old,
        new_path: new,
        boot_links: Some(boot_links),
    };
    Ok(classify::classify(parsed, ctx))
}

/// `/run/current-system`, `./result` → the store path it points to. A missing path is an
/// error that names it.
async fn resolve_store_path(path: &str) -> Result<String> {
    let real = tokio::fs::canonicalize(path)
        .await
        .wrap_err_with(|| format!("system path `{path}` is not in the local store"))?;
    real.into_os_string()
        .into_string()
        .map_err(|p| eyre!("system path {p:?} is not valid UTF-8"))
}

/// The `kernel`, `initrd` and `kernel-modules` links of both systems (full target paths).
pub async fn read_boot_links(old: &Path, new: &Path) -> Vec<BootLink> {
    let mut links = Vec::new();
    for name in classify::BOOT_LINKS {
        let target = |system: &Path| {
            let link = system.join(name);
            async move {
                tokio::fs::read_link(&link)
                    .await
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned())
            }
        };
        links.push(BootLink {
            name: name.to_string(),
            old: target(old).await,
            new: target(new).await,
        });
    }
    links
}

/// `nix path-info -S --json PATHS` → (path, closure size). Nix 2.8 prints an array of
/// objects with `path`, newer Nix an object keyed by path.
pub async fn closure_sizes(
    nix: &Nix,
    paths: &[&str],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Vec<(String, u64)>> {
    let mut args = vec!["path-info", "-S", "--json"];
    args.extend_from_slice(paths);
    let out = nix.run(args, reporter, cancel).await?;
    parse_path_info(&out)
}

fn parse_path_info(json: &str) -> Result<Vec<(String, u64)>> {
    let value: serde_json::Value =
        serde_json::from_str(json).wrap_err("`nix path-info --json` printed invalid JSON")?;
    let size = |v: &serde_json::Value| v.get("closureSize").and_then(|s| s.as_u64());
    let mut out = Vec::new();
    match &value {
        serde_json::Value::Array(items) => {
            for item in items {
                if let (Some(path), Some(s)) =
                    (item.get("path").and_then(|p| p.as_str()), size(item))
                {
                    out.push((path.to_string(), s));
                }
            }
        }
        serde_json::Value::Object(map) => {
            for (path, item) in map {
                if let Some(s) = size(item) {
                    out.push((path.clone(), s));
                }
            }
        }
        _ => {
            return Err(eyre!(
                "`nix path-info --json` printed neither a list nor an object"
            ));
        }
    }
    Ok(out)
}

/// The installable of a host's system: `<flake>#nixosConfigurations.<host>.config.system.build.toplevel`.
pub fn toplevel_installable(flake: &str, host: &str) -> String {
    let simple = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let attr = if simple {
        host.to_string()
    } else {
        format!("\"{}\"", host.replace('\\', "\\\\").replace('"', "\\\""))
    };
    format!("{flake}#nixosConfigurations.{attr}.config.system.build.toplevel")
}

/// Build a host's system from `flake` with its lock as it is (never writing the lock file);
/// returns the store path. `extra` goes before the installable (e.g. `--recreate-lock-file`).
pub async fn build_toplevel(
    nix: &Nix,
    flake: &str,
    host: &str,
    extra: &[&str],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    let installable = toplevel_installable(flake, host);
    let mut args = vec![
        "build",
        "--no-link",
        "--json",
        "--no-write-lock-file",
        "--print-build-logs",
    ];
    args.extend_from_slice(extra);
    args.push(&installable);
    let out = nix.run(args, reporter, cancel).await?;
    parse_build_json(&out).wrap_err_with(|| format!("building {installable}"))
}

/// `nix build --json` → the `out` path of the first result. (`--print-out-paths` needs
/// Nix ≥ 2.9.)
fn parse_build_json(json: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(json).wrap_err("`nix build --json` printed invalid JSON")?;
    value
        .get(0)
        .and_then(|r| r.get("outputs"))
        .and_then(|o| o.get("out"))
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .ok_or_else(|| eyre!("`nix build --json` printed no output path: {json}"))
}

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

/// Gets a deployed system's closure into the local store, so that it can be diffed here.
///
/// Drift mode fetches the deployed closure (`nix copy --from ssh://HOST`) rather than running
/// the diff on the host. Why: `nix copy --from` reads the host's store through
/// `nix-store --serve`, which any SSH user may run and which writes nothing on the host;
/// diffing on the host instead would mean copying the (unsigned, locally built) target
/// closure *to* the host, which needs a trusted nix user there, fills the host's disk, and
/// relies on the host's nix version for the output format and `nix-command`. Usually only the
/// paths that drifted have to be transferred; everything else is already in the local store.
/// The lead connects the SSH client by implementing this trait (or uses [`NixCopyFromSsh`]).
pub trait ClosureSource: Send + Sync {
    /// For progress messages: "node1 (ssh://operator@node1)".
    fn describe(&self) -> String;

    /// Make `store_path` and its closure valid in the local store.
    fn fetch<'a>(
        &'a self,
        nix: &'a Nix,
        store_path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

/// The deployed closure is already local (e.g. when running on the host itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalStore;

impl ClosureSource for LocalStore {
    fn describe(&self) -> String {
        "the local store".into()
    }

    fn fetch<'a>(
        &'a self,
        _nix: &'a Nix,
        store_path: &'a str,
        _reporter: &'a Reporter,
        _cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if Path::new(store_path).exists() {
                Ok(())
            } else {
                Err(eyre!("{store_path} is not in the local store"))
            }
        })
    }
}

/// How to reach a host with OpenSSH (nix copy runs `ssh` itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

impl SshTarget {
    /// From the inventory and the `[ssh]` config.
    pub fn for_host(host: &crate::inventory::Host, config: &crate::config::SshConfig) -> Self {
        Self {
            host: host.ssh_host.clone().unwrap_or_else(|| host.ip.to_string()),
            user: host.ssh_user.clone().or_else(|| config.user.clone()),
            port: host.ssh_port.or(Some(config.port)),
            identity_files: config.identity_files.clone(),
            known_hosts: config.known_hosts.clone(),
        }
    }

    /// `ssh://user@host` for `nix copy --from`.
    pub fn store_uri(&self) -> String {
        match &self.user {
            Some(u) => format!("ssh://{u}@{}", self.host),
            None => format!("ssh://{}", self.host),
        }
    }

    /// OpenSSH options (also for `NIX_SSHOPTS`): port, keys, known hosts, no prompts.
    pub fn ssh_options(&self) -> Vec<String> {
        let mut o = vec!["-o".to_string(), "BatchMode=yes".to_string()];
        if let Some(p) = self.port {
            o.extend(["-p".into(), p.to_string()]);
        }
        for id in &self.identity_files {
            o.extend(["-i".into(), id.display().to_string()]);
        }
        if let Some(k) = &self.known_hosts {
            o.extend(["-o".into(), format!("UserKnownHostsFile={}", k.display())]);
        }
        o
    }

    fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// `nix copy --from ssh://HOST --no-check-sigs PATH`. Signatures are not checked because a
/// NixOS host's system is built locally and unsigned; the copy is only read (diffed), never
/// run.
#[derive(Debug, Clone)]
pub struct NixCopyFromSsh {
    pub target: SshTarget,
}

impl ClosureSource for NixCopyFromSsh {
    fn describe(&self) -> String {
        self.target.store_uri()
    }

    fn fetch<'a>(
        &'a self,
        nix: &'a Nix,
        store_path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let nix = nix
                .clone()
                .with_env("NIX_SSHOPTS", self.target.ssh_options().join(" "));
            let uri = self.target.store_uri();
            nix.run(
                [
                    "copy",
                    "--from",
                    uri.as_str(),
                    "--no-check-sigs",
                    store_path,
                ],
                reporter,
                cancel,
            )
            .await
            .map(|_| ())
            .wrap_err_with(|| format!("fetching the deployed closure from {uri}"))
        })
    }
}

/// The deployed system of a host over OpenSSH: `readlink -f /run/current-system`.
/// (The dashboard gets it from its own SSH client; this is for the headless command.)
pub async fn deployed_system_via_ssh(
    target: &SshTarget,
    link: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    let mut argv: Vec<std::ffi::OsString> =
        target.ssh_options().into_iter().map(Into::into).collect();
    argv.extend([
        "-o".into(),
        "ConnectTimeout=10".into(),
        target.destination().into(),
        "--".into(),
        "readlink".into(),
        "-f".into(),
        link.into(),
    ]);
    let ssh = Nix::new("ssh");
    let shown = format!("ssh {} readlink -f {link}", target.destination());
    let out = nix::run_program(&ssh, &argv, &shown, reporter, cancel).await?;
    let path = out.stdout.trim();
    if !path.starts_with("/nix/store/") {
        return Err(eyre!(
            "{link} on {} is not a store path: {path:?}",
            target.host
        ));
    }
    Ok(path.to_string())
}

/// Drift: the deployed system (`deployed`, e.g. the host's `/run/current-system`) vs. what
/// `flake` builds for `host` now. The deployed closure is fetched through `source` when it is
/// not in the local store.
pub async fn drift_diff(
    nix: &Nix,
    deployed: &str,
    source: &dyn ClosureSource,
    flake: &str,
    host: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    // A store path that exists is valid, and so is its closure (nix registers a path only
    // after its references). `nix path-info` would try to substitute a missing path instead.
    let present = tokio::fs::symlink_metadata(deployed).await.is_ok();
    if !present {
        reporter
            .step(format!(
                "fetching the deployed system {deployed} from {}",
                source.describe()
            ))
            .await;
        source.fetch(nix, deployed, reporter, cancel).await?;
    }
    reporter
        .step(format!("building the target system of {host}"))
        .await;
    let target = build_toplevel(nix, flake, host, &[], reporter, cancel).await?;
    diff_paths(nix, deployed, &target, reporter, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installables() {
        assert_eq!(
            toplevel_installable("/src/infra", "node1"),
            "/src/infra#nixosConfigurations.node1.config.system.build.toplevel"
        );
        assert_eq!(
            toplevel_installable(".", "a.b"),
            ".#nixosConfigurations.\"a.b\".config.system.build.toplevel"
        );
    }

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
    fn path_info_both_formats() {
        let old = r#"[{"path":"/nix/store/a","narSize":1,"closureSize":96},{"path":"/nix/store/b","closureSize":7}]"#;
        assert_eq!(
            parse_path_info(old).unwrap(),
            [
                ("/nix/store/a".to_string(), 96),
                ("/nix/store/b".to_string(), 7)
            ]
        );
        let new = r#"{"/nix/store/a":{"closureSize":5}}"#;
        assert_eq!(
            parse_path_info(new).unwrap(),
            [("/nix/store/a".to_string(), 5)]
        );
        assert!(parse_path_info("oops").is_err());
    }

    #[test]
    fn build_json() {
        let j = r#"[{"drvPath":"/nix/store/x.drv","outputs":{"out":"/nix/store/y"}}]"#;
        assert_eq!(parse_build_json(j).unwrap(), "/nix/store/y");
        assert!(parse_build_json("[]").is_err());
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

    #[test]
    fn ssh_target_options() {
        let t = SshTarget {
            host: "127.0.0.1".into(),
            user: Some("operator".into()),
            port: Some(2222),
            identity_files: vec!["/k".into()],
            known_hosts: Some("/kh".into()),
        };
        assert_eq!(t.store_uri(), "ssh://operator@127.0.0.1");
        assert_eq!(
            t.ssh_options().join(" "),
            "-o BatchMode=yes -p 2222 -i /k -o UserKnownHostsFile=/kh"
        );
    }
}
