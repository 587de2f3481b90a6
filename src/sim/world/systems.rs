//! Each host's NixOS generations and the flake that builds them, as the world keeps them: the
//! SSH face's `nixos-rebuild switch` activates the flake's system for the host, a rollback
//! goes back a generation, a reboot boots the current one; the node's kubelet version, OS
//! image and kernel follow the system that runs (and the one booted). The control API's store (`/sim/v1/nix/...`) reads the
//! same state.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::World;
use crate::inventory::Inventory;
use crate::sim::resources::NODES;
use crate::sim::sync::lock;
use crate::sim::systems::{Flake, Generation, HostSystems, Pins, Store, System};

/// The systems part of the world.
#[derive(Debug)]
pub(super) struct SystemsState {
    flake: Flake,
    store: Store,
    /// By hostname.
    hosts: BTreeMap<String, HostSystems>,
}

impl SystemsState {
    pub(super) fn new(inv: &Inventory) -> Self {
        let mut store = Store::default();
        let mut hosts = BTreeMap::new();
        for (i, h) in inv.hosts.iter().enumerate() {
            let mut hs = HostSystems::installed(i, &h.hostname, h.role);
            for g in &mut hs.generations {
                g.system = store.add((*g.system).clone());
            }
            hs.booted = hs.current().system.clone();
            hosts.insert(h.hostname.clone(), hs);
        }
        let mut s = Self {
            flake: Flake::default(),
            store,
            hosts,
        };
        s.register_targets(inv);
        s
    }

    /// The flake's systems are in the store (they are "built" on demand, instantly).
    fn register_targets(&mut self, inv: &Inventory) {
        for h in &inv.hosts {
            self.store
                .add(System::of(&h.hostname, h.role, &self.flake.pins));
        }
    }
}

impl World {
    /// The hostname of a host given by hostname or inventory id.
    fn hostname_of(&self, host: &str) -> Option<String> {
        self.inventory
            .by_name(host)
            .or_else(|| self.inventory.host(host))
            .map(|h| h.hostname.clone())
    }

    /// A host's generations (by hostname or id).
    pub fn host_systems(&self, host: &str) -> Option<HostSystems> {
        let name = self.hostname_of(host)?;
        lock(&self.systems).hosts.get(&name).cloned()
    }

    /// What the flake builds for a host now.
    pub fn flake_system(&self, host: &str) -> Option<Arc<System>> {
        let h = self
            .inventory
            .by_name(host)
            .or_else(|| self.inventory.host(host))?;
        let mut s = lock(&self.systems);
        let sys = System::of(&h.hostname, h.role, &s.flake.pins);
        Some(s.store.add(sys))
    }

    /// The flake's lock fingerprint (changes with every new lock).
    pub fn flake_fingerprint(&self) -> String {
        lock(&self.systems).flake.fingerprint()
    }

    /// A system of the simulated store by its path.
    pub fn store_system(&self, path: &str) -> Option<Arc<System>> {
        lock(&self.systems).store.get(path)
    }

    /// Pin another lock in the flake (scenarios).
    pub(super) fn set_flake_pins(&self, pins: Pins) {
        let mut s = lock(&self.systems);
        s.flake.set(pins);
        let inv = self.inventory.clone();
        s.register_targets(&inv);
    }

    /// `nix flake update`: the flake's lock moves to the next nixpkgs revision (a new kernel
    /// patch: every host has an update that reboots). Returns the new lock's fingerprint.
    pub fn flake_update(&self) -> String {
        let next = self.flake_pins().next_revision();
        self.set_flake_pins(next);
        self.flake_fingerprint()
    }

    /// The flake's lock now.
    pub(super) fn flake_pins(&self) -> Pins {
        lock(&self.systems).flake.pins.clone()
    }

    /// `nixos-rebuild switch`: the flake's system becomes current (a new generation unless it
    /// already is); k3s restarts with its version. Returns the system and whether the host
    /// changed.
    pub fn switch_to_flake(&self, host: &str) -> Option<(Arc<System>, bool)> {
        let target = self.flake_system(host)?;
        let name = self.hostname_of(host)?;
        let (changed, reboot) = {
            let mut s = lock(&self.systems);
            let hs = s.hosts.get_mut(&name)?;
            let changed = hs.activate(target.clone());
            (changed, hs.reboot_needed())
        };
        if changed {
            self.set_reboot_needed(&name, reboot);
        }
        self.sync_kubelet(&name);
        Some((target, changed))
    }

    /// `nixos-rebuild switch --rollback`: the previous generation becomes current (`None`:
    /// there is none). Returns the generation left and the one now current.
    pub fn rollback_host(&self, host: &str) -> Option<(u64, Generation)> {
        let name = self.hostname_of(host)?;
        let (back, reboot) = {
            let mut s = lock(&self.systems);
            let hs = s.hosts.get_mut(&name)?;
            let back = hs.rollback()?;
            (back, hs.reboot_needed())
        };
        self.set_reboot_needed(&name, reboot);
        self.sync_kubelet(&name);
        Some(back)
    }

    /// The host's revert timer fired: its profile set back to the generation of `previous`
    /// (a store path) and that system re-activated. Returns whether the host had it.
    pub fn revert_host(&self, host: &str, previous: &str) -> bool {
        let Some(name) = self.hostname_of(host) else {
            return false;
        };
        let reboot = {
            let mut s = lock(&self.systems);
            let Some(hs) = s.hosts.get_mut(&name) else {
                return false;
            };
            let Some(i) = hs
                .generations
                .iter()
                .rposition(|g| g.system.path() == previous)
            else {
                return false;
            };
            hs.current = i;
            // The revert runs `switch-to-configuration switch`: the default again.
            hs.default_entry = hs.generations[i].number;
            hs.reboot_needed()
        };
        self.set_reboot_needed(&name, reboot);
        self.sync_kubelet(&name);
        true
    }

    /// The host booted: the one-shot entry if one was set (`new-kernel-panics`: its boot
    /// failed already, the default boots), else the default; that system is current and
    /// booted now.
    pub(super) fn boot_current(&self, host: &str) {
        if let Some(hs) = lock(&self.systems).hosts.get_mut(host) {
            hs.boot(false);
        }
        self.sync_kubelet(host);
    }

    /// A reboot starts (`new-kernel-panics`): a one-shot boot of another generation than
    /// the default panics — the entry is consumed and the host resets into its default.
    /// Returns whether it did.
    pub(super) fn oneshot_panics(&self, host: &str) -> bool {
        if !lock(&self.state).faults.new_kernel_panics {
            return false;
        }
        let mut s = lock(&self.systems);
        let Some(hs) = s.hosts.get_mut(host) else {
            return false;
        };
        match hs.oneshot {
            Some(n) if n != hs.default_entry => {
                hs.oneshot = None;
                true
            }
            _ => false,
        }
    }

    /// The host's boot loader (by hostname or id), as the bootloader probe shows it.
    pub fn bootloader(&self, host: &str) -> Option<crate::probes::bootloader::Bootloader> {
        let name = self.hostname_of(host)?;
        lock(&self.systems)
            .hosts
            .get(&name)
            .map(|hs| hs.bootloader())
    }

    /// Give a host another boot loader (`grub-no-saved-default`, tests).
    pub fn set_loader(&self, host: &str, loader: crate::sim::systems::SimLoader) -> bool {
        let Some(name) = self.hostname_of(host) else {
            return false;
        };
        match lock(&self.systems).hosts.get_mut(&name) {
            Some(hs) => {
                hs.loader = loader;
                hs.oneshot = None;
                true
            }
            None => false,
        }
    }

    /// `<system>/bin/switch-to-configuration boot` on a host: `Err` when it has no such
    /// generation.
    pub fn install_boot_default(&self, host: &str, system: &str) -> Result<(), String> {
        let name = self.hostname_of(host).ok_or("no such host")?;
        let mut s = lock(&self.systems);
        let hs = s.hosts.get_mut(&name).ok_or("no such host")?;
        if hs.install_default(system) {
            Ok(())
        } else {
            Err(format!(
                "{system}/bin/switch-to-configuration: No such file or directory"
            ))
        }
    }

    /// `bootctl set-oneshot` / `grub-reboot` on a host.
    pub fn set_oneshot(
        &self,
        host: &str,
        via: crate::probes::bootloader::OneShotVia,
        entry: &str,
    ) -> Result<(), String> {
        let name = self.hostname_of(host).ok_or("no such host")?;
        let mut s = lock(&self.systems);
        let hs = s.hosts.get_mut(&name).ok_or("no such host")?;
        hs.set_oneshot(via, entry)
    }

    /// Make `system` the host's current and booted one, as if deployed and rebooted earlier
    /// (scenarios `no-change`, `drifted-host`).
    pub(super) fn deploy_and_boot(&self, host: &str, system: System) {
        {
            let mut s = lock(&self.systems);
            let system = s.store.add(system);
            if let Some(hs) = s.hosts.get_mut(host) {
                hs.activate(system.clone());
                hs.booted = system;
                hs.oneshot = None;
            }
        }
        self.set_reboot_needed(host, false);
        self.sync_kubelet(host);
    }

    /// The node reports the system its host runs, as the host's facts over SSH say it: the
    /// kubelet of the current system's k3s (restarted by the activation), its NixOS build as
    /// the OS image, the booted kernel. The world's host state keeps both kernels.
    fn sync_kubelet(&self, host: &str) {
        let Some((version, nixos, kernel, booted_kernel)) =
            lock(&self.systems).hosts.get(host).map(|hs| {
                let current = &hs.current().system;
                (
                    current.kubelet_version(),
                    current.pins.nixos.clone(),
                    current.pins.kernel.clone(),
                    hs.booted.pins.kernel.clone(),
                )
            })
        else {
            return;
        };
        let reboot_flag = {
            let mut s = lock(&self.state);
            match s.hosts.get_mut(host) {
                Some(hs) => {
                    hs.kernel = kernel;
                    hs.booted_kernel = booted_kernel.clone();
                    hs.reboot_needed && hs.booted_kernel == hs.kernel
                }
                None => false,
            }
        };
        // The `reboot-needed` scenario: it booted an older kernel (as its facts say).
        let booted_kernel = if reboot_flag {
            crate::sim::build::OLD_KERNEL.to_string()
        } else {
            booted_kernel
        };
        let os_image = crate::sim::build::os_image(&nixos);
        // (An unchanged object is not written again: no watch event.)
        let _ = self.store.modify(&NODES, "", host, |n| {
            let info = &mut n["status"]["nodeInfo"];
            info["kubeletVersion"] = json!(version);
            info["kubeProxyVersion"] = json!(version);
            info["osImage"] = json!(os_image);
            info["kernelVersion"] = json!(booted_kernel);
        });
    }
}
