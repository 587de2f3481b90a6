//! What `nixos-rebuild` does to a simulated host: a switch to a new generation (streamed,
//! time scaled) and a rollback to the previous one.

use super::SSH_USER;
use super::answer::Out;
use super::host::{SimHost, lock, store_hash};
use crate::sim::World;

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
