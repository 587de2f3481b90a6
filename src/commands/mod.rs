//! The front-ends: what each subcommand does. They read the command line (clap types stop
//! here), load config and inventory into a [`crate::base::Env`], and drive the layers below.
//! Nothing but `main` imports this module.

pub mod check;

pub mod config_file;
pub mod dashboard;
pub mod diff;
pub mod docs;
pub mod drain;
pub mod engine;
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

/// The config alone (for commands that need no inventory: `upgrade --attach`).
#[derive(Debug, Clone)]
pub struct ConfigOnly {
    pub config: config::Config,
    pub read_only: bool,
}

/// Load the config; command-line flags override config values.
pub fn load_config(global: &GlobalArgs) -> Result<ConfigOnly> {
    let (config, _) = config::load(global.config.as_deref()).map_err(|e| eyre!(e))?;
    Ok(ConfigOnly {
        config,
        read_only: global.read_only,
    })
}

/// How to start this program's `upgrade` as its own process with the same files and
/// cluster as this one: the executable, `--config`, `--hosts`, `--kubeconfig`, `--context`,
/// `-v` (paths made absolute, so the engine finds them wherever it runs).
pub fn engine_command(global: &GlobalArgs) -> crate::operations::upgrade::process::EngineCommand {
    use std::ffi::OsString;
    let abs = |p: &std::path::Path| -> OsString {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .into_os_string()
    };
    let mut v: Vec<OsString> = Vec::new();
    if let Some(c) = &global.config {
        v.push("--config".into());
        v.push(abs(c));
    }
    v.push("--hosts".into());
    v.push(abs(&global.hosts));
    if let Some(k) = &global.kubeconfig {
        v.push("--kubeconfig".into());
        v.push(abs(k));
    }
    if let Some(c) = &global.context {
        v.push("--context".into());
        v.push(c.into());
    }
    if global.verbose > 0 {
        v.push(format!("-{}", "v".repeat(usize::from(global.verbose.min(2)))).into());
    }
    crate::operations::upgrade::process::EngineCommand::this_program(v)
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
            // Standard error may be gone (a detached engine's, a closed pipe): never panic.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error: {}", error_chain(&e));
            tracing::error!("{}", error_chain(&e));
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
            let engine = engine_command(&global);
            dashboard::run(env, writes, dashboard::Engines::new(engine)).await?;
            Ok(0)
        }
        Command::Check(args) => check::run(&global, &args).await,
        Command::Demo(args) => sim::demo(&global, &args).await,
        Command::Sim(args) => sim::run(&global, &args).await,
        Command::Diff(args) => diff::run(&global, &args).await,
        Command::Upgrade(args) => {
            if let Some(run_id) = &args.attach {
                let loaded = load_config(&global)?;
                return upgrade::attach(&loaded, &args, run_id).await;
            }
            let loaded = load(&global)?;
            let engine = engine_command(&global);
            upgrade::run(loaded, &args, &engine).await
        }
        Command::Drain(args) => {
            let loaded = load(&global)?;
            drain::drain(loaded, &args, &engine_command(&global)).await
        }
        Command::Uncordon(args) => drain::uncordon(load(&global)?, &args).await,
        Command::Config(c) => config_file::run(&global, &c).await,
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man => docs::man(),
    }
}
