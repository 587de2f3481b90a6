//! The run journal: every event but command output, one JSON object a line, appended and
//! fsynced, in `$XDG_STATE_HOME/homeinfra-tui/runs/<run-id>.jsonl`. From it an interrupted run
//! is found, resumed from the interrupted step, or abandoned.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, WrapErr, eyre};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Plan, RunOutcome, Step, StepOutcome, UpgradeEvent};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub ts: Timestamp,
    #[serde(flatten)]
    pub event: UpgradeEvent,
}

/// The default journal directory (`$XDG_STATE_HOME/homeinfra-tui/runs`).
pub fn default_dir() -> Option<PathBuf> {
    crate::paths::app_state_dir().map(|d| d.join("runs"))
}

/// The journal file of a run.
pub fn path_of(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.jsonl"))
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Open (creating the directory and file) for appending.
    pub fn open(dir: &Path, run_id: &str) -> Result<Self> {
        if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
            return Err(eyre!("`{run_id}` is not a valid run id"));
        }
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create the journal directory {}", dir.display()))?;
        let path = path_of(dir, run_id);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .wrap_err_with(|| format!("cannot open the journal {}", path.display()))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event and fsync. Command output is not journaled.
    pub fn append(&mut self, ts: Timestamp, event: &UpgradeEvent) -> Result<()> {
        if matches!(event, UpgradeEvent::Output { .. }) {
            return Ok(());
        }
        let rec = Record {
            ts,
            event: event.clone(),
        };
        let mut line = serde_json::to_string(&rec).wrap_err("cannot encode a journal record")?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .wrap_err_with(|| format!("cannot write the journal {}", self.path.display()))
    }
}

/// Read a journal. A torn last line (killed mid-write) is ignored.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read the journal {}", path.display()))?;
    parse(path, &text)
}

/// The records of a journal's text (`path` names it in errors). A torn last line is ignored.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Record>> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(eyre!(
                    "{}:{}: not a journal record: {e}",
                    path.display(),
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

/// What a journal says about its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: String,
    pub path: PathBuf,
    pub plan: Plan,
    pub started: Timestamp,
    pub finished: Option<RunOutcome>,
    /// Nodes done (upgraded or skipped), in order.
    pub done: Vec<String>,
    /// Where to go on: the plan index and the step (None when every node is done).
    pub resume_at: Option<(usize, Step)>,
    /// The last step started and not finished, for messages.
    pub interrupted: Option<(String, Step)>,
}

impl RunSummary {
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }
}

/// Summarize a run's journal.
pub fn summarize(path: &Path) -> Result<RunSummary> {
    summarize_records(path, read(path)?)
}

/// Summarize the records of the journal at `path` (named in errors and the summary).
pub fn summarize_records(path: &Path, records: Vec<Record>) -> Result<RunSummary> {
    let (started, plan) = records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            UpgradeEvent::RunStarted { plan, .. } => Some((r.ts, plan.clone())),
            _ => None,
        })
        .ok_or_else(|| eyre!("{}: the journal has no run_started record", path.display()))?;
    let mut finished = None;
    let mut done: Vec<String> = Vec::new();
    let mut open: Option<(String, Step)> = None;
    // Per node: the last step finished well, and a rollback seen.
    let mut last_ok: std::collections::HashMap<String, Step> = Default::default();
    let mut rollback: Option<String> = None;
    for r in &records {
        match &r.event {
            UpgradeEvent::RunStarted { .. } => finished = None,
            UpgradeEvent::StepStarted { node, step } => {
                open = Some((node.clone(), *step));
                if *step == Step::Rollback {
                    rollback = Some(node.clone());
                }
            }
            UpgradeEvent::StepFinished {
                node,
                step,
                outcome,
                ..
            } => {
                open = None;
                if !outcome.is_failed() && *step != Step::Rollback {
                    last_ok.insert(node.clone(), *step);
                } else if *step == Step::Guards {
                    last_ok.remove(node);
                }
            }
            UpgradeEvent::NodeDone { node, .. } if !done.contains(node) => {
                done.push(node.clone());
            }
            UpgradeEvent::RunFinished { outcome } => finished = Some(outcome.clone()),
            _ => {}
        }
    }
    let next = plan.entries.iter().position(|e| !done.contains(&e.node));
    let resume_at = next.map(|i| {
        let node = &plan.entries[i].node;
        if rollback.as_deref() == Some(node.as_str()) {
            return (i, Step::Rollback);
        }
        let step = match last_ok.get(node) {
            None => Step::Guards,
            Some(s) => s.next().unwrap_or(Step::Settle),
        };
        (i, step)
    });
    Ok(RunSummary {
        run_id: plan.run_id.clone(),
        path: path.to_path_buf(),
        plan,
        started,
        finished,
        done,
        resume_at,
        interrupted: open,
    })
}

/// Every run in `dir` that has no `run_finished` record, oldest first.
pub fn unfinished(dir: &Path) -> Result<Vec<RunSummary>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(eyre!(
                "cannot list the journal directory {}: {e}",
                dir.display()
            ));
        }
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "jsonl")
            && let Ok(s) = summarize(&p)
            && !s.is_finished()
        {
            out.push(s);
        }
    }
    out.sort_by_key(|s| s.started);
    Ok(out)
}

/// A failed step's outcome, for messages.
pub fn failed_message(o: &StepOutcome) -> Option<&str> {
    match o {
        StepOutcome::Failed { message } => Some(message),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::testing::{entry, plan};

    #[test]
    fn torn_last_line_is_ignored_and_resume_point_found() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan("r1", ["a", "b"].map(|n| entry(n, n, Role::Agent)));
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let mut j = Journal::open(dir.path(), "r1").unwrap();
        j.append(
            t,
            &UpgradeEvent::RunStarted {
                run_id: "r1".into(),
                plan,
                resumed_at: None,
            },
        )
        .unwrap();
        for (node, step) in [("a", Step::Guards), ("a", Step::Cordon), ("a", Step::Drain)] {
            j.append(
                t,
                &UpgradeEvent::StepStarted {
                    node: node.into(),
                    step,
                },
            )
            .unwrap();
            if step != Step::Drain {
                j.append(
                    t,
                    &UpgradeEvent::StepFinished {
                        node: node.into(),
                        step,
                        outcome: StepOutcome::ok(),
                        duration_ms: 1,
                    },
                )
                .unwrap();
            }
        }
        drop(j);
        // kill -9 in the middle of a write.
        let path = path_of(dir.path(), "r1");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ts\":\"2027-01-15T08:00:00Z\",\"event\":\"step_fin")
            .unwrap();
        let s = summarize(&path).unwrap();
        assert_eq!(s.resume_at, Some((0, Step::Drain)));
        assert_eq!(s.interrupted, Some(("a".into(), Step::Drain)));
        assert!(!s.is_finished());
        assert_eq!(unfinished(dir.path()).unwrap().len(), 1);
        assert!(Journal::open(dir.path(), "../x").is_err());
    }
}
