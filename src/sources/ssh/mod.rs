//! Hosts over SSH: the russh client (`client`), known_hosts checks (`known_hosts`),
//! `~/.ssh/config` resolution (`ssh_config`), the facts script (`facts`) and the hardening
//! posture (`posture`), and the source task that sends `Update::Host` messages.

pub mod client;
pub mod known_hosts;
pub mod ssh_config;

pub use client::{
    AgentSource, ClientSettings, CommandOutput, ConnState, ExitInfo, OutputChunk, SshError, SshPool,
};
pub use ssh_config::{LocalEnv, SshConfigFile, Target};
