//! TLS: the server certificate is verified by default, an extra CA bundle is
//! trusted when configured, and a rejected certificate is not retried.

mod provider_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use controller::provider::{AttemptOutcome, Error, IbmSecretsManager, Operation, SecretsManager};
use provider_support::{Recorder, api_key, config, mount_iam, secret_json};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use wiremock::MockServer;

const ID: &str = "tls-secret";

/// A CA (as PEM) and a server configuration with a `127.0.0.1` certificate
/// it issued.
fn pki() -> (String, Arc<rustls::ServerConfig>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    (ca.pem(), Arc::new(server))
}

/// A one-route HTTPS server answering every request with `body`; counts
/// accepted connections.
fn serve_tls(config: Arc<rustls::ServerConfig>, body: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).expect("session");
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut head = Vec::new();
            let mut chunk = [0; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break, // e.g. the client rejected our certificate
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    (addr, connections)
}

async fn iam() -> MockServer {
    let server = MockServer::start().await;
    mount_iam(&server).await;
    server
}

fn secret_body() -> String {
    secret_json(ID, "arbitrary", json!({"payload": "p"})).to_string()
}

#[tokio::test]
async fn extra_ca_bundle_is_trusted() {
    let (ca_pem, server_config) = pki();
    let (addr, _) = serve_tls(server_config, secret_body());
    let iam = iam().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, ca_pem).expect("write bundle");

    let mut config = config(&format!("https://{addr}"), &iam.uri(), api_key());
    config.ca_bundle = Some(bundle);
    let client = IbmSecretsManager::new(&config).expect("client");
    let secret = client.get_secret(ID).await.expect("TLS with our CA");
    assert_eq!(secret.metadata.id, ID);
}

#[tokio::test]
async fn unknown_certificate_is_refused_and_not_retried() {
    let (_, server_config) = pki();
    let (addr, connections) = serve_tls(server_config, secret_body());
    let iam = iam().await;
    let recorder = Arc::new(Recorder::default());
    let client = IbmSecretsManager::with_observer(
        &config(&format!("https://{addr}"), &iam.uri(), api_key()),
        recorder.clone(),
    )
    .expect("client");

    let error = client.get_secret(ID).await.expect_err("untrusted");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(recorder.attempts(Operation::GetSecret), [AttemptOutcome::Transport]);
    assert!(recorder.retry_delays().is_empty());
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[test]
fn unusable_ca_bundles_are_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").expect("write");
    for bundle in [dir.path().join("absent.pem"), empty] {
        let mut config = config("https://127.0.0.1:9", "https://127.0.0.1:9", api_key());
        config.ca_bundle = Some(bundle);
        let error = IbmSecretsManager::new(&config).expect_err("bad bundle");
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
    }
}
