//! `homeinfra-tui sim`: serve the simulated homelab for other clients (kubectl, this tool)
//! until SIGTERM/SIGINT, and `demo`: the dashboard on it, in-process.

use std::io::Write as _;

use color_eyre::eyre::{Result, WrapErr};

use super::{Loaded, load};
use crate::cli::{DemoArgs, GlobalArgs, SimArgs, SimModelArgs};
use crate::inventory::{self, Inventory};
use crate::sim::{self, SimOptions};

/// The hosts to simulate: those of `--hosts` when that file exists and `--nodes` is not given
/// (moved onto loopback by the simulator), else the built-in cluster.
fn sim_hosts(global: &GlobalArgs, model: &SimModelArgs) -> Result<Option<Inventory>> {
    if model.nodes.is_none() && global.hosts.is_file() {
        Ok(Some(
            inventory::load(&global.hosts).map_err(|e| color_eyre::eyre::eyre!(e))?,
        ))
    } else {
        Ok(None)
    }
}

fn options(global: &GlobalArgs, model: &SimModelArgs) -> Result<SimOptions> {
    SimOptions::new(
        model.nodes,
        &model.scenarios,
        model.speed,
        sim_hosts(global, model)?,
    )
}

/// `sim --dir DIR`: start, print `ready`, serve until SIGTERM/SIGINT.
pub async fn run(global: &GlobalArgs, args: &SimArgs) -> Result<u8> {
    let handle = sim::start(options(global, &args.model)?, &args.dir).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    eprintln!(
        "simulated homelab: API {} ({} hosts), etcd {}, SSH port {}; files in {}",
        handle.api_url(),
        handle.inventory().hosts.len(),
        handle.etcd_urls().join(", "),
        handle.ssh_config().port,
        args.dir.display()
    );
    wait_for_signal().await?;
    handle.shutdown().await;
    Ok(0)
}

/// `demo`: start the simulator in-process, point the real clients at it through its
/// generated files, run the dashboard, and stop the simulator afterwards.
pub async fn demo(global: &GlobalArgs, args: &DemoArgs) -> Result<u8> {
    let opts = options(global, &args.model)?;
    let dir = tempfile::Builder::new()
        .prefix("homeinfra-demo-")
        .tempdir()
        .wrap_err("cannot create a directory for the simulator's files")?;
    let sim = sim::start(opts, dir.path())
        .await
        .wrap_err("cannot start the simulated homelab")?;
    let mut demo_global = global.clone();
    demo_global.config = Some(sim.config_path());
    demo_global.hosts = sim.hosts_path();
    demo_global.offline = false;
    demo_global.kubeconfig = None;
    demo_global.context = None;
    let result = async {
        let Loaded { mut env, writes } = load(&demo_global)?;
        env.label = Some("demo (simulated homelab)".into());
        super::dashboard::run(env, writes).await
    }
    .await;
    sim.shutdown().await;
    result.map(|_| 0)
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).wrap_err("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.wrap_err("cannot watch SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
