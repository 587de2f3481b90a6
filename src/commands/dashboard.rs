//! The dashboard command: load the theme and keymap, check the terminal and the config's
//! PromQL, build the application state, and hand it to the terminal's event loop.

use std::io::IsTerminal;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};

use crate::app::{App, Keymap};
use crate::base::{Env, Writes};
use crate::sources;
use crate::ui::{self, Theme};

/// Run the dashboard until the user quits or a signal arrives.
pub async fn run(ctx: Env, writes: Option<Writes>) -> Result<()> {
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
    let app = App::new(
        ctx.inventory.clone(),
        ctx.config.clone(),
        keymap,
        sources::initial_snapshot(&ctx),
        context,
        writes.is_none(),
        jiff::Timestamp::now(),
    );
    crate::tui::run(app, &theme, &ctx, writes).await
}
