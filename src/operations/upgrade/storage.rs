//! Storage-aware pacing: what Longhorn's settings mean for a run (the plan's storage notes),
//! and the progress and ETA of the replica rebuilds the run waits for between nodes.
//!
//! Longhorn keeps a failed replica for `replica-replenishment-wait-interval` seconds (default
//! 600) hoping its node returns; past that it builds a new replica elsewhere, in full, and
//! throws the old one away when it comes back. A reboot that takes longer than that wait
//! therefore costs a full copy of every replica on the node. `stale-replica-timeout`
//! (minutes) is when a failed replica is deleted for good. `node-drain-policy` decides what a
//! drain of a node holding a volume's last healthy replica does.
//!
//! The rebuild progress comes from the volumes' Engines (`engines.longhorn.io`,
//! `status.rebuildStatus`: replica address → `{isRebuilding, progress, state, error}`); an ETA
//! needs two samples of a replica's progress (the rate between the first and the last one).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::cluster::{LonghornState, ReplicaRebuild};

/// Longhorn's drain policy setting.
pub const DRAIN_POLICY: &str = "node-drain-policy";
/// How long (seconds) a failed replica waits for its node before a new one is built.
pub const REPLENISHMENT_WAIT: &str = "replica-replenishment-wait-interval";
/// When (minutes) a failed replica is deleted.
pub const STALE_REPLICA_TIMEOUT: &str = "stale-replica-timeout";
/// The settings the plan reads.
pub const SETTINGS: [&str; 3] = [DRAIN_POLICY, REPLENISHMENT_WAIT, STALE_REPLICA_TIMEOUT];
/// A node's expected downtime when no earlier run measured a reboot.
pub const DEFAULT_DOWNTIME: Duration = Duration::from_secs(300);

/// How serious a storage note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteLevel {
    Info,
    Warning,
}

/// One thing the plan says about storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNote {
    pub level: NoteLevel,
    /// The node it is about (`None`: the whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The Longhorn setting it names.
    pub setting: String,
    pub message: String,
}

/// What the plan says about storage: Longhorn's settings as read, the expected downtime of a
/// rebooting node, and the notes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoragePlan {
    /// The settings read (name → value); empty when they could not be read.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// A rebooting node's expected downtime, and where the figure comes from.
    #[serde(default)]
    pub downtime_secs: u64,
    #[serde(default)]
    pub downtime_from: String,
    #[serde(default)]
    pub notes: Vec<StorageNote>,
    /// Not read: the config says there is no Longhorn.
    #[serde(default)]
    pub skipped: bool,
}

/// A node of the plan as the storage notes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    pub node: String,
    /// `Some(false)`: it will not reboot (its replicas stay up).
    pub reboots: Option<bool>,
}

/// The plan's storage notes from Longhorn's `settings` (or why they could not be read),
/// the planned nodes, and a rebooting node's expected downtime (`None`: no earlier run
/// measured one, [`DEFAULT_DOWNTIME`] is assumed).
pub fn storage_plan(
    settings: Result<BTreeMap<String, String>, String>,
    nodes: &[PlannedNode],
    measured: Option<(Duration, String)>,
) -> StoragePlan {
    let (downtime, from) = measured.unwrap_or_else(|| {
        (
            DEFAULT_DOWNTIME,
            "a default: no earlier completed run measured a reboot".into(),
        )
    });
    let mut plan = StoragePlan {
        downtime_secs: downtime.as_secs(),
        downtime_from: from,
        ..Default::default()
    };
    let all = match settings {
        Ok(s) => s,
        Err(e) => {
            plan.notes.push(StorageNote {
                level: NoteLevel::Warning,
                node: None,
                setting: SETTINGS.join(", "),
                message: format!(
                    "Longhorn's settings could not be read ({e}): {} unknown — cannot tell whether a reboot starts a needless full rebuild or how a drain of a last replica goes",
                    SETTINGS.join(", ")
                ),
            });
            return plan;
        }
    };
    plan.settings = SETTINGS
        .iter()
        .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let rebooting: Vec<&PlannedNode> = nodes.iter().filter(|n| n.reboots != Some(false)).collect();
    let d = eta_short(downtime);
    match secs_of(&all, REPLENISHMENT_WAIT) {
        Ok(wait) => {
            for n in rebooting.iter().filter(|_| downtime > wait) {
                plan.notes.push(StorageNote {
                    level: NoteLevel::Warning,
                    node: Some(n.node.clone()),
                    setting: REPLENISHMENT_WAIT.into(),
                    message: format!(
                        "{}: its reboot is expected to keep it away ~{d} ({}), longer than Longhorn's {REPLENISHMENT_WAIT} ({} s): Longhorn will start a needless full rebuild of its replicas on other nodes — raise {REPLENISHMENT_WAIT} above {} s for the run",
                        n.node,
                        plan.downtime_from,
                        wait.as_secs(),
                        downtime.as_secs()
                    ),
                });
            }
        }
        Err(why) => plan.notes.push(unreadable(REPLENISHMENT_WAIT, &why)),
    }
    match all
        .get(STALE_REPLICA_TIMEOUT)
        .map(|v| v.trim().parse::<u64>())
    {
        Some(Ok(minutes)) => {
            let stale = Duration::from_secs(minutes * 60);
            for n in rebooting.iter().filter(|_| downtime > stale) {
                plan.notes.push(StorageNote {
                    level: NoteLevel::Warning,
                    node: Some(n.node.clone()),
                    setting: STALE_REPLICA_TIMEOUT.into(),
                    message: format!(
                        "{}: its expected downtime (~{d}) exceeds Longhorn's {STALE_REPLICA_TIMEOUT} ({minutes} min): its failed replicas will be deleted, not reused",
                        n.node
                    ),
                });
            }
        }
        Some(Err(_)) => plan.notes.push(unreadable(
            STALE_REPLICA_TIMEOUT,
            &format!("not a number of minutes: {:?}", all[STALE_REPLICA_TIMEOUT]),
        )),
        None => plan
            .notes
            .push(unreadable(STALE_REPLICA_TIMEOUT, "not among the settings")),
    }
    match all.get(DRAIN_POLICY) {
        Some(p) => plan.notes.push(drain_policy_note(p)),
        None => plan
            .notes
            .push(unreadable(DRAIN_POLICY, "not among the settings")),
    }
    plan
}

/// A setting the notes need, not readable.
fn unreadable(setting: &str, why: &str) -> StorageNote {
    StorageNote {
        level: NoteLevel::Warning,
        node: None,
        setting: setting.into(),
        message: format!("Longhorn's {setting} could not be read: {why}"),
    }
}

/// Seconds of a setting.
fn secs_of(all: &BTreeMap<String, String>, name: &str) -> Result<Duration, String> {
    match all.get(name) {
        None => Err("not among the settings".into()),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("not a number of seconds: {v:?}")),
    }
}

/// What `node-drain-policy`'s value means for the run's drains.
fn drain_policy_note(policy: &str) -> StorageNote {
    let (level, what) = match policy {
        "block-if-contains-last-replica" => (
            NoteLevel::Info,
            "the drain of a node holding a volume's last healthy replica blocks (Longhorn's PDB on its instance manager, named in the drain) until another replica is healthy",
        ),
        "allow-if-replica-is-stopped" => (
            NoteLevel::Warning,
            "the drain of a node holding a volume's last healthy replica goes on once that replica is stopped: its data is lost if the node does not come back",
        ),
        "always-allow" => (
            NoteLevel::Warning,
            "no drain ever blocks: a volume's last healthy replica may go down with its node (data loss, corruption if it was running)",
        ),
        "block-for-eviction" => (
            NoteLevel::Info,
            "a cordon evicts every replica off the node and its drain blocks until they are copied elsewhere: slow, it copies every volume on the node",
        ),
        "block-for-eviction-if-contains-last-replica" => (
            NoteLevel::Info,
            "a cordon evicts the replicas that have no healthy copy elsewhere and the drain blocks until they are copied",
        ),
        _ => (
            NoteLevel::Warning,
            "a value this version does not know: what a drain of a last replica does is unknown",
        ),
    };
    StorageNote {
        level,
        node: None,
        setting: DRAIN_POLICY.into(),
        message: format!("{DRAIN_POLICY} = {policy}: {what}"),
    }
}

/// The storage notes as lines of text (the headless dry run and the dashboard's plan view).
pub fn text(p: &StoragePlan) -> Vec<String> {
    if p.skipped {
        return vec!["storage: Longhorn not read ([upgrade] skip_guards has \"longhorn\")".into()];
    }
    let mut out = Vec::new();
    if !p.settings.is_empty() {
        let s: Vec<String> = p.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(format!(
            "storage: Longhorn {} · a reboot keeps a node away ~{} ({}); between nodes the run waits for every rebuild, then settles",
            s.join(", "),
            eta_short(Duration::from_secs(p.downtime_secs)),
            p.downtime_from
        ));
    }
    for n in &p.notes {
        let mark = match n.level {
            NoteLevel::Warning => "⚠",
            NoteLevel::Info => "·",
        };
        out.push(format!("  {mark} {}", n.message));
    }
    out
}

fn eta_short(d: Duration) -> String {
    super::eta::short(d)
}

/// One rebuild as the wait shows it: its progress and ETA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildEta {
    pub volume: String,
    pub replica: String,
    /// The replica's node, when the cluster's replicas name it.
    pub node: Option<String>,
    pub progress: u8,
    /// `None` until two samples show progress.
    pub eta: Option<Duration>,
}

impl RebuildEta {
    /// `pvc-…: replica pvc-…-r-1 on node3 42% (ETA 2m)`.
    pub fn line(&self) -> String {
        format!(
            "{}: replica {}{} {}%{}",
            self.volume,
            self.replica,
            self.node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default(),
            self.progress,
            self.eta_text()
        )
    }

    /// ` (ETA 2m)` or ` (ETA unknown)`.
    pub fn eta_text(&self) -> String {
        match self.eta {
            Some(d) => format!(" (ETA {})", eta_short(d)),
            None => " (ETA unknown)".into(),
        }
    }
}

/// A replica's first progress sample, and its last progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Samples {
    first: (Timestamp, u8),
    last: u8,
}

/// The rebuilds seen over a wait: each replica's progress samples, for its ETA.
#[derive(Debug, Clone, Default)]
pub struct RebuildWatch {
    seen: HashMap<(String, String), Samples>,
}

impl RebuildWatch {
    /// Record the rebuilds reported at `now` and return each one's progress and ETA (the
    /// replica's node from `lh`, when given). A rebuild no longer reported is forgotten; one
    /// whose progress went back (it restarted) starts its samples anew.
    pub fn observe(
        &mut self,
        now: Timestamp,
        rebuilds: &[ReplicaRebuild],
        lh: Option<&LonghornState>,
    ) -> Vec<RebuildEta> {
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for r in rebuilds {
            let key = (r.volume.clone(), r.replica.clone());
            let s = match self.seen.get(&key) {
                Some(s) if r.progress >= s.last && now >= s.first.0 => Samples {
                    first: s.first,
                    last: r.progress,
                },
                _ => Samples {
                    first: (now, r.progress),
                    last: r.progress,
                },
            };
            next.insert(key, s);
            out.push(RebuildEta {
                volume: r.volume.clone(),
                replica: r.replica.clone(),
                node: lh.and_then(|lh| {
                    lh.replicas
                        .iter()
                        .find(|x| x.name == r.replica)
                        .map(|x| x.node.clone())
                }),
                progress: r.progress,
                // The rate over the whole wait so far.
                eta: eta(s.first, (now, r.progress)),
            });
        }
        self.seen = next;
        out
    }
}

/// The time left of a rebuild at `last`, from the rate between two samples (`None`: no
/// progress between them, or no time).
pub fn eta(first: (Timestamp, u8), last: (Timestamp, u8)) -> Option<Duration> {
    let dt = last.0.duration_since(first.0).as_secs_f64();
    let dp = f64::from(last.1) - f64::from(first.1);
    if dt <= 0.0 || dp <= 0.0 {
        return None;
    }
    let left = f64::from(100u8.saturating_sub(last.1)) * dt / dp;
    Some(Duration::from_secs_f64(left.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn rb(p: u8) -> ReplicaRebuild {
        ReplicaRebuild {
            volume: "pvc-1".into(),
            replica: "pvc-1-r-b".into(),
            address: "tcp://10.0.0.2:10000".into(),
            progress: p,
            state: "in_progress".into(),
            error: String::new(),
        }
    }

    #[test]
    fn eta_from_the_rate_between_two_samples() {
        assert_eq!(
            eta((at(0), 10), (at(10), 30)),
            Some(Duration::from_secs(35))
        );
        assert_eq!(eta((at(0), 10), (at(0), 10)), None);
        assert_eq!(eta((at(0), 40), (at(30), 40)), None);
        assert_eq!(eta((at(0), 50), (at(5), 100)), Some(Duration::ZERO));
    }

    #[test]
    fn the_watch_has_no_eta_until_two_samples_and_restarts_with_the_rebuild() {
        let mut w = RebuildWatch::default();
        let first = w.observe(at(0), &[rb(10)], None);
        assert_eq!(first[0].eta, None);
        assert!(
            first[0].line().contains("10% (ETA unknown)"),
            "{}",
            first[0].line()
        );
        let second = w.observe(at(20), &[rb(30)], None);
        assert_eq!(second[0].eta, Some(Duration::from_secs(70)));
        assert!(
            second[0].line().contains("30% (ETA 2m)"),
            "{}",
            second[0].line()
        );
        // No progress since: the rate over the whole wait is slower, the ETA longer.
        let third = w.observe(at(40), &[rb(30)], None);
        assert_eq!(third[0].eta, Some(Duration::from_secs(140)));
        // Went back: a new rebuild, no ETA yet.
        assert_eq!(w.observe(at(50), &[rb(5)], None)[0].eta, None);
        // Gone, then back: no old samples.
        assert!(w.observe(at(60), &[], None).is_empty());
        assert_eq!(w.observe(at(70), &[rb(50)], None)[0].eta, None);
    }

    fn settings(wait: &str) -> BTreeMap<String, String> {
        [
            (DRAIN_POLICY, "block-if-contains-last-replica"),
            (REPLENISHMENT_WAIT, wait),
            (STALE_REPLICA_TIMEOUT, "2880"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn nodes() -> Vec<PlannedNode> {
        vec![
            PlannedNode {
                node: "node1".into(),
                reboots: Some(true),
            },
            PlannedNode {
                node: "node2".into(),
                reboots: Some(false),
            },
        ]
    }

    #[test]
    fn a_downtime_past_the_replenishment_wait_warns_per_rebooting_node() {
        let p = storage_plan(Ok(settings("60")), &nodes(), None);
        let warn: Vec<&StorageNote> = p
            .notes
            .iter()
            .filter(|n| n.setting == REPLENISHMENT_WAIT)
            .collect();
        assert_eq!(warn.len(), 1, "{:?}", p.notes);
        assert_eq!(warn[0].node.as_deref(), Some("node1"));
        assert!(warn[0].message.contains("needless full rebuild"));
        assert!(warn[0].message.contains("(60 s)") && warn[0].message.contains("300 s"));
        // Above the downtime: no warning.
        let p = storage_plan(
            Ok(settings("600")),
            &nodes(),
            Some((Duration::from_secs(90), "measured".into())),
        );
        assert!(
            p.notes.iter().all(|n| n.setting != REPLENISHMENT_WAIT),
            "{:?}",
            p.notes
        );
        assert!(
            text(&p)
                .iter()
                .any(|l| l.contains("block-if-contains-last-replica"))
        );
    }

    #[test]
    fn unreadable_settings_and_risky_policies_are_said() {
        let p = storage_plan(Err("403 forbidden".into()), &nodes(), None);
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.notes[0].level, NoteLevel::Warning);
        assert!(
            p.notes[0]
                .message
                .contains("could not be read (403 forbidden)")
        );
        let mut s = settings("600");
        s.insert(DRAIN_POLICY.into(), "always-allow".into());
        s.remove(STALE_REPLICA_TIMEOUT);
        let p = storage_plan(Ok(s), &nodes(), None);
        let drain = p.notes.iter().find(|n| n.setting == DRAIN_POLICY).unwrap();
        assert_eq!(drain.level, NoteLevel::Warning);
        assert!(drain.message.contains("data loss"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.setting == STALE_REPLICA_TIMEOUT
                    && n.message.contains("could not be read"))
        );
    }
}
