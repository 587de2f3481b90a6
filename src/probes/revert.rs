//! The switch that reverts itself: before a node's new system is activated, a transient
//! systemd timer on the host (`systemd-run --on-active=…`) that, unless it is disarmed in
//! time, sets the system profile back to the previous system and re-activates it. Three
//! commands: arm it ([`ArmRevert`], mutating), read its state ([`RevertTimerProbe`], a
//! [`Probe`]) and disarm it ([`Disarm`], mutating).
//!
//! The timer's unit is `homeinfra-revert-<run id>` (`.timer` and `.service`), so it cannot
//! collide with nixos-rebuild's own transient units and a resumed run finds it again.

use super::words;
use super::{Kind, Probe, ProbeError, Reply, Request, clip};

/// The unit name prefix of every revert timer.
pub const UNIT_PREFIX: &str = "homeinfra-revert-";

/// The system profile the revert resets.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";

/// The revert unit of a run (`homeinfra-revert-<run id>`), `None` when the run id is not a
/// plain word (letters, digits, `-`, `_`, `.`).
pub fn unit_name(run_id: &str) -> Option<String> {
    let ok = !run_id.is_empty()
        && !run_id.starts_with(['.', '-'])
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then(|| format!("{UNIT_PREFIX}{run_id}"))
}

/// A store path a command line may carry as it is: `/nix/store/<name>` with a name of
/// letters, digits and `-._+` only (what `readlink -f /run/current-system` gives on NixOS).
pub fn is_store_path(p: &str) -> bool {
    p.strip_prefix("/nix/store/").is_some_and(|name| {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
    })
}

/// Arm the revert: in `secs` seconds the host sets its system profile to `previous` and
/// re-activates it (`switch-to-configuration switch`, which also makes it the boot default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmRevert {
    pub unit: String,
    /// The system to go back to (a store path, checked by [`ArmRevert::command`]).
    pub previous: String,
    pub secs: u64,
}

impl ArmRevert {
    pub const KIND: Kind = Kind::ArmRevert;

    /// What the timer's service runs (one `sh -c` argument).
    fn script(previous: &str) -> String {
        format!(
            "{previous}/sw/bin/nix-env -p {SYSTEM_PROFILE} --set {previous} && {previous}/bin/switch-to-configuration switch"
        )
    }

    /// The command line (with `sudo`); `Err` names what is wrong with the unit or the path.
    pub fn command(&self) -> Result<String, String> {
        if !self.unit.starts_with(UNIT_PREFIX)
            || unit_name(&self.unit[UNIT_PREFIX.len()..]).is_none()
        {
            return Err(format!("`{}` is not a revert unit name", self.unit));
        }
        if !is_store_path(&self.previous) {
            return Err(format!(
                "the previous system `{}` is not a plain store path: refusing to arm a revert to it",
                clip(&self.previous)
            ));
        }
        Ok(format!(
            "sudo systemd-run --unit={} --description='homeinfra-tui: revert to the previous system unless confirmed' \
             --on-active={}s --timer-property=AccuracySec=1s --collect /bin/sh -c '{}'",
            self.unit,
            self.secs.max(1),
            Self::script(&self.previous)
        ))
    }

    /// Read an arm command back (what the simulator and the fake hosts were asked).
    pub fn recognise(line: &str) -> Option<Self> {
        match recognise(line)? {
            Request::ArmRevert(a) => Some(a),
            _ => None,
        }
    }
}

/// Disarm the revert: `systemctl stop <unit>.timer` (the service never runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disarm {
    pub unit: String,
}

impl Disarm {
    pub const KIND: Kind = Kind::Disarm;

    pub fn command(&self) -> String {
        format!("sudo systemctl stop {}.timer", self.unit)
    }
}

/// The revert timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertTimer {
    /// Armed: the timer waits (SubState `waiting`).
    Armed,
    /// It fired and the revert runs right now (the service is active or activating).
    Reverting,
    /// It fired and the revert has run (the timer `elapsed`, the service done).
    Fired,
    /// Neither unit is loaded: disarmed, never armed, or fired and collected.
    Gone,
}

/// `systemctl show` of the revert timer and its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertTimerProbe {
    pub unit: String,
}

const PROPS: &str = "LoadState,ActiveState,SubState";

/// One unit's properties as `systemctl show` prints them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct UnitProps {
    load: String,
    active: String,
    sub: String,
}

fn props_text(p: &UnitProps) -> String {
    format!(
        "LoadState={}\nActiveState={}\nSubState={}\n",
        p.load, p.active, p.sub
    )
}

impl Probe for RevertTimerProbe {
    type Output = RevertTimer;
    const KIND: Kind = Kind::RevertTimer;

    fn command(&self) -> String {
        format!(
            "systemctl show -p {PROPS} {u}.timer {u}.service",
            u = self.unit
        )
    }

    fn parse(&self, reply: &Reply) -> Result<RevertTimer, ProbeError> {
        reply.require_success(Self::KIND)?;
        // Two blocks (timer, then service), separated by a blank line.
        let mut blocks: Vec<UnitProps> = vec![UnitProps::default()];
        let mut seen_any = false;
        for line in reply.stdout.lines() {
            let line = line.trim();
            if line.is_empty() {
                if seen_any {
                    blocks.push(UnitProps::default());
                    seen_any = false;
                }
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let Some(b) = blocks.last_mut() else { continue };
            match k {
                "LoadState" => b.load = v.to_string(),
                "ActiveState" => b.active = v.to_string(),
                "SubState" => b.sub = v.to_string(),
                _ => continue,
            }
            seen_any = true;
        }
        blocks.retain(|b| !b.load.is_empty() || !b.active.is_empty() || !b.sub.is_empty());
        let [timer, service] = blocks.as_slice() else {
            return Err(ProbeError::new(
                Self::KIND,
                format!(
                    "the revert timer's state should show two units, not {:?}",
                    clip(reply.stdout.trim())
                ),
            ));
        };
        if timer.sub.is_empty() || service.active.is_empty() {
            return Err(ProbeError::new(
                Self::KIND,
                format!(
                    "the revert timer's state is cut short: {:?}",
                    clip(reply.stdout.trim())
                ),
            ));
        }
        Ok(
            if matches!(
                service.active.as_str(),
                "active" | "activating" | "reloading" | "deactivating"
            ) {
                RevertTimer::Reverting
            } else if timer.sub == "waiting" {
                RevertTimer::Armed
            } else if matches!(timer.sub.as_str(), "elapsed" | "running") {
                RevertTimer::Fired
            } else {
                RevertTimer::Gone
            },
        )
    }

    fn render(&self, value: &RevertTimer) -> Reply {
        let p = |load: &str, active: &str, sub: &str| UnitProps {
            load: load.into(),
            active: active.into(),
            sub: sub.into(),
        };
        let gone = p("not-found", "inactive", "dead");
        let (timer, service) = match value {
            RevertTimer::Armed => (
                p("loaded", "active", "waiting"),
                p("loaded", "inactive", "dead"),
            ),
            RevertTimer::Reverting => (
                p("loaded", "active", "running"),
                p("loaded", "activating", "start"),
            ),
            RevertTimer::Fired => (p("loaded", "active", "elapsed"), gone.clone()),
            RevertTimer::Gone => (gone.clone(), gone),
        };
        Reply::ok(format!("{}\n{}", props_text(&timer), props_text(&service)))
    }
}

/// The revert command in `line`, if it is one: `systemd-run --unit=homeinfra-revert-…`,
/// `systemctl stop homeinfra-revert-….timer`, `systemctl show … homeinfra-revert-….timer`.
pub(super) fn recognise(line: &str) -> Option<Request> {
    let all = words::split(line)?;
    let w = words::program(&all);
    let (prog, args) = w.split_first()?;
    let prog = prog.rsplit('/').next().unwrap_or(prog);
    let revert_unit = |a: &str| {
        let u = a.strip_suffix(".timer").unwrap_or(a);
        u.starts_with(UNIT_PREFIX).then(|| u.to_string())
    };
    match prog {
        "systemd-run" => {
            let unit = args
                .iter()
                .find_map(|a| a.strip_prefix("--unit="))
                .and_then(revert_unit)?;
            let secs = args
                .iter()
                .find_map(|a| a.strip_prefix("--on-active="))
                .and_then(|s| s.trim_end_matches('s').parse::<u64>().ok())?;
            // The script: `/bin/sh -c SCRIPT`, the previous system its first word's prefix.
            let script = args
                .iter()
                .position(|a| a == "-c")
                .and_then(|i| args.get(i + 1))?;
            let first = script.split_whitespace().next()?;
            let previous = first.strip_suffix("/sw/bin/nix-env")?.to_string();
            Some(Request::ArmRevert(ArmRevert {
                unit,
                previous,
                secs,
            }))
        }
        "systemctl" => {
            let verb = args.iter().find(|a| !a.starts_with('-'))?;
            let unit = args.iter().find_map(|a| {
                a.strip_suffix(".timer")
                    .filter(|u| u.starts_with(UNIT_PREFIX))
                    .map(str::to_string)
            })?;
            match verb.as_str() {
                "stop" => Some(Request::Disarm(Disarm { unit })),
                "show" => Some(Request::RevertTimer(RevertTimerProbe { unit })),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "/nix/store/abc123-nixos-system-node3-25.05";

    #[test]
    fn the_arm_command_names_the_unit_delay_and_previous_system_and_reads_back() {
        let a = ArmRevert {
            unit: unit_name("20260101-000000-abcd").unwrap(),
            previous: OLD.into(),
            secs: 120,
        };
        let cmd = a.command().unwrap();
        assert!(cmd.starts_with("sudo systemd-run --unit=homeinfra-revert-20260101-000000-abcd "));
        assert!(cmd.contains(" --on-active=120s "));
        assert!(cmd.contains(&format!(
            "{OLD}/sw/bin/nix-env -p /nix/var/nix/profiles/system --set {OLD} && {OLD}/bin/switch-to-configuration switch"
        )));
        assert_eq!(ArmRevert::recognise(&cmd), Some(a.clone()));
        assert!(
            super::super::recognise(&cmd, None)
                .unwrap()
                .kind()
                .mutating()
        );
        let d = Disarm {
            unit: a.unit.clone(),
        };
        assert_eq!(
            super::super::recognise(&d.command(), None),
            Some(Request::Disarm(d.clone()))
        );
        assert!(Kind::Disarm.mutating());
        let probe = RevertTimerProbe { unit: a.unit };
        let r = super::super::recognise(&probe.command(), None).unwrap();
        assert_eq!(r, Request::RevertTimer(probe));
        assert!(!r.kind().mutating());
    }

    #[test]
    fn unsafe_paths_and_units_are_refused() {
        for bad in [
            "/nix/store/x; rm -rf /",
            "/nix/store/a'b",
            "/etc/passwd",
            "/nix/store/",
            "/nix/store/a/b",
            "",
        ] {
            let a = ArmRevert {
                unit: "homeinfra-revert-r1".into(),
                previous: bad.into(),
                secs: 5,
            };
            assert!(
                a.command().unwrap_err().contains("not a plain store path"),
                "{bad}"
            );
        }
        let a = ArmRevert {
            unit: "nixos-rebuild-switch-to-configuration".into(),
            previous: OLD.into(),
            secs: 5,
        };
        assert!(a.command().is_err());
        assert_eq!(unit_name("a b"), None);
        assert_eq!(unit_name("-x"), None);
    }

    #[test]
    fn timer_state_round_trips_and_reads_real_systemctl_output() {
        let p = RevertTimerProbe {
            unit: "homeinfra-revert-r1".into(),
        };
        for v in [
            RevertTimer::Armed,
            RevertTimer::Reverting,
            RevertTimer::Fired,
            RevertTimer::Gone,
        ] {
            assert_eq!(p.parse(&p.render(&v)), Ok(v));
        }
        // systemctl prints extra properties in its own order on some versions.
        let real = Reply::ok(
            "SubState=waiting\nActiveState=active\nLoadState=loaded\n\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n",
        );
        assert_eq!(p.parse(&real), Ok(RevertTimer::Armed));
        assert!(p.parse(&Reply::ok("LoadState=loaded\n")).is_err());
        assert!(
            p.parse(&Reply {
                exit_status: Some(1),
                ..Default::default()
            })
            .is_err()
        );
    }
}
