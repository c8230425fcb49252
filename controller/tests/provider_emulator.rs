//! The IBM client against the Secrets Manager and IAM emulator over loopback
//! HTTP: every secret type, paging, versions, throttling with and without
//! `Retry-After`, token expiry under concurrency, trusted-profile token
//! rotation, injected server errors and refused tokens.

mod provider_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use controller::provider::{
    AttemptOutcome, AuthConfig, ClientConfig, Error, IbmSecretsManager, ListSecretsParams, Operation,
    SecretType, SecretsManager, VersionRef,
};
use provider_support::{Recorder, concurrent_reads, config, trusted_profile, wait_until};
use serde_json::{Value, json};
use sm_emulator::{CrTokenSource, Emulator, EmulatorConfig, Faults, TrustedProfile};

const EMULATOR_API_KEY: &str = "emulator-api-key";

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("emulator")
}

/// No rate limit, hour-long tokens.
fn unlimited() -> EmulatorConfig {
    EmulatorConfig { rate_limit: 0, ..EmulatorConfig::default() }
}

fn emulator_key() -> AuthConfig {
    AuthConfig::ApiKey { api_key: EMULATOR_API_KEY.into() }
}

/// A client of `emu` with the test retry settings, adjusted by `adjust`.
fn client(emu: &Emulator, adjust: impl FnOnce(&mut ClientConfig)) -> (IbmSecretsManager, Arc<Recorder>) {
    let mut config = config(&emu.url(), &emu.url(), emulator_key());
    adjust(&mut config);
    let recorder = Arc::new(Recorder::default());
    let client = IbmSecretsManager::with_observer(&config, recorder.clone()).expect("client");
    (client, recorder)
}

fn create(emu: &Emulator, body: Value) -> String {
    let secret = emu.store().create_secret(body).expect("create secret");
    secret["id"].as_str().expect("id").to_owned()
}

fn exchanges(emu: &Emulator) -> u64 {
    emu.stats().operation_total("iam_token")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn text(bytes: &controller::provider::SecretBytes) -> String {
    String::from_utf8(bytes.expose_secret().to_vec()).expect("utf8")
}

#[tokio::test]
async fn reads_every_secret_type() {
    let emu = emulator(unlimited()).await;
    let (client, _) = client(&emu, |_| {});
    let cases = [
        (
            json!({"secret_type": "arbitrary", "name": "arb", "payload": "emu-payload"}),
            None,
            Some("emu-payload"),
        ),
        (
            json!({"secret_type": "username_password", "name": "up", "username": "admin", "password": "emu-password"}),
            Some("password"),
            Some("emu-password"),
        ),
        (
            json!({"secret_type": "kv", "name": "kv", "data": {"db": {"host": "h", "port": 5432}}}),
            Some("db.port"),
            Some("5432"),
        ),
        (
            json!({"secret_type": "iam_credentials", "name": "iam", "ttl": "1h", "reuse_api_key": true,
                   "access_groups": ["AccessGroupId-1"]}),
            None,
            None,
        ),
        (
            json!({"secret_type": "service_credentials", "name": "cos", "source_service": {
                "instance": {"crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/acc:guid::"},
                "role": {"crn": "crn:v1:bluemix:public:iam::::serviceRole:Writer"},
                "parameters": {"HMAC": true}}}),
            Some("credentials.cos_hmac_keys.access_key_id"),
            None,
        ),
        (
            json!({"secret_type": "imported_cert", "name": "imported",
                   "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
            Some("certificate"),
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ),
        (
            json!({"secret_type": "public_cert", "name": "public", "common_name": "example.com"}),
            Some("private_key"),
            None,
        ),
        (
            json!({"secret_type": "private_cert", "name": "private", "certificate_template": "tmpl",
                   "common_name": "svc.example"}),
            Some("certificate"),
            None,
        ),
        (
            json!({"secret_type": "custom_credentials", "name": "custom", "configuration": "provider"}),
            None,
            None,
        ),
    ];
    for (body, property, expected) in cases {
        let secret_type: SecretType = body["secret_type"].as_str().expect("type").parse().expect("known");
        let id = create(&emu, body);
        let secret = client.get_secret(&id).await.expect("read");
        assert_eq!(secret.data.secret_type(), secret_type);
        assert_eq!(secret.metadata.id, id);
        let value = secret.value(property).unwrap_or_else(|e| panic!("{secret_type}: {e}"));
        match expected {
            Some(expected) => assert_eq!(text(&value), expected, "{secret_type}"),
            None => assert!(!value.expose_secret().is_empty(), "{secret_type}"),
        }

        let metadata = client.get_secret_metadata(&id).await.expect("metadata");
        assert_eq!(metadata.secret_type, secret_type);
        let name = metadata.name.expect("name");
        let by_name = client.get_secret_by_name("default", secret_type, &name).await.expect("by name");
        assert_eq!(by_name.metadata.id, id);
    }
    assert_eq!(exchanges(&emu), 1);
}

#[tokio::test]
async fn pages_and_versions() {
    let emu = emulator(unlimited()).await;
    let (client, _) = client(&emu, |_| {});
    let mut ids: Vec<String> = (0..5)
        .map(|i| {
            create(
                &emu,
                json!({"secret_type": "arbitrary", "name": format!("paged-{i}"), "payload": "v1",
                       "labels": ["paging"]}),
            )
        })
        .collect();
    create(&emu, json!({"secret_type": "arbitrary", "name": "unlabelled", "payload": "x"}));

    let params = ListSecretsParams {
        limit: Some(2),
        match_all_labels: vec!["paging".into()],
        ..ListSecretsParams::default()
    };
    let page = client.list_secrets(&params).await.expect("page");
    assert_eq!(page.total_count, 5);
    assert_eq!(page.secrets.len(), 2);
    assert_eq!(page.next_offset, Some(2));
    let mut listed: Vec<String> =
        client.list_all_secrets(&params).await.expect("all").into_iter().map(|secret| secret.id).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);

    let id = &ids[0];
    emu.store().create_version(id, json!({"payload": "v2"})).expect("rotate");
    for (version, expected) in [(VersionRef::Current, "v2"), (VersionRef::Previous, "v1")] {
        let read = client.get_secret_version(id, &version).await.expect("version");
        assert_eq!(read.metadata.secret_id, *id);
        assert_eq!(text(&read.value(None).expect("payload")), expected);
    }
    let current = client.get_secret_version(id, &VersionRef::Current).await.expect("current");
    let by_id = client
        .get_secret_version(id, &VersionRef::Id(current.metadata.id.clone()))
        .await
        .expect("by version id");
    assert_eq!(text(&by_id.value(None).expect("payload")), "v2");
}

#[tokio::test]
async fn throttling_with_retry_after_is_retried_after_the_given_second() {
    let emu =
        emulator(EmulatorConfig { rate_limit: 2, retry_after: true, ..EmulatorConfig::default() }).await;
    let id = create(&emu, json!({"secret_type": "arbitrary", "name": "hot", "payload": "p"}));
    let (client, recorder) = client(&emu, |config| config.max_retries = 6);

    concurrent_reads(&client, &id, 6).await;

    assert!(emu.stats().throttled > 0, "the rate limit was hit");
    let throttled = recorder
        .attempts(Operation::GetSecret)
        .into_iter()
        .filter(|outcome| *outcome == AttemptOutcome::Status(429))
        .count();
    assert!(throttled > 0);
    let delays = recorder.retry_delays();
    assert_eq!(delays.len(), throttled, "every 429 was retried");
    assert!(delays.iter().all(|delay| *delay == Duration::from_secs(1)), "{delays:?}");
}

#[tokio::test]
async fn throttling_without_retry_after_uses_backoff() {
    let emu =
        emulator(EmulatorConfig { rate_limit: 2, retry_after: false, ..EmulatorConfig::default() }).await;
    let id = create(&emu, json!({"secret_type": "arbitrary", "name": "hot", "payload": "p"}));
    let (client, recorder) = client(&emu, |config| {
        config.max_retries = 12;
        config.retry_min_delay = Duration::from_millis(100);
        config.retry_max_delay = Duration::from_millis(400);
    });

    concurrent_reads(&client, &id, 6).await;

    assert!(emu.stats().throttled > 0, "the rate limit was hit");
    let delays = recorder.retry_delays();
    assert!(!delays.is_empty());
    assert!(
        delays.iter().all(|delay| *delay < Duration::from_secs(1)),
        "backoff waits, not a Retry-After second: {delays:?}"
    );
}

#[tokio::test]
async fn expired_token_is_replaced_by_one_exchange_under_concurrency() {
    // Our cache treats a token as valid until 10 s before it expires: here for
    // 5 s after it is issued.
    let emu = emulator(EmulatorConfig {
        rate_limit: 0,
        token_lifetime: Duration::from_secs(15),
        ..EmulatorConfig::default()
    })
    .await;
    let id = create(&emu, json!({"secret_type": "arbitrary", "name": "busy", "payload": "p"}));
    let (client, _) = client(&emu, |_| {});

    concurrent_reads(&client, &id, 50).await;
    let issued_by = unix_now();
    assert_eq!(exchanges(&emu), 1, "a cold cache costs one exchange");

    // Wait until the first token is past its validity window.
    wait_until("the token to age out", || async { unix_now() >= issued_by + 6 }).await;
    concurrent_reads(&client, &id, 50).await;
    assert_eq!(exchanges(&emu), 2, "an expired token costs one exchange");
    assert_eq!(emu.stats().count("get_secret", 401), 0, "replaced before it expired");
}

#[tokio::test]
async fn trusted_profile_token_file_is_re_read_at_every_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file: PathBuf = dir.path().join("sa-token");
    std::fs::write(&token_file, "cr-token-one").expect("write");
    // Tokens shorter than the 10 s window: every read exchanges.
    let emu = emulator(EmulatorConfig {
        rate_limit: 0,
        token_lifetime: Duration::from_secs(5),
        trusted_profiles: vec![TrustedProfile {
            profile_id: "Profile-5f0c".into(),
            profile_name: Some("secret-sync".into()),
            cr_token: CrTokenSource::File(token_file.clone()),
        }],
        ..EmulatorConfig::default()
    })
    .await;
    let id = create(&emu, json!({"secret_type": "arbitrary", "name": "tp", "payload": "p"}));
    let mut config =
        config(&emu.url(), &emu.url(), trusted_profile("Profile-5f0c", "secret-sync", token_file.clone()));
    config.max_retries = 0;
    let client = IbmSecretsManager::new(&config).expect("client");

    client.get_secret(&id).await.expect("first token");
    std::fs::write(&token_file, "cr-token-two").expect("rotate");
    client.get_secret(&id).await.expect("second token, from the rotated file");
    assert_eq!(emu.stats().iam_token_exchanges.get("cr_token"), Some(&2));

    // A client still sending the old token is refused by IAM.
    let stale = dir.path().join("stale");
    std::fs::write(&stale, "cr-token-one").expect("write");
    let stale_client = IbmSecretsManager::new(&ClientConfig {
        auth: trusted_profile("Profile-5f0c", "secret-sync", stale),
        ..config
    })
    .expect("client");
    let error = stale_client.get_secret(&id).await.expect_err("stale token");
    assert!(matches!(error, Error::Iam { .. }), "{error:?}");
}

#[tokio::test]
async fn injected_server_errors_are_retried() {
    let emu = emulator(unlimited()).await;
    let id = create(&emu, json!({"secret_type": "arbitrary", "name": "flaky", "payload": "p"}));
    let (client, recorder) = client(&emu, |config| config.max_retries = 2);

    emu.set_faults(Faults { error_rate: 1.0, error_status: 500, ..Faults::default() });
    let error = client.get_secret(&id).await.expect_err("always 500");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(recorder.attempts(Operation::GetSecret), [AttemptOutcome::Status(500); 3]);

    emu.set_faults(Faults { outage_seconds: Some(0.3), ..Faults::default() });
    let (client, recorder) = self::client(&emu, |config| {
        config.max_retries = 20;
        config.retry_min_delay = Duration::from_millis(50);
        config.retry_max_delay = Duration::from_millis(100);
    });
    client.get_secret(&id).await.expect("after the outage");
    let attempts = recorder.attempts(Operation::GetSecret);
    assert_eq!(attempts.first(), Some(&AttemptOutcome::Status(503)));
    assert_eq!(attempts.last(), Some(&AttemptOutcome::Status(200)));
}

#[tokio::test]
async fn refused_token_is_re_exchanged_once() {
    // IAM of one emulator, Secrets Manager of another: every token is unknown
    // to the second, so each read is refused twice around one re-exchange.
    let iam = emulator(unlimited()).await;
    let sm = emulator(unlimited()).await;
    let id = create(&sm, json!({"secret_type": "arbitrary", "name": "foreign", "payload": "p"}));
    let mut config = config(&sm.url(), &iam.url(), emulator_key());
    config.max_retries = 3;
    let client = IbmSecretsManager::new(&config).expect("client");

    let error = client.get_secret(&id).await.expect_err("foreign token");
    assert_eq!(error.metric_label(), "unauthorized");
    assert_eq!(exchanges(&iam), 2, "one re-exchange");
    assert_eq!(sm.stats().count("get_secret", 401), 2, "no backoff retries of a 401");
}
