//! The run journal: every event but command output, one JSON object a line, appended and
//! fsynced, in `$XDG_STATE_HOME/homeinfra-tui/runs/<run-id>.jsonl` (the directory 0700, the
//! file 0600). From it an interrupted run is found, resumed from the interrupted step —
//! including a reboot under way: [`RunSummary::reboots`] — or abandoned. A torn last line (a
//! process killed mid-write) is cut back to the last whole line before anything is appended.
//! Writing a journal takes the write capability.
//!
//! Each record carries the event's sequence number (`seq`), the same number the run's control
//! socket gives the event (see `process`): a client that attaches late reads the journal, then
//! the socket, and drops what it has already seen by `seq`. Command output is numbered too but
//! not journaled, so the journal's numbers have gaps where output was.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, WrapErr, eyre};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    BootOnceRecord, Plan, RebootRecord, RevertRecord, RunOutcome, Step, StepOutcome, UpgradeEvent,
};
use crate::base::Writes;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub ts: Timestamp,
    /// The event's number in its run (1, 2, …; a resumed run goes on counting). `None` in
    /// records written without an engine (`--abandon`) or by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
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

/// A run id that is safe as a file name (and in a shell command line): letters, digits, `-`,
/// `_`, `.`; not empty, not starting with `.` or `-`.
pub fn valid_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && !run_id.starts_with(['.', '-'])
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(eyre!("`{run_id}` is not a valid run id"))
    }
}

impl Journal {
    /// Open a run's journal for appending, creating the directory (0700) and the file (0600).
    /// A torn last line is cut back first, so what is appended starts on a line of its own.
    pub fn open(_writes: &Writes, dir: &Path, run_id: &str) -> Result<Self> {
        valid_run_id(run_id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .wrap_err_with(|| format!("cannot create the journal directory {}", dir.display()))?;
        let path = path_of(dir, run_id);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .wrap_err_with(|| format!("cannot open the journal {}", path.display()))?;
        cut_torn_tail(&file)
            .wrap_err_with(|| format!("cannot repair the journal {}", path.display()))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event (without a sequence number) and fsync. Command output is not
    /// journaled.
    pub fn append(&mut self, ts: Timestamp, event: &UpgradeEvent) -> Result<()> {
        self.append_record(&Record {
            ts,
            seq: None,
            event: event.clone(),
        })
    }

    /// Append one record and fsync. Command output is not journaled.
    pub fn append_record(&mut self, rec: &Record) -> Result<()> {
        if matches!(rec.event, UpgradeEvent::Output { .. }) {
            return Ok(());
        }
        let mut line = serde_json::to_string(rec).wrap_err("cannot encode a journal record")?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .wrap_err_with(|| format!("cannot write the journal {}", self.path.display()))
    }
}

/// Cut a file back to its last newline (nothing, when it has none): a record torn by a kill
/// mid-write is dropped, whole records are kept.
fn cut_torn_tail(file: &File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    // Look back in chunks for the last newline.
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                file.set_len(keep)?;
                file.sync_data()?;
            }
            return Ok(());
        }
        if start == 0 {
            file.set_len(0)?;
            file.sync_data()?;
            return Ok(());
        }
        end = start;
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

/// The number the next event of a run goes on from: one more than the highest `seq` in its
/// journal (1 for a new or unreadable journal).
pub fn next_seq(path: &Path) -> u64 {
    read(path)
        .ok()
        .and_then(|recs| recs.iter().filter_map(|r| r.seq).max())
        .map_or(1, |s| s + 1)
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
    /// Per node, its last reboot asked for (what the boot ids were before it).
    pub reboots: HashMap<String, RebootRecord>,
    /// The pre-upgrade etcd snapshot this run took (the last that succeeded), if any: a
    /// resumed run does not take a second one.
    pub snapshot: Option<SnapshotRecord>,
    /// Per node, a revert timer armed and not yet confirmed or reported (its confirm step
    /// has not finished).
    pub reverts: HashMap<String, RevertRecord>,
    /// Per node, a boot-once reboot whose new generation is not the default yet (its
    /// make-default step has not finished well).
    pub boot_once: HashMap<String, BootOnceRecord>,
}

/// An etcd snapshot a run took: its name, where, the file k3s wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub name: String,
    pub node: String,
    pub host: String,
    pub file: Option<String>,
}

impl SnapshotRecord {
    /// `homeinfra-r1-node2-1800000000 on node2`.
    pub fn describe(&self) -> String {
        format!(
            "{} on {}",
            self.file.as_deref().unwrap_or(&self.name),
            self.node
        )
    }
}

impl RunSummary {
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Where the run stopped, for messages: `node2 reboot` (the step interrupted, else the
    /// step it would resume at).
    pub fn stopped_at(&self) -> Option<String> {
        if let Some((n, s)) = &self.interrupted {
            return Some(format!("{n} {s}"));
        }
        let (i, s) = self.resume_at?;
        self.plan.entries.get(i).map(|e| format!("{} {s}", e.node))
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
    let mut reboots: HashMap<String, RebootRecord> = HashMap::new();
    let mut snapshot: Option<SnapshotRecord> = None;
    let mut reverts: HashMap<String, RevertRecord> = HashMap::new();
    let mut boot_once: HashMap<String, BootOnceRecord> = HashMap::new();
    for r in &records {
        match &r.event {
            UpgradeEvent::SnapshotFinished {
                name,
                node,
                host,
                file,
                outcome: StepOutcome::Ok { .. },
                ..
            } => {
                snapshot = Some(SnapshotRecord {
                    name: name.clone(),
                    node: node.clone(),
                    host: host.clone(),
                    file: file.clone(),
                });
            }
            UpgradeEvent::RevertArmed { node, revert } => {
                reverts.insert(node.clone(), revert.clone());
            }
            UpgradeEvent::StepFinished {
                node,
                step: Step::Confirm,
                outcome,
                ..
            } => {
                open = None;
                reverts.remove(node);
                if !outcome.is_failed() {
                    last_ok.insert(node.clone(), Step::Confirm);
                }
            }
            UpgradeEvent::RebootIssued { node, before } => {
                reboots.insert(node.clone(), before.clone());
            }
            UpgradeEvent::BootOnceSet { node, boot_once: b } => {
                boot_once.insert(node.clone(), b.clone());
            }
            UpgradeEvent::StepFinished {
                node,
                step: Step::MakeDefault,
                outcome,
                ..
            } => {
                open = None;
                if !outcome.is_failed() {
                    boot_once.remove(node);
                    last_ok.insert(node.clone(), Step::MakeDefault);
                }
            }
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
            Some(s) => s
                .next_in(plan.kind)
                .unwrap_or(*Step::sequence(plan.kind).last().unwrap_or(&Step::Settle)),
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
        reboots,
        snapshot,
        reverts,
        boot_once,
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
    use crate::testing::{entry, plan, writes};

    #[test]
    fn torn_last_line_is_ignored_and_resume_point_found() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan("r1", ["a", "b"].map(|n| entry(n, n, Role::Agent)));
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let mut j = Journal::open(&writes(), dir.path(), "r1").unwrap();
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
        assert!(Journal::open(&writes(), dir.path(), "../x").is_err());
        assert!(Journal::open(&writes(), dir.path(), "a;b").is_err());

        // Resuming appends after the torn bytes are cut: every line stays a record.
        let mut j = Journal::open(&writes(), dir.path(), "r1").unwrap();
        j.append(
            t,
            &UpgradeEvent::StepFinished {
                node: "a".into(),
                step: Step::Drain,
                outcome: StepOutcome::ok(),
                duration_ms: 1,
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        for (i, line) in text.lines().enumerate() {
            assert!(
                serde_json::from_str::<Record>(line).is_ok(),
                "line {}: {line}",
                i + 1
            );
        }
        let s = summarize(&path).unwrap();
        // After the drain: the switch's first step, arming its revert.
        assert_eq!(s.resume_at, Some((0, Step::ArmRevert)));
        assert_eq!(s.stopped_at().as_deref(), Some("a arm-revert"));
    }

    #[test]
    fn journal_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state/runs");
        Journal::open(&writes(), &dir, "r2").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path_of(&dir, "r2")), 0o600);
    }

    #[test]
    fn a_journal_of_one_torn_line_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(dir.path(), "r3");
        std::fs::write(&path, b"{\"ts\":\"2027-01").unwrap();
        drop(Journal::open(&writes(), dir.path(), "r3").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
