//! The pre-upgrade etcd snapshot (`[upgrade] pre_snapshot`): before the first node of a run
//! whose nodes include a control plane, `k3s etcd-snapshot save --name homeinfra-<run id>`
//! (sudo) on the first Ready server, then its `ETCDSnapshotFile` ready to use — bounded by
//! `pre_snapshot_timeout_secs`. `require`: a failure refuses the run (nothing touched yet);
//! `try`: a warning, and the run goes on. A resumed run whose journal has a snapshot that
//! succeeded takes no second one.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::PreSnapshot;
use crate::operations::upgrade::engine::{Runner, elapsed, refused};
use crate::operations::upgrade::journal::SnapshotRecord;
use crate::operations::upgrade::snapshot::{SnapshotPlan, SnapshotServer, snapshot_plan};
use crate::operations::upgrade::world::CommandSpec;
use crate::operations::upgrade::{Control, RunOutcome, StepOutcome, UpgradeEvent};
use crate::probes::etcd_snapshot::SnapshotSave;
use crate::probes::words::Word;

/// The guard name of a refusal by the snapshot.
pub const GUARD: &str = "pre-snapshot";

/// Lines of k3s's output kept in a failure message.
const ERROR_LINES: usize = 3;

impl Runner {
    /// The snapshot before the nodes from plan index `from` on, when they need one.
    /// `Some(outcome)`: the run stops there.
    pub(in crate::operations::upgrade::engine) async fn pre_snapshot(
        &mut self,
        from: usize,
    ) -> Option<RunOutcome> {
        let sp = snapshot_plan(&self.plan, &self.inv, self.s.pre_snapshot, from);
        if !sp.takes() {
            return None;
        }
        if let Some(done) = self.snapshot.clone() {
            self.emit(UpgradeEvent::SnapshotFinished {
                name: done.name.clone(),
                node: done.node.clone(),
                host: done.host.clone(),
                file: done.file.clone(),
                policy: sp.policy,
                outcome: StepOutcome::Skipped {
                    reason: format!(
                        "this run already took {} before it was interrupted",
                        done.describe()
                    ),
                },
                duration_ms: 0,
            })
            .await;
            return None;
        }
        loop {
            self.poll_controls().await;
            if let Some(reason) = self.abort.clone() {
                return Some(RunOutcome::Aborted { reason });
            }
            let started = self.w.read.clock.now();
            let server = self.snapshot_server(&sp).await;
            let (host_id, node) = match &server {
                Ok(s) | Err((s, _)) => (s.host.clone(), s.node.clone()),
            };
            self.emit(UpgradeEvent::SnapshotStarted {
                name: sp.name.clone(),
                node: node.clone(),
                host: host_id.clone(),
            })
            .await;
            let (outcome, file) = match server {
                Err((_, message)) => (StepOutcome::Failed { message }, None),
                Ok(_) => self.take_snapshot(&sp, &host_id, &node).await,
            };
            let duration_ms = elapsed(started, self.w.read.clock.now()).as_millis() as u64;
            self.emit(UpgradeEvent::SnapshotFinished {
                name: sp.name.clone(),
                node: node.clone(),
                host: host_id.clone(),
                file: file.clone(),
                policy: sp.policy,
                outcome: outcome.clone(),
                duration_ms,
            })
            .await;
            let StepOutcome::Failed { message } = outcome else {
                self.snapshot = Some(SnapshotRecord {
                    name: sp.name.clone(),
                    node,
                    host: host_id,
                    file,
                });
                return None;
            };
            if sp.policy == PreSnapshot::Try {
                self.notice(
                    None,
                    format!(
                        "warning: the pre-upgrade etcd snapshot failed: {message}; going on without it ([upgrade] pre_snapshot = \"try\")"
                    ),
                )
                .await;
                return None;
            }
            let refusal = format!(
                "the etcd snapshot before the first control plane failed, so nothing was touched: {message} \
                 ([upgrade] pre_snapshot = \"require\"; fix the snapshot, or set \"try\" to go on without one)"
            );
            if !self.opts.interactive {
                return Some(refused(None, GUARD, refusal));
            }
            loop {
                match self
                    .ask(
                        &node,
                        "operator",
                        format!("pre-upgrade etcd snapshot failed: {message} — retry or abort"),
                    )
                    .await
                {
                    Control::Retry => break,
                    Control::Abort => return Some(refused(None, GUARD, refusal)),
                    other => {
                        self.notice(
                            Some(node.clone()),
                            format!("{other:?} does nothing now: retry the snapshot or abort"),
                        )
                        .await
                    }
                }
            }
        }
    }

    /// The first server of the plan's list that is Ready now; `Err` names each one's state
    /// (with the first server, to name the step after).
    async fn snapshot_server(
        &self,
        sp: &SnapshotPlan,
    ) -> Result<SnapshotServer, (SnapshotServer, String)> {
        let mut why = Vec::new();
        for s in &sp.servers {
            match self.w.read.cluster.node(&s.node).await {
                Ok(st) if st.ready == Some(true) => return Ok(s.clone()),
                Ok(st) => why.push(format!(
                    "{} is {}",
                    s.node,
                    match st.ready {
                        Some(false) => "NotReady",
                        _ => "of unknown readiness",
                    }
                )),
                Err(e) => why.push(format!("{}: {e:#}", s.node)),
            }
        }
        let first = sp.servers.first().cloned().unwrap_or(SnapshotServer {
            host: String::new(),
            node: String::new(),
        });
        Err((
            first,
            format!("no healthy server to take it on ({})", why.join("; ")),
        ))
    }

    /// Save the snapshot on `host_id` and wait for its record to be ready: the outcome, and
    /// the file k3s wrote once known.
    async fn take_snapshot(
        &mut self,
        sp: &SnapshotPlan,
        host_id: &str,
        node: &str,
    ) -> (StepOutcome, Option<String>) {
        let failed = |message: String| (StepOutcome::Failed { message }, None);
        let Some(host) = self.inv.host(host_id).cloned() else {
            return failed(format!("{host_id} is not a host of the inventory"));
        };
        let word = match Word::name(host_id, "snapshot name", &sp.name) {
            Ok(w) => w,
            Err(e) => return failed(e.to_string()),
        };
        // A write, but not a destructive one (it adds a file): no lock re-confirmation as
        // before a drain, switch or reboot; a lock lost meanwhile aborts the run at its next
        // safe point, and the first drain confirms the lock again.
        let timeout = self.s.pre_snapshot_timeout;
        let start = self.w.read.clock.now();
        let cmd = CommandSpec::Remote(SnapshotSave::command(&word));
        let (ltx, mut lrx) = mpsc::unbounded_channel::<String>();
        let result = self.w.write.hosts.exec(&host, &cmd, timeout, ltx).await;
        let mut lines = Vec::new();
        while let Ok(l) = lrx.try_recv() {
            lines.push(l);
        }
        let said = || k3s_error(&lines);
        match result {
            Ok(Some(0)) => {}
            Ok(Some(code)) => {
                return failed(format!(
                    "`{}` on {node} exited with status {code}: {}",
                    cmd.text(),
                    said()
                ));
            }
            Ok(None) => {
                return failed(format!(
                    "`{}` on {node} was killed by a signal: {}",
                    cmd.text(),
                    said()
                ));
            }
            Err(e) => return failed(format!("`{}` on {node} failed: {e:#}", cmd.text())),
        }
        let file = SnapshotSave::saved_file(&lines.join("\n"));
        let key = file.clone().unwrap_or_else(|| sp.name.clone());
        let mut last_error = String::new();
        loop {
            match self.w.read.cluster.etcd_snapshot_file(&key).await {
                Ok(Some(rec)) if rec.ready => {
                    let size = rec
                        .size_bytes
                        .map(|b| format!(", {:.1} MB", b as f64 / 1e6))
                        .unwrap_or_default();
                    let file = Some(rec.snapshot_name.clone());
                    return (
                        StepOutcome::ok_with(format!("{} on {node}{size}", rec.snapshot_name)),
                        file,
                    );
                }
                Ok(Some(rec)) if rec.error.is_some() => {
                    return (
                        StepOutcome::Failed {
                            message: format!(
                                "k3s recorded snapshot {} on {node} as failed: {}",
                                rec.snapshot_name,
                                rec.error.unwrap_or_default()
                            ),
                        },
                        Some(rec.snapshot_name),
                    );
                }
                Ok(_) => last_error.clear(),
                Err(e) => last_error = format!("; last error: {e:#}"),
            }
            let waited = elapsed(start, self.w.read.clock.now());
            if waited >= timeout {
                return (
                    StepOutcome::Failed {
                        message: format!(
                            "timed out after {}s waiting for the ETCDSnapshotFile (k3s.cattle.io/v1) of snapshot {key} on {node} to be ready to use ([upgrade] pre_snapshot_timeout_secs){last_error}",
                            timeout.as_secs()
                        ),
                    },
                    file,
                );
            }
            let poll = self
                .s
                .poll
                .min(timeout - waited)
                .max(Duration::from_millis(10));
            self.w.read.clock.sleep(poll).await;
        }
    }
}

/// What k3s said about a failure: its error lines (`FATA`, `ERRO`, `level=error`, `Error`),
/// else its last lines.
fn k3s_error(lines: &[String]) -> String {
    let errors: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            l.starts_with("FATA")
                || l.starts_with("ERRO")
                || l.contains("level=fatal")
                || l.contains("level=error")
                || l.contains("Error")
        })
        .collect();
    let pick: Vec<&str> = if errors.is_empty() {
        lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        errors
    };
    let tail = &pick[pick.len().saturating_sub(ERROR_LINES)..];
    if tail.is_empty() {
        "no output".into()
    } else {
        tail.join(" / ")
    }
}
