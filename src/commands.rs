//! What each subcommand does: load config and inventory, then dispatch.

use std::path::PathBuf;

use color_eyre::eyre::{Result, WrapErr, eyre};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{self, Config};
use crate::inventory::{self, Inventory};

/// Exit code for "could not run/check" errors.
pub const EXIT_ERROR: u8 = 3;

/// Everything a command needs from the command line, the config file and the inventory.
#[derive(Debug, Clone)]
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub inventory: Inventory,
    /// What the header calls the cluster (else the kube context).
    pub label: Option<String>,
}

impl Context {
    /// Load config and inventory; command-line flags override config values.
    pub fn load(global: &GlobalArgs) -> Result<Self> {
        let (mut config, config_path) =
            config::load(global.config.as_deref()).map_err(|e| eyre!(e))?;
        if let Some(k) = &global.kubeconfig {
            config.kubernetes.kubeconfig = Some(k.clone());
        }
        if let Some(c) = &global.context {
            config.kubernetes.context = Some(c.clone());
        }
        if let Some(t) = &global.theme {
            config.ui.theme = Some(t.clone());
        }
        let inventory = inventory::load(&global.hosts).map_err(|e| eyre!(e))?;
        Ok(Self {
            global: global.clone(),
            config,
            config_path,
            inventory,
            label: None,
        })
    }
}

/// Run the command line; returns the process exit code.
pub fn main(cli: Cli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for sources still blocked in I/O.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            EXIT_ERROR
        }
    }
}

/// The hosts to simulate: those of `--hosts` when that file exists and `--nodes` is not given
/// (moved onto loopback by the simulator), else the built-in cluster.
fn sim_hosts(global: &GlobalArgs, model: &crate::cli::SimModelArgs) -> Result<Option<Inventory>> {
    if model.nodes.is_none() && global.hosts.is_file() {
        Ok(Some(inventory::load(&global.hosts).map_err(|e| eyre!(e))?))
    } else {
        Ok(None)
    }
}

/// The dashboard on the built-in simulated homelab: start the simulator in-process, point
/// the real clients at it through its generated files, and stop it afterwards.
async fn run_demo(global: &GlobalArgs, args: &crate::cli::DemoArgs) -> Result<u8> {
    let opts = crate::sim::SimOptions::from_args(&args.model, sim_hosts(global, &args.model)?)?;
    let dir = tempfile::Builder::new()
        .prefix("homeinfra-demo-")
        .tempdir()
        .wrap_err("cannot create a directory for the simulator's files")?;
    let sim = crate::sim::start(opts, dir.path())
        .await
        .wrap_err("cannot start the simulated homelab")?;
    let mut demo_global = global.clone();
    demo_global.config = Some(sim.config_path());
    demo_global.hosts = sim.hosts_path();
    demo_global.offline = false;
    demo_global.kubeconfig = None;
    demo_global.context = None;
    let result = async {
        let mut ctx = Context::load(&demo_global)?;
        ctx.label = Some("demo (simulated homelab)".into());
        crate::tui::run_dashboard(ctx).await
    }
    .await;
    sim.shutdown().await;
    result.map(|_| 0)
}

/// `outer: inner: root cause`, one line, for the user.
pub fn error_chain(e: &color_eyre::eyre::Report) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.join(": ")
}

async fn run(cli: Cli) -> Result<u8> {
    let global = cli.global.clone();
    crate::logging::init(&global).wrap_err("cannot set up logging")?;
    match cli.command.unwrap_or(Command::Dashboard) {
        Command::Dashboard => {
            let ctx = Context::load(&global)?;
            crate::tui::run_dashboard(ctx).await?;
            Ok(0)
        }
        Command::Check(args) => {
            let ctx = match Context::load(&global) {
                Ok(c) => c,
                Err(e) => return Ok(crate::check::report_load_error(&e, args.json)),
            };
            crate::check::run(ctx, &args).await
        }
        Command::Demo(args) => run_demo(&global, &args).await,
        Command::Sim(args) => {
            let hosts = sim_hosts(&global, &args.model)?;
            crate::sim::run_sim_command(&args, hosts).await
        }
        Command::Diff(args) => crate::operations::closure_diff::command::run(&global, &args).await,
        Command::Upgrade(args) => {
            let ctx = Context::load(&global)?;
            crate::operations::upgrade::headless::run(ctx, &args).await
        }
    }
}
