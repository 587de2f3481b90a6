//! A simulated host's recovery state, as the recovery probes render it: k3s's certificate
//! files (real certificates made with rcgen when first asked, leaves expiring a year after
//! the cluster was built, CAs after ten; `cert-expiring` makes one leaf expire in 40 days), the
//! sops-nix secrets (`secret-missing`), the clock (`clock-skew`).

use std::collections::BTreeSet;

use super::host::{SimHost, lock};
use crate::model::recovery::SecretState;
use crate::probes::certs::{AGENT_DIR, CertFilesProbe, PemFile, SERVER_TLS_DIR};
use crate::probes::clock::ClockSync;
use crate::probes::secrets::SecretsProbe;
use crate::sim::World;

/// The leaf `cert-expiring` shortens.
pub const EXPIRING_FILE: &str = "serving-kube-apiserver.crt";
/// Days left on that leaf.
pub const EXPIRING_DAYS: i64 = 40;

/// (file, CN, is CA) under `server/tls`.
const SERVER_FILES: &[(&str, &str, bool)] = &[
    ("client-ca.crt", "k3s-client-ca", true),
    ("server-ca.crt", "k3s-server-ca", true),
    ("request-header-ca.crt", "k3s-request-header-ca", true),
    ("client-admin.crt", "system:admin", false),
    (
        "client-controller.crt",
        "system:kube-controller-manager",
        false,
    ),
    ("client-scheduler.crt", "system:kube-scheduler", false),
    ("client-supervisor.crt", "system:k3s-supervisor", false),
    ("client-kube-apiserver.crt", "system:apiserver", false),
    ("serving-kube-apiserver.crt", "kube-apiserver", false),
    ("etcd/server-ca.crt", "etcd-server-ca", true),
    ("etcd/server-client.crt", "etcd-server", false),
    ("etcd/peer-server-client.crt", "etcd-peer", false),
];

/// (file, CN, is CA) under `agent/`; `{node}` is the node name.
const AGENT_FILES: &[(&str, &str, bool)] = &[
    ("client-ca.crt", "k3s-client-ca", true),
    ("server-ca.crt", "k3s-server-ca", true),
    ("client-kubelet.crt", "system:node:{node}", false),
    ("serving-kubelet.crt", "{node}", false),
    ("client-kube-proxy.crt", "system:kube-proxy", false),
];

/// The files a host holds: `(path, CN, is CA)`.
fn layout(hostname: &str, server: bool) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    if server {
        for (f, cn, ca) in SERVER_FILES {
            out.push((format!("{SERVER_TLS_DIR}/{f}"), cn.to_string(), *ca));
        }
    }
    for (f, cn, ca) in AGENT_FILES {
        out.push((
            format!("{AGENT_DIR}/{f}"),
            cn.replace("{node}", hostname),
            *ca,
        ));
    }
    out
}

/// Year, month, day of `t` in UTC (rcgen takes whole days).
fn ymd(t: jiff::Timestamp) -> (i32, u8, u8) {
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
    (d.year() as i32, d.month() as u8, d.day() as u8)
}

/// A self-signed certificate for `cn` valid until `not_after` (day precision), as PEM.
fn make_cert(
    key: &rcgen::KeyPair,
    cn: &str,
    not_after: jiff::Timestamp,
    ca: bool,
) -> Option<String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).ok()?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let (y, m, d) = ymd(not_after - jiff::SignedDuration::from_hours(24 * 365));
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(not_after);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.self_signed(key).ok().map(|c| c.pem())
}

/// The certificate files of one host (made once per state of the `cert-expiring` fault).
pub(super) struct CertCache {
    made: Option<(bool, Vec<PemFile>)>,
}

impl CertCache {
    pub(super) fn new() -> Self {
        Self { made: None }
    }
}

impl SimHost {
    /// What the certificates probe finds on this host.
    pub(super) fn cert_files(&self, world: &World, probe: &CertFilesProbe) -> Vec<PemFile> {
        let expiring = world
            .recovery_faults()
            .expiring_cert
            .contains(&self.hostname);
        let mut cache = lock(&self.certs);
        let files = match &cache.made {
            Some((e, files)) if *e == expiring => files.clone(),
            _ => {
                let files = self.make_cert_files(expiring);
                cache.made = Some((expiring, files.clone()));
                files
            }
        };
        // Agents have no server/tls; an agent-only probe does not look there.
        files
            .into_iter()
            .filter(|f| probe.server || !f.path.starts_with(SERVER_TLS_DIR))
            .collect()
    }

    fn make_cert_files(&self, expiring: bool) -> Vec<PemFile> {
        let Ok(key) = rcgen::KeyPair::generate() else {
            return Vec::new();
        };
        let now = jiff::Timestamp::now();
        // Built 41 days ago: leaves have 324 days left, CAs ten years.
        let leaf_end = now + jiff::SignedDuration::from_hours(24 * (365 - 41));
        let ca_end = now + jiff::SignedDuration::from_hours(24 * (3650 - 41));
        let soon = now + jiff::SignedDuration::from_hours(24 * EXPIRING_DAYS);
        layout(&self.hostname, self.is_server())
            .into_iter()
            .filter_map(|(path, cn, ca)| {
                let end = if ca {
                    ca_end
                } else if expiring && path.ends_with(EXPIRING_FILE) {
                    soon
                } else {
                    leaf_end
                };
                make_cert(&key, &cn, end, ca).map(|text| PemFile { path, text })
            })
            .collect()
    }

    /// What `stat` says of each asked path: root:root 0400, 97 bytes, unless missing.
    pub(super) fn secret_states(
        &self,
        world: &World,
        probe: &SecretsProbe,
    ) -> Vec<(String, SecretState)> {
        let missing: BTreeSet<String> = world.recovery_faults().missing_secret;
        probe
            .paths
            .iter()
            .map(|p| {
                let state = if missing.contains(&self.hostname) && p.ends_with("/k3s_token") {
                    SecretState::Missing
                } else {
                    SecretState::Present {
                        owner: "root".into(),
                        group: "root".into(),
                        mode: 0o400,
                        size: 97,
                    }
                };
                (p.clone(), state)
            })
            .collect()
    }

    fn skew_ms(&self, world: &World) -> Option<f64> {
        world
            .recovery_faults()
            .clock_skew_ms
            .get(&self.hostname)
            .copied()
    }

    /// timedated's view (systemd-timesyncd; a skewed clock is not synchronised).
    pub(super) fn clock_sync(&self, world: &World) -> ClockSync {
        ClockSync {
            ntp_synchronized: Some(self.skew_ms(world).is_none()),
            chrony: None,
        }
    }

    /// The host's clock now, in ns since the epoch.
    pub(super) fn clock_now(&self, world: &World) -> i128 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now + (self.skew_ms(world).unwrap_or(0.0) * 1e6) as i128
    }
}
