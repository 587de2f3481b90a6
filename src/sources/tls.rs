//! The TLS setup every HTTP client shares (Mimir, Loki, Alertmanager, etcd, the simulator's
//! closures): rustls with ring, TLS 1.2 and 1.3, and a certificate check that reads the
//! system's root certificates once per process, when a server's certificate is first checked
//! against them. A dashboard whose sources all speak plain HTTP never reads them; one that
//! speaks TLS reads them once, not once per client while the first frame waits.
//!
//! The check itself is rustls' own (`WebPkiServerVerifier`); only the moment its roots are read
//! changes. A client that trusts only its configured CA never reads the system's roots.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which roots a client trusts.
#[derive(Debug)]
pub enum Trust {
    /// The system's roots and these certificates as well (a `ca_file` added to them).
    SystemAnd(Vec<CertificateDer<'static>>),
    /// Only these certificates (etcd's CA).
    Only(Vec<CertificateDer<'static>>),
}

/// The system's root certificates, read once (`SSL_CERT_FILE`/`SSL_CERT_DIR` or the
/// distribution's bundle); `Err` names why none could be used.
fn system_roots() -> &'static Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (_added, ignored) = store.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!("{ignored} of the system's root certificates could not be parsed");
        }
        for e in &found.errors {
            tracing::warn!("reading the system's root certificates: {e}");
        }
        if store.is_empty() {
            let why = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(format!(
                "no usable root certificate on this system{why} (install ca-certificates, or \
                 set SSL_CERT_FILE, or give the section a ca_file)"
            ));
        }
        Ok(Arc::new(store))
    })
}

/// A server certificate check whose roots are put together on first use.
#[derive(Debug)]
struct LazyRoots {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRoots {
    fn verifier(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                let (mut store, extra) = match &self.trust {
                    Trust::SystemAnd(extra) => match system_roots() {
                        Ok(roots) => (RootCertStore::clone(roots), extra),
                        // The configured CA alone still lets its servers be checked.
                        Err(e) if extra.is_empty() => return Err(e.clone()),
                        Err(_) => (RootCertStore::empty(), extra),
                    },
                    Trust::Only(extra) => (RootCertStore::empty(), extra),
                };
                for c in extra {
                    store
                        .add(c.clone())
                        .map_err(|e| format!("a configured CA certificate is not usable: {e}"))?;
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.provider.clone())
                    .build()
                    .map_err(|e| format!("cannot check server certificates: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates of a PEM bundle (a CA file); `Err` says what is wrong with it.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

/// A client certificate chain and its key, from PEM (etcd's client certificate).
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, String> {
        let chain = pem_certificates(cert).map_err(|e| format!("certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| format!("key: no PEM private key in it ({e})"))?;
        Ok(Self { chain, key })
    }
}

/// The rustls configuration of one HTTP client (for `reqwest`'s `tls_backend_preconfigured`).
pub fn client_config(
    trust: Trust,
    identity: Option<Identity>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(LazyRoots {
        trust,
        provider: provider.clone(),
        verifier: OnceLock::new(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .map_err(|e| format!("the client certificate and key do not go together: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::KeyPair, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (key, pem)
    }

    #[test]
    fn pem_bundles_and_identities_are_read_or_refused_with_a_reason() {
        let (key, pem) = ca();
        assert_eq!(pem_certificates(pem.as_bytes()).unwrap().len(), 1);
        assert!(
            pem_certificates(b"not pem")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let id = Identity::from_pem(pem.as_bytes(), key.serialize_pem().as_bytes());
        assert!(id.is_ok());
        let e = Identity::from_pem(pem.as_bytes(), b"nothing")
            .err()
            .unwrap();
        assert!(e.starts_with("key:"), "{e}");
        // A key that is not the certificate's is refused when the configuration is built.
        let other = rcgen::KeyPair::generate().unwrap();
        let id = Identity::from_pem(pem.as_bytes(), other.serialize_pem().as_bytes()).unwrap();
        let e = client_config(Trust::Only(vec![]), Some(id)).err().unwrap();
        assert!(e.contains("do not go together"), "{e}");
    }

    #[test]
    fn roots_are_put_together_on_first_check_only() {
        let (_, pem) = ca();
        let certs = pem_certificates(pem.as_bytes()).unwrap();
        let v = LazyRoots {
            trust: Trust::Only(certs),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            verifier: OnceLock::new(),
        };
        assert!(v.verifier.get().is_none());
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.verifier.get().is_none(), "schemes need no roots");
        assert!(v.verifier().is_ok());
        assert!(v.verifier.get().is_some());
        // No root at all: every check fails, with the reason.
        let none = LazyRoots {
            trust: Trust::Only(vec![]),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            verifier: OnceLock::new(),
        };
        let e = none.verifier().err().unwrap();
        assert!(
            e.to_string().contains("cannot check server certificates"),
            "{e}"
        );
    }
}
