//! The certificates probe: k3s's certificate files on a host, read with `sudo` (they are
//! root's) and parsed here with `x509-parser` (never `openssl` on the host). Servers: the
//! files under `/var/lib/rancher/k3s/server/tls/` (and `tls/etcd/`) plus the agent's; agents:
//! `/var/lib/rancher/k3s/agent/` (kubelet's client and serving certificates).

use jiff::Timestamp;

use super::{Kind, Probe, ProbeError, Reply};
use crate::model::recovery::CertInfo;

/// Where k3s keeps a server's certificates.
pub const SERVER_TLS_DIR: &str = "/var/lib/rancher/k3s/server/tls";
/// Where k3s keeps the agent's (kubelet's) certificates.
pub const AGENT_DIR: &str = "/var/lib/rancher/k3s/agent";

/// Print every `*.crt` file of the role's directories, each after a `==> PATH` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertFilesProbe {
    /// Read through `sudo -n` (the files are root's, mode 0600 or 0644 under a 0700 dir).
    pub sudo: bool,
    /// A k3s server (its `server/tls` files too), else an agent.
    pub server: bool,
}

/// One certificate file's text as the host gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: String,
    pub text: String,
}

const MARK: &str = "==> ";

impl CertFilesProbe {
    fn globs(&self) -> String {
        let mut g = Vec::new();
        if self.server {
            g.push(format!("{SERVER_TLS_DIR}/*.crt"));
            g.push(format!("{SERVER_TLS_DIR}/etcd/*.crt"));
        }
        g.push(format!("{AGENT_DIR}/*.crt"));
        g.join(" ")
    }

    /// Every variant the app sends (for the recogniser).
    pub fn all() -> [CertFilesProbe; 4] {
        [
            CertFilesProbe {
                sudo: true,
                server: true,
            },
            CertFilesProbe {
                sudo: true,
                server: false,
            },
            CertFilesProbe {
                sudo: false,
                server: true,
            },
            CertFilesProbe {
                sudo: false,
                server: false,
            },
        ]
    }
}

impl Probe for CertFilesProbe {
    type Output = Vec<PemFile>;
    const KIND: Kind = Kind::Certificates;

    fn command(&self) -> String {
        let script = format!(
            "for f in {}; do [ -f \"$f\" ] && {{ echo \"{MARK}$f\"; cat \"$f\"; }}; done; true",
            self.globs()
        );
        if self.sudo {
            format!("sudo -n sh -c '{script}'")
        } else {
            format!("sh -c '{script}'")
        }
    }

    fn parse(&self, reply: &Reply) -> Result<Vec<PemFile>, ProbeError> {
        reply.require_success(Self::KIND)?;
        let mut out: Vec<PemFile> = Vec::new();
        for line in reply.stdout.lines() {
            if let Some(path) = line.strip_prefix(MARK) {
                out.push(PemFile {
                    path: path.to_string(),
                    text: String::new(),
                });
            } else if let Some(f) = out.last_mut() {
                f.text.push_str(line);
                f.text.push('\n');
            }
        }
        Ok(out)
    }

    fn render(&self, files: &Vec<PemFile>) -> Reply {
        let mut s = String::new();
        for f in files {
            s.push_str(MARK);
            s.push_str(&f.path);
            s.push('\n');
            s.push_str(&f.text);
        }
        Reply::ok(s)
    }
}

/// The first certificate of a PEM file (the leaf: k3s writes the leaf, then its CA chain):
/// subject, expiry, whether it is a CA.
pub fn inspect(file: &PemFile) -> Result<CertInfo, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(file.text.as_bytes())
        .map_err(|e| format!("{}: not a PEM certificate: {e}", file.path))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("{}: cannot parse the certificate: {e}", file.path))?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| cert.subject().to_string());
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| format!("{}: expiry out of range: {e}", file.path))?;
    Ok(CertInfo {
        path: file.path.clone(),
        subject,
        not_after,
        is_ca: cert.is_ca(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real certificate made here with rcgen, expiring at midnight UTC `days` from now.
    fn pem_file(path: &str, cn: &str, days: i64, ca: bool) -> (PemFile, Timestamp) {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let day = (Timestamp::now() + jiff::SignedDuration::from_hours(24 * days))
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after =
            rcgen::date_time_ymd(day.year() as i32, day.month() as u8, day.day() as u8);
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let not_after = day.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
        (
            PemFile {
                path: path.into(),
                text: cert.pem(),
            },
            not_after,
        )
    }

    #[test]
    fn inspects_real_certificates_with_known_expiry() {
        let (leaf, leaf_end) = pem_file(
            "/var/lib/rancher/k3s/server/tls/client-admin.crt",
            "system:admin",
            41,
            false,
        );
        let (ca, ca_end) = pem_file(
            "/var/lib/rancher/k3s/server/tls/client-ca.crt",
            "k3s-client-ca@1749464211",
            3650,
            true,
        );
        // A leaf followed by its CA, as k3s writes it: the leaf is judged.
        let chained = PemFile {
            path: leaf.path.clone(),
            text: format!("{}{}", leaf.text, ca.text),
        };
        let files = vec![chained, ca];
        let probe = CertFilesProbe {
            sudo: true,
            server: true,
        };
        let back = probe.parse(&probe.render(&files)).unwrap();
        let got: Vec<CertInfo> = back.iter().map(|f| inspect(f).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                CertInfo {
                    path: "/var/lib/rancher/k3s/server/tls/client-admin.crt".into(),
                    subject: "system:admin".into(),
                    not_after: leaf_end,
                    is_ca: false,
                },
                CertInfo {
                    path: "/var/lib/rancher/k3s/server/tls/client-ca.crt".into(),
                    subject: "k3s-client-ca@1749464211".into(),
                    not_after: ca_end,
                    is_ca: true,
                },
            ]
        );
        let bad = PemFile {
            path: "/x.crt".into(),
            text: "garbage\n".into(),
        };
        assert!(inspect(&bad).unwrap_err().starts_with("/x.crt: "));
    }

    #[test]
    fn round_trips() {
        for files in [
            vec![],
            vec![PemFile {
                path: "/var/lib/rancher/k3s/agent/client-kubelet.crt".into(),
                text: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            }],
        ] {
            for p in CertFilesProbe::all() {
                assert_eq!(p.parse(&p.render(&files)), Ok(files.clone()));
            }
        }
    }

    #[test]
    fn commands_read_the_role_dirs() {
        let s = CertFilesProbe {
            sudo: true,
            server: true,
        };
        assert!(s.command().starts_with("sudo -n sh -c '"));
        assert!(
            s.command()
                .contains("/var/lib/rancher/k3s/server/tls/*.crt")
        );
        let a = CertFilesProbe {
            sudo: false,
            server: false,
        };
        assert!(!a.command().contains("server/tls"));
        assert!(a.command().contains("/var/lib/rancher/k3s/agent/*.crt"));
    }
}
