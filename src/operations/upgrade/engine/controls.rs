//! The operator's controls while a run goes: pause after a node, resume, abort at the next
//! safe point, skip a node, and the questions the runner waits on (retry/skip/abort, approve a
//! reboot); events are journaled before they are sent.

use super::Runner;
use crate::operations::upgrade::journal::Record;
use crate::operations::upgrade::{Control, RunOutcome, UpgradeEvent};

impl Runner {
    /// Paused after `node`: wait for Resume or Abort.
    pub(super) async fn paused(&mut self, node: &str) -> Option<RunOutcome> {
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: "paused".into(),
            detail: "paused after this node: resume or abort".into(),
        })
        .await;
        loop {
            match self.ctl.recv().await {
                None | Some(Control::Abort) => {
                    return Some(RunOutcome::Aborted {
                        reason: "aborted while paused".into(),
                    });
                }
                Some(Control::Resume) => {
                    self.pause = false;
                    self.notice(None, "resumed".into()).await;
                    return None;
                }
                Some(Control::Skip { node }) => {
                    self.skip.insert(node);
                }
                Some(other) => {
                    self.notice(None, format!("paused: {other:?} does nothing now"))
                        .await
                }
            }
        }
    }

    /// The renewer's message once the lock is lost.
    pub(super) fn lock_lost(&self) -> Option<String> {
        self.keeper.as_ref().and_then(|k| k.lost())
    }

    /// Take the controls sent so far (and a lost lock) into account.
    pub(super) async fn poll_controls(&mut self) {
        if let Some(l) = self.lock_lost()
            && self.abort.is_none()
        {
            self.abort = Some(l);
        }
        while let Ok(c) = self.ctl.try_recv() {
            self.apply_control(c).await;
        }
    }

    /// A control that arrived while nothing waited for one.
    pub(super) async fn apply_control(&mut self, c: Control) {
        match c {
            Control::Pause => {
                self.pause = true;
                self.notice(None, "will pause after the current node".into())
                    .await;
            }
            Control::Resume => self.pause = false,
            Control::Abort => {
                self.abort = Some("aborted by the operator".into());
                self.notice(None, "will abort at the next safe point".into())
                    .await;
            }
            Control::Skip { node } => {
                self.notice(Some(node.clone()), "will be skipped".into())
                    .await;
                self.skip.insert(node);
            }
            other => {
                self.notice(None, format!("{other:?}: nothing waits for that now"))
                    .await
            }
        }
    }

    /// Wait for the operator's decision about `node`.
    pub(super) async fn ask(&mut self, node: &str, what: &str, detail: String) -> Control {
        self.emit(UpgradeEvent::Waiting {
            node: node.to_string(),
            what: what.to_string(),
            detail,
        })
        .await;
        loop {
            match self.ctl.recv().await {
                None => return Control::Abort,
                Some(Control::Pause) => self.pause = true,
                Some(Control::Resume) => self.pause = false,
                Some(Control::Skip { node: n }) if n != node => {
                    self.skip.insert(n);
                }
                Some(c) => return c,
            }
        }
    }

    /// A notice in the run's event stream.
    pub(super) async fn notice(&mut self, node: Option<String>, message: String) {
        self.emit(UpgradeEvent::Notice { node, message }).await;
    }

    /// Number an event, journal it, then send it.
    pub(super) async fn emit(&mut self, ev: UpgradeEvent) {
        let rec = self.number(ev);
        let failed = match &mut self.journal {
            Some(j) => j.append_record(&rec).err(),
            None => None,
        };
        let _ = self.tx.send(rec).await;
        if let Some(e) = failed {
            // Without a journal the run could not be resumed: stop at the next safe point.
            self.abort.get_or_insert(format!("{e:#}"));
            let notice = self.number(UpgradeEvent::Notice {
                node: None,
                message: format!("{e:#}; aborting at the next safe point"),
            });
            let _ = self.tx.send(notice).await;
        }
    }

    /// The event as a record: now, and the run's next sequence number.
    fn number(&mut self, event: UpgradeEvent) -> Record {
        let seq = self.seq;
        self.seq += 1;
        Record {
            ts: self.w.read.clock.now(),
            seq: Some(seq),
            event,
        }
    }
}
