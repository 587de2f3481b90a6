//! Where and how to reach one inventory host: the `[ssh]` config section, the host's
//! `sshHost`/`sshUser`/`sshPort`, and the operator's `~/.ssh/config` (parsed by `ssh2-config`).
//!
//! Precedence, most specific first: the inventory's per-host fields, then `~/.ssh/config`
//! (queried with `sshHost`, else the host's hostname, like `ssh <name>`), then `[ssh]`, then
//! OpenSSH's defaults. Without a `HostName`, the address is `sshHost`, else the inventory ip.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{Result, WrapErr, eyre};
use ssh2_config::{ParseRule, SshConfig as OpenSshConfig};

use crate::config::SshConfig;
use crate::inventory::Host;

/// Everything needed to connect to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The inventory host id (used in messages and as the pool key).
    pub id: String,
    /// The address to connect to.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent, in order (missing files are skipped).
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: of the agent's keys, use only those of `identity_files`.
    pub identities_only: bool,
    /// known_hosts files to check, in order.
    pub known_hosts: Vec<PathBuf>,
    /// Where a trusted-on-first-use key is appended, and what the hint names.
    pub known_hosts_write: PathBuf,
    /// `ProxyJump`: reach this host through that one (itself maybe through another).
    pub jump: Option<Box<Target>>,
}

impl Target {
    /// `user@host:port`.
    pub fn display(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// The local environment the resolution reads (injectable for tests).
#[derive(Debug, Clone, Default)]
pub struct LocalEnv {
    pub home: Option<PathBuf>,
    /// The `ssh_config` file to read, if any.
    pub ssh_config: Option<PathBuf>,
    /// `/etc/ssh/ssh_known_hosts`.
    pub global_known_hosts: Option<PathBuf>,
    /// The local user name (`$USER`), OpenSSH's default remote user.
    pub local_user: Option<String>,
}

impl LocalEnv {
    /// The real environment: `$HOME`, `~/.ssh/config` when `[ssh] use_ssh_config`, `$USER`.
    pub fn from_process(cfg: &SshConfig) -> Self {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let ssh_config = if cfg.use_ssh_config {
            home.as_ref().map(|h| h.join(".ssh").join("config"))
        } else {
            None
        };
        Self {
            home,
            ssh_config,
            global_known_hosts: Some(PathBuf::from("/etc/ssh/ssh_known_hosts")),
            local_user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        }
    }
}

/// The operator's parsed `~/.ssh/config` (empty when absent).
#[derive(Debug, Default)]
pub struct SshConfigFile {
    parsed: Option<OpenSshConfig>,
}

impl SshConfigFile {
    /// Read and parse `env.ssh_config`; a missing file is empty, a broken one an error.
    pub fn load(env: &LocalEnv) -> Result<Self> {
        let Some(path) = &env.ssh_config else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).wrap_err_with(|| format!("cannot read {}", path.display())),
        };
        let mut base = OpenSshConfig::default();
        if let Some(home) = &env.home {
            base = base.home_dir(home.clone());
        }
        let text = neutralize_match_blocks(&text);
        let parsed = base
            .parse(
                &mut BufReader::new(text.as_bytes()),
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map_err(|e| eyre!("{}: {e}", path.display()))?;
        Ok(Self {
            parsed: Some(parsed),
        })
    }

    /// Parse config text (tests).
    pub fn parse_str(text: &str, home: &Path) -> Result<Self> {
        let text = neutralize_match_blocks(text);
        let parsed = OpenSshConfig::default()
            .home_dir(home)
            .parse(
                &mut text.as_bytes(),
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map_err(|e| eyre!("ssh config: {e}"))?;
        Ok(Self {
            parsed: Some(parsed),
        })
    }
}

/// `Match` blocks are not supported by the parser, which would otherwise apply their options
/// to the `Host` block before them. Turn each into a `Host` block that matches no host, so
/// their options are ignored (a documented limitation) instead of misapplied.
fn neutralize_match_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        let keyword: String = t
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '=')
            .collect();
        if keyword.eq_ignore_ascii_case("match") {
            out.push_str("Host homeinfra-tui.unsupported-match-block.invalid");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Resolve how to reach `host`.
pub fn resolve(cfg: &SshConfig, host: &Host, file: &SshConfigFile, env: &LocalEnv) -> Target {
    let alias = host
        .ssh_host
        .clone()
        .unwrap_or_else(|| host.hostname.clone());
    let default_address = host.ssh_host.clone().unwrap_or_else(|| host.ip.to_string());
    resolve_name(
        cfg,
        &Name {
            id: host.id.clone(),
            alias,
            default_address,
            user: host.ssh_user.clone(),
            port: host.ssh_port,
        },
        file,
        env,
        0,
    )
}

/// What to resolve: an inventory host or a jump host.
struct Name {
    id: String,
    /// Looked up in `~/.ssh/config`.
    alias: String,
    /// The address when `~/.ssh/config` has no `HostName`.
    default_address: String,
    /// Overrides (inventory `sshUser`/`sshPort`, or `user@host:port` of a jump).
    user: Option<String>,
    port: Option<u16>,
}

/// Jump chains longer than this are cut (guards against `Host *` + `ProxyJump` loops).
const MAX_JUMPS: usize = 4;

fn resolve_name(
    cfg: &SshConfig,
    name: &Name,
    file: &SshConfigFile,
    env: &LocalEnv,
    depth: usize,
) -> Target {
    let alias = name.alias.clone();
    let params = file.parsed.as_ref().map(|c| c.query(&alias));
    let p = params.as_ref();

    let address = p
        .and_then(|p| p.host_name.clone())
        .map(|h| h.replace("%h", &alias))
        .unwrap_or_else(|| name.default_address.clone());
    let port = name
        .port
        .or_else(|| p.and_then(|p| p.port))
        .unwrap_or(cfg.port);
    let user = name
        .user
        .clone()
        .or_else(|| p.and_then(|p| p.user.clone()))
        .or_else(|| cfg.user.clone())
        .or_else(|| env.local_user.clone())
        .unwrap_or_else(|| "root".into());

    // ProxyJump a,b: connect to a, through it to b, through b to this host.
    let mut jump: Option<Box<Target>> = None;
    let hops = p.and_then(|p| p.proxy_jump.clone()).unwrap_or_default();
    if depth < MAX_JUMPS && !hops.iter().any(|h| h.eq_ignore_ascii_case("none")) {
        for hop in hops {
            let Some((hop_user, hop_host, hop_port)) = parse_hop(&hop) else {
                continue;
            };
            if hop_host == alias {
                continue;
            }
            let mut t = resolve_name(
                cfg,
                &Name {
                    id: format!("{} via {hop_host}", name.id),
                    alias: hop_host.clone(),
                    default_address: hop_host,
                    user: hop_user,
                    port: hop_port,
                },
                file,
                env,
                depth + 1,
            );
            if jump.is_some() {
                t.jump = jump.take();
            }
            jump = Some(Box::new(t));
        }
    }

    let expand = |s: &Path| expand_tilde(s, env.home.as_deref());
    let mut identity_files: Vec<PathBuf> = Vec::new();
    for f in p
        .and_then(|p| p.identity_file.clone())
        .unwrap_or_default()
        .iter()
        .chain(cfg.identity_files.iter())
    {
        let f = expand(f);
        if !identity_files.contains(&f) {
            identity_files.push(f);
        }
    }
    if identity_files.is_empty()
        && let Some(h) = &env.home
    {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            identity_files.push(h.join(".ssh").join(name));
        }
    }

    let user_files: Vec<PathBuf> = p
        .and_then(|p| {
            p.unsupported_fields
                .iter()
                .chain(p.ignored_fields.iter())
                .find(|(k, _)| k.eq_ignore_ascii_case("userknownhostsfile"))
                .map(|(_, v)| v.clone())
        })
        .map(|v| {
            v.iter()
                .flat_map(|s| s.split_whitespace())
                .filter(|s| !s.eq_ignore_ascii_case("none"))
                .map(|s| expand(Path::new(s)))
                .collect()
        })
        .unwrap_or_else(|| {
            env.home
                .iter()
                .flat_map(|h| {
                    [
                        h.join(".ssh").join("known_hosts"),
                        h.join(".ssh").join("known_hosts2"),
                    ]
                })
                .collect()
        });
    let mut known_hosts = user_files.clone();
    if let Some(g) = &env.global_known_hosts {
        known_hosts.push(g.clone());
    }
    if let Some(k) = &cfg.known_hosts {
        let k = expand(k);
        if !known_hosts.contains(&k) {
            known_hosts.push(k);
        }
    }
    let known_hosts_write = cfg
        .known_hosts
        .as_deref()
        .map(expand)
        .or_else(|| user_files.first().cloned())
        .unwrap_or_else(|| PathBuf::from("~/.ssh/known_hosts"));

    let identities_only = p
        .and_then(|p| {
            p.unsupported_fields
                .iter()
                .chain(p.ignored_fields.iter())
                .find(|(k, _)| k.eq_ignore_ascii_case("identitiesonly"))
                .map(|(_, v)| v.first().is_some_and(|v| v.eq_ignore_ascii_case("yes")))
        })
        .unwrap_or(false);

    Target {
        id: name.id.clone(),
        host: address,
        port,
        user,
        identity_files,
        identities_only,
        known_hosts,
        known_hosts_write,
        jump,
    }
}

/// `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`.
fn parse_hop(hop: &str) -> Option<(Option<String>, String, Option<u16>)> {
    let hop = hop.trim();
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let (user, rest) = match hop.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        _ => (None, hop),
    };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (rest.to_string(), None),
        }
    };
    (!host.is_empty()).then_some((user, host, port))
}

/// `~/x` → `$HOME/x`.
pub fn expand_tilde(p: &Path, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~"), home) {
        (Ok(rest), Some(h)) => h.join(rest),
        _ => p.to_path_buf(),
    }
}

/// Show a path with `$HOME` as `~` (for hints the user copies).
pub fn display_path(p: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| p.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;

    fn host(id: &str, hostname: &str) -> Host {
        Host {
            hostname: hostname.into(),
            ..crate::testing::host(id, Role::Server, [192, 0, 2, 11])
        }
    }

    fn env(home: &Path) -> LocalEnv {
        LocalEnv {
            home: Some(home.to_path_buf()),
            ssh_config: None,
            global_known_hosts: Some("/etc/ssh/ssh_known_hosts".into()),
            local_user: Some("alice".into()),
        }
    }

    const CONFIG: &str = "\
Host node1
    HostName 10.9.8.7
    User ops
    Port 2201
    IdentityFile ~/.ssh/id_node1
    IdentitiesOnly yes
    UserKnownHostsFile ~/.ssh/kh_lab /etc/lab_known_hosts

Host *.lan
    User lanuser

Host *
    IdentityFile ~/.ssh/id_default
    ServerAliveInterval 30
    SomeFutureOption yes
";

    #[test]
    fn defaults_without_ssh_config() {
        let home = Path::new("/home/alice");
        let t = resolve(
            &SshConfig::default(),
            &host("instance_1", "node1"),
            &SshConfigFile::default(),
            &env(home),
        );
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("192.0.2.11", 22, "alice")
        );
        assert_eq!(
            t.identity_files,
            vec![
                home.join(".ssh/id_ed25519"),
                home.join(".ssh/id_ecdsa"),
                home.join(".ssh/id_rsa")
            ]
        );
        assert_eq!(
            t.known_hosts,
            vec![
                home.join(".ssh/known_hosts"),
                home.join(".ssh/known_hosts2"),
                PathBuf::from("/etc/ssh/ssh_known_hosts")
            ]
        );
        assert_eq!(t.known_hosts_write, home.join(".ssh/known_hosts"));
        assert_eq!(t.display(), "alice@192.0.2.11:22");
        assert!(!t.identities_only);
    }

    #[test]
    fn ssh_config_host_block_applies() {
        let home = Path::new("/home/alice");
        let file = SshConfigFile::parse_str(CONFIG, home).unwrap();
        let cfg = SshConfig {
            user: Some("cfguser".into()),
            port: 2022,
            known_hosts: Some("~/extra_known_hosts".into()),
            identity_files: vec!["/keys/id_cfg".into()],
            ..Default::default()
        };
        let t = resolve(&cfg, &host("instance_1", "node1"), &file, &env(home));
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("10.9.8.7", 2201, "ops")
        );
        assert_eq!(
            t.identity_files,
            vec![
                home.join(".ssh/id_node1"),
                home.join(".ssh/id_default"),
                PathBuf::from("/keys/id_cfg")
            ]
        );
        assert_eq!(
            t.known_hosts,
            vec![
                home.join(".ssh/kh_lab"),
                PathBuf::from("/etc/lab_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                home.join("extra_known_hosts"),
            ]
        );
        assert_eq!(t.known_hosts_write, home.join("extra_known_hosts"));
        assert!(t.identities_only);

        // A host with no specific block: `[ssh]` user and port, the inventory ip.
        let t = resolve(&cfg, &host("instance_2", "node2"), &file, &env(home));
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("192.0.2.11", 2022, "cfguser")
        );
        // Wildcard block by sshHost.
        let mut h = host("instance_3", "node3");
        h.ssh_host = Some("node3.lan".into());
        let t = resolve(&cfg, &h, &file, &env(home));
        assert_eq!((t.host.as_str(), t.user.as_str()), ("node3.lan", "lanuser"));
    }

    #[test]
    fn match_blocks_are_ignored_not_misapplied() {
        let home = Path::new("/home/alice");
        let text = "Host node1\n  HostName 10.0.0.1\nMatch host node1 exec \"true\"\n  User fromMatch\n  Port 2999\nHost *\n  User star\n";
        let file = SshConfigFile::parse_str(text, home).unwrap();
        let t = resolve(
            &SshConfig::default(),
            &host("i1", "node1"),
            &file,
            &env(home),
        );
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("10.0.0.1", 22, "star")
        );
    }

    #[test]
    fn proxy_jump_chains() {
        let home = Path::new("/home/alice");
        let text = "Host node1\n  ProxyJump ops@bastion:2200,inner\nHost bastion\n  HostName 198.51.100.7\n  IdentityFile ~/.ssh/id_bastion\nHost inner\n  HostName 10.0.0.2\nHost *\n  ProxyJump none\n";
        let file = SshConfigFile::parse_str(text, home).unwrap();
        let t = resolve(
            &SshConfig::default(),
            &host("i1", "node1"),
            &file,
            &env(home),
        );
        let inner = t.jump.as_deref().expect("inner hop");
        assert_eq!((inner.host.as_str(), inner.port), ("10.0.0.2", 22));
        let bastion = inner.jump.as_deref().expect("bastion hop");
        assert_eq!(
            (bastion.host.as_str(), bastion.port, bastion.user.as_str()),
            ("198.51.100.7", 2200, "ops")
        );
        assert_eq!(bastion.identity_files[0], home.join(".ssh/id_bastion"));
        assert!(bastion.jump.is_none());
        assert_eq!(bastion.id, "i1 via bastion");
        // `ProxyJump none` and no config: direct.
        let t = resolve(
            &SshConfig::default(),
            &host("i2", "node2"),
            &file,
            &env(home),
        );
        assert!(t.jump.is_none());
        // A loop through `Host *` is cut.
        let file = SshConfigFile::parse_str("Host *\n  ProxyJump hop\n", home).unwrap();
        let t = resolve(
            &SshConfig::default(),
            &host("i3", "node3"),
            &file,
            &env(home),
        );
        let mut depth = 0;
        let mut cur = &t;
        while let Some(j) = cur.jump.as_deref() {
            depth += 1;
            cur = j;
        }
        assert!(depth <= MAX_JUMPS, "{depth}");
    }

    #[test]
    fn hops() {
        assert_eq!(parse_hop("h"), Some((None, "h".into(), None)));
        assert_eq!(
            parse_hop("u@h:2"),
            Some((Some("u".into()), "h".into(), Some(2)))
        );
        assert_eq!(
            parse_hop("ssh://u@[::1]:22"),
            Some((Some("u".into()), "::1".into(), Some(22)))
        );
        assert_eq!(parse_hop("[::1]"), Some((None, "::1".into(), None)));
        assert_eq!(parse_hop("h:port"), None);
        assert_eq!(parse_hop("u@"), None);
    }

    #[test]
    fn inventory_fields_win() {
        let home = Path::new("/home/alice");
        let file = SshConfigFile::parse_str(CONFIG, home).unwrap();
        let mut h = host("instance_1", "node1");
        h.ssh_user = Some("invuser".into());
        h.ssh_port = Some(2222);
        h.ssh_host = Some("node1".into());
        let t = resolve(&SshConfig::default(), &h, &file, &env(home));
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("10.9.8.7", 2222, "invuser")
        );
    }

    #[test]
    fn broken_config_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        std::fs::write(&p, "Host x\n  Port notanumber\n").unwrap();
        let e = SshConfigFile::load(&LocalEnv {
            ssh_config: Some(p.clone()),
            home: Some(d.path().into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        // Missing file: empty.
        assert!(
            SshConfigFile::load(&LocalEnv {
                ssh_config: Some(d.path().join("nope")),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn tilde_helpers() {
        let h = Path::new("/home/a");
        assert_eq!(
            expand_tilde(Path::new("~/.ssh/x"), Some(h)),
            h.join(".ssh/x")
        );
        assert_eq!(
            expand_tilde(Path::new("/abs"), Some(h)),
            PathBuf::from("/abs")
        );
        assert_eq!(
            display_path(&h.join(".ssh/known_hosts"), Some(h)),
            "~/.ssh/known_hosts"
        );
    }
}
