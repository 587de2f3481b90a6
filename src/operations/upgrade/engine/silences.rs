//! The silences of a run: made for a node before its cordon, extended in the background while
//! the node is in progress (a run that dies stops extending them, so they lapse by themselves),
//! expired after its uncordon. A silence that cannot be made or extended is said, never a
//! reason to stop: the guards still read every alert that is not silenced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Runner;
use crate::inventory::Host;
use crate::operations::upgrade::UpgradeEvent;
use crate::operations::upgrade::world::{NodeSilence, SilenceWrite};

/// The silences alive now, per node, with their comment; extended by [`Self::keep_loop`].
pub(super) struct SilenceKeeper {
    w: Option<Arc<dyn SilenceWrite>>,
    active: Mutex<BTreeMap<String, (Vec<NodeSilence>, String)>>,
}

impl SilenceKeeper {
    pub(super) fn new(w: Option<Arc<dyn SilenceWrite>>) -> Self {
        Self {
            w,
            active: Mutex::new(BTreeMap::new()),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Vec<NodeSilence>, String)>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Extend every live silence at a third of its duration, for as long as the run lives
    /// (Alertmanager's own clock: real time, not the world's).
    pub(super) async fn keep_loop(&self) {
        let Some(w) = &self.w else {
            return std::future::pending().await;
        };
        let period = (w.duration() / 3).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(period).await;
            let now: Vec<(String, Vec<NodeSilence>, String)> = self
                .active()
                .iter()
                .map(|(n, (s, c))| (n.clone(), s.clone(), c.clone()))
                .collect();
            for (node, silences, comment) in now {
                for s in silences {
                    match w.extend(&s.id, &comment).await {
                        Ok(id) if id != s.id => {
                            if let Some((list, _)) = self.active().get_mut(&node)
                                && let Some(x) = list.iter_mut().find(|x| x.id == s.id)
                            {
                                x.id = id;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("cannot extend silence {} of {node}: {e}", s.id),
                    }
                }
            }
        }
    }
}

impl Runner {
    /// Silence `host`'s alerts for this run, unless they are already (or silences are off).
    pub(super) async fn ensure_silences(&mut self, node: &str, host: &Host, what: &str) {
        let Some(w) = self.w.write.silences.clone() else {
            return;
        };
        if self.silences.active().contains_key(node) {
            return;
        }
        let comment = format!(
            "homeinfra-tui {what} run {}: {node} in maintenance",
            self.plan.run_id
        );
        match w.create(host, &comment).await {
            Ok(list) => {
                self.silences
                    .active()
                    .insert(node.to_string(), (list.clone(), comment));
                self.emit(UpgradeEvent::Silenced {
                    node: node.to_string(),
                    silences: list,
                    secs: w.duration().as_secs(),
                })
                .await;
            }
            Err(e) => {
                self.notice(
                    Some(node.to_string()),
                    format!("could not silence {node} in Alertmanager: {e} (the run goes on; its alerts may notify)"),
                )
                .await
            }
        }
    }

    /// Expire `node`'s silences, if it has any.
    pub(super) async fn end_silences(&mut self, node: &str) {
        let Some(w) = self.w.write.silences.clone() else {
            return;
        };
        let Some((list, _)) = self.silences.active().remove(node) else {
            return;
        };
        let mut failed = Vec::new();
        for s in &list {
            if let Err(e) = w.expire(&s.id).await {
                failed.push(format!("{}: {e}", s.id));
            }
        }
        self.emit(UpgradeEvent::SilencesExpired {
            node: node.to_string(),
            ids: list.iter().map(|s| s.id.clone()).collect(),
        })
        .await;
        if !failed.is_empty() {
            self.notice(
                Some(node.to_string()),
                format!(
                    "could not expire silences (they lapse by themselves within {}s): {}",
                    w.duration().as_secs(),
                    failed.join("; ")
                ),
            )
            .await;
        }
    }
}
