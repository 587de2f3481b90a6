//! Helpers for the SSH integration tests: targets for the shared sshd, and private sshd
//! instances (own port, own host key, optionally in their own mount namespace) that a test may
//! kill without disturbing anyone.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homeinfra_tui::sources::ssh::{AgentSource, ClientSettings, Target};

pub(crate) use crate::common;

/// The shared sshd from `scripts/test-env.sh`.
pub struct SharedSshd {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

pub fn shared() -> Option<SharedSshd> {
    let host = common::require_env("HOMEINFRA_TEST_SSH_HOST", "the test sshd")?;
    let port = common::require_env("HOMEINFRA_TEST_SSH_PORT", "the test sshd")?;
    let user = common::require_env("HOMEINFRA_TEST_SSH_USER", "the test sshd")?;
    let key = common::require_env("HOMEINFRA_TEST_SSH_KEY", "the test sshd")?;
    let kh = common::require_env("HOMEINFRA_TEST_SSH_KNOWN_HOSTS", "the test sshd")?;
    Some(SharedSshd {
        host,
        port: port.parse().expect("HOMEINFRA_TEST_SSH_PORT is a port"),
        user,
        key: key.into(),
        known_hosts: kh.into(),
    })
}

pub fn target(
    id: &str,
    host: &str,
    port: u16,
    user: &str,
    key: Option<&Path>,
    kh: &Path,
) -> Target {
    Target {
        id: id.into(),
        host: host.into(),
        port,
        user: user.into(),
        identity_files: key.map(|k| vec![k.to_path_buf()]).unwrap_or_default(),
        identities_only: false,
        known_hosts: vec![kh.to_path_buf()],
        known_hosts_write: kh.to_path_buf(),
        jump: None,
    }
}

/// Fast settings, no agent (each test opts in).
pub fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(20),
        keepalive: Some(Duration::from_secs(5)),
        accept_new: false,
        agent: AgentSource::Disabled,
        max_concurrency: 4,
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        home: None,
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub fn wait_port(port: u16, up: bool, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ok == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A private OpenSSH server for one test: its own port, host key and config; `operator` logs in
/// with the shared test key (already in its authorized_keys). Killed with all its children on
/// drop.
pub struct PrivateSshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub config: PathBuf,
    /// Shell commands run (as root, inside the namespace when `namespace`) before sshd starts.
    setup: Option<String>,
    child: Option<Child>,
}

impl PrivateSshd {
    /// Start on a free port. With `setup`, sshd runs in its own mount namespace
    /// (`unshare -m`) after `setup` ran there (e.g. mounts over /run).
    pub fn start(setup: Option<String>) -> PrivateSshd {
        Self::start_with(setup, "")
    }

    /// Like `start`, with sshd_config lines placed first (sshd keeps the first value of a
    /// keyword, so these override the defaults below).
    pub fn start_with(setup: Option<String>, extra_config: &str) -> PrivateSshd {
        let dir = tempfile::Builder::new()
            .prefix("homeinfra-sshd-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let hostkey = dir.path().join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "private-test-host",
                "-f",
            ])
            .arg(&hostkey)
            .status()
            .expect("run ssh-keygen");
        assert!(st.success(), "ssh-keygen failed");
        let pubkey = std::fs::read_to_string(dir.path().join("host_ed25519.pub")).expect("pub");
        let mut parts = pubkey.split_whitespace();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{port} {} {}\n",
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("")
            ),
        )
        .expect("write known_hosts");
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "{extra_config}\nPort {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile .ssh/authorized_keys\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
                 UsePAM no\nStrictModes yes\nAllowUsers operator\nX11Forwarding no\nPrintMotd no\n",
                hostkey.display()
            ),
        )
        .expect("write sshd_config");
        let mut s = PrivateSshd {
            dir,
            port,
            known_hosts,
            config,
            setup,
            child: None,
        };
        s.restart();
        s
    }

    /// (Re)start sshd on the same port with the same host key.
    pub fn restart(&mut self) {
        std::fs::create_dir_all("/run/sshd").ok();
        let sshd = format!("exec /usr/sbin/sshd -D -e -f {}", self.config.display());
        let mut cmd = match &self.setup {
            Some(setup) => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-ec"])
                    .arg(format!("{setup}\n{sshd}"));
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.arg("-ec").arg(sshd);
                c
            }
        };
        let log = std::fs::File::create(self.dir.path().join("sshd.log")).expect("log");
        let child = cmd
            .env("SSHD_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        assert!(
            wait_port(self.port, true, Duration::from_secs(10)),
            "private sshd did not listen on {}: {}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Send `sig` to sshd and every process it started (e.g. SIGSTOP to hang it).
    pub fn signal_all(&self, sig: i32) {
        if let Some(child) = &self.child {
            let root = child.id() as i32;
            let mut pids = descendants(root);
            pids.push(root);
            for pid in pids {
                // SAFETY: plain syscall on pids we started (sshd and its descendants).
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        }
    }

    /// Kill sshd and every process it started (the per-connection children too), by pid.
    pub fn kill(&mut self) {
        // Leave nothing stopped behind (a test may have sent SIGSTOP).
        self.signal_all(libc::SIGCONT);
        if let Some(mut child) = self.child.take() {
            let root = child.id() as i32;
            let mut pids = descendants(root);
            pids.push(root);
            for pid in pids {
                // SAFETY: plain syscall on pids we started (sshd and its descendants).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
            assert!(
                wait_port(self.port, false, Duration::from_secs(10)),
                "sshd still listening after kill"
            );
        }
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// All descendants of `root` (from /proc).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let ppid = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, parent) in &parent_of {
            if *parent == p && !out.contains(child) {
                out.push(*child);
                frontier.push(*child);
            }
        }
    }
    out
}

/// A directory the remote `operator` user can read and the test (root) can write.
pub fn shared_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("homeinfra-ssh-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}
