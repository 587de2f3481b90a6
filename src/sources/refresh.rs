//! A source task that refreshes on a timer or on demand (Mimir, Loki): its handle, and the
//! pacing of its rounds (the refresh interval, doubled after a failure, at most 4×; a wake
//! cuts the wait short, and wakes during a round coalesce into one).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A running refreshing source: wake it for an immediate refresh, or abort its task.
#[derive(Debug)]
pub struct RefreshHandle {
    pub task: JoinHandle<()>,
    wake: Arc<Notify>,
}

impl RefreshHandle {
    /// Refresh as soon as the current round (if any) is done; repeated calls coalesce.
    pub fn refresh_now(&self) {
        self.wake.notify_one();
    }
}

/// Spawn `run`, which receives the notifier [`RefreshHandle::refresh_now`] wakes.
pub fn spawn<F, Fut>(run: F) -> RefreshHandle
where
    F: FnOnce(Arc<Notify>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let wake = Arc::new(Notify::new());
    let task = tokio::spawn(run(wake.clone()));
    RefreshHandle { task, wake }
}

/// The wait between rounds: `base` after a success, `base × 2^failures` (failures in a row,
/// at most 2) after a failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration) -> Self {
        Self { base, failures: 0 }
    }

    /// How long to wait after a round that went `ok` (or not).
    pub fn next(&mut self, ok: bool) -> Duration {
        self.failures = if ok { 0 } else { (self.failures + 1).min(2) };
        self.base * (1 << self.failures)
    }

    /// Wait after a round that went `ok` (or not), or until `wake` is notified.
    pub async fn wait(&mut self, ok: bool, wake: &Notify) {
        let d = self.next(ok);
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_the_wait_up_to_four_times() {
        let mut b = Backoff::new(Duration::from_secs(15));
        let got: Vec<u64> = [false, false, false, true, false]
            .into_iter()
            .map(|ok| b.next(ok).as_secs())
            .collect();
        assert_eq!(got, vec![30, 60, 60, 15, 30]);
    }
}
