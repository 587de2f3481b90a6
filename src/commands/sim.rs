//! `homeinfra-tui sim`: serve the simulated homelab for other clients (kubectl, this tool)
//! until SIGTERM/SIGINT, and `demo`: the dashboard on it, in-process. A demo's upgrade runs
//! as its own engine process against the simulator's files (like any run), its journals in
//! the simulator's directory; the simulated cluster lives in the demo's process, so such an
//! engine stops when the demo is gone.

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
    let mut opts = SimOptions::new(
        model.nodes,
        &model.scenarios,
        model.speed,
        sim_hosts(global, model)?,
    )?;
    opts.frozen = model.frozen;
    opts.scale = sim::build::Scale {
        pods_per_node: model.pods_per_node,
        volumes: model.volumes,
    };
    Ok(opts)
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
    demo_global.config = Some(demo_config(&sim.config_path(), dir.path())?);
    demo_global.hosts = sim.hosts_path();
    demo_global.offline = false;
    demo_global.kubeconfig = None;
    demo_global.context = None;
    let result = async {
        let Loaded { mut env, writes } = load(&demo_global)?;
        env.label = Some("demo (simulated homelab)".into());
        let engines = super::dashboard::Engines::demo(super::engine_command(&demo_global));
        super::dashboard::run(env, writes, engines).await
    }
    .await;
    sim.shutdown().await;
    result.map(|_| 0)
}

/// The simulator's config with the demo's journal directory (`DIR/runs`): a demo's runs
/// belong to its simulated cluster and go with it.
fn demo_config(sim_config: &std::path::Path, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(sim_config)
        .wrap_err_with(|| format!("cannot read {}", sim_config.display()))?;
    let mut cfg: toml::Table =
        toml::from_str(&text).wrap_err_with(|| format!("cannot read {}", sim_config.display()))?;
    let up = cfg
        .entry("upgrade")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    if let Some(t) = up.as_table_mut() {
        t.insert(
            "journal_dir".into(),
            toml::Value::String(dir.join("runs").display().to_string()),
        );
    }
    let path = dir.join("demo.toml");
    let body = toml::to_string(&cfg).wrap_err("cannot write the demo's config")?;
    std::fs::write(
        &path,
        format!("# The simulator's config, with the demo's journal directory.\n{body}"),
    )
    .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    Ok(path)
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
