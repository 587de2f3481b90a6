//! The closure-diff view of a host: progress while nix builds, then the classified result.

use std::collections::VecDeque;

use jiff::Timestamp;

use crate::model::closure::{ClosureDiff, PackageChange, Section};

/// Progress lines kept per diff (oldest dropped).
pub const LOG_CAP: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct DiffView {
    pub running: bool,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub log: VecDeque<String>,
    pub result: Option<Result<Box<ClosureDiff>, String>>,
    /// The deployed system it was computed from (a newer one makes it stale).
    pub deployed: Option<String>,
    /// Fingerprint of the flake's lock file it was computed with (a changed lock makes it
    /// stale).
    pub lock: Option<String>,
    pub scroll: usize,
    pub filter: String,
    pub filtering: bool,
}

impl DiffView {
    pub fn start(&mut self, now: Timestamp, deployed: Option<String>, lock: Option<String>) {
        self.lock = lock;
        self.running = true;
        self.started = Some(now);
        self.finished = None;
        self.log.clear();
        self.result = None;
        self.deployed = deployed;
        self.scroll = 0;
    }

    pub fn push_log(&mut self, line: String) {
        if self.log.len() >= LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    pub fn finish(&mut self, now: Timestamp, result: Result<Box<ClosureDiff>, String>) {
        self.running = false;
        self.finished = Some(now);
        self.result = Some(result);
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
