//! The app's side of the task registry: the ids it gave out, what each task is for, its
//! title and its latest progress. The registry owns the handles; this is state, so the app
//! owns it.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::operations::upgrade::Plan;
use crate::tasks::{Job, Task, TaskId, TaskKind};

/// Why the app asked for a task (what its result means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The lock's fingerprint decides whether the open diff view recomputes.
    OpenDiff(String),
    /// The lock's fingerprint goes with a recompute the operator asked for.
    Recompute(String),
    Diff(String),
    Plan,
    /// Start (or attach to, or resume), then follow the run of this plan.
    Run(Arc<Plan>),
    /// Look for unfinished runs.
    Find,
    /// Abandon an interrupted run.
    Abandon,
    Change,
    Export,
}

/// One task the app started and has not heard the last of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub kind: TaskKind,
    pub title: String,
    pub started: Timestamp,
    /// The latest progress line.
    pub progress: Option<String>,
    pub(super) purpose: Purpose,
}

#[derive(Debug, Clone, Default)]
pub struct Tasks {
    last: u64,
    live: BTreeMap<TaskId, TaskRecord>,
}

impl Tasks {
    /// A new task under a fresh id.
    pub(super) fn begin(&mut self, job: Job, purpose: Purpose, now: Timestamp) -> Task {
        self.last += 1;
        let id = TaskId(self.last);
        self.live.insert(
            id,
            TaskRecord {
                kind: job.kind(),
                title: job.title(),
                started: now,
                progress: None,
                purpose,
            },
        );
        Task { id, job }
    }

    pub(super) fn get_mut(&mut self, id: TaskId) -> Option<&mut TaskRecord> {
        self.live.get_mut(&id)
    }

    pub(super) fn end(&mut self, id: TaskId) -> Option<TaskRecord> {
        self.live.remove(&id)
    }

    /// The tasks under way, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (TaskId, &TaskRecord)> {
        self.live.iter().map(|(id, r)| (*id, r))
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
