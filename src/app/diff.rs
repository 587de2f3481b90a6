//! The closure-diff view of a host: progress while nix builds, then the classified result;
//! its keys (the `diff` layer) and what its tasks report.

use jiff::Timestamp;

use super::input::TextInput;
use super::keymap::{Action, Layer};
use super::modes::Mode;
use super::panes::Tone;
use super::tasks::Purpose;
use super::{App, Effect};
use crate::base::ring::Ring;
use crate::model::closure::{ClosureDiff, PackageChange, Section};
use crate::tasks::{Job, TaskEvent, TaskId, TaskKey};

/// Progress lines kept per diff (oldest dropped).
pub const LOG_CAP: usize = 500;

#[derive(Debug, Clone)]
pub struct DiffView {
    pub running: bool,
    /// The task computing it (events of any other are stale).
    pub task: Option<TaskId>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub log: Ring<String>,
    pub result: Option<Result<Box<ClosureDiff>, String>>,
    /// The deployed system it was computed from (a newer one makes it stale).
    pub deployed: Option<String>,
    /// Fingerprint of the flake's lock file it was computed with (a changed lock makes it
    /// stale).
    pub lock: Option<String>,
    pub scroll: usize,
    pub filter: TextInput,
}

impl Default for DiffView {
    fn default() -> Self {
        Self {
            running: false,
            task: None,
            started: None,
            finished: None,
            log: Ring::new(LOG_CAP),
            result: None,
            deployed: None,
            lock: None,
            scroll: 0,
            filter: TextInput::new(),
        }
    }
}

impl DiffView {
    pub fn start(
        &mut self,
        now: Timestamp,
        deployed: Option<String>,
        lock: Option<String>,
        task: Option<TaskId>,
    ) {
        self.lock = lock;
        self.running = true;
        self.task = task;
        self.started = Some(now);
        self.finished = None;
        self.log.clear();
        self.result = None;
        self.deployed = deployed;
        self.scroll = 0;
    }

    pub fn push_log(&mut self, line: String) {
        self.log.push(line);
    }

    pub fn finish(&mut self, now: Timestamp, result: Result<Box<ClosureDiff>, String>) {
        self.running = false;
        self.task = None;
        self.finished = Some(now);
        self.result = Some(result);
    }

    /// The task ended without a result (cancelled, refused): the last result stays.
    fn stopped(&mut self, now: Timestamp) {
        self.running = false;
        self.task = None;
        self.finished = Some(now);
    }

    /// The badge for the Hosts pane: "pending: 34 changes, reboot", "up to date", "diff failed".
    pub fn badge(&self) -> Option<String> {
        if self.running {
            return Some("diffing…".into());
        }
        match self.result.as_ref()? {
            Ok(d) if d.is_up_to_date() => Some("up to date".into()),
            Ok(d) => Some(format!("pending: {}", d.badge())),
            Err(_) => Some("diff failed".into()),
        }
    }

    /// The lines of the result, filtered: `(section, change)` rows under section headings.
    pub fn rows(&self) -> Vec<DiffLine<'_>> {
        let Some(Ok(d)) = &self.result else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut out = Vec::new();
        for s in Section::ALL {
            let items: Vec<&PackageChange> = d
                .sections
                .get(s)
                .iter()
                .filter(|c| needle.is_empty() || c.name.to_lowercase().contains(&needle))
                .collect();
            if items.is_empty() {
                continue;
            }
            out.push(DiffLine::Heading(s, items.len()));
            out.extend(items.into_iter().map(DiffLine::Change));
        }
        if needle.is_empty() {
            for u in &d.unparsed {
                out.push(DiffLine::Unparsed(u));
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine<'a> {
    Heading(Section, usize),
    Change(&'a PackageChange),
    Unparsed(&'a str),
}

impl App {
    /// Open the diff view of the selected host; reading the lock (a task) decides whether
    /// the last diff still holds or a new one runs.
    pub(super) fn open_diff(&mut self) -> Effect {
        if self.focus != super::Pane::Hosts {
            let hint = self.key_hint(super::Action::FocusHosts);
            self.status = Some((
                format!("closure diffs: select a host in the Hosts pane{hint}"),
                Tone::Warning,
            ));
            return Effect::Redraw;
        }
        let Some(host) = self.selected_key(super::Pane::Hosts) else {
            return Effect::None;
        };
        self.push(Mode::Diff(host.clone()));
        if self.diffs.entry(host.clone()).or_default().running {
            return Effect::Redraw;
        }
        let job = Job::LockFingerprint { host: host.clone() };
        self.begin(job, Purpose::OpenDiff(host))
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

    /// Start the diff of a host computed with this lock fingerprint: the view shows it
    /// running, the returned effect hands the task to the registry.
    pub fn start_diff(&mut self, host: &str, lock: Option<String>) -> Effect {
        let deployed = self.deployed_system(host);
        let job = Job::Diff {
            host: host.to_string(),
            deployed: deployed.clone(),
        };
        let task = self
            .tasks
            .begin(job, Purpose::Diff(host.to_string()), self.now);
        let now = self.now;
        self.diffs
            .entry(host.to_string())
            .or_default()
            .start(now, deployed, lock, Some(task.id));
        self.gens.diffs += 1;
        Effect::Start(task)
    }

    pub(super) fn on_diff_key(&mut self, host: &str, k: &crossterm::event::KeyEvent) -> Effect {
        let page = self.overlay_rows.unwrap_or(self.page_rows).max(1);
        let Some(action) = self.keymap.lookup(Layer::Diff, k) else {
            return Effect::None;
        };
        let Some(view) = self.diffs.get_mut(host) else {
            self.pop();
            return Effect::Redraw;
        };
        let rows = view.rows().len().max(view.log.len());
        match action {
            Action::Quit => return Effect::Quit,
            Action::Help => self.push(Mode::Help),
            Action::Back => {
                let running = view.running;
                self.pop();
                if running {
                    return Effect::Cancel(TaskKey::Diff(host.to_string()));
                }
            }
            Action::Up => view.scroll = view.scroll.saturating_sub(1),
            Action::Down => view.scroll = (view.scroll + 1).min(rows.saturating_sub(1)),
            Action::PageUp => view.scroll = view.scroll.saturating_sub(page),
            Action::PageDown => view.scroll = (view.scroll + page).min(rows.saturating_sub(1)),
            Action::Top => view.scroll = 0,
            Action::Bottom => view.scroll = rows.saturating_sub(1),
            Action::Filter => self.push(Mode::Filtering),
            Action::Export => {
                let Some(Ok(diff)) = &view.result else {
                    self.status = Some(("nothing to export yet".into(), Tone::Warning));
                    return Effect::Redraw;
                };
                let job = Job::ExportDiff {
                    host: host.to_string(),
                    diff: diff.clone(),
                    stamp: self
                        .now
                        .to_zoned(self.tz.clone())
                        .strftime("%Y%m%d-%H%M%S")
                        .to_string(),
                };
                return self.begin(job, Purpose::Export);
            }
            Action::Refresh if !view.running => {
                let job = Job::LockFingerprint {
                    host: host.to_string(),
                };
                return self.begin(job, Purpose::Recompute(host.to_string()));
            }
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// What a diff's tasks report: the lock (then maybe the diff starts), progress, the result.
    pub(super) fn on_diff_task(&mut self, id: TaskId, purpose: &Purpose, ev: TaskEvent) -> Effect {
        let now = self.now;
        match (purpose, ev) {
            (Purpose::OpenDiff(host), TaskEvent::Lock(lock)) => {
                // The operator may have closed the view meanwhile: then nothing runs.
                if !self.showing(&Mode::Diff(host.clone()))
                    || self.diff_is_fresh(host, lock.as_deref())
                {
                    return Effect::Redraw;
                }
                self.start_diff(&host.clone(), lock)
            }
            (Purpose::Recompute(host), TaskEvent::Lock(lock)) => {
                if !self.showing(&Mode::Diff(host.clone())) {
                    return Effect::None;
                }
                self.start_diff(&host.clone(), lock)
            }
            (Purpose::Diff(host), ev) => {
                let Some(view) = self.diffs.get_mut(host).filter(|v| v.task == Some(id)) else {
                    return Effect::None;
                };
                match ev {
                    // Progress shows in the view only; the Hosts pane's badge stays.
                    TaskEvent::Progress(line) => {
                        view.push_log(line);
                        return Effect::Redraw;
                    }
                    TaskEvent::Diff(result) => view.finish(now, result),
                    other if other.is_final() => view.stopped(now),
                    _ => return Effect::None,
                }
                self.gens.diffs += 1;
                Effect::Redraw
            }
            (Purpose::Export, TaskEvent::Exported(r)) => {
                self.status = Some(match r {
                    Ok(path) => (format!("diff exported to {}", path.display()), Tone::Ok),
                    Err(e) => (e, Tone::Critical),
                });
                Effect::Redraw
            }
            (_, TaskEvent::Refused(why)) => {
                self.status = Some((why, Tone::Warning));
                Effect::Redraw
            }
            _ => Effect::None,
        }
    }
}
