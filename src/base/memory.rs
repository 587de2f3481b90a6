//! Giving freed memory back to the system. glibc's allocator keeps what a burst freed (the
//! first LIST of thousands of pods, a round of SSH logins) in its arenas for reuse, so a
//! dashboard that is idle again would stay at its peak resident size for good;
//! `malloc_trim(0)` returns the arenas' free pages. Elsewhere (musl, other systems) a no-op.

use std::time::{Duration, Instant};

/// After a burst: how long the app must have been quiet, and at most how often.
pub const QUIET: Duration = Duration::from_secs(2);
pub const AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Return the allocator's free pages to the system (a few milliseconds at most; run it off
/// the event loop's thread).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no
        // pointer and frees nothing that is in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// When to give memory back: once the app was quiet for [`QUIET`] after something came in,
/// and not again within [`AT_MOST_EVERY`].
#[derive(Debug, Default)]
pub struct Trim {
    /// The last arrival since the last trim (`None`: nothing came in since).
    pending: Option<Instant>,
    last: Option<Instant>,
}

impl Trim {
    pub fn new() -> Self {
        Self::default()
    }

    /// Something came in (a source's answer) at `now`.
    pub fn arrived(&mut self, now: Instant) {
        self.pending = Some(now);
    }

    /// When the next trim is due (`None`: nothing to give back).
    pub fn due(&self) -> Option<Instant> {
        let quiet = self.pending? + QUIET;
        Some(match self.last {
            Some(last) => quiet.max(last + AT_MOST_EVERY),
            None => quiet,
        })
    }

    /// The trim is being done at `now`.
    pub fn done(&mut self, now: Instant) {
        self.pending = None;
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_a_quiet_spell_and_not_too_often() {
        let t0 = Instant::now();
        let mut t = Trim::new();
        assert_eq!(t.due(), None, "nothing came in");
        t.arrived(t0);
        t.arrived(t0 + Duration::from_secs(1));
        assert_eq!(t.due(), Some(t0 + Duration::from_secs(1) + QUIET));
        t.done(t0 + Duration::from_secs(3));
        assert_eq!(t.due(), None);
        t.arrived(t0 + Duration::from_secs(4));
        assert_eq!(
            t.due(),
            Some(t0 + Duration::from_secs(3) + AT_MOST_EVERY),
            "not again within AT_MOST_EVERY"
        );
        give_back();
    }
}
