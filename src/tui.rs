//! The terminal: setup, restore (always: quit, error, panic, Ctrl-C, SIGTERM, SIGHUP), and the
//! event loop — one owner of state, redraw only when something changed.

use std::io::Write;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, MissedTickBehavior};

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::app::Pending;
use crate::app::panes::Tone;
use crate::app::{App, Effect, Msg};
use crate::base::Env;
use crate::operations::diff_task::{self, DiffEvent, DiffRequest};
use crate::operations::upgrade::Control;
use crate::operations::upgrade::engine::UpgradeHandle;
use crate::operations::upgrade::progress::RunProgress;
use crate::operations::upgrade_task::{self, UpgradeMsg};
use crate::sources::{self, Update};
use crate::ui::{self, Theme};

/// At most this often (≈ 60 redraws/s).
const MIN_FRAME: Duration = Duration::from_millis(16);

/// Restore the terminal: raw mode off, main screen back, cursor visible. Safe to call twice.
pub fn restore() {
    let _ = ratatui::try_restore();
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(out, crossterm::cursor::Show);
    let _ = out.flush();
}

/// Take over the terminal, run the event loop until the user quits or a signal arrives, and
/// restore the terminal whatever happens (the panic hook restores it too).
pub async fn run(app: App, theme: &Theme, env: &Env) -> Result<()> {
    let mut terminal = ratatui::try_init().wrap_err("cannot set up the terminal")?;
    install_panic_hook();
    let result = event_loop(&mut terminal, app, theme, env).await;
    restore();
    result
}

/// Restore first, then let the previous hook (color-eyre's report) print.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

fn draw(terminal: &mut DefaultTerminal, app: &App, theme: &Theme) -> Result<()> {
    // Synchronized update: the terminal shows the whole frame at once, never a torn one.
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::BeginSynchronizedUpdate
    );
    let r = terminal.draw(|f| ui::draw(f, app, theme));
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EndSynchronizedUpdate
    );
    r.map(|_| ()).wrap_err("cannot draw (terminal gone?)")
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    mut app: App,
    theme: &Theme,
    ctx: &Env,
) -> Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).wrap_err("cannot watch SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).wrap_err("cannot watch SIGHUP")?;
    let mut sigint = signal(SignalKind::interrupt()).wrap_err("cannot watch SIGINT")?;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.config.ui.tick_ms.max(100)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    // First frame before any network I/O.
    draw(terminal, &app, theme)?;
    let mut last_draw = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Update>(256);
    let sources = sources::spawn_all(ctx, tx);
    let (diff_tx, mut diff_rx) = tokio::sync::mpsc::channel::<DiffEvent>(256);
    let (status_tx, mut status_rx) = tokio::sync::mpsc::channel::<(String, Tone)>(16);
    let (up_tx, mut up_rx) = tokio::sync::mpsc::channel::<UpgradeMsg>(1024);
    let mut upgrade: Option<UpgradeHandle> = None;
    let mut diff_tasks: HashMap<String, CancellationToken> = HashMap::new();
    let mut dirty = false;

    loop {
        let msg = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Some(Ok(Event::Resize(..))) => Msg::Resize,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).wrap_err("terminal input failed (terminal gone?)"),
                None => return Ok(()),
            },
            Some(u) = rx.recv() => Msg::Update(u),
            Some((text, tone)) = status_rx.recv() => Msg::Status(text, tone),
            Some(m) = up_rx.recv() => Msg::Upgrade(m),
            Some(d) = diff_rx.recv() => {
                if let DiffEvent::Done { host, .. } = &d {
                    diff_tasks.remove(host);
                }
                Msg::Diff(d)
            }
            _ = tick.tick() => Msg::Tick(jiff::Timestamp::now()),
            _ = sigterm.recv() => return Ok(()),
            _ = sighup.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
            _ = tokio::time::sleep_until(last_draw + MIN_FRAME), if dirty => {
                draw(terminal, &app, theme)?;
                last_draw = Instant::now();
                dirty = false;
                continue;
            }
        };
        if let Ok(size) = terminal.size() {
            app.page_rows = ui::focused_rows(
                ratatui::layout::Rect::new(0, 0, size.width, size.height),
                &app,
            );
        }
        match app.update(msg) {
            Effect::Quit => return Ok(()),
            Effect::Redraw => dirty = true,
            Effect::Refresh => sources.refresh(),
            Effect::StartDiff(host) => {
                start_diff(&mut app, ctx, &host, &mut diff_tasks, &diff_tx);
                dirty = true;
            }
            Effect::OpenDiff(host) => {
                let lock = diff_task::lock_fingerprint(&ctx.config.nix);
                if !app.diff_is_fresh(&host, lock.as_deref()) {
                    start_diff(&mut app, ctx, &host, &mut diff_tasks, &diff_tx);
                }
                dirty = true;
            }
            Effect::CancelDiff(host) => {
                if let Some(t) = diff_tasks.remove(&host) {
                    t.cancel();
                }
                dirty = true;
            }
            Effect::PlanUpgrade(only) => {
                upgrade_task::spawn_plan(ctx.clone(), only, up_tx.clone());
                dirty = true;
            }
            Effect::Run(Pending::StartUpgrade { .. }) => {
                if let Some(Ok(planned)) = &app.upgrade.planned {
                    let plan = planned.plan.clone();
                    match upgrade_task::start(ctx, plan.clone(), up_tx.clone()).await {
                        Ok(h) => {
                            app.upgrade.progress = Some(RunProgress::new(&plan));
                            upgrade = Some(h);
                        }
                        Err(e) => {
                            app.status = Some((
                                format!(
                                    "cannot start the upgrade: {}",
                                    crate::base::error_chain(&e)
                                ),
                                Tone::Critical,
                            ));
                        }
                    }
                }
                dirty = true;
            }
            Effect::Run(Pending::Control(c)) => {
                let sent = upgrade.as_ref().is_some_and(|h| h.try_send(c.clone()));
                match (&c, sent) {
                    (Control::Pause, true) => app.upgrade.paused = true,
                    (Control::Resume, true) => app.upgrade.paused = false,
                    (_, false) => {
                        app.status = Some(("the upgrade is not running".into(), Tone::Warning))
                    }
                    _ => {}
                }
                dirty = true;
            }
            Effect::Run(p) => {
                spawn_change(p, ctx.config.kubernetes.clone(), status_tx.clone());
                sources.refresh();
                dirty = true;
            }
            Effect::ExportDiff(host) => {
                app.status = Some(export_diff(&app, &host));
                dirty = true;
            }
            Effect::None => {}
        }
        if dirty && last_draw.elapsed() >= MIN_FRAME {
            draw(terminal, &app, theme)?;
            last_draw = Instant::now();
            dirty = false;
        }
    }
}

/// Start (or restart) the closure diff of a host; its events come back on `tx`.
fn start_diff(
    app: &mut App,
    ctx: &Env,
    host: &str,
    tasks: &mut HashMap<String, CancellationToken>,
    tx: &tokio::sync::mpsc::Sender<DiffEvent>,
) {
    let Some(h) = app.inventory.host(host).cloned() else {
        return;
    };
    let req = DiffRequest {
        deployed: app.deployed_system(host),
        host: h,
        nix: ctx.config.nix.clone(),
        ssh: ctx.config.ssh.clone(),
    };
    if let Some(old) = tasks.remove(host) {
        old.cancel();
    }
    tasks.insert(host.to_string(), diff_task::spawn(req, tx.clone()));
    app.diff_started(host, diff_task::lock_fingerprint(&ctx.config.nix));
}

/// Carry out a confirmed change with the upgrade engine's own cordon step; report in the footer.
fn spawn_change(
    p: crate::app::Pending,
    cfg: crate::config::KubernetesConfig,
    tx: tokio::sync::mpsc::Sender<(String, Tone)>,
) {
    use crate::operations::upgrade::live;
    tokio::spawn(async move {
        let result = async {
            let client = crate::sources::kubernetes::client(&cfg)
                .await
                .map_err(|e| eyre!(e))?;
            match &p {
                Pending::Cordon { node } => {
                    live::cordon(&client, node, &live::manual_run_id()).await
                }
                Pending::Uncordon { node } => live::uncordon(&client, node).await,
                other => Err(eyre!("not a cluster change: {other:?}")),
            }
        }
        .await;
        let msg = match (&p, result) {
            (Pending::Cordon { node }, Ok(())) => (format!("{node} cordoned"), Tone::Ok),
            (Pending::Uncordon { node }, Ok(())) => (format!("{node} uncordoned"), Tone::Ok),
            (_, Ok(())) => ("done".to_string(), Tone::Ok),
            (_, Err(e)) => (
                format!("failed: {}", crate::base::error_chain(&e)),
                Tone::Critical,
            ),
        };
        tracing::info!(change = ?p, outcome = %msg.0, "change by the operator");
        let _ = tx.send(msg).await;
    });
}

/// Write a host's diff as plain text under `$XDG_STATE_HOME/homeinfra-tui/diffs/`.
fn export_diff(app: &App, host: &str) -> (String, Tone) {
    let Some(Some(Ok(diff))) = app.diffs.get(host).map(|v| v.result.as_ref()) else {
        return ("nothing to export yet".into(), Tone::Warning);
    };
    let Some(dir) = crate::paths::app_state_dir().map(|d| d.join("diffs")) else {
        return ("cannot export: no home directory".into(), Tone::Critical);
    };
    let stamp = app
        .now
        .to_zoned(app.tz.clone())
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    let path = dir.join(format!("{host}-{stamp}.txt"));
    let text = format!(
        "host: {host}\n{}",
        crate::operations::closure_diff::render::to_text(diff, false)
    );
    match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, text)) {
        Ok(()) => (format!("diff exported to {}", path.display()), Tone::Ok),
        Err(e) => (
            format!("cannot export to {}: {e}", path.display()),
            Tone::Critical,
        ),
    }
}
