//! Connecting to a host: the TCP (or jump-host channel) handshake, the host key check against
//! the known_hosts files (with `accept_new`), `ProxyJump` chains, and the connect timeout.

use std::path::PathBuf;
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::auth::authenticate;
use super::pool::Passphrases;
use super::{ClientSettings, SshError};
use crate::model::host::SshProblem;
use crate::sources::ssh::known_hosts::{self, Verdict};
use crate::sources::ssh::ssh_config::{Target, display_path};

/// Why the handshake failed, when it was our decision.
#[derive(Debug)]
pub(super) enum HandlerError {
    Ssh(russh::Error),
    HostKey(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

pub(super) struct ClientHandler {
    target: Target,
    accept_new: bool,
    home: Option<PathBuf>,
}

impl ClientHandler {
    fn verify(&self, key: &PublicKey) -> Result<(), SshError> {
        let t = &self.target;
        let fp = known_hosts::fingerprint(key);
        let alg = key.algorithm().as_str().to_string();
        match known_hosts::check(&t.host, t.port, key, &t.known_hosts) {
            Verdict::Known { .. } => Ok(()),
            Verdict::Unknown { other_types }
                if self.accept_new
                    && other_types.is_empty()
                    && !t.known_hosts_write.starts_with("~") =>
            {
                known_hosts::append(&t.known_hosts_write, &t.host, t.port, key).map_err(|e| {
                    SshError::new(
                        SshProblem::Other,
                        format!(
                            "cannot record the host key of {} in {}: {e}",
                            known_hosts::lookup_name(&t.host, t.port),
                            t.known_hosts_write.display()
                        ),
                    )
                })?;
                tracing::warn!(
                    host = %t.host, port = t.port, fingerprint = %fp,
                    "accept_new: permanently added the host key to {}",
                    t.known_hosts_write.display()
                );
                Ok(())
            }
            Verdict::Unknown { other_types } => {
                let file = display_path(&t.known_hosts_write, self.home.as_deref());
                let other = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (keys of other types are known for it: {}; check before trusting)",
                        other_types.join(", ")
                    )
                };
                Err(SshError::new(
                    SshProblem::HostKeyUnknown,
                    format!(
                        "{} is not in any known_hosts file{other}; its {alg} key fingerprint is {fp}. \
                         After checking it, trust it with: ssh-keyscan -p {} {} >> {file} \
                         (or set [ssh] accept_new = true)",
                        known_hosts::lookup_name(&t.host, t.port),
                        t.port,
                        t.host,
                    ),
                ))
            }
            Verdict::Changed { path, line } => Err(SshError::new(
                SshProblem::HostKeyChanged,
                format!(
                    "REMOTE HOST IDENTIFICATION HAS CHANGED for {}! Someone could be eavesdropping \
                     on you right now (man-in-the-middle attack), or the host key was replaced. \
                     The {alg} key sent by the host has fingerprint {fp}; the offending key is in \
                     {}:{line}. Refusing to connect. If the change is expected, remove it with: \
                     ssh-keygen -R '{}' -f {}",
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display(),
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display(),
                ),
            )),
            Verdict::Revoked { path, line } => Err(SshError::new(
                SshProblem::HostKeyChanged,
                format!(
                    "the {alg} host key of {} ({fp}) is marked @revoked in {}:{line}. Refusing to connect.",
                    known_hosts::lookup_name(&t.host, t.port),
                    path.display()
                ),
            )),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.verify(key).map_err(HandlerError::HostKey)?;
                Ok(true)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(HandlerError::HostKey(SshError::new(
                SshProblem::Other,
                format!(
                    "{} offered a host certificate; only plain host keys are supported",
                    self.target.display()
                ),
            ))),
        }
    }
}

/// A session and the jump host sessions it runs through.
type Connected = (Handle<ClientHandler>, Vec<Handle<ClientHandler>>);

/// Connect to `target`, through its jump hosts (`ProxyJump`) when it has any: the session and
/// the jump sessions it runs through (outermost last).
pub(super) fn connect<'a>(
    target: &'a Target,
    settings: &'a ClientSettings,
    passphrases: &'a Passphrases,
) -> futures::future::BoxFuture<'a, Result<Connected, SshError>> {
    Box::pin(async move {
        let Some(jump) = target.jump.as_deref() else {
            return connect_one(target, settings, passphrases, None)
                .await
                .map(|h| (h, Vec::new()));
        };
        let (jump_handle, mut jumps) = connect(jump, settings, passphrases).await.map_err(|e| {
            let mut e2 = SshError::new(
                e.problem,
                format!(
                    "{} via jump host {}: {}",
                    target.display(),
                    jump.display(),
                    e.message
                ),
            );
            e2.locked_keys = e.locked_keys;
            e2
        })?;
        let channel = jump_handle
            .channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0)
            .await
            .map_err(|e| {
                SshError::new(
                    SshProblem::Unreachable,
                    format!(
                        "{}: jump host {} could not open a connection to it: {}",
                        target.display(),
                        jump.display(),
                        describe_russh(&e)
                    ),
                )
            })?;
        let handle =
            connect_one(target, settings, passphrases, Some(channel.into_stream())).await?;
        jumps.push(jump_handle);
        Ok((handle, jumps))
    })
}

/// Handshake, host key check and authentication with one host, over TCP or over `stream`
/// (a channel through a jump host), within the connect timeout.
async fn connect_one(
    target: &Target,
    settings: &ClientSettings,
    passphrases: &Passphrases,
    stream: Option<russh::ChannelStream<client::Msg>>,
) -> Result<Handle<ClientHandler>, SshError> {
    let config = Arc::new(client::Config {
        preferred: preferred_for(target),
        keepalive_interval: settings.keepalive,
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let handler = ClientHandler {
        target: target.clone(),
        accept_new: settings.accept_new,
        home: settings.home.clone(),
    };
    let addr = (target.host.clone(), target.port);
    let connected = tokio::time::timeout(settings.connect_timeout, async {
        match stream {
            Some(s) => client::connect_stream(config, s, handler).await,
            None => client::connect(config, addr, handler).await,
        }
    })
    .await;
    let mut handle = match connected {
        Err(_) => {
            return Err(SshError::new(
                SshProblem::Unreachable,
                format!(
                    "{}: no answer within {} s",
                    target.display(),
                    settings.connect_timeout.as_secs()
                ),
            ));
        }
        Ok(Err(HandlerError::HostKey(e))) => return Err(e),
        Ok(Err(HandlerError::Ssh(e))) => {
            return Err(SshError::new(
                SshProblem::Unreachable,
                format!("{}: {}", target.display(), describe_russh(&e)),
            ));
        }
        Ok(Ok(h)) => h,
    };
    match tokio::time::timeout(
        settings.connect_timeout,
        authenticate(&mut handle, target, settings, passphrases),
    )
    .await
    {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SshError::new(
            SshProblem::Unreachable,
            format!(
                "{}: authentication did not finish within {} s",
                target.display(),
                settings.connect_timeout.as_secs()
            ),
        )),
    }
}

/// Offer the host key types already known for this host first (as OpenSSH does), so a host
/// recorded with only an RSA or ECDSA key is not refused for showing its ed25519 key.
fn preferred_for(target: &Target) -> russh::Preferred {
    let mut p = russh::Preferred::default();
    let known = known_hosts::known_algorithms(&target.host, target.port, &target.known_hosts);
    if known.is_empty() {
        return p;
    }
    let same = |a: &russh::keys::Algorithm, b: &russh::keys::Algorithm| {
        use russh::keys::Algorithm::Rsa;
        a == b || (matches!(a, Rsa { .. }) && matches!(b, Rsa { .. }))
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = p
        .key
        .iter()
        .cloned()
        .partition(|a| known.iter().any(|k| same(k, a)));
    first.extend(rest);
    p.key = std::borrow::Cow::Owned(first);
    p
}

pub(super) fn describe_russh(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::HUP => "the connection was closed".into(),
        other => other.to_string(),
    }
}
