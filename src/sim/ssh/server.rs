//! The hosts' SSH servers (russh): one listener per host on its loopback address, open while
//! the world has the host up and closed (its connections dropped) while it is down; public-key
//! authentication with the one generated client key; each exec request handed to `answer`
//! (an `sh -s` request once its stdin has ended).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio_util::sync::CancellationToken;

use super::answer::answer;
use super::host::SimHost;
use super::log::RequestLog;
use crate::sim::World;
use crate::sim::faults::Action;

/// How often a host's reachability is checked (listener opened/closed).
const POLL: Duration = Duration::from_millis(20);

/// The most stdin a `sh -s` request may send (the facts script is ~5 KiB).
const MAX_STDIN: usize = 1 << 20;

pub(super) fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), port))?;
    socket.listen(128)
}

pub(super) async fn bind_all(
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

fn is_reachable(h: &crate::sim::world::HostState) -> bool {
    h.up && !h.unreachable && !h.rebooting
}

pub(super) fn reachable(world: &World, host: &str) -> bool {
    world.host(host).is_some_and(|h| is_reachable(&h))
}

pub(super) async fn watch_hosts(
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

/// What one host's server answers with.
pub(super) struct Served {
    pub(super) world: Arc<World>,
    pub(super) host: Arc<SimHost>,
    pub(super) log: Arc<RequestLog>,
    /// The one client key accepted.
    pub(super) client: PublicKey,
    pub(super) port: u16,
}

/// Serve one host: listen while it is up, close the listener (connections refused) and drop
/// its connections while it is down.
pub(super) async fn serve_host(
    served: Served,
    mut listener: Option<tokio::net::TcpListener>,
    mut up: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let Served {
        world,
        host,
        log,
        client,
        port,
    } = served;
    let config_with = |key: russh::keys::PrivateKey| {
        Arc::new(server::Config {
            keys: vec![key],
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_millis(20),
            auth_rejection_time_initial: Some(Duration::from_millis(0)),
            inactivity_timeout: Some(Duration::from_secs(3600)),
            nodelay: true,
            ..Default::default()
        })
    };
    let config = config_with(host.key.clone());
    // `host-key-changed=HOST`: another key than the one `known_hosts` holds.
    let other_config = config_with(super::host::random_key());
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
                    // russh applies `Config::nodelay` only to sockets it accepts itself: with
                    // Nagle on, each reply's data waited for the client's delayed ACK (~40 ms a
                    // command).
                    let _ = stream.set_nodelay(true);
                    let handler = Conn {
                        world: world.clone(),
                        host: host.clone(),
                        log: log.clone(),
                        client: client.clone(),
                        pending: HashMap::new(),
                    };
                    let config = if world.face_faults.host_key_changed(&host.hostname) {
                        other_config.clone()
                    } else {
                        config.clone()
                    };
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
    log: Arc<RequestLog>,
    client: PublicKey,
    /// `sh -s` channels waiting for the end of their stdin: the command and the stdin so far.
    pending: HashMap<ChannelId, (String, Vec<u8>)>,
}

impl Conn {
    fn spawn_answer(
        &self,
        session: &Session,
        channel: ChannelId,
        command: String,
        stdin: Option<Vec<u8>>,
    ) {
        let handle = session.handle();
        let world = self.world.clone();
        let host = self.host.clone();
        let log = self.log.clone();
        let faults = world.face_faults.clone();
        tokio::spawn(async move {
            // `ssh-cut=HOST`: the command starts, prints a little, and the host is gone.
            if faults.ssh_cut(&host.hostname) {
                let _ = handle.data(channel, b"starting\n".to_vec()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "the host went away mid-command (simulated: ssh-cut)".into(),
                        String::new(),
                    )
                    .await;
                return;
            }
            // The SSH face's fault (`hang=ssh`, ...): see `crate::sim::faults`.
            match faults.action("ssh") {
                Action::Pass => {}
                Action::Hang => faults.hang("ssh").await,
                Action::Delay(d) => tokio::time::sleep(d).await,
                Action::Down => {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "the host went away (simulated: flap=ssh)".into(),
                            String::new(),
                        )
                        .await;
                    return;
                }
                Action::Fail => {
                    let err = "sh: 1: cannot fork: Resource temporarily unavailable (simulated: http-500=ssh)\n";
                    let _ = handle
                        .extended_data(channel, 1, err.as_bytes().to_vec())
                        .await;
                    let _ = handle.exit_status_request(channel, 254).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                    return;
                }
                Action::Garbage { .. } => {
                    let noise: Vec<u8> = (0..512u32)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                        .collect();
                    let _ = handle.data(channel, noise).await;
                    let _ = handle.exit_status_request(channel, 0).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                    return;
                }
            }
            answer(&world, &host, &log, &handle, channel, command, stdin).await
        });
    }
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
        if crate::probes::wants_stdin(&command) {
            self.pending.insert(channel, (command, Vec::new()));
            return Ok(());
        }
        self.spawn_answer(session, channel, command, None);
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some((_, stdin)) = self.pending.get_mut(&channel)
            && stdin.len() + data.len() <= MAX_STDIN
        {
            stdin.extend_from_slice(data);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some((command, stdin)) = self.pending.remove(&channel) {
            self.spawn_answer(session, channel, command, Some(stdin));
        }
        Ok(())
    }
}
