//! The recovery reads of one host, run after its facts on the same connection: k3s's
//! certificate files (sudo, parsed with x509-parser), the expected sops-nix secrets (`stat`)
//! and the clock's synchronisation in one command ([`RecoveryProbe`], each part read and
//! failing on its own), then the clock's offset from this machine, RTT-corrected: the best of
//! up to three `date +%s.%N` samples (one is enough when its round trip is short),
//! offset = remote − (sent + RTT/2), known to ± RTT/2.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::client::{SshError, SshPool};
use super::ssh_config::Target;
use crate::config::{RecoveryConfig, SecretSpec};
use crate::inventory::Host;
use crate::model::recovery::{ClockState, HostRecovery, SecretFile};
use crate::probes::Probe;
use crate::probes::certs::{CertFilesProbe, inspect};
use crate::probes::clock::{ClockNowProbe, ClockSyncProbe};
use crate::probes::recovery::RecoveryProbe;
use crate::probes::secrets::{SecretsProbe, secret_path};

/// What to read on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// A k3s server (its `server/tls` certificates too).
    pub server: bool,
    pub secrets: Vec<SecretSpec>,
}

impl RecoveryPlan {
    /// The plan for `host` under `[recovery]`: the secrets of `[recovery] secrets`, then those
    /// the host names in the inventory (`"secrets"`, with `[recovery]`'s owner and mode);
    /// `None` when `host_checks` is off.
    pub fn for_host(rc: &RecoveryConfig, host: &Host) -> Option<Self> {
        rc.host_checks.then(|| {
            let mut secrets = rc.secret_specs();
            for name in &host.secrets {
                if !secrets.iter().any(|s| &s.name == name) {
                    secrets.push(SecretSpec {
                        name: name.clone(),
                        owner: rc.secret_owner.clone(),
                        mode: rc.secret_mode.clone(),
                    });
                }
            }
            Self {
                server: host.role.is_control_plane(),
                secrets,
            }
        })
    }
}

/// At most how many clock samples to take (the one with the smallest round trip counts).
const CLOCK_SAMPLES: usize = 3;

/// A sample whose round trip is this short (half of it, in ms) needs no other: its
/// uncertainty is already far below any offset worth a finding.
const CLOCK_GOOD_ENOUGH_MS: f64 = 5.0;

/// Read everything the plan asks for: the certificates, secrets and clock-sync reads in one
/// command ([`RecoveryProbe`]), then the clock samples. Each part that fails is named in
/// `errors`; an SSH failure of the connection itself is returned (the facts call reports it
/// already).
pub async fn gather(
    pool: &SshPool,
    target: &Target,
    sudo: bool,
    plan: &RecoveryPlan,
    timeout: Duration,
) -> Result<HostRecovery, SshError> {
    let (probe, specs) = probe_for(sudo, plan);
    let reply = super::ask(pool, target, &probe, timeout).await?;
    let mut out = read_parts(&probe, &specs, &reply);
    let mut clock = out.clock.take().unwrap_or_default();
    match clock_offset(pool, target, timeout).await? {
        Ok((offset, half_rtt)) => {
            clock.offset_ms = Some(offset);
            clock.uncertainty_ms = Some(half_rtt);
        }
        Err(e) => out.errors.push(format!("clock: {e}")),
    }
    out.clock = Some(clock);
    Ok(out)
}

/// The combined probe for `plan`, and the secrets it asks about (spec and path).
fn probe_for(sudo: bool, plan: &RecoveryPlan) -> (RecoveryProbe, Vec<(SecretSpec, String)>) {
    let specs: Vec<(SecretSpec, String)> = plan
        .secrets
        .iter()
        .filter_map(|s| secret_path(&s.name).ok().map(|p| (s.clone(), p)))
        .collect();
    let probe = RecoveryProbe {
        certs: CertFilesProbe {
            sudo,
            server: plan.server,
        },
        secrets: (!specs.is_empty()).then(|| SecretsProbe {
            sudo,
            paths: specs.iter().map(|(_, p)| p.clone()).collect(),
        }),
    };
    (probe, specs)
}

/// What the combined probe's reply says, each part read by its own probe: certificates,
/// secrets and the clock's synchronisation (its offset is measured apart). A part that failed
/// is one sentence in `errors` named after it; the other parts are still read.
fn read_parts(
    probe: &RecoveryProbe,
    specs: &[(SecretSpec, String)],
    reply: &crate::probes::Reply,
) -> HostRecovery {
    let mut out = HostRecovery::default();
    // The combined probe's parser never fails: a missing part is that part's failure.
    let parts = probe.parse(reply).unwrap_or_default();

    match probe.certs.parse(&parts.certs) {
        Ok(files) => {
            let mut certs = Vec::new();
            for f in &files {
                match inspect(f) {
                    Ok(c) => certs.push(c),
                    Err(e) => out.errors.push(format!("certificates: {e}")),
                }
            }
            out.certs = Some(certs);
        }
        Err(e) => out.errors.push(format!("certificates: {e}")),
    }

    if let (Some(sp), Some(r)) = (&probe.secrets, &parts.secrets) {
        match sp.parse(r) {
            Ok(states) => {
                out.secrets = Some(
                    specs
                        .iter()
                        .filter_map(|(spec, path)| {
                            let state = states.iter().find(|(p, _)| p == path)?.1.clone();
                            Some(SecretFile {
                                name: spec.name.clone(),
                                path: path.clone(),
                                expected_owner: spec.owner.clone(),
                                expected_mode: spec.mode_bits().unwrap_or(0o400),
                                state,
                            })
                        })
                        .collect(),
                )
            }
            Err(e) => out.errors.push(format!("secrets: {e}")),
        }
    }

    let mut clock = ClockState::default();
    match ClockSyncProbe.parse(&parts.clock_sync) {
        Ok(s) => {
            clock.synchronized = s.synchronized();
            clock.daemon = s.daemon().map(str::to_string);
        }
        Err(e) => out.errors.push(format!("clock: {e}")),
    }
    out.clock = Some(clock);
    out
}

/// The host's clock minus ours in ms, and half the round trip of the best sample.
pub async fn clock_offset(
    pool: &SshPool,
    target: &Target,
    timeout: Duration,
) -> Result<Result<(f64, f64), String>, SshError> {
    let mut best: Option<(f64, f64)> = None;
    let mut last_err = None;
    for _ in 0..CLOCK_SAMPLES {
        let sent_wall = SystemTime::now();
        let sent = Instant::now();
        let reply = super::ask(pool, target, &ClockNowProbe, timeout).await?;
        let rtt = sent.elapsed();
        let remote_ns = match ClockNowProbe.parse(&reply) {
            Ok(ns) => ns,
            Err(e) => {
                last_err = Some(e.message);
                continue;
            }
        };
        let Ok(sent_ns) = sent_wall.duration_since(UNIX_EPOCH) else {
            return Ok(Err("this machine's clock is before 1970".into()));
        };
        let mid_ns = sent_ns.as_nanos() as i128 + rtt.as_nanos() as i128 / 2;
        let offset_ms = (remote_ns - mid_ns) as f64 / 1e6;
        let half_rtt_ms = rtt.as_secs_f64() * 1e3 / 2.0;
        if best.is_none_or(|(_, h)| half_rtt_ms < h) {
            best = Some((offset_ms, half_rtt_ms));
        }
        if half_rtt_ms <= CLOCK_GOOD_ENOUGH_MS {
            break;
        }
    }
    Ok(best.ok_or_else(|| last_err.unwrap_or_else(|| "no clock sample".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::Reply;
    use crate::probes::clock::ClockSync;
    use crate::probes::recovery::RecoveryReplies;

    /// One combined read, its certificates part refused by sudo: that part is named in the
    /// errors, and the secrets and the clock's synchronisation are still read.
    #[test]
    fn each_part_of_the_combined_read_fails_on_its_own() {
        let rc = RecoveryConfig::default();
        let host = crate::testing::host("a", crate::inventory::Role::Server, [192, 0, 2, 10]);
        let plan = RecoveryPlan::for_host(&rc, &host).unwrap();
        let (probe, specs) = probe_for(true, &plan);
        let secrets = probe.secrets.clone().unwrap();
        let state = crate::model::recovery::SecretState::Present {
            owner: "root".into(),
            group: "root".into(),
            mode: 0o400,
            size: 97,
        };
        let sync = ClockSync {
            ntp_synchronized: Some(true),
            chrony: None,
        };
        let refused = Reply {
            stderr: "sudo: a password is required\n".into(),
            exit_status: Some(1),
            ..Default::default()
        };
        let replies = RecoveryReplies {
            certs: refused.clone(),
            secrets: Some(secrets.render(&vec![(secrets.paths[0].clone(), state.clone())])),
            clock_sync: ClockSyncProbe.render(&sync),
        };
        let rec = read_parts(&probe, &specs, &probe.render(&replies));
        assert_eq!(
            rec.errors,
            [
                "certificates: the certificates probe ended with exit status 1: sudo: a password is required"
            ]
        );
        assert_eq!(rec.certs, None);
        let got = rec.secrets.expect("secrets read");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].name.as_str(), &got[0].state), ("k3s_token", &state));
        let clock = rec.clock.expect("clock read");
        assert_eq!(clock.synchronized, Some(true));
        assert_eq!(clock.daemon.as_deref(), Some("systemd-timesyncd"));

        // Now the secrets and the clock fail, the certificates read: each named.
        let replies = RecoveryReplies {
            certs: probe.certs.render(&vec![]),
            secrets: Some(refused.clone()),
            clock_sync: Reply {
                stdout: "chrony=a,b\n".into(),
                ..Reply::ok("")
            },
        };
        let rec = read_parts(&probe, &specs, &probe.render(&replies));
        assert_eq!(rec.certs, Some(vec![]));
        assert_eq!(rec.secrets, None);
        assert_eq!(rec.errors.len(), 2, "{:?}", rec.errors);
        assert!(rec.errors[0].starts_with("secrets: the secrets probe ended with exit status 1"));
        assert!(rec.errors[1].starts_with("clock: unreadable chronyc tracking"));
    }

    #[test]
    fn a_hosts_own_secrets_join_the_configs() {
        let rc = RecoveryConfig {
            secret_owner: "k3s".into(),
            ..Default::default()
        };
        let mut host = crate::testing::host("a", crate::inventory::Role::Agent, [192, 0, 2, 10]);
        let names = |p: &RecoveryPlan| -> Vec<String> {
            p.secrets.iter().map(|s| s.name.clone()).collect()
        };
        let plain = RecoveryPlan::for_host(&rc, &host).unwrap();
        assert_eq!(names(&plain), ["k3s_token"]);
        host.secrets = vec!["k3s_token".into(), "wg/key".into()];
        let plan = RecoveryPlan::for_host(&rc, &host).unwrap();
        assert_eq!(
            names(&plan),
            ["k3s_token", "wg/key"],
            "config's first, once each"
        );
        assert!(
            plan.secrets
                .iter()
                .all(|s| s.owner == "k3s" && s.mode == "0400")
        );
        let off = RecoveryConfig {
            host_checks: false,
            ..Default::default()
        };
        assert_eq!(RecoveryPlan::for_host(&off, &host), None);
    }
}
