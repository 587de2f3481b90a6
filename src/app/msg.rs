//! What goes into the app (`Msg`, one type for every producer) and what comes out of
//! `update` (`Effect`, for the event loop to hand to the task registry).

use crossterm::event::KeyEvent;
use jiff::Timestamp;

use crate::operations::upgrade::Control;
use crate::sources::Update;
use crate::tasks::{Task, TaskId, TaskKey, TaskMsg};

/// A message to the owner of state. Every producer sends one on the same channel: the
/// terminal, the clock, the signal watchers, the sources (through the registry), the tasks,
/// and the renderer (what it measured).
// One message at a time passes through: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    /// The clock ticked.
    Tick(Timestamp),
    Update(Update),
    /// A task's progress, result or event.
    Task(TaskMsg),
    /// What the last frame measured.
    Layout(LayoutFacts),
    /// SIGTERM, SIGHUP or SIGINT: quit (the terminal is restored on the way out).
    Signal(&'static str),
    /// Ctrl-Z or SIGTSTP: hand the terminal back to the shell and stop (unless an upgrade runs
    /// in this process).
    Suspend,
    /// The process was continued after a stop (SIGCONT, `fg`): the terminal loop has taken the
    /// terminal over again; everything is drawn anew.
    Continued,
    /// The terminal's input ended (`None`) or failed: nobody is watching any more.
    TerminalGone(Option<String>),
}

impl From<TaskMsg> for Msg {
    fn from(m: TaskMsg) -> Self {
        Msg::Task(m)
    }
}

impl From<Update> for Msg {
    fn from(u: Update) -> Self {
        Msg::Update(u)
    }
}

/// Layout facts the state needs and only the renderer knows (reported after each frame, like
/// television's render task does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutFacts {
    /// Table rows visible in the focused pane (PgUp/PgDn on the dashboard).
    pub page_rows: usize,
    /// Body lines visible in the overlay on top (the diff view, the detail), if any.
    pub overlay_rows: Option<usize>,
}

/// What `update` asks of the event loop. Nothing here is awaited by the loop: tasks are
/// handed to the registry and come back as messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Redraw,
    Quit,
    /// Quit with an error (the terminal went away under us).
    Fail(String),
    /// Poll the sources now.
    Refresh,
    /// Run this task (the registry coalesces per key).
    Start(Task),
    /// Stop the running task of this key (and drop a waiting one).
    Cancel(TaskKey),
    /// Send a confirmed control to the upgrade run this task follows.
    Control {
        task: TaskId,
        control: Control,
    },
    /// Several of the above, in order.
    Many(Vec<Effect>),
    /// Leave the terminal to the shell and stop until continued (`fg`), then draw anew.
    Suspend,
}
