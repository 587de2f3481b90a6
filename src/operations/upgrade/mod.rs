//! The guarded rolling upgrade: one node at a time, guards → cordon → drain → switch →
//! reboot when needed → wait healthy → (rollback on failure) → uncordon → settle.
//!
//! UI-independent. The engine talks to the outside world only through the traits of
//! [`world`] (cluster, hosts, health, clock), so it runs the same against the real cluster
//! ([`live`]), the in-memory fakes of `fake` (tests and benchmarks only: feature `test-util`)
//! and the simulator.
//!
//! Entry points for the TUI and the headless command:
//! - [`plan()`]: the order of the run (agents, then servers, the etcd leader last);
//!   [`forecast`]: what each node goes through (its closure diff), the order that follows the
//!   change and the k3s skew guards ([`skew`]), the time per node ([`eta`]).
//! - [`dry_run`]: every guard's verdict per planned node, touching nothing.
//! - [`start`]: spawn the runner; returns an [`UpgradeHandle`] (pause, abort, retry, skip,
//!   approve) and a receiver of [`UpgradeEvent`]s (serde-serializable, one per line in JSON).
//! - [`cordon`] / [`uncordon`] (a kube client) or [`cordon_with`] / [`uncordon_with`] (any
//!   [`ClusterOps`]): the engine's own cordon step, for the `c` key.
//! - [`progress::RunProgress`]: events folded into per-node timelines for the live view.
//! - [`journal`]: unfinished runs, resume points; [`abandon`]: undo only our cordons.
//! - [`process`]: the engine as its own process — its control socket, starting it detached,
//!   following a run from another process (journal + socket), finding live and interrupted runs.

pub mod drain;
pub mod engine;
pub mod eta;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod forecast;
pub mod guards;
pub mod journal;
pub mod live;
pub mod lock;
pub mod plan;
pub mod process;
pub mod progress;
pub mod skew;
pub mod snapshot;
pub mod storage;
pub mod text;
pub mod world;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{BootOnce, PreSnapshot, RebootPolicy, SwitchMode, UpgradeConfig};
use crate::inventory::Role;

pub use engine::{UpgradeHandle, abandon, dry_run, start, start_sequenced};
pub use guards::{GuardVerdict, Verdict};
pub use live::{cordon, manual_run_id, uncordon};
pub use plan::{plan, planned_silences};
pub use world::{
    ClusterRead, ClusterWrite, HostRead, HostWrite, ReadWorld, World, Writers, cordon_with,
    uncordon_with,
};

/// One step of a node's upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Guards,
    Cordon,
    Drain,
    /// Arm the host's own revert (a transient systemd timer) before the switch.
    ArmRevert,
    Switch,
    /// A new SSH connection and the node's health confirm the new system; the timer is
    /// disarmed (or the host is seen back on its previous system).
    Confirm,
    Reboot,
    WaitHealthy,
    /// After a boot-once reboot: the node is healthy on its new generation, which becomes the
    /// boot default (skipped when the reboot did not boot once).
    MakeDefault,
    Rollback,
    /// A maintenance (a drain run): the node stays drained and cordoned, its silences kept,
    /// until the operator ends it (`c`, `homeinfra-tui uncordon NODE`).
    Hold,
    Uncordon,
    Settle,
}

impl Step {
    /// The steps of a node that goes well, in order (`Rollback` only runs on failure).
    pub const NORMAL: [Step; 11] = [
        Step::Guards,
        Step::Cordon,
        Step::Drain,
        Step::ArmRevert,
        Step::Switch,
        Step::Confirm,
        Step::Reboot,
        Step::WaitHealthy,
        Step::MakeDefault,
        Step::Uncordon,
        Step::Settle,
    ];

    /// The steps of a one-node maintenance ([`RunKind::Drain`]), in order.
    pub const DRAIN: [Step; 5] = [
        Step::Guards,
        Step::Cordon,
        Step::Drain,
        Step::Hold,
        Step::Uncordon,
    ];

    /// The steps of a run of `kind` that goes well, in order.
    pub fn sequence(kind: RunKind) -> &'static [Step] {
        match kind {
            RunKind::Upgrade => &Step::NORMAL,
            RunKind::Drain => &Step::DRAIN,
        }
    }

    /// The step after this one in a run of `kind` (`None` after its last step).
    pub fn next_in(self, kind: RunKind) -> Option<Step> {
        let seq = Step::sequence(kind);
        let i = seq.iter().position(|s| *s == self)?;
        seq.get(i + 1).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Guards => "guards",
            Step::Cordon => "cordon",
            Step::Drain => "drain",
            Step::ArmRevert => "arm-revert",
            Step::Switch => "switch",
            Step::Confirm => "confirm",
            Step::Reboot => "reboot",
            Step::WaitHealthy => "wait-healthy",
            Step::MakeDefault => "make-default",
            Step::Rollback => "rollback",
            Step::Hold => "hold",
            Step::Uncordon => "uncordon",
            Step::Settle => "settle",
        }
    }

    /// The step after this one in [`Step::NORMAL`] (`None` after `Settle` and for `Rollback`).
    pub fn next(self) -> Option<Step> {
        let i = Step::NORMAL.iter().position(|s| *s == self)?;
        Step::NORMAL.get(i + 1).copied()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Inventory host id.
    pub host: String,
    /// Kubernetes node name (the hostname).
    pub node: String,
    pub role: Role,
    /// This node runs the etcd leader (so it goes last).
    pub etcd_leader: bool,
}

/// What a run does to its nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// The rolling upgrade ([`Step::NORMAL`]).
    #[default]
    Upgrade,
    /// One node's maintenance ([`Step::DRAIN`]): guards, cordon, drain, then hold until the
    /// operator ends it (uncordon). The same lock, silences and journal as an upgrade.
    Drain,
}

impl RunKind {
    pub fn is_upgrade(&self) -> bool {
        *self == RunKind::Upgrade
    }

    /// The word for silences' comments and messages: `upgrade` or `drain`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Upgrade => "upgrade",
            RunKind::Drain => "drain",
        }
    }
}

/// The nodes of a run, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    /// The flake reference the switch builds from (empty for a drain).
    pub flake: String,
    pub entries: Vec<PlanEntry>,
    /// An upgrade (the default, not written) or a one-node drain.
    #[serde(default, skip_serializing_if = "RunKind::is_upgrade")]
    pub kind: RunKind,
}

impl Plan {
    /// The one-node maintenance of `entry` (run id `drain-<new run id>`).
    pub fn drain(entry: PlanEntry) -> Self {
        Self {
            run_id: format!("drain-{}", new_run_id()),
            flake: String::new(),
            entries: vec![entry],
            kind: RunKind::Drain,
        }
    }
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepOutcome {
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Skipped {
        reason: String,
    },
    Failed {
        message: String,
    },
}

impl StepOutcome {
    pub fn ok() -> Self {
        StepOutcome::Ok { detail: None }
    }
    pub fn ok_with(detail: impl Into<String>) -> Self {
        StepOutcome::Ok {
            detail: Some(detail.into()),
        }
    }
    pub fn is_failed(&self) -> bool {
        matches!(self, StepOutcome::Failed { .. })
    }
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeOutcome {
    Upgraded,
    /// A drain's node: drained, held in maintenance, uncordoned when it ended.
    Maintained,
    Skipped {
        reason: String,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every planned node is done.
    Completed,
    /// A guard refused a node (or the lock is held): nothing of that node was touched.
    Refused {
        node: Option<String>,
        guard: String,
        message: String,
    },
    /// A step failed; the node stays cordoned when this run cordoned it.
    Failed {
        node: String,
        step: Step,
        message: String,
    },
    /// Stopped by the operator at a safe point.
    Aborted { reason: String },
    /// Abandoned afterwards (`--abandon`): our cordons undone, the lock released.
    Abandoned { uncordoned: Vec<String> },
}

impl RunOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, RunOutcome::Completed)
    }
}

/// What the runner reports, in order. Serialized with an `event` tag (JSON lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UpgradeEvent {
    RunStarted {
        run_id: String,
        plan: Plan,
        /// Set when resuming: the node and step the run goes on from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resumed_at: Option<(String, Step)>,
    },
    StepStarted {
        node: String,
        step: Step,
    },
    /// One line of a command's output (the switch, the rollback).
    Output {
        node: String,
        line: String,
    },
    StepFinished {
        node: String,
        step: Step,
        outcome: StepOutcome,
        duration_ms: u64,
    },
    GuardVerdicts {
        node: String,
        verdicts: Vec<GuardVerdict>,
    },
    /// A node's reboot is about to be asked for: journaled (fsynced) before the command goes
    /// out, so that a resumed run knows it and waits for a boot that is new.
    RebootIssued {
        node: String,
        #[serde(flatten)]
        before: RebootRecord,
    },
    /// The host's revert timer is about to be armed: journaled (fsynced) before the command
    /// goes out, with the system it goes back to, so that a resumed run knows it.
    RevertArmed {
        node: String,
        #[serde(flatten)]
        revert: RevertRecord,
    },
    /// The node's reboot boots its new generation once, the previous one staying the boot
    /// default: journaled (fsynced) before the boot loader is touched, so that a resumed run
    /// knows which generation to make the default once the node is healthy on it.
    BootOnceSet {
        node: String,
        #[serde(flatten)]
        boot_once: BootOnceRecord,
    },
    /// The run waits for something: pods to go, the node to come back, the operator.
    Waiting {
        node: String,
        what: String,
        detail: String,
    },
    /// Something worth telling that is not a step (paused, control refused, lock renewed late).
    Notice {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        message: String,
    },
    /// Alertmanager silences made for a node before its cordon; the run extends them while
    /// the node is in progress (each lasts `secs` past its last extension).
    Silenced {
        node: String,
        silences: Vec<world::NodeSilence>,
        secs: u64,
    },
    /// A node's silences were expired (after its uncordon).
    SilencesExpired {
        node: String,
        ids: Vec<String>,
    },
    NodeDone {
        node: String,
        outcome: NodeOutcome,
    },
    /// The etcd snapshot before the first control plane (`[upgrade] pre_snapshot`) starts on
    /// `node` (host `host`), saved as `name`.
    SnapshotStarted {
        name: String,
        node: String,
        host: String,
    },
    /// How the snapshot ended: ok (its file, as k3s recorded it), skipped (one of this run
    /// already succeeded), or failed (k3s's error; under `try` the run goes on).
    SnapshotFinished {
        name: String,
        node: String,
        host: String,
        /// The file k3s wrote (`<name>-<node>-<unix seconds>`), once known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        policy: crate::config::PreSnapshot,
        outcome: StepOutcome,
        duration_ms: u64,
    },
    RunFinished {
        outcome: RunOutcome,
    },
}

impl UpgradeEvent {
    /// The node an event is about, when it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            UpgradeEvent::StepStarted { node, .. }
            | UpgradeEvent::Output { node, .. }
            | UpgradeEvent::StepFinished { node, .. }
            | UpgradeEvent::GuardVerdicts { node, .. }
            | UpgradeEvent::RebootIssued { node, .. }
            | UpgradeEvent::RevertArmed { node, .. }
            | UpgradeEvent::BootOnceSet { node, .. }
            | UpgradeEvent::Waiting { node, .. }
            | UpgradeEvent::Silenced { node, .. }
            | UpgradeEvent::SilencesExpired { node, .. }
            | UpgradeEvent::NodeDone { node, .. } => Some(node),
            // The snapshot is the run's step, not the server's.
            UpgradeEvent::Notice { node, .. } => node.as_deref(),
            _ => None,
        }
    }
}

/// What was true of a node right before its reboot was asked for: a boot is new when both
/// boot ids differ from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootRecord {
    /// The host's kernel boot id (`/proc/sys/kernel/random/boot_id`, over SSH).
    pub host_boot_id: String,
    /// The node's `status.nodeInfo.bootID` (empty: the kubelet reports none).
    #[serde(default)]
    pub node_boot_id: String,
    /// When the reboot was asked for.
    pub at: jiff::Timestamp,
}

/// A revert timer armed on a host: if nobody disarms it within `secs` of `at`, the host sets
/// its system profile back to `previous` and re-activates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertRecord {
    /// `homeinfra-revert-<run id>` (`.timer`, `.service`).
    pub unit: String,
    /// The system running before the switch (`readlink -f /run/current-system`).
    pub previous: String,
    pub secs: u64,
    /// When the arm command was sent.
    pub at: jiff::Timestamp,
}

/// A boot-once reboot: the previous generation stays the boot default and the new one is
/// booted once; it becomes the default in the make-default step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootOnceRecord {
    /// The system that booted before (`/run/booted-system`), kept as the default.
    pub previous: String,
    /// The new system, booted once.
    pub new: String,
    /// The boot loader's entry of the new generation (`nixos-generation-43.conf`, a GRUB
    /// title path).
    pub entry: String,
    pub via: crate::probes::bootloader::OneShotVia,
    /// The new system's kernel version (`6.6.8`), for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub at: jiff::Timestamp,
}

impl BootOnceRecord {
    /// One line for the live view and the text log.
    pub fn describe(&self) -> String {
        let how = match self.via {
            crate::probes::bootloader::OneShotVia::Bootctl => "systemd-boot one-shot",
            crate::probes::bootloader::OneShotVia::GrubReboot => "GRUB grub-reboot",
        };
        format!(
            "boot once ({how}): {} booted once as {}, {} stays the boot default until the node is healthy on the new one",
            self.new, self.entry, self.previous
        )
    }
}

/// What the operator can ask of a running upgrade (each confirmed by the UI first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Stop after the current node (until `Resume` or `Abort`).
    Pause,
    Resume,
    /// Stop at the next safe point (before cordon, after drain → uncordon, or after the node).
    Abort,
    /// Run the failed step again (only while the run waits for the operator).
    Retry,
    /// Skip a node that has not started, or the refused node the run waits on.
    Skip {
        node: String,
    },
    /// Yes to a question (reboot with policy `ask`).
    Approve,
    /// No to a question (no reboot now).
    Decline,
    /// End a drain's maintenance: uncordon the node, expire its silences, end the run.
    EndMaintenance,
}

/// The engine's settings, from `[upgrade]` (durations resolved).
#[derive(Debug, Clone)]
pub struct Settings {
    pub switch: SwitchMode,
    /// Remote switch command; `{flake}`, `{host}` (hostname), `{id}` are replaced.
    pub switch_command: String,
    /// Local switch command (switch = "local"); also `{target}` (`user@address`).
    pub local_switch_command: String,
    pub rollback_command: String,
    pub reboot_command: String,
    pub reboot: RebootPolicy,
    pub drain_timeout: Duration,
    pub eviction_grace_secs: Option<i64>,
    pub delete_emptydir_data: bool,
    pub switch_timeout: Duration,
    /// `[upgrade] confirm_timeout_secs`: the host's revert timer fires after this long.
    pub confirm_timeout: Duration,
    pub reboot_timeout: Duration,
    pub ready_timeout: Duration,
    pub etcd_timeout: Duration,
    pub longhorn_timeout: Duration,
    pub settle: Duration,
    /// How often wait loops look again.
    pub poll: Duration,
    /// Raft index lag under which a member counts as caught up.
    pub etcd_max_lag: u64,
    pub block_on_alert_severity: String,
    pub gates: Vec<String>,
    pub maintenance_window: Option<String>,
    /// An auto-upgrade timer due within this long counts as "due during the run".
    pub auto_upgrade_horizon: Duration,
    /// Time zone of the maintenance window.
    pub time_zone: jiff::tz::TimeZone,
    /// Lease duration of the lock (renewed at a third of it).
    pub lock_duration: Duration,
    /// `[upgrade] skip_guards`: guards this cluster has no data for (shown as skipped).
    pub skip_guards: Vec<String>,
    /// How old each health input may be before it counts as not seen.
    pub max_age: MaxAge,
    /// `[upgrade] pre_snapshot`: the etcd snapshot before the first control plane.
    pub pre_snapshot: PreSnapshot,
    /// How long that snapshot may take (the command, then its record ready).
    pub pre_snapshot_timeout: Duration,
    /// `[upgrade] boot_once`: a reboot boots the new generation once first.
    pub boot_once: BootOnce,
}

/// How old each health input may be: its source's refresh plus [`STALE_MARGIN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge {
    pub cluster: Duration,
    pub etcd: Duration,
    pub metrics: Duration,
}

/// What a source's data may lag behind its refresh before the guards stop trusting it.
pub const STALE_MARGIN: Duration = Duration::from_secs(30);

impl MaxAge {
    /// From the sources' refresh intervals (`[etcd] refresh_secs`, `[mimir] refresh_secs`;
    /// Kubernetes is read fresh each time: the margin alone).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let refresh = |s: u64| Duration::from_secs(s.max(1)) + STALE_MARGIN;
        Self {
            cluster: STALE_MARGIN,
            etcd: refresh(cfg.etcd.refresh_secs),
            metrics: refresh(cfg.mimir.refresh_secs),
        }
    }
}

impl Default for MaxAge {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

impl Settings {
    pub fn from_config(cfg: &UpgradeConfig) -> Self {
        let secs = Duration::from_secs;
        Self {
            switch: cfg.switch,
            switch_command: cfg.switch_command.clone(),
            local_switch_command: cfg.local_switch_command.clone(),
            rollback_command: cfg.rollback_command.clone(),
            reboot_command: cfg.reboot_command.clone(),
            reboot: cfg.reboot,
            drain_timeout: secs(cfg.drain_timeout_secs),
            eviction_grace_secs: cfg.eviction_grace_secs,
            delete_emptydir_data: cfg.delete_emptydir_data,
            switch_timeout: secs(cfg.switch_timeout_secs),
            confirm_timeout: secs(cfg.confirm_timeout_secs.max(1)),
            reboot_timeout: secs(cfg.reboot_timeout_secs),
            ready_timeout: secs(cfg.ready_timeout_secs),
            etcd_timeout: secs(cfg.etcd_timeout_secs),
            longhorn_timeout: secs(cfg.longhorn_timeout_secs),
            settle: secs(cfg.settle_secs),
            poll: secs(cfg.poll_secs.max(1)),
            etcd_max_lag: cfg.etcd_max_lag,
            block_on_alert_severity: cfg.block_on_alert_severity.clone(),
            gates: cfg.gates.clone(),
            maintenance_window: cfg.maintenance_window.clone(),
            auto_upgrade_horizon: secs(cfg.auto_upgrade_horizon_secs),
            time_zone: crate::base::local_time_zone(),
            lock_duration: secs(cfg.lock_duration_secs.max(3)),
            skip_guards: cfg.skip_guards.clone(),
            max_age: MaxAge::default(),
            pre_snapshot: cfg.pre_snapshot,
            pre_snapshot_timeout: secs(cfg.pre_snapshot_timeout_secs.max(1)),
            boot_once: cfg.boot_once,
        }
    }

    /// The settings of `[upgrade]`, with the staleness limits from the sources' sections.
    pub fn new(cfg: &crate::config::Config) -> Self {
        Self {
            max_age: MaxAge::from_config(cfg),
            ..Self::from_config(&cfg.upgrade)
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_config(&UpgradeConfig::default())
    }
}

/// A new run id: `YYYYMMDD-HHMMSS-xxxx` (UTC, 4 random hex digits).
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%d-%H%M%S");
    format!("{stamp}-{:04x}", rand::random::<u16>())
}
