//! IBM Cloud IAM bearer tokens for COS in IAM mode.
//!
//! The API key is exchanged at `POST {iam}/identity/token` with
//! `grant_type=urn:ibm:params:oauth:grant-type:apikey` (reference section 3),
//! as s3fs's `ibm_iam_auth` and rclone's `ibm_api_key` do. The token is cached
//! and exchanged again once 80 % of its lifetime has passed (the Go core's
//! refresh point), or at once when the API key changes. Exchanges are
//! single-flight under one async mutex.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

const GRANT_API_KEY: &str = "urn:ibm:params:oauth:grant-type:apikey";
const TOKEN_PATH: &str = "identity/token";

/// What can go wrong while exchanging an API key for a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IamError {
    /// The request did not complete.
    #[error("IAM token request failed")]
    Transport(#[source] reqwest::Error),
    /// IAM refused the API key (or failed).
    #[error("IAM refused the API key: HTTP {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The answer could not be decoded.
    #[error("IAM returned a malformed token response")]
    Malformed(#[source] reqwest::Error),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

struct Cached {
    api_key: SecretString,
    token: SecretString,
    refresh_at: Instant,
}

/// A cache of IAM access tokens for one IAM endpoint.
pub struct IamTokens {
    http: reqwest::Client,
    url: Url,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for IamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamTokens").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl IamTokens {
    /// Tokens from the IAM service at `endpoint` (e.g. `https://iam.cloud.ibm.com`);
    /// a trailing `/identity/token` is accepted, like the Go core does.
    pub fn new(http: reqwest::Client, endpoint: &Url) -> Self {
        let mut base = endpoint.as_str().trim_end_matches('/').to_owned();
        if let Some(stripped) = base.strip_suffix("/identity/token") {
            base = stripped.to_owned();
        }
        let url = Url::parse(&format!("{base}/{TOKEN_PATH}")).unwrap_or_else(|_| endpoint.clone());
        Self { http, url, cached: tokio::sync::Mutex::new(None) }
    }

    /// A valid access token for `api_key`, exchanged if needed.
    pub async fn token(&self, api_key: &SecretString) -> Result<SecretString, IamError> {
        let mut cached = self.cached.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.api_key.expose_secret() == api_key.expose_secret()
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", GRANT_API_KEY),
                ("apikey", api_key.expose_secret()),
                ("response_type", "cloud_iam"),
            ])
            .send()
            .await
            .map_err(IamError::Transport)?;
        if !response.status().is_success() {
            return Err(IamError::Refused { status: response.status().as_u16() });
        }
        let body: TokenResponse = response.json().await.map_err(IamError::Malformed)?;
        let lifetime = Duration::from_secs(body.expires_in);
        let token = SecretString::from(body.access_token);
        *cached = Some(Cached {
            api_key: api_key.clone(),
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.mul_f64(0.8),
        });
        tracing::debug!(expires_in = body.expires_in, "IAM token exchanged");
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[tokio::test]
    async fn tokens_are_exchanged_once_and_again_for_a_new_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/identity/token"))
            .and(body_string_contains("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "tok", "expires_in": 3600})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let endpoint = Url::parse(&format!("{}/identity/token", server.uri())).unwrap();
        let tokens = IamTokens::new(reqwest::Client::new(), &endpoint);
        let key = SecretString::from("k1");
        assert_eq!(tokens.token(&key).await.unwrap().expose_secret(), "tok");
        assert_eq!(tokens.token(&key).await.unwrap().expose_secret(), "tok");
        tokens.token(&SecretString::from("k2")).await.unwrap();
    }

    /// The token part against the project's IAM emulator (COS itself, which
    /// would accept the token, is not available locally; MinIO refuses it).
    #[tokio::test]
    async fn the_emulated_iam_service_issues_tokens_for_known_keys_only() {
        let listen = "127.0.0.1:0".parse().unwrap();
        let emulator =
            sm_emulator::Emulator::start(sm_emulator::EmulatorConfig::default(), listen).await.unwrap();
        let tokens = IamTokens::new(reqwest::Client::new(), &Url::parse(&emulator.url()).unwrap());
        let token = tokens.token(&SecretString::from(sm_emulator::config::DEFAULT_API_KEY)).await.unwrap();
        assert!(!token.expose_secret().is_empty());
        let error = tokens.token(&SecretString::from("not-a-key")).await.unwrap_err();
        assert!(matches!(error, IamError::Refused { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_refused_key_is_an_error_without_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&server).await;
        let tokens = IamTokens::new(reqwest::Client::new(), &Url::parse(&server.uri()).unwrap());
        let error = tokens.token(&SecretString::from("very-secret")).await.unwrap_err();
        assert!(matches!(error, IamError::Refused { status: 400 }));
        assert!(!format!("{error:?} {error}").contains("very-secret"));
    }
}
