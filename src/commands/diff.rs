//! `homeinfra-tui diff`: the headless closure diff (text or `--json`), with nix's progress
//! on stderr and Ctrl-C cancelling (killing nix's process group).

use color_eyre::eyre::{Result, WrapErr, eyre};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{DiffArgs, DiffMode, GlobalArgs};
use crate::model::closure::ClosureDiff;
use crate::operations::closure_diff::{
    self as cd, Nix, NixCopyFromSsh, Progress, Reporter, SshTarget,
};

/// What `diff --json` prints: the classified diff plus what it was computed from.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    /// `paths`, `drift` or `update`.
    pub mode: &'static str,
    pub host: Option<&'a str>,
    pub up_to_date: bool,
    pub badge: String,
    /// `update` mode: what `nix flake update` reported.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub lock_changes: &'a [String],
    #[serde(flatten)]
    pub diff: &'a ClosureDiff,
}

/// Run the command; exit code 0 when the diff was computed (up to date or not).
pub async fn run(global: &GlobalArgs, args: &DiffArgs) -> Result<u8> {
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(256);
    let printer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            eprintln!("{p}");
        }
    });
    let reporter = Reporter::new(tx);
    let result = compute(global, args, &reporter, &cancel).await;
    drop(reporter);
    let _ = printer.await;
    let (mode, host, diff, lock_changes) = result?;
    if args.json {
        let doc = Document {
            mode,
            host: host.as_deref(),
            up_to_date: diff.is_up_to_date(),
            badge: diff.badge(),
            lock_changes: &lock_changes,
            diff: &diff,
        };
        let text = serde_json::to_string_pretty(&doc).wrap_err("cannot encode the diff as JSON")?;
        println!("{text}");
    } else {
        let colour = crate::base::use_colour();
        if let Some(h) = &host {
            println!("host: {h} ({mode})");
        }
        print!("{}", cd::render::to_text(&diff, colour));
    }
    Ok(0)
}

type Computed = (&'static str, Option<String>, ClosureDiff, Vec<String>);

async fn compute(
    global: &GlobalArgs,
    args: &DiffArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Computed> {
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        // Two store paths: no inventory needed.
        let (config, _) = crate::config::load(global.config.as_deref()).map_err(|e| eyre!(e))?;
        let mut nix = Nix::from_config(&config.nix);
        nix.offline = global.offline;
        let from = from.to_string_lossy();
        let to = to.to_string_lossy();
        let diff = cd::diff_paths(&nix, &from, &to, reporter, cancel).await?;
        return Ok(("paths", None, diff, Vec::new()));
    }
    let ctx = super::load(global)?.env;
    let wanted = args
        .host
        .as_deref()
        .ok_or_else(|| eyre!("name a host, or give --from and --to"))?;
    let host = ctx
        .inventory
        .host(wanted)
        .or_else(|| ctx.inventory.by_name(wanted))
        .ok_or_else(|| eyre!("host `{wanted}` is not in {}", ctx.inventory.path.display()))?
        .clone();
    let flake = ctx.config.nix.flake.clone().ok_or_else(|| {
        eyre!("no flake configured: set `flake = \"...\"` in the [nix] section of the config file")
    })?;
    let mut nix = Nix::from_config(&ctx.config.nix);
    nix.offline = global.offline;
    match args.mode {
        DiffMode::Update => {
            let out = cd::update_diff(&nix, &flake, &host.id, reporter, cancel).await?;
            Ok(("update", Some(host.id), out.diff, out.lock_changes))
        }
        DiffMode::Drift => {
            if global.offline {
                return Err(eyre!(
                    "drift mode reads the deployed system over SSH: not with --offline \
                     (use --mode update, or --from/--to)"
                ));
            }
            if !ctx.config.ssh.enabled {
                return Err(eyre!(
                    "drift mode needs SSH, which is disabled in the config"
                ));
            }
            let target = SshTarget::for_host(&host, &ctx.config.ssh).map_err(|e| eyre!("{e}"))?;
            reporter
                .step(format!(
                    "reading /run/current-system on {}",
                    target.store_uri()
                ))
                .await;
            let deployed =
                cd::deployed_system_via_ssh(&target, "/run/current-system", reporter, cancel)
                    .await?;
            let source = NixCopyFromSsh {
                target,
                trust_host_store: ctx.config.nix.trust_host_store,
            };
            let diff = cd::drift_diff(&nix, &deployed, &source, &flake, &host.id, reporter, cancel)
                .await?;
            Ok(("drift", Some(host.id), diff, Vec::new()))
        }
    }
}
