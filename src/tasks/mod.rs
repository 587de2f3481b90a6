//! The task registry: every long task of the dashboard — closure diffs, reading the flake
//! lock, the fleet's drift, the upgrade plan, the upgrade run, cordon and uncordon, diff
//! exports — as a record
//! with an id, a kind, a title and a cancel handle. Nothing here draws or touches the app's
//! state: the app asks for a [`Job`] (data) under an id it chose, the registry runs it, and
//! every result, progress line and upgrade event comes back as a [`TaskMsg`] in the app's
//! one inbox.
//!
//! Coalescing (like gitui's `AsyncSingleJob`): per [`TaskKey`] at most one task runs and one
//! waits; a newer request replaces the waiting one (it reports [`TaskEvent::Superseded`]). A
//! diff restarts (the running one is cancelled first); an upgrade run is single (a second is
//! refused while one is followed).
//!
//! The upgrade run is "a source of [`UpgradeEvent`]s plus a sender of [`Control`]s"
//! ([`upgrade::RunLink`]), produced by an [`upgrade::UpgradeBackend`]: the dashboard's is
//! [`upgrade::EngineProcess`] — every run is an engine process of its own that the dashboard
//! starts detached and attaches to (its journal and control socket), so quitting or losing the
//! dashboard never stops a run. The registry also looks for runs left unfinished (a live one
//! to attach to, an interrupted one to resume or abandon).
//!
//! Layering: this module uses `operations`, `sources`, `model` and `base`; it never imports
//! `app`, `ui` or a terminal crate (the inbox's message type is a parameter).

pub mod diff;
pub mod upgrade;

mod change;
mod export;
mod registry;

use std::path::PathBuf;

use crate::model::closure::ClosureDiff;
use crate::operations::closure_diff::fleet::FleetTargets;
use crate::operations::upgrade::{Control, Plan, UpgradeEvent};
pub use registry::{Registry, Setup};
pub use upgrade::{FoundRun, Planned};

/// A task's id, chosen by the app when it asks for the job (unique per run of the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What coalesces: per key at most one task runs and one waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskKey {
    /// The flake lock's fingerprint, read for this host's diff view.
    Lock(String),
    Diff(String),
    Plan,
    /// The run the dashboard follows (started, attached to, resumed) or abandons: one at a time.
    Upgrade,
    /// Looking for unfinished runs.
    FindRuns,
    /// A cordon or uncordon of this node.
    Change(String),
    Export(String),
    /// The flake's system of every host (fleet drift).
    Drift,
}

/// How a new request meets a running task of the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Wait behind it (newest waiting request wins).
    Coalesce,
    /// Cancel it, then run (newest waiting request wins).
    Restart,
    /// Refuse while it runs.
    Single,
}

impl TaskKey {
    pub fn policy(&self) -> Policy {
        match self {
            TaskKey::Diff(_) => Policy::Restart,
            TaskKey::Upgrade => Policy::Single,
            _ => Policy::Coalesce,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Lock,
    Diff,
    Plan,
    Upgrade,
    FindRuns,
    Change,
    Export,
    Drift,
}

/// What a task does. Plain data: the app builds it, the registry runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Fingerprint the flake's `flake.lock` (the diff cache's key): file I/O, so a task.
    LockFingerprint {
        host: String,
    },
    /// The closure diff of a host (its deployed system against what the flake builds).
    Diff {
        host: String,
        deployed: Option<String>,
    },
    /// The upgrade plan of these hosts (empty: all) with every guard's verdict (a dry run).
    PlanUpgrade {
        only: Vec<String>,
    },
    /// The plan of one node's drain (maintenance) with every guard's verdict.
    PlanDrain {
        node: String,
    },
    /// Start the confirmed plan (an engine process of its own), then follow the run.
    StartUpgrade {
        plan: Plan,
    },
    /// Follow the live run `run_id` (its engine answers on its socket).
    AttachUpgrade {
        run_id: String,
    },
    /// Resume the interrupted run `run_id` in a new engine process, then follow it.
    ResumeUpgrade {
        run_id: String,
    },
    /// Abandon the interrupted run `run_id`: undo only its cordons, release the lock.
    AbandonUpgrade {
        run_id: String,
    },
    /// Look for unfinished runs in the journal directory (and whether their engine answers).
    FindRuns,
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    /// Evaluate every host's system from the flake (no build), for fleet drift; nothing is
    /// evaluated when the lock's fingerprint is still `known`.
    Drift {
        known: Option<String>,
    },
    /// Write a host's diff as text under `$XDG_STATE_HOME/homeinfra-tui/diffs/`.
    ExportDiff {
        host: String,
        diff: Box<ClosureDiff>,
        /// The file name's time stamp (`20240101-120000`, the app's clock and zone).
        stamp: String,
    },
}

impl Job {
    pub fn key(&self) -> TaskKey {
        match self {
            Job::LockFingerprint { host } => TaskKey::Lock(host.clone()),
            Job::Diff { host, .. } => TaskKey::Diff(host.clone()),
            Job::PlanUpgrade { .. } | Job::PlanDrain { .. } => TaskKey::Plan,
            Job::StartUpgrade { .. }
            | Job::AttachUpgrade { .. }
            | Job::ResumeUpgrade { .. }
            | Job::AbandonUpgrade { .. } => TaskKey::Upgrade,
            Job::FindRuns => TaskKey::FindRuns,
            Job::Cordon { node } | Job::Uncordon { node } => TaskKey::Change(node.clone()),
            Job::ExportDiff { host, .. } => TaskKey::Export(host.clone()),
            Job::Drift { .. } => TaskKey::Drift,
        }
    }

    pub fn kind(&self) -> TaskKind {
        match self {
            Job::LockFingerprint { .. } => TaskKind::Lock,
            Job::Diff { .. } => TaskKind::Diff,
            Job::PlanUpgrade { .. } | Job::PlanDrain { .. } => TaskKind::Plan,
            Job::StartUpgrade { .. }
            | Job::AttachUpgrade { .. }
            | Job::ResumeUpgrade { .. }
            | Job::AbandonUpgrade { .. } => TaskKind::Upgrade,
            Job::FindRuns => TaskKind::FindRuns,
            Job::Cordon { .. } | Job::Uncordon { .. } => TaskKind::Change,
            Job::ExportDiff { .. } => TaskKind::Export,
            Job::Drift { .. } => TaskKind::Drift,
        }
    }

    /// What the task is, in a few words.
    pub fn title(&self) -> String {
        match self {
            Job::LockFingerprint { .. } => "read the flake lock".into(),
            Job::Diff { host, .. } => format!("closure diff of {host}"),
            Job::PlanUpgrade { only } if only.is_empty() => "plan the upgrade of every host".into(),
            Job::PlanUpgrade { only } => format!("plan the upgrade of {}", only.join(", ")),
            Job::PlanDrain { node } => format!("plan the drain of {node}"),
            Job::StartUpgrade { plan } => format!("rolling upgrade {}", plan.run_id),
            Job::AttachUpgrade { run_id } => format!("follow rolling upgrade {run_id}"),
            Job::ResumeUpgrade { run_id } => format!("resume rolling upgrade {run_id}"),
            Job::AbandonUpgrade { run_id } => format!("abandon rolling upgrade {run_id}"),
            Job::FindRuns => "look for unfinished upgrade runs".into(),
            Job::Cordon { node } => format!("cordon {node}"),
            Job::Uncordon { node } => format!("uncordon {node}"),
            Job::ExportDiff { host, .. } => format!("export the diff of {host}"),
            Job::Drift { .. } => "evaluate the flake's systems (fleet drift)".into(),
        }
    }

    /// Whether the job changes the cluster or a host (refused in read-only mode).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Job::StartUpgrade { .. }
                | Job::ResumeUpgrade { .. }
                | Job::AbandonUpgrade { .. }
                | Job::Cordon { .. }
                | Job::Uncordon { .. }
        )
    }
}

/// The run a task follows: its id and its engine process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    pub run_id: String,
    pub pid: Option<u32>,
}

/// A job under the id the app gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub job: Job,
}

/// What a task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// A line of progress (nix's output while a diff builds).
    Progress(String),
    /// The flake lock's fingerprint (`None`: a remote flake, or no lock file).
    Lock(Option<String>),
    Diff(Result<Box<ClosureDiff>, String>),
    Planned(Result<Box<Planned>, String>),
    /// The run takes controls now, or why it could not start (or be attached to).
    UpgradeStarted(Result<Following, String>),
    /// One event of the run the task follows.
    Upgrade(Box<UpgradeEvent>),
    /// The run's events ended (the run finished, or the link to it went away).
    UpgradeEnded,
    /// The run took this control.
    ControlSent(Control),
    ControlRefused {
        control: Control,
        reason: String,
    },
    /// The unfinished runs (live ones first), or why they could not be read.
    RunsFound(Result<Vec<FoundRun>, String>),
    /// A run is abandoned (what was undone, for the footer), or why not.
    Abandoned(Result<String, String>),
    /// A cordon or uncordon is done (what happened, for the footer), or why not.
    Changed(Result<String, String>),
    /// The diff is written to this file, or why not.
    Exported(Result<PathBuf, String>),
    /// The flake's systems (`Ok(None)`: the lock did not change since the last time), or
    /// why they could not be evaluated at all.
    Drift(Result<Option<Box<FleetTargets>>, String>),
    Cancelled,
    /// A newer request of the same key replaced it before it ran.
    Superseded,
    /// The registry would not run it (read-only mode, a run already under way).
    Refused(String),
}

impl TaskEvent {
    /// The task's last message: nothing more comes under its id.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            TaskEvent::Progress(_)
                | TaskEvent::UpgradeStarted(Ok(_))
                | TaskEvent::Upgrade(_)
                | TaskEvent::ControlSent(_)
                | TaskEvent::ControlRefused { .. }
        )
    }
}

/// A message from a task to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMsg {
    pub id: TaskId,
    pub event: TaskEvent,
}
