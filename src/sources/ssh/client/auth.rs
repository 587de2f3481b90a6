//! Authentication: ssh-agent keys first (those of the configured identity files ahead, only
//! those with IdentitiesOnly), then the identity files themselves (asking for a passphrase
//! once when one is protected). Never passwords.

use std::path::PathBuf;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};

use super::connect::{ClientHandler, describe_russh};
use super::pool::Passphrases;
use super::{AgentSource, ClientSettings, SshError};
use crate::model::host::SshProblem;
use crate::sources::ssh::known_hosts;
use crate::sources::ssh::ssh_config::Target;

pub(super) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    settings: &ClientSettings,
    passphrases: &Passphrases,
) -> Result<(), SshError> {
    let mut locked: Vec<PathBuf> = Vec::new();
    let user = target.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // The server closed the connection before answering a key.
    let mut closed = false;

    // 1. ssh-agent.
    let agent = match &settings.agent {
        AgentSource::Disabled => None,
        AgentSource::Socket(p) => match AgentClient::connect_uds(p).await {
            Ok(a) => Some(a.dynamic()),
            Err(e) => {
                notes.push(format!("ssh-agent at {}: {e}", p.display()));
                None
            }
        },
        AgentSource::Env => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(p) if !p.is_empty() => match AgentClient::connect_uds(&p).await {
                Ok(a) => Some(a.dynamic()),
                Err(e) => {
                    notes.push(format!("ssh-agent ($SSH_AUTH_SOCK): {e}"));
                    None
                }
            },
            _ => None,
        },
    };
    if let Some(mut agent) = agent {
        match agent.request_identities().await {
            Ok(ids) => {
                // Agent keys that belong to the configured identity files go first (a server
                // stops after MaxAuthTries); with IdentitiesOnly, only those are tried.
                let wanted: Vec<PublicKey> = target
                    .identity_files
                    .iter()
                    .filter_map(|p| {
                        let mut pub_path = p.clone().into_os_string();
                        pub_path.push(".pub");
                        russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
                    })
                    .collect();
                let is_wanted = |k: &PublicKey| wanted.iter().any(|w| w.key_data() == k.key_data());
                let mut keys: Vec<PublicKey> = ids
                    .into_iter()
                    .filter_map(|id| match id {
                        AgentIdentity::PublicKey { key, .. } => Some(key),
                        _ => None,
                    })
                    .filter(|k| !target.identities_only || is_wanted(k))
                    .collect();
                keys.sort_by_key(|k| !is_wanted(k));
                for key in keys {
                    let hash = if key.algorithm().is_rsa() {
                        rsa_hash(handle).await
                    } else {
                        None
                    };
                    let fp = known_hosts::fingerprint(&key);
                    match handle
                        .authenticate_publickey_with(user.clone(), key, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(r) if ended(handle, &r) => {
                            closed = true;
                            break;
                        }
                        Ok(_) => tried.push(format!("agent key {fp}")),
                        Err(_) if handle.is_closed() => {
                            closed = true;
                            break;
                        }
                        Err(e) => notes.push(format!("agent key {fp}: {e}")),
                    }
                }
            }
            Err(e) => notes.push(format!("ssh-agent: cannot list keys: {e}")),
        }
    }

    // 2. Identity files.
    for path in &target.identity_files {
        if !path.is_file() {
            continue;
        }
        let pass = passphrases.lock().ok().and_then(|p| p.get(path).cloned());
        let key = match russh::keys::load_secret_key(path, pass.as_ref().map(|p| p.as_str())) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                notes.push(format!(
                    "{} is passphrase-protected: load it into ssh-agent first (ssh-add {}) or enter its passphrase",
                    path.display(),
                    path.display()
                ));
                locked.push(path.clone());
                continue;
            }
            Err(_) if pass.is_some() => {
                // Do not keep a passphrase that does not open the key.
                if let Ok(mut p) = passphrases.lock() {
                    p.remove(path);
                }
                notes.push(format!(
                    "cannot unlock {} with the passphrase given",
                    path.display()
                ));
                locked.push(path.clone());
                continue;
            }
            Err(e) => {
                notes.push(format!("cannot read key {}: {e}", path.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(handle).await
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(user.clone(), key).await {
            Ok(r) if r.success() => return Ok(()),
            Ok(r) if ended(handle, &r) => {
                closed = true;
                break;
            }
            Ok(_) => tried.push(path.display().to_string()),
            Err(_) if handle.is_closed() => {
                closed = true;
                break;
            }
            Err(e) => notes.push(format!("{}: {}", path.display(), describe_russh(&e))),
        }
    }

    if closed && tried.is_empty() {
        // No key was refused: the connection ended under us (the host going down, sshd
        // restarting), which is the host not answering, not a refusal.
        let mut msg = format!(
            "{} closed the connection during authentication before answering a key",
            target.display()
        );
        for n in &notes {
            msg.push_str("; ");
            msg.push_str(n);
        }
        return Err(SshError::new(SshProblem::Unreachable, msg));
    }
    if closed {
        notes.push(closed_during_auth());
    }
    let mut msg = format!("{} refused ", target.display());
    if tried.is_empty() {
        msg = format!(
            "{}: no usable key (no ssh-agent key, no readable identity file among {})",
            target.display(),
            target
                .identity_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        msg.push_str(&tried.join(", "));
    }
    if !notes.is_empty() {
        msg.push_str("; ");
        msg.push_str(&notes.join("; "));
    }
    let mut e = SshError::new(SshProblem::AuthFailed, msg);
    e.locked_keys = locked;
    Err(e)
}

fn closed_during_auth() -> String {
    "the server closed the connection during authentication (too many keys offered for its \
     MaxAuthTries? set IdentitiesOnly yes for this host in ~/.ssh/config)"
        .into()
}

/// Whether a key's answer is the session ending rather than the server's refusal: russh answers
/// an authentication whose connection closed as a failure with no method left.
fn ended(handle: &Handle<ClientHandler>, r: &russh::client::AuthResult) -> bool {
    handle.is_closed()
        || matches!(
            r,
            russh::client::AuthResult::Failure {
                remaining_methods,
                partial_success: false,
            } if remaining_methods.is_empty()
        )
}

async fn rsa_hash(h: &Handle<ClientHandler>) -> Option<russh::keys::HashAlg> {
    h.best_supported_rsa_hash().await.ok().flatten().flatten()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::server::{self, Auth};

    use super::super::{AgentSource, ClientSettings, SshPool};
    use crate::model::host::SshProblem;
    use crate::sources::ssh::ssh_config::Target;

    /// A server that either refuses every key or closes the connection when a key is offered
    /// (as a host going down in the middle of a handshake does).
    struct Server {
        close: bool,
    }

    impl server::Handler for Server {
        type Error = russh::Error;

        async fn auth_publickey_offered(
            &mut self,
            _user: &str,
            _offer: server::PublicKeyOffer<'_>,
        ) -> Result<Auth, Self::Error> {
            if self.close {
                Err(russh::Error::Disconnect)
            } else {
                Ok(Auth::reject())
            }
        }
    }

    async fn login(close: bool) -> super::SshError {
        let key = |seed: u8| PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        let (host_key, client_key) = (key(1), key(2));
        let config = std::sync::Arc::new(server::Config {
            keys: vec![host_key.clone()],
            auth_rejection_time: Duration::from_millis(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(running) = server::run_stream(config, stream, Server { close }).await
                    {
                        let _ = running.await;
                    }
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id_ed25519");
        std::fs::write(
            &id,
            client_key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let kh = dir.path().join("known_hosts");
        let line = format!(
            "[127.0.0.1]:{port} {}\n",
            host_key.public_key().to_openssh().unwrap()
        );
        std::fs::write(&kh, line).unwrap();
        let pool = SshPool::new(ClientSettings {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            keepalive: None,
            accept_new: false,
            agent: AgentSource::Disabled,
            max_concurrency: 1,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
            home: None,
        });
        let target = Target {
            id: "h1".into(),
            host: "127.0.0.1".into(),
            port,
            user: "operator".into(),
            identity_files: vec![id],
            identities_only: true,
            known_hosts: vec![kh.clone()],
            known_hosts_write: kh,
            jump: None,
        };
        pool.run(&target, "true").await.unwrap_err()
    }

    #[tokio::test]
    async fn a_connection_closed_before_any_key_is_answered_is_unreachable_not_refused() {
        let e = login(true).await;
        assert_eq!(e.problem, SshProblem::Unreachable, "{e}");
        assert!(e.to_string().contains("closed the connection"), "{e}");
        let e = login(false).await;
        assert_eq!(e.problem, SshProblem::AuthFailed, "{e}");
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
