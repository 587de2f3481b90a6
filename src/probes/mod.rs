//! Every command the app runs on a host over SSH, defined once (STYLE.md rule 14): its command
//! text, the parser of what the host answers, the renderer the simulator answers through, and
//! the recogniser that tells the simulator what it was asked. A round-trip test per probe binds
//! parser and renderer: `parse(&render(&x)) == x`.
//!
//! A lower layer: it uses `model` (the facts types) and `inventory` (a host's values for the
//! command templates), nothing of `sources`, `operations`, `sim`, `app` or `ui`, so all of them
//! may import it.
//!
//! Read-only probes implement [`Probe`]:
//! - [`facts::FactsProbe`]: the facts script (`sh -s`, script on stdin) → `HostFacts`;
//! - [`boot::BootStateProbe`]: booted vs current system and boot files → [`boot::BootFacts`];
//! - [`boot::BootIdProbe`]: `/proc/sys/kernel/random/boot_id` → `Option<String>`;
//! - [`auto_upgrade::AutoUpgradeProbe`]: `nixos-upgrade.service`/`.timer` →
//!   [`auto_upgrade::AutoUpgradeState`];
//! - [`k3s::K3sVersionProbe`]: `k3s --version` → `Option<String>`;
//! - [`reachable::ReachableProbe`]: `true` → `()`;
//! - [`certs::CertFilesProbe`]: k3s's certificate files (with sudo) → PEM text, parsed here
//!   with x509-parser ([`certs::inspect`]);
//! - [`secrets::SecretsProbe`]: `stat` of the expected sops-nix secrets;
//! - [`clock::ClockSyncProbe`]: timedated / chrony synchronisation;
//! - [`clock::ClockNowProbe`]: the host's time, for the RTT-corrected clock offset;
//! - [`recovery::RecoveryProbe`]: the certificates, secrets and clock-sync reads in one
//!   command, each part's reply in its own section (read by that part's probe);
//! - [`revert::RevertTimerProbe`]: the host's revert timer → [`revert::RevertTimer`];
//! - [`bootloader::BootloaderProbe`]: the boot loader, its entries, default and one-shot →
//!   [`bootloader::Bootloader`].
//!
//! The self-reverting switch's mutating commands are built by [`revert::ArmRevert`] and
//! [`revert::Disarm`] (and recognised back); a boot-once reboot's by [`bootloader::BootDefault`]
//! and [`bootloader::OneShot`].
//!
//! Mutating commands come from the operator's `[upgrade]` templates, so their "probe" is the
//! builder ([`rebuild::CommandVars::fill`], which only takes validated values) and a recogniser
//! that reads a command line back into a typed request ([`rebuild::Switch`],
//! [`rebuild::Rollback`], [`rebuild::Reboot`]).
//!
//! [`recognise`] maps any command line (and its stdin) to a [`Request`], each with its [`Kind`]
//! and whether it mutates the host: the simulator answers and records through it.
//!
//! Values from the inventory reach command text only as [`words::Word`]s (no shell
//! metacharacters; refused with the host and field named otherwise).
//!
//! To add a probe: a unit (or small) struct in its own file implementing [`Probe`] (command,
//! optional stdin, parse, render) with a [`Kind`] variant; a [`Request`] variant and a line in
//! [`recognise`]; a round-trip test in its file; the simulator's answer in
//! `sim::ssh::answer`; and a call through `HostsClient::ask` where the app needs it.

pub mod auto_upgrade;
pub mod boot;
pub mod bootloader;
pub mod certs;
pub mod clock;
pub mod etcd_snapshot;
pub mod facts;
pub mod k3s;
pub mod nixtext;
pub mod reachable;
pub mod rebuild;
pub mod recovery;
pub mod revert;
pub mod secrets;
pub mod words;

use serde::Serialize;

/// What a remote command gave back (and what the simulator sends for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the command was killed by a signal.
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
}

impl Reply {
    /// Exit 0 with this output.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            stdout: stdout.into(),
            exit_status: Some(0),
            ..Default::default()
        }
    }

    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    /// How the command ended, for messages: `exit status 3`, `signal KILL`.
    pub fn how_it_ended(&self) -> String {
        match (self.exit_status, &self.exit_signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "no exit status".into(),
        }
    }

    /// `Err` unless the command exited 0 (with its stderr, clipped).
    pub fn require_success(&self, kind: Kind) -> Result<(), ProbeError> {
        if self.success() {
            return Ok(());
        }
        let err = self.stderr.trim();
        Err(ProbeError::new(
            kind,
            if err.is_empty() {
                format!(
                    "the {} probe ended with {}",
                    kind.as_str(),
                    self.how_it_ended()
                )
            } else {
                format!(
                    "the {} probe ended with {}: {}",
                    kind.as_str(),
                    self.how_it_ended(),
                    clip(err)
                )
            },
        ))
    }
}

/// A reply a probe could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    pub kind: Kind,
    pub message: String,
}

impl ProbeError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProbeError {}

/// Which remote command a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Facts,
    BootState,
    BootId,
    AutoUpgrade,
    K3sVersion,
    Reachable,
    Certificates,
    Secrets,
    ClockSync,
    ClockNow,
    /// Certificates, secrets and clock sync in one command ([`recovery::RecoveryProbe`]).
    Recovery,
    /// `nixos-rebuild switch` (the `[upgrade] switch_command`).
    Switch,
    /// `nixos-rebuild switch --rollback`.
    Rollback,
    Reboot,
    /// `nixos-rebuild` with another action (`boot`, `test`, ...): never sent by the app.
    OtherRebuild,
    /// `k3s etcd-snapshot save`: writes a snapshot file on the server.
    EtcdSnapshotSave,
    /// `systemd-run --on-active=… --unit=homeinfra-revert-…`: arm the host's own revert.
    ArmRevert,
    /// `systemctl show` of the revert timer.
    RevertTimer,
    /// `systemctl stop homeinfra-revert-….timer`.
    Disarm,
    /// The boot loader, its entries, default and one-shot entry.
    Bootloader,
    /// `<system>/bin/switch-to-configuration boot`: that system becomes the boot default.
    BootDefault,
    /// `bootctl set-oneshot` / `grub-reboot`: an entry booted once.
    OneShot,
}

impl Kind {
    /// Changes the host (a read-only run must never send it).
    pub fn mutating(self) -> bool {
        matches!(
            self,
            Kind::Switch
                | Kind::Rollback
                | Kind::Reboot
                | Kind::OtherRebuild
                | Kind::EtcdSnapshotSave
                | Kind::ArmRevert
                | Kind::Disarm
                | Kind::BootDefault
                | Kind::OneShot
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Facts => "facts",
            Kind::BootState => "boot-state",
            Kind::BootId => "boot-id",
            Kind::AutoUpgrade => "auto-upgrade",
            Kind::K3sVersion => "k3s-version",
            Kind::Reachable => "reachable",
            Kind::Certificates => "certificates",
            Kind::Secrets => "secrets",
            Kind::ClockSync => "clock-sync",
            Kind::ClockNow => "clock-now",
            Kind::Recovery => "recovery",
            Kind::Switch => "switch",
            Kind::Rollback => "rollback",
            Kind::Reboot => "reboot",
            Kind::OtherRebuild => "other-rebuild",
            Kind::EtcdSnapshotSave => "etcd-snapshot-save",
            Kind::ArmRevert => "arm-revert",
            Kind::RevertTimer => "revert-timer",
            Kind::Disarm => "disarm",
            Kind::Bootloader => "bootloader",
            Kind::BootDefault => "boot-default",
            Kind::OneShot => "one-shot",
        }
    }
}

/// A read-only remote command: its text, the parser of its reply and the renderer of a reply.
///
/// The law every implementation keeps (and tests): for every value `x` the parser can give,
/// `self.parse(&self.render(&x)) == Ok(x)`.
pub trait Probe {
    /// What the host's answer means.
    type Output;
    const KIND: Kind;

    /// The command line sent in the exec request.
    fn command(&self) -> String;

    /// What is written to the command's stdin (then EOF); `None`: nothing.
    fn stdin(&self) -> Option<String> {
        None
    }

    /// Read the host's reply.
    fn parse(&self, reply: &Reply) -> Result<Self::Output, ProbeError>;

    /// The reply a host in state `value` gives (for the simulator and the tests).
    fn render(&self, value: &Self::Output) -> Reply;
}

/// A command line the app sends, read back (what the simulator was asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Facts(facts::FactsProbe),
    BootState,
    BootId,
    AutoUpgrade,
    K3sVersion,
    Reachable,
    Certificates(certs::CertFilesProbe),
    Secrets(secrets::SecretsProbe),
    ClockSync,
    ClockNow,
    Recovery(recovery::RecoveryProbe),
    Switch(rebuild::Switch),
    Rollback,
    Reboot,
    /// `nixos-rebuild ACTION` with an action the app never runs.
    OtherRebuild(String),
    EtcdSnapshotSave(etcd_snapshot::SnapshotSave),
    ArmRevert(revert::ArmRevert),
    RevertTimer(revert::RevertTimerProbe),
    Disarm(revert::Disarm),
    Bootloader,
    BootDefault(bootloader::BootDefault),
    OneShot(bootloader::OneShot),
}

impl Request {
    pub fn kind(&self) -> Kind {
        match self {
            Request::Facts(_) => Kind::Facts,
            Request::BootState => Kind::BootState,
            Request::BootId => Kind::BootId,
            Request::AutoUpgrade => Kind::AutoUpgrade,
            Request::K3sVersion => Kind::K3sVersion,
            Request::Reachable => Kind::Reachable,
            Request::Certificates(_) => Kind::Certificates,
            Request::Secrets(_) => Kind::Secrets,
            Request::ClockSync => Kind::ClockSync,
            Request::ClockNow => Kind::ClockNow,
            Request::Recovery(_) => Kind::Recovery,
            Request::Switch(_) => Kind::Switch,
            Request::Rollback => Kind::Rollback,
            Request::Reboot => Kind::Reboot,
            Request::OtherRebuild(_) => Kind::OtherRebuild,
            Request::EtcdSnapshotSave(_) => Kind::EtcdSnapshotSave,
            Request::ArmRevert(_) => Kind::ArmRevert,
            Request::RevertTimer(_) => Kind::RevertTimer,
            Request::Disarm(_) => Kind::Disarm,
            Request::Bootloader => Kind::Bootloader,
            Request::BootDefault(_) => Kind::BootDefault,
            Request::OneShot(_) => Kind::OneShot,
        }
    }
}

/// The command waits for a script on stdin before it can be recognised (`sh -s`).
pub fn wants_stdin(command: &str) -> bool {
    command.trim() == facts::COMMAND
}

/// What `command` (with `stdin`, for `sh -s`) asks for; `None`: not a command the app sends.
/// The read-only probes are recognised by their exact command text; mutating commands by
/// their words (any `[upgrade]` template shape: `sudo`, `env`, assignments, option order).
pub fn recognise(command: &str, stdin: Option<&str>) -> Option<Request> {
    let line = command.trim();
    if line == facts::COMMAND {
        return facts::FactsProbe::from_script(stdin?).map(Request::Facts);
    }
    if let Some(p) = certs::CertFilesProbe::all()
        .into_iter()
        .find(|p| p.command() == line)
    {
        return Some(Request::Certificates(p));
    }
    if let Some(p) = secrets::SecretsProbe::from_command(line) {
        return Some(Request::Secrets(p));
    }
    if let Some(p) = recovery::RecoveryProbe::from_command(line) {
        return Some(Request::Recovery(p));
    }
    let exact: [(String, Request); 8] = [
        (boot::BootStateProbe.command(), Request::BootState),
        (boot::BootIdProbe.command(), Request::BootId),
        (
            auto_upgrade::AutoUpgradeProbe.command(),
            Request::AutoUpgrade,
        ),
        (k3s::K3sVersionProbe.command(), Request::K3sVersion),
        (reachable::ReachableProbe.command(), Request::Reachable),
        (clock::ClockSyncProbe.command(), Request::ClockSync),
        (clock::ClockNowProbe.command(), Request::ClockNow),
        (bootloader::BootloaderProbe.command(), Request::Bootloader),
    ];
    if let Some((_, r)) = exact.into_iter().find(|(c, _)| c == line) {
        return Some(r);
    }
    if let Some(s) = etcd_snapshot::recognise(line) {
        return Some(Request::EtcdSnapshotSave(s));
    }
    revert::recognise(line)
        .or_else(|| bootloader::recognise(line))
        .or_else(|| rebuild::recognise(line))
}

/// At most 80 characters of `s` (an ellipsis when cut), for messages.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_is_recognised_by_its_own_command() {
        let facts = facts::FactsProbe { sudo: true };
        let script = facts.stdin();
        assert_eq!(
            recognise(&facts.command(), script.as_deref()),
            Some(Request::Facts(facts))
        );
        assert!(wants_stdin(&facts.command()));
        assert_eq!(recognise(facts::COMMAND, Some("echo hi\n")), None);
        assert_eq!(recognise(facts::COMMAND, None), None);
        for (cmd, want) in [
            (boot::BootStateProbe.command(), Request::BootState),
            (boot::BootIdProbe.command(), Request::BootId),
            (
                auto_upgrade::AutoUpgradeProbe.command(),
                Request::AutoUpgrade,
            ),
            (k3s::K3sVersionProbe.command(), Request::K3sVersion),
            (reachable::ReachableProbe.command(), Request::Reachable),
            (clock::ClockSyncProbe.command(), Request::ClockSync),
            (clock::ClockNowProbe.command(), Request::ClockNow),
        ] {
            assert!(!wants_stdin(&cmd));
            assert_eq!(recognise(&cmd, None), Some(want.clone()), "{cmd}");
            assert!(!want.kind().mutating());
        }
        assert_eq!(recognise("frobnicate --now", None), None);
    }

    #[test]
    fn kinds_know_whether_they_mutate() {
        for k in [
            Kind::Switch,
            Kind::Rollback,
            Kind::Reboot,
            Kind::OtherRebuild,
            Kind::EtcdSnapshotSave,
            Kind::ArmRevert,
            Kind::Disarm,
            Kind::BootDefault,
            Kind::OneShot,
        ] {
            assert!(k.mutating(), "{k:?}");
        }
        for k in [
            Kind::Facts,
            Kind::BootState,
            Kind::BootId,
            Kind::AutoUpgrade,
            Kind::K3sVersion,
            Kind::Reachable,
            Kind::Certificates,
            Kind::Secrets,
            Kind::ClockSync,
            Kind::ClockNow,
            Kind::Recovery,
            Kind::RevertTimer,
            Kind::Bootloader,
        ] {
            assert!(!k.mutating(), "{k:?}");
        }
        assert_eq!(
            serde_json::to_value(Kind::BootState).ok(),
            Some(serde_json::json!("boot-state"))
        );
    }

    #[test]
    fn failed_replies_say_how_they_ended() {
        let r = Reply {
            stderr: "permission denied\n".into(),
            exit_status: Some(3),
            ..Default::default()
        };
        let e = r.require_success(Kind::BootState).unwrap_err();
        assert_eq!(
            e.message,
            "the boot-state probe ended with exit status 3: permission denied"
        );
        let r = Reply {
            exit_signal: Some("KILL".into()),
            ..Default::default()
        };
        assert!(
            r.require_success(Kind::Reachable)
                .unwrap_err()
                .message
                .contains("signal KILL")
        );
        assert!(Reply::ok("").require_success(Kind::Reachable).is_ok());
    }
}
