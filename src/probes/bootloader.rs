//! The host's boot loader and what it boots: the bootloader probe ([`BootloaderProbe`], read
//! only), and the two mutating commands of a boot-once reboot — install the boot loader with a
//! given system as the default ([`BootDefault`]: `<system>/bin/switch-to-configuration boot`)
//! and boot an entry once ([`OneShot`]: `bootctl set-oneshot` / `grub-reboot`).
//!
//! How NixOS names the entries (nixpkgs `systemd-boot-builder.py`, `install-grub.pl`):
//! systemd-boot writes `loader/entries/nixos-generation-<N>.conf`, the default in
//! `loader/loader.conf` (`default <id>`) unless the EFI variable `LoaderEntryDefault`
//! overrides it; `LoaderEntryOneShot` is read and removed by the loader at the next boot.
//! GRUB's `grub.cfg` lists every generation in the submenu "NixOS - All configurations" as
//! "NixOS - Configuration <N> (<date> - <version>)"; `grub-reboot` writes `next_entry` into
//! `/boot/grub/grubenv` (the saved default), which NixOS's `grub.cfg` boots once when the
//! environment block is there. The default of both is the system whose installer ran last
//! (`switch-to-configuration switch|boot`). extlinux has no one-shot at all.

use super::{Kind, Probe, ProbeError, Reply, Request, clip, words};
use crate::probes::revert::is_store_path;

/// The kinds of boot loader the probe tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoaderKind {
    SystemdBoot,
    Grub,
    Extlinux,
    #[default]
    Unknown,
}

impl LoaderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LoaderKind::SystemdBoot => "systemd-boot",
            LoaderKind::Grub => "grub",
            LoaderKind::Extlinux => "extlinux",
            LoaderKind::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "systemd-boot" => LoaderKind::SystemdBoot,
            "grub" => LoaderKind::Grub,
            "extlinux" => LoaderKind::Extlinux,
            "unknown" => LoaderKind::Unknown,
            _ => return None,
        })
    }
}

/// What the bootloader probe saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bootloader {
    pub kind: LoaderKind,
    /// GRUB only: `/boot/grub/grubenv` is there (the saved default `grub-reboot` writes).
    #[serde(default)]
    pub grubenv: bool,
    /// `readlink /nix/var/nix/profiles/system` (`system-43-link`).
    #[serde(default)]
    pub profile: Option<String>,
    /// `readlink -f /nix/var/nix/profiles/system`: the newest generation's store path.
    #[serde(default)]
    pub profile_system: Option<String>,
    /// The default entry (systemd-boot: `LoaderEntryDefault`, else loader.conf's `default`;
    /// GRUB: `saved_entry`; extlinux: `DEFAULT`).
    #[serde(default)]
    pub default: Option<String>,
    /// The entry booted once at the next boot (systemd-boot: `LoaderEntryOneShot`; GRUB:
    /// `next_entry`).
    #[serde(default)]
    pub oneshot: Option<String>,
    /// The entries: systemd-boot entry ids, GRUB menu entry titles, extlinux labels.
    #[serde(default)]
    pub entries: Vec<String>,
}

/// How a loader boots an entry once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OneShotVia {
    /// `bootctl set-oneshot <id>`.
    Bootctl,
    /// `grub-reboot '<submenu>><title>'`.
    GrubReboot,
}

/// The GRUB submenu NixOS lists every generation in.
pub const GRUB_SUBMENU: &str = "NixOS - All configurations";

impl Bootloader {
    /// How this loader boots an entry once, or why it cannot (for the plan: "GRUB without a
    /// saved default").
    pub fn one_shot(&self) -> Result<OneShotVia, String> {
        match self.kind {
            LoaderKind::SystemdBoot => Ok(OneShotVia::Bootctl),
            LoaderKind::Grub if self.grubenv => Ok(OneShotVia::GrubReboot),
            LoaderKind::Grub => Err("GRUB without a saved default (no /boot/grub/grubenv)".into()),
            LoaderKind::Extlinux => Err("extlinux (it has no one-shot entry)".into()),
            LoaderKind::Unknown => Err("an unknown boot loader".into()),
        }
    }

    /// One line for the plan and the host detail.
    pub fn describe(&self) -> String {
        match self.one_shot() {
            Ok(OneShotVia::Bootctl) => "boot once: systemd-boot one-shot".into(),
            Ok(OneShotVia::GrubReboot) => "boot once: GRUB grub-reboot (saved default)".into(),
            Err(why) => format!("cannot boot once: {why}"),
        }
    }

    /// The number of the profile's newest generation (`system-43-link` → 43).
    pub fn generation(&self) -> Option<u64> {
        self.profile
            .as_deref()?
            .strip_prefix("system-")?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }

    /// The entry of generation `n` as the one-shot command names it: systemd-boot's
    /// `nixos-generation-<n>.conf`; GRUB's `NixOS - All configurations>NixOS - Configuration
    /// <n> (…)`. `None`: the loader lists no such entry.
    pub fn entry_of(&self, n: u64) -> Option<String> {
        match self.kind {
            LoaderKind::SystemdBoot => {
                let id = format!("nixos-generation-{n}.conf");
                self.entries.iter().find(|e| **e == id).cloned()
            }
            LoaderKind::Grub => {
                let head = format!("NixOS - Configuration {n} (");
                self.entries
                    .iter()
                    .find(|e| e.starts_with(&head))
                    .map(|t| format!("{GRUB_SUBMENU}>{t}"))
            }
            _ => None,
        }
    }
}

/// The boot loader, its entries, default and one-shot entry, and the system profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootloaderProbe;

/// Which boot loader the host has, in `sh` with `$S` the sudo prefix (empty as root): sets
/// `loader` (`systemd-boot`, `grub`, `extlinux`, `unknown`), `grubenv` (`yes`/`no`) and `esp`.
/// Shared by the facts script (the host detail) and [`BootloaderProbe`].
pub const DETECT: &str = r#"esp=$($S bootctl -p 2>/dev/null) || esp=; [ -n "$esp" ] || esp=/boot; grubenv=no; if [ "$($S bootctl is-installed 2>/dev/null)" = yes ] || $S test -f "$esp/loader/loader.conf"; then loader=systemd-boot; elif $S test -f /boot/grub/grub.cfg; then loader=grub; if $S test -f /boot/grub/grubenv; then grubenv=yes; fi; elif $S test -f /boot/extlinux/extlinux.conf; then loader=extlinux; else loader=unknown; fi"#;

/// The loader the facts script saw (`bootloader`, `bootloader.grubenv`) as a
/// [`Bootloader`] with no entries: what it can do ([`Bootloader::describe`]).
pub fn from_facts(kind: Option<&str>, grubenv: Option<bool>) -> Option<Bootloader> {
    let kind = LoaderKind::parse(kind?)?;
    Some(Bootloader {
        kind,
        grubenv: kind == LoaderKind::Grub && grubenv == Some(true),
        ..Default::default()
    })
}

/// The EFI vendor GUID of the boot loader interface (systemd's BOOT_LOADER_INTERFACE).
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

impl Probe for BootloaderProbe {
    type Output = Bootloader;
    const KIND: Kind = Kind::Bootloader;

    fn command(&self) -> String {
        format!(
            r#"export LC_ALL=C; PATH="$PATH:/run/current-system/sw/bin:/run/wrappers/bin"; S=; [ "$(id -u)" = 0 ] || ! sudo -n true >/dev/null 2>&1 || S="sudo -n"; efi() {{ f=/sys/firmware/efi/efivars/$1-{LOADER_GUID}; [ -r "$f" ] && tail -c +5 "$f" | tr -d '\000'; }}; echo "profile=$(readlink /nix/var/nix/profiles/system)"; echo "profile_system=$(readlink -f /nix/var/nix/profiles/system)"; {DETECT}; if [ "$loader" = systemd-boot ]; then echo loader=systemd-boot; d=$(efi LoaderEntryDefault); [ -n "$d" ] || d=$($S sed -n 's/^default[[:space:]]*//p' "$esp/loader/loader.conf" 2>/dev/null); echo "default=$d"; echo "oneshot=$(efi LoaderEntryOneShot)"; $S ls "$esp/loader/entries" 2>/dev/null | sed -n 's/^\(.*\.conf\)$/entry=\1/p'; elif [ "$loader" = grub ]; then echo loader=grub; if [ "$grubenv" = yes ]; then echo grubenv=yes; echo "default=$($S sed -n 's/^saved_entry=//p' /boot/grub/grubenv)"; echo "oneshot=$($S sed -n 's/^next_entry=//p' /boot/grub/grubenv)"; else echo grubenv=no; fi; $S sed -n 's/^[[:space:]]*menuentry "\([^"]*\)".*/entry=\1/p' /boot/grub/grub.cfg; elif [ "$loader" = extlinux ]; then echo loader=extlinux; echo "default=$($S sed -n 's/^DEFAULT[[:space:]]*//p' /boot/extlinux/extlinux.conf)"; $S sed -n 's/^LABEL[[:space:]]*/entry=/p' /boot/extlinux/extlinux.conf; else echo loader=unknown; fi"#
        )
    }

    /// `loader=` must be there; values may be empty (unknown); other lines are ignored.
    fn parse(&self, reply: &Reply) -> Result<Bootloader, ProbeError> {
        reply.require_success(Self::KIND)?;
        let mut out = Bootloader::default();
        let mut kind = None;
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        for line in reply.stdout.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "loader" => {
                    kind = Some(LoaderKind::parse(v.trim()).ok_or_else(|| {
                        ProbeError::new(Self::KIND, format!("unknown loader kind {:?}", clip(v)))
                    })?)
                }
                "grubenv" => out.grubenv = v.trim() == "yes",
                "profile" => out.profile = opt(v),
                "profile_system" => out.profile_system = opt(v),
                "default" => out.default = opt(v),
                "oneshot" => out.oneshot = opt(v),
                "entry" => out.entries.extend(opt(v)),
                _ => {}
            }
        }
        out.kind = kind.ok_or_else(|| {
            ProbeError::new(
                Self::KIND,
                format!(
                    "the bootloader probe was cut short: no loader in {:?}",
                    clip(reply.stdout.trim())
                ),
            )
        })?;
        if out.kind != LoaderKind::Grub {
            out.grubenv = false;
        }
        Ok(out)
    }

    fn render(&self, b: &Bootloader) -> Reply {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut text = format!(
            "profile={}\nprofile_system={}\nloader={}\n",
            v(&b.profile),
            v(&b.profile_system),
            b.kind.as_str()
        );
        if b.kind == LoaderKind::Grub {
            text.push_str(if b.grubenv {
                "grubenv=yes\n"
            } else {
                "grubenv=no\n"
            });
        }
        if b.kind != LoaderKind::Unknown {
            text.push_str(&format!("default={}\n", v(&b.default)));
        }
        if matches!(b.kind, LoaderKind::SystemdBoot | LoaderKind::Grub) {
            text.push_str(&format!("oneshot={}\n", v(&b.oneshot)));
        }
        for e in &b.entries {
            text.push_str(&format!("entry={e}\n"));
        }
        Reply::ok(text)
    }
}

/// Install the boot loader with `system` as its default (`switch-to-configuration boot`: the
/// entries of every generation are written; nothing is activated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDefault {
    pub system: String,
}

impl BootDefault {
    pub const KIND: Kind = Kind::BootDefault;

    /// The command line (with `sudo`); `Err` when the system is not a plain store path.
    pub fn command(&self) -> Result<String, String> {
        if !is_store_path(&self.system) {
            return Err(format!(
                "`{}` is not a plain store path: refusing to install a boot loader default from it",
                clip(&self.system)
            ));
        }
        Ok(format!(
            "sudo {}/bin/switch-to-configuration boot",
            self.system
        ))
    }
}

/// Boot `entry` once at the next boot (the default stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShot {
    pub via: OneShotVia,
    pub entry: String,
}

impl OneShot {
    pub const KIND: Kind = Kind::OneShot;

    /// The command line (with `sudo`); `Err` when the entry could not be one quoted word.
    pub fn command(&self) -> Result<String, String> {
        if self.entry.is_empty()
            || self.entry.starts_with('-')
            || self.entry.chars().any(|c| c == '\'' || c.is_control())
        {
            return Err(format!(
                "the boot entry {:?} cannot be named safely on a command line",
                clip(&self.entry)
            ));
        }
        let entry = words::quote(&self.entry);
        Ok(match self.via {
            OneShotVia::Bootctl => format!("sudo bootctl set-oneshot {entry}"),
            OneShotVia::GrubReboot => format!("sudo grub-reboot {entry}"),
        })
    }
}

/// `…/bin/switch-to-configuration boot`, `bootctl set-oneshot ID`, `grub-reboot ENTRY`.
pub(super) fn recognise(line: &str) -> Option<Request> {
    let all = words::split(line)?;
    let w = words::program(&all);
    let (prog, args) = w.split_first()?;
    if let Some(system) = prog.strip_suffix("/bin/switch-to-configuration") {
        return (args.len() == 1 && args[0] == "boot" && is_store_path(system)).then(|| {
            Request::BootDefault(BootDefault {
                system: system.to_string(),
            })
        });
    }
    let name = prog.rsplit('/').next().unwrap_or(prog);
    match (name, args) {
        ("bootctl", [verb, entry]) if verb == "set-oneshot" => Some(Request::OneShot(OneShot {
            via: OneShotVia::Bootctl,
            entry: entry.clone(),
        })),
        ("grub-reboot", [entry]) => Some(Request::OneShot(OneShot {
            via: OneShotVia::GrubReboot,
            entry: entry.clone(),
        })),
        _ => None,
    }
}

/// The kernel version in a kernel path (`/nix/store/…-linux-6.6.8/bzImage` → `6.6.8`).
pub fn kernel_version(path: &str) -> Option<String> {
    let dir = path.strip_prefix("/nix/store/")?.split('/').next()?;
    let (_, rest) = dir.split_once('-')?;
    let v = rest.strip_prefix("linux-")?;
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Bootloader> {
        vec![
            Bootloader {
                kind: LoaderKind::SystemdBoot,
                grubenv: false,
                profile: Some("system-43-link".into()),
                profile_system: Some("/nix/store/abc-nixos-system-node3-25.05".into()),
                default: Some("nixos-generation-42.conf".into()),
                oneshot: Some("nixos-generation-43.conf".into()),
                entries: vec![
                    "nixos-generation-42.conf".into(),
                    "nixos-generation-43.conf".into(),
                ],
            },
            Bootloader {
                kind: LoaderKind::Grub,
                grubenv: true,
                profile: Some("system-7-link".into()),
                default: None,
                oneshot: None,
                entries: vec![
                    "NixOS".into(),
                    "NixOS - Configuration 7 (2026-01-02 - 25.05.1)".into(),
                    "NixOS - Configuration 6 (2026-01-01 - 25.05.0)".into(),
                ],
                ..Default::default()
            },
            Bootloader {
                kind: LoaderKind::Grub,
                grubenv: false,
                entries: vec!["NixOS".into()],
                ..Default::default()
            },
            Bootloader {
                kind: LoaderKind::Extlinux,
                default: Some("nixos-default".into()),
                entries: vec!["nixos-default".into(), "nixos-12-default".into()],
                ..Default::default()
            },
            Bootloader::default(),
        ]
    }

    #[test]
    fn bootloader_round_trips() {
        for b in samples() {
            let r = BootloaderProbe.render(&b);
            assert_eq!(BootloaderProbe.parse(&r), Ok(b.clone()), "{r:?}");
        }
    }

    #[test]
    fn loaders_say_whether_they_boot_once_and_name_entries() {
        let s = samples();
        assert_eq!(s[0].one_shot(), Ok(OneShotVia::Bootctl));
        assert_eq!(s[0].describe(), "boot once: systemd-boot one-shot");
        assert_eq!(s[0].generation(), Some(43));
        assert_eq!(
            s[0].entry_of(43).as_deref(),
            Some("nixos-generation-43.conf")
        );
        assert_eq!(s[0].entry_of(44), None);
        assert_eq!(s[1].one_shot(), Ok(OneShotVia::GrubReboot));
        assert_eq!(
            s[1].entry_of(6).as_deref(),
            Some("NixOS - All configurations>NixOS - Configuration 6 (2026-01-01 - 25.05.0)")
        );
        assert_eq!(
            s[2].describe(),
            "cannot boot once: GRUB without a saved default (no /boot/grub/grubenv)"
        );
        assert!(s[3].one_shot().unwrap_err().contains("extlinux"));
        assert!(s[4].one_shot().unwrap_err().contains("unknown"));
        assert_eq!(s[4].generation(), None);
    }

    #[test]
    fn a_cut_or_failed_reply_is_an_error() {
        assert!(BootloaderProbe.parse(&Reply::ok("profile=x\n")).is_err());
        assert!(BootloaderProbe.parse(&Reply::ok("loader=lilo\n")).is_err());
        let failed = Reply {
            exit_status: Some(1),
            ..BootloaderProbe.render(&samples()[0])
        };
        assert!(BootloaderProbe.parse(&failed).is_err());
        // Real bootctl output order and extra lines.
        let b = BootloaderProbe
            .parse(&Reply::ok(
                "profile=system-9-link\nprofile_system=\nloader=systemd-boot\ndefault=\noneshot=\nentry=nixos-generation-9.conf\nnoise\n",
            ))
            .unwrap();
        assert_eq!(b.entry_of(9).as_deref(), Some("nixos-generation-9.conf"));
        assert_eq!(b.default, None);
    }

    #[test]
    fn the_boot_commands_are_built_and_read_back() {
        let sys = "/nix/store/abc123-nixos-system-node3-25.05";
        let d = BootDefault { system: sys.into() };
        let cmd = d.command().unwrap();
        assert_eq!(cmd, format!("sudo {sys}/bin/switch-to-configuration boot"));
        assert_eq!(
            super::super::recognise(&cmd, None),
            Some(Request::BootDefault(d))
        );
        assert!(
            BootDefault {
                system: "/nix/store/x; reboot".into()
            }
            .command()
            .is_err()
        );
        let o = OneShot {
            via: OneShotVia::Bootctl,
            entry: "nixos-generation-43.conf".into(),
        };
        let cmd = o.command().unwrap();
        assert_eq!(cmd, "sudo bootctl set-oneshot nixos-generation-43.conf");
        assert_eq!(
            super::super::recognise(&cmd, None),
            Some(Request::OneShot(o))
        );
        let g = OneShot {
            via: OneShotVia::GrubReboot,
            entry: "NixOS - All configurations>NixOS - Configuration 6 (2026-01-01 - 25.05.0)"
                .into(),
        };
        let cmd = g.command().unwrap();
        assert_eq!(
            cmd,
            "sudo grub-reboot 'NixOS - All configurations>NixOS - Configuration 6 (2026-01-01 - 25.05.0)'"
        );
        let r = super::super::recognise(&cmd, None).unwrap();
        assert_eq!(r, Request::OneShot(g));
        assert!(r.kind().mutating());
        for bad in ["", "-x", "a'b", "a\nb"] {
            assert!(
                OneShot {
                    via: OneShotVia::GrubReboot,
                    entry: bad.into()
                }
                .command()
                .is_err(),
                "{bad:?}"
            );
        }
        let p = super::super::recognise(&BootloaderProbe.command(), None).unwrap();
        assert_eq!(p, Request::Bootloader);
        assert!(!p.kind().mutating());
    }

    #[test]
    fn kernel_versions_come_from_kernel_paths() {
        assert_eq!(
            kernel_version("/nix/store/abc-linux-6.6.8/bzImage").as_deref(),
            Some("6.6.8")
        );
        assert_eq!(kernel_version("/nix/store/abc-initrd/initrd"), None);
        assert_eq!(kernel_version("/boot/vmlinuz"), None);
    }
}
