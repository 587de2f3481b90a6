//! The recovery reads against the real test sshd: the RTT-corrected clock offset (the sshd
//! runs on this machine, so the offset is zero within its uncertainty), the secrets' `stat`
//! and the certificate read through the real shell.

use crate::common::ssh as ssh_support;

use std::time::Duration;

use homeinfra_tui::config::{RecoveryConfig, SshConfig};
use homeinfra_tui::inventory::{Inventory, Role};
use homeinfra_tui::model::recovery::SecretState;
use homeinfra_tui::sources::ssh;
use ssh_support::*;

#[test]
fn clock_offset_secrets_and_certs_over_the_real_sshd() {
    let Some(s) = shared() else { return };
    let cfg = SshConfig {
        identity_files: vec![s.key.clone()],
        known_hosts: Some(s.known_hosts.clone()),
        connect_timeout_secs: 10,
        command_timeout_secs: 20,
        ..Default::default()
    };
    let inv = Inventory {
        hosts: vec![crate::common::ssh_host(
            "good",
            Role::Server,
            "192.0.2.11".parse().expect("ip"),
            s.port,
            &s.user,
        )],
        ..Default::default()
    };
    let rc = RecoveryConfig::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hosts = rt.block_on(ssh::gather_once_with(
        &cfg,
        Some(&rc),
        &inv,
        Duration::from_secs(20),
    ));
    let facts = hosts["good"]
        .data
        .clone()
        .expect("facts from the real sshd");
    let rec = facts.recovery;
    let clock = rec.clock.expect("clock read");
    let offset = clock.offset_ms.expect("an offset sample");
    let half_rtt = clock.uncertainty_ms.expect("its uncertainty");
    assert!(half_rtt > 0.0 && half_rtt < 2_000.0, "{half_rtt} ms");
    // Same machine, same clock: |offset| within the round trip (plus date's own start-up).
    assert!(
        offset.abs() <= half_rtt + 50.0,
        "offset {offset} ms ± {half_rtt} ms"
    );
    // The stat of /run/secrets/k3s_token went through the real shell and was read back (or
    // sudo refused, and that is said).
    match &rec.secrets {
        Some(secrets) => {
            assert_eq!(secrets.len(), 1);
            assert_eq!(secrets[0].path, "/run/secrets/k3s_token");
            if let SecretState::Present { mode, .. } = secrets[0].state {
                assert!(mode <= 0o7777);
            }
        }
        None => assert!(
            rec.errors.iter().any(|e| e.starts_with("secrets:")),
            "{:?}",
            rec.errors
        ),
    }
    // Certificates: read (no k3s here: none found), or refused by sudo — said so, not hidden.
    assert!(
        rec.certs.as_ref().is_some_and(|c| c.is_empty())
            || rec.errors.iter().any(|e| e.starts_with("certificates:")),
        "{:?} {:?}",
        rec.certs,
        rec.errors
    );
}
