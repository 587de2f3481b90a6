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
//!
//! Here: [`diff_paths`]. `store` (store paths, boot links, sizes), `build` (a host's system
//! from a flake), `update` (the update mode), `drift` (the drift mode and where the deployed
//! closure comes from) hold the rest.

mod build;
pub mod classify;
mod drift;
pub mod nix;
pub mod parse;
pub mod render;
mod store;
mod update;

use std::path::Path;

use color_eyre::eyre::Result;
use tokio_util::sync::CancellationToken;

pub use self::build::{build_toplevel, toplevel_installable};
pub use self::drift::{
    ClosureSource, LocalStore, NixCopyFromSsh, SshTarget, deployed_system_via_ssh, drift_diff,
};
pub use self::nix::{Cancelled, Nix, Progress, Reporter};
use self::store::resolve_store_path;
pub use self::store::{closure_sizes, read_boot_links};
pub use self::update::{UpdateOutcome, update_diff};
use crate::model::closure::ClosureDiff;

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
