//! Derived state, recomputed when its inputs change and not per key or per frame: the
//! findings (`assess`) and each pane's table (its view model). Every input has a generation
//! counter; a pane's table is rebuilt when the generations it reads, its filter or the host it
//! follows change, or when an age it shows by the clock reads differently.

use std::cell::RefCell;
use std::sync::Arc;

use jiff::tz::TimeZone;

use super::App;
use super::panes::{self, Pane, Table};
use crate::model::SourceStatus;

/// Findings that depend on the clock (stale sources, backup ages) are looked at again this
/// often, even when no source reports: a source turns stale after minutes
/// (`stale_after_secs`, 120), backups and certificates age in hours, so 15 s late is soon
/// enough, and an idle dashboard assesses four times a minute, not twelve.
pub const RECHECK_SECS: i64 = 15;

/// Generation counters of the inputs; each only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gens {
    pub cluster: u64,
    pub etcd: u64,
    pub hosts: u64,
    pub mimir: u64,
    pub loki: u64,
    pub findings: u64,
    pub diffs: u64,
}

impl Gens {
    /// Everything changed (after state was written from outside `update`).
    pub fn bump_all(&mut self) {
        for g in [
            &mut self.cluster,
            &mut self.etcd,
            &mut self.hosts,
            &mut self.mimir,
            &mut self.loki,
            &mut self.findings,
            &mut self.diffs,
        ] {
            *g += 1;
        }
    }

    /// The sum of the generations a pane reads: it grows whenever one of them does.
    fn read_by(&self, pane: Pane) -> u64 {
        match pane {
            Pane::Hosts => self.hosts + self.findings + self.diffs,
            Pane::Nodes | Pane::Longhorn => self.cluster,
            Pane::Etcd => self.etcd + self.mimir,
            Pane::Metrics => self.mimir,
            Pane::Logs => self.loki,
            Pane::Findings => self.findings,
            Pane::Recovery => self.cluster + self.etcd + self.hosts,
        }
    }
}

/// What a cached table was built from.
#[derive(Debug, Clone, PartialEq)]
struct Stamp {
    inputs: u64,
    /// The second, for panes that show ages.
    clock: Option<i64>,
    tz: Option<TimeZone>,
    filter: String,
    sort: Option<super::SortBy>,
    /// The host the Logs pane follows.
    follows: Option<String>,
}

/// A table, what it was built from, and the second from which the ages it shows read
/// differently ([`panes::valid_until`]).
type Cached = Option<(Stamp, i64, Arc<Table>)>;

/// The cache of pane tables (interior mutability: drawing has `&App`).
#[derive(Debug, Default)]
pub struct Views {
    tables: RefCell<[Cached; Pane::ALL.len()]>,
    /// Tables built per pane (tests count rebuilds).
    #[cfg(test)]
    pub builds: std::cell::Cell<[usize; Pane::ALL.len()]>,
    /// Runs of `assess` (tests count them).
    #[cfg(test)]
    pub assessments: std::cell::Cell<usize>,
}

impl Clone for Views {
    fn clone(&self) -> Self {
        Self {
            tables: RefCell::new(self.tables.borrow().clone()),
            #[cfg(test)]
            builds: self.builds.clone(),
            #[cfg(test)]
            assessments: self.assessments.clone(),
        }
    }
}

impl App {
    fn stamp(&self, pane: Pane) -> Stamp {
        Stamp {
            inputs: self.gens.read_by(pane),
            // The Recovery pane's rows judge by the clock (stale, expiring): each second. The
            // others' ages say themselves until when they hold (`Cached`).
            clock: (pane == Pane::Recovery).then(|| self.now.as_second()),
            tz: matches!(pane, Pane::Hosts | Pane::Logs).then(|| self.tz.clone()),
            filter: self.pane(pane).filter.to_string(),
            sort: self.pane(pane).sort,
            follows: (pane == Pane::Logs)
                .then(|| panes::logs_host(self))
                .flatten(),
        }
    }

    /// The table of a pane, with its filter applied: built once per change of what it shows.
    pub fn table(&self, pane: Pane) -> Arc<Table> {
        let stamp = self.stamp(pane);
        let i = pane.index();
        if let Some((s, until, t)) = &self.views.tables.borrow()[i]
            && *s == stamp
            && self.now.as_second() < *until
        {
            // The frame that shows it reads differently when it does.
            panes::shown_until(*until);
            return t.clone();
        }
        let (t, until) = panes::valid_until(|| panes::table(self, pane));
        // The Recovery pane judges by the clock (stale, expiring): its table holds a second.
        let until = if stamp.clock.is_some() {
            panes::shown_until(self.now.as_second() + 1);
            until.min(self.now.as_second() + 1)
        } else {
            until
        };
        let t = Arc::new(t);
        #[cfg(test)]
        {
            let mut b = self.views.builds.get();
            b[i] += 1;
            self.views.builds.set(b);
        }
        self.views.tables.borrow_mut()[i] = Some((stamp, until, t.clone()));
        t
    }

    /// Say that state was written directly (tests, headless drivers): every table is built
    /// again from it.
    pub fn invalidate(&mut self) {
        self.gens.bump_all();
    }

    /// Run `assess` again; a changed result is a new generation of findings.
    pub(super) fn reassess(&mut self) {
        self.assess_due = false;
        let mut findings = crate::model::assess(
            &self.snapshot,
            &self.inventory,
            &self.config.thresholds,
            self.now,
        );
        if let Some(m) = self.maintenance() {
            m.mark(
                &mut findings,
                &self.inventory,
                self.snapshot.cluster.data.as_deref(),
            );
        }
        self.assessed_at = self.now;
        #[cfg(test)]
        self.views.assessments.set(self.views.assessments.get() + 1);
        if findings != self.findings {
            self.findings = findings;
            self.gens.findings += 1;
        }
    }

    /// What `assess` reads of a source's status at this time (`configured`, the error, and
    /// whether its data is stale).
    pub(super) fn status_as_assessed(&self, st: &SourceStatus) -> (bool, Option<String>, bool) {
        let stale = st.last_ok.is_some_and(|ok| {
            self.now.as_second() - ok.as_second() > self.config.thresholds.stale_after_secs as i64
        });
        (
            st.configured,
            st.error
                .as_ref()
                .map(|e| format!("{}|{}", e.since, e.message)),
            stale,
        )
    }

    /// The clock moved: findings that depend on it are looked at again every
    /// [`RECHECK_SECS`]. Whether they changed.
    pub(super) fn recheck(&mut self) -> bool {
        if self.now.as_second() - self.assessed_at.as_second() < RECHECK_SECS {
            return false;
        }
        let before = self.gens.findings;
        self.reassess();
        before != self.gens.findings
    }
}
