//! The fake hosts: commands (the switch, with its output lines and generations; rollback),
//! boot state, boot ids and reboots (down for some probes, then the new boot; or a quick
//! reboot), auto-upgrade state, k3s.

use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{FakeHost, FakeRevert, FakeState, FakeWorld};
use crate::inventory::Host;
use crate::operations::upgrade::world::{
    AutoUpgrade, BootState, Bootloader, CommandSpec, HostRead, HostWrite, RevertTimer,
};
use crate::probes::Request;

/// The fake state of `host` (its revert timer fired first, when its time has come).
fn host_of<'a>(st: &'a mut FakeState, host: &Host) -> Result<&'a mut FakeHost> {
    let now = st.now;
    let h = st
        .hosts
        .get_mut(&host.id)
        .ok_or_else(|| eyre!("fake: no host {}", host.id))?;
    if h.tick(now) {
        let old = h.k3s.clone();
        st.log.push(format!("revert-fired {}", host.id));
        if let Some(n) = st.nodes.get_mut(&host.hostname) {
            n.kubelet_version = old;
            if !n.ready {
                n.ready = true;
                n.ready_changed = Some(now);
            }
        }
    }
    st.hosts
        .get_mut(&host.id)
        .ok_or_else(|| eyre!("fake: no host {}", host.id))
}

/// The revert commands (arm, disarm) on a fake host; `None`: not one of them.
fn revert_command(st: &mut FakeState, host: &Host, text: &str) -> Option<Result<Option<u32>>> {
    let req = crate::probes::recognise(text, None)?;
    let now = st.now;
    Some(match req {
        Request::ArmRevert(a) => match host_of(st, host) {
            Err(e) => Err(e),
            Ok(h) if h.cut_off => Err(eyre!("fake: {}: connection refused", host.id)),
            Ok(h)
                if h.revert
                    .as_ref()
                    .is_some_and(|r| !r.fired && r.unit == a.unit) =>
            {
                Ok(Some(1))
            }
            Ok(h) => {
                let secs = i64::try_from(a.secs).unwrap_or(i64::MAX);
                h.revert = Some(FakeRevert {
                    unit: a.unit.clone(),
                    previous: a.previous.clone(),
                    fires_at: now
                        .checked_add(jiff::SignedDuration::from_secs(secs))
                        .unwrap_or(now),
                    fired: false,
                });
                st.log
                    .push(format!("arm-revert {} {} {}s", host.id, a.previous, a.secs));
                Ok(Some(0))
            }
        },
        Request::Disarm(d) => match host_of(st, host) {
            Err(e) => Err(e),
            Ok(h) if h.cut_off => Err(eyre!("fake: {}: connection refused", host.id)),
            Ok(h) => match &h.revert {
                Some(r) if r.unit == d.unit => {
                    h.revert = None;
                    st.log.push(format!("disarm {}", host.id));
                    Ok(Some(0))
                }
                // systemctl: "Unit … not loaded."
                _ => Ok(Some(5)),
            },
        },
        _ => return None,
    })
}

impl HostWrite for FakeWorld {
    fn exec<'a>(
        &'a self,
        host: &'a Host,
        command: &'a CommandSpec,
        _timeout: Duration,
        lines: mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move {
            if let Some(req) = crate::probes::etcd_snapshot::recognise(command.text()) {
                return self.snapshot_save(host, &req.name, &lines).await;
            }
            self.checkpoint("exec").await;
            let mut st = self.state();
            let text = command.text().to_string();
            if let Some(r) = revert_command(&mut st, host, &text) {
                return r;
            }
            let rollback = text.contains("--rollback");
            let node = host.hostname.clone();
            let h = host_of(&mut st, host)?;
            if h.cut_off {
                return Err(eyre!("fake: {}: connection refused", host.id));
            }
            if rollback {
                if h.generations.len() > 1 {
                    h.generations.pop();
                }
                h.current = h.generations.last().cloned().unwrap_or_default();
                h.current_kernel = h.booted_kernel.clone();
                h.k3s = h.old_k3s.clone();
                let old = h.k3s.clone();
                let _ = lines.send("switching to the previous generation".into());
                st.log.push(format!("rollback {}", host.id));
                if let Some(n) = st.nodes.get_mut(&node) {
                    n.kubelet_version = old;
                }
                return Ok(Some(0));
            }
            for l in &h.switch_lines {
                let _ = lines.send(l.clone());
            }
            if h.fail_switch {
                let _ = lines.send("error: builder for '/nix/store/x.drv' failed".into());
                st.log.push(format!("switch-failed {}", host.id));
                return Ok(Some(1));
            }
            let next = format!(
                "/nix/store/bbbb-nixos-system-{}-{}",
                host.hostname,
                h.generations.len() + 1
            );
            h.generations.push(next.clone());
            h.current = next;
            if h.kernel_changes {
                h.current_kernel = "/nix/store/k2-linux-6.6.8/bzImage".into();
            }
            h.k3s = h.new_k3s.clone();
            let new_k3s = h.k3s.clone();
            let breaks = h.switch_breaks_network;
            if breaks {
                h.cut_off = true;
            }
            st.log.push(format!("switch {}", host.id));
            // The switch restarts k3s with the new package.
            let now = st.now;
            if let Some(n) = st.nodes.get_mut(&node) {
                n.kubelet_version = new_k3s;
                if breaks {
                    n.ready = false;
                    n.ready_changed = Some(now);
                }
            }
            if breaks {
                // The exit status got out; the network went right after.
                st.log.push(format!("network-lost {}", host.id));
            }
            Ok(Some(0))
        })
    }

    fn reboot<'a>(&'a self, host: &'a Host, _command: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.checkpoint("reboot").await;
            let mut st = self.state();
            let node = host.hostname.clone();
            let h = host_of(&mut st, host)?;
            h.booted = h.current.clone();
            h.booted_kernel = h.current_kernel.clone();
            h.boots += 1;
            let quick = h.quick_reboot;
            if !quick {
                h.down_probes = h.down_probes.max(h.down_after_reboot).max(1);
            }
            let k3s = h.k3s.clone();
            let now = st.now;
            if let Some(n) = st.nodes.get_mut(&node) {
                let boots = n
                    .boot_id
                    .rsplit('-')
                    .next()
                    .and_then(|b| b.parse::<u32>().ok());
                n.pending_boot_id = Some(format!("{node}-nodeboot-{}", boots.unwrap_or(0) + 1));
                n.kubelet_version = k3s;
                if quick {
                    // Back before anyone noticed: Ready throughout, the old status for a while.
                    n.stale_reads = 3;
                } else {
                    n.ready = false;
                    n.ready_changed = Some(now);
                    n.not_ready_reads = 2;
                }
            }
            st.log.push(format!("reboot {}", host.id));
            Ok(())
        })
    }
}

impl FakeWorld {
    /// `k3s etcd-snapshot save --name NAME` on `host`: a record (ready, unless
    /// `snapshot_never_ready`), or k3s's error (`snapshot_error`, or not a server).
    async fn snapshot_save(
        &self,
        host: &Host,
        name: &str,
        lines: &mpsc::UnboundedSender<String>,
    ) -> Result<Option<u32>> {
        self.checkpoint("snapshot").await;
        let mut st = self.state();
        if !host.role.is_control_plane() {
            let _ = lines.send("FATA[0000] Error: etcd datastore disabled".into());
            return Ok(Some(1));
        }
        if let Some(e) = st.snapshot_error.clone() {
            let _ = lines.send(format!("FATA[0000] Error: snapshot save failed: {e}"));
            st.log.push(format!("snapshot-failed {}", host.id));
            return Ok(Some(1));
        }
        let now = st.now;
        let file = format!("{name}-{}-{}", host.hostname, now.as_second());
        let ready = !st.snapshot_never_ready;
        st.snapshots.push(crate::model::recovery::EtcdSnapshot {
            name: format!("local-{}", file.to_lowercase()),
            snapshot_name: file.clone(),
            node: host.hostname.clone(),
            location: format!("file:///var/lib/rancher/k3s/server/db/snapshots/{file}"),
            size_bytes: ready.then_some(5_000_000),
            created: Some(now),
            ready,
            error: None,
        });
        st.log.push(format!("snapshot {} {name}", host.id));
        let _ = lines.send(
            crate::probes::etcd_snapshot::SnapshotSave::saved_line(&file)
                .trim_end()
                .to_string(),
        );
        Ok(Some(0))
    }
}

impl HostRead for FakeWorld {
    fn boot_state<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<BootState>> {
        Box::pin(async move {
            self.checkpoint("boot").await;
            let mut st = self.state();
            let h = host_of(&mut st, host)?;
            if h.down_probes > 0 || h.cut_off {
                return Err(eyre!("fake: {}: connection refused", host.id));
            }
            let needed = h.current_kernel != h.booted_kernel;
            Ok(BootState {
                booted_system: Some(h.booted.clone()),
                current_system: Some(h.current.clone()),
                reboot_needed: Some(needed),
                reasons: if needed {
                    vec!["kernel".into()]
                } else {
                    Vec::new()
                },
                current_kernel: Some(h.current_kernel.clone()),
            })
        })
    }

    fn boot_id<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            self.checkpoint("boot-id").await;
            let mut st = self.state();
            let h = host_of(&mut st, host)?;
            if h.down_probes > 0 || h.cut_off {
                return Err(eyre!("fake: {}: connection refused", host.id));
            }
            Ok(format!("{}-boot-{}", host.id, h.boots))
        })
    }

    fn reachable<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.checkpoint("reachable").await;
            let mut st = self.state();
            let _ = host_of(&mut st, host);
            match st.hosts.get_mut(&host.id) {
                Some(h) if h.cut_off => false,
                Some(h) if h.down_probes > 0 => {
                    h.down_probes -= 1;
                    false
                }
                Some(_) => true,
                None => false,
            }
        })
    }

    fn auto_upgrade<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<AutoUpgrade>> {
        Box::pin(async move {
            self.checkpoint("auto-upgrade").await;
            let mut st = self.state();
            Ok(host_of(&mut st, host)?.auto_upgrade.clone())
        })
    }

    fn k3s_version<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let mut st = self.state();
            Ok(Some(host_of(&mut st, host)?.k3s.clone()))
        })
    }

    fn fresh_login<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.checkpoint("login").await;
            self.state().log.push(format!("login {}", host.id));
            self.reachable(host).await
        })
    }

    fn revert_timer<'a>(
        &'a self,
        host: &'a Host,
        unit: &'a str,
    ) -> BoxFuture<'a, Result<RevertTimer>> {
        Box::pin(async move {
            self.checkpoint("revert-timer").await;
            let mut st = self.state();
            let h = host_of(&mut st, host)?;
            if h.cut_off || h.down_probes > 0 {
                return Err(eyre!("fake: {}: connection refused", host.id));
            }
            Ok(match &h.revert {
                Some(r) if r.unit == unit && r.fired => RevertTimer::Fired,
                Some(r) if r.unit == unit => RevertTimer::Armed,
                _ => RevertTimer::Gone,
            })
        })
    }

    /// The fake hosts' boot loader is unknown: their reboots go straight into the new system.
    fn bootloader<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<Bootloader>> {
        Box::pin(async move {
            let mut st = self.state();
            let h = host_of(&mut st, host)?;
            if h.cut_off || h.down_probes > 0 {
                return Err(eyre!("fake: {}: connection refused", host.id));
            }
            Ok(Bootloader::default())
        })
    }
}
