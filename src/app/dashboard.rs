//! The dashboard's keys (the `dashboard` layer): focus, movement, filter, detail, and the
//! doors to the diff view, cordon and the upgrade view.

use crossterm::event::KeyEvent;

use super::keymap::{Action, Layer};
use super::modes::{Mode, Pending};
use super::panes::{Pane, Tone};
use super::{App, Effect, SortBy, finding_key};

impl App {
    /// Perform a dashboard action (also used by tests and headless drivers).
    pub fn on_action(&mut self, action: Action) -> Effect {
        let focus = self.focus;
        match action {
            Action::Quit => return Effect::Quit,
            Action::Refresh => {
                // Poll the sources, and look at the flake's systems again (only evaluated
                // when its lock changed).
                return match self.start_drift() {
                    e @ Effect::Start(_) => Effect::Many(vec![Effect::Refresh, e]),
                    _ => Effect::Refresh,
                };
            }
            Action::Help => self.push(Mode::Help),
            Action::FocusNext => self.set_focus(focus.next()),
            Action::FocusPrev => self.set_focus(focus.prev()),
            Action::FocusHosts => self.set_focus(Pane::Hosts),
            Action::FocusNodes => self.set_focus(Pane::Nodes),
            Action::FocusEtcd => self.set_focus(Pane::Etcd),
            Action::FocusLonghorn => self.set_focus(Pane::Longhorn),
            Action::FocusMetrics => self.set_focus(Pane::Metrics),
            Action::FocusLogs => self.set_focus(Pane::Logs),
            Action::FocusFindings => self.set_focus(Pane::Findings),
            Action::FocusRecovery => self.set_focus(Pane::Recovery),
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
                _ => self.pop(),
            },
            Action::Filter => {
                if matches!(self.mode, Mode::Normal) && self.focus.filterable() {
                    self.push(Mode::Filtering);
                }
            }
            Action::Diff => return self.open_diff(),
            Action::Wrap => self.wrap_logs = !self.wrap_logs,
            Action::Sort => {
                let columns = self.table(focus).header.len();
                let st = self.pane_mut(focus);
                st.sort = match st.sort {
                    None => Some(SortBy::default()),
                    Some(s) if s.column + 1 < columns => Some(SortBy {
                        column: s.column + 1,
                        ..s
                    }),
                    Some(_) => None,
                };
            }
            Action::SortReverse => {
                let st = self.pane_mut(focus);
                let s = st.sort.unwrap_or_default();
                st.sort = Some(SortBy {
                    reverse: !s.reverse,
                    ..s
                });
            }
            Action::Cordon => self.ask_cordon(),
            Action::Upgrade => return self.open_upgrade(),
            Action::Drain => return self.open_drain(),
            _ => return Effect::None,
        }
        Effect::Redraw
    }

    /// The detail view scrolls with the movement keys; other keys act on the dashboard.
    pub(super) fn on_detail_key(&mut self, k: &KeyEvent) -> Effect {
        let Some(action) = self.keymap.lookup(Layer::Dashboard, k) else {
            return Effect::None;
        };
        let page = self.overlay_rows.unwrap_or(self.page_rows).max(1);
        let scroll = &mut self.detail_scroll;
        match action {
            Action::Up => *scroll = scroll.saturating_sub(1),
            Action::Down => *scroll += 1,
            Action::PageUp => *scroll = scroll.saturating_sub(page),
            Action::PageDown => *scroll += page,
            Action::Top => *scroll = 0,
            _ => return self.on_action(action),
        }
        Effect::Redraw
    }

    /// `c` on a node: ask to cordon (or uncordon) it; refused in read-only mode.
    fn ask_cordon(&mut self) {
        if self.read_only {
            self.status = Some((
                "read-only mode: cordon and uncordon are disabled".into(),
                Tone::Warning,
            ));
            return;
        }
        if self.focus != Pane::Nodes {
            let hint = self.key_hint(Action::FocusNodes);
            self.status = Some((
                format!("cordon: select a node in the Nodes pane{hint}"),
                Tone::Warning,
            ));
            return;
        }
        let Some(node) = self.selected_key(Pane::Nodes) else {
            return;
        };
        let (cordoned, by) = self
            .snapshot
            .cluster
            .data
            .as_ref()
            .and_then(|c| c.node(&node))
            .map_or((false, None), |n| {
                (n.unschedulable, n.cordoned_by_run.clone())
            });
        // A node in maintenance (a drain run's): its engine ends it (uncordon, silences
        // expired, lock released); an engine that is gone has its run abandoned.
        if cordoned
            && let Some(run_id) = by.filter(|r| crate::operations::upgrade::drain::is_drain_run(r))
        {
            if self.upgrade.live_run().is_some_and(|(r, _)| r == run_id) {
                self.push(Mode::Confirm(Pending::Control(
                    crate::operations::upgrade::Control::EndMaintenance,
                )));
                return;
            }
            if self
                .upgrade
                .interrupted
                .as_ref()
                .is_some_and(|i| i.run_id == run_id)
            {
                self.push(Mode::Confirm(Pending::AbandonRun { run_id }));
                return;
            }
        }
        self.push(Mode::Confirm(if cordoned {
            Pending::Uncordon { node }
        } else {
            Pending::Cordon { node }
        }));
    }

    /// ` (2)`: the dashboard key of an action, for a message; empty when it is unbound.
    pub(super) fn key_hint(&self, action: Action) -> String {
        match self.keymap.keys_for(Layer::Dashboard, action).first() {
            Some(k) => format!(" ({k})"),
            None => String::new(),
        }
    }

    /// Focus another pane: back to the dashboard itself.
    fn set_focus(&mut self, p: Pane) {
        self.focus = p;
        self.clamp_selection();
        self.close_all();
    }

    fn row_count(&self, p: Pane) -> usize {
        self.table(p).rows.len()
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
    pub(super) fn clamp_selection(&mut self) {
        let p = self.focus;
        let n = self.row_count(p);
        let st = self.pane_mut(p);
        if st.selected >= n {
            st.selected = n.saturating_sub(1);
        }
    }

    /// The key of the selected row of a pane, if any.
    pub fn selected_key(&self, p: Pane) -> Option<String> {
        let t = self.table(p);
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
            let rows = self.table(target);
            if let Some(i) = rows.rows.iter().position(|r| r.matches_subject(&f.subject)) {
                self.pane_mut(target).selected = i;
            }
            return;
        }
        self.detail_scroll = 0;
        self.push(Mode::Detail(key));
    }
}
