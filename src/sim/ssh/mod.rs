//! The simulator's SSH face: one russh server per simulated host, on that host's loopback
//! address (all on one port), each with its own ed25519 host key. Only the one generated client
//! key is accepted (public key auth; nothing else).
//!
//! What a command asks for is read by `crate::probes::recognise` — the same definitions the
//! app's client uses — and answered from the world's state through each probe's renderer:
//! - the facts script (`sh -s`, the script on stdin), the boot state, the boot id, the
//!   auto-upgrade timer, the k3s version (the node's kubelet version), `true`;
//! - `nixos-rebuild switch ...` (any `[upgrade] switch_command` shape): streams build and
//!   activation lines (time scaled), makes a new generation current (the host's first switch
//!   brings a new kernel: reboot needed); `nixos-rebuild switch --rollback`: back to the
//!   previous generation;
//! - `systemctl reboot`, `reboot`, `shutdown -r`: exit 0, then the world reboots the host (node
//!   NotReady, etcd member and replicas down, back unless `node-never-returns`); connections
//!   drop;
//! - typed by a person: `readlink [-f] /run/current-system` (or `/run/booted-system`),
//!   `nixos-version`, `hostname`;
//! - anything else: exit 127 with `sh: 1: CMD: not found` on stderr.
//!
//! Every command received is recorded (`SshFace::requests`, `GET /sim/v1/requests` → `ssh`)
//! with its host, kind and whether it mutates.
//!
//! A host that is down (rebooting, `unreachable-host`) refuses connections: its listener is
//! closed until it is back, and its open connections are dropped.
//!
//! Files: `host` (a host's generations and the state the probes render), `server` (listeners,
//! auth, exec requests), `answer` (a request answered), `rebuild` (switch and rollback),
//! `shell` (typed commands), `log` (the request records).

mod answer;
mod host;
mod log;
mod rebuild;
mod recovery;
mod server;
mod shell;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr, eyre};
use russh::keys::ssh_key::LineEnding;
use tokio_util::sync::CancellationToken;

pub use log::{RequestLog, SshRequest};

use super::World;
use host::{SimHost, lock, random_key};
use server::{Served, bind_all, reachable, serve_host, watch_hosts};

/// The user the generated config logs in as (the hosts accept the client key for any user, so
/// an inventory's own `sshUser` works too).
pub const SSH_USER: &str = "operator";

/// Per-host oddities the scenarios do not cover (all off by default: a healthy host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Units `systemctl --failed` lists.
    pub failed_units: Vec<String>,
    /// sshd allows X11 forwarding (`X11Forwarding yes`), against the policy.
    pub weak_sshd: bool,
    /// `nixos-rebuild switch` fails (a build error, exit status 1) and changes nothing.
    pub switch_fails: bool,
}

/// The running SSH face.
pub struct SshFace {
    /// The port every host listens on (each on its own 127.0.0.N).
    pub port: u16,
    /// `DIR/ssh/id_ed25519`.
    pub identity_file: PathBuf,
    /// `DIR/ssh/known_hosts`.
    pub known_hosts: PathBuf,
    hosts: Vec<Arc<SimHost>>,
    log: Arc<RequestLog>,
}

impl SshFace {
    /// Set a host's quirks (by hostname or inventory id).
    pub fn set_quirks(&self, host: &str, quirks: Quirks) -> Result<()> {
        let h = self
            .hosts
            .iter()
            .find(|h| h.hostname == host || h.id == host)
            .ok_or_else(|| eyre!("no simulated host \"{host}\""))?;
        *lock(&h.quirks) = quirks;
        Ok(())
    }

    /// A host's quirks (`None`: no such host).
    pub fn quirks(&self, host: &str) -> Option<Quirks> {
        self.hosts
            .iter()
            .find(|h| h.hostname == host || h.id == host)
            .map(|h| lock(&h.quirks).clone())
    }

    /// A host's revert timer as `systemctl show` would give it (`None`: no such host).
    pub fn revert_timer(
        &self,
        world: &crate::sim::World,
        host: &str,
        unit: &str,
    ) -> Option<crate::probes::revert::RevertTimer> {
        self.hosts
            .iter()
            .find(|h| h.hostname == host || h.id == host)
            .map(|h| rebuild::revert_timer(world, h, unit))
    }

    /// Every revert timer unit the hosts hold now (armed or fired), as (hostname, unit).
    pub fn revert_units(&self, world: &crate::sim::World) -> Vec<(String, String)> {
        self.hosts
            .iter()
            .filter_map(|h| {
                h.sync(world)
                    .revert
                    .as_ref()
                    .map(|r| (h.hostname.clone(), r.unit.clone()))
            })
            .collect()
    }

    /// Every SSH command the hosts received, oldest first.
    pub fn requests(&self) -> Vec<SshRequest> {
        self.log.all()
    }

    /// The record the control API serves (shared with it).
    pub fn request_log(&self) -> Arc<RequestLog> {
        self.log.clone()
    }

    /// The `[ssh]` settings that reach the simulated hosts.
    pub fn client_config(&self) -> crate::config::SshConfig {
        crate::config::SshConfig {
            enabled: true,
            user: Some(SSH_USER.into()),
            port: self.port,
            identity_files: vec![self.identity_file.clone()],
            known_hosts: Some(self.known_hosts.clone()),
            accept_new: false,
            sudo: true,
            use_ssh_config: false,
            connect_timeout_secs: 5,
            command_timeout_secs: 30,
            keepalive_secs: 15,
            max_concurrency: 32,
            refresh_secs: 10,
            keep_open_secs: 30,
        }
    }
}

/// Generate the keys, write `dir/ssh/{id_ed25519,id_ed25519.pub,known_hosts}`, and serve every
/// host of the world on one port (each on its own loopback address) until `stop`.
pub async fn start(world: Arc<World>, stop: CancellationToken, dir: &Path) -> Result<SshFace> {
    let client = random_key();
    let client_pub = client.public_key().clone();
    let hosts: Vec<Arc<SimHost>> = world
        .inventory
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let boots = world.host(&h.hostname).map(|s| s.boots).unwrap_or(0);
            Arc::new(SimHost::new(i, h, boots))
        })
        .collect();

    // One port for all hosts: take a free one on the first address, then the same on the
    // others (retry with another port when one is taken).
    let mut bound = None;
    for _ in 0..20 {
        match bind_all(&hosts, 0).await {
            Ok(b) => {
                bound = Some(b);
                break;
            }
            Err(_) => continue,
        }
    }
    let (port, listeners) = bound
        .ok_or_else(|| eyre!("cannot find one free port on every simulated host's address"))?;

    let ssh_dir = dir.join("ssh");
    std::fs::create_dir_all(&ssh_dir)
        .wrap_err_with(|| format!("cannot create {}", ssh_dir.display()))?;
    let identity_file = ssh_dir.join("id_ed25519");
    let private = client
        .to_openssh(LineEnding::LF)
        .map_err(|e| eyre!("cannot encode the client key: {e}"))?;
    super::write_file(&identity_file, &private, true)?;
    let public = client_pub
        .to_openssh()
        .map_err(|e| eyre!("cannot encode the client key: {e}"))?;
    super::write_file(
        &ssh_dir.join("id_ed25519.pub"),
        &format!("{public} homeinfra-sim\n"),
        false,
    )?;
    let mut known = String::new();
    for h in &hosts {
        let k = h
            .key
            .public_key()
            .to_openssh()
            .map_err(|e| eyre!("cannot encode a host key: {e}"))?;
        known.push_str(&format!("[{}]:{port} {k}\n", h.ip));
    }
    let known_hosts = ssh_dir.join("known_hosts");
    super::write_file(&known_hosts, &known, false)?;

    // One watcher follows every host's reachability (one lock of the world per tick) and
    // tells each host's server when it changes.
    let log = Arc::new(RequestLog::default());
    let mut senders = Vec::new();
    for (h, listener) in hosts.iter().zip(listeners) {
        let (tx, rx) = tokio::sync::watch::channel(reachable(&world, &h.hostname));
        senders.push((h.hostname.clone(), tx));
        let served = Served {
            world: world.clone(),
            host: h.clone(),
            log: log.clone(),
            client: client_pub.clone(),
            port,
        };
        tokio::spawn(serve_host(served, Some(listener), rx, stop.clone()));
    }
    tokio::spawn(watch_hosts(world.clone(), senders, stop.clone()));
    Ok(SshFace {
        port,
        identity_file,
        known_hosts,
        hosts,
        log,
    })
}
