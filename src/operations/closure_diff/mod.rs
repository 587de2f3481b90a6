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
//! let source = source_for(&config.nix, &config.ssh, offline)?;   // nix here, or the sim
//! let deployed = facts.current_system;                   // from the SSH host facts
//! let diff = drift_with(source.as_ref(), &host, &deployed,
//!                       &Reporter::new(tx), &cancel).await?;   // model::closure::ClosureDiff
//! // or: update_diff(&nix, &flake, &host.id, ...).await?.diff
//! // e: render::to_text(&diff, false); badge: diff.badge(); plan: ChangeSummary::of(&diff)
//! ```
//!
//! Here: [`diff_paths`]. `store` (store paths, boot links, sizes), `build` (a host's system
//! from a flake), `update` (the update mode), `drift` (the drift mode and where the deployed
//! closure comes from), `source` (a [`ClosureSource`]: nix here, or the simulator's store
//! in `sim_store`; the same parser and classifier on both), `nixtext` (nix's output formats,
//! written), `summary` (what a diff means for a node), `fleet` (is each host running what
//! the flake builds now?) hold the rest.

mod build;
pub mod classify;
mod drift;
pub mod fleet;
pub mod nix;
/// nix's output formats live with the probes (the simulator writes them too).
pub use crate::probes::nixtext;
pub mod parse;
pub mod render;
mod sim_store;
mod source;
pub(crate) mod store;
pub mod summary;
mod update;

use color_eyre::eyre::Result;
use tokio_util::sync::CancellationToken;

pub use self::build::{build_toplevel, toplevel_installable};
pub use self::drift::{
    FetchClosure, LocalStore, NixCopyFromSsh, SshTarget, deployed_system_via_ssh, drift_diff,
};
pub use self::nix::{Cancelled, Nix, Progress, Reporter};
pub use self::sim_store::SimClosures;
pub use self::source::{
    ClosureSource, NixClosures, RawDiff, classify_raw, diff_with, drift_with, lock_fingerprint,
    source_for,
};
pub use self::store::{closure_sizes, read_boot_links};
pub use self::summary::ChangeSummary;
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
    let here = NixClosures {
        nix: nix.clone(),
        flake: None,
        ssh: crate::config::SshConfig::default(),
        trust_host_store: false,
    };
    diff_with(&here, old, new, reporter, cancel).await
}
