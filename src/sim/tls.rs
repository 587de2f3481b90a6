//! A throwaway certificate authority for the simulated API server, k3s style: a server
//! certificate for the loopback addresses and a client certificate for the admin user.

use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// PEM material the kubeconfig needs, and the server's rustls configuration.
pub struct SimTls {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Generate the CA, the server certificate (for `localhost` and the given ips) and an admin
/// client certificate (`CN=system:admin, O=system:masters`, as k3s writes).
pub fn generate(server_ips: &[std::net::IpAddr]) -> Result<SimTls> {
    let ca_key = KeyPair::generate().wrap_err("cannot generate the sim CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "k3s-server-ca@homeinfra-sim");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .wrap_err("cannot sign the sim CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_string(), "kubernetes".to_string()];
    names.extend(server_ips.iter().map(|ip| ip.to_string()));
    let server_key = KeyPair::generate().wrap_err("cannot generate the server key")?;
    let mut sp = CertificateParams::new(names).wrap_err("bad server certificate names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "k3s");
    sp.distinguished_name = dn;
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = sp
        .signed_by(&server_key, &issuer)
        .wrap_err("cannot sign the server certificate")?;

    let client_key = KeyPair::generate().wrap_err("cannot generate the client key")?;
    let mut cp = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "system:admin");
    dn.push(DnType::OrganizationName, "system:masters");
    cp.distinguished_name = dn;
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = cp
        .signed_by(&client_key, &issuer)
        .wrap_err("cannot sign the client certificate")?;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .wrap_err("cannot trust the sim CA")?;
    // Client certificates are optional at the TLS layer: a request without one (or without a
    // bearer token) is answered 401 by the API, as kube-apiserver does.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .wrap_err("cannot build the client certificate verifier")?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> =
        vec![server_cert.der().clone(), ca_cert.der().clone()];
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .wrap_err("cannot choose TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .wrap_err("cannot use the server certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(SimTls {
        ca_pem: ca_cert.pem(),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
        server_config: Arc::new(config),
    })
}
