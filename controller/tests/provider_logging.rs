//! Captures everything logged at trace level, by our code and by the HTTP
//! stack, while the client exchanges tokens, reads secrets, retries and
//! fails, and asserts that no secret value, API key, compute-resource token
//! or access token appears in it.

mod provider_support;

use std::sync::Arc;

use controller::provider::{IbmSecretsManager, SecretsManager};
use provider_support::{
    API_KEY, LogCapture, Recorder, access_token, api_key, config, mount_iam, secret_json, trusted_profile,
};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PAYLOAD: &str = "PAYLOAD-VALUE-9f1c";
const PASSWORD: &str = "PASSWORD-VALUE-7c2a";
const KV_VALUE: &str = "KV-VALUE-3b8e";
const HMAC_SECRET: &str = "HMAC-SECRET-5d4b";
const PRIVATE_KEY: &str = "PRIVATE-KEY-6e1f";
const IAM_KEY: &str = "IAM-KEY-VALUE-2a9d";
const MALFORMED: &str = "MALFORMED-VALUE-8e3a";
const CR_TOKEN: &str = "CR-TOKEN-VALUE-4f7b";

async fn get(server: &MockServer, id: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/secrets/{id}")))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn mount_secrets(server: &MockServer) {
    let ok = |id: &str, secret_type: &str, values| {
        ResponseTemplate::new(200).set_body_json(secret_json(id, secret_type, values))
    };
    get(server, "arbitrary", ok("arbitrary", "arbitrary", json!({"payload": PAYLOAD}))).await;
    get(
        server,
        "userpass",
        ok("userpass", "username_password", json!({"username": "admin", "password": PASSWORD})),
    )
    .await;
    get(server, "kv", ok("kv", "kv", json!({"data": {"nested": {"key": KV_VALUE}}}))).await;
    get(
        server,
        "cos",
        ok(
            "cos",
            "service_credentials",
            json!({"credentials": {"cos_hmac_keys": {"access_key_id": "AK", "secret_access_key": HMAC_SECRET}}}),
        ),
    )
    .await;
    get(
        server,
        "cert",
        ok("cert", "private_cert", json!({"certificate": "CERT", "private_key": PRIVATE_KEY})),
    )
    .await;
    get(server, "iam", ok("iam", "iam_credentials", json!({"api_key": IAM_KEY}))).await;
    get(
        server,
        "malformed",
        ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"id": "malformed", "secret_type": "arbitrary", "payload": {MALFORMED}}}"#),
            "application/json",
        ),
    )
    .await;
    get(
        server,
        "wrong-type",
        ok("wrong-type", "username_password", json!({"username": "u", "password": [MALFORMED]})),
    )
    .await;
    get(server, "missing", ResponseTemplate::new(404)).await;
    // The first token is refused once, then throttled once, then served.
    Mock::given(method("GET"))
        .and(path("/api/v2/secrets/rotated"))
        .and(header("authorization", format!("Bearer {}", access_token(1)).as_str()))
        .respond_with(ResponseTemplate::new(401))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/secrets/rotated"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(server)
        .await;
    get(server, "rotated", ok("rotated", "arbitrary", json!({"payload": PAYLOAD}))).await;
}

#[tokio::test]
async fn nothing_secret_reaches_the_logs() {
    let (capture, _guard) = LogCapture::start();

    let server = MockServer::start().await;
    mount_iam(&server).await;
    mount_secrets(&server).await;
    let client = IbmSecretsManager::with_observer(
        &config(&server.uri(), &server.uri(), api_key()),
        Arc::new(Recorder::default()),
    )
    .expect("client");

    for (id, property) in [
        ("arbitrary", None),
        ("userpass", Some("password")),
        ("userpass", None),
        ("kv", Some("nested.key")),
        ("cos", Some("credentials.cos_hmac_keys.secret_access_key")),
        ("cert", Some("private_key")),
        ("iam", None),
        ("rotated", None),
    ] {
        let secret = client.get_secret(id).await.expect(id);
        let value = secret.value(property).expect("value");
        assert!(!value.expose_secret().is_empty());
        // What a careless caller might log.
        tracing::info!(?secret, %value, ?value, "read a secret");
        let missing = secret.value(Some("no.such.property")).expect_err("missing");
        tracing::warn!(error = %missing, ?missing, "extraction failed");
    }
    for id in ["malformed", "wrong-type", "missing"] {
        let error = client.get_secret(id).await.expect_err(id);
        tracing::warn!(%error, ?error, "read failed");
    }
    tracing::info!(?client, "client state");

    // A trusted-profile client, so a compute-resource token goes out too.
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, CR_TOKEN).expect("write");
    let profile_client = IbmSecretsManager::new(&config(
        &server.uri(),
        &server.uri(),
        trusted_profile("Profile-1", "sync", token_file),
    ))
    .expect("client");
    profile_client.get_secret("arbitrary").await.expect("via profile");
    tracing::info!(client = ?profile_client, "profile client state");

    let logs = capture.text();
    assert!(logs.contains("status=429"), "trace output was captured:\n{logs}");
    assert!(logs.contains("get_secret"), "spans were captured");
    for forbidden in [
        API_KEY,
        CR_TOKEN,
        &access_token(1),
        &access_token(2),
        &access_token(3),
        PAYLOAD,
        PASSWORD,
        KV_VALUE,
        HMAC_SECRET,
        PRIVATE_KEY,
        IAM_KEY,
        MALFORMED,
    ] {
        assert!(!logs.contains(forbidden), "`{forbidden}` leaked into the logs:\n{logs}");
    }
}
