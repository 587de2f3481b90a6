//! The cluster-wide upgrade lock: a `coordination.k8s.io/v1` Lease
//! `kube-system/homeinfra-tui-upgrade` whose holder is `user@machine pid run-id`.

use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use jiff::Timestamp;

use super::world::{ClusterOps, LeaseRecord, LeaseWrite};

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "homeinfra-tui-upgrade";

/// `user@machine pid run-id`.
pub fn holder_identity(run_id: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{} {} {run_id}", machine_name(), std::process::id())
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

/// Whether the holder's process is alive, when it ran on this machine (`None`: elsewhere or
/// unreadable). A process killed with -9 leaves its Lease behind until it goes stale.
pub fn holder_alive_here(holder: &str) -> Option<bool> {
    let mut parts = holder.split(' ');
    let who = parts.next()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let machine = who.rsplit_once('@').map(|(_, m)| m)?;
    if machine != machine_name() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` (zombie) and `X` (dead) are not alive.
        Ok(stat) => Some(
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').next())
                .is_some_and(|st| st != "Z" && st != "X"),
        ),
        Err(_) => Some(false),
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
        if self.stale {
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

/// Take the lock for `run_id`. A Lease held by the same run id (a crashed run being resumed)
/// is taken over; a stale one only with `force`; an expired-and-released one freely.
pub async fn acquire(
    cluster: &dyn ClusterOps,
    holder: &str,
    run_id: &str,
    duration: Duration,
    now: Timestamp,
    force: bool,
) -> Result<Acquire> {
    let duration_secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    for _ in 0..3 {
        let existing = cluster.get_lease().await?;
        let mut rec = LeaseRecord {
            holder: holder.to_string(),
            acquired: Some(now),
            renewed: Some(now),
            duration_secs,
            resource_version: None,
        };
        let write = match existing {
            None => cluster.create_lease(&rec).await?,
            Some(cur) => {
                let free = cur.holder.is_empty();
                let ours = holder_run_id(&cur.holder) == run_id;
                let stale = is_stale(&cur, now);
                if !(free || ours || (stale && force)) {
                    return Ok(Acquire::Held(LockHeld {
                        holder: cur.holder,
                        since: cur.acquired,
                        renewed: cur.renewed,
                        stale,
                    }));
                }
                rec.resource_version = cur.resource_version.clone();
                cluster.update_lease(&rec).await?
            }
        };
        if write == LeaseWrite::Done {
            // Read back to learn the new resource version.
            if let Some(back) = cluster.get_lease().await?
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

/// Renew the lock; `Err` when it is no longer ours.
pub async fn renew(cluster: &dyn ClusterOps, held: &mut LeaseRecord, now: Timestamp) -> Result<()> {
    let mut rec = held.clone();
    rec.renewed = Some(now);
    match cluster.update_lease(&rec).await? {
        LeaseWrite::Done => {}
        LeaseWrite::Conflict => {
            let cur = cluster.get_lease().await?;
            return Err(eyre!(
                "the upgrade lock was taken over by {}",
                cur.map(|c| c.holder)
                    .unwrap_or_else(|| "nobody (deleted)".into())
            ));
        }
    }
    if let Some(back) = cluster.get_lease().await?
        && back.holder == held.holder
    {
        *held = back;
        return Ok(());
    }
    Err(eyre!("the upgrade lock is no longer ours"))
}

/// Release the lock if the run `run_id` holds it (deleting the Lease).
pub async fn release(cluster: &dyn ClusterOps, run_id: &str) -> Result<bool> {
    match cluster.get_lease().await? {
        Some(cur) if holder_run_id(&cur.holder) == run_id => {
            Ok(cluster.delete_lease(&cur).await? == LeaseWrite::Done)
        }
        _ => Ok(false),
    }
}

/// Who holds the lock right now, for a watcher.
pub async fn current(cluster: &dyn ClusterOps, now: Timestamp) -> Result<Option<LockHeld>> {
    Ok(cluster
        .get_lease()
        .await?
        .filter(|c| !c.holder.is_empty())
        .map(|c| LockHeld {
            stale: is_stale(&c, now),
            holder: c.holder,
            since: c.acquired,
            renewed: c.renewed,
        }))
}
