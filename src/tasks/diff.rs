//! The dashboard's closure diff of one host (drift mode): nix's progress streamed as lines,
//! cancelled by killing nix's process group. And the flake lock's fingerprint, the diff
//! cache's key.

use color_eyre::eyre::{Result, eyre};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{NixConfig, SshConfig};
use crate::inventory::Host;
use crate::model::closure::ClosureDiff;
use crate::operations::closure_diff::{self, Nix, NixCopyFromSsh, Progress, Reporter, SshTarget};

/// Everything one diff needs.
#[derive(Debug, Clone)]
pub struct DiffRequest {
    pub host: Host,
    /// The host's deployed system (`/run/current-system`), from its SSH facts.
    pub deployed: Option<String>,
    pub nix: NixConfig,
    pub ssh: SshConfig,
}

/// Compute the diff; every progress line goes to `line` as it comes.
pub async fn run<F, Fut>(
    req: &DiffRequest,
    cancel: &CancellationToken,
    line: F,
) -> Result<ClosureDiff, String>
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (ptx, mut prx) = mpsc::channel::<Progress>(256);
    let reporter = Reporter::new(ptx);
    let work = async {
        let r = diff(req, &reporter, cancel).await;
        drop(reporter);
        r
    };
    let forward = async {
        while let Some(p) = prx.recv().await {
            line(p.to_string()).await;
        }
    };
    let (result, ()) = tokio::join!(work, forward);
    result.map_err(|e| crate::base::error_chain(&e))
}

async fn diff(
    req: &DiffRequest,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    let flake = req.nix.flake.clone().ok_or_else(|| {
        eyre!("no flake configured: set `flake = \"...\"` in the [nix] section of the config")
    })?;
    let deployed = req.deployed.clone().ok_or_else(|| {
        eyre!(
            "the deployed system of {} is not known yet: its SSH facts have not arrived",
            req.host.id
        )
    })?;
    let nix = Nix::from_config(&req.nix);
    let source = NixCopyFromSsh {
        target: SshTarget::for_host(&req.host, &req.ssh).map_err(|e| eyre!("{e}"))?,
        trust_host_store: req.nix.trust_host_store,
    };
    reporter
        .step(format!("{}: deployed system {deployed}", req.host.id))
        .await;
    closure_diff::drift_diff(
        &nix,
        &deployed,
        &source,
        &flake,
        &req.host.id,
        reporter,
        cancel,
    )
    .await
}

/// A fingerprint of the flake's `flake.lock` when the flake is a local path (the diff cache's
/// key, with the deployed system); `None` for remote flakes or without a lock file. Reads a
/// file: run it in a task, never in the event loop.
pub fn lock_fingerprint(nix: &NixConfig) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let flake = nix.flake.as_deref()?;
    let path = flake.strip_prefix("path:").unwrap_or(flake);
    let dir = std::path::Path::new(path.split(['?', '#']).next().unwrap_or(path));
    let text = std::fs::read(dir.join("flake.lock")).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Some(format!("{:016x}", h.finish()))
}
