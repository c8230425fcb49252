//! Helpers shared by the integration tests: a started emulator and an HTTP client that
//! talks to it like a Secrets Manager client would.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sm_emulator::{Emulator, EmulatorConfig, GRANT_APIKEY};

/// A running emulator and a client holding a token for it.
pub struct Harness {
    pub emulator: Emulator,
    pub http: reqwest::Client,
    pub token: String,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Harness {
    /// Starts an emulator without rate limit (unless `config` sets one) and fetches a token.
    pub async fn start(config: EmulatorConfig) -> Self {
        let emulator =
            Emulator::start(config, "127.0.0.1:0".parse().unwrap()).await.expect("emulator starts");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let token = emulator.access_token();
        Self { emulator, http, token }
    }

    /// Starts an emulator with the default config but no rate limit.
    pub async fn unlimited() -> Self {
        Self::start(EmulatorConfig { rate_limit: 0, ..EmulatorConfig::default() }).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.url())
    }

    /// Sends an authenticated request with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await.expect("request is sent")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PATCH` with `Content-Type: application/merge-patch+json`.
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        let request = self
            .http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string());
        answer(request.send().await.unwrap()).await
    }

    /// `POST /identity/token` with form fields.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> Answer {
        let request =
            self.http.post(self.url("/identity/token")).header("Accept", "application/json").form(form);
        answer(request.send().await.unwrap()).await
    }

    /// Exchanges an API key for a token over HTTP.
    pub async fn api_key_token(&self, api_key: &str) -> Answer {
        self.token_request(&[("grant_type", GRANT_APIKEY), ("apikey", api_key)]).await
    }
}

/// Reads a response; an empty body becomes `Value::Null`.
pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("body is not JSON ({error}): {bytes:?}"))
    };
    Answer { status, headers, body }
}

/// Asserts an IBM Handbook error container with `status`; returns the first message.
pub fn assert_ibm_error(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status.as_u16(), status, "{:?}", answer.body);
    assert_eq!(answer.headers["content-type"].to_str().unwrap(), "application/json");
    let body = &answer.body;
    assert_eq!(body["status_code"], status);
    let trace = body["trace"].as_str().expect("trace");
    assert!(uuid::Uuid::parse_str(trace).is_ok(), "trace is a uuid: {trace}");
    let errors = body["errors"].as_array().expect("errors array");
    assert!(!errors.is_empty());
    for key in ["code", "message", "more_info"] {
        assert!(errors[0][key].is_string(), "errors[0].{key} in {body}");
    }
    errors[0]["message"].as_str().unwrap().to_owned()
}

/// Polls `condition` every 20 ms until it holds, failing after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the clock has moved past the millisecond of `time` (an RFC 3339 string), so
/// that a later write gets a different timestamp.
pub async fn wait_past(time: &Value) {
    let time: jiff::Timestamp = time.as_str().expect("timestamp string").parse().unwrap();
    let next = time + jiff::SignedDuration::from_millis(1);
    wait_until(Duration::from_secs(5), || async { jiff::Timestamp::now() > next }).await;
}
