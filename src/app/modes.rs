//! What the screen shows over the dashboard, as a stack: help over the diff view returns to
//! the diff view, a question returns to the view that asked it. The top of the stack has the
//! keyboard through its keymap layer.

use crate::operations::upgrade::{Control, Plan, Step};

use super::App;
use super::keymap::Layer;

/// One view over the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The dashboard itself (the bottom of the stack).
    Normal,
    /// Typing a filter for what it covers: the focused pane's table, or the diff view.
    Filtering,
    Help,
    /// Detail of the row with this key in the focused pane.
    Detail(String),
    /// The closure diff of this host.
    Diff(String),
    /// A question before a change: only `y` does it, anything else cancels.
    Confirm(Pending),
    /// The rolling upgrade: plan, then the live run.
    Upgrade,
    /// Quit asked while a run goes on: it goes on without the dashboard; `q` leaves, `a`
    /// asks to abort it, any other key stays.
    Leaving,
}

impl Mode {
    /// The keymap layer that has the keyboard in this mode.
    pub fn layer(&self) -> Layer {
        match self {
            Mode::Normal | Mode::Help | Mode::Detail(_) => Layer::Dashboard,
            Mode::Filtering => Layer::Input,
            Mode::Diff(_) => Layer::Diff,
            Mode::Confirm(_) => Layer::Confirm,
            Mode::Upgrade | Mode::Leaving => Layer::Upgrade,
        }
    }
}

/// A change that waits for the operator's yes (data: what is confirmed is what runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    /// Start this plan; one line per node says whether it will reboot, as far as known.
    StartUpgrade {
        plan: Plan,
        reboots: Vec<String>,
    },
    /// Send a control to the running upgrade.
    Control(Control),
    /// Resume the interrupted run (a new engine process).
    ResumeRun {
        run_id: String,
        at: Option<(String, Step)>,
    },
    /// Abandon the interrupted run: undo its cordons, release the lock.
    AbandonRun {
        run_id: String,
    },
}

impl Pending {
    /// The question, one line or more.
    pub fn question(&self) -> Vec<String> {
        match self {
            Pending::Cordon { node } => {
                vec![format!(
                    "Cordon {node}? New pods will not be scheduled there."
                )]
            }
            Pending::Uncordon { node } => {
                vec![format!("Uncordon {node}? It will take new pods again.")]
            }
            Pending::StartUpgrade { plan, .. }
                if plan.kind == crate::operations::upgrade::RunKind::Drain =>
            {
                let node = plan.entries.first().map_or("", |e| e.node.as_str());
                vec![
                    format!("Drain {node} and hold it in maintenance?"),
                    "It is cordoned and drained (PDBs respected), its alerts silenced; it stays"
                        .to_string(),
                    "so until c on it ends the maintenance (uncordon, silences expired)."
                        .to_string(),
                ]
            }
            Pending::StartUpgrade { plan, reboots } => {
                let mut out = vec![
                    format!(
                        "Start the rolling upgrade of {} node(s)?",
                        plan.entries.len()
                    ),
                    "Each is cordoned, drained and switched, in this order:".to_string(),
                ];
                for (i, (e, reboot)) in plan.entries.iter().zip(reboots).enumerate() {
                    out.push(format!("  {}. {} ({}) — {reboot}", i + 1, e.node, e.role));
                }
                out
            }
            Pending::Control(c) => vec![match c {
                Control::Pause => "Pause the upgrade after the current node?".into(),
                Control::Resume => "Resume the upgrade?".into(),
                Control::Abort => "Abort the upgrade at the next safe point?".into(),
                Control::Retry => "Retry the failed step?".into(),
                Control::Skip { node } => format!("Skip {node}?"),
                Control::Approve => "Reboot now?".into(),
                Control::Decline => "Do not reboot now?".into(),
                Control::EndMaintenance => {
                    "End the maintenance: uncordon the node and expire its silences?".into()
                }
            }],
            Pending::ResumeRun { run_id, at } => vec![
                format!(
                    "Resume the interrupted run {run_id}{}?",
                    at.as_ref()
                        .map(|(n, s)| format!(" at {n} {s}"))
                        .unwrap_or_default()
                ),
                "A new engine process goes on from where it stopped; the dashboard follows it."
                    .into(),
            ],
            Pending::AbandonRun { run_id } => vec![
                format!("Abandon the interrupted run {run_id}?"),
                "Only the nodes it cordoned are uncordoned, and its lock is released.".into(),
            ],
        }
    }
}

impl App {
    /// Every view on the stack, the dashboard's first, the top last.
    pub fn modes(&self) -> impl Iterator<Item = &Mode> {
        self.covered.iter().chain(std::iter::once(&self.mode))
    }

    /// The view just under the top (the dashboard when the top is the only one).
    pub fn covered(&self) -> &Mode {
        self.covered.last().unwrap_or(&Mode::Normal)
    }

    /// Whether a view is anywhere on the stack.
    pub fn showing(&self, m: &Mode) -> bool {
        self.modes().any(|x| x == m)
    }

    /// Open a view over what is shown (the same view twice on top stays one).
    pub fn push(&mut self, m: Mode) {
        if self.mode == m {
            return;
        }
        if self.mode == Mode::Normal {
            self.mode = m;
        } else {
            let under = std::mem::replace(&mut self.mode, m);
            self.covered.push(under);
        }
    }

    /// Close the top view, back to what it covered.
    pub fn pop(&mut self) {
        self.mode = self.covered.pop().unwrap_or(Mode::Normal);
    }

    /// Back to the dashboard.
    pub fn close_all(&mut self) {
        self.covered.clear();
        self.mode = Mode::Normal;
    }

    /// The layer the `?` help lists: that of the view help covers (or the top's).
    pub fn help_layer(&self) -> Layer {
        match &self.mode {
            Mode::Help => self.covered().layer(),
            m => m.layer(),
        }
    }
}
