//! The application state and `update`: the one owner of state. Keys become actions through
//! the keymap; source updates replace their part of the snapshot; `assess` re-runs on change.

pub mod diff;
pub mod keymap;
pub mod panes;
pub mod upgrade;

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::Timestamp;

use crate::config::Config;
use crate::inventory::Inventory;
use crate::model::{self, Finding, Snapshot};
use crate::operations::diff_task::DiffEvent;
use crate::sources::Update;
pub use diff::DiffView;
pub use keymap::{Action, Keymap};
pub use panes::Pane;

/// What the screen is showing on top of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a filter for the focused pane.
    Filtering,
    Help,
    /// Detail of the row with this key in the focused pane.
    Detail(String),
    /// The closure diff of this host.
    Diff(String),
    /// A question before a change: `y`/Enter does it, anything else cancels.
    Confirm(Pending),
    /// The rolling upgrade: plan, then the live run.
    Upgrade,
}

/// A change that waits for the operator's yes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    /// Start the planned rolling upgrade.
    StartUpgrade {
        nodes: usize,
    },
    /// Send a control to the running upgrade.
    Control(crate::operations::upgrade::Control),
}

impl Pending {
    pub fn question(&self) -> String {
        match self {
            Pending::Cordon { node } => {
                format!("Cordon {node}? New pods will not be scheduled there.")
            }
            Pending::Uncordon { node } => format!("Uncordon {node}? It will take new pods again."),
            Pending::StartUpgrade { nodes } => format!(
                "Start the rolling upgrade of {nodes} node(s)? Each is cordoned, drained, switched and maybe rebooted."
            ),
            Pending::Control(c) => {
                use crate::operations::upgrade::Control;
                match c {
                    Control::Pause => "Pause the upgrade after the current node?".into(),
                    Control::Resume => "Resume the upgrade?".into(),
                    Control::Abort => "Abort the upgrade at the next safe point?".into(),
                    Control::Retry => "Retry the failed step?".into(),
                    Control::Skip { node } => format!("Skip {node}?"),
                    Control::Approve => "Reboot now?".into(),
                    Control::Decline => "Do not reboot now?".into(),
                }
            }
        }
    }
}

/// Selection and filter of one pane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaneState {
    pub selected: usize,
    pub filter: String,
}

/// A message to the owner of state.
// One message at a time passes through: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    /// The clock ticked.
    Tick(Timestamp),
    Update(Update),
    Diff(DiffEvent),
    /// The outcome of an operation, for the footer.
    Status(String, panes::Tone),
    Upgrade(crate::operations::upgrade_task::UpgradeMsg),
}

/// What `update` asks the event loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Redraw,
    Quit,
    /// Poll sources now.
    Refresh,
    /// Compute the closure diff of this host (drift mode).
    StartDiff(String),
    /// The diff view of this host opened: compute the diff unless the last one still holds.
    OpenDiff(String),
    /// Stop a running diff.
    CancelDiff(String),
    /// Write this host's diff to a file.
    ExportDiff(String),
    /// The operator said yes to this change.
    Run(Pending),
    /// Compute the upgrade plan and its guard verdicts, for these hosts (empty: all).
    PlanUpgrade(Vec<String>),
}

pub struct App {
    pub inventory: Inventory,
    pub config: Config,
    /// Kubernetes context (or "offline", "demo").
    pub context: String,
    pub read_only: bool,
    pub snapshot: Snapshot,
    pub findings: Vec<Finding>,
    pub focus: Pane,
    pub panes: [PaneState; Pane::ALL.len()],
    pub mode: Mode,
    pub keymap: Keymap,
    pub now: Timestamp,
    /// Time zone for the clock and times shown (the system's; tests use UTC).
    pub tz: jiff::tz::TimeZone,
    /// Rows visible in the focused table at the last draw (for PgUp/PgDn).
    pub page_rows: usize,
    /// Closure diffs by host id.
    pub diffs: BTreeMap<String, DiffView>,
    /// A short message for the footer (export done, action refused, ...).
    pub status: Option<(String, panes::Tone)>,
    /// Wrap long lines in the Logs pane.
    pub wrap_logs: bool,
    /// First line shown in the detail view.
    pub detail_scroll: usize,
    pub upgrade: upgrade::UpgradeView,
}

impl App {
    pub fn new(
        inventory: Inventory,
        config: Config,
        keymap: Keymap,
        snapshot: Snapshot,
        context: String,
        read_only: bool,
        now: Timestamp,
    ) -> App {
        let mut app = App {
            inventory,
            config,
            context,
            read_only,
            snapshot,
            findings: Vec::new(),
            focus: Pane::Hosts,
            panes: Default::default(),
            mode: Mode::Normal,
            keymap,
            now,
            tz: jiff::tz::TimeZone::system(),
            page_rows: 10,
            diffs: BTreeMap::new(),
            status: None,
            wrap_logs: false,
            detail_scroll: 0,
            upgrade: upgrade::UpgradeView::default(),
        };
        app.reassess();
        app
    }

    fn reassess(&mut self) {
        self.findings = model::assess(
            &self.snapshot,
            &self.inventory,
            &self.config.thresholds,
            self.now,
        );
    }

    pub fn pane(&self, p: Pane) -> &PaneState {
        &self.panes[p.index()]
    }

    fn pane_mut(&mut self, p: Pane) -> &mut PaneState {
        &mut self.panes[p.index()]
    }

    /// Handle one message; says whether to redraw, quit or refresh.
    pub fn update(&mut self, msg: Msg) -> Effect {
        match msg {
            Msg::Key(k) => self.on_key(k),
            Msg::Resize => Effect::Redraw,
            Msg::Tick(now) => {
                let changed_second = now.as_second() != self.now.as_second();
                self.now = now;
                if changed_second {
                    Effect::Redraw
                } else {
                    Effect::None
                }
            }
            Msg::Update(u) => {
                self.apply(u);
                Effect::Redraw
            }
            Msg::Upgrade(m) => {
                self.upgrade.apply(m);
                Effect::Redraw
            }
            Msg::Status(text, tone) => {
                self.status = Some((text, tone));
                Effect::Redraw
            }
            Msg::Diff(ev) => {
                match ev {
                    DiffEvent::Progress { host, line } => {
                        self.diffs.entry(host).or_default().push_log(line);
                    }
                    DiffEvent::Done { host, result } => {
                        let now = self.now;
                        self.diffs.entry(host).or_default().finish(now, result);
                    }
                }
                Effect::Redraw
            }
        }
    }

    fn apply(&mut self, u: Update) {
        let now = self.now;
        match u {
            Update::Cluster(r) => self.snapshot.cluster.record(r, now),
            Update::Etcd(r) => self.snapshot.etcd.record(r, now),
            Update::Host { id, result } => self
                .snapshot
                .hosts
                .entry(id)
                .or_default()
                .record(result, now),
            Update::Metrics(r) => self.snapshot.mimir.record(r, now),
            Update::Logs(r) => self.snapshot.loki.record(r, now),
        }
        self.snapshot.merge_metrics();
        self.reassess();
        self.clamp_selection();
    }

    fn on_key(&mut self, k: KeyEvent) -> Effect {
        self.status = None;
        if self.mode == Mode::Filtering {
            return self.on_filter_key(k);
        }
        if let Mode::Diff(host) = &self.mode {
            let host = host.clone();
            return self.on_diff_key(&host, k);
        }
        if self.mode == Mode::Upgrade {
            return self.on_upgrade_key(k);
        }
        if let Mode::Confirm(p) = &self.mode {
            let p = p.clone();
            self.mode = if matches!(p, Pending::StartUpgrade { .. } | Pending::Control(_)) {
                Mode::Upgrade
            } else {
                Mode::Normal
            };
            let yes = matches!(
                self.keymap.action_for(&k),
                Some(Action::Confirm | Action::Open)
            );
            return if yes {
                Effect::Run(p)
            } else {
                self.status = Some(("cancelled".into(), panes::Tone::Muted));
                Effect::Redraw
            };
        }
        let Some(action) = self.keymap.action_for(&k) else {
            return Effect::None;
        };
        if matches!(self.mode, Mode::Detail(_)) {
            let page = self.page_rows.max(1);
            let scroll = &mut self.detail_scroll;
            match action {
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::Down => *scroll += 1,
                Action::PageUp => *scroll = scroll.saturating_sub(page),
                Action::PageDown => *scroll += page,
                Action::Top => *scroll = 0,
                _ => return self.on_action(action),
            }
            return Effect::Redraw;
        }
        if matches!(self.mode, Mode::Help) && !matches!(action, Action::Quit) {
            // Any key closes help; Quit still quits.
            self.mode = Mode::Normal;
            return Effect::Redraw;
        }
        self.on_action(action)
    }

    fn on_filter_key(&mut self, k: KeyEvent) -> Effect {
        let focus = self.focus;
        match k.code {
            KeyCode::Esc => {
                self.pane_mut(focus).filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Backspace => {
                self.pane_mut(focus).filter.pop();
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                return Effect::Quit;
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.pane_mut(focus).filter.clear();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.pane_mut(focus).filter.push(c);
            }
            KeyCode::Down => return self.on_action(Action::Down),
            KeyCode::Up => return self.on_action(Action::Up),
            _ => return Effect::None,
        }
        self.pane_mut(focus).selected = 0;
        Effect::Redraw
    }

    /// Perform an action (also used by tests and headless drivers).
    pub fn on_action(&mut self, action: Action) -> Effect {
        let focus = self.focus;
        match action {
            Action::Quit => return Effect::Quit,
            Action::Refresh => return Effect::Refresh,
            Action::Help => {
                self.mode = if self.mode == Mode::Help {
                    Mode::Normal
                } else {
                    Mode::Help
                };
            }
            Action::FocusNext => self.set_focus(focus.next()),
            Action::FocusPrev => self.set_focus(focus.prev()),
            Action::FocusHosts => self.set_focus(Pane::Hosts),
            Action::FocusNodes => self.set_focus(Pane::Nodes),
            Action::FocusEtcd => self.set_focus(Pane::Etcd),
            Action::FocusLonghorn => self.set_focus(Pane::Longhorn),
            Action::FocusMetrics => self.set_focus(Pane::Metrics),
            Action::FocusLogs => self.set_focus(Pane::Logs),
            Action::FocusFindings => self.set_focus(Pane::Findings),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page_rows.max(1) as isize)),
            Action::PageDown => self.move_by(self.page_rows.max(1) as isize),
            Action::Top => self.pane_mut(focus).selected = 0,
            Action::Bottom => {
                let n = self.row_count(focus);
                self.pane_mut(focus).selected = n.saturating_sub(1);
            }
            Action::Open => self.open(),
            Action::Back => match self.mode {
                Mode::Normal if !self.pane(focus).filter.is_empty() => {
                    self.pane_mut(focus).filter.clear();
                    self.pane_mut(focus).selected = 0;
                }
                Mode::Normal => return Effect::None,
                _ => self.mode = Mode::Normal,
            },
            Action::Filter => {
                if matches!(self.mode, Mode::Normal) && self.focus.filterable() {
                    self.mode = Mode::Filtering;
                }
            }
            Action::Diff => return self.open_diff(),
            Action::Export => return Effect::None,
            Action::Wrap => self.wrap_logs = !self.wrap_logs,
            Action::Cordon => self.ask_cordon(),
            Action::Upgrade => return self.open_upgrade(),
            Action::Confirm | Action::Pause | Action::Abort | Action::Skip => return Effect::None,
        }
        Effect::Redraw
    }

    fn on_diff_key(&mut self, host: &str, k: KeyEvent) -> Effect {
        let page = self.page_rows.max(1);
        let Some(view) = self.diffs.get_mut(host) else {
            self.mode = Mode::Normal;
            return Effect::Redraw;
        };
        if view.filtering {
            match k.code {
                KeyCode::Esc => {
                    view.filter.clear();
                    view.filtering = false;
                }
                KeyCode::Enter => view.filtering = false,
                KeyCode::Backspace => {
                    view.filter.pop();
                }
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Effect::Quit;
                }
                KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                    view.filter.push(c)
                }
                _ => return Effect::None,
            }
            view.scroll = 0;
            return Effect::Redraw;
        }
        let Some(action) = self.keymap.action_for(&k) else {
            return Effect::None;
        };
        let rows = view.rows().len().max(view.log.len());
        match action {
            Action::Quit => return Effect::Quit,
            Action::Back => {
                let running = view.running;
                self.mode = Mode::Normal;
                if running {
                    return Effect::CancelDiff(host.to_string());
                }
            }
            Action::Up => view.scroll = view.scroll.saturating_sub(1),
            Action::Down => view.scroll = (view.scroll + 1).min(rows.saturating_sub(1)),
            Action::PageUp => view.scroll = view.scroll.saturating_sub(page),
            Action::PageDown => view.scroll = (view.scroll + page).min(rows.saturating_sub(1)),
            Action::Top => view.scroll = 0,
            Action::Bottom => view.scroll = rows.saturating_sub(1),
            Action::Filter => view.filtering = true,
            Action::Export => {
                return match &view.result {
                    Some(Ok(_)) => Effect::ExportDiff(host.to_string()),
                    _ => {
                        self.status = Some(("nothing to export yet".into(), panes::Tone::Warning));
                        Effect::Redraw
                    }
                };
            }
            Action::Refresh | Action::Diff if !view.running => {
                return Effect::StartDiff(host.to_string());
            }
            Action::Help => self.mode = Mode::Help,
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// `U`: the upgrade view; plans a new run unless one is under way.
    fn open_upgrade(&mut self) -> Effect {
        if self.read_only {
            self.status = Some((
                "read-only mode: upgrades are disabled".into(),
                panes::Tone::Warning,
            ));
            return Effect::Redraw;
        }
        self.mode = Mode::Upgrade;
        if self.upgrade.running() || self.upgrade.planning {
            return Effect::Redraw;
        }
        let only = self.upgrade_selection();
        self.upgrade = upgrade::UpgradeView {
            planning: true,
            ..Default::default()
        };
        Effect::PlanUpgrade(only)
    }

    /// The hosts `U` plans for: with a filter on the Hosts or Nodes pane, the hosts it shows;
    /// otherwise every host.
    pub fn upgrade_selection(&self) -> Vec<String> {
        let pane = self.focus;
        if !matches!(pane, Pane::Hosts | Pane::Nodes) || self.pane(pane).filter.is_empty() {
            return Vec::new();
        }
        panes::table(self, pane)
            .rows
            .iter()
            .filter_map(|r| match pane {
                Pane::Hosts => Some(r.key.clone()),
                _ => self.inventory.by_name(&r.key).map(|h| h.id.clone()),
            })
            .collect()
    }

    fn on_upgrade_key(&mut self, k: KeyEvent) -> Effect {
        use crate::operations::upgrade::Control;
        let Some(action) = self.keymap.action_for(&k) else {
            return Effect::None;
        };
        let running = self.upgrade.running();
        let ask = |c: Control| Mode::Confirm(Pending::Control(c));
        match action {
            Action::Quit => return Effect::Quit,
            Action::Back => self.mode = Mode::Normal,
            Action::Confirm | Action::Open if self.upgrade.progress.is_none() => {
                if let Some(Ok(p)) = &self.upgrade.planned {
                    self.mode = Mode::Confirm(Pending::StartUpgrade {
                        nodes: p.plan.entries.len(),
                    });
                }
            }
            Action::Pause if running => {
                self.mode = ask(if self.upgrade.paused {
                    Control::Resume
                } else {
                    Control::Pause
                });
            }
            Action::Abort if running => self.mode = ask(Control::Abort),
            Action::Refresh if running => self.mode = ask(Control::Retry),
            Action::Skip if running => {
                if let Some(n) = self.upgrade.progress.as_ref().and_then(|p| p.current()) {
                    self.mode = ask(Control::Skip {
                        node: n.node.clone(),
                    });
                }
            }
            Action::Upgrade | Action::Refresh if !running => return self.open_upgrade(),
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// `c` on a node: ask to cordon (or uncordon) it; refused in read-only mode.
    fn ask_cordon(&mut self) {
        if self.read_only {
            self.status = Some((
                "read-only mode: cordon and uncordon are disabled".into(),
                panes::Tone::Warning,
            ));
            return;
        }
        if self.focus != Pane::Nodes {
            self.status = Some((
                "cordon: select a node in the Nodes pane (2)".into(),
                panes::Tone::Warning,
            ));
            return;
        }
        let Some(node) = self.selected_key(Pane::Nodes) else {
            return;
        };
        let cordoned = self
            .snapshot
            .cluster
            .data
            .as_ref()
            .and_then(|c| c.node(&node))
            .is_some_and(|n| n.unschedulable);
        self.mode = Mode::Confirm(if cordoned {
            Pending::Uncordon { node }
        } else {
            Pending::Cordon { node }
        });
    }

    /// Open the diff view of the selected host, computing the diff if there is none yet.
    fn open_diff(&mut self) -> Effect {
        if self.focus != Pane::Hosts {
            self.status = Some((
                "closure diffs: select a host in the Hosts pane (1)".into(),
                panes::Tone::Warning,
            ));
            return Effect::Redraw;
        }
        let Some(host) = self.selected_key(Pane::Hosts) else {
            return Effect::None;
        };
        self.mode = Mode::Diff(host.clone());
        self.diffs.entry(host.clone()).or_default();
        Effect::OpenDiff(host)
    }

    /// Whether the last diff of a host still holds: computed (or running) for the same deployed
    /// system and the same flake lock. Otherwise opening the view recomputes it.
    pub fn diff_is_fresh(&self, host: &str, lock: Option<&str>) -> bool {
        let deployed = self.deployed_system(host);
        self.diffs.get(host).is_some_and(|v| {
            v.running || (v.result.is_some() && v.deployed == deployed && v.lock.as_deref() == lock)
        })
    }

    /// The deployed system of a host, from its SSH facts.
    pub fn deployed_system(&self, host: &str) -> Option<String> {
        self.snapshot
            .hosts
            .get(host)
            .and_then(|s| s.data.as_ref())
            .and_then(|f| f.current_system.clone())
    }

    /// Mark a diff as started (the event loop calls this when it spawns the task).
    pub fn diff_started(&mut self, host: &str, lock: Option<String>) {
        let deployed = self.deployed_system(host);
        let now = self.now;
        self.diffs
            .entry(host.to_string())
            .or_default()
            .start(now, deployed, lock);
    }

    fn set_focus(&mut self, p: Pane) {
        self.focus = p;
        self.clamp_selection();
        if !matches!(self.mode, Mode::Normal) {
            self.mode = Mode::Normal;
        }
    }

    fn row_count(&self, p: Pane) -> usize {
        panes::table(self, p).rows.len()
    }

    fn move_by(&mut self, delta: isize) {
        let focus = self.focus;
        let n = self.row_count(focus);
        let st = self.pane_mut(focus);
        if n == 0 {
            st.selected = 0;
            return;
        }
        let next = (st.selected as isize + delta).clamp(0, n as isize - 1);
        st.selected = next as usize;
    }

    /// Keep the focused pane's selection on a row (other panes clamp when drawn/focused).
    fn clamp_selection(&mut self) {
        let p = self.focus;
        let n = self.row_count(p);
        let st = self.pane_mut(p);
        if st.selected >= n {
            st.selected = n.saturating_sub(1);
        }
    }

    /// The key of the selected row of a pane, if any.
    pub fn selected_key(&self, p: Pane) -> Option<String> {
        let t = panes::table(self, p);
        t.rows.get(self.pane(p).selected).map(|r| r.key.clone())
    }

    fn open(&mut self) {
        let focus = self.focus;
        let Some(key) = self.selected_key(focus) else {
            return;
        };
        if focus == Pane::Findings {
            // Jump to the finding's subject.
            let Some(f) = self
                .findings
                .iter()
                .find(|f| finding_key(f) == key)
                .cloned()
            else {
                return;
            };
            let target = Pane::for_area(f.area(), &f.code);
            self.focus = target;
            self.pane_mut(target).filter.clear();
            let rows = panes::table(self, target).rows;
            if let Some(i) = rows.iter().position(|r| r.matches_subject(&f.subject)) {
                self.pane_mut(target).selected = i;
            }
            return;
        }
        self.detail_scroll = 0;
        self.mode = Mode::Detail(key);
    }

    pub fn count(&self, s: model::Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

/// A stable row key for a finding.
pub fn finding_key(f: &Finding) -> String {
    format!("{}|{}", f.code, f.subject)
}

#[cfg(test)]
mod tests;
