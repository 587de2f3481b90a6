//! The cluster-wide upgrade lock: a `coordination.k8s.io/v1` Lease
//! `kube-system/homeinfra-tui-upgrade` whose holder is `user@machine pid boot-id run-id`.
//!
//! The holder names its machine, its pid and that machine's boot id, so a Lease left behind by
//! a process of this machine that is gone (killed, or the machine rebooted since: a pid reused
//! after a reboot does not count as alive) is recognised, and `upgrade --resume` of that run
//! takes it over without `--force-unlock`; a run whose process is alive cannot be resumed
//! twice. Renewals retry with backoff while the Lease is still ours ([`renew`] says whether a
//! failure is for good).

use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use jiff::Timestamp;

use super::world::{ClusterRead, ClusterWrite, LeaseRecord, LeaseWrite};

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "homeinfra-tui-upgrade";

/// `user@machine pid boot-id run-id`.
pub fn holder_identity(run_id: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && !u.contains(char::is_whitespace))
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{user}@{} {} {} {run_id}",
        machine_name(),
        std::process::id(),
        machine_boot_id().unwrap_or_else(|| "unknown-boot".into())
    )
}

/// The name of this process's uid in /etc/passwd.
fn user_from_passwd() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// This machine's boot id (it changes on every boot).
pub fn machine_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
}

/// A holder string, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    /// `user@machine`.
    pub who: &'a str,
    pub machine: &'a str,
    pub pid: u32,
    /// The machine's boot id then (`None`: an older holder format without it).
    pub boot_id: Option<&'a str>,
    pub run_id: &'a str,
}

/// Read a holder string: `user@machine pid boot-id run-id` (or the older `user@machine pid
/// run-id`).
pub fn parse_holder(holder: &str) -> Option<Holder<'_>> {
    let parts: Vec<&str> = holder.split(' ').collect();
    let (who, pid, boot_id, run_id) = match parts.as_slice() {
        [who, pid, boot, run] => (*who, *pid, Some(*boot), *run),
        [who, pid, run] => (*who, *pid, None, *run),
        _ => return None,
    };
    Some(Holder {
        who,
        machine: who.rsplit_once('@').map(|(_, m)| m)?,
        pid: pid.parse().ok()?,
        boot_id,
        run_id,
    })
}

/// Whether the holder's process is alive, when it ran on this machine (`None`: elsewhere or
/// unreadable). A process killed with -9 leaves its Lease behind until it goes stale; a holder
/// from before this machine's last boot is dead whatever runs under its pid now.
pub fn holder_alive_here(holder: &str) -> Option<bool> {
    let h = parse_holder(holder)?;
    if h.machine != machine_name() {
        return None;
    }
    if let (Some(then), Some(now)) = (h.boot_id, machine_boot_id())
        && then != now
    {
        return Some(false);
    }
    Some(pid_alive(h.pid))
}

/// Is `pid` a live process (not a zombie)?
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` (zombie) and `X` (dead) are not alive.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// The run id part of a holder string (its last word).
pub fn holder_run_id(holder: &str) -> &str {
    holder.rsplit(' ').next().unwrap_or(holder)
}

/// Why the lock could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHeld {
    pub holder: String,
    pub since: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    pub stale: bool,
    /// The holder's process, when it ran on this machine: alive or gone.
    pub alive_here: Option<bool>,
}

impl LockHeld {
    fn of(cur: &LeaseRecord, now: Timestamp) -> Self {
        Self {
            holder: cur.holder.clone(),
            since: cur.acquired,
            renewed: cur.renewed,
            stale: is_stale(cur, now),
            alive_here: holder_alive_here(&cur.holder),
        }
    }

    /// The run that holds it.
    pub fn run_id(&self) -> &str {
        holder_run_id(&self.holder)
    }
}

impl std::fmt::Display for LockHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "another upgrade holds the lock: {}", self.holder)?;
        if let Some(s) = self.since {
            write!(f, " since {s}")?;
        }
        if let Some(r) = self.renewed {
            write!(f, " (renewed {r})")?;
        }
        let run = self.run_id();
        if self.alive_here == Some(false) {
            write!(
                f,
                " — its process on this machine is gone: `homeinfra-tui upgrade --resume {run}` or `--abandon {run}`"
            )
        } else if self.alive_here == Some(true) {
            write!(
                f,
                " — its process runs on this machine: you can only watch until it finishes (or abort it)"
            )
        } else if self.stale {
            f.write_str(" — it is stale (not renewed in time): take it over with --force-unlock")
        } else {
            f.write_str(" — you can only watch until it finishes")
        }
    }
}

fn is_stale(rec: &LeaseRecord, now: Timestamp) -> bool {
    let last = rec.renewed.or(rec.acquired);
    match last {
        None => true,
        Some(t) => {
            let d = jiff::SignedDuration::from_secs(i64::from(rec.duration_secs.max(1)));
            t + d < now
        }
    }
}

/// The result of trying to take the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Ours now (the record as written, for renewals).
    Acquired(LeaseRecord),
    Held(LockHeld),
}

/// May `holder` of run `run_id` take over the Lease `cur`?
fn may_take(cur: &LeaseRecord, holder: &str, run_id: &str, now: Timestamp, force: bool) -> bool {
    if cur.holder.is_empty() || cur.holder == holder {
        return true;
    }
    let stale = is_stale(cur, now);
    let alive = holder_alive_here(&cur.holder);
    if holder_run_id(&cur.holder) == run_id {
        // Resuming this run: not while its process lives; its Lease once the process is gone
        // (or the Lease went stale).
        return match alive {
            Some(true) => false,
            Some(false) => true,
            None => stale || force,
        };
    }
    force && (stale || alive == Some(false))
}

/// Take the lock for `run_id`. A Lease of the same run (a crashed run being resumed) is taken
/// over once its process is gone (or the Lease is stale); another run's only with `force` and
/// when it is stale or its process of this machine is gone; a released one freely.
pub async fn acquire(
    read: &dyn ClusterRead,
    write: &dyn ClusterWrite,
    holder: &str,
    run_id: &str,
    duration: Duration,
    now: Timestamp,
    force: bool,
) -> Result<Acquire> {
    let duration_secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    for _ in 0..3 {
        let existing = read.get_lease().await?;
        let mut rec = LeaseRecord {
            holder: holder.to_string(),
            acquired: Some(now),
            renewed: Some(now),
            duration_secs,
            resource_version: None,
        };
        let done = match existing {
            None => write.create_lease(&rec).await?,
            Some(cur) => {
                if !may_take(&cur, holder, run_id, now, force) {
                    return Ok(Acquire::Held(LockHeld::of(&cur, now)));
                }
                rec.resource_version = cur.resource_version.clone();
                write.update_lease(&rec).await?
            }
        };
        if done == LeaseWrite::Done {
            // Read back to learn the new resource version.
            if let Some(back) = read.get_lease().await?
                && back.holder == holder
            {
                return Ok(Acquire::Acquired(back));
            }
        }
    }
    Err(eyre!(
        "could not take the upgrade lock {LEASE_NAMESPACE}/{LEASE_NAME}: it kept changing"
    ))
}

/// Why a renewal failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewError {
    /// The Lease is someone else's now, or gone: for good.
    Lost(String),
    /// The API did not answer as it should (a timeout, a 500): worth another try while the
    /// Lease has not expired.
    Failed(String),
}

impl std::fmt::Display for RenewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenewError::Lost(m) | RenewError::Failed(m) => f.write_str(m),
        }
    }
}

/// Renew the lock once. A conflict with a Lease that is still ours (our previous write went
/// through, its answer did not) is taken as ours again.
pub async fn renew(
    read: &dyn ClusterRead,
    write: &dyn ClusterWrite,
    held: &mut LeaseRecord,
    now: Timestamp,
) -> Result<(), RenewError> {
    let failed = |e: color_eyre::Report| RenewError::Failed(format!("{e:#}"));
    let mut rec = held.clone();
    rec.renewed = Some(now);
    match write.update_lease(&rec).await.map_err(failed)? {
        LeaseWrite::Done => {}
        LeaseWrite::Conflict => {
            let cur = read.get_lease().await.map_err(failed)?;
            return match cur {
                Some(c) if c.holder == held.holder => {
                    *held = c;
                    Err(RenewError::Failed(
                        "the Lease changed under us (still ours): trying again".into(),
                    ))
                }
                Some(c) => Err(RenewError::Lost(format!(
                    "the upgrade lock was taken over by {}",
                    c.holder
                ))),
                None => Err(RenewError::Lost(
                    "the upgrade lock was deleted by someone else".into(),
                )),
            };
        }
    }
    match read.get_lease().await.map_err(failed)? {
        Some(back) if back.holder == held.holder => {
            *held = back;
            Ok(())
        }
        Some(back) => Err(RenewError::Lost(format!(
            "the upgrade lock was taken over by {}",
            back.holder
        ))),
        None => Err(RenewError::Lost(
            "the upgrade lock was deleted by someone else".into(),
        )),
    }
}

/// Release the lock if the run `run_id` holds it (deleting the Lease).
pub async fn release(
    read: &dyn ClusterRead,
    write: &dyn ClusterWrite,
    run_id: &str,
) -> Result<bool> {
    match read.get_lease().await? {
        Some(cur) if holder_run_id(&cur.holder) == run_id => {
            Ok(write.delete_lease(&cur).await? == LeaseWrite::Done)
        }
        _ => Ok(false),
    }
}

/// Who holds the lock right now, for a watcher.
pub async fn current(cluster: &dyn ClusterRead, now: Timestamp) -> Result<Option<LockHeld>> {
    Ok(cluster
        .get_lease()
        .await?
        .filter(|c| !c.holder.is_empty())
        .map(|c| LockHeld::of(&c, now)))
}

/// Can run `run_id` be resumed by this process now, as far as the lock says? `Err` names who
/// holds it and what to do.
pub async fn resumable(
    cluster: &dyn ClusterRead,
    run_id: &str,
    now: Timestamp,
) -> Result<(), String> {
    let held = match current(cluster, now).await {
        Ok(h) => h,
        Err(e) => return Err(format!("cannot read the upgrade lock: {e:#}")),
    };
    match held {
        None => Ok(()),
        Some(h) if h.run_id() == run_id => match h.alive_here {
            Some(true) => Err(format!(
                "run {run_id} is still running ({}): it cannot be resumed while its process lives — watch it, or abort it",
                h.holder
            )),
            Some(false) => Ok(()),
            None if h.stale => Ok(()),
            None => Err(format!(
                "run {run_id} holds the lock from another machine ({}) and renews it: resume it there, or wait until its lock goes stale",
                h.holder
            )),
        },
        Some(h) => Err(h.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_name_machine_pid_boot_and_run() {
        let me = holder_identity("run-1");
        let h = parse_holder(&me).unwrap();
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.run_id, "run-1");
        assert_eq!(h.boot_id.map(str::to_string), machine_boot_id());
        assert_eq!(holder_run_id(&me), "run-1");
        // This process is alive.
        assert_eq!(holder_alive_here(&me), Some(true));
        // The same pid from before a reboot of this machine is not.
        let before_reboot = format!(
            "{} {} 00000000-dead-beef-0000-000000000000 run-1",
            h.who, h.pid
        );
        assert_eq!(holder_alive_here(&before_reboot), Some(false));
        // Another machine: cannot tell.
        assert_eq!(holder_alive_here("u@elsewhere.example 1 b run-1"), None);
        // The older format still reads.
        let old = parse_holder("ops@box 42 run-9").unwrap();
        assert_eq!((old.pid, old.boot_id, old.run_id), (42, None, "run-9"));
        assert_eq!(parse_holder("garbage"), None);
    }

    #[test]
    fn who_may_take_a_lease() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let lease = |holder: &str, renewed_secs_ago: i64| LeaseRecord {
            holder: holder.into(),
            acquired: Some(now - jiff::SignedDuration::from_secs(600)),
            renewed: Some(now - jiff::SignedDuration::from_secs(renewed_secs_ago)),
            duration_secs: 60,
            resource_version: Some("1".into()),
        };
        let me = holder_identity("r1");
        let h = parse_holder(&me).unwrap();
        let dead_here = format!("{} 4194303 {} r1", h.who, h.boot_id.unwrap_or("b"));
        // Our own run, its process gone: resume takes it over, fresh or not.
        assert!(may_take(&lease(&dead_here, 1), &me, "r1", now, false));
        // Our own run, its process alive: never (no second engine).
        let alive = format!(
            "{} {} {} r1",
            h.who,
            std::process::id(),
            h.boot_id.unwrap_or("b")
        );
        assert!(!may_take(&lease(&alive, 1), "x@y 1 b r1", "r1", now, false));
        assert!(!may_take(&lease(&alive, 1), "x@y 1 b r1", "r1", now, true));
        // Another machine's run: only once stale.
        assert!(!may_take(&lease("u@far 1 b r1", 1), &me, "r1", now, false));
        assert!(may_take(&lease("u@far 1 b r1", 120), &me, "r1", now, false));
        // Another run: only with force, and only stale or dead.
        assert!(!may_take(
            &lease("u@far 1 b r0", 120),
            &me,
            "r1",
            now,
            false
        ));
        assert!(may_take(&lease("u@far 1 b r0", 120), &me, "r1", now, true));
        assert!(!may_take(&lease("u@far 1 b r0", 1), &me, "r1", now, true));
        let other_dead = dead_here.replace(" r1", " r0");
        assert!(may_take(&lease(&other_dead, 1), &me, "r1", now, true));
        assert!(!may_take(&lease(&other_dead, 1), &me, "r1", now, false));
        // Free.
        assert!(may_take(&lease("", 1), &me, "r1", now, false));
    }
}
