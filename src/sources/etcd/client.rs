//! The etcd gateway's HTTP client: only the configured CA is trusted, the client certificate
//! and key are presented; unreadable TLS files are errors naming the file (and k3s' root-only
//! permissions).

use std::path::Path;
use std::time::Duration;

use super::TlsFiles;

/// Read a file for TLS with a message that names it.
fn read_tls_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (k3s keeps it readable by root only: run as root or copy it and set [etcd] "
        } else {
            ""
        };
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("{hint}{what}_file)")
        };
        format!("cannot read etcd {what} file {}: {e}{hint}", path.display())
    })
}

/// An HTTP client with the etcd CA (only that CA is trusted when given) and client
/// certificate. Uses rustls with ring.
pub fn build_client(tls: &TlsFiles, timeout: Duration) -> Result<reqwest::Client, String> {
    // The process-wide provider may already be installed (by main, or a previous call).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trust = match &tls.ca_file {
        Some(ca) => {
            let pem = read_tls_file("ca", ca)?;
            let certs = crate::sources::tls::pem_certificates(&pem)
                .map_err(|e| format!("etcd ca file {}: {e}", ca.display()))?;
            crate::sources::tls::Trust::Only(certs)
        }
        None => crate::sources::tls::Trust::SystemAnd(Vec::new()),
    };
    let identity = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let id = crate::sources::tls::Identity::from_pem(
                &read_tls_file("cert", cert)?,
                &read_tls_file("key", key)?,
            )
            .map_err(|e| {
                format!(
                    "etcd client certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            Some(id)
        }
        (None, None) => None,
        (Some(_), None) => return Err("[etcd] cert_file is set but key_file is not".into()),
        (None, Some(_)) => return Err("[etcd] key_file is set but cert_file is not".into()),
    };
    let config = crate::sources::tls::client_config(trust, identity)
        .map_err(|e| format!("etcd TLS: {e}"))?;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("homeinfra-tui/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| format!("cannot build the etcd HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_file_errors_name_the_file() {
        let tls = TlsFiles {
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..Default::default()
        };
        let e = build_client(&tls, Duration::from_secs(1)).unwrap_err();
        assert!(
            e.starts_with("cannot read etcd ca file /nonexistent/ca.crt:"),
            "{e}"
        );
        let tls = TlsFiles {
            cert_file: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(
            build_client(&tls, Duration::from_secs(1)).unwrap_err(),
            "[etcd] cert_file is set but key_file is not"
        );
    }
}
