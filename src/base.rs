//! What every layer may use, and nothing else: the loaded environment of a run (config,
//! inventory, whether the network may be used), the one-line error chain for users, and the
//! colour choice; the bounded [`ring::Ring`] every log uses; the write capability
//! [`Writes`] (read-only mode never has one). A leaf: it imports only
//! `config` and `inventory`, never a front-end.

pub mod memory;
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

/// The local time zone, as `jiff::tz::TimeZone::system()` finds it but without its name lookup
/// when `/etc/localtime` is a plain TZif file or link: that lookup lists the whole zoneinfo tree
/// (a few milliseconds on the first frame) only to learn a name nothing here shows. With `TZ`
/// set, or `/etc/localtime` unreadable, jiff decides.
pub fn local_time_zone() -> jiff::tz::TimeZone {
    if std::env::var_os("TZ").is_none()
        && let Ok(data) = std::fs::read("/etc/localtime")
        && let Ok(tz) = jiff::tz::TimeZone::tzif("localtime", &data)
    {
        return tz;
    }
    jiff::tz::TimeZone::system()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_local_time_zone_has_the_system_zone_offsets() {
        let ours = super::local_time_zone();
        let jiffs = jiff::tz::TimeZone::system();
        // A year of instants, across any daylight-saving change.
        for day in 0..366 {
            let t = jiff::Timestamp::from_second(1_767_225_600 + day * 86_400 + 43_200).unwrap();
            assert_eq!(ours.to_offset(t), jiffs.to_offset(t), "{t}");
        }
    }
}
