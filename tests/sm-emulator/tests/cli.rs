//! The `sm-emulator` binary: readiness line, seed file, API keys and trusted profiles.

mod common;

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sm_emulator::{GRANT_APIKEY, GRANT_CR_TOKEN};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const SEED: &str = r#"
secrets:
  - secret_type: arbitrary
    id: 1f0c7a52-8e2b-4d59-9b0e-5a3c2d1e0f9a
    name: seeded-payload
    payload: from-seed
    labels: [demo]
  - secret_type: service_credentials
    name: seeded-cos
    source_service:
      instance: {crn: "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:guid::"}
    credentials:
      apikey: known
      cos_hmac_keys: {access_key_id: AKIDEXAMPLE, secret_access_key: SECRETEXAMPLE}
"#;

/// Starts the binary and reads its readiness line; returns the child and the URL.
async fn spawn(args: &[&OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sm-emulator"))
        .args(args)
        .env_remove("SM_EMULATOR_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("readiness line in time")
        .unwrap()
        .expect("a first line");
    let url = first.strip_prefix("listening on ").expect("readiness line format").to_owned();
    let address: std::net::SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    assert_ne!(address.port(), 0);
    (child, url)
}

#[tokio::test]
async fn binary_serves_seeded_secrets_to_both_grants() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(&seed, SEED).unwrap();
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, "projected-token\n").unwrap();

    let (mut child, url) = spawn(&[
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--api-key".as_ref(),
        "cli-key".as_ref(),
        "--rate-limit".as_ref(),
        "0".as_ref(),
        "--seed".as_ref(),
        seed.as_os_str(),
        "--trusted-profile".as_ref(),
        format!("Profile-cli:cli-profile={}", token_file.display()).as_ref(),
    ])
    .await;

    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, &'static str)>| {
        let http = &http;
        let url = &url;
        async move {
            let response = http.post(format!("{url}/identity/token")).form(&form).send().await.unwrap();
            common::answer(response).await
        }
    };
    let by_key = token(vec![("grant_type", GRANT_APIKEY), ("apikey", "cli-key")]).await;
    assert_eq!(by_key.status, StatusCode::OK);
    assert_eq!(
        token(vec![("grant_type", GRANT_APIKEY), ("apikey", "emulator-api-key")]).await.status,
        StatusCode::BAD_REQUEST,
        "an explicit --api-key replaces the default"
    );
    // The file ends with a newline; clients may send it trimmed or as read.
    for cr_token in ["projected-token", "projected-token\n"] {
        let answer = token(vec![
            ("grant_type", GRANT_CR_TOKEN),
            ("cr_token", cr_token),
            ("profile_name", "cli-profile"),
        ])
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    let access_token = by_key.body["access_token"].as_str().unwrap();
    let get = |path: String| {
        let http = &http;
        async move { common::answer(http.get(path).bearer_auth(access_token).send().await.unwrap()).await }
    };
    let seeded = get(format!("{url}/api/v2/secrets/1f0c7a52-8e2b-4d59-9b0e-5a3c2d1e0f9a")).await;
    assert_eq!(seeded.status, StatusCode::OK);
    assert_eq!(seeded.body["payload"], "from-seed");
    let cos = get(format!(
        "{url}/api/v2/secret_groups/default/secret_types/service_credentials/secrets/seeded-cos"
    ))
    .await;
    assert_eq!(cos.body["credentials"]["cos_hmac_keys"]["access_key_id"], "AKIDEXAMPLE");
    let list = get(format!("{url}/api/v2/secrets")).await;
    assert_eq!(list.body["total_count"], Value::from(2));

    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_seed_file_fails_startup() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, r#"[{"secret_type": "arbitrary", "name": "x"}]"#).unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_sm-emulator")).arg("--seed").arg(&seed).output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("secret #0"));
}
