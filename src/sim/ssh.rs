//! The simulator's SSH face: one russh server per simulated host, on that host's loopback
//! address (all on one port), each with its own ed25519 host key. Only the one generated client
//! key is accepted (public key auth; nothing else).
//!
//! Commands (a leading `sudo`/`sudo -n` is accepted and ignored):
//! - `sh -s` (the facts script on stdin): the facts block of `sources::ssh::facts::render`,
//!   built from the world's state for that host;
//! - `nixos-rebuild switch ...`: streams build/activation lines (time scaled), makes a new
//!   generation current (the host's first switch brings a new kernel: reboot needed);
//!   `nixos-rebuild switch --rollback`: back to the previous generation;
//! - `systemctl reboot`, `reboot`: exit 0, then the world reboots the host (node NotReady,
//!   etcd member and replicas down, back unless `node-never-returns`); connections drop;
//! - `readlink [-f] /run/current-system` (or `/run/booted-system`), `nixos-version`,
//!   `hostname`, `true`;
//! - anything else: exit 127 with `sh: CMD: not found` on stderr.
//!
//! A host that is down (rebooting, `unreachable-host`) refuses connections: its listener is
//! closed until it is back, and its open connections are dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, eyre};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio_util::sync::CancellationToken;

use super::World;
use crate::inventory::Role;
use crate::model::host::{BootFiles, Fail2ban, Firewall, HostFacts, ListenSocket, Posture, Proto};

/// The user the generated config logs in as (the hosts accept the client key for any user, so
/// an inventory's own `sshUser` works too).
pub const SSH_USER: &str = "operator";

/// How often a host's reachability is checked (listener opened/closed).
const POLL: Duration = Duration::from_millis(20);

/// Per-host oddities the scenarios do not cover (all off by default: a healthy host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Units `systemctl --failed` lists.
    pub failed_units: Vec<String>,
    /// sshd allows X11 forwarding (`X11Forwarding yes`), against the policy.
    pub weak_sshd: bool,
    /// `nixos-rebuild switch` fails (a build error, exit status 1) and changes nothing.
    pub switch_fails: bool,
}

/// The running SSH face.
pub struct SshFace {
    /// The port every host listens on (each on its own 127.0.0.N).
    pub port: u16,
    /// `DIR/ssh/id_ed25519`.
    pub identity_file: PathBuf,
    /// `DIR/ssh/known_hosts`.
    pub known_hosts: PathBuf,
    hosts: Vec<Arc<SimHost>>,
}

impl SshFace {
    /// Set a host's quirks (by hostname or inventory id).
    pub fn set_quirks(&self, host: &str, quirks: Quirks) -> Result<()> {
        let h = self
            .hosts
            .iter()
            .find(|h| h.hostname == host || h.id == host)
            .ok_or_else(|| eyre!("no simulated host \"{host}\""))?;
        *lock(&h.quirks) = quirks;
        Ok(())
    }

    /// A host's quirks (`None`: no such host).
    pub fn quirks(&self, host: &str) -> Option<Quirks> {
        self.hosts
            .iter()
            .find(|h| h.hostname == host || h.id == host)
            .map(|h| lock(&h.quirks).clone())
    }

    /// The `[ssh]` settings that reach the simulated hosts.
    pub fn client_config(&self) -> crate::config::SshConfig {
        crate::config::SshConfig {
            enabled: true,
            user: Some(SSH_USER.into()),
            port: self.port,
            identity_files: vec![self.identity_file.clone()],
            known_hosts: Some(self.known_hosts.clone()),
            accept_new: false,
            sudo: true,
            use_ssh_config: false,
            connect_timeout_secs: 5,
            command_timeout_secs: 30,
            keepalive_secs: 15,
            max_concurrency: 16,
            refresh_secs: 10,
        }
    }
}

/// One generation of a host's NixOS system.
#[derive(Debug, Clone, PartialEq)]
struct Generation {
    number: u64,
    version: String,
    kernel: String,
}

#[derive(Debug)]
struct SysState {
    generations: Vec<Generation>,
    current: usize,
    booted: Generation,
    /// The world's boot count last seen (a change means the host rebooted).
    seen_boots: u32,
    boot_at: Instant,
    /// Uptime at `boot_at` (the sim starts with hosts that have been up for a while).
    base_uptime: f64,
}

/// One simulated host's SSH side.
struct SimHost {
    id: String,
    hostname: String,
    role: Role,
    index: usize,
    ip: Ipv4Addr,
    key: PrivateKey,
    sys: Mutex<SysState>,
    quirks: Mutex<Quirks>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_key() -> PrivateKey {
    use rand::RngCore as _;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// A Nix-store-looking hash (32 chars of Nix's base32 alphabet) derived from `s`.
fn store_hash(s: &str) -> String {
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

const VERSIONS: [&str; 3] = [
    "25.05.20251102.a1b2c3d",
    "25.05.20251119.e4f5a6b",
    "25.05.20251124.c7d8e9f",
];
const KERNELS: [&str; 3] = ["6.12.55", "6.12.58", "6.12.60"];

impl SimHost {
    fn system_path(&self, g: &Generation) -> String {
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
    fn sync(&self, world: &World) -> MutexGuard<'_, SysState> {
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

    fn current_path(&self, world: &World) -> String {
        let s = self.sync(world);
        self.system_path(&s.generations[s.current])
    }

    fn facts(&self, world: &World) -> HostFacts {
        let reboot_flag = world.host(&self.hostname).is_some_and(|h| h.reboot_needed);
        let quirks = lock(&self.quirks).clone();
        let s = self.sync(world);
        let current = s.generations[s.current].clone();
        // The `reboot-needed` scenario: the host booted an older kernel than its current one.
        let booted = if reboot_flag && s.booted.kernel == current.kernel {
            Generation {
                number: current.number.saturating_sub(1),
                version: VERSIONS[0].into(),
                kernel: "6.12.41".into(),
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
        let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(20);
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
            load: Some([0.21 + i * 0.07, 0.18 + i * 0.05, 0.15 + i * 0.04]),
            root_fs_used_pct: Some(31.0 + (self.index % 7) as f64 * 4.0),
            failed_units: Some(quirks.failed_units.clone()),
            k3s_state: Some("active".into()),
            upgrade_last_result: Some("success".into()),
            upgrade_last_run: Some(last.strftime("%a %Y-%m-%d %H:%M:%S UTC").to_string()),
            upgrade_next_run: Some(tomorrow.to_string()),
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
                    detail: String::new(),
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
        f.compute_reboot_needed();
        f
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

/// Generate the keys, write `dir/ssh/{id_ed25519,id_ed25519.pub,known_hosts}`, and serve every
/// host of the world on one port (each on its own loopback address) until `stop`.
pub async fn start(world: Arc<World>, stop: CancellationToken, dir: &Path) -> Result<SshFace> {
    let client = random_key();
    let client_pub = client.public_key().clone();
    let hosts: Vec<Arc<SimHost>> = world
        .inventory
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            // Installed: the last auto-upgrade's generation, and the one before it (same
            // kernel), so a rollback has somewhere to go.
            let number = 40 + (i as u64 % 7);
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
            let boots = world.host(&h.hostname).map(|s| s.boots).unwrap_or(0);
            Arc::new(SimHost {
                id: h.id.clone(),
                hostname: h.hostname.clone(),
                role: h.role,
                index: i,
                ip: h.ip,
                key: random_key(),
                sys: Mutex::new(SysState {
                    generations: vec![older, first.clone()],
                    current: 1,
                    booted: first,
                    seen_boots: boots,
                    boot_at: Instant::now(),
                    base_uptime: 3.0 * 86_400.0 + i as f64 * 3_719.0,
                }),
                quirks: Mutex::new(Quirks::default()),
            })
        })
        .collect();

    // One port for all hosts: take a free one on the first address, then the same on the
    // others (retry with another port when one is taken).
    let mut bound = None;
    for _ in 0..20 {
        match bind_all(&hosts, 0).await {
            Ok(b) => {
                bound = Some(b);
                break;
            }
            Err(_) => continue,
        }
    }
    let (port, listeners) = bound
        .ok_or_else(|| eyre!("cannot find one free port on every simulated host's address"))?;

    let ssh_dir = dir.join("ssh");
    std::fs::create_dir_all(&ssh_dir)
        .wrap_err_with(|| format!("cannot create {}", ssh_dir.display()))?;
    let identity_file = ssh_dir.join("id_ed25519");
    let private = client
        .to_openssh(LineEnding::LF)
        .map_err(|e| eyre!("cannot encode the client key: {e}"))?;
    super::write_file(&identity_file, &private, true)?;
    let public = client_pub
        .to_openssh()
        .map_err(|e| eyre!("cannot encode the client key: {e}"))?;
    super::write_file(
        &ssh_dir.join("id_ed25519.pub"),
        &format!("{public} homeinfra-sim\n"),
        false,
    )?;
    let mut known = String::new();
    for h in &hosts {
        let k = h
            .key
            .public_key()
            .to_openssh()
            .map_err(|e| eyre!("cannot encode a host key: {e}"))?;
        known.push_str(&format!("[{}]:{port} {k}\n", h.ip));
    }
    let known_hosts = ssh_dir.join("known_hosts");
    super::write_file(&known_hosts, &known, false)?;

    // One watcher follows every host's reachability (one lock of the world per tick) and
    // tells each host's server when it changes.
    let mut senders = Vec::new();
    for (h, listener) in hosts.iter().zip(listeners) {
        let (tx, rx) = tokio::sync::watch::channel(reachable(&world, &h.hostname));
        senders.push((h.hostname.clone(), tx));
        tokio::spawn(serve_host(
            world.clone(),
            h.clone(),
            client_pub.clone(),
            port,
            Some(listener),
            rx,
            stop.clone(),
        ));
    }
    tokio::spawn(watch_hosts(world.clone(), senders, stop.clone()));
    Ok(SshFace {
        port,
        identity_file,
        known_hosts,
        hosts,
    })
}

fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), port))?;
    socket.listen(128)
}

async fn bind_all(
    hosts: &[Arc<SimHost>],
    port: u16,
) -> std::io::Result<(u16, Vec<tokio::net::TcpListener>)> {
    let mut port = port;
    let mut out = Vec::new();
    for h in hosts {
        let l = bind(h.ip, port)?;
        if port == 0 {
            port = l.local_addr()?.port();
        }
        out.push(l);
    }
    Ok((port, out))
}

fn is_reachable(h: &super::world::HostState) -> bool {
    h.up && !h.unreachable && !h.rebooting
}

fn reachable(world: &World, host: &str) -> bool {
    world.host(host).is_some_and(|h| is_reachable(&h))
}

async fn watch_hosts(
    world: Arc<World>,
    senders: Vec<(String, tokio::sync::watch::Sender<bool>)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let states: HashMap<String, bool> = world
            .hosts()
            .iter()
            .map(|h| (h.hostname.clone(), is_reachable(h)))
            .collect();
        for (name, tx) in &senders {
            let now = states.get(name).copied().unwrap_or(false);
            tx.send_if_modified(|v| {
                let changed = *v != now;
                *v = now;
                changed
            });
        }
    }
}

/// Serve one host: listen while it is up, close the listener (connections refused) and drop
/// its connections while it is down.
async fn serve_host(
    world: Arc<World>,
    host: Arc<SimHost>,
    client: PublicKey,
    port: u16,
    mut listener: Option<tokio::net::TcpListener>,
    mut up: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let config = Arc::new(server::Config {
        keys: vec![host.key.clone()],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(20),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        ..Default::default()
    });
    loop {
        // Down: no listener until the host is back.
        while !*up.borrow_and_update() {
            listener = None;
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = up.changed() => if changed.is_err() { return },
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(host.ip, port) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("sim ssh: cannot listen on {}:{port}: {e}", host.ip);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    continue;
                }
            },
        };
        let down = stop.child_token();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                accepted = l.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let handler = Conn {
                        world: world.clone(),
                        host: host.clone(),
                        client: client.clone(),
                        pending: HashMap::new(),
                    };
                    let config = config.clone();
                    let down = down.clone();
                    tokio::spawn(async move {
                        let Ok(running) = server::run_stream(config, stream, handler).await else {
                            return;
                        };
                        let handle = running.handle();
                        tokio::select! {
                            _ = running => {}
                            _ = down.cancelled() => {
                                let _ = handle
                                    .disconnect(
                                        russh::Disconnect::ByApplication,
                                        "the host went down".into(),
                                        String::new(),
                                    )
                                    .await;
                            }
                        }
                    });
                }
                changed = up.changed() => {
                    if changed.is_err() {
                        down.cancel();
                        return;
                    }
                    if !*up.borrow_and_update() {
                        down.cancel();
                        break;
                    }
                }
            }
        }
        drop(l);
    }
}

/// One client connection.
struct Conn {
    world: Arc<World>,
    host: Arc<SimHost>,
    client: PublicKey,
    /// `sh -s` channels waiting for the end of their stdin.
    pending: HashMap<ChannelId, ()>,
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if offer.public_key.key_data() == self.client.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if key.public_key.key_data() == self.client.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !reachable(&self.world, &self.host.hostname) {
            return Err(russh::Error::Disconnect);
        }
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Between the world taking the host down and the listener noticing: already gone.
        if !reachable(&self.world, &self.host.hostname) {
            return Err(russh::Error::Disconnect);
        }
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        let cmd = parse(&command);
        if cmd == Command::Facts {
            self.pending.insert(channel, ());
            return Ok(());
        }
        let handle = session.handle();
        let world = self.world.clone();
        let host = self.host.clone();
        tokio::spawn(async move { run(world, host, handle, channel, cmd, command).await });
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.pending.remove(&channel).is_some() {
            let handle = session.handle();
            let world = self.world.clone();
            let host = self.host.clone();
            tokio::spawn(async move {
                run(world, host, handle, channel, Command::Facts, String::new()).await
            });
        }
        Ok(())
    }
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Facts,
    Switch,
    Rollback,
    /// `nixos-rebuild` with another action.
    OtherRebuild(String),
    Reboot,
    Readlink(String),
    NixosVersion,
    Hostname,
    True,
    /// The upgrade engine's probes (see `operations::upgrade::live`).
    BootState,
    AutoUpgrade,
    K3sVersion,
    Unknown,
}

fn parse(command: &str) -> Command {
    use crate::operations::upgrade::live::{AUTO_UPGRADE_COMMAND, BOOT_STATE_COMMAND};
    let trimmed = command.trim();
    let bare = trimmed.strip_prefix("sudo -n ").unwrap_or(trimmed);
    if bare == BOOT_STATE_COMMAND {
        return Command::BootState;
    }
    if bare == AUTO_UPGRADE_COMMAND {
        return Command::AutoUpgrade;
    }
    if bare.starts_with("k3s --version") {
        return Command::K3sVersion;
    }
    let mut words: Vec<&str> = command.split_whitespace().collect();
    // `sudo`, `sudo -n`, `env VAR=... `: the simulated host runs everything as root.
    while let Some(first) = words.first() {
        match *first {
            "sudo" | "exec" => {
                words.remove(0);
                while words.first().is_some_and(|w| w.starts_with('-')) {
                    words.remove(0);
                }
            }
            w if w.contains('=') && !w.starts_with('-') => {
                words.remove(0);
            }
            _ => break,
        }
    }
    let Some(&prog) = words.first() else {
        return Command::True;
    };
    let prog = prog.rsplit('/').next().unwrap_or(prog);
    let args = &words[1..];
    match prog {
        "sh" if args == ["-s"] => Command::Facts,
        "nixos-rebuild" => {
            const ACTIONS: [&str; 9] = [
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
            let action = args.iter().find(|a| ACTIONS.contains(a));
            match action {
                Some(&"switch") if args.contains(&"--rollback") => Command::Rollback,
                Some(&"switch") => Command::Switch,
                other => Command::OtherRebuild(other.map(|s| s.to_string()).unwrap_or_default()),
            }
        }
        "systemctl" if args.first() == Some(&"reboot") => Command::Reboot,
        "reboot" => Command::Reboot,
        "shutdown" if args.contains(&"-r") => Command::Reboot,
        "readlink" => match args.iter().rfind(|a| !a.starts_with('-')) {
            Some(p) => Command::Readlink(p.to_string()),
            None => Command::Unknown,
        },
        "nixos-version" => Command::NixosVersion,
        "hostname" => Command::Hostname,
        "true" => Command::True,
        _ => Command::Unknown,
    }
}

/// Run one command on `host`, write its output to the channel, then its exit status.
async fn run(
    world: Arc<World>,
    host: Arc<SimHost>,
    handle: server::Handle,
    channel: ChannelId,
    cmd: Command,
    line: String,
) {
    let out = |text: String| {
        let handle = handle.clone();
        async move {
            let _ = handle.data(channel, text.into_bytes()).await;
        }
    };
    let err = |text: String| {
        let handle = handle.clone();
        async move {
            let _ = handle.extended_data(channel, 1, text.into_bytes()).await;
        }
    };
    let mut reboot_after = false;
    let status = match cmd {
        Command::Facts => {
            let f = host.facts(&world);
            out(crate::sources::ssh::facts::render(&f)).await;
            0
        }
        Command::True => 0,
        Command::BootState => {
            let f = host.facts(&world);
            let mut text = String::new();
            let files = |b: &crate::model::host::BootFiles| {
                [
                    ("kernel", b.kernel.clone()),
                    ("initrd", b.initrd.clone()),
                    ("kernel-modules", b.kernel_modules.clone()),
                ]
            };
            for ((name, booted), (_, current)) in files(&f.booted_boot)
                .into_iter()
                .zip(files(&f.current_boot))
            {
                text.push_str(&format!("booted_{name}={}\n", booted.unwrap_or_default()));
                text.push_str(&format!("current_{name}={}\n", current.unwrap_or_default()));
            }
            text.push_str(&format!("booted={}\n", f.booted_system.unwrap_or_default()));
            text.push_str(&format!(
                "current={}\n",
                f.current_system.unwrap_or_default()
            ));
            out(text).await;
            0
        }
        Command::AutoUpgrade => {
            // The simulated autoUpgrade timer is idle and fires tomorrow night.
            let next = jiff::Timestamp::now().as_second() + 20 * 3600;
            out(format!("active=inactive\nload=loaded\nnext=@{next}\n")).await;
            0
        }
        Command::K3sVersion => {
            out("k3s version v1.31.4+k3s1 (a1b2c3d4)\ngo version go1.22.9\n".into()).await;
            0
        }
        Command::Hostname => {
            out(format!("{}\n", host.hostname)).await;
            0
        }
        Command::NixosVersion => {
            let v = {
                let s = host.sync(&world);
                s.generations[s.current].version.clone()
            };
            out(format!("{v}\n")).await;
            0
        }
        Command::Readlink(path) => {
            let p = path.trim_end_matches('/');
            let answer = match p {
                "/run/current-system" => Some(host.current_path(&world)),
                "/run/booted-system" => host.facts(&world).booted_system,
                "/nix/var/nix/profiles/system" => {
                    let s = host.sync(&world);
                    Some(format!("system-{}-link", s.generations[s.current].number))
                }
                _ => None,
            };
            match answer {
                Some(a) => {
                    out(format!("{a}\n")).await;
                    0
                }
                None => 1,
            }
        }
        Command::Switch => switch(&world, &host, &out, &err).await,
        Command::Rollback => rollback(&world, &host, &err).await,
        Command::OtherRebuild(action) => {
            err(format!(
                "nixos-rebuild {action}: not supported by the simulator (switch and switch --rollback are)\n"
            ))
            .await;
            1
        }
        Command::Reboot => {
            if world.host(&host.hostname).is_some_and(|h| h.rebooting) {
                err("Failed to reboot: a reboot is already in progress\n".into()).await;
                1
            } else {
                reboot_after = true;
                0
            }
        }
        Command::Unknown => {
            let name = line.split_whitespace().next().unwrap_or("").to_string();
            err(format!("sh: 1: {name}: not found\n")).await;
            127
        }
    };
    let _ = handle.exit_status_request(channel, status).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
    if reboot_after {
        // Give the exit status a moment to leave, as sshd does before systemd stops it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Err(e) = world.reboot(&host.hostname) {
            tracing::warn!("sim ssh: reboot of {} failed: {}", host.hostname, e.message);
        }
    }
}

async fn switch<O, E, FO, FE>(world: &World, host: &SimHost, out: &O, err: &E) -> u32
where
    O: Fn(String) -> FO,
    E: Fn(String) -> FE,
    FO: std::future::Future<Output = ()>,
    FE: std::future::Future<Output = ()>,
{
    let (next, path) = {
        let s = host.sync(world);
        let number = s.generations.iter().map(|g| g.number).max().unwrap_or(0) + 1;
        // The flake's system: a newer release with a newer kernel than the one installed at
        // start (so a host's first switch needs a reboot, a second one does not).
        let version = VERSIONS[2].to_string();
        let kernel = KERNELS[1].to_string();
        let g = Generation {
            number,
            version,
            kernel,
        };
        let path = host.system_path(&g);
        (g, path)
    };
    let step = world.delay(0.25);
    let drv = format!(
        "/nix/store/{}-nixos-system-{}-{}.drv",
        store_hash(&path),
        host.hostname,
        next.version
    );
    err("building the system configuration...\n".into()).await;
    tokio::time::sleep(step).await;
    err(format!(
        "these 2 derivations will be built:\n  {drv}\n  /nix/store/{}-etc.drv\n",
        store_hash(&drv)
    ))
    .await;
    tokio::time::sleep(step).await;
    err(format!("building '{drv}'...\n")).await;
    tokio::time::sleep(step).await;
    if lock(&host.quirks).switch_fails {
        err(format!(
            "error: builder for '{drv}' failed with exit code 1;\n       last 1 log lines:\n       > error: collision between two packages in the system path\n"
        ))
        .await;
        return 1;
    }
    err("activating the configuration...\nsetting up /etc...\n".into()).await;
    tokio::time::sleep(step).await;
    {
        let mut s = host.sync(world);
        s.generations.push(next.clone());
        s.current = s.generations.len() - 1;
        let differs = s.booted.kernel != next.kernel;
        drop(s);
        if differs {
            world.set_reboot_needed(&host.hostname, true);
        }
    }
    err(format!(
        "reloading user units for {SSH_USER}...\nrestarting sysinit-reactivation.target\n"
    ))
    .await;
    tokio::time::sleep(step).await;
    out(format!("{path}\n")).await;
    0
}

async fn rollback<E, FE>(world: &World, host: &SimHost, err: &E) -> u32
where
    E: Fn(String) -> FE,
    FE: std::future::Future<Output = ()>,
{
    let back = {
        let mut s = host.sync(world);
        if s.current == 0 {
            None
        } else {
            let from = s.generations[s.current].number;
            s.current -= 1;
            let g = s.generations[s.current].clone();
            let differs = s.booted.kernel != g.kernel;
            Some((from, g, differs))
        }
    };
    let Some((from, g, differs)) = back else {
        err("error: no previous generation to roll back to\n".into()).await;
        return 1;
    };
    err(format!(
        "switching profile from version {from} to {}\n",
        g.number
    ))
    .await;
    tokio::time::sleep(world.delay(0.25)).await;
    err("activating the configuration...\nsetting up /etc...\n".into()).await;
    tokio::time::sleep(world.delay(0.25)).await;
    world.set_reboot_needed(&host.hostname, differs);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("sh -s"), Command::Facts);
        assert_eq!(
            parse("sudo -n nixos-rebuild switch --flake github:u/r#node1"),
            Command::Switch
        );
        assert_eq!(parse("nixos-rebuild switch --rollback"), Command::Rollback);
        assert_eq!(
            parse("sudo nixos-rebuild --use-remote-sudo switch"),
            Command::Switch
        );
        assert_eq!(
            parse("nixos-rebuild boot"),
            Command::OtherRebuild("boot".into())
        );
        assert_eq!(parse("sudo systemctl reboot"), Command::Reboot);
        assert_eq!(parse("sudo -n reboot"), Command::Reboot);
        assert_eq!(
            parse("readlink -f /run/current-system"),
            Command::Readlink("/run/current-system".into())
        );
        assert_eq!(
            parse("nixos-rebuild --flake .#node1 switch --use-remote-sudo"),
            Command::Switch
        );
        assert_eq!(parse("frobnicate --now"), Command::Unknown);
    }

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
