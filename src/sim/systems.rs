//! The simulated hosts' NixOS systems: real-looking closures (kernel, initrd, systemd, k3s,
//! containerd, openssh, glibc, ... with versions and sizes), the flake that builds them, and
//! each host's generations (deployed, booted, earlier ones).
//!
//! - [`Pins`]: the versions a nixpkgs revision brings (the flake's lock).
//! - [`System`]: what the flake builds for one host with some pins (and, for a hand-deployed
//!   system, a configuration of its own); its store path is derived from all of it, so two
//!   systems have the same path exactly when they are the same.
//! - [`Flake`]: the lock the flake has now; scenarios change it (`k3s-minor-bump`,
//!   `k3s-skip-minor`, `k3s-downgrade`, `kernel-update`).
//! - [`HostSystems`]: a host's generations, the current and the booted one.
//!
//! The store the control API serves (`/sim/v1/nix/...`) answers from here through nix's own
//! formats ([`crate::probes::nixtext`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::inventory::Role;
use crate::model::host::BootFiles;
use crate::probes::nixtext::{PathInfo, StoreItem};

/// A Nix-store-looking hash (32 chars of Nix's base32 alphabet) derived from `s`.
pub fn store_hash(s: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::with_capacity(32);
    for i in 0..32u64 {
        for b in s.bytes().chain(i.to_le_bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push(ALPHABET[(h >> 59) as usize % 32] as char);
    }
    out
}

/// A number in `0..n` derived from `s`.
fn spread(s: &str, n: u64) -> u64 {
    let h = store_hash(s);
    h.bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64))
        % n.max(1)
}

/// The versions one nixpkgs revision brings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pins {
    /// The NixOS release (`25.05.20251119.e4f5a6b`): the system's name carries it.
    pub nixos: String,
    pub kernel: String,
    pub systemd: String,
    /// As nixpkgs names it: `1.31.4+k3s1`.
    pub k3s: String,
    pub containerd: String,
    pub openssh: String,
    pub glibc: String,
    pub openssl: String,
}

impl Pins {
    /// The lock of the hosts' generation before the deployed one.
    pub fn older() -> Pins {
        Pins {
            nixos: "25.05.20251102.a1b2c3d".into(),
            ..Pins::deployed()
        }
    }

    /// What every host runs when the simulator starts.
    pub fn deployed() -> Pins {
        Pins {
            nixos: "25.05.20251119.e4f5a6b".into(),
            kernel: "6.12.55".into(),
            systemd: "257.8".into(),
            k3s: "1.31.4+k3s1".into(),
            containerd: "2.0.4".into(),
            openssh: "10.0p2".into(),
            glibc: "2.40-66".into(),
            openssl: "3.4.1".into(),
        }
    }

    /// The flake's lock when the simulator starts: a routine nixpkgs bump — a new kernel
    /// (reboot), containerd (restart), openssl, packages rebuilt; k3s unchanged.
    pub fn routine_bump() -> Pins {
        Pins {
            nixos: "25.05.20251124.c7d8e9f".into(),
            kernel: "6.12.58".into(),
            containerd: "2.0.5".into(),
            openssl: "3.4.2".into(),
            ..Pins::deployed()
        }
    }

    /// `kernel-update`: a bump that brings only a new kernel.
    pub fn kernel_only() -> Pins {
        Pins {
            nixos: "25.05.20251124.c7d8e9f".into(),
            kernel: "6.12.58".into(),
            ..Pins::deployed()
        }
    }

    /// `nix flake update` to the next nixpkgs revision: a newer NixOS revision and the
    /// kernel's next patch (a reboot), the rest as pinned.
    pub fn next_revision(&self) -> Pins {
        let mut parts: Vec<String> = self.nixos.split('.').map(str::to_string).collect();
        if let Some(date) = parts.get_mut(2) {
            *date = date
                .parse::<u64>()
                .map_or_else(|_| date.clone(), |d| (d + 1).to_string());
        }
        if let Some(rev) = parts.get_mut(3) {
            // A short hex revision derived from the previous one (FNV-1a).
            let h = rev.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
            });
            *rev = format!("{:07x}", h & 0xfff_ffff);
        }
        let mut k: Vec<String> = self.kernel.split('.').map(str::to_string).collect();
        if let Some(patch) = k.last_mut() {
            *patch = patch
                .parse::<u64>()
                .map_or_else(|_| patch.clone(), |p| (p + 1).to_string());
        }
        Pins {
            nixos: parts.join("."),
            kernel: k.join("."),
            ..self.clone()
        }
    }

    /// The same lock with another k3s.
    pub fn with_k3s(&self, k3s: &str) -> Pins {
        Pins {
            k3s: k3s.into(),
            ..self.clone()
        }
    }
}

/// `k3s-minor-bump`: the next minor.
pub const K3S_NEXT_MINOR: &str = "1.32.3+k3s1";
/// `k3s-skip-minor`: two minors ahead.
pub const K3S_SKIP_MINOR: &str = "1.33.1+k3s1";
/// `k3s-downgrade`: the minor before.
pub const K3S_OLDER_MINOR: &str = "1.30.11+k3s1";

/// One host's system: the flake's configuration of it (`config` 0) or a hand-edited one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct System {
    pub hostname: String,
    pub role: Role,
    pub pins: Pins,
    /// 0: as the flake configures the host; anything else: deployed by hand from an edited
    /// configuration (extra packages, a firewall port opened).
    pub config: u32,
}

/// Packages whose store paths change with every nixpkgs revision (rebuilt against the new
/// revision, same version): their sizes move a little.
const REBUILT: &[(&str, &str, u64)] = &[
    ("bash", "5.2p37", 1_650_000),
    ("coreutils", "9.5", 18_200_000),
    ("util-linux", "2.40.4", 12_400_000),
    ("curl", "8.11.1", 3_900_000),
    ("sudo", "1.9.16p2", 2_700_000),
];

/// Packages that stay as they are across the revisions the simulator knows.
const STABLE: &[(&str, &str, u64)] = &[
    ("iproute2", "6.11.0", 3_100_000),
    ("nftables", "1.1.1", 1_850_000),
    ("iptables", "1.8.11", 3_600_000),
    ("cni-plugins", "1.6.1", 82_000_000),
    ("runc", "1.2.4", 10_400_000),
    ("open-iscsi", "2.1.10", 2_100_000),
    ("nfs-utils", "2.7.1", 1_500_000),
    ("nix", "2.28.3", 24_000_000),
];

impl System {
    /// What the flake builds for a host with these pins.
    pub fn of(hostname: &str, role: Role, pins: &Pins) -> System {
        System {
            hostname: hostname.into(),
            role,
            pins: pins.clone(),
            config: 0,
        }
    }

    /// `nixos-system-<hostname>-<release>`.
    pub fn name(&self) -> String {
        format!("nixos-system-{}-{}", self.hostname, self.pins.nixos)
    }

    /// The store path: derived from everything that makes the system.
    pub fn path(&self) -> String {
        let key = format!("{:?}", self);
        format!("/nix/store/{}-{}", store_hash(&key), self.name())
    }

    /// The kubelet version its k3s reports (`v1.31.4+k3s1`).
    pub fn kubelet_version(&self) -> String {
        format!("v{}", self.pins.k3s)
    }

    /// The `kernel`, `initrd` and `kernel-modules` link targets.
    pub fn boot_files(&self) -> BootFiles {
        boot_files_of(&self.pins.kernel)
    }

    /// The whole closure: every store path's name and NAR size (the system's own last).
    pub fn items(&self) -> Vec<StoreItem> {
        let p = &self.pins;
        let sized = |name: &str, version: &str, base: u64| {
            // Versions differ in size by up to ±4 %.
            let v = spread(&format!("{name}-{version}"), 800) as i64 - 400;
            let size = (base as i64 + base as i64 * v / 10_000).max(1) as u64;
            StoreItem::new(format!("{name}-{version}"), size)
        };
        let mut items = vec![
            sized("linux", &p.kernel, 14_200_000),
            StoreItem::new(
                format!("linux-{}-modules", p.kernel),
                sized("linux-modules", &p.kernel, 121_000_000).nar_size,
            ),
            sized("initrd-linux", &p.kernel, 18_600_000),
            sized("systemd", &p.systemd, 31_500_000),
            sized("glibc", &p.glibc, 30_100_000),
            sized("openssl", &p.openssl, 6_600_000),
            sized("openssh", &p.openssh, 4_700_000),
            sized("k3s", &p.k3s, 231_000_000),
            sized("containerd", &p.containerd, 118_000_000),
        ];
        for (name, version, base) in REBUILT {
            // Rebuilt against each revision: a few KiB to some tens of KiB apart.
            let jitter = spread(&format!("{name}/{}", p.nixos), 60 * 1024);
            items.push(StoreItem::new(format!("{name}-{version}"), base + jitter));
        }
        for (name, version, base) in STABLE {
            items.push(StoreItem::new(format!("{name}-{version}"), *base));
        }
        let hand = self.config != 0;
        if hand {
            items.push(StoreItem::new("htop-3.3.0", 301_000));
            items.push(StoreItem::new("tcpdump-4.99.5", 1_320_000));
        }
        // Configuration: /etc, the firewall's scripts (a port opened by hand adds rules).
        let etc = 96_000 + spread(&format!("etc/{}/{}", self.hostname, p.nixos), 4_096);
        items.push(StoreItem::new("etc", etc + if hand { 14_500 } else { 0 }));
        items.push(StoreItem::new(
            "firewall-start",
            6_100 + if hand { 9_800 } else { 0 },
        ));
        let role_unit = match self.role {
            Role::Agent => "unit-k3s-agent.service",
            _ => "unit-k3s.service",
        };
        items.push(StoreItem::new(role_unit, 2_300));
        items.push(StoreItem::new(self.name(), 38_000));
        items
    }

    /// The closure size (`nix path-info -S`).
    pub fn closure_size(&self) -> u64 {
        self.items().iter().map(|i| i.nar_size).sum()
    }

    /// The system's line of `nix path-info -S --json`.
    pub fn path_info(&self) -> PathInfo {
        PathInfo {
            path: self.path(),
            nar_size: 38_000,
            closure_size: self.closure_size(),
        }
    }
}

/// The boot files of a kernel version (the same paths for every system with that kernel).
pub fn boot_files_of(k: &str) -> BootFiles {
    BootFiles {
        kernel: Some(format!(
            "/nix/store/{}-linux-{k}/bzImage",
            store_hash(&format!("linux-{k}"))
        )),
        initrd: Some(format!(
            "/nix/store/{}-initrd-linux-{k}/initrd",
            store_hash(&format!("initrd-{k}"))
        )),
        kernel_modules: Some(format!(
            "/nix/store/{}-linux-{k}-modules",
            store_hash(&format!("modules-{k}"))
        )),
    }
}

/// One generation of a host's system profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub number: u64,
    pub system: Arc<System>,
}

/// A host's generations: the current one (`/run/current-system`) and the booted one.
#[derive(Debug, Clone)]
pub struct HostSystems {
    pub generations: Vec<Generation>,
    pub current: usize,
    pub booted: Arc<System>,
    /// The boot loader (one entry per generation).
    pub loader: SimLoader,
    /// The generation number of the default boot entry.
    pub default_entry: u64,
    /// The generation number booted once at the next boot (consumed by that boot).
    pub oneshot: Option<u64>,
}

/// A simulated host's boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimLoader {
    #[default]
    SystemdBoot,
    /// GRUB; `grubenv`: with its environment block (the saved default `grub-reboot` writes).
    Grub { grubenv: bool },
}

/// The date GRUB's menu shows for every simulated generation.
const GRUB_DATE: &str = "2025-11-19";

impl HostSystems {
    /// As installed: the deployed generation and the one before it (same kernel), so a
    /// rollback has somewhere to go.
    pub fn installed(index: usize, hostname: &str, role: Role) -> HostSystems {
        let number = 40 + (index as u64 % 7);
        let older = Arc::new(System::of(hostname, role, &Pins::older()));
        let deployed = Arc::new(System::of(hostname, role, &Pins::deployed()));
        HostSystems {
            generations: vec![
                Generation {
                    number: number - 1,
                    system: older,
                },
                Generation {
                    number,
                    system: deployed.clone(),
                },
            ],
            current: 1,
            booted: deployed,
            loader: SimLoader::default(),
            default_entry: number,
            oneshot: None,
        }
    }

    /// The boot loader as the bootloader probe shows it.
    pub fn bootloader(&self) -> crate::probes::bootloader::Bootloader {
        use crate::probes::bootloader::{Bootloader, LoaderKind};
        let current = self.current();
        let mut gens: Vec<&Generation> = self.generations.iter().collect();
        gens.sort_by_key(|g| g.number);
        let (kind, grubenv) = match self.loader {
            SimLoader::SystemdBoot => (LoaderKind::SystemdBoot, false),
            SimLoader::Grub { grubenv } => (LoaderKind::Grub, grubenv),
        };
        let mut b = Bootloader {
            kind,
            grubenv,
            profile: Some(format!("system-{}-link", current.number)),
            profile_system: Some(current.system.path()),
            ..Default::default()
        };
        match self.loader {
            SimLoader::SystemdBoot => {
                b.default = Some(Self::sd_entry(self.default_entry));
                b.oneshot = self.oneshot.map(Self::sd_entry);
                b.entries = gens.iter().map(|g| Self::sd_entry(g.number)).collect();
            }
            SimLoader::Grub { grubenv } => {
                if grubenv {
                    b.oneshot = self.oneshot.and_then(|n| self.generation(n)).map(|g| {
                        format!(
                            "{}>{}",
                            crate::probes::bootloader::GRUB_SUBMENU,
                            Self::grub_title(g)
                        )
                    });
                }
                b.entries = std::iter::once("NixOS".to_string())
                    .chain(gens.iter().rev().map(|g| Self::grub_title(g)))
                    .collect();
            }
        }
        b
    }

    fn sd_entry(n: u64) -> String {
        format!("nixos-generation-{n}.conf")
    }

    fn grub_title(g: &Generation) -> String {
        format!(
            "NixOS - Configuration {} ({GRUB_DATE} - {})",
            g.number, g.system.pins.nixos
        )
    }

    /// Generation `n`.
    pub fn generation(&self, n: u64) -> Option<&Generation> {
        self.generations.iter().find(|g| g.number == n)
    }

    /// `<system>/bin/switch-to-configuration boot`: the generation of `system` becomes the
    /// boot default (`false`: no generation has it).
    pub fn install_default(&mut self, system: &str) -> bool {
        match self.generations.iter().rfind(|g| g.system.path() == system) {
            Some(g) => {
                self.default_entry = g.number;
                true
            }
            None => false,
        }
    }

    /// `bootctl set-oneshot ID` / `grub-reboot ENTRY`: the generation `entry` names boots
    /// once; `Err` as the tool says it.
    pub fn set_oneshot(
        &mut self,
        via: crate::probes::bootloader::OneShotVia,
        entry: &str,
    ) -> Result<(), String> {
        use crate::probes::bootloader::OneShotVia;
        let n = match (self.loader, via) {
            (SimLoader::SystemdBoot, OneShotVia::Bootctl) => entry
                .strip_prefix("nixos-generation-")
                .and_then(|r| r.strip_suffix(".conf"))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| self.generation(*n).is_some())
                .ok_or_else(|| {
                    format!("Failed to set EFI variable: boot entry \"{entry}\" not found")
                })?,
            (SimLoader::Grub { grubenv: true }, OneShotVia::GrubReboot) => self
                .generations
                .iter()
                .find(|g| {
                    entry
                        == format!(
                            "{}>{}",
                            crate::probes::bootloader::GRUB_SUBMENU,
                            Self::grub_title(g)
                        )
                })
                .map(|g| g.number)
                .ok_or_else(|| format!("grub-reboot: no menu entry \"{entry}\""))?,
            (SimLoader::Grub { grubenv: false }, OneShotVia::GrubReboot) => {
                return Err(
                    "grub-editenv: error: cannot open `/boot/grub/grubenv': No such file or directory"
                        .into(),
                );
            }
            (SimLoader::SystemdBoot, _) => return Err("grub-reboot: command not found".into()),
            (SimLoader::Grub { .. }, _) => {
                return Err("Couldn't find EFI system partition. It is recommended to mount it to /boot or /efi.".into());
            }
        };
        self.oneshot = Some(n);
        Ok(())
    }

    /// A boot: the one-shot entry if one is set (consumed; `fails`: it does not boot and the
    /// host resets into the default), else the default; that generation is current and
    /// booted. Returns whether a one-shot boot failed.
    pub fn boot(&mut self, fails: bool) -> bool {
        let once = self.oneshot.take();
        let failed = once.is_some() && fails;
        let n = match once {
            Some(n) if !failed => n,
            _ => self.default_entry,
        };
        if let Some(i) = self.generations.iter().rposition(|g| g.number == n) {
            self.current = i;
        }
        self.booted = self.current().system.clone();
        failed
    }

    pub fn current(&self) -> &Generation {
        &self.generations[self.current]
    }

    /// Make `system` current: the generation it already is when it is the current one, else
    /// a new generation (as `nix-env --set` does). Returns whether anything changed.
    pub fn activate(&mut self, system: Arc<System>) -> bool {
        if *self.current().system == *system {
            return false;
        }
        let number = self.generations.iter().map(|g| g.number).max().unwrap_or(0) + 1;
        self.generations.push(Generation { number, system });
        self.current = self.generations.len() - 1;
        // `switch` installs the boot loader with the new system as its default.
        self.default_entry = number;
        true
    }

    /// Back to the previous generation; `None` when there is none.
    pub fn rollback(&mut self) -> Option<(u64, Generation)> {
        if self.current == 0 {
            return None;
        }
        let from = self.current().number;
        self.current -= 1;
        self.default_entry = self.current().number;
        Some((from, self.current().clone()))
    }

    /// The booted kernel differs from the current system's.
    pub fn reboot_needed(&self) -> bool {
        self.booted.boot_files() != self.current().system.boot_files()
    }
}

/// The simulated flake: its lock now, and a revision that changes with it (the lock's
/// fingerprint).
#[derive(Debug, Clone)]
pub struct Flake {
    pub pins: Pins,
    pub revision: u64,
}

impl Default for Flake {
    fn default() -> Self {
        Self {
            pins: Pins::routine_bump(),
            revision: 1,
        }
    }
}

impl Flake {
    /// Pin another lock (a new revision when it differs).
    pub fn set(&mut self, pins: Pins) {
        if pins != self.pins {
            self.pins = pins;
            self.revision += 1;
        }
    }

    /// The lock's fingerprint as `/sim/v1/nix/lock` reports it.
    pub fn fingerprint(&self) -> String {
        format!(
            "sim-{}-{}",
            self.revision,
            &store_hash(&format!("{:?}", self.pins))[..12]
        )
    }
}

/// Every system the simulated store has seen, by store path.
#[derive(Debug, Default)]
pub struct Store {
    paths: HashMap<String, Arc<System>>,
}

impl Store {
    /// Register a system (idempotent) and get its shared copy.
    pub fn add(&mut self, s: System) -> Arc<System> {
        let path = s.path();
        self.paths
            .entry(path)
            .or_insert_with(|| Arc::new(s))
            .clone()
    }

    pub fn get(&self, path: &str) -> Option<Arc<System>> {
        self.paths.get(path).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::closure_diff::parse::parse;
    use crate::probes::nixtext::diff_closures;

    #[test]
    fn paths_follow_what_makes_the_system() {
        let a = System::of("node1", Role::Init, &Pins::deployed());
        let b = System::of("node1", Role::Init, &Pins::deployed());
        assert_eq!(a.path(), b.path());
        assert!(
            a.path()
                .ends_with("-nixos-system-node1-25.05.20251119.e4f5a6b")
        );
        let c = System::of("node1", Role::Init, &Pins::routine_bump());
        assert_ne!(a.path(), c.path());
        let hand = System {
            config: 1,
            ..c.clone()
        };
        assert_ne!(hand.path(), c.path());
        assert_eq!(hand.name(), c.name());
    }

    #[test]
    fn the_routine_bump_reads_as_nix_would_print_it() {
        let a = System::of("node4", Role::Agent, &Pins::deployed());
        let b = System::of("node4", Role::Agent, &Pins::routine_bump());
        let p = parse(&diff_closures(&a.items(), &b.items()));
        assert!(p.unparsed.is_empty(), "{:?}", p.unparsed);
        let names: Vec<&str> = p.lines.iter().map(|l| l.name.as_str()).collect();
        for n in [
            "linux",
            "initrd-linux",
            "containerd",
            "openssl",
            "nixos-system-node4",
        ] {
            assert!(names.contains(&n), "{n} not in {names:?}");
        }
        assert!(!names.contains(&"k3s"), "{names:?}");
        let k3s = System::of(
            "node4",
            Role::Agent,
            &Pins::deployed().with_k3s(K3S_NEXT_MINOR),
        );
        let p = parse(&diff_closures(&a.items(), &k3s.items()));
        let line = p.lines.iter().find(|l| l.name == "k3s").unwrap();
        assert_eq!(line.old, ["1.31.4+k3s1"]);
        assert_eq!(line.new, ["1.32.3+k3s1"]);
    }

    #[test]
    fn a_flake_update_brings_the_next_kernel_patch() {
        let a = Pins::routine_bump();
        let b = a.next_revision();
        assert_eq!(b.kernel, "6.12.59");
        assert!(b.nixos.starts_with("25.05.20251125."), "{}", b.nixos);
        assert_ne!(b.nixos, a.nixos);
        assert_eq!(b.k3s, a.k3s);
        assert_ne!(b.next_revision().nixos, b.nixos);
    }

    #[test]
    fn generations_activate_once_and_roll_back() {
        let mut h = HostSystems::installed(0, "node1", Role::Init);
        assert!(!h.reboot_needed());
        let t = Arc::new(System::of("node1", Role::Init, &Pins::routine_bump()));
        assert!(h.activate(t.clone()));
        assert!(!h.activate(t));
        assert!(h.reboot_needed());
        let (from, back) = h.rollback().unwrap();
        assert_eq!(from, back.number + 1);
        assert!(!h.reboot_needed());
    }
}
