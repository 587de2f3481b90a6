//! What `nixos-rebuild` does to a simulated host: a switch to a new generation (streamed,
//! time scaled) and a rollback to the previous one; and the revert timer armed before a
//! switch (`systemd-run --on-active=…`), which fires after its delay in wall-clock seconds
//! (not scaled: the engine waits in real time too), or is disarmed (`systemctl stop`).

use std::sync::Arc;
use std::time::Duration;

use super::SSH_USER;
use super::answer::Out;
use super::host::{SimHost, SimRevert, lock, store_hash};
use crate::probes::revert::{ArmRevert, Disarm, RevertTimer};
use crate::sim::World;

/// `systemd-run … --unit=homeinfra-revert-… /bin/sh -c '…'`: arm the revert to the generation
/// whose store path the command names (exit 1 when none has it, or the unit exists).
pub(super) async fn arm_revert(
    world: &Arc<World>,
    host: &Arc<SimHost>,
    a: &ArmRevert,
    out: &Out<'_>,
) -> u32 {
    let refused = {
        let mut s = host.sync(world);
        if s.revert.as_ref().is_some_and(|r| r.unit == a.unit) {
            Some(format!(
                "Failed to start transient timer unit: Unit {}.timer was already loaded or has a fragment file.\n",
                a.unit
            ))
        } else if host
            .systems(world)
            .generations
            .iter()
            .any(|g| g.system.path() == a.previous)
        {
            s.revert = Some(SimRevert {
                unit: a.unit.clone(),
                previous: a.previous.clone(),
                fired: false,
            });
            None
        } else {
            Some(format!(
                "sh: {}/sw/bin/nix-env: not found (no such system on this host)\n",
                a.previous
            ))
        }
    };
    if let Some(why) = refused {
        out.stderr(why).await;
        return 1;
    }
    out.stderr(format!(
        "Running timer as unit: {}.timer\nWill run service as unit: {}.service\n",
        a.unit, a.unit
    ))
    .await;
    let (world, host, unit, secs) = (world.clone(), host.clone(), a.unit.clone(), a.secs);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        fire_revert(&world, &host, &unit);
    });
    0
}

/// The revert timer fires: the profile set back, the previous system re-activated, the
/// network (if a switch broke it) working again.
fn fire_revert(world: &World, host: &SimHost, unit: &str) {
    let previous = {
        let mut s = host.sync(world);
        let Some(r) = s.revert.as_mut().filter(|r| r.unit == unit && !r.fired) else {
            return;
        };
        r.fired = true;
        r.previous.clone()
    };
    world.revert_host(&host.hostname, &previous);
    world.network_back(&host.hostname);
}

/// `systemctl stop homeinfra-revert-….timer`: exit 5 when it is not loaded.
pub(super) async fn disarm(world: &World, host: &SimHost, d: &Disarm, out: &Out<'_>) -> u32 {
    let found = {
        let mut s = host.sync(world);
        match &s.revert {
            Some(r) if r.unit == d.unit => {
                s.revert = None;
                true
            }
            _ => false,
        }
    };
    if found {
        0
    } else {
        out.stderr(format!(
            "Failed to stop {}.timer: Unit {}.timer not loaded.\n",
            d.unit, d.unit
        ))
        .await;
        5
    }
}

/// The revert timer's state as `systemctl show` gives it.
pub(super) fn revert_timer(world: &World, host: &SimHost, unit: &str) -> RevertTimer {
    match &host.sync(world).revert {
        Some(r) if r.unit == unit && r.fired => RevertTimer::Fired,
        Some(r) if r.unit == unit => RevertTimer::Armed,
        _ => RevertTimer::Gone,
    }
}

/// `nixos-rebuild switch`: streams build and activation lines (time scaled) and makes the
/// flake's system for the host current (`crate::sim::systems`: the default lock brings a
/// newer kernel, so a host's first switch needs a reboot, a second one changes nothing); k3s
/// restarts with the new system's version. Fails (exit 1, nothing changed) with the
/// `switch_fails` quirk.
pub(super) async fn switch(world: &World, host: &SimHost, out: &Out<'_>) -> u32 {
    let Some(target) = world.flake_system(&host.hostname) else {
        out.stderr(format!(
            "error: flake does not provide attribute 'nixosConfigurations.{}'\n",
            host.hostname
        ))
        .await;
        return 1;
    };
    let path = target.path();
    let step = world.delay(0.25);
    let drv = format!(
        "/nix/store/{}-nixos-system-{}-{}.drv",
        store_hash(&path),
        host.hostname,
        target.pins.nixos
    );
    out.stderr("building the system configuration...\n").await;
    tokio::time::sleep(step).await;
    out.stderr(format!(
        "these 2 derivations will be built:\n  {drv}\n  /nix/store/{}-etc.drv\n",
        store_hash(&drv)
    ))
    .await;
    tokio::time::sleep(step).await;
    out.stderr(format!("building '{drv}'...\n")).await;
    tokio::time::sleep(step).await;
    if lock(&host.quirks).switch_fails {
        out.stderr(format!(
            "error: builder for '{drv}' failed with exit code 1;\n       last 1 log lines:\n       > error: collision between two packages in the system path\n"
        ))
        .await;
        return 1;
    }
    out.stderr("activating the configuration...\nsetting up /etc...\n")
        .await;
    tokio::time::sleep(step).await;
    world.switch_to_flake(&host.hostname);
    out.stderr(format!(
        "reloading user units for {SSH_USER}...\nrestarting sysinit-reactivation.target\n"
    ))
    .await;
    tokio::time::sleep(step).await;
    out.stdout(format!("{path}\n")).await;
    if world.faults().switch_breaks_network {
        // The new system's network does not come up: the connection goes with it.
        world.network_lost(&host.hostname);
    }
    0
}

/// `nixos-rebuild switch --rollback`: back to the previous generation (exit 1 when there is
/// none); reboot needed when its kernel is not the booted one.
pub(super) async fn rollback(world: &World, host: &SimHost, out: &Out<'_>) -> u32 {
    let Some((from, g)) = world.rollback_host(&host.hostname) else {
        out.stderr("error: no previous generation to roll back to\n")
            .await;
        return 1;
    };
    out.stderr(format!(
        "switching profile from version {from} to {}\n",
        g.number
    ))
    .await;
    tokio::time::sleep(world.delay(0.25)).await;
    out.stderr("activating the configuration...\nsetting up /etc...\n")
        .await;
    tokio::time::sleep(world.delay(0.25)).await;
    0
}
