//! The terminal: setup, restore (always: quit, error, panic, Ctrl-C, SIGTERM, SIGHUP), suspend
//! (Ctrl-Z, `fg`), and the event loop. One inbox: the terminal, the clock, the signal watchers,
//! the sources and the tasks all send a [`Msg`] on one channel; the loop only receives, lets the
//! app update, hands effects to the task registry and draws — it awaits nothing else.
//!
//! A panic anywhere — the UI thread, a source, a task, any thread — ends the process: the panic
//! hook waits for a frame being written to finish, restores the terminal, prints the report and
//! exits with [`EXIT_PANIC`]. Tokio would otherwise catch a task's panic and leave the dashboard
//! running in a terminal the hook had already handed back (cooked, main screen). Exiting from the
//! hook rather than asking the loop to quit works whatever state the loop is in (it may be the
//! thread that panicked, or wait on something the dead task held), and loses nothing a graceful
//! quit would keep: the upgrade journal is fsynced record by record and read back tolerating a
//! torn line, and the upgrade lock names its holder's pid, so a crashed run is found and resumed
//! as after `kill -9`.

use std::cell::Cell;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
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

/// A frame for sources' answers alone (no key, no task, no resize since the last one) waits
/// this long after the last frame: a round of 200 hosts' answers is a few frames and
/// assessments, not one each, and a key still gets its frame within [`MIN_FRAME`].
const SOURCE_FRAME: Duration = Duration::from_millis(250);

/// Messages waiting for the loop; producers wait when it is full (ticks are dropped instead).
const INBOX: usize = 1024;

/// A key whose frame came later than this is logged with where the time went (the issue's
/// budget for key to frame).
const SLOW_KEY: Duration = Duration::from_millis(100);

/// When the terminal watcher last read a key (nanoseconds since [`key_clock`]'s start).
static KEY_READ_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The clock of [`KEY_READ_AT`].
fn key_clock() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A key on its way to its frame, for the slow-key log: when it was read, when the loop took
/// it (with how many messages still waiting), how long the update took.
struct KeyTrace {
    read: Instant,
    taken: Instant,
    waiting: usize,
    update: Duration,
}

impl KeyTrace {
    /// The frame that shows the key was drawn (it took `draw`): log it when it was slow.
    fn drawn(self, draw: Duration) {
        let total = self.read.elapsed();
        if total >= SLOW_KEY {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            tracing::info!(
                "slow key: {:.0} ms from the key to its frame: {:.0} ms before the loop took it \
                 ({} messages waiting after it), update {:.1} ms, draw {:.1} ms, {:.0} ms waiting \
                 for the frame",
                ms(total),
                ms(self.taken.duration_since(self.read)),
                self.waiting,
                ms(self.update),
                ms(draw),
                ms(total.saturating_sub(self.taken.duration_since(self.read) + self.update + draw)),
            );
        }
    }
}

/// The exit code after a panic (the one Rust uses for a panic on the main thread).
pub const EXIT_PANIC: i32 = 101;

/// How long the panic hook waits for a frame being written on another thread.
const PANIC_WAIT: Duration = Duration::from_secs(2);

/// Held while the terminal is written to (a frame, a suspend), and taken for good by the panic
/// hook: a panic report never lands in the middle of a frame, nor a frame after the report.
static TERMINAL: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread holds [`TERMINAL`] (a panic while drawing must not wait for itself).
    static HOLDS_TERMINAL: Cell<bool> = const { Cell::new(false) };
}

/// [`TERMINAL`], held until dropped.
struct TerminalGuard(#[allow(dead_code)] MutexGuard<'static, ()>);

impl TerminalGuard {
    fn take() -> Self {
        let g = TERMINAL.lock().unwrap_or_else(PoisonError::into_inner);
        HOLDS_TERMINAL.set(true);
        TerminalGuard(g)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        HOLDS_TERMINAL.set(false);
    }
}

/// Restore the terminal: raw mode off, main screen back, cursor visible. Safe to call twice.
pub fn restore() {
    let _ = ratatui::try_restore();
    let mut out = std::io::stdout();
    let _ = crossterm::execute!(out, crossterm::cursor::Show);
    let _ = out.flush();
}

/// Take over the terminal, run the event loop until the user quits or a signal arrives, and
/// restore the terminal whatever happens (a panic ends the process through the panic hook). Returns what to
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

/// On a panic in any thread: wait for the frame being written (unless this thread is writing
/// it), restore the terminal, let the previous hook (color-eyre's report) print, and exit.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _held = (!HOLDS_TERMINAL.get()).then(wait_for_terminal);
        restore();
        previous(info);
        let _ = std::io::stderr().flush();
        std::process::exit(EXIT_PANIC);
    }));
}

/// [`TERMINAL`] for the panic hook: waits at most [`PANIC_WAIT`] (a frame stuck on a blocked
/// terminal must not keep the process alive).
fn wait_for_terminal() -> Option<MutexGuard<'static, ()>> {
    let until = std::time::Instant::now() + PANIC_WAIT;
    loop {
        match TERMINAL.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

/// Where frames go: the terminal, or a test's buffer.
pub trait Screen {
    /// Draw the app and say what the layout measured.
    fn draw(&mut self, app: &App) -> Result<LayoutFacts>;

    /// Ctrl-Z or SIGTSTP: hand the terminal back to the shell and stop until continued (`fg`);
    /// returns with the terminal taken over again and the next frame drawn whole. A buffer has
    /// no terminal to hand back.
    fn suspend(&mut self) -> Result<()> {
        Ok(())
    }

    /// The process was continued (SIGCONT) — after a stop it did not ask for, the shell may
    /// have changed the terminal: take it over again and draw the next frame whole.
    fn resume(&mut self) -> Result<()> {
        Ok(())
    }
}

struct Terminal<'a> {
    terminal: &'a mut DefaultTerminal,
    theme: &'a Theme,
}

impl Terminal<'_> {
    /// Raw mode, the alternate screen, the cursor hidden, and a clear screen so that the next
    /// frame is drawn whole.
    fn take_over(&mut self) -> Result<()> {
        // Raw mode from the modes saved at startup: crossterm sets it only when it believes it
        // off, and the shell may have reset the terminal while we were stopped.
        let _ = crossterm::terminal::disable_raw_mode();
        crossterm::terminal::enable_raw_mode().wrap_err("cannot set the terminal to raw mode")?;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide,
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
        )
        .wrap_err("cannot switch to the alternate screen")?;
        // Both buffers blank, so that the next frame is written whole. Not `clear()`: it asks
        // the terminal for the cursor position, whose answer the input reader would swallow.
        self.terminal.swap_buffers();
        self.terminal.swap_buffers();
        Ok(())
    }
}

impl Screen for Terminal<'_> {
    fn suspend(&mut self) -> Result<()> {
        {
            let _g = TerminalGuard::take();
            restore();
        }
        stop_process_group();
        // Continued (or never stopped: no shell with job control to continue us). The SIGCONT that follows takes the terminal over once more, which costs a
        // whole frame and keeps this free of any bookkeeping about who continued us.
        let _g = TerminalGuard::take();
        self.take_over()
    }

    fn resume(&mut self) -> Result<()> {
        let _g = TerminalGuard::take();
        self.take_over()
    }

    fn draw(&mut self, app: &App) -> Result<LayoutFacts> {
        let _g = TerminalGuard::take();
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

/// Stop like a job stopped by Ctrl-Z in a cooked terminal, when a shell with job control
/// started us (our parent is in the same session but another process group: it waits for the
/// stop and hands the terminal over); returns once continued. SIGSTOP rather than SIGTSTP: the
/// watcher ([`watch_signals`]) catches SIGTSTP, and a stop that it caught would arrive as one
/// more suspend after `fg`. Without job control nobody could continue us, so we do not stop —
/// as the kernel drops SIGTSTP for such a process group.
fn stop_process_group() {
    // SAFETY: getppid, getpgid, getpgrp, getsid and kill have no memory-safety preconditions;
    // pid 0 is our own process group.
    unsafe {
        let parent = libc::getppid();
        let job_control =
            libc::getpgid(parent) != libc::getpgrp() && libc::getsid(parent) == libc::getsid(0);
        if job_control {
            libc::kill(0, libc::SIGSTOP);
        }
    }
}

/// Ctrl-Z (raw mode delivers it as a key, not as SIGTSTP).
fn is_suspend_key(k: &KeyEvent) -> bool {
    k.code == KeyCode::Char('z') && k.modifiers.contains(KeyModifiers::CONTROL)
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
    app.defer_assessment();
    frame(screen, &mut app)?;
    let mut last_draw = Instant::now();
    let mut dirty = false;
    // Whether something but a source's answer asks for the next frame.
    let mut urgent = false;
    let mut key: Option<KeyTrace> = None;
    // Freed memory goes back to the system once a burst of answers is over.
    let mut trim = crate::base::memory::Trim::new();
    loop {
        let wait = if urgent { MIN_FRAME } else { SOURCE_FRAME };
        let trim_at = trim.due();
        let msg = tokio::select! {
            m = inbox.recv() => match m {
                Some(m) => m,
                None => return Ok(app.farewell()),
            },
            () = tokio::time::sleep_until(trim_at.map_or_else(Instant::now, Instant::from_std)), if trim_at.is_some() => {
                trim.done(std::time::Instant::now());
                tokio::task::spawn_blocking(crate::base::memory::give_back);
                continue;
            }
            () = tokio::time::sleep_until(last_draw + wait), if dirty => {
                let started = Instant::now();
                frame(screen, &mut app)?;
                if let Some(k) = key.take() {
                    k.drawn(started.elapsed());
                }
                last_draw = Instant::now();
                dirty = false;
                urgent = false;
                continue;
            }
        };
        let taken = Instant::now();
        let is_key = matches!(msg, Msg::Key(_));
        let from_source = matches!(msg, Msg::Update(_));
        if from_source {
            trim.arrived(taken.into_std());
        }
        #[cfg(feature = "test-util")]
        test_panic::trigger(&msg);
        let msg = match msg {
            // Ctrl-Z, whatever the keymap says: raw mode delivers it as a key, not as SIGTSTP.
            Msg::Key(k) if is_suspend_key(&k) => Msg::Suspend,
            Msg::Continued => {
                screen.resume()?;
                Msg::Continued
            }
            m => m,
        };
        let mut effects = vec![app.update(msg)];
        if is_key {
            let read = key_clock()
                + Duration::from_nanos(KEY_READ_AT.load(std::sync::atomic::Ordering::Relaxed));
            key = Some(KeyTrace {
                read: read.min(taken),
                taken,
                waiting: inbox.len(),
                update: taken.elapsed(),
            });
        }
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
                Effect::Suspend => {
                    screen.suspend()?;
                    frame(screen, &mut app)?;
                    last_draw = Instant::now();
                    dirty = false;
                    urgent = false;
                }
            }
        }
        if !dirty {
            // Nothing to draw for it: no frame to wait for.
            key = None;
        } else if !from_source {
            urgent = true;
        }
        let wait = if urgent { MIN_FRAME } else { SOURCE_FRAME };
        if dirty && last_draw.elapsed() >= wait {
            let started = Instant::now();
            frame(screen, &mut app)?;
            if let Some(k) = key.take() {
                k.drawn(started.elapsed());
            }
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
        }
    }
}

/// Draw the app as it is, its sources' answers assessed first, and tell it the layout drawn.
fn frame(screen: &mut impl Screen, app: &mut App) -> Result<()> {
    app.settle();
    let (facts, until) = crate::app::panes::valid_until(|| screen.draw(app));
    app.drawn(until);
    let facts = facts?;
    app.update(Msg::Layout(facts));
    Ok(())
}

/// Keys and resizes; the end or failure of the input says the terminal went away.
fn watch_terminal(tx: mpsc::Sender<Msg>) {
    tokio::spawn(async move {
        let mut events = EventStream::new();
        loop {
            let msg = match events.next().await {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                    let at = key_clock().elapsed().as_nanos() as u64;
                    KEY_READ_AT.store(at, std::sync::atomic::Ordering::Relaxed);
                    Msg::Key(k)
                }
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

/// SIGTERM, SIGHUP and SIGINT become a message (the app quits, the terminal is restored);
/// SIGTSTP (`kill -TSTP`; Ctrl-Z arrives as a key) becomes [`Msg::Suspend`] (the terminal is
/// handed back before the process stops); SIGCONT (continued after a stop) becomes
/// [`Msg::Continued`] (the terminal is taken over again and drawn whole).
fn watch_signals(tx: &mpsc::Sender<Msg>) -> Result<()> {
    for (kind, name, msg) in [
        (libc::SIGTSTP, "SIGTSTP", Msg::Suspend),
        (libc::SIGCONT, "SIGCONT", Msg::Continued),
    ] {
        let mut s =
            signal(SignalKind::from_raw(kind)).wrap_err_with(|| format!("cannot watch {name}"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(msg.clone()).await.is_err() {
                    return;
                }
            }
        });
    }
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

/// Only with the `test-util` feature, which the tests' build of the binary has (the
/// dev-dependency on this crate turns it on) and a `cargo build`/`cargo install` does not: with
/// `HOMEINFRA_TEST_PANIC=ui` F12 panics on the UI thread, with `HOMEINFRA_TEST_PANIC=task` in a
/// spawned background task — for the terminal tests (tests/tui/tui_e2e.rs). A key rather than
/// the variable alone, so that a test sees the dashboard drawn before it makes it panic.
#[cfg(feature = "test-util")]
mod test_panic {
    use crossterm::event::KeyCode;

    use crate::app::Msg;

    pub(super) fn trigger(msg: &Msg) {
        if !matches!(msg, Msg::Key(k) if k.code == KeyCode::F(12)) {
            return;
        }
        match std::env::var("HOMEINFRA_TEST_PANIC").as_deref() {
            Ok("ui") => panic!("test panic on the UI thread (HOMEINFRA_TEST_PANIC=ui)"),
            Ok("task") => {
                tokio::spawn(async {
                    panic!("test panic in a background task (HOMEINFRA_TEST_PANIC=task)")
                });
            }
            _ => {}
        }
    }
}
