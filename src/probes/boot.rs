//! What a host booted: the boot-state probe (booted vs current system, kernel, initrd and
//! kernel modules — whether a reboot is needed) and the boot-id probe (changes on every boot).

use crate::model::host::{BootFiles, HostFacts};

use super::{Kind, Probe, ProbeError, Reply, clip};

/// Booted vs current system and boot files, as `readlink -f` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootStateProbe;

/// The boot-state probe's answer. `None`: the host could not tell (no such link: not NixOS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFacts {
    pub booted_system: Option<String>,
    pub current_system: Option<String>,
    pub booted: BootFiles,
    pub current: BootFiles,
}

impl BootFacts {
    /// The boot part of the host facts.
    pub fn from_facts(f: &HostFacts) -> Self {
        Self {
            booted_system: f.booted_system.clone(),
            current_system: f.current_system.clone(),
            booted: f.booted_boot.clone(),
            current: f.current_boot.clone(),
        }
    }

    /// Whether a reboot is needed (`None`: cannot tell) and which boot files differ, decided
    /// as for the host facts (`HostFacts::compute_reboot_needed`).
    pub fn reboot_needed(&self) -> (Option<bool>, Vec<String>) {
        let mut f = HostFacts {
            booted_system: self.booted_system.clone(),
            current_system: self.current_system.clone(),
            booted_boot: self.booted.clone(),
            current_boot: self.current.clone(),
            ..Default::default()
        };
        f.compute_reboot_needed();
        (f.reboot_needed, f.reboot_reasons)
    }
}

/// The keys the command prints, in order.
const KEYS: [&str; 8] = [
    "booted_kernel",
    "current_kernel",
    "booted_initrd",
    "current_initrd",
    "booted_kernel-modules",
    "current_kernel-modules",
    "booted",
    "current",
];

fn slot<'a>(b: &'a mut BootFacts, key: &str) -> Option<&'a mut Option<String>> {
    Some(match key {
        "booted_kernel" => &mut b.booted.kernel,
        "current_kernel" => &mut b.current.kernel,
        "booted_initrd" => &mut b.booted.initrd,
        "current_initrd" => &mut b.current.initrd,
        "booted_kernel-modules" => &mut b.booted.kernel_modules,
        "current_kernel-modules" => &mut b.current.kernel_modules,
        "booted" => &mut b.booted_system,
        "current" => &mut b.current_system,
        _ => return None,
    })
}

impl Probe for BootStateProbe {
    type Output = BootFacts;
    const KIND: Kind = Kind::BootState;

    fn command(&self) -> String {
        "for f in kernel initrd kernel-modules; do \
         echo \"booted_$f=$(readlink -f /run/booted-system/$f 2>/dev/null)\"; \
         echo \"current_$f=$(readlink -f /run/current-system/$f 2>/dev/null)\"; done; \
         echo \"booted=$(readlink -f /run/booted-system 2>/dev/null)\"; \
         echo \"current=$(readlink -f /run/current-system 2>/dev/null)\""
            .into()
    }

    /// Every key must be there (an empty value is "unknown"); other lines are ignored.
    fn parse(&self, reply: &Reply) -> Result<BootFacts, ProbeError> {
        reply.require_success(Self::KIND)?;
        let mut out = BootFacts::default();
        let mut seen = Vec::new();
        for line in reply.stdout.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if seen.contains(&k) {
                continue;
            }
            if let Some(slot) = slot(&mut out, k) {
                let v = v.trim();
                *slot = (!v.is_empty()).then(|| v.to_string());
                seen.push(k);
            }
        }
        let missing: Vec<&str> = KEYS.into_iter().filter(|k| !seen.contains(k)).collect();
        if !missing.is_empty() {
            return Err(ProbeError::new(
                Self::KIND,
                format!(
                    "the boot state was cut short: no {} in {:?}",
                    missing.join(", "),
                    clip(reply.stdout.trim())
                ),
            ));
        }
        Ok(out)
    }

    fn render(&self, b: &BootFacts) -> Reply {
        let mut b = b.clone();
        let mut text = String::new();
        for k in KEYS {
            let v = slot(&mut b, k).and_then(|s| s.take()).unwrap_or_default();
            text.push_str(&format!("{k}={v}\n"));
        }
        Reply::ok(text)
    }
}

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): a new one on every boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootIdProbe;

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Probe for BootIdProbe {
    /// `None`: the host has no boot id to show (not Linux).
    type Output = Option<String>;
    const KIND: Kind = Kind::BootId;

    fn command(&self) -> String {
        "cat /proc/sys/kernel/random/boot_id 2>/dev/null || true".into()
    }

    fn parse(&self, reply: &Reply) -> Result<Option<String>, ProbeError> {
        reply.require_success(Self::KIND)?;
        let id = reply.stdout.trim();
        if id.is_empty() {
            return Ok(None);
        }
        if !is_uuid(id) {
            return Err(ProbeError::new(
                Self::KIND,
                format!("unreadable boot id: {:?}", clip(id)),
            ));
        }
        Ok(Some(id.to_ascii_lowercase()))
    }

    fn render(&self, id: &Option<String>) -> Reply {
        Reply::ok(id.as_ref().map(|i| format!("{i}\n")).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(k: &str, i: &str, m: &str) -> BootFiles {
        BootFiles {
            kernel: Some(k.into()),
            initrd: Some(i.into()),
            kernel_modules: Some(m.into()),
        }
    }

    fn samples() -> Vec<BootFacts> {
        vec![
            // A kernel update not booted yet.
            BootFacts {
                booted_system: Some("/nix/store/s1-nixos-system-node1-25.05".into()),
                current_system: Some("/nix/store/s2-nixos-system-node1-25.05".into()),
                booted: files("/nix/store/a-linux/bzImage", "/i", "/m"),
                current: files("/nix/store/b-linux/bzImage", "/i", "/m"),
            },
            // The same system booted and current.
            BootFacts {
                booted_system: Some("/nix/store/s1".into()),
                current_system: Some("/nix/store/s1".into()),
                booted: files("/k", "/i", "/m"),
                current: files("/k", "/i", "/m"),
            },
            // Not NixOS: nothing known.
            BootFacts::default(),
            // Half known.
            BootFacts {
                current_system: Some("/nix/store/x=y".into()),
                current: BootFiles {
                    kernel: Some("/k".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        ]
    }

    #[test]
    fn boot_state_round_trips() {
        for b in samples() {
            let reply = BootStateProbe.render(&b);
            assert_eq!(BootStateProbe.parse(&reply), Ok(b.clone()), "{reply:?}");
        }
    }

    #[test]
    fn boot_state_parses() {
        let reply = Reply::ok(
            "booted_kernel=/nix/store/a-linux/bzImage\ncurrent_kernel=/nix/store/b-linux/bzImage\n\
             booted_initrd=/i\ncurrent_initrd=/i\nbooted_kernel-modules=/m\ncurrent_kernel-modules=/m\n\
             booted=/nix/store/s1\ncurrent=/nix/store/s2\nsome_future_key=1\nnoise\n",
        );
        let b = BootStateProbe.parse(&reply).unwrap();
        assert_eq!(b.reboot_needed(), (Some(true), vec!["kernel".to_string()]));
        // Not NixOS: every value empty — unknown, not an error.
        let empty: String = KEYS.iter().map(|k| format!("{k}=\n")).collect();
        let b = BootStateProbe.parse(&Reply::ok(empty)).unwrap();
        assert_eq!(b, BootFacts::default());
        assert_eq!(b.reboot_needed(), (None, vec![]));
        assert_eq!(samples()[1].reboot_needed(), (Some(false), vec![]));
    }

    #[test]
    fn a_cut_or_failed_boot_state_is_an_error() {
        let e = BootStateProbe
            .parse(&Reply::ok("booted=\ncurrent=\n"))
            .unwrap_err();
        assert!(e.message.contains("cut short: no booted_kernel"), "{e}");
        assert!(BootStateProbe.parse(&Reply::ok("")).is_err());
        let failed = Reply {
            exit_status: Some(1),
            ..BootStateProbe.render(&samples()[0])
        };
        assert!(BootStateProbe.parse(&failed).is_err());
    }

    #[test]
    fn boot_id_round_trips() {
        for id in [
            None,
            Some("0f3c9a4e-8b2d-4c61-9e7a-5d1b2c3d4e5f".to_string()),
        ] {
            assert_eq!(BootIdProbe.parse(&BootIdProbe.render(&id)), Ok(id));
        }
        assert_eq!(
            BootIdProbe.parse(&Reply::ok("0F3C9A4E-8B2D-4C61-9E7A-5D1B2C3D4E5F\n")),
            Ok(Some("0f3c9a4e-8b2d-4c61-9e7a-5d1b2c3d4e5f".into()))
        );
        for bad in [
            "not-a-boot-id",
            "0f3c9a4e-8b2d-4c61-9e7a-5d1b2c3d4e5",
            "0f3c9a4e 8b2d 4c61 9e7a 5d1b2c3d4e5f",
        ] {
            assert!(BootIdProbe.parse(&Reply::ok(bad)).is_err(), "{bad}");
        }
    }
}
