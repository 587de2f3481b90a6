//! The few commands a person types at a simulated host (`readlink [-f] PATH`,
//! `nixos-version`, `hostname`, an empty command line), answered from its state. The app never
//! sends these: what it sends is defined in `crate::probes` and answered in `answer`.

use crate::probes::{Reply, words};
use crate::sim::World;

use super::host::SimHost;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Readlink(String),
    NixosVersion,
    Hostname,
    /// An empty command line.
    Nothing,
}

pub(super) fn recognise(line: &str) -> Option<Command> {
    let all = words::split(line)?;
    let w = words::program(&all);
    let Some((prog, args)) = w.split_first() else {
        return Some(Command::Nothing);
    };
    match prog.rsplit('/').next().unwrap_or(prog) {
        "readlink" => args
            .iter()
            .rfind(|a| !a.starts_with('-'))
            .map(|p| Command::Readlink(p.clone())),
        "nixos-version" => Some(Command::NixosVersion),
        "hostname" if args.is_empty() => Some(Command::Hostname),
        _ => None,
    }
}

pub(super) fn answer(world: &World, host: &SimHost, cmd: &Command) -> Reply {
    match cmd {
        Command::Nothing => Reply::ok(""),
        Command::Hostname => Reply::ok(format!("{}\n", host.hostname)),
        Command::NixosVersion => Reply::ok(format!(
            "{}\n",
            host.systems(world).current().system.pins.nixos
        )),
        Command::Readlink(path) => {
            let answer = match path.trim_end_matches('/') {
                "/run/current-system" => Some(host.current_path(world)),
                "/run/booted-system" => host.facts(world).booted_system,
                "/nix/var/nix/profiles/system" => Some(format!(
                    "system-{}-link",
                    host.systems(world).current().number
                )),
                _ => None,
            };
            match answer {
                Some(a) => Reply::ok(format!("{a}\n")),
                None => Reply {
                    exit_status: Some(1),
                    ..Default::default()
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands() {
        assert_eq!(
            recognise("readlink -f /run/current-system"),
            Some(Command::Readlink("/run/current-system".into()))
        );
        assert_eq!(recognise("sudo nixos-version"), Some(Command::NixosVersion));
        assert_eq!(recognise("hostname"), Some(Command::Hostname));
        assert_eq!(recognise("   "), Some(Command::Nothing));
        assert_eq!(recognise("readlink"), None);
        assert_eq!(recognise("hostname newname"), None);
        assert_eq!(recognise("frobnicate --now"), None);
        assert_eq!(recognise("readlink /x; reboot"), None);
    }
}
