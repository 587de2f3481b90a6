//! The dashboard command: load the theme and keymap, check the terminal and the config's
//! PromQL, build the application state, and hand it to the terminal's event loop.

use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};

use crate::app::{App, Keymap};
use crate::base::{Env, Writes};
use crate::operations::upgrade::process::EngineCommand;
use crate::sources;
use crate::tasks::upgrade::EngineProcess;
use crate::ui::{self, Theme};

/// How the dashboard starts the engine of a run: this program's `upgrade`, as its own process.
pub struct Engines {
    command: EngineCommand,
    demo: bool,
}

impl Engines {
    pub fn new(command: EngineCommand) -> Self {
        Self {
            command,
            demo: false,
        }
    }

    /// The demo's: the simulated cluster lives in this process, so each engine stops when
    /// this process is gone (rather than wait on a cluster that is no more).
    pub fn demo(command: EngineCommand) -> Self {
        let pid = std::process::id().to_string();
        Self {
            command: command.with_upgrade_flags(vec!["--stop-with-pid".into(), pid.into()]),
            demo: true,
        }
    }
}

/// Run the dashboard until the user quits or a signal arrives.
pub async fn run(ctx: Env, writes: Option<Writes>, engines: Engines) -> Result<()> {
    let theme = Theme::load(
        ctx.config.ui.theme.as_deref(),
        ui::theme::no_color_requested(),
    )
    .map_err(|e| eyre!(e))?;
    let keymap = Keymap::with_overrides(&ctx.config.ui.keys).map_err(|e| {
        let file = ctx
            .config_path
            .as_ref()
            .map_or("config".to_string(), |p| p.display().to_string());
        eyre!("{file}: {e}")
    })?;
    // A bad PromQL override is a startup error (an unreachable Mimir is not: its pane says so).
    if !ctx.offline && ctx.config.mimir.url.is_some() {
        let check = crate::sources::mimir::check_config(&ctx.config.mimir);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(3), check).await {
            return Err(e);
        }
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(eyre!(
            "the dashboard needs a terminal; for scripts use `homeinfra-tui check [--json]`"
        ));
    }
    let context = if let Some(l) = &ctx.label {
        l.clone()
    } else if ctx.offline {
        "offline".to_string()
    } else {
        ctx.config
            .kubernetes
            .context
            .clone()
            .unwrap_or_else(|| "current context".into())
    };
    let mut app = App::new(
        ctx.inventory.clone(),
        ctx.config.clone(),
        keymap,
        sources::initial_snapshot(&ctx),
        context,
        writes.is_none(),
        jiff::Timestamp::now(),
    );
    app.discover_runs = !ctx.offline;
    app.demo = engines.demo;
    let upgrades = Arc::new(EngineProcess::new(
        ctx.clone(),
        engines.command,
        writes.clone(),
    ));
    let farewell = crate::tui::run(app, &theme, &ctx, writes, upgrades).await?;
    if let Some(f) = farewell {
        // The terminal may be gone (SIGHUP): then nobody reads it.
        let _ = writeln!(std::io::stdout(), "{f}");
    }
    Ok(())
}
