//! One simulated host's system, as its SSH face shows it: NixOS generations (current,
//! booted, rollback target) with store paths that look like Nix's, the world's reboots noticed,
//! and the state every probe renders from (facts, boot state, boot id, auto-upgrade, k3s).

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::Quirks;
use crate::inventory::{Host, Role};
use crate::model::host::{BootFiles, Fail2ban, Firewall, HostFacts, ListenSocket, Posture, Proto};
use crate::probes::auto_upgrade::AutoUpgradeState;
use crate::probes::facts::posture::nft_detail;
use crate::sim::World;

/// One generation of a host's NixOS system.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Generation {
    pub(super) number: u64,
    pub(super) version: String,
    pub(super) kernel: String,
}

#[derive(Debug)]
pub(super) struct SysState {
    pub(super) generations: Vec<Generation>,
    pub(super) current: usize,
    pub(super) booted: Generation,
    /// The world's boot count last seen (a change means the host rebooted).
    seen_boots: u32,
    boot_at: Instant,
    /// Uptime at `boot_at` (the sim starts with hosts that have been up for a while).
    base_uptime: f64,
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

/// A Nix-store-looking hash (32 chars of Nix's base32 alphabet) derived from `s`.
pub(super) fn store_hash(s: &str) -> String {
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

pub(super) use crate::sim::build::{KERNELS, NIXOS_VERSIONS as VERSIONS};

impl SimHost {
    /// The `index`-th host of the world as installed: the last auto-upgrade's generation, and
    /// the one before it (same kernel), so a rollback has somewhere to go.
    pub(super) fn new(index: usize, h: &Host, boots: u32) -> Self {
        let number = 40 + (index as u64 % 7);
        let older = Generation {
            number: number - 1,
            version: VERSIONS[0].into(),
            kernel: KERNELS[0].into(),
        };
        let first = Generation {
            number,
            version: VERSIONS[1].into(),
            kernel: KERNELS[0].into(),
        };
        Self {
            id: h.id.clone(),
            hostname: h.hostname.clone(),
            role: h.role,
            index,
            ip: h.ip,
            key: random_key(),
            sys: Mutex::new(SysState {
                generations: vec![older, first.clone()],
                current: 1,
                booted: first,
                seen_boots: boots,
                boot_at: Instant::now(),
                base_uptime: 3.0 * 86_400.0 + index as f64 * 3_719.0,
            }),
            quirks: Mutex::new(Quirks::default()),
            certs: Mutex::new(super::recovery::CertCache::new()),
        }
    }

    pub(super) fn is_server(&self) -> bool {
        self.role.is_control_plane()
    }

    pub(super) fn system_path(&self, g: &Generation) -> String {
        let name = format!("nixos-system-{}-{}", self.hostname, g.version);
        format!(
            "/nix/store/{}-{name}",
            store_hash(&format!("{name}/{}", g.number))
        )
    }

    fn boot_files(g: &Generation) -> BootFiles {
        let k = &g.kernel;
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

    /// Notice a reboot done by the world: the current system is now the booted one.
    pub(super) fn sync(&self, world: &World) -> MutexGuard<'_, SysState> {
        let mut s = lock(&self.sys);
        if let Some(h) = world.host(&self.hostname)
            && h.boots != s.seen_boots
        {
            s.seen_boots = h.boots;
            s.booted = s.generations[s.current].clone();
            s.boot_at = Instant::now();
            s.base_uptime = 0.0;
        }
        s
    }

    pub(super) fn current_path(&self, world: &World) -> String {
        let s = self.sync(world);
        self.system_path(&s.generations[s.current])
    }

    pub(super) fn facts(&self, world: &World) -> HostFacts {
        let reboot_flag = world.host(&self.hostname).is_some_and(|h| h.reboot_needed);
        let quirks = lock(&self.quirks).clone();
        let s = self.sync(world);
        let current = s.generations[s.current].clone();
        // The `reboot-needed` scenario: the host booted an older kernel than its current one.
        let booted = if reboot_flag && s.booted.kernel == current.kernel {
            Generation {
                number: current.number.saturating_sub(1),
                version: VERSIONS[0].into(),
                kernel: crate::sim::build::OLD_KERNEL.into(),
            }
        } else {
            s.booted.clone()
        };
        let uptime = s.base_uptime + s.boot_at.elapsed().as_secs_f64() * world.speed;
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
        let last = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(4);
        let mut f = HostFacts {
            hostname: Some(self.hostname.clone()),
            nixos_version: Some(current.version.clone()),
            current_system: Some(self.system_path(&current)),
            booted_system: Some(self.system_path(&booted)),
            current_boot: Self::boot_files(&current),
            booted_boot: Self::boot_files(&booted),
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
        listening_sorted(&mut f);
        f.compute_reboot_needed();
        f
    }

    /// The simulated `nixos-upgrade` timer: idle, fires in 20 hours (whole seconds, as
    /// systemd shows it).
    pub(super) fn auto_upgrade(&self) -> AutoUpgradeState {
        let next = jiff::Timestamp::now().as_second() + 20 * 3600;
        AutoUpgradeState {
            service: Some("inactive".into()),
            timer_load: Some("loaded".into()),
            next_run: jiff::Timestamp::from_second(next).ok(),
        }
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

    /// The k3s the host runs: its node's kubelet version (the build's when the node is gone).
    pub(super) fn k3s_version(&self, world: &World) -> String {
        world
            .store
            .get(&crate::sim::resources::NODES, "", &self.hostname)
            .and_then(|n| {
                n.pointer("/status/nodeInfo/kubeletVersion")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| crate::sim::build::K3S_VERSION.to_string())
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
}
