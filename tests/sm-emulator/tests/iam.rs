//! The IAM token service: both grants, error bodies, token shape and expiry.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, assert_ibm_error};
use reqwest::StatusCode;
use serde_json::Value;
use sm_emulator::{CrTokenSource, EmulatorConfig, GRANT_APIKEY, GRANT_CR_TOKEN, TrustedProfile};

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn api_key_grant_issues_a_usable_token() {
    let h = Harness::start(EmulatorConfig {
        api_keys: vec!["key-one".into(), "key-two".into()],
        ..EmulatorConfig::default()
    })
    .await;
    let answer = h.api_key_token("key-two").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = &answer.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["refresh_token"], "not_supported");
    assert_eq!(body["scope"], "ibm openid");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let claims = claims(token);
    assert_eq!(claims["exp"], body["expiration"]);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(claims["iat"].as_u64().unwrap().abs_diff(now) <= 5);
    assert!(claims["sub"].as_str().unwrap().starts_with("ServiceId-"));

    let listed =
        common::answer(h.http.get(h.url("/api/v2/secrets")).bearer_auth(token).send().await.unwrap()).await;
    assert_eq!(listed.status, StatusCode::OK);
    let stats = h.emulator.stats();
    assert_eq!(stats.iam_token_exchanges["apikey"], 1);
    assert_eq!(stats.count("iam_token", 200), 1);
}

#[tokio::test]
async fn bad_api_key_answers_iam_error_shape() {
    let h = Harness::unlimited().await;
    let answer = h.api_key_token("wrong").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.body["errorCode"], "BXNIM0415E");
    assert_eq!(answer.body["errorMessage"], "Provided API key could not be found.");
    assert!(answer.body["context"]["requestId"].is_string());
    let unsupported = h.token_request(&[("grant_type", "password")]).await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert!(unsupported.body["errorCode"].is_string());
    let stats = h.emulator.stats();
    assert_eq!(stats.count("iam_token", 400), 2);
    assert_eq!(stats.total, 0, "token calls are not Secrets Manager requests");
}

#[tokio::test]
async fn cr_token_grant_reads_the_token_file_at_each_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first-token").unwrap();
    let h = Harness::start(EmulatorConfig {
        trusted_profiles: vec![
            TrustedProfile {
                profile_id: "Profile-file".into(),
                profile_name: Some("from-file".into()),
                cr_token: CrTokenSource::File(path.clone()),
            },
            TrustedProfile {
                profile_id: "Profile-literal".into(),
                profile_name: None,
                cr_token: CrTokenSource::Value("literal-token".into()),
            },
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let exchange = |cr_token: &'static str, profile: &'static [(&'static str, &'static str)]| {
        let mut form = vec![("grant_type", GRANT_CR_TOKEN), ("cr_token", cr_token)];
        form.extend_from_slice(profile);
        let h = &h;
        async move { h.token_request(&form).await }
    };
    let by_id: &[(&str, &str)] = &[("profile_id", "Profile-file")];
    let by_name: &[(&str, &str)] = &[("profile_name", "from-file")];
    let both: &[(&str, &str)] = &[("profile_id", "Profile-file"), ("profile_name", "from-file")];

    let ok = exchange("first-token", by_id).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(claims(ok.body["access_token"].as_str().unwrap())["sub"], "Profile-file");
    assert_eq!(exchange("first-token", by_name).await.status, StatusCode::OK);
    assert_eq!(exchange("first-token", both).await.status, StatusCode::OK);

    // The kubelet rotates the file: the old token stops working, the new one works.
    std::fs::write(&path, "second-token").unwrap();
    assert_eq!(exchange("first-token", by_id).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(exchange("second-token", by_id).await.status, StatusCode::OK);

    // Id and name of different profiles; missing profile; literal tokens.
    let mismatch: &[(&str, &str)] = &[("profile_id", "Profile-literal"), ("profile_name", "from-file")];
    assert_eq!(exchange("literal-token", mismatch).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(exchange("second-token", &[]).await.status, StatusCode::BAD_REQUEST);
    let literal: &[(&str, &str)] = &[("profile_id", "Profile-literal")];
    assert_eq!(exchange("literal-token", literal).await.status, StatusCode::OK);
    assert_eq!(exchange("second-token", literal).await.status, StatusCode::BAD_REQUEST);

    let stats = h.emulator.stats();
    assert_eq!(stats.iam_token_exchanges["cr_token"], 9);
    assert_eq!(stats.count("iam_token", 200), 5);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let h = Harness::start(EmulatorConfig {
        token_lifetime: Duration::from_secs(1),
        rate_limit: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let body = h.api_key_token("emulator-api-key").await.body;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let expiration = body["expiration"].as_u64().unwrap();
    // Wait until the token's own expiration has passed, then it must be refused.
    common::wait_until(Duration::from_secs(10), || async {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() >= expiration
    })
    .await;
    let answer =
        common::answer(h.http.get(h.url("/api/v2/secrets")).bearer_auth(&token).send().await.unwrap()).await;
    let message = assert_ibm_error(&answer, 401);
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn api_key_grant_constant_matches_the_reference() {
    assert_eq!(GRANT_APIKEY, "urn:ibm:params:oauth:grant-type:apikey");
    assert_eq!(GRANT_CR_TOKEN, "urn:ibm:params:oauth:grant-type:cr-token");
}
