//! `[mimir] ca_file`: a Mimir behind TLS with a private CA (the sim's face served over HTTPS on
//! 127.0.0.1) is trusted with the CA file and refused without it.

use std::sync::Arc;

use homeinfra_tui::config::MimirConfig;
use homeinfra_tui::inventory;
use homeinfra_tui::sim::promql;
use homeinfra_tui::sources::mimir::Mimir;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

fn inv() -> inventory::Inventory {
    inventory::parse(
        std::path::Path::new("hosts.json"),
        r#"{"instance_1": {"hostname":"node1","system":"x86_64-linux","profile":"p","role":"init","region":"r","zone":"z","ip":"192.0.2.11","gateway":"192.0.2.1","maskLength":24}}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn ca_file_is_used() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A private CA and a server certificate for 127.0.0.1.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "homeinfra test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let inv = inv();
    let (_g, app) = promql::for_inventory(&inv);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });

    let mut cfg = MimirConfig {
        url: Some(format!("https://{addr}/prometheus")),
        timeout_secs: 5,
        ..Default::default()
    };
    let now = jiff::Timestamp::now().as_second();
    // Without the CA: refused, and the message says why.
    let err = Mimir::new(&cfg)
        .unwrap()
        .refresh(&inv, now)
        .await
        .unwrap_err();
    let low = err.to_lowercase();
    assert!(
        low.contains("certificate") || low.contains("issuer"),
        "{err}"
    );
    // With it: data.
    cfg.auth.ca_file = Some(ca_file);
    let st = Mimir::new(&cfg).unwrap().refresh(&inv, now).await.unwrap();
    assert!(!st.hosts["instance_1"].is_no_data());
    // A missing CA file is a clear startup error naming the file.
    cfg.auth.ca_file = Some(dir.path().join("missing.pem"));
    let e = Mimir::new(&cfg).unwrap_err().to_string();
    assert!(e.contains("ca_file") && e.contains("missing.pem"), "{e}");
}
