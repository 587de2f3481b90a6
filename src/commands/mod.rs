//! The front-ends: what each subcommand does. They read the command line (clap types stop
//! here), load config and inventory into a [`crate::base::Env`], and drive the layers below.
//! Nothing but `main` imports this module.

pub mod check;

pub mod config_file;
pub mod dashboard;
pub mod diff;
pub mod docs;
pub mod sim;
pub mod upgrade;

use color_eyre::eyre::{Result, WrapErr, eyre};

use crate::base::{Env, Writes, error_chain};
use crate::cli::{Cli, Command, GlobalArgs};
use crate::config;
use crate::inventory;

/// Exit code for "could not run/check" errors.
pub const EXIT_ERROR: u8 = 3;

/// What the command line and its files give a front-end.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub env: Env,
    /// The write capability: `None` under `--read-only` (nothing that writes can be built).
    pub writes: Option<Writes>,
}

/// Load config and inventory; command-line flags override config values.
pub fn load(global: &GlobalArgs) -> Result<Loaded> {
    let (mut config, config_path) = config::load(global.config.as_deref()).map_err(|e| eyre!(e))?;
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
    Ok(Loaded {
        env: Env {
            config,
            config_path,
            inventory,
            offline: global.offline,
            label: None,
        },
        // The one place the write capability is made (tests/offline/layering.rs checks it).
        writes: Writes::unless_read_only(global.read_only),
    })
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

async fn run(cli: Cli) -> Result<u8> {
    let global = cli.global.clone();
    crate::logging::init(global.log_file.as_deref(), global.verbose)
        .wrap_err("cannot set up logging")?;
    match cli.command.unwrap_or(Command::Dashboard) {
        Command::Dashboard => {
            let Loaded { env, writes } = load(&global)?;
            dashboard::run(env, writes).await?;
            Ok(0)
        }
        Command::Check(args) => check::run(&global, &args).await,
        Command::Demo(args) => sim::demo(&global, &args).await,
        Command::Sim(args) => sim::run(&global, &args).await,
        Command::Diff(args) => diff::run(&global, &args).await,
        Command::Upgrade(args) => {
            let loaded = load(&global)?;
            upgrade::run(loaded, &args).await
        }
        Command::Config(c) => config_file::run(&global, &c).await,
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man => docs::man(),
    }
}
