//! The new kernel boots once before it becomes the default (`[upgrade] boot_once`).
//!
//! Right before a reboot (the switch confirmed, the lock and guards re-checked): the boot
//! loader is read; when it can boot an entry once, the system that booted before is made the
//! boot default again (`<previous>/bin/switch-to-configuration boot`: every generation keeps
//! its entry) and the new generation's entry is set to boot once (`bootctl set-oneshot` /
//! `grub-reboot`) — journaled first. A boot that fails (a panic, a hang, a watchdog or a power
//! cycle) lands on the previous generation by itself. After the reboot the booted system
//! tells which: the previous one stops the node cordoned with a clear report; the new one,
//! once the node is healthy on it, becomes the default in the make-default step
//! (`<new>/bin/switch-to-configuration boot`), checked on the loader afterwards (no one-shot
//! entry left).

use std::time::Duration;

use crate::config::BootOnce;
use crate::inventory::Host;
use crate::operations::upgrade::engine::{Hold, Runner};
use crate::operations::upgrade::world::{BootState, CommandSpec};
use crate::operations::upgrade::{BootOnceRecord, PlanEntry, StepOutcome, UpgradeEvent};
use crate::probes::bootloader::{BootDefault, OneShot, OneShotVia, kernel_version};
use crate::probes::revert::is_store_path;

/// How long installing the boot loader and setting the one-shot entry may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

impl Runner {
    /// Before the reboot of `entry`: set the new generation to boot once, the previous one
    /// staying the default. `Ok(None)`: the reboot goes straight into the new generation
    /// (`boot_once = "off"`, or `prefer` with a loader that cannot; said in a notice);
    /// `Err`: the step fails with this outcome (nothing rebooted).
    pub(in crate::operations::upgrade::engine) async fn prepare_boot_once(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
        bs: &BootState,
    ) -> Result<Option<BootOnceRecord>, StepOutcome> {
        let node = entry.node.clone();
        if self.s.boot_once == BootOnce::Off {
            return Ok(None);
        }
        let require = self.s.boot_once == BootOnce::Require;
        // Why this reboot cannot boot once: refused under `require`, said under `prefer`.
        let cannot = |why: String| -> Result<Option<BootOnceRecord>, String> {
            if require {
                Err(format!(
                    "{node} cannot boot its new generation once: {why}; [upgrade] boot_once = \"require\" — \
                     not rebooting it (set boot_once = \"prefer\" to reboot straight into the new generation)"
                ))
            } else {
                Ok(None)
            }
        };
        let decided: Result<Option<BootOnceRecord>, String> = async {
            let bl = match self.w.read.hosts.bootloader(host).await {
                Ok(b) => b,
                Err(e) => return cannot(format!("cannot read its boot loader: {e:#}")),
            };
            let via = match bl.one_shot() {
                Ok(v) => v,
                Err(why) => return cannot(why),
            };
            let (Some(previous), Some(new)) = (bs.booted_system.clone(), bs.current_system.clone())
            else {
                return cannot("its booted or current system is unknown".into());
            };
            if !is_store_path(&previous) || !is_store_path(&new) {
                return cannot(format!(
                    "its booted ({previous}) or current system ({new}) is not a plain store path"
                ));
            }
            if bl.profile_system.as_deref() != Some(new.as_str()) {
                return cannot(format!(
                    "the system profile's newest generation ({}) is not the system it runs ({new})",
                    bl.profile_system.as_deref().unwrap_or("unknown")
                ));
            }
            let Some(n) = bl.generation() else {
                return cannot(format!(
                    "the system profile's generation number is unknown ({})",
                    bl.profile.as_deref().unwrap_or("no link")
                ));
            };
            let Some(id) = bl.entry_of(n) else {
                return cannot(format!(
                    "{} lists no boot entry for generation {n}",
                    bl.kind.as_str()
                ));
            };
            Ok(Some(BootOnceRecord {
                previous,
                new,
                entry: id,
                via,
                kernel: bs.current_kernel.as_deref().and_then(kernel_version),
                at: self.w.read.clock.now(),
            }))
        }
        .await;
        let rec = match decided {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.notice(
                    Some(node.clone()),
                    format!(
                        "{} cannot boot its new generation once: rebooting straight into it (boot_once = \"prefer\")",
                        host.id
                    ),
                )
                .await;
                return Ok(None);
            }
            Err(message) => {
                self.hold = Some(Hold::Refused(
                    crate::operations::upgrade::guards::GuardVerdict::refuse(
                        "boot-once",
                        &host.id,
                        message.clone(),
                        "give the host systemd-boot, or GRUB with /boot/grub/grubenv; or set [upgrade] boot_once = \"prefer\"",
                    ),
                ));
                return Err(StepOutcome::Failed { message });
            }
        };
        let default_cmd = BootDefault {
            system: rec.previous.clone(),
        }
        .command();
        let oneshot_cmd = OneShot {
            via: rec.via,
            entry: rec.entry.clone(),
        }
        .command();
        let (default_cmd, oneshot_cmd) = match (default_cmd, oneshot_cmd) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(m), _) | (_, Err(m)) => return Err(StepOutcome::Failed { message: m }),
        };
        // Journaled (fsynced) before the boot loader is touched.
        self.emit(UpgradeEvent::BootOnceSet {
            node: node.clone(),
            boot_once: rec.clone(),
        })
        .await;
        self.boot_once.insert(node.clone(), rec.clone());
        for cmd in [default_cmd, oneshot_cmd] {
            if let Err(message) = self.run_boot_command(&node, host, cmd).await {
                return Err(StepOutcome::Failed {
                    message: format!(
                        "cannot set {} to boot its new generation once: {message} — not rebooting it",
                        host.id
                    ),
                });
            }
        }
        Ok(Some(rec))
    }

    /// Run one boot loader command on `host`, its output streamed; `Err`: how it failed.
    async fn run_boot_command(
        &mut self,
        node: &str,
        host: &Host,
        cmd: String,
    ) -> Result<(), String> {
        self.emit(UpgradeEvent::Output {
            node: node.to_string(),
            line: format!("$ {cmd}"),
        })
        .await;
        let spec = CommandSpec::Remote(cmd.clone());
        match self.exec_streamed(node, host, &spec, COMMAND_TIMEOUT).await {
            Ok(Some(0)) => Ok(()),
            Ok(Some(code)) => Err(format!("`{cmd}` exited with status {code}")),
            Ok(None) => Err(format!("`{cmd}` was killed by a signal")),
            Err(e) => Err(format!("`{cmd}` failed: {e:#}")),
        }
    }

    /// After the new boot of a boot-once reboot: `Some(failure)` when the host came back on
    /// its previous generation (the node stops cordoned, nothing rolled back: the host is
    /// already back).
    pub(in crate::operations::upgrade::engine) async fn check_boot_once(
        &mut self,
        node: &str,
        host: &Host,
    ) -> Option<StepOutcome> {
        let rec = self.boot_once.get(node).cloned()?;
        let booted = self.w.read.hosts.boot_state(host).await.ok()?.booted_system;
        (booted.as_deref() == Some(rec.previous.as_str()))
            .then(|| self.came_back_on_previous(node, &rec))
    }

    fn came_back_on_previous(&mut self, node: &str, rec: &BootOnceRecord) -> StepOutcome {
        self.hold = Some(Hold::Reverted);
        let kernel = rec
            .kernel
            .as_ref()
            .map(|k| format!(" (kernel {k})"))
            .unwrap_or_default();
        StepOutcome::Failed {
            message: format!(
                "{node} did not boot its new generation{kernel}: it came back on the previous one ({}), \
                 which is still its boot default; the new generation {} stays in the boot menu, not the default. \
                 {node} stays cordoned: investigate (the new kernel's boot log on the console), then \
                 `homeinfra-tui upgrade --abandon {}` to uncordon it",
                rec.previous, rec.new, self.plan.run_id
            ),
        }
    }

    /// The make-default step: the node is healthy on the generation it booted once; make it
    /// the boot default and check the loader (the new entry the default, no one-shot left).
    pub(in crate::operations::upgrade::engine) async fn make_default(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        let node = entry.node.clone();
        let Some(rec) = self.boot_once.get(&node).cloned() else {
            return StepOutcome::Skipped {
                reason: "the reboot did not boot once (or there was none): the new generation is the default already".into(),
            };
        };
        let bs = match self.w.read.hosts.boot_state(host).await {
            Ok(b) => b,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!(
                        "cannot read what {} booted: {e:#} — the new generation is not the boot default yet",
                        host.id
                    ),
                };
            }
        };
        match bs.booted_system.as_deref() {
            Some(b) if b == rec.new => {}
            Some(b) if b == rec.previous => {
                return self.came_back_on_previous(&node, &rec);
            }
            other => {
                return StepOutcome::Failed {
                    message: format!(
                        "{} booted {}, neither its new generation {} nor its previous one {}: \
                         not making anything the boot default",
                        host.id,
                        other.unwrap_or("an unknown system"),
                        rec.new,
                        rec.previous
                    ),
                };
            }
        }
        let cmd = match (BootDefault {
            system: rec.new.clone(),
        })
        .command()
        {
            Ok(c) => c,
            Err(message) => return StepOutcome::Failed { message },
        };
        if let Err(message) = self.run_boot_command(&node, host, cmd).await {
            return StepOutcome::Failed {
                message: format!(
                    "{message}: {} runs its new generation but the previous one is still the boot default",
                    host.id
                ),
            };
        }
        let bl = match self.w.read.hosts.bootloader(host).await {
            Ok(b) => b,
            Err(e) => {
                return StepOutcome::Failed {
                    message: format!(
                        "cannot read the boot loader of {} after making the new generation the default: {e:#}",
                        host.id
                    ),
                };
            }
        };
        if let Some(left) = bl.oneshot.as_ref().filter(|o| !o.is_empty()) {
            return StepOutcome::Failed {
                message: format!(
                    "{} still has a one-shot boot entry ({left}) after making the new generation the default",
                    host.id
                ),
            };
        }
        // systemd-boot names its default; GRUB's default is the top entry, the system whose
        // installer ran last (just now).
        if rec.via == OneShotVia::Bootctl
            && let Some(short) = rec.entry.strip_suffix(".conf")
            && !bl
                .default
                .as_deref()
                .is_some_and(|d| d == rec.entry || d == short)
        {
            return StepOutcome::Failed {
                message: format!(
                    "the boot default of {} is {} after `switch-to-configuration boot`, not {}",
                    host.id,
                    bl.default.as_deref().unwrap_or("unset"),
                    rec.entry
                ),
            };
        }
        self.boot_once.remove(&node);
        StepOutcome::ok_with(format!(
            "{} is the boot default now ({} healthy on it)",
            rec.entry, node
        ))
    }
}
