//! The drift mode: the deployed system of a host vs. what the flake builds now, the deployed
//! closure fetched into the local store (over SSH with `nix copy --from`) when it is not there.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use color_eyre::eyre::{Result, WrapErr, eyre};
use tokio_util::sync::CancellationToken;

use super::build::build_toplevel;
use super::diff_paths;
use super::nix::{self, Nix, Reporter};
use crate::model::closure::ClosureDiff;
use crate::probes::words::{UnsafeWord, Word};
use crate::sources::ssh::ssh_config::{self, LocalEnv, SshConfigFile};

/// Gets a deployed system's closure into the local store, so that it can be diffed here.
///
/// Drift mode fetches the deployed closure (`nix copy --from ssh://HOST`) rather than running
/// the diff on the host. Why: `nix copy --from` reads the host's store through
/// `nix-store --serve`, which any SSH user may run and which writes nothing on the host;
/// diffing on the host instead would mean copying the (unsigned, locally built) target
/// closure *to* the host, which needs a trusted nix user there, fills the host's disk, and
/// relies on the host's nix version for the output format and `nix-command`. Usually only the
/// paths that drifted have to be transferred; everything else is already in the local store.
/// The lead connects the SSH client by implementing this trait (or uses [`NixCopyFromSsh`]).
pub trait ClosureSource: Send + Sync {
    /// For progress messages: "node1 (ssh://operator@node1)".
    fn describe(&self) -> String;

    /// Make `store_path` and its closure valid in the local store.
    fn fetch<'a>(
        &'a self,
        nix: &'a Nix,
        store_path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

/// The deployed closure is already local (e.g. when running on the host itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalStore;

impl ClosureSource for LocalStore {
    fn describe(&self) -> String {
        "the local store".into()
    }

    fn fetch<'a>(
        &'a self,
        _nix: &'a Nix,
        store_path: &'a str,
        _reporter: &'a Reporter,
        _cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if Path::new(store_path).exists() {
                Ok(())
            } else {
                Err(eyre!("{store_path} is not in the local store"))
            }
        })
    }
}

/// How to reach a host with OpenSSH (nix copy runs `ssh` itself): the same address, user,
/// port, keys and known_hosts files as the app's own SSH client, host keys checked strictly
/// (`StrictHostKeyChecking=yes`: an unknown or changed key stops the fetch), never a prompt.
/// The address and user are checked words (no shell metacharacters, no leading `-`): they
/// reach a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    /// The known_hosts files, in the order the app's client checks them.
    pub known_hosts: Vec<PathBuf>,
}

impl SshTarget {
    /// From the inventory and the `[ssh]` config (and `~/.ssh/config`, as the app's client
    /// reads it). An address or user a shell would interpret is refused, naming the field.
    pub fn for_host(
        host: &crate::inventory::Host,
        config: &crate::config::SshConfig,
    ) -> Result<Self, UnsafeWord> {
        let env = LocalEnv::from_process(config);
        let file = SshConfigFile::load(&env).unwrap_or_default();
        let t = ssh_config::resolve(config, host, &file, &env);
        let address = Word::address(&host.id, "sshHost (or ip)", &t.host)?;
        let user = Word::name(&host.id, "sshUser", &t.user)?;
        Ok(Self {
            host: address.as_str().to_string(),
            user: Some(user.as_str().to_string()),
            port: Some(t.port),
            identity_files: t.identity_files,
            known_hosts: t.known_hosts,
        })
    }

    /// The address and user checked again (a target built by hand): a value a shell would
    /// interpret never reaches `ssh` or `nix`.
    fn checked(&self) -> Result<()> {
        Word::address("ssh target", "host", &self.host).map_err(|e| eyre!("{e}"))?;
        if let Some(u) = &self.user {
            Word::name("ssh target", "user", u).map_err(|e| eyre!("{e}"))?;
        }
        Ok(())
    }

    /// `ssh://user@host` for `nix copy --from`.
    pub fn store_uri(&self) -> String {
        match &self.user {
            Some(u) => format!("ssh://{u}@{}", self.host),
            None => format!("ssh://{}", self.host),
        }
    }

    /// Every known_hosts file that exists, in order, gathered into one private temporary
    /// file (OpenSSH takes one `UserKnownHostsFile` through `NIX_SSHOPTS`, which nix splits
    /// on blanks).
    pub fn known_hosts_file(&self) -> Result<tempfile::NamedTempFile> {
        use std::io::Write as _;
        let mut f = tempfile::Builder::new()
            .prefix("homeinfra-known-hosts-")
            .tempfile()
            .wrap_err("cannot create a temporary known_hosts file")?;
        for p in &self.known_hosts {
            match std::fs::read(p) {
                Ok(bytes) => {
                    f.write_all(&bytes)
                        .and_then(|_| f.write_all(b"\n"))
                        .wrap_err("cannot write the temporary known_hosts file")?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot read {}", p.display()));
                }
            }
        }
        f.flush()
            .wrap_err("cannot write the temporary known_hosts file")?;
        Ok(f)
    }

    /// OpenSSH options (also for `NIX_SSHOPTS`): no prompts, strict host key checking against
    /// `known_hosts` (see [`SshTarget::known_hosts_file`]), port, keys.
    pub fn ssh_options(&self, known_hosts: &Path) -> Vec<String> {
        let mut o = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            "-o".to_string(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
        ];
        if let Some(p) = self.port {
            o.extend(["-p".into(), p.to_string()]);
        }
        for id in &self.identity_files {
            if id.exists() {
                o.extend(["-i".into(), id.display().to_string()]);
            }
        }
        o
    }

    /// `user@host` for `ssh`.
    fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// `nix copy --from ssh://HOST PATH`: the host's store read over OpenSSH (strict host keys).
/// Signatures are checked unless `trust_host_store` (`[nix] trust_host_store = true`, for
/// hosts whose locally built, unsigned systems the operator trusts: the copy is only diffed,
/// never run).
#[derive(Debug, Clone)]
pub struct NixCopyFromSsh {
    pub target: SshTarget,
    pub trust_host_store: bool,
}

impl ClosureSource for NixCopyFromSsh {
    fn describe(&self) -> String {
        self.target.store_uri()
    }

    fn fetch<'a>(
        &'a self,
        nix: &'a Nix,
        store_path: &'a str,
        reporter: &'a Reporter,
        cancel: &'a CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            self.target.checked()?;
            if !store_path.starts_with("/nix/store/") || store_path.contains(char::is_whitespace) {
                return Err(eyre!("{store_path:?} is not a store path"));
            }
            let known = self.target.known_hosts_file()?;
            let nix = nix.clone().with_env(
                "NIX_SSHOPTS",
                self.target.ssh_options(known.path()).join(" "),
            );
            let uri = self.target.store_uri();
            let mut args = vec!["copy", "--from", uri.as_str()];
            if self.trust_host_store {
                args.push("--no-check-sigs");
            }
            args.push(store_path);
            nix.run(args, reporter, cancel)
                .await
                .map(|_| ())
                .wrap_err_with(|| {
                    if self.trust_host_store {
                        format!("fetching the deployed closure from {uri}")
                    } else {
                        format!(
                            "fetching the deployed closure from {uri} (signatures checked: set [nix] trust_host_store = true for hosts whose unsigned store you trust)"
                        )
                    }
                })
        })
    }
}

/// The deployed system of a host over OpenSSH: `readlink -f /run/current-system`.
/// (The dashboard gets it from its own SSH client; this is for the headless command.)
pub async fn deployed_system_via_ssh(
    target: &SshTarget,
    link: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    target.checked()?;
    let known = target.known_hosts_file()?;
    let mut argv: Vec<std::ffi::OsString> = target
        .ssh_options(known.path())
        .into_iter()
        .map(Into::into)
        .collect();
    argv.extend([
        "-o".into(),
        "ConnectTimeout=10".into(),
        target.destination().into(),
        "--".into(),
        "readlink".into(),
        "-f".into(),
        link.into(),
    ]);
    let ssh = Nix::new("ssh");
    let shown = format!("ssh {} readlink -f {link}", target.destination());
    let out = nix::run_program(&ssh, &argv, &shown, reporter, cancel).await?;
    let path = out.stdout.trim();
    if !path.starts_with("/nix/store/") {
        return Err(eyre!(
            "{link} on {} is not a store path: {path:?}",
            target.host
        ));
    }
    Ok(path.to_string())
}

/// Drift: the deployed system (`deployed`, e.g. the host's `/run/current-system`) vs. what
/// `flake` builds for `host` now. The deployed closure is fetched through `source` when it is
/// not in the local store.
pub async fn drift_diff(
    nix: &Nix,
    deployed: &str,
    source: &dyn ClosureSource,
    flake: &str,
    host: &str,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<ClosureDiff> {
    // A store path that exists is valid, and so is its closure (nix registers a path only
    // after its references). `nix path-info` would try to substitute a missing path instead.
    let present = tokio::fs::symlink_metadata(deployed).await.is_ok();
    if !present {
        reporter
            .step(format!(
                "fetching the deployed system {deployed} from {}",
                source.describe()
            ))
            .await;
        source.fetch(nix, deployed, reporter, cancel).await?;
    }
    reporter
        .step(format!("building the target system of {host}"))
        .await;
    let target = build_toplevel(nix, flake, host, &[], reporter, cancel).await?;
    diff_paths(nix, deployed, &target, reporter, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_target_options() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "key").unwrap();
        let kh1 = dir.path().join("kh1");
        std::fs::write(&kh1, "[127.0.0.1]:2222 ssh-ed25519 AAAA1").unwrap();
        let kh2 = dir.path().join("kh2");
        std::fs::write(&kh2, "[127.0.0.2]:2222 ssh-ed25519 AAAA2\n").unwrap();
        let t = SshTarget {
            host: "127.0.0.1".into(),
            user: Some("operator".into()),
            port: Some(2222),
            identity_files: vec![key.clone(), dir.path().join("missing")],
            known_hosts: vec![kh1, dir.path().join("nope"), kh2],
        };
        assert_eq!(t.store_uri(), "ssh://operator@127.0.0.1");
        let known = t.known_hosts_file().unwrap();
        assert_eq!(
            std::fs::read_to_string(known.path()).unwrap(),
            "[127.0.0.1]:2222 ssh-ed25519 AAAA1\n[127.0.0.2]:2222 ssh-ed25519 AAAA2\n\n"
        );
        assert_eq!(
            t.ssh_options(known.path()).join(" "),
            format!(
                "-o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -p 2222 -i {}",
                known.path().display(),
                key.display()
            )
        );
    }

    #[test]
    fn unsafe_addresses_and_users_never_reach_a_command() {
        let mut h =
            crate::testing::host("instance_1", crate::inventory::Role::Agent, [127, 0, 0, 1]);
        h.ssh_host = Some("x.org -oProxyCommand=sh".into());
        let cfg = crate::config::SshConfig {
            use_ssh_config: false,
            ..Default::default()
        };
        let e = SshTarget::for_host(&h, &cfg).unwrap_err();
        assert_eq!(e.field, "sshHost (or ip)");
        h.ssh_host = None;
        h.ssh_user = Some("$(reboot)".into());
        assert_eq!(SshTarget::for_host(&h, &cfg).unwrap_err().field, "sshUser");
        h.ssh_user = Some("ops".into());
        let t = SshTarget::for_host(&h, &cfg).unwrap();
        assert_eq!(t.store_uri(), "ssh://ops@127.0.0.1");
        let by_hand = SshTarget {
            host: "h;reboot".into(),
            ..t
        };
        assert!(by_hand.checked().is_err());
    }
}
