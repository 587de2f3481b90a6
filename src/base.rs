//! What every layer may use, and nothing else: the loaded environment of a run (config,
//! inventory, whether the network may be used), the one-line error chain for users, and the
//! colour choice; the bounded [`ring::Ring`] every log uses; the write capability
//! [`Writes`] (read-only mode never has one). A leaf: it imports only
//! `config` and `inventory`, never a front-end.

pub mod ring;
pub mod write;

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::config::Config;
use crate::inventory::Inventory;
pub use write::Writes;

/// Everything below the front-ends needs to know about this run: the merged config (file
/// plus command-line overrides), the inventory, and whether the network is off limits.
#[derive(Debug, Clone)]
pub struct Env {
    pub config: Config,
    /// The config file it came from, for messages (`None`: defaults only).
    pub config_path: Option<PathBuf>,
    pub inventory: Inventory,
    /// `--offline`: no source or operation may open a connection.
    pub offline: bool,
    /// What the header calls the cluster (else the kube context).
    pub label: Option<String>,
}

impl Env {
    /// An environment from already loaded parts (tests, the simulator, the front-ends).
    pub fn new(config: Config, inventory: Inventory) -> Self {
        Self {
            config,
            config_path: None,
            inventory,
            offline: false,
            label: None,
        }
    }
}

/// `outer: inner: root cause`, one line, for the user.
pub fn error_chain(e: &color_eyre::eyre::Report) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.join(": ")
}

/// Whether `NO_COLOR` asks for no colour (set and not empty).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Colour on standard output: a terminal, and `NO_COLOR` not set.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && !no_color_requested()
}
