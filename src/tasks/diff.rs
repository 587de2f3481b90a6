//! The dashboard's closure diff of one host (drift mode), as a task that streams progress
//! and can be cancelled (killing nix's process group).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::closure_diff::{self, Nix, NixCopyFromSsh, Progress, Reporter, SshTarget};
use crate::config::{NixConfig, SshConfig};
use crate::inventory::Host;
use crate::model::closure::ClosureDiff;

/// What the task reports.
#[derive(Debug, Clone)]
pub enum DiffEvent {
    Progress {
        host: String,
        line: String,
    },
    Done {
        host: String,
        result: Result<Box<ClosureDiff>, String>,
    },
}

/// Everything one diff needs.
#[derive(Debug, Clone)]
pub struct DiffRequest {
    pub host: Host,
    /// The host's deployed system (`/run/current-system`), from its SSH facts.
    pub deployed: Option<String>,
    pub nix: NixConfig,
    pub ssh: SshConfig,
}

/// Start the diff; cancel the returned token to stop it.
pub fn spawn(req: DiffRequest, tx: mpsc::Sender<DiffEvent>) -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let host = req.host.id.clone();
        let (ptx, mut prx) = mpsc::channel::<Progress>(256);
        let forward = {
            let tx = tx.clone();
            let host = host.clone();
            tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    let line = p.to_string();
                    if tx
                        .send(DiffEvent::Progress {
                            host: host.clone(),
                            line,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };
        let reporter = Reporter::new(ptx);
        let result = run(&req, &reporter, &token).await;
        drop(reporter);
        let _ = forward.await;
        let result = result
            .map(Box::new)
            .map_err(|e| crate::base::error_chain(&e));
        let _ = tx.send(DiffEvent::Done { host, result }).await;
    });
    cancel
}

async fn run(
    req: &DiffRequest,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> color_eyre::eyre::Result<ClosureDiff> {
    use color_eyre::eyre::eyre;
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
        target: SshTarget::for_host(&req.host, &req.ssh),
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
/// key, with the deployed system); `None` for remote flakes or without a lock file.
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
