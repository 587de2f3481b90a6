//! The drift mode: the deployed system of a host vs. what the flake builds now, the deployed
//! closure fetched into the local store (over SSH with `nix copy --from`) when it is not there.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio_util::sync::CancellationToken;

use super::build::build_toplevel;
use super::diff_paths;
use super::nix::{self, Nix, Reporter};
use crate::model::closure::ClosureDiff;

/// Gets a deployed system's closure into the local store, so that it can be diffed here.
///
/// Drift mode fetches the deployed closure (`nix copy --from ssh://HOST`) rather than running
/// the diff on the host. Why: `nix copy --from` reads the host's store through
/// `nix-store --serve`, which any SSH user may run and which writes nothing on the host;
/// diffing on the host instead would mean copying the (unsigned, locally built) target
/// closure *to* the host, which needs a trusted nix user there, fills the host's disk, and
/// relies on the host's nix version for the output format and `nix-command`. Usually only the
/// paths that drifted have to be transferred; everything else is already in the local store.
/// [`super::NixClosures`] uses [`NixCopyFromSsh`]; the simulator's store needs no fetch.
pub trait FetchClosure: Send + Sync {
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

impl FetchClosure for LocalStore {
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

    /// `user@host` for `ssh`.
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

impl FetchClosure for NixCopyFromSsh {
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
    source: &dyn FetchClosure,
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
