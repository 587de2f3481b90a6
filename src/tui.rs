//! The terminal: setup, restore (always: quit, error, panic, Ctrl-C, SIGTERM, SIGHUP), and the
//! event loop. One inbox: the terminal, the clock, the signal watchers, the sources and the
//! tasks all send a [`Msg`] on one channel; the loop only receives, lets the app update,
//! hands effects to the task registry and draws — it awaits nothing else.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::app::{App, Effect, LayoutFacts, Msg};
use crate::base::{Env, Writes};
use crate::tasks::upgrade::UpgradeBackend;
use crate::tasks::{Registry, Setup};
use crate::ui::{self, Theme};

/// At most this often (≈ 60 redraws/s).
const MIN_FRAME: Duration = Duration::from_millis(16);

/// Messages waiting for the loop; producers wait when it is full (ticks are dropped instead).
const INBOX: usize = 1024;

/// Restore the terminal: raw mode off, main screen back, cursor visible. Safe to call twice.
pub fn restore() {
    let _ = ratatui::try_restore();
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(out, crossterm::cursor::Show);
    let _ = out.flush();
}

/// Take over the terminal, run the event loop until the user quits or a signal arrives, and
/// restore the terminal whatever happens (the panic hook restores it too). Returns what to
/// say once the terminal is back (a run that goes on without the dashboard).
pub async fn run(
    app: App,
    theme: &Theme,
    env: &Env,
    writes: Option<Writes>,
    upgrades: Arc<dyn UpgradeBackend>,
) -> Result<Option<String>> {
    let mut terminal = ratatui::try_init().wrap_err("cannot set up the terminal")?;
    install_panic_hook();
    let result = session(&mut terminal, app, theme, env, writes, upgrades).await;
    restore();
    result
}

/// Restore first, then let the previous hook (color-eyre's report) print. Any thread.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Where frames go: the terminal, or a test's buffer.
pub trait Screen {
    /// Draw the app and say what the layout measured.
    fn draw(&mut self, app: &App) -> Result<LayoutFacts>;
}

struct Terminal<'a> {
    terminal: &'a mut DefaultTerminal,
    theme: &'a Theme,
}

impl Screen for Terminal<'_> {
    fn draw(&mut self, app: &App) -> Result<LayoutFacts> {
        // Synchronized update: the terminal shows the whole frame at once, never a torn one.
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::BeginSynchronizedUpdate
        );
        let mut facts = None;
        let r = self
            .terminal
            .draw(|f| facts = Some(ui::render(f, app, self.theme)));
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EndSynchronizedUpdate
        );
        r.wrap_err("cannot draw (terminal gone?)")?;
        facts.ok_or_else(|| eyre!("the frame was not drawn"))
    }
}

async fn session(
    terminal: &mut DefaultTerminal,
    app: App,
    theme: &Theme,
    env: &Env,
    writes: Option<Writes>,
    upgrades: Arc<dyn UpgradeBackend>,
) -> Result<Option<String>> {
    let mut screen = Terminal { terminal, theme };
    let (tx, rx) = mpsc::channel::<Msg>(INBOX);
    watch_signals(&tx)?;
    watch_terminal(tx.clone());
    tick(
        tx.clone(),
        Duration::from_millis(env.config.ui.tick_ms.max(100)),
    );
    // The first frame comes before any network I/O (the registry starts the sources).
    let registry = Registry::spawn(
        Setup {
            env: env.clone(),
            writes,
            upgrades,
            sources: true,
        },
        tx,
    );
    event_loop(rx, app, &registry, &mut screen).await
}

/// The loop: receive, update, hand effects over, draw (at most once per [`MIN_FRAME`], only
/// after a change). Ends when the app quits or every producer is gone, with the app's last
/// word ([`App::farewell`]: a run that goes on).
pub async fn event_loop(
    mut inbox: mpsc::Receiver<Msg>,
    mut app: App,
    registry: &Registry,
    screen: &mut impl Screen,
) -> Result<Option<String>> {
    let facts = screen.draw(&app)?;
    app.update(Msg::Layout(facts));
    let mut last_draw = Instant::now();
    let mut dirty = false;
    loop {
        let msg = tokio::select! {
            m = inbox.recv() => match m {
                Some(m) => m,
                None => return Ok(app.farewell()),
            },
            () = tokio::time::sleep_until(last_draw + MIN_FRAME), if dirty => {
                let facts = screen.draw(&app)?;
                app.update(Msg::Layout(facts));
                last_draw = Instant::now();
                dirty = false;
                continue;
            }
        };
        let mut effects = vec![app.update(msg)];
        while let Some(effect) = effects.pop() {
            match effect {
                Effect::None => {}
                Effect::Redraw => dirty = true,
                Effect::Quit => return Ok(app.farewell()),
                Effect::Fail(e) => return Err(eyre!(e)),
                Effect::Refresh => {
                    registry.refresh_sources();
                    dirty = true;
                }
                Effect::Start(task) => {
                    registry.start(task);
                    dirty = true;
                }
                Effect::Cancel(key) => {
                    registry.cancel(key);
                    dirty = true;
                }
                Effect::Control { task, control } => {
                    registry.control(task, control);
                    dirty = true;
                }
                // In order: the last is popped first.
                Effect::Many(list) => effects.extend(list.into_iter().rev()),
            }
        }
        if dirty && last_draw.elapsed() >= MIN_FRAME {
            let facts = screen.draw(&app)?;
            app.update(Msg::Layout(facts));
            last_draw = Instant::now();
            dirty = false;
        }
    }
}

/// Keys and resizes; the end or failure of the input says the terminal went away.
fn watch_terminal(tx: mpsc::Sender<Msg>) {
    tokio::spawn(async move {
        let mut events = EventStream::new();
        loop {
            let msg = match events.next().await {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Some(Ok(Event::Resize(..))) => Msg::Resize,
                Some(Ok(_)) => continue,
                Some(Err(e)) => Msg::TerminalGone(Some(e.to_string())),
                None => Msg::TerminalGone(None),
            };
            let gone = matches!(msg, Msg::TerminalGone(_));
            if tx.send(msg).await.is_err() || gone {
                return;
            }
        }
    });
}

/// The clock: a tick dropped when the inbox is full is not missed.
fn tick(tx: mpsc::Sender<Msg>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(mpsc::error::TrySendError::Closed(_)) =
                tx.try_send(Msg::Tick(jiff::Timestamp::now()))
            {
                return;
            }
        }
    });
}

/// SIGTERM, SIGHUP and SIGINT become a message (the app quits, the terminal is restored).
fn watch_signals(tx: &mpsc::Sender<Msg>) -> Result<()> {
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::interrupt(), "SIGINT"),
    ] {
        let mut s = signal(kind).wrap_err_with(|| format!("cannot watch {name}"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(Msg::Signal(name)).await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}
