//! The application state and `update`: the one owner of state. Every input is a [`Msg`]; keys
//! become actions through the layer of the view on top of the [mode stack](modes); source
//! updates replace their part of the snapshot; tasks report through the registry's messages.
//! What `update` wants done comes out as an [`Effect`] — never a write from outside.

mod dashboard;
pub mod diff;
pub mod drift;
pub mod health;
pub mod input;
pub mod keymap;
pub mod modes;
mod msg;
pub mod panes;
pub mod tasks;
pub mod upgrade;
pub mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use crossterm::event::KeyEvent;
use jiff::Timestamp;

use crate::config::Config;
use crate::inventory::Inventory;
use crate::model::{self, Finding, Snapshot};
use crate::sources::Update;
use crate::tasks::{Job, TaskEvent, TaskMsg};
pub use diff::DiffView;
pub use input::{InputOutcome, TextInput};
pub use keymap::{Action, Keymap, Layer};
pub use modes::{Mode, Pending};
pub use msg::{Effect, LayoutFacts, Msg};
pub use panes::Pane;

use panes::Tone;
use tasks::Purpose;

/// Selection, filter and sort order of one pane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaneState {
    pub selected: usize,
    pub filter: TextInput,
    /// The column the table is sorted by (`None`: the source's order).
    pub sort: Option<SortBy>,
}

/// A table's sort order: by which column, which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SortBy {
    pub column: usize,
    pub reverse: bool,
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
    /// The view on top (it has the keyboard); `covered` holds what it covers.
    pub mode: Mode,
    covered: Vec<Mode>,
    pub keymap: Keymap,
    pub now: Timestamp,
    /// Time zone for the clock and times shown (the system's; tests use UTC).
    pub tz: jiff::tz::TimeZone,
    /// Rows visible in the focused table at the last draw (for PgUp/PgDn).
    pub page_rows: usize,
    /// Body lines of the overlay on top at the last draw (diff view, detail).
    pub overlay_rows: Option<usize>,
    /// Closure diffs by host id.
    pub diffs: BTreeMap<String, DiffView>,
    /// The flake's system of every host (fleet drift).
    pub drift: drift::DriftView,
    /// A short message for the footer (export done, action refused, ...).
    pub status: Option<(String, Tone)>,
    /// Wrap long lines in the Logs pane.
    pub wrap_logs: bool,
    /// First line shown in the detail view.
    pub detail_scroll: usize,
    pub upgrade: upgrade::UpgradeView,
    /// Look for unfinished upgrade runs (at start, then every few seconds) and attach to a
    /// live one. The dashboard command turns it on (not `--offline`).
    pub discover_runs: bool,
    /// The demo: the simulated cluster lives in this process (it stops with the dashboard).
    pub demo: bool,
    /// When unfinished runs were last looked for, and the search under way.
    last_find: Option<Timestamp>,
    finding: Option<crate::tasks::TaskId>,
    /// The plans of the unfinished runs last found (to resume one).
    found_plans: BTreeMap<String, crate::operations::upgrade::Plan>,
    /// The tasks started and not finished.
    pub tasks: tasks::Tasks,
    gens: views::Gens,
    views: views::Views,
    /// When `assess` last ran.
    assessed_at: Timestamp,
    /// Sources' answers wait for [`App::settle`] to be assessed (the event loop's way: a burst
    /// of answers costs one assessment, not one each); off, each answer is assessed at once.
    defer: bool,
    /// An answer changed what `assess` reads since it last ran (with `defer`).
    assess_due: bool,
    /// Until which second (by the clock) the last frame drawn reads the same
    /// ([`App::drawn`]); a tick before then draws nothing.
    drawn_until: i64,
}

/// Two readings of a host's facts that the Hosts pane and `assess` cannot tell apart: equal but
/// for the uptime (shown rounded: `41d`) and the load (only in the detail view, which reads the
/// snapshot as it draws).
fn same_facts_as_shown(
    a: &crate::model::host::HostFacts,
    b: &crate::model::host::HostFacts,
) -> bool {
    let shown = |f: &crate::model::host::HostFacts| f.uptime_secs.map(panes::age_secs);
    shown(a) == shown(b)
        && crate::model::host::HostFacts {
            uptime_secs: b.uptime_secs,
            load: b.load,
            ..a.clone()
        } == *b
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
            covered: Vec::new(),
            keymap,
            now,
            tz: crate::base::local_time_zone(),
            page_rows: 10,
            overlay_rows: None,
            diffs: BTreeMap::new(),
            drift: drift::DriftView::default(),
            status: None,
            wrap_logs: false,
            detail_scroll: 0,
            upgrade: upgrade::UpgradeView::default(),
            discover_runs: false,
            demo: false,
            last_find: None,
            finding: None,
            found_plans: BTreeMap::new(),
            tasks: tasks::Tasks::default(),
            gens: views::Gens::default(),
            views: views::Views::default(),
            assessed_at: now,
            drawn_until: i64::MIN,
            defer: false,
            assess_due: false,
        };
        app.reassess();
        app
    }

    pub fn pane(&self, p: Pane) -> &PaneState {
        &self.panes[p.index()]
    }

    fn pane_mut(&mut self, p: Pane) -> &mut PaneState {
        &mut self.panes[p.index()]
    }

    /// Handle one message; says whether to redraw, quit, or what to hand to the registry.
    pub fn update(&mut self, msg: Msg) -> Effect {
        if !matches!(msg, Msg::Update(_) | Msg::Layout(_)) {
            // Keys, ticks and tasks see every answer taken in so far assessed.
            self.settle();
        }
        match msg {
            Msg::Key(k) => {
                let e = self.on_key(&k);
                self.quit_or_leave(e)
            }
            Msg::Resize => Effect::Redraw,
            Msg::Tick(now) => {
                // A new second redraws only when the frame shows something of the clock that
                // now reads differently (the header's clock, an age, a running build's time).
                let clock_moved =
                    now.as_second() != self.now.as_second() && now.as_second() >= self.drawn_until;
                self.now = now;
                let rechecked = self.recheck();
                if self.find_due(now) {
                    return self.find_runs();
                }
                if clock_moved || rechecked {
                    Effect::Redraw
                } else {
                    Effect::None
                }
            }
            Msg::Update(u) => {
                let facts = matches!(&u, Update::Host { result: Ok(_), .. });
                let changed = self.apply(u);
                // The first facts say what the hosts run: time to see what the flake builds.
                match facts.then(|| self.drift_on_facts()) {
                    Some(e @ Effect::Start(_)) => Effect::Many(vec![Effect::Redraw, e]),
                    _ if changed => Effect::Redraw,
                    _ => Effect::None,
                }
            }
            Msg::Task(m) => self.on_task(m),
            Msg::Layout(f) => {
                self.page_rows = f.page_rows;
                self.overlay_rows = f.overlay_rows;
                Effect::None
            }
            Msg::Signal(_) => Effect::Quit,
            Msg::Suspend if self.demo && (self.upgrade.running() || self.upgrade.starting) => {
                // A run is its own process and goes on while the dashboard is stopped, except
                // in the demo: stopping this process stops the simulated cluster it runs on.
                self.status = Some((
                    "Ctrl-Z refused: the simulated cluster of the demo lives in this process and would freeze the rolling upgrade"
                        .into(),
                    Tone::Warning,
                ));
                Effect::Redraw
            }
            Msg::Suspend => Effect::Suspend,
            Msg::Continued => Effect::Redraw,
            Msg::TerminalGone(None) => Effect::Quit,
            Msg::TerminalGone(Some(e)) => {
                Effect::Fail(format!("terminal input failed (terminal gone?): {e}"))
            }
        }
    }

    /// Take in a source's answer. Whether anything on screen or in the findings can have
    /// changed: an answer equal to the one held (but for its time) only renews the source's
    /// freshness, and costs no assessment, no table and no frame.
    fn apply(&mut self, u: Update) -> bool {
        let now = self.now;
        let mut only_logs = false;
        let changed = match u {
            Update::Cluster(r) => {
                let before = self.status_as_assessed(&self.snapshot.cluster.status);
                let old = self.snapshot.cluster.data.clone();
                if let Ok(st) = &r {
                    let lh = &st.longhorn;
                    self.upgrade.rebuilds =
                        self.upgrade
                            .rebuild_watch
                            .observe(now, &lh.rebuilds, Some(lh));
                }
                self.snapshot.cluster.record(r, now);
                let same = before == self.status_as_assessed(&self.snapshot.cluster.status)
                    && match (&old, &self.snapshot.cluster.data) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
                        _ => false,
                    };
                if !same {
                    self.gens.cluster += 1;
                }
                !same
            }
            Update::Etcd(r) => {
                let before = self.status_as_assessed(&self.snapshot.etcd.status);
                let old = self.snapshot.etcd.data.clone();
                self.snapshot.etcd.record(r, now);
                // Compared as shown: with Mimir's figures merged in.
                self.snapshot.merge_metrics();
                let same = before == self.status_as_assessed(&self.snapshot.etcd.status)
                    && old.is_some()
                    && old == self.snapshot.etcd.data;
                if !same {
                    self.gens.etcd += 1;
                }
                !same
            }
            Update::Host { id, result } => {
                let (old, before) = match self.snapshot.hosts.get(&id) {
                    Some(s) => (s.data.clone(), Some(self.status_as_assessed(&s.status))),
                    None => (None, None),
                };
                self.snapshot
                    .hosts
                    .entry(id.clone())
                    .or_default()
                    .record(result, now);
                let entry = &self.snapshot.hosts[&id];
                let after = self.status_as_assessed(&entry.status);
                let same = before == Some(after)
                    && match (&old, &entry.data) {
                        (Some(a), Some(b)) => same_facts_as_shown(a, b),
                        _ => false,
                    };
                if !same {
                    self.gens.hosts += 1;
                }
                !same
            }
            Update::Metrics(r) => {
                let before = self.status_as_assessed(&self.snapshot.mimir.status);
                let old = self.snapshot.mimir.data.clone();
                let old_etcd = self.snapshot.etcd.data.clone();
                self.snapshot.mimir.record(r, now);
                self.snapshot.merge_metrics();
                let same = before == self.status_as_assessed(&self.snapshot.mimir.status)
                    && match (&old, &self.snapshot.mimir.data) {
                        (Some(a), Some(b)) => a.same_reading(b),
                        _ => false,
                    };
                if !same {
                    // Mimir's figures are merged into etcd's members.
                    self.gens.mimir += 1;
                    self.gens.etcd += 1;
                } else if old_etcd != self.snapshot.etcd.data {
                    self.gens.etcd += 1;
                }
                !same || old_etcd != self.snapshot.etcd.data
            }
            Update::Logs(r) => {
                let before = self.status_as_assessed(&self.snapshot.loki.status);
                let old = self.snapshot.loki.data.clone();
                self.snapshot.loki.record(r, now);
                // `assess` reads only Loki's status, never its lines.
                only_logs = before == self.status_as_assessed(&self.snapshot.loki.status);
                let same = only_logs
                    && match (&old, &self.snapshot.loki.data) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
                        _ => false,
                    };
                if !same {
                    self.gens.loki += 1;
                }
                !same
            }
        };
        self.snapshot.merge_metrics();
        if changed && !only_logs {
            self.assess_due = true;
        }
        if !self.defer {
            self.settle();
        }
        changed
    }

    /// Let sources' answers wait to be assessed until [`App::settle`] (the event loop calls it
    /// before it draws or handles anything else): a round of 200 hosts' facts is then one
    /// assessment and one table, not 200.
    pub fn defer_assessment(&mut self) {
        self.defer = true;
    }

    /// A frame was drawn that reads the same by the clock until second `until`
    /// ([`panes::valid_until`] around the draw).
    pub fn drawn(&mut self, until: i64) {
        self.drawn_until = until;
    }

    /// Assess the answers taken in since the last assessment, if any changed what it reads,
    /// and keep the selection on a row that still exists.
    pub fn settle(&mut self) {
        if self.assess_due {
            self.reassess();
        }
        self.clamp_selection();
    }

    /// A quit key while a run goes on asks first: the run goes on without the dashboard.
    fn quit_or_leave(&mut self, e: Effect) -> Effect {
        if e == Effect::Quit && self.upgrade.running() && self.mode != Mode::Leaving {
            self.push(Mode::Leaving);
            return Effect::Redraw;
        }
        e
    }

    /// Hand a job to the registry under a new id.
    fn begin(&mut self, job: Job, purpose: Purpose) -> Effect {
        Effect::Start(self.tasks.begin(job, purpose, self.now))
    }

    fn on_task(&mut self, m: TaskMsg) -> Effect {
        let TaskMsg { id, event } = m;
        let purpose = if event.is_final() {
            self.tasks.end(id).map(|r| r.purpose)
        } else {
            self.tasks.get_mut(id).map(|r| {
                if let TaskEvent::Progress(line) = &event {
                    r.progress = Some(line.clone());
                }
                r.purpose.clone()
            })
        };
        let Some(purpose) = purpose else {
            return Effect::None;
        };
        match &purpose {
            Purpose::OpenDiff(_) | Purpose::Recompute(_) | Purpose::Diff(_) | Purpose::Export => {
                self.on_diff_task(id, &purpose, event)
            }
            Purpose::Plan | Purpose::Run(_) => self.on_upgrade_task(id, &purpose, event),
            Purpose::Drift => self.on_drift_task(id, event),
            Purpose::Find => self.on_runs_found(id, event),
            Purpose::Abandon => self.on_abandoned(event),
            Purpose::Change => match event {
                TaskEvent::Changed(Ok(what)) => {
                    self.status = Some((what, Tone::Ok));
                    // Show the change now rather than at the next poll.
                    Effect::Refresh
                }
                TaskEvent::Changed(Err(e)) => {
                    self.status = Some((e, Tone::Critical));
                    Effect::Redraw
                }
                TaskEvent::Refused(why) => {
                    self.status = Some((why, Tone::Warning));
                    Effect::Redraw
                }
                _ => Effect::None,
            },
        }
    }

    fn on_key(&mut self, k: &KeyEvent) -> Effect {
        self.status = None;
        match &self.mode {
            Mode::Filtering => self.on_input_key(k),
            Mode::Confirm(_) => self.on_confirm_key(k),
            Mode::Help => {
                // Any key closes help; Quit still quits.
                if self.keymap.lookup(self.help_layer(), k) == Some(Action::Quit) {
                    return Effect::Quit;
                }
                self.pop();
                Effect::Redraw
            }
            Mode::Diff(host) => {
                let host = host.clone();
                self.on_diff_key(&host, k)
            }
            Mode::Upgrade => self.on_upgrade_key(k),
            Mode::Leaving => self.on_leaving_key(k),
            Mode::Detail(_) => self.on_detail_key(k),
            Mode::Normal => match self.keymap.lookup(Layer::Dashboard, k) {
                Some(action) => self.on_action(action),
                None => Effect::None,
            },
        }
    }

    /// A question: only its `confirm` key says yes; every other key says no.
    fn on_confirm_key(&mut self, k: &KeyEvent) -> Effect {
        let Mode::Confirm(p) = self.mode.clone() else {
            return Effect::None;
        };
        self.pop();
        if self.keymap.lookup(Layer::Confirm, k) != Some(Action::Confirm) {
            self.status = Some(("cancelled".into(), Tone::Muted));
            return Effect::Redraw;
        }
        match p {
            Pending::Cordon { node } => self.begin(Job::Cordon { node }, Purpose::Change),
            Pending::Uncordon { node } => self.begin(Job::Uncordon { node }, Purpose::Change),
            Pending::StartUpgrade { plan, .. } => self.start_upgrade(plan),
            Pending::Control(c) => self.send_control(c),
            Pending::ResumeRun { run_id, .. } => self.resume_run(run_id),
            Pending::AbandonRun { run_id } => self.abandon_run(run_id),
        }
    }

    /// The text field has the keyboard: it filters what it covers (a pane or the diff view).
    fn on_input_key(&mut self, k: &KeyEvent) -> Effect {
        let diff_host = match self.covered() {
            Mode::Diff(h) => Some(h.clone()),
            _ => None,
        };
        let focus = self.focus;
        let keymap = &self.keymap;
        let outcome = match &diff_host {
            Some(h) => match self.diffs.get_mut(h) {
                Some(v) => v.filter.on_key(keymap, k),
                None => InputOutcome::Cancel,
            },
            None => self.panes[focus.index()].filter.on_key(keymap, k),
        };
        match outcome {
            InputOutcome::Quit => return Effect::Quit,
            InputOutcome::Ignored => return Effect::None,
            InputOutcome::Moved => return Effect::Redraw,
            InputOutcome::Pass(a @ (Action::Up | Action::Down)) => {
                return match &diff_host {
                    None => self.on_action(a),
                    Some(h) => {
                        if let Some(v) = self.diffs.get_mut(h) {
                            let last = v.rows().len().max(v.log.len()).saturating_sub(1);
                            v.scroll = match a {
                                Action::Up => v.scroll.saturating_sub(1),
                                _ => (v.scroll + 1).min(last),
                            };
                        }
                        Effect::Redraw
                    }
                };
            }
            InputOutcome::Pass(_) => return Effect::None,
            InputOutcome::Submit | InputOutcome::Cancel => self.pop(),
            InputOutcome::Edited => {}
        }
        // The text changed or the field closed: start from the top of what it shows.
        match &diff_host {
            Some(h) => {
                if let Some(v) = self.diffs.get_mut(h) {
                    v.scroll = 0;
                }
            }
            None => self.pane_mut(focus).selected = 0,
        }
        Effect::Redraw
    }

    /// Findings of this severity, those expected during a run left out.
    pub fn count(&self, s: model::Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == s && !f.expected())
            .count()
    }

    /// Findings expected during the run (about the nodes it works on).
    pub fn expected_count(&self) -> usize {
        self.findings.iter().filter(|f| f.expected()).count()
    }

    /// The attached upgrade run at work, as findings are judged: the node it is on now (with
    /// its step) and every node it has cordoned. `None` when no run is attached or it ended.
    pub fn maintenance(&self) -> Option<model::Maintenance> {
        let p = self.upgrade.progress.as_ref()?;
        if p.is_finished() || self.upgrade.interrupted.is_some() {
            return None;
        }
        let mut nodes = std::collections::BTreeMap::new();
        if let Some(c) = &self.snapshot.cluster.data {
            for n in &c.nodes {
                if n.cordoned_by_run.as_deref() == Some(p.run_id.as_str()) {
                    nodes.insert(n.name.clone(), "in maintenance".to_string());
                }
            }
        }
        if let Some(n) = p.current() {
            let step = n
                .steps
                .last()
                .map(|s| match s.step {
                    crate::operations::upgrade::Step::Reboot => "rebooting".to_string(),
                    crate::operations::upgrade::Step::WaitHealthy => {
                        "coming back after its reboot".to_string()
                    }
                    crate::operations::upgrade::Step::Hold => n
                        .waiting
                        .as_ref()
                        .and_then(|(_, d)| maintenance_words(d))
                        .unwrap_or_else(|| "in maintenance".into()),
                    other => other.as_str().to_string(),
                })
                .unwrap_or_else(|| "in maintenance".into());
            nodes.insert(n.node.clone(), step);
        }
        Some(model::Maintenance {
            run_id: p.run_id.clone(),
            nodes,
        })
    }
}

/// `in maintenance (drained by …, since …)` out of a maintenance's wait detail.
pub(crate) fn maintenance_words(detail: &str) -> Option<String> {
    let from = detail.find("in maintenance")?;
    let rest = &detail[from..];
    let end = rest.find("):").map_or(rest.len(), |i| i + 1);
    Some(rest[..end].to_string())
}

/// A stable row key for a finding.
pub fn finding_key(f: &Finding) -> String {
    format!("{}|{}", f.code, f.subject)
}

#[cfg(test)]
mod tests;
