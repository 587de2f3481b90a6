//! Where closure data comes from: a [`ClosureSource`] evaluates and builds a host's system
//! from the flake, makes a deployed system readable, and hands over the raw material of a diff
//! — `nix store diff-closures` text, the boot links of both systems, `nix path-info -S --json`
//! text. The parser and the classifier here turn that into a [`ClosureDiff`] whatever the
//! source: [`NixClosures`] runs nix on this machine (a real cluster), the simulator's store
//! ([`super::SimClosures`]) answers for a simulated homelab, with text in the same formats.
//!
//! [`source_for`] picks one from `[nix] closure_source` (the simulator writes `"sim"` into
//! the config it generates; nothing is guessed).

use std::path::Path;
use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::build::{build_toplevel, toplevel_installable};
use super::drift::{FetchClosure, NixCopyFromSsh, SshTarget};
use super::nix::{Nix, Reporter};
use super::store::{parse_path_info, read_boot_links, resolve_store_path};
use super::{classify, parse};
use crate::config::{ClosureSourceKind, NixConfig, SshConfig};
use crate::inventory::Host;
use crate::model::closure::{BootLink, ClosureDiff};

/// What a diff is computed from, in nix's own formats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawDiff {
    /// The real store paths of both systems.
    pub old: String,
    pub new: String,
    /// What `nix store diff-closures OLD NEW` printed (colour codes and all).
    pub diff_closures: String,
    /// The `kernel`, `initrd` and `kernel-modules` links of both; `None`: not readable.
    pub boot_links: Option<Vec<BootLink>>,
    /// What `nix path-info -S --json OLD NEW` printed.
    pub path_info: String,
}

/// Parse and classify a raw diff (the same code for every source).
pub fn classify_raw(raw: RawDiff) -> Result<ClosureDiff> {
    let parsed = parse::parse(&raw.diff_closures);
    let sizes = parse_path_info(&raw.path_info)?;
    let size_of = |p: &str| sizes.iter().find(|(path, _)| path == p).map(|(_, s)| *s);
    let ctx = classify::Context {
        old_closure_size: size_of(&raw.old),
        new_closure_size: size_of(&raw.new),
        old_path: raw.old,
        new_path: raw.new,
        boot_links: raw.boot_links,
    };
    Ok(classify::classify(parsed, ctx))
}

/// Where the flake's systems and the closures of deployed systems come from.
pub trait ClosureSource: Send + Sync {
    /// For progress and error messages ("nix here", "the simulator's store").
    fn describe(&self) -> String;

    /// A fingerprint of the flake's lock: evaluations are cached under it. `None` when it
    /// cannot be known (a remote flake).
    fn lock_fingerprint(&self) -> BoxFuture<'_, Option<String>>;

    /// The out path of `host`'s `system.build.toplevel` with the flake's lock, evaluated
    /// without building anything.
    fn eval_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>>;

    /// Build `host`'s system with the flake's lock (never writing the lock file): the store
    /// path `nixos-rebuild switch` would activate.
    fn build_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>>;

    /// Make a host's deployed system (and its closure) readable here.
    fn fetch_deployed<'a>(
        &'a self,
        host: &'a Host,
        path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<()>>;

    /// The raw material of the diff between two systems.
    fn raw_diff<'a>(
        &'a self,
        old: &'a str,
        new: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<RawDiff>>;
}

/// The diff between two systems the source can read.
pub async fn diff_with(
    source: &dyn ClosureSource,
    old: &str,
    new: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    let raw = source.raw_diff(old, new, reporter, cancel).await?;
    classify_raw(raw)
}

/// What switching `host` from its deployed system to what the flake builds now changes: the
/// deployed closure made readable, the target built, both diffed.
pub async fn drift_with(
    source: &dyn ClosureSource,
    host: &Host,
    deployed: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    source
        .fetch_deployed(host, deployed, reporter, cancel)
        .await?;
    reporter
        .step(format!("building the target system of {}", host.id))
        .await;
    let target = source.build_toplevel(&host.id, reporter, cancel).await?;
    diff_with(source, deployed, &target, reporter, cancel).await
}

/// The source `[nix] closure_source` names: nix here, or the simulator's store.
pub fn source_for(
    nix: &NixConfig,
    ssh: &SshConfig,
    offline: bool,
) -> Result<Arc<dyn ClosureSource>> {
    match nix.closure_source {
        ClosureSourceKind::Nix => {
            let mut n = Nix::from_config(nix);
            n.offline = offline;
            Ok(Arc::new(NixClosures {
                nix: n,
                flake: nix.flake.clone(),
                ssh: ssh.clone(),
                trust_host_store: nix.trust_host_store,
            }))
        }
        ClosureSourceKind::Sim => Ok(Arc::new(super::SimClosures::from_config(nix)?)),
    }
}

/// Real nix on this machine: the flake built and evaluated here, deployed closures fetched
/// from their hosts with `nix copy --from ssh://` when they are not in the local store.
#[derive(Debug, Clone)]
pub struct NixClosures {
    pub nix: Nix,
    /// `[nix] flake` (`None`: only diffs of paths already here).
    pub flake: Option<String>,
    pub ssh: SshConfig,
    /// `[nix] trust_host_store`: fetch deployed closures without checking their signatures.
    pub trust_host_store: bool,
}

impl NixClosures {
    fn flake(&self) -> Result<&str> {
        self.flake.as_deref().ok_or_else(|| {
            eyre!(
                "no flake configured: set `flake = \"...\"` in the [nix] section of the config file"
            )
        })
    }
}

/// `nix eval --raw` of a host's toplevel out path (no build).
async fn eval_out_path(
    nix: &Nix,
    flake: &str,
    host: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    let installable = format!("{}.outPath", toplevel_installable(flake, host));
    let out = nix
        .run(
            [
                "eval",
                "--raw",
                "--no-write-lock-file",
                installable.as_str(),
            ],
            reporter,
            cancel,
        )
        .await
        .wrap_err_with(|| format!("evaluating {installable}"))?;
    let path = out.trim();
    if !path.starts_with("/nix/store/") {
        return Err(eyre!("{installable} is not a store path: {path:?}"));
    }
    Ok(path.to_string())
}

impl ClosureSource for NixClosures {
    fn describe(&self) -> String {
        format!("nix here ({})", self.nix.program.display())
    }

    fn lock_fingerprint(&self) -> BoxFuture<'_, Option<String>> {
        let flake = self.flake.clone();
        Box::pin(async move {
            let flake = flake?;
            tokio::task::spawn_blocking(move || lock_fingerprint(&flake))
                .await
                .ok()
                .flatten()
        })
    }

    fn eval_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(
            async move { eval_out_path(&self.nix, self.flake()?, host, reporter, cancel).await },
        )
    }

    fn build_toplevel<'a>(
        &'a self,
        host: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            build_toplevel(&self.nix, self.flake()?, host, &[], reporter, cancel).await
        })
    }

    fn fetch_deployed<'a>(
        &'a self,
        host: &'a Host,
        path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A store path that exists is valid, and so is its closure (nix registers a path
            // only after its references).
            if tokio::fs::symlink_metadata(path).await.is_ok() {
                return Ok(());
            }
            let source = NixCopyFromSsh {
                target: SshTarget::for_host(host, &self.ssh).map_err(|e| eyre!("{e}"))?,
                trust_host_store: self.trust_host_store,
            };
            reporter
                .step(format!(
                    "fetching the deployed system {path} from {}",
                    source.describe()
                ))
                .await;
            source.fetch(&self.nix, path, reporter, cancel).await
        })
    }

    fn raw_diff<'a>(
        &'a self,
        old: &'a str,
        new: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<RawDiff>> {
        Box::pin(async move {
            let old = resolve_store_path(old).await?;
            let new = resolve_store_path(new).await?;
            reporter
                .step(format!("nix store diff-closures {old} {new}"))
                .await;
            let diff_closures = self
                .nix
                .run(["store", "diff-closures", &old, &new], reporter, cancel)
                .await?;
            let boot_links = Some(read_boot_links(Path::new(&old), Path::new(&new)).await);
            reporter.step("nix path-info -S (closure sizes)").await;
            let path_info = self
                .nix
                .run(["path-info", "-S", "--json", &old, &new], reporter, cancel)
                .await?;
            Ok(RawDiff {
                old,
                new,
                diff_closures,
                boot_links,
                path_info,
            })
        })
    }
}

/// A fingerprint of a local flake's `flake.lock` (the cache key of diffs and evaluations);
/// `None` for remote flakes or without a lock file. Reads a file: call it off the event loop.
pub fn lock_fingerprint(flake: &str) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let path = flake
        .strip_prefix("path:")
        .or_else(|| flake.strip_prefix("git+file://"))
        .or_else(|| flake.strip_prefix("git+file:"))
        .unwrap_or(flake);
    if !(path.starts_with('/') || path.starts_with('.') || path.starts_with('~')) {
        return None;
    }
    let dir = Path::new(path.split(['?', '#']).next().unwrap_or(path));
    let text = std::fs::read(dir.join("flake.lock")).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Some(format!("{:016x}", h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_diffs_classify_like_local_ones() {
        let raw = RawDiff {
            old: "/nix/store/a-old".into(),
            new: "/nix/store/b-new".into(),
            diff_closures: "k3s: 1.30.2 → 1.31.0, \x1b[32;1m-97.7 KiB\x1b[0m\n".into(),
            boot_links: None,
            path_info: r#"[{"path":"/nix/store/a-old","closureSize":10},{"path":"/nix/store/b-new","closureSize":15}]"#.into(),
        };
        let d = classify_raw(raw).unwrap();
        assert_eq!(d.sections.service_restarts[0].name, "k3s");
        assert_eq!(d.totals.closure_size_delta, Some(5));
        let bad = RawDiff {
            path_info: "oops".into(),
            ..Default::default()
        };
        assert!(classify_raw(bad).is_err());
    }

    #[test]
    fn fingerprints_only_local_locks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flake.lock"), "{}").unwrap();
        let f = format!("path:{}", dir.path().display());
        let a = lock_fingerprint(&f).unwrap();
        assert_eq!(
            lock_fingerprint(&dir.path().display().to_string()),
            Some(a.clone())
        );
        std::fs::write(dir.path().join("flake.lock"), "{\"x\":1}").unwrap();
        assert_ne!(lock_fingerprint(&f), Some(a));
        assert_eq!(lock_fingerprint("github:homelab/infra"), None);
    }
}
