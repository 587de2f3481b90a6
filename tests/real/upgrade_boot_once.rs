//! Boot once (issue 15, item 2) over a REAL sshd: a private one whose sessions see a /boot
//! and a system profile of their own (tmpfs, in its mount namespace: generation 41 = the
//! previous system, 42 = the new one, the default as the switch left it) and fake `sudo`,
//! `bootctl` and `grub-reboot` that record their arguments (`tests/common/nixos_host.rs`).
//!
//! Per loader (systemd-boot; GRUB with grubenv): the bootloader probe's shell text reads the
//! loader, its entries, default and the profile's generation through a real shell; the
//! commands of a boot-once reboot go out with the right arguments — the previous system's
//! `switch-to-configuration boot` (the default back to it), the one-shot entry
//! (`bootctl set-oneshot nixos-generation-42.conf`, `grub-reboot 'NixOS - All
//! configurations>NixOS - Configuration 42 (…)'`, one argument with its spaces), and the new
//! system's `switch-to-configuration boot` (make-default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::nixos_host::{self, Loader, NEW, NixosLikeHost, OLD};
use crate::common::ssh::*;
use homeinfra_tui::config::SshConfig;
use homeinfra_tui::operations::upgrade::fake;
use homeinfra_tui::operations::upgrade::live::{SshHosts, SshWriter};
use homeinfra_tui::operations::upgrade::world::{CommandSpec, HostRead, HostWrite};
use homeinfra_tui::probes::bootloader::{BootDefault, LoaderKind, OneShot, OneShotVia};
use homeinfra_tui::sources::ssh::HostsClient;

async fn exec(w: &SshWriter, host: &homeinfra_tui::inventory::Host, cmd: String) -> Option<u32> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    w.exec(
        host,
        &CommandSpec::Remote(cmd.clone()),
        Duration::from_secs(20),
        tx,
    )
    .await
    .unwrap_or_else(|e| panic!("`{cmd}`: {e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_once_commands_go_out_with_the_right_arguments_over_real_ssh() {
    let Some(s) = shared() else { return };
    if !nixos_host::available() {
        return;
    }
    let inv = fake::inventory(4);
    let host = inv.host("instance_4").unwrap().clone();
    for loader in [Loader::SystemdBoot, Loader::Grub] {
        let nh = NixosLikeHost::with_loader(loader);
        let mut targets = BTreeMap::new();
        targets.insert("instance_4".to_string(), nh.target("instance_4", &s));
        let ssh = Arc::new(HostsClient::with_targets(
            &SshConfig::default(),
            settings(),
            targets,
        ));
        let reads = SshHosts::new(ssh.clone());
        let writes = homeinfra_tui::testing::writes();
        let w = SshWriter::new(&writes, ssh);

        let bl = reads
            .bootloader(&host)
            .await
            .unwrap_or_else(|e| panic!("{loader:?}: {e:#}\n{}", nh.sshd.log()));
        assert_eq!(bl.generation(), Some(42), "{loader:?}: {bl:?}");
        assert_eq!(bl.profile_system.as_deref(), Some(NEW), "{bl:?}");
        let (via, entry) = match loader {
            Loader::SystemdBoot => {
                assert_eq!(bl.kind, LoaderKind::SystemdBoot, "{bl:?}");
                assert_eq!(
                    bl.entries,
                    ["nixos-generation-41.conf", "nixos-generation-42.conf"]
                );
                assert_eq!(bl.default.as_deref(), Some("nixos-generation-42.conf"));
                (OneShotVia::Bootctl, "nixos-generation-42.conf".to_string())
            }
            Loader::Grub => {
                assert_eq!(bl.kind, LoaderKind::Grub, "{bl:?}");
                assert!(bl.grubenv, "{bl:?}");
                assert_eq!(
                    bl.entries,
                    [
                        "NixOS",
                        "NixOS - Configuration 42 (2026-01-02 - 25.11.1)",
                        "NixOS - Configuration 41 (2026-01-01 - 25.05.9)"
                    ]
                );
                (
                    OneShotVia::GrubReboot,
                    "NixOS - All configurations>NixOS - Configuration 42 (2026-01-02 - 25.11.1)"
                        .to_string(),
                )
            }
        };
        assert_eq!(bl.entry_of(42).as_deref(), Some(entry.as_str()));
        assert_eq!(bl.one_shot(), Ok(via));

        // The previous system the default again, the new one booted once.
        let keep = BootDefault { system: OLD.into() }.command().unwrap();
        assert_eq!(
            exec(&w, &host, keep).await,
            Some(0),
            "{:#?}",
            nh.fakes.calls()
        );
        let once = OneShot {
            via,
            entry: entry.clone(),
        }
        .command()
        .unwrap();
        assert_eq!(
            exec(&w, &host, once).await,
            Some(0),
            "{:#?}",
            nh.fakes.calls()
        );
        let after = reads.bootloader(&host).await.unwrap();
        match loader {
            Loader::SystemdBoot => {
                assert_eq!(after.default.as_deref(), Some("nixos-generation-41.conf"))
            }
            Loader::Grub => assert_eq!(after.oneshot.as_deref(), Some(entry.as_str())),
        }
        // make-default: the new system's installer.
        let make = BootDefault { system: NEW.into() }.command().unwrap();
        assert_eq!(exec(&w, &host, make).await, Some(0));
        if loader == Loader::SystemdBoot {
            let done = reads.bootloader(&host).await.unwrap();
            assert_eq!(done.default.as_deref(), Some("nixos-generation-42.conf"));
        }

        let calls = nh.fakes.calls();
        let want_once = match via {
            OneShotVia::Bootctl => format!("bootctl [set-oneshot] [{entry}]"),
            OneShotVia::GrubReboot => format!("grub-reboot [{entry}]"),
        };
        let at = |want: &str| {
            calls
                .iter()
                .position(|c| c == want)
                .unwrap_or_else(|| panic!("{loader:?}: no `{want}` in {calls:#?}"))
        };
        let keep_at = at(&format!("sudo [{OLD}/bin/switch-to-configuration] [boot]"));
        let once_at = at(&want_once);
        let make_at = at(&format!("sudo [{NEW}/bin/switch-to-configuration] [boot]"));
        assert!(keep_at < once_at && once_at < make_at, "{calls:#?}");
        // Never the persistent EFI default.
        assert!(
            !calls.iter().any(|c| c.contains("[set-default]")),
            "{calls:#?}"
        );
    }
}
