//! Answering one exec request: what the command asks for is read by `crate::probes`
//! (`recognise`), recorded in the request log, and answered from the host's state through the
//! probe's own renderer; the mutating requests act on the world (`rebuild`, the reboot); the
//! few commands a person types go to `shell`; anything else exits 127.

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelId;
use russh::server::Handle;

use super::host::SimHost;
use super::log::RequestLog;
use super::{rebuild, shell};
use crate::probes::auto_upgrade::AutoUpgradeProbe;
use crate::probes::boot::{BootFacts, BootIdProbe, BootStateProbe};
use crate::probes::bootloader::BootloaderProbe;
use crate::probes::clock::{ClockNowProbe, ClockSyncProbe};
use crate::probes::etcd_snapshot::SnapshotSave;
use crate::probes::k3s::K3sVersionProbe;
use crate::probes::reachable::ReachableProbe;
use crate::probes::{self, Kind, Probe, Reply, Request};
use crate::sim::World;

/// Where an answer goes: one channel of one connection.
pub(super) struct Out<'a> {
    handle: &'a Handle,
    channel: ChannelId,
}

impl Out<'_> {
    pub(super) async fn stdout(&self, text: impl Into<String>) {
        let text: String = text.into();
        if !text.is_empty() {
            let _ = self.handle.data(self.channel, text.into_bytes()).await;
        }
    }

    pub(super) async fn stderr(&self, text: impl Into<String>) {
        let text: String = text.into();
        if !text.is_empty() {
            let _ = self
                .handle
                .extended_data(self.channel, 1, text.into_bytes())
                .await;
        }
    }

    /// Send a rendered reply's output; its exit status.
    async fn reply(&self, r: &Reply) -> u32 {
        self.stdout(r.stdout.clone()).await;
        self.stderr(r.stderr.clone()).await;
        r.exit_status.unwrap_or(0)
    }
}

/// What a command line turned out to be.
enum Asked {
    Probe(Request),
    Shell(shell::Command),
    Unknown,
}

/// Answer `command` (with `stdin`, for `sh -s`) on `host`: record it, send its output, then
/// its exit status, and close the channel.
pub(super) async fn answer(
    world: &Arc<World>,
    host: &Arc<SimHost>,
    log: &RequestLog,
    handle: &Handle,
    channel: ChannelId,
    command: String,
    stdin: Option<Vec<u8>>,
) {
    let script = stdin.as_deref().map(String::from_utf8_lossy);
    let asked = match probes::recognise(&command, script.as_deref()) {
        Some(r) => Asked::Probe(r),
        None => shell::recognise(&command).map_or(Asked::Unknown, Asked::Shell),
    };
    let (kind, mutating) = match &asked {
        Asked::Probe(r) => (r.kind().as_str(), r.kind().mutating()),
        Asked::Shell(_) => ("shell", false),
        Asked::Unknown => ("unknown", true),
    };
    match &asked {
        // The combined recovery read is recorded as the reads it holds, each with its own
        // command: the log says what was read, however many channels it took.
        Asked::Probe(Request::Recovery(p)) => {
            let mut parts = vec![(Kind::Certificates, p.certs.command())];
            if let Some(s) = &p.secrets {
                parts.push((Kind::Secrets, s.command()));
            }
            parts.push((Kind::ClockSync, ClockSyncProbe.command()));
            for (k, c) in parts {
                log.record(&host.hostname, &host.id, k.as_str(), false, &c);
            }
        }
        _ => log.record(&host.hostname, &host.id, kind, mutating, &command),
    }

    let out = Out { handle, channel };
    let mut reboot_after = false;
    let status = match asked {
        Asked::Probe(Request::Facts(p)) => out.reply(&p.render(&host.facts(world))).await,
        Asked::Probe(Request::BootState) => {
            let boot = BootFacts::from_facts(&host.facts(world));
            out.reply(&BootStateProbe.render(&boot)).await
        }
        Asked::Probe(Request::BootId) => {
            out.reply(&BootIdProbe.render(&Some(host.boot_id(world))))
                .await
        }
        Asked::Probe(Request::AutoUpgrade) => {
            out.reply(&AutoUpgradeProbe.render(&host.auto_upgrade()))
                .await
        }
        Asked::Probe(Request::K3sVersion) => {
            out.reply(&K3sVersionProbe.render(&Some(host.k3s_version(world))))
                .await
        }
        Asked::Probe(Request::Reachable) => out.reply(&ReachableProbe.render(&())).await,
        Asked::Probe(Request::Certificates(p)) => {
            out.reply(&p.render(&host.cert_files(world, &p))).await
        }
        Asked::Probe(Request::Secrets(p)) => {
            out.reply(&p.render(&host.secret_states(world, &p))).await
        }
        Asked::Probe(Request::ClockSync) => {
            out.reply(&ClockSyncProbe.render(&host.clock_sync(world)))
                .await
        }
        Asked::Probe(Request::Recovery(p)) => {
            let replies = crate::probes::recovery::RecoveryReplies {
                certs: p.certs.render(&host.cert_files(world, &p.certs)),
                secrets: p
                    .secrets
                    .as_ref()
                    .map(|s| s.render(&host.secret_states(world, s))),
                clock_sync: ClockSyncProbe.render(&host.clock_sync(world)),
            };
            out.reply(&p.render(&replies)).await
        }
        Asked::Probe(Request::ClockNow) => {
            out.reply(&ClockNowProbe.render(&host.clock_now(world)))
                .await
        }
        Asked::Probe(Request::EtcdSnapshotSave(req)) => {
            if !host.is_server() {
                out.stderr("Error: see server log for details: etcd datastore disabled\n")
                    .await;
                1
            } else {
                match world.etcd_snapshot_save(&host.hostname, &req.name) {
                    Ok(file) => {
                        out.stdout(SnapshotSave::saved_line(&file)).await;
                        0
                    }
                    Err(e) => {
                        out.stderr(format!("FATA[0000] Error: snapshot save failed: {e}\n"))
                            .await;
                        1
                    }
                }
            }
        }
        Asked::Probe(Request::Switch(_)) => rebuild::switch(world, host, &out).await,
        Asked::Probe(Request::Rollback) => rebuild::rollback(world, host, &out).await,
        Asked::Probe(Request::ArmRevert(a)) => rebuild::arm_revert(world, host, &a, &out).await,
        Asked::Probe(Request::Disarm(d)) => rebuild::disarm(world, host, &d, &out).await,
        Asked::Probe(Request::RevertTimer(p)) => {
            out.reply(&p.render(&rebuild::revert_timer(world, host, &p.unit)))
                .await
        }
        Asked::Probe(Request::Bootloader) => {
            let b = world.bootloader(&host.hostname).unwrap_or_default();
            out.reply(&BootloaderProbe.render(&b)).await
        }
        Asked::Probe(Request::BootDefault(d)) => {
            match world.install_boot_default(&host.hostname, &d.system) {
                Ok(()) => {
                    out.stderr("updating the boot loader...\n").await;
                    tokio::time::sleep(world.delay(0.25)).await;
                    0
                }
                Err(e) => {
                    out.stderr(format!("sudo: {e}\n")).await;
                    1
                }
            }
        }
        Asked::Probe(Request::OneShot(o)) => {
            match world.set_oneshot(&host.hostname, o.via, &o.entry) {
                Ok(()) => 0,
                Err(e) => {
                    out.stderr(format!("{e}\n")).await;
                    1
                }
            }
        }
        Asked::Probe(Request::Reboot) => {
            if world.host(&host.hostname).is_some_and(|h| h.rebooting) {
                out.stderr("Failed to reboot: a reboot is already in progress\n")
                    .await;
                1
            } else {
                reboot_after = true;
                0
            }
        }
        Asked::Probe(Request::OtherRebuild(action)) => {
            out.stderr(format!(
                "nixos-rebuild {action}: not supported by the simulator (switch and switch --rollback are)\n"
            ))
            .await;
            1
        }
        Asked::Shell(c) => out.reply(&shell::answer(world, host, &c)).await,
        Asked::Unknown if stdin.is_some() => {
            out.stderr("sh: the simulated host runs no script but the facts script\n")
                .await;
            2
        }
        Asked::Unknown => {
            let name = command.split_whitespace().next().unwrap_or("");
            out.stderr(format!("sh: 1: {name}: not found\n")).await;
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
