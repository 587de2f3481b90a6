//! The real world: Kubernetes through kube-rs (`cluster`: cordon, the Eviction API, the
//! Lease), hosts over SSH or a local child process for `switch = "local"` (`hosts`: the
//! probes of `crate::probes` and the streamed switch), health from the same sources as the
//! dashboard (`health`: `kubernetes::poll_once`, `etcd::poll_once`, firing alerts from Mimir),
//! and here the world, the plan (refused when a host's commands cannot be built safely) and
//! the manual cordon built from them.

mod cluster;
mod health;
mod hosts;
mod silences;

use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr, eyre};

pub use cluster::{KubeCluster, KubeWriter, drain_client, drain_pdbs, drain_pod};
pub use health::LiveHealth;
pub use hosts::{SshHosts, SshWriter, exec_local};
pub use silences::AmSilencer;

use super::world::{ClusterWrite as _, ReadWorld, SystemClock, World, Writers};
use crate::base::{Env, Writes};
use crate::probes::rebuild::{CommandVars, default_user};
use crate::sources::ssh::HostsClient;

/// The real world, read only: what plans, dry runs and preflights use (and all `--read-only`
/// ever builds).
pub async fn read_world(env: &Env) -> Result<ReadWorld> {
    Ok(read_parts(env).await?.0)
}

async fn read_parts(env: &Env) -> Result<(ReadWorld, kube::Client, Arc<HostsClient>)> {
    let cluster = KubeCluster::new(&env.config.kubernetes).await?;
    let client = cluster.client().clone();
    let ssh = Arc::new(
        HostsClient::new(&env.config.ssh, &env.inventory)
            .wrap_err("cannot set up SSH to the hosts")?,
    );
    let hosts = Arc::new(SshHosts::new(ssh.clone()));
    let health = Arc::new(LiveHealth::new(env));
    Ok((
        ReadWorld {
            cluster: Arc::new(cluster),
            hosts,
            health,
            clock: Arc::new(SystemClock),
        },
        client,
        ssh,
    ))
}

/// The real world with its writers, for a run (built only with the write capability).
pub async fn world(env: &Env, writes: &Writes) -> Result<World> {
    let (read, client, ssh) = read_parts(env).await?;
    let silences = AmSilencer::new(writes, &env.config.alertmanager)
        .wrap_err("cannot set up Alertmanager silences ([alertmanager])")?
        .map(|s| Arc::new(s) as Arc<dyn super::world::SilenceWrite>);
    Ok(World {
        read,
        write: Writers::new(
            writes,
            Arc::new(KubeWriter::new(writes, client)),
            Arc::new(SshWriter::new(writes, ssh)),
        )
        .with_silences(silences),
    })
}

/// Where run journals go: `[upgrade] journal_dir`, else `$XDG_STATE_HOME/homeinfra-tui/runs`.
pub fn journal_dir(cfg: &crate::config::UpgradeConfig) -> Result<std::path::PathBuf> {
    cfg.journal_dir
        .clone()
        .or_else(super::journal::default_dir)
        .ok_or_else(|| {
            eyre!("no journal directory: set [upgrade] journal_dir, XDG_STATE_HOME or HOME")
        })
}

/// A new run's plan: the flake from `[upgrade] flake` (or `[nix] flake`), the order from the
/// inventory, `[upgrade] order` and `only`, the etcd leader (from `world`) last.
pub async fn new_plan(env: &Env, world: &ReadWorld, only: &[String]) -> Result<super::Plan> {
    let flake = env
        .config
        .upgrade
        .flake
        .clone()
        .or_else(|| env.config.nix.flake.clone())
        .ok_or_else(|| {
            eyre!("no flake to build: set [upgrade] flake (or [nix] flake) in the config")
        })?;
    let health = world.health.gather(&[]).await;
    let etcd = health.etcd.and_then(|r| r.ok());
    let plan = super::plan(
        &env.inventory,
        etcd.as_ref(),
        &env.config.upgrade.order,
        only,
        &flake,
        &super::new_run_id(),
    )?;
    // Every host's commands can be built (no inventory value a shell would interpret), before
    // anything is cordoned.
    let user = default_user();
    for e in &plan.entries {
        if let Some(h) = env.inventory.host(&e.host) {
            CommandVars::new(&flake, h, &user)
                .map_err(|e| eyre!("cannot plan the upgrade: {e}"))?;
        }
    }
    Ok(plan)
}

/// Cordon `node` for the TUI's `c` key: `spec.unschedulable = true` (strategic-merge patch)
/// and the `homeinfra-tui/cordoned-by: <run_id>` annotation — the engine's own cordon step.
/// For a manual cordon pass e.g. [`manual_run_id`].
pub async fn cordon(
    writes: &Writes,
    client: &kube::Client,
    node: &str,
    run_id: &str,
) -> Result<()> {
    KubeWriter::new(writes, client.clone())
        .cordon(node, run_id)
        .await
}

/// Uncordon `node` and drop our annotation (the TUI's `c` key on a cordoned node).
pub async fn uncordon(writes: &Writes, client: &kube::Client, node: &str) -> Result<()> {
    KubeWriter::new(writes, client.clone()).uncordon(node).await
}

/// The run id recorded for a cordon by hand: `manual-<user>@<machine>`.
pub fn manual_run_id() -> String {
    let holder = super::lock::holder_identity("x");
    let who = holder.split(' ').next().unwrap_or("unknown");
    format!("manual-{who}")
}

/// The upgrade run at work now, as `check` and the dashboard judge findings: the lock's Lease
/// held (and not stale) by a run, and the nodes that run has cordoned (the nodes it works
/// on). `None` when no run holds the lock, or the Lease cannot be read within `timeout`.
pub async fn maintenance(
    env: &Env,
    cluster: &crate::model::cluster::ClusterState,
    timeout: std::time::Duration,
) -> Option<crate::model::Maintenance> {
    if env.offline || !env.config.kubernetes.enabled {
        return None;
    }
    let read = async {
        let kube = KubeCluster::new(&env.config.kubernetes).await.ok()?;
        super::lock::current(&kube, jiff::Timestamp::now())
            .await
            .ok()
            .flatten()
    };
    let held = tokio::time::timeout(timeout, read).await.ok().flatten()?;
    if held.stale {
        return None;
    }
    let run_id = held.run_id().to_string();
    let text = super::drain::maintenance_text(&held);
    let nodes = cluster
        .nodes
        .iter()
        .filter(|n| n.cordoned_by_run.as_deref() == Some(run_id.as_str()))
        .map(|n| (n.name.clone(), text.clone()))
        .collect();
    Some(crate::model::Maintenance { run_id, nodes })
}
