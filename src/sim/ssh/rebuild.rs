//! What `nixos-rebuild` does to a simulated host: a switch to a new generation (streamed,
//! time scaled) and a rollback to the previous one.

use super::SSH_USER;
use super::answer::Out;
use super::host::{Generation, KERNELS, SimHost, VERSIONS, lock, store_hash};
use crate::sim::World;

/// `nixos-rebuild switch`: streams build and activation lines (time scaled) and makes a new
/// generation current; a host's first switch brings a newer kernel (reboot needed). Fails
/// (exit 1, nothing changed) with the `switch_fails` quirk.
pub(super) async fn switch(world: &World, host: &SimHost, out: &Out<'_>) -> u32 {
    let (next, path) = {
        let s = host.sync(world);
        let number = s.generations.iter().map(|g| g.number).max().unwrap_or(0) + 1;
        // The flake's system: a newer release with a newer kernel than the one installed at
        // start (so a host's first switch needs a reboot, a second one does not).
        let version = VERSIONS[2].to_string();
        let kernel = KERNELS[1].to_string();
        let g = Generation {
            number,
            version,
            kernel,
        };
        let path = host.system_path(&g);
        (g, path)
    };
    let step = world.delay(0.25);
    let drv = format!(
        "/nix/store/{}-nixos-system-{}-{}.drv",
        store_hash(&path),
        host.hostname,
        next.version
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
    {
        let mut s = host.sync(world);
        s.generations.push(next.clone());
        s.current = s.generations.len() - 1;
        let differs = s.booted.kernel != next.kernel;
        drop(s);
        world.installed(&host.hostname, &next.version, &next.kernel);
        if differs {
            world.set_reboot_needed(&host.hostname, true);
        }
    }
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
    let back = {
        let mut s = host.sync(world);
        if s.current == 0 {
            None
        } else {
            let from = s.generations[s.current].number;
            s.current -= 1;
            let g = s.generations[s.current].clone();
            let differs = s.booted.kernel != g.kernel;
            Some((from, g, differs))
        }
    };
    let Some((from, g, differs)) = back else {
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
    world.installed(&host.hostname, &g.version, &g.kernel);
    world.set_reboot_needed(&host.hostname, differs);
    0
}
