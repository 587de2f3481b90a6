//! Hosts over SSH: the russh client (`client`), known_hosts checks (`known_hosts`),
//! `~/.ssh/config` resolution (`ssh_config`), and the source task that sends `Update::Host`
//! messages. What is run on the hosts — the facts script and every other command — is defined
//! in `crate::probes` (`facts` is re-exported here).
//!
//! Entry points for the rest of the app:
//! - `spawn(cfg, inv, tx)`: the periodic source task (one `Update::Host` per host and refresh).
//! - `gather_once(cfg, inv, timeout)`: one round for `check`, as `snapshot.hosts`.
//! - `HostsClient`: run a probe on an inventory host by id (`ask(id, &probe, timeout)` gives
//!   the `probes::Reply` to parse), run commands (the upgrade's `nixos-rebuild`, with live
//!   output through `run_streaming`), and each host's connection state for the Hosts pane.
//!   A passphrase-protected key (`SshError::locked_keys`) can be unlocked once with
//!   `client.pool().set_passphrase(path, passphrase)`.
//!
//! Supported from `~/.ssh/config`: `Host` blocks with HostName (`%h`), User, Port, IdentityFile,
//! IdentitiesOnly, UserKnownHostsFile, ProxyJump (chains), Include. `Match` blocks are ignored
//! (their options are never misapplied). Host keys: `~/.ssh/known_hosts` (or
//! UserKnownHostsFile), `/etc/ssh/ssh_known_hosts`, `[ssh] known_hosts`; hashed, `[host]:port`,
//! wildcard/negated patterns and `@revoked`; no host certificates.

pub mod client;
pub mod known_hosts;
pub mod recovery;
pub mod ssh_config;

/// The facts script and its parser, for callers that knew them here.
pub use crate::probes::facts;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::Result;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use client::{
    AgentSource, ClientSettings, CommandOutput, ConnState, ExitInfo, OutputChunk, SshError, SshPool,
};
pub use ssh_config::{LocalEnv, SshConfigFile, Target};

use futures::StreamExt as _;

use crate::config::SshConfig;
use crate::inventory::Inventory;
use crate::model::Sourced;
use crate::model::host::{HostFacts, SshProblem};
use crate::probes::facts::FactsProbe;
use crate::probes::{Probe, Reply};
use crate::sources::{Update, UpdateTx};

/// SSH access to the inventory's hosts by id: one shared pool, resolved targets.
pub struct HostsClient {
    pool: Arc<SshPool>,
    targets: BTreeMap<String, Target>,
    /// The host ids in the inventory's order: a round reads them so (the Hosts pane fills
    /// from the top, as the operator listed them).
    order: Vec<String>,
    sudo: bool,
    command_timeout: Duration,
    /// Recovery reads per host id (certificates, secrets, clock), run after the facts.
    plans: BTreeMap<String, recovery::RecoveryPlan>,
}

impl HostsClient {
    /// Also read each host's recovery facts (`[recovery]`) with its facts.
    pub fn with_recovery(mut self, rc: &crate::config::RecoveryConfig, inv: &Inventory) -> Self {
        self.plans = inv
            .hosts
            .iter()
            .filter_map(|h| recovery::RecoveryPlan::for_host(rc, h).map(|p| (h.id.clone(), p)))
            .collect();
        self
    }

    /// Resolve every inventory host (reads `~/.ssh/config` when `[ssh] use_ssh_config`).
    pub fn new(cfg: &SshConfig, inv: &Inventory) -> Result<Self> {
        let env = LocalEnv::from_process(cfg);
        let file = SshConfigFile::load(&env)?;
        let targets = inv
            .hosts
            .iter()
            .map(|h| (h.id.clone(), ssh_config::resolve(cfg, h, &file, &env)))
            .collect();
        let mut client = Self::with_targets(cfg, ClientSettings::from_config(cfg), targets);
        client.order = inv.hosts.iter().map(|h| h.id.clone()).collect();
        Ok(client)
    }

    /// With explicit targets and settings (tests, the simulator).
    pub fn with_targets(
        cfg: &SshConfig,
        settings: ClientSettings,
        targets: BTreeMap<String, Target>,
    ) -> Self {
        let command_timeout = settings.command_timeout;
        Self {
            pool: Arc::new(SshPool::new(settings)),
            order: targets.keys().cloned().collect(),
            targets,
            sudo: cfg.sudo,
            command_timeout,
            plans: BTreeMap::new(),
        }
    }

    pub fn pool(&self) -> &Arc<SshPool> {
        &self.pool
    }

    pub fn target(&self, id: &str) -> Option<&Target> {
        self.targets.get(id)
    }

    pub fn host_ids(&self) -> impl Iterator<Item = &String> {
        self.targets.keys()
    }

    /// The connection state of a host (connected / failing since / idle).
    pub fn state(&self, id: &str) -> ConnState {
        self.pool.state(id)
    }

    fn resolve(&self, id: &str) -> Result<&Target, SshError> {
        self.targets.get(id).ok_or_else(|| {
            SshError::new(
                SshProblem::Other,
                format!("{id} is not a host of the inventory"),
            )
        })
    }

    /// Run `probe`'s command (with its stdin) on a host within `timeout`: the reply to parse
    /// with `probe.parse`.
    pub async fn ask<P: Probe>(
        &self,
        id: &str,
        probe: &P,
        timeout: Duration,
    ) -> Result<Reply, SshError> {
        ask(&self.pool, self.resolve(id)?, probe, timeout).await
    }

    /// Run any command on a host and collect its output (command timeout from `[ssh]`). Any
    /// command may change the host: it takes the write capability (read-only callers use
    /// [`HostsClient::ask`] with a probe).
    pub async fn run(
        &self,
        _writes: &crate::base::Writes,
        id: &str,
        command: &str,
    ) -> Result<CommandOutput, SshError> {
        self.pool.run(self.resolve(id)?, command).await
    }

    /// Run any command and stream its output chunk by chunk as it arrives (the write
    /// capability, as for [`HostsClient::run`]).
    pub async fn run_streaming(
        &self,
        _writes: &crate::base::Writes,
        id: &str,
        command: &str,
        timeout: Duration,
        tx: mpsc::UnboundedSender<OutputChunk>,
    ) -> Result<ExitInfo, SshError> {
        self.pool
            .run_streaming(self.resolve(id)?, command, timeout, tx)
            .await
    }

    /// One facts round trip to one host (and its recovery reads, when planned).
    pub async fn facts(&self, id: &str) -> Result<HostFacts, SshError> {
        Ok(self.facts_reusing(id, None, Duration::ZERO).await?.0)
    }

    /// The host's facts, with the recovery reads of `last` when they still hold for it
    /// after `every` ([`RecoveryRead::holds`]), else read again: the facts, and the reads to
    /// keep for the next round (`None`: the host has no recovery plan).
    pub async fn facts_reusing(
        &self,
        id: &str,
        last: Option<RecoveryRead>,
        every: Duration,
    ) -> Result<(HostFacts, Option<RecoveryRead>), SshError> {
        let target = self.resolve(id)?;
        let mut facts = gather_host(&self.pool, target, self.sudo, self.command_timeout).await?;
        let Some(plan) = self.plans.get(id) else {
            return Ok((facts, None));
        };
        if let Some(read) = last.filter(|r| r.holds(&facts, every)) {
            facts.recovery = read.recovery.clone();
            return Ok((facts, Some(read)));
        }
        facts.recovery =
            recovery::gather(&self.pool, target, self.sudo, plan, self.command_timeout).await?;
        let read = RecoveryRead::of(&facts);
        Ok((facts, Some(read)))
    }

    /// After a host's round: close its connection unless a command runs on it, waiting at
    /// most a second for the goodbye.
    async fn end_round(&self, id: &str) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.pool.close_if_idle(id)).await;
    }
}

/// A host's recovery reads (certificates, secrets, clock sync, the clock's samples: two to
/// four commands) as the periodic source last made them, and the system they were made on. They change over days, not
/// between two facts rounds: the source reads them again every `[recovery] refresh_secs`, or
/// as soon as the host rebooted or switched its system.
#[derive(Debug, Clone)]
pub struct RecoveryRead {
    at: std::time::Instant,
    booted: Option<String>,
    current: Option<String>,
    uptime: Option<u64>,
    recovery: crate::model::recovery::HostRecovery,
}

impl RecoveryRead {
    fn of(facts: &HostFacts) -> Self {
        Self {
            at: std::time::Instant::now(),
            booted: facts.booted_system.clone(),
            current: facts.current_system.clone(),
            uptime: facts.uptime_secs,
            recovery: facts.recovery.clone(),
        }
    }

    /// Whether these reads still describe the host whose new `facts` these are: made less
    /// than `every` ago, on the same booted and current system, and no reboot since (its
    /// uptime went on).
    pub fn holds(&self, facts: &HostFacts, every: Duration) -> bool {
        self.at.elapsed() < every
            && self.booted.is_some()
            && self.booted == facts.booted_system
            && self.current == facts.current_system
            && matches!((self.uptime, facts.uptime_secs), (Some(a), Some(b)) if b >= a)
    }
}

/// Run `probe`'s command (with its stdin) on `target` within `timeout`.
pub async fn ask<P: Probe>(
    pool: &SshPool,
    target: &Target,
    probe: &P,
    timeout: Duration,
) -> Result<Reply, SshError> {
    let stdin = probe.stdin();
    let out = pool
        .run_with_stdin(
            target,
            &probe.command(),
            stdin.as_deref().map(str::as_bytes),
            timeout,
        )
        .await?;
    Ok(out.reply())
}

/// Run the facts script on `target` and parse it. A script that fails still gives what it
/// printed, with the failure noted as a parse issue.
pub async fn gather_host(
    pool: &SshPool,
    target: &Target,
    sudo: bool,
    timeout: Duration,
) -> Result<HostFacts, SshError> {
    let probe = FactsProbe { sudo };
    let reply = ask(pool, target, &probe, timeout).await?;
    // The facts parser never fails (what it cannot read becomes a parse issue).
    Ok(probe.parse(&reply).unwrap_or_else(|e| HostFacts {
        parse_issues: vec![e.message],
        ..Default::default()
    }))
}

/// The periodic source: every `[ssh] refresh_secs`, gather every host's facts and send one
/// `Update::Host` per host. Ends when the receiver is gone. Disabled (`[ssh] enabled = false`)
/// or an empty inventory: returns at once.
pub fn spawn(cfg: &SshConfig, inv: &Inventory, tx: UpdateTx) -> JoinHandle<()> {
    spawn_with(cfg, None, inv, tx)
}

/// `spawn`, with each host's recovery reads under `[recovery]` when given.
pub fn spawn_with(
    cfg: &SshConfig,
    rc: Option<&crate::config::RecoveryConfig>,
    inv: &Inventory,
    tx: UpdateTx,
) -> JoinHandle<()> {
    let rc = rc.cloned();
    let cfg = cfg.clone();
    let inv = inv.clone();
    tokio::spawn(async move {
        if !cfg.enabled || inv.hosts.is_empty() {
            return;
        }
        let refresh = Duration::from_secs(cfg.refresh_secs.max(1));
        let client = match HostsClient::new(&cfg, &inv) {
            Ok(c) => Arc::new(match &rc {
                Some(rc) => c.with_recovery(rc, &inv),
                None => c,
            }),
            Err(e) => {
                // A broken ~/.ssh/config: every host says so (and stays so until restart).
                let msg = SshError::new(SshProblem::Other, format!("{e:#}")).message;
                for h in &inv.hosts {
                    let update = Update::Host {
                        id: h.id.clone(),
                        result: Err(msg.clone()),
                    };
                    if tx.send(update).await.is_err() {
                        return;
                    }
                }
                return;
            }
        };
        let recovery_every = Duration::from_secs(rc.as_ref().map_or(0, |rc| rc.refresh_secs));
        let keep_open = refresh <= Duration::from_secs(cfg.keep_open_secs);
        run_periodic(client, refresh, recovery_every, keep_open, tx).await;
    })
}

/// The loop behind `spawn`, for a client built elsewhere (shared with the upgrade): facts
/// every `refresh`, each host's recovery reads again after `recovery_every` (or when it
/// rebooted or switched; zero: every round).
pub async fn run_periodic(
    client: Arc<HostsClient>,
    refresh: Duration,
    recovery_every: Duration,
    keep_open: bool,
    tx: UpdateTx,
) {
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reads: Arc<std::sync::Mutex<BTreeMap<String, RecoveryRead>>> = Arc::default();
    loop {
        tick.tick().await;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        // Each host reports as soon as it is done: a slow host does not hold the others back.
        let round = {
            let client = client.clone();
            let reads = reads.clone();
            async move {
                let ids = client.order.clone();
                let futs = ids.into_iter().map(|id| {
                    let done_tx = done_tx.clone();
                    let client = client.clone();
                    let reads = reads.clone();
                    async move {
                        let id = &id;
                        // Taken out: a host that does not answer is read whole again once
                        // it does.
                        let last = reads.lock().ok().and_then(|mut m| m.remove(id));
                        let r = match client.facts_reusing(id, last, recovery_every).await {
                            Ok((facts, keep)) => {
                                if let (Some(keep), Ok(mut m)) = (keep, reads.lock()) {
                                    m.insert(id.clone(), keep);
                                }
                                Ok(facts)
                            }
                            Err(e) => Err(e.message),
                        };
                        if !keep_open {
                            client.end_round(id).await;
                        }
                        let _ = done_tx.send(Update::Host {
                            id: id.to_string(),
                            result: r,
                        });
                    }
                });
                // A host's whole round (facts, recovery reads, the close) holds one of
                // `max_concurrency` places: commands alone would be bounded, but every host
                // would log in at once and wait, connected, for its next command's turn.
                let hosts_at_once = client.pool().settings().max_concurrency;
                futures::stream::iter(futs)
                    .buffer_unordered(hosts_at_once)
                    .collect::<Vec<()>>()
                    .await;
            }
        };
        let forward = async {
            while let Some(u) = done_rx.recv().await {
                if tx.send(u).await.is_err() {
                    return false;
                }
            }
            true
        };
        let (_, open) = tokio::join!(round, forward);
        if !open {
            return;
        }
    }
}

/// One round for `check`: every host's facts (or error), bounded by `timeout`, recorded as
/// `snapshot.hosts` expects. `[ssh] enabled = false`: every host "not configured".
pub async fn gather_once(
    cfg: &SshConfig,
    inv: &Inventory,
    timeout: Duration,
) -> BTreeMap<String, Sourced<HostFacts>> {
    gather_once_with(cfg, None, inv, timeout).await
}

/// `gather_once`, with each host's recovery reads under `[recovery]` when given.
pub async fn gather_once_with(
    cfg: &SshConfig,
    rc: Option<&crate::config::RecoveryConfig>,
    inv: &Inventory,
    timeout: Duration,
) -> BTreeMap<String, Sourced<HostFacts>> {
    let now = jiff::Timestamp::now();
    let mut out = BTreeMap::new();
    if !cfg.enabled {
        for h in &inv.hosts {
            out.insert(
                h.id.clone(),
                Sourced::not_configured("SSH is off: set [ssh] enabled = true"),
            );
        }
        return out;
    }
    let mut cfg = cfg.clone();
    cfg.command_timeout_secs = cfg.command_timeout_secs.min(timeout.as_secs().max(1));
    let results: Vec<(String, Result<HostFacts, String>)> = match HostsClient::new(&cfg, inv) {
        Ok(client) => {
            let client = match rc {
                Some(rc) => client.with_recovery(rc, inv),
                None => client,
            };
            let client = &client;
            let futs = inv.hosts.iter().map(|h| async move {
                let r = match tokio::time::timeout(timeout, client.facts(&h.id)).await {
                    Ok(r) => r.map_err(|e| e.message),
                    Err(_) => Err(SshError::new(
                        SshProblem::Timeout,
                        format!("no facts from {} within {} s", h.id, timeout.as_secs()),
                    )
                    .message),
                };
                // One round: a host's connection is closed once it answered, so that about
                // `max_concurrency` connections are open at a time, not one per host.
                client.end_round(&h.id).await;
                (h.id.clone(), r)
            });
            // Hosts at a time, each with its whole round (see `run_periodic`).
            futures::stream::iter(futs)
                .buffer_unordered(client.pool().settings().max_concurrency)
                .collect()
                .await
        }
        Err(e) => {
            let msg = SshError::new(SshProblem::Other, format!("{e:#}")).message;
            inv.hosts
                .iter()
                .map(|h| (h.id.clone(), Err(msg.clone())))
                .collect()
        }
    };
    for (id, r) in results {
        let mut s = Sourced::configured();
        s.record(r, now);
        out.insert(id, s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(booted: &str, current: &str, uptime: u64) -> HostFacts {
        HostFacts {
            booted_system: Some(booted.into()),
            current_system: Some(current.into()),
            uptime_secs: Some(uptime),
            ..Default::default()
        }
    }

    #[test]
    fn recovery_reads_hold_until_due_or_the_host_changed() {
        let read = RecoveryRead::of(&facts("/nix/store/a", "/nix/store/a", 100));
        let hour = Duration::from_secs(3600);
        assert!(read.holds(&facts("/nix/store/a", "/nix/store/a", 160), hour));
        assert!(
            !read.holds(&facts("/nix/store/a", "/nix/store/a", 160), Duration::ZERO),
            "due"
        );
        assert!(
            !read.holds(&facts("/nix/store/a", "/nix/store/b", 160), hour),
            "switched"
        );
        assert!(
            !read.holds(&facts("/nix/store/b", "/nix/store/b", 160), hour),
            "booted another system"
        );
        assert!(
            !read.holds(&facts("/nix/store/a", "/nix/store/a", 20), hour),
            "rebooted into the same system"
        );
        let unknown = RecoveryRead::of(&HostFacts::default());
        assert!(
            !unknown.holds(&HostFacts::default(), hour),
            "a host whose system is unknown is read every round"
        );
    }
}
