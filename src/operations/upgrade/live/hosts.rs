//! The hosts for the upgrade: the read-only probes of `crate::probes` over SSH (boot state,
//! reachability, auto-upgrade, k3s version, boot id: [`SshHosts`]), and the writes
//! ([`SshWriter`], built only from the write capability): the switch and rollback streamed
//! line by line (over SSH, or here as a child process for `switch = "local"`), and the reboot.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::base::Writes;
use crate::inventory::Host;
use crate::operations::upgrade::world::{AutoUpgrade, BootState, CommandSpec, HostRead, HostWrite};
use crate::probes::Probe;
use crate::probes::auto_upgrade::{AutoUpgradeProbe, AutoUpgradeState};
use crate::probes::boot::{BootFacts, BootIdProbe, BootStateProbe};
use crate::probes::bootloader::{Bootloader, BootloaderProbe};
use crate::probes::k3s::K3sVersionProbe;
use crate::probes::reachable::ReachableProbe;
use crate::probes::revert::{RevertTimer, RevertTimerProbe};
use crate::sources::ssh::{HostsClient, OutputChunk};

/// Hosts over SSH, read only: the probes.
pub struct SshHosts {
    ssh: Arc<HostsClient>,
    /// Timeout of the short probes (reachable, boot state).
    probe_timeout: Duration,
}

impl SshHosts {
    pub fn new(ssh: Arc<HostsClient>) -> Self {
        Self {
            ssh,
            probe_timeout: Duration::from_secs(10),
        }
    }

    /// Run `probe` on `host` within the probe timeout and read its reply.
    pub async fn probe<P: Probe>(&self, host: &Host, probe: &P) -> Result<P::Output> {
        let reply = self
            .ssh
            .ask(&host.id, probe, self.probe_timeout)
            .await
            .map_err(|e| eyre!("{}: {e}", host.id))?;
        probe.parse(&reply).map_err(|e| eyre!("{}: {e}", host.id))
    }

    /// The SSH client (to build an [`SshWriter`] on the same connections).
    pub fn client(&self) -> &Arc<HostsClient> {
        &self.ssh
    }
}

/// The writes to the hosts: commands over SSH (switch, rollback), local child processes for
/// `CommandSpec::Local`, the reboot. Only a holder of [`Writes`] can build one.
pub struct SshWriter {
    ssh: Arc<HostsClient>,
    writes: Writes,
    /// How long the reboot command may take before the connection counts as dropped.
    reboot_timeout: Duration,
}

impl SshWriter {
    pub fn new(writes: &Writes, ssh: Arc<HostsClient>) -> Self {
        Self {
            ssh,
            writes: writes.clone(),
            reboot_timeout: Duration::from_secs(10),
        }
    }
}

/// Split chunks into lines (a partial last line is kept until more arrives).
#[derive(Default)]
struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8], out: &mpsc::UnboundedSender<String>) {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line);
            let _ = out.send(text.trim_end_matches(['\n', '\r']).to_string());
        }
    }
    fn finish(&mut self, out: &mpsc::UnboundedSender<String>) {
        if !self.buf.is_empty() {
            let _ = out.send(String::from_utf8_lossy(&self.buf).trim_end().to_string());
            self.buf.clear();
        }
    }
}

/// Run a command here (`sh -c`), streaming its lines; killed on timeout. It may change a host
/// (`nixos-rebuild --target-host`): it takes the write capability.
pub async fn exec_local(
    _writes: &Writes,
    command: &str,
    timeout: Duration,
    lines: mpsc::UnboundedSender<String>,
) -> Result<Option<u32>> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .wrap_err_with(|| format!("cannot run `{command}`"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                tx: mpsc::UnboundedSender<String>| async move {
        if let Some(r) = r {
            let mut l = BufReader::new(r).lines();
            while let Ok(Some(line)) = l.next_line().await {
                let _ = tx.send(line);
            }
        }
    };
    let a = pump(
        stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        lines.clone(),
    );
    let b = pump(
        stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        lines,
    );
    let all = async {
        let (_, _, status) = tokio::join!(a, b, child.wait());
        status
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(status) => {
            let status = status.wrap_err_with(|| format!("`{command}` did not finish"))?;
            Ok(status.code().and_then(|c| u32::try_from(c).ok()))
        }
        Err(_) => Err(eyre!("`{command}` timed out after {}s", timeout.as_secs())),
    }
}

impl HostRead for SshHosts {
    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>> {
        Box::pin(async move { Ok(boot_state(&self.probe(host, &BootStateProbe).await?)) })
    }

    fn boot_id<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            self.probe(host, &BootIdProbe)
                .await?
                .ok_or_else(|| eyre!("{}: the host shows no boot id", host.id))
        })
    }

    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.probe(host, &ReachableProbe).await.is_ok() })
    }

    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>> {
        Box::pin(async move { Ok(auto_upgrade(&self.probe(host, &AutoUpgradeProbe).await?)) })
    }

    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { self.probe(host, &K3sVersionProbe).await })
    }

    fn fresh_login<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.ssh.pool().disconnect(&host.id).await;
            self.probe(host, &ReachableProbe).await.is_ok()
        })
    }

    fn revert_timer<'a>(
        &'a self,
        host: &'a Host,
        unit: &'a str,
    ) -> BoxFuture<'a, Result<RevertTimer>> {
        Box::pin(async move {
            self.probe(
                host,
                &RevertTimerProbe {
                    unit: unit.to_string(),
                },
            )
            .await
        })
    }

    fn bootloader<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Bootloader>> {
        Box::pin(async move { self.probe(host, &BootloaderProbe).await })
    }
}

impl HostWrite for SshWriter {
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move {
            match command {
                CommandSpec::Local(c) => exec_local(&self.writes, c, timeout, lines).await,
                CommandSpec::Remote(c) => {
                    let (ctx, mut crx) = mpsc::unbounded_channel::<OutputChunk>();
                    let splitter = async move {
                        let mut out = LineSplitter::default();
                        let mut err = LineSplitter::default();
                        while let Some(chunk) = crx.recv().await {
                            match chunk {
                                OutputChunk::Stdout(d) => out.push(&d, &lines),
                                OutputChunk::Stderr(d) => err.push(&d, &lines),
                            }
                        }
                        out.finish(&lines);
                        err.finish(&lines);
                    };
                    let run = async {
                        let r = self
                            .ssh
                            .run_streaming(&self.writes, &host.id, c, timeout, ctx)
                            .await;
                        r.map_err(|e| eyre!("{}: {e}", host.id))
                    };
                    let (r, ()) = tokio::join!(run, splitter);
                    Ok(r?.exit_status)
                }
            }
        })
    }

    fn reboot<'a>(&'a self, host: &'a Host, command: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match tokio::time::timeout(
                self.reboot_timeout,
                self.ssh.run(&self.writes, &host.id, command),
            )
            .await
            {
                // The connection may drop, or the command be cut short: the reboot is under way.
                Err(_) | Ok(Err(_)) => Ok(()),
                Ok(Ok(out)) if out.success() || out.exit_status.is_none() => Ok(()),
                Ok(Ok(out)) => Err(eyre!(
                    "{}: `{command}` exited with {:?}: {}",
                    host.id,
                    out.exit_status,
                    out.stderr_lossy().trim()
                )),
            }
        })
    }
}

/// What the engine reads from the boot-state probe.
pub fn boot_state(b: &BootFacts) -> BootState {
    let (reboot_needed, reasons) = b.reboot_needed();
    BootState {
        booted_system: b.booted_system.clone(),
        current_system: b.current_system.clone(),
        reboot_needed,
        reasons,
        current_kernel: b.current.kernel.clone(),
    }
}

/// What the engine reads from the auto-upgrade probe.
pub fn auto_upgrade(a: &AutoUpgradeState) -> AutoUpgrade {
    AutoUpgrade {
        running: a.running(),
        next_run: a.next_run,
        timer_present: a.timer_present(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::host::BootFiles;
    use crate::probes::Reply;

    #[test]
    fn boot_state_from_the_probe() {
        let reply = Reply::ok(
            "booted_kernel=/nix/store/a-linux/bzImage\ncurrent_kernel=/nix/store/b-linux/bzImage\n\
             booted_initrd=/i\ncurrent_initrd=/i\nbooted_kernel-modules=/m\ncurrent_kernel-modules=/m\n\
             booted=/nix/store/s1\ncurrent=/nix/store/s2\n",
        );
        let b = boot_state(&BootStateProbe.parse(&reply).unwrap());
        assert_eq!(b.reboot_needed, Some(true));
        assert_eq!(b.reasons, ["kernel"]);
        assert_eq!(b.booted_system.as_deref(), Some("/nix/store/s1"));
        let b = boot_state(&BootFacts {
            booted: BootFiles::default(),
            ..Default::default()
        });
        assert_eq!(b.reboot_needed, None);
    }

    #[test]
    fn auto_upgrade_from_the_probe() {
        let p = |s: &str| auto_upgrade(&AutoUpgradeProbe.parse(&Reply::ok(s)).unwrap());
        let a = p("active=inactive\nload=loaded\nnext=@1800000000\n");
        assert_eq!(a.running, Some(false));
        assert!(a.timer_present);
        assert_eq!(a.next_run, jiff::Timestamp::from_second(1_800_000_000).ok());
        let a = p("active=activating\nload=not-found\nnext=\n");
        assert_eq!(
            (a.running, a.next_run, a.timer_present),
            (Some(true), None, false)
        );
    }

    #[tokio::test]
    async fn local_exec_streams_lines_and_exit_status() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let code = exec_local(
            &crate::testing::writes(),
            "echo one; echo two >&2; exit 3",
            Duration::from_secs(10),
            tx,
        )
        .await
        .unwrap();
        assert_eq!(code, Some(3));
        let mut got = Vec::new();
        while let Ok(l) = rx.try_recv() {
            got.push(l);
        }
        got.sort();
        assert_eq!(got, ["one", "two"]);
    }
}
