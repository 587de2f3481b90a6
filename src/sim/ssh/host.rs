//! One simulated host, as its SSH face shows it: its NixOS generations (kept by the world,
//! `crate::sim::systems`), the world's reboots noticed (uptime, boot id), and the state every
//! probe renders from (facts, boot state, boot id, auto-upgrade, k3s).

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::Quirks;
use crate::inventory::{Host, Role};
use crate::model::host::{Fail2ban, Firewall, HostFacts, ListenSocket, Posture, Proto};
use crate::probes::auto_upgrade::AutoUpgradeState;
use crate::probes::facts::posture::nft_detail;
use crate::sim::World;
use crate::sim::systems::{HostSystems, Pins, System};

#[derive(Debug)]
pub(super) struct SysState {
    /// The world's boot count last seen (a change means the host rebooted).
    seen_boots: u32,
    boot_at: Instant,
    /// Uptime at `boot_at` (the sim starts with hosts that have been up for a while).
    base_uptime: f64,
    /// The revert timer (`homeinfra-revert-…`), once armed; gone once disarmed or at a boot
    /// (transient units do not survive one).
    pub(super) revert: Option<SimRevert>,
}

/// A simulated host's revert timer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SimRevert {
    pub(super) unit: String,
    /// The system it goes back to (its store path).
    pub(super) previous: String,
    pub(super) fired: bool,
}

/// One simulated host's SSH side.
pub(super) struct SimHost {
    pub(super) id: String,
    pub(super) hostname: String,
    role: Role,
    index: usize,
    pub(super) ip: Ipv4Addr,
    pub(super) key: PrivateKey,
    sys: Mutex<SysState>,
    pub(super) quirks: Mutex<Quirks>,
    pub(super) certs: Mutex<super::recovery::CertCache>,
}

pub(super) use crate::sim::sync::lock;

pub(super) fn random_key() -> PrivateKey {
    use rand::RngCore as _;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

pub(super) use crate::sim::systems::store_hash;

impl SimHost {
    /// The `index`-th host of the world.
    pub(super) fn new(index: usize, h: &Host, boots: u32) -> Self {
        Self {
            id: h.id.clone(),
            hostname: h.hostname.clone(),
            role: h.role,
            index,
            ip: h.ip,
            key: random_key(),
            sys: Mutex::new(SysState {
                seen_boots: boots,
                boot_at: Instant::now(),
                base_uptime: 3.0 * 86_400.0 + index as f64 * 3_719.0,
                revert: None,
            }),
            quirks: Mutex::new(Quirks::default()),
            certs: Mutex::new(super::recovery::CertCache::new()),
        }
    }

    pub(super) fn is_server(&self) -> bool {
        self.role.is_control_plane()
    }

    /// The host's generations, as the world keeps them.
    pub(super) fn systems(&self, world: &World) -> HostSystems {
        world
            .host_systems(&self.hostname)
            .unwrap_or_else(|| HostSystems::installed(self.index, &self.hostname, self.role))
    }

    /// Notice a reboot done by the world (uptime and boot id start again).
    pub(super) fn sync(&self, world: &World) -> MutexGuard<'_, SysState> {
        let mut s = lock(&self.sys);
        if let Some(h) = world.host(&self.hostname)
            && h.boots != s.seen_boots
        {
            s.seen_boots = h.boots;
            s.boot_at = Instant::now();
            s.base_uptime = 0.0;
            s.revert = None;
        }
        s
    }

    pub(super) fn current_path(&self, world: &World) -> String {
        self.systems(world).current().system.path()
    }

    pub(super) fn facts(&self, world: &World) -> HostFacts {
        let reboot_flag = world.host(&self.hostname).is_some_and(|h| h.reboot_needed);
        let quirks = lock(&self.quirks).clone();
        let systems = self.systems(world);
        let current = systems.current().clone();
        let mut booted_path = systems.booted.path();
        let mut booted_boot = systems.booted.boot_files();
        // The `reboot-needed` scenario: the host booted an older kernel than its current one.
        if reboot_flag && booted_boot == current.system.boot_files() {
            let older = System {
                pins: Pins {
                    kernel: crate::sim::build::OLD_KERNEL.into(),
                    ..Pins::older()
                },
                ..(*current.system).clone()
            };
            booted_path = older.path();
            booted_boot = older.boot_files();
        }
        let s = self.sync(world);
        let uptime = s.base_uptime + s.boot_at.elapsed().as_secs_f64() * world.speed;
        drop(s);
        let i = self.index as f64;
        let cp = self.role.is_control_plane();
        let mut listening = vec![
            sock(Proto::Tcp, "0.0.0.0", 22, "sshd", 811),
            sock(Proto::Tcp, "[::]", 22, "sshd", 811),
            sock(Proto::Tcp, "*", 10250, "k3s-server", 1203),
            sock(Proto::Tcp, "127.0.0.1", 10248, "k3s-server", 1203),
            sock(Proto::Tcp, "127.0.0.1", 10249, "k3s-server", 1203),
            sock(Proto::Tcp, "*", 10256, "k3s-server", 1203),
            sock(Proto::Udp, "0.0.0.0", 8472, "", 0),
        ];
        if cp {
            listening.extend([
                sock(Proto::Tcp, "*", 6443, "k3s-server", 1203),
                sock(Proto::Tcp, "127.0.0.1", 6444, "k3s-server", 1203),
                sock(Proto::Tcp, "0.0.0.0", 2379, "k3s-server", 1203),
                sock(Proto::Tcp, "0.0.0.0", 2380, "k3s-server", 1203),
                sock(Proto::Tcp, "127.0.0.1", 2381, "k3s-server", 1203),
                sock(Proto::Tcp, "127.0.0.1", 10257, "k3s-server", 1203),
                sock(Proto::Tcp, "127.0.0.1", 10259, "k3s-server", 1203),
            ]);
        } else {
            for s in &mut listening {
                if let Some(p) = s.process.as_mut() {
                    *p = p.replace("k3s-server", "k3s-agent");
                }
            }
        }
        let (last, _) = self.upgrade_timer();
        let mut f = HostFacts {
            hostname: Some(self.hostname.clone()),
            nixos_version: Some(current.system.pins.nixos.clone()),
            current_system: Some(current.system.path()),
            booted_system: Some(booted_path),
            current_boot: current.system.boot_files(),
            booted_boot,
            generation: Some(current.number),
            uptime_secs: Some(uptime as u64),
            // As the script prints them (two decimals, whole percent).
            load: Some([0.21 + i * 0.07, 0.18 + i * 0.05, 0.15 + i * 0.04].map(centi)),
            root_fs_used_pct: Some(31.0 + (self.index % 7) as f64 * 4.0),
            failed_units: Some(quirks.failed_units.clone()),
            k3s_state: Some("active".into()),
            upgrade_last_result: Some("success".into()),
            upgrade_last_run: Some(last.strftime("%a %Y-%m-%d %H:%M:%S UTC").to_string()),
            upgrade_next_run: self.auto_upgrade().next_run.map(|t| t.to_string()),
            privileged: Some(true),
            posture: Posture {
                sshd: Some(
                    [
                        ("passwordauthentication", "no"),
                        ("permitrootlogin", "no"),
                        ("x11forwarding", if quirks.weak_sshd { "yes" } else { "no" }),
                        ("kbdinteractiveauthentication", "no"),
                        ("pubkeyauthentication", "yes"),
                        ("permitemptypasswords", "no"),
                        ("port", "22"),
                        ("maxauthtries", "6"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                firewall: Some(Firewall {
                    active: true,
                    backend: "nftables".into(),
                    detail: nft_detail(1, 1, 23),
                }),
                fail2ban: Some(Fail2ban::Running {
                    jails: vec!["sshd".into()],
                    banned: (self.index as u64 * 3) % 5,
                }),
                listening: Some(listening),
                k3s_token_present: Some(true),
            },
            ..Default::default()
        };
        if let Some(b) = world.bootloader(&self.hostname) {
            f.boot_loader = Some(b.kind.as_str().to_string());
            f.grubenv = Some(b.grubenv);
        }
        listening_sorted(&mut f);
        f.compute_reboot_needed();
        f
    }

    /// The simulated `nixos-upgrade` timer: idle, fires in 20 hours (whole seconds, as
    /// systemd shows it).
    pub(super) fn auto_upgrade(&self) -> AutoUpgradeState {
        AutoUpgradeState {
            service: Some("inactive".into()),
            timer_load: Some("loaded".into()),
            next_run: Some(self.upgrade_timer().1),
        }
    }

    /// `nixos-upgrade.timer` as a real host has it: daily at a fixed time, plus a spread of
    /// minutes per host; its last run (the latest time it fired) and its next. Both stay put
    /// between two firings, as on a real host, so a frozen homelab reads the same each round.
    /// The daily time is 20 hours after the simulator's first answer (not a time of day: an
    /// upgrade run started at any hour of its first 19 sees no timer firing during it).
    fn upgrade_timer(&self) -> (jiff::Timestamp, jiff::Timestamp) {
        const DAY: i64 = 86_400;
        static ORIGIN: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let now = jiff::Timestamp::now().as_second();
        let origin = *ORIGIN.get_or_init(|| now);
        let first = origin + 20 * 3600 + (self.index as i64 * 7 % 60) * 60;
        let last = first + (now - first).div_euclid(DAY) * DAY;
        let at = |s: i64| jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        (at(last), at(last + DAY))
    }

    /// The kernel's boot id: a new one for each boot the world counts.
    pub(super) fn boot_id(&self, world: &World) -> String {
        let boots = self.sync(world).seen_boots;
        let hex: String = store_hash(&format!("boot/{}/{boots}", self.id))
            .bytes()
            .map(|b| char::from(b"0123456789abcdef"[usize::from(b) % 16]))
            .collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// The k3s the host runs: its current system's.
    pub(super) fn k3s_version(&self, world: &World) -> String {
        self.systems(world).current().system.kubelet_version()
    }
}

/// Rounded to two decimals.
fn centi(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sockets in the order `ss` output is read back (by port, protocol, address).
fn listening_sorted(f: &mut HostFacts) {
    if let Some(l) = f.posture.listening.as_mut() {
        l.sort_by(|a, b| (a.port, a.proto, &a.address).cmp(&(b.port, b.proto, &b.address)));
        l.dedup();
    }
}

fn sock(proto: Proto, address: &str, port: u16, process: &str, pid: u32) -> ListenSocket {
    ListenSocket {
        proto,
        address: address.into(),
        port,
        process: (!process.is_empty()).then(|| format!("users:((\"{process}\",pid={pid},fd=3))")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_hashes_look_like_nix() {
        let h = store_hash("x");
        assert_eq!(h.len(), 32);
        assert!(
            h.bytes()
                .all(|b| b"0123456789abcdfghijklmnpqrsvwxyz".contains(&b))
        );
        assert_ne!(h, store_hash("y"));
    }

    /// Whatever the hour, the timer's next firing is most of a day away and stays put; its
    /// last one is a day before; hosts fire minutes apart.
    #[test]
    fn the_upgrade_timer_fires_far_from_now_at_any_hour() {
        let inv = crate::sim::hosts::generated_inventory(3);
        let hosts: Vec<SimHost> = inv
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| SimHost::new(i, h, 0))
            .collect();
        let now = jiff::Timestamp::now().as_second();
        for h in &hosts {
            let (last, next) = h.upgrade_timer();
            let (last, next) = (last.as_second(), next.as_second());
            assert!(next - now > 19 * 3600, "{}: next in {} s", h.id, next - now);
            assert_eq!(next - last, 86_400);
            assert!(last <= now);
            assert_eq!(h.upgrade_timer().1.as_second(), next, "it moved");
        }
        assert_ne!(hosts[0].upgrade_timer().1, hosts[1].upgrade_timer().1);
    }
}
