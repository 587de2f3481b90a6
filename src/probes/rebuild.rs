//! The mutating commands: switch, rollback and reboot. Their text comes from the operator's
//! `[upgrade]` templates, filled by [`CommandVars::fill`] from checked values only; the
//! recognisers read a command line back into a typed request ([`Switch`], [`Rollback`],
//! [`Reboot`]) whatever the template's shape (`sudo`, `env`, assignments, option order), so the
//! simulator knows what it was asked without matching strings by hand.

use crate::inventory::Host;

use super::words::{self, UnsafeWord, Word};
use super::{Kind, Request};

/// The values an `[upgrade]` command template may use: `{flake}` (quoted when it holds
/// characters a shell would read), `{host}` (the hostname), `{id}` (the inventory id),
/// `{target}` (`user@address`, for `--target-host`). Built only from checked inventory values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandVars {
    flake: String,
    host: Word,
    id: Word,
    target: String,
}

impl CommandVars {
    /// The values for `host`; its user is `sshUser`, else `fallback_user` (e.g. `$USER`).
    /// An inventory value with shell metacharacters is refused, naming the host and field.
    pub fn new(flake: &str, host: &Host, fallback_user: &str) -> Result<Self, UnsafeWord> {
        let id = Word::name(&host.id, "id", &host.id)?;
        let hostname = Word::name(&host.id, "hostname", &host.hostname)?;
        let user = match &host.ssh_user {
            Some(u) => Word::name(&host.id, "sshUser", u)?,
            None => Word::name(&host.id, "user ($USER)", fallback_user)?,
        };
        let address = match &host.ssh_host {
            Some(a) => Word::address(&host.id, "sshHost", a)?,
            None => Word::address(&host.id, "ip", &host.ip.to_string())?,
        };
        Ok(Self {
            flake: words::quote(flake),
            host: hostname,
            id,
            target: format!("{user}@{address}"),
        })
    }

    /// The template with `{flake}`, `{host}`, `{id}` and `{target}` replaced.
    pub fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            let var = [
                ("{flake}", self.flake.as_str()),
                ("{host}", self.host.as_str()),
                ("{id}", self.id.as_str()),
                ("{target}", self.target.as_str()),
            ]
            .into_iter()
            .find(|(k, _)| after.starts_with(k));
            match var {
                Some((k, v)) => {
                    out.push_str(v);
                    rest = &after[k.len()..];
                }
                None => {
                    out.push('{');
                    rest = &after[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The user for `{target}` when the inventory names none: `$USER`, else `root`.
pub fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

/// `nixos-rebuild switch` asked for, with the flake it names (`--flake FLAKE#ATTR`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switch {
    pub flake: Option<String>,
    /// The configuration's attribute (after `#`): the hostname with the default template.
    pub attr: Option<String>,
}

impl Switch {
    pub const KIND: Kind = Kind::Switch;

    pub fn recognise(line: &str) -> Option<Self> {
        match recognise(line)? {
            Request::Switch(s) => Some(s),
            _ => None,
        }
    }
}

/// `nixos-rebuild switch --rollback` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rollback;

impl Rollback {
    pub const KIND: Kind = Kind::Rollback;

    pub fn recognise(line: &str) -> Option<Self> {
        matches!(recognise(line)?, Request::Rollback).then_some(Rollback)
    }
}

/// A reboot asked for (`systemctl reboot`, `reboot`, `shutdown -r`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reboot;

impl Reboot {
    pub const KIND: Kind = Kind::Reboot;

    pub fn recognise(line: &str) -> Option<Self> {
        matches!(recognise(line)?, Request::Reboot).then_some(Reboot)
    }
}

const REBUILD_ACTIONS: [&str; 9] = [
    "switch",
    "boot",
    "test",
    "build",
    "dry-build",
    "dry-activate",
    "edit",
    "repl",
    "build-vm",
];

/// The mutating request in `line`, if it is one (see the module docs).
pub(super) fn recognise(line: &str) -> Option<Request> {
    let words = words::split(line)?;
    let words = words::program(&words);
    let (prog, args) = words.split_first()?;
    let prog = prog.rsplit('/').next().unwrap_or(prog);
    let has = |a: &str| args.iter().any(|w| w == a);
    match prog {
        "nixos-rebuild" | "nixos-rebuild-ng" => {
            let action = args.iter().find(|a| REBUILD_ACTIONS.contains(&a.as_str()));
            match action.map(String::as_str) {
                Some("switch") if has("--rollback") => Some(Request::Rollback),
                Some("switch") => {
                    let flake = args.iter().enumerate().find_map(|(i, a)| {
                        if a == "--flake" {
                            args.get(i + 1).cloned()
                        } else {
                            a.strip_prefix("--flake=").map(str::to_string)
                        }
                    });
                    let (flake, attr) = match flake {
                        Some(f) => match f.split_once('#') {
                            Some((f, a)) => (Some(f.to_string()), Some(a.to_string())),
                            None => (Some(f), None),
                        },
                        None => (None, None),
                    };
                    Some(Request::Switch(Switch { flake, attr }))
                }
                other => Some(Request::OtherRebuild(
                    other.map(str::to_string).unwrap_or_default(),
                )),
            }
        }
        "systemctl"
            if args
                .iter()
                .find(|a| !a.starts_with('-'))
                .is_some_and(|a| a == "reboot") =>
        {
            Some(Request::Reboot)
        }
        "reboot" => Some(Request::Reboot),
        "shutdown" if has("-r") || has("--reboot") => Some(Request::Reboot),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpgradeConfig;
    use crate::inventory::Role;
    use std::net::Ipv4Addr;

    fn host(hostname: &str) -> Host {
        Host {
            id: "instance_2".into(),
            hostname: hostname.into(),
            system: "x86_64-linux".into(),
            profile: "server".into(),
            role: Role::Server,
            region: "home".into(),
            zone: "a".into(),
            ip: Ipv4Addr::new(127, 0, 0, 3),
            gateway: Ipv4Addr::new(127, 0, 0, 1),
            mask_length: 8,
            ssh_host: None,
            ssh_user: None,
            ssh_port: None,
            secrets: Vec::new(),
        }
    }

    #[test]
    fn the_default_templates_round_trip() {
        let cfg = UpgradeConfig::default();
        for flake in [
            "github:homelab/infra",
            ".",
            "/srv/infra",
            "git+https://example.org/infra?ref=main&rev=0123abc",
            "path:/srv/my infra",
        ] {
            for name in ["node1", "cp-2.home.arpa"] {
                let vars = CommandVars::new(flake, &host(name), "ops").unwrap();
                let line = vars.fill(&cfg.switch_command);
                assert_eq!(
                    Switch::recognise(&line),
                    Some(Switch {
                        flake: Some(flake.into()),
                        attr: Some(name.into())
                    }),
                    "{line}"
                );
                assert_eq!(recognise(&line).map(|r| r.kind()), Some(Kind::Switch));
                let line = vars.fill(&cfg.rollback_command);
                assert_eq!(Rollback::recognise(&line), Some(Rollback), "{line}");
                assert_eq!(Switch::recognise(&line), None);
            }
        }
        assert_eq!(Reboot::recognise(&cfg.reboot_command), Some(Reboot));
        // The local switch names the host to reach.
        let vars = CommandVars::new("github:h/i", &host("node2"), "ops").unwrap();
        assert_eq!(
            vars.fill(&cfg.local_switch_command),
            "nixos-rebuild switch --flake github:h/i#node2 --target-host ops@127.0.0.3 --use-remote-sudo"
        );
    }

    #[test]
    fn other_template_shapes_are_recognised() {
        for (line, want) in [
            (
                "sudo -n nixos-rebuild switch --flake github:u/r#node1",
                Some(Request::Switch(Switch {
                    flake: Some("github:u/r".into()),
                    attr: Some("node1".into()),
                })),
            ),
            (
                "sudo nixos-rebuild --use-remote-sudo switch",
                Some(Request::Switch(Switch::default())),
            ),
            (
                "nixos-rebuild --flake .#node1 switch --use-remote-sudo",
                Some(Request::Switch(Switch {
                    flake: Some(".".into()),
                    attr: Some("node1".into()),
                })),
            ),
            (
                "PATH=/opt/x:$PATH exec /run/current-system/sw/bin/nixos-rebuild switch --flake=f",
                Some(Request::Switch(Switch {
                    flake: Some("f".into()),
                    attr: None,
                })),
            ),
            (
                "sudo -u root env NIX_CONFIG=x nixos-rebuild --rollback switch",
                Some(Request::Rollback),
            ),
            (
                "nixos-rebuild boot",
                Some(Request::OtherRebuild("boot".into())),
            ),
            ("nixos-rebuild", Some(Request::OtherRebuild(String::new()))),
            ("sudo systemctl reboot", Some(Request::Reboot)),
            ("systemctl --no-wall reboot", Some(Request::Reboot)),
            ("sudo -n reboot", Some(Request::Reboot)),
            ("/sbin/shutdown -r now", Some(Request::Reboot)),
            ("shutdown -h now", None),
            ("systemctl status reboot.target", None),
            ("echo 'error: attribute missing'; exit 4", None),
            ("nixos-rebuild switch; reboot", None),
            ("frobnicate --now", None),
            ("", None),
        ] {
            assert_eq!(recognise(line), want, "{line}");
        }
    }

    #[test]
    fn unsafe_inventory_values_never_reach_the_command() {
        let bad = host("node1;reboot");
        let e = CommandVars::new("f", &bad, "ops").unwrap_err();
        assert_eq!(
            (e.host.as_str(), e.field.as_str()),
            ("instance_2", "hostname")
        );
        let mut h = host("node1");
        h.ssh_user = Some("$(id)".into());
        assert_eq!(
            CommandVars::new("f", &h, "ops").unwrap_err().field,
            "sshUser"
        );
        h.ssh_user = None;
        assert_eq!(
            CommandVars::new("f", &h, "a b").unwrap_err().field,
            "user ($USER)"
        );
        h.ssh_host = Some("x.org -oProxyCommand=sh".into());
        assert_eq!(
            CommandVars::new("f", &h, "ops").unwrap_err().field,
            "sshHost"
        );
        h.ssh_host = None;
        h.id = "i`d`".into();
        let e = CommandVars::new("f", &h, "ops").unwrap_err();
        assert_eq!(e.field, "id");
        assert!(e.to_string().contains("refusing"), "{e}");
        // The flake is the operator's: quoted, not refused.
        let vars = CommandVars::new("x; reboot", &host("node1"), "ops").unwrap();
        let line = vars.fill("nixos-rebuild switch --flake {flake}#{host}");
        assert_eq!(line, "nixos-rebuild switch --flake 'x; reboot'#node1");
        assert_eq!(
            Switch::recognise(&line).and_then(|s| s.flake),
            Some("x; reboot".into())
        );
    }

    #[test]
    fn fill_leaves_other_braces_alone() {
        let vars = CommandVars::new("f", &host("n"), "u").unwrap();
        assert_eq!(
            vars.fill("{ {id} {x} {host}{flake} {target}}{"),
            "{ instance_2 {x} nf u@127.0.0.3}{"
        );
    }
}
