//! The lock while a run holds it: renewed every third of the Lease duration in the background,
//! and confirmed by a renewal right before every destructive step. A failed renewal is tried
//! again with backoff as long as the Lease has not expired since the last good one; only then
//! (or when someone else took it) is the lock lost — and a run that cannot show it holds the
//! lock starts no drain, switch or reboot.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Mutex;

use crate::operations::upgrade::lock::{self, RenewError};
use crate::operations::upgrade::world::{Clock, ClusterRead, ClusterWrite, LeaseRecord, World};

/// The first wait after a failed renewal (doubled each time, at most a sixth of the Lease).
const FIRST_RETRY: Duration = Duration::from_millis(500);

struct Held {
    rec: LeaseRecord,
    /// The last renewal (or the acquisition) that went through.
    last_ok: Timestamp,
    /// Why the lock is lost for good.
    lost: Option<String>,
}

/// The run's hold on the lock.
pub(super) struct LockKeeper {
    read: Arc<dyn ClusterRead>,
    write: Arc<dyn ClusterWrite>,
    clock: Arc<dyn Clock>,
    duration: Duration,
    held: Mutex<Held>,
    /// A copy of `held.lost` readable without waiting (for the controls' poll).
    lost: std::sync::Mutex<Option<String>>,
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

impl LockKeeper {
    pub(super) fn new(w: &World, rec: LeaseRecord, duration: Duration) -> Self {
        let now = w.read.clock.now();
        Self {
            read: w.read.cluster.clone(),
            write: w.write.cluster.clone(),
            clock: w.read.clock.clone(),
            duration,
            held: Mutex::new(Held {
                last_ok: rec.renewed.unwrap_or(now),
                rec,
                lost: None,
            }),
            lost: std::sync::Mutex::new(None),
        }
    }

    /// Why the lock is lost, once it is.
    pub(super) fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|g| g.clone())
    }

    fn lose(&self, held: &mut Held, why: String) -> String {
        held.lost = Some(why.clone());
        if let Ok(mut g) = self.lost.lock() {
            *g = Some(why.clone());
        }
        why
    }

    /// Renew now, retrying with backoff while the Lease would still be ours. `Err` (why) when
    /// the run cannot show it holds the lock: then it must not start a destructive step.
    pub(super) async fn confirm(&self) -> Result<(), String> {
        let mut held = self.held.lock().await;
        if let Some(why) = &held.lost {
            return Err(why.clone());
        }
        let mut wait = FIRST_RETRY;
        let max_wait = (self.duration / 6).max(FIRST_RETRY);
        loop {
            let now = self.clock.now();
            let mut rec = held.rec.clone();
            match lock::renew(self.read.as_ref(), self.write.as_ref(), &mut rec, now).await {
                Ok(()) => {
                    held.rec = rec;
                    held.last_ok = now;
                    return Ok(());
                }
                Err(RenewError::Lost(why)) => {
                    return Err(self.lose(&mut held, format!("lost the upgrade lock: {why}")));
                }
                Err(RenewError::Failed(e)) => {
                    // A conflict with our own Lease brought its new resource version.
                    if rec.holder == held.rec.holder {
                        held.rec.resource_version = rec.resource_version.clone();
                    }
                    let since = elapsed(held.last_ok, self.clock.now());
                    if since + wait >= self.duration {
                        return Err(self.lose(
                            &mut held,
                            format!(
                                "cannot show that this run still holds the upgrade lock: not renewed for {}s (the Lease lasts {}s); last error: {e}",
                                since.as_secs(),
                                self.duration.as_secs()
                            ),
                        ));
                    }
                    tracing::warn!(
                        "renewing the upgrade lock failed ({e}); trying again in {:?}",
                        wait
                    );
                    self.clock.sleep(wait).await;
                    wait = (wait * 2).min(max_wait);
                }
            }
        }
    }

    /// Renew every third of the Lease duration until the lock is lost; then stay pending (the
    /// run stops at its next safe point). Never returns.
    pub(super) async fn renew_loop(&self) {
        let every = (self.duration / 3).max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            if self.confirm().await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    }
}
