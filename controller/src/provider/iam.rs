//! IAM access tokens: the credential exchange and the shared token cache.
//!
//! One [`TokenManager`] per client holds the credential and one cached access
//! token that every request shares. It exchanges the credential at
//! `POST {iam_url}/identity/token` (reference 3.2) with either grant:
//!
//! - API key: `grant_type=urn:ibm:params:oauth:grant-type:apikey`, `apikey`,
//!   and `response_type=cloud_iam` as the Go core sends it;
//! - trusted profile: `grant_type=urn:ibm:params:oauth:grant-type:cr-token`,
//!   `cr_token` and `profile_id` and/or `profile_name`. The token file is read
//!   at every exchange, because the kubelet rotates it, and its content is
//!   sent as read (like the Go core's `retrieveCRToken`).
//!
//! When to exchange follows the Go core (reference 3.5), on the server's
//! `expires_in` and `expiration` (the JWT is never decoded):
//!
//! - a token is valid while `now < expiration − 10 s`;
//! - no valid token: one synchronous exchange;
//! - valid but past `expiration − 0.2 × expires_in`: the cached token is used
//!   and one background refresh starts; the refresh time moves 60 s ahead so
//!   no second refresh starts meanwhile.
//!
//! Exchanges are single-flight: they run under one async mutex, and a caller
//! that waited on it takes the token the exchange it waited for produced (if
//! that token is not past `expiration`) instead of starting another. So N
//! concurrent requests without a token cause one exchange. The Go core
//! re-checks only the 10 s validity window after the lock, which makes every
//! waiter exchange again when the server issues tokens shorter than 10 s; the
//! generation check avoids that.
//!
//! A `401` from Secrets Manager calls [`TokenManager::invalidate`] with the
//! generation of the token that was refused, so concurrent `401`s for the same
//! token drop it once and share one new exchange.
//!
//! Token exchanges are not retried, as in the Go core, whose IAM
//! authenticators use their own client without the retry layer. Any non-2xx
//! answer is an [`Error::Iam`]: which status IAM uses for a bad API key (400
//! is assumed) is UNCONFIRMED, and like the Go core we do not depend on it.
//! `profile_crn` is never sent with the cr-token grant: whether IAM accepts it
//! is UNCONFIRMED and no SDK core sends it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::ACCEPT;
use serde::Deserialize;
use tracing::{Instrument, debug, warn};
use url::Url;

use super::config::AuthConfig;
use super::error::{DecodeError, Error, Result};
use super::http::{outcome, request_error, service_error};
use super::observe::{CallObserver, Operation};
use super::value::SecretText;

const GRANT_API_KEY: &str = "urn:ibm:params:oauth:grant-type:apikey";
const GRANT_CR_TOKEN: &str = "urn:ibm:params:oauth:grant-type:cr-token";
const TOKEN_PATH: &str = "/identity/token";
/// A token counts as expired this many seconds before `expiration`.
const EXPIRATION_WINDOW_SECS: i64 = 10;
/// After a background refresh starts, the next may start this much later.
const REFRESH_RETRY_SECS: i64 = 60;

/// Exchanges the configured credential for IAM access tokens and caches them.
pub(crate) struct TokenManager {
    http: reqwest::Client,
    token_url: Url,
    grant: Grant,
    observer: Arc<dyn CallObserver>,
    state: Mutex<State>,
    /// Held for the duration of every exchange: single flight.
    exchange: tokio::sync::Mutex<()>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.token_url.as_str())
            .field("grant", &self.grant)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Grant {
    ApiKey(SecretText),
    TrustedProfile { profile_id: Option<String>, profile_name: Option<String>, token_file: PathBuf },
}

#[derive(Debug, Default)]
struct State {
    token: Option<CachedToken>,
    /// Counts successful exchanges.
    generation: u64,
}

#[derive(Debug)]
struct CachedToken {
    access_token: SecretText,
    generation: u64,
    times: TokenTimes,
}

impl CachedToken {
    fn token(&self) -> Token {
        Token { bearer: self.access_token.clone(), generation: self.generation }
    }
}

/// An access token handed to one request.
#[derive(Debug)]
pub(crate) struct Token {
    /// The bearer token.
    pub(crate) bearer: SecretText,
    /// Which exchange produced it; passed back to [`TokenManager::invalidate`].
    pub(crate) generation: u64,
}

/// The refresh schedule of a token, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TokenTimes {
    expiration: i64,
    refresh_at: i64,
}

impl TokenTimes {
    fn new(expires_in: i64, expiration: i64) -> Self {
        // The Go core computes `expiration - int64(float64(expires_in) * 0.2)`;
        // for the non-negative values IAM sends that is `expires_in / 5`.
        Self { expiration, refresh_at: expiration - expires_in / 5 }
    }

    fn is_valid(self, now: i64) -> bool {
        now < self.expiration - EXPIRATION_WINDOW_SECS
    }

    fn needs_refresh(self, now: i64) -> bool {
        now > self.refresh_at
    }

    fn is_unexpired(self, now: i64) -> bool {
        now < self.expiration
    }
}

/// The fields of the token response the Go core reads (reference 3.3).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretText,
    expires_in: Option<i64>,
    expiration: Option<i64>,
}

impl TokenManager {
    /// Validates the credential and prepares the token URL.
    pub(crate) fn new(
        http: reqwest::Client,
        iam_url: &Url,
        auth: &AuthConfig,
        observer: Arc<dyn CallObserver>,
    ) -> Result<Self> {
        let grant = match auth {
            AuthConfig::ApiKey { api_key } => {
                if api_key.expose_secret().is_empty() {
                    return Err(Error::config("the API key is empty"));
                }
                Grant::ApiKey(api_key.clone())
            }
            AuthConfig::TrustedProfile { profile_id, profile_name, token_file } => {
                let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
                let (profile_id, profile_name) = (non_empty(profile_id), non_empty(profile_name));
                if profile_id.is_none() && profile_name.is_none() {
                    return Err(Error::config("a trusted profile needs a profile id or a profile name"));
                }
                Grant::TrustedProfile { profile_id, profile_name, token_file: token_file.clone() }
            }
        };
        Ok(Self {
            http,
            token_url: token_url(iam_url)?,
            grant,
            observer,
            state: Mutex::default(),
            exchange: tokio::sync::Mutex::new(()),
        })
    }

    /// A token for one request: the cached one if valid, else a fresh one.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Token> {
        let seen = {
            let mut state = self.state();
            let now = unix_now();
            let seen = state.generation;
            if let Some(cached) = state.token.as_mut()
                && cached.times.is_valid(now)
            {
                if cached.times.needs_refresh(now) {
                    cached.times.refresh_at = now + REFRESH_RETRY_SECS;
                    self.spawn_refresh(cached.generation);
                }
                return Ok(cached.token());
            }
            seen
        };
        let _exchange = self.exchange.lock().await;
        {
            let state = self.state();
            let now = unix_now();
            if let Some(cached) = &state.token
                && (cached.times.is_valid(now)
                    || (cached.generation > seen && cached.times.is_unexpired(now)))
            {
                return Ok(cached.token());
            }
        }
        self.exchange().await
    }

    /// Drops the cached token if it is the one from exchange `generation`.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut state = self.state();
        if state.token.as_ref().is_some_and(|cached| cached.generation == generation) {
            debug!(generation, "dropping the refused IAM access token");
            state.token = None;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("token state lock poisoned")
    }

    fn spawn_refresh(self: &Arc<Self>, generation: u64) {
        let this = Arc::clone(self);
        let refresh = async move {
            let _exchange = this.exchange.lock().await;
            if this.state().generation != generation {
                return; // Another exchange already replaced the token.
            }
            if let Err(error) = this.exchange().await {
                warn!(%error, "background IAM token refresh failed; the cached token stays in use");
            }
        };
        tokio::spawn(refresh.instrument(tracing::debug_span!("iam_token_refresh")));
    }

    /// Exchanges the credential and caches the result. Callers hold
    /// `self.exchange`.
    async fn exchange(&self) -> Result<Token> {
        let response = self.request_token().await?;
        let times =
            TokenTimes::new(response.expires_in.unwrap_or_default(), response.expiration.unwrap_or_default());
        let mut state = self.state();
        state.generation += 1;
        let cached = CachedToken { access_token: response.access_token, generation: state.generation, times };
        let token = cached.token();
        state.token = Some(cached);
        debug!(generation = token.generation, expiration = times.expiration, "cached a new IAM access token");
        Ok(token)
    }

    async fn request_token(&self) -> Result<TokenResponse> {
        let cr_token;
        let form: Vec<(&str, &str)> = match &self.grant {
            Grant::ApiKey(api_key) => vec![
                ("grant_type", GRANT_API_KEY),
                ("apikey", api_key.expose_secret()),
                ("response_type", "cloud_iam"),
            ],
            Grant::TrustedProfile { profile_id, profile_name, token_file } => {
                cr_token = read_cr_token(token_file).await?;
                let mut form = vec![("grant_type", GRANT_CR_TOKEN), ("cr_token", cr_token.expose_secret())];
                form.extend(profile_id.as_deref().map(|id| ("profile_id", id)));
                form.extend(profile_name.as_deref().map(|name| ("profile_name", name)));
                form
            }
        };
        debug!(grant = form[0].1, "requesting an IAM access token");
        let result = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        self.observer.on_attempt(Operation::IamToken, outcome(&result));
        let response = result.map_err(|e| request_error(Operation::IamToken, e))?;
        let status = response.status();
        debug!(status = status.as_u16(), "IAM token response");
        if !status.is_success() {
            return Err(Error::Iam { source: service_error(response).await });
        }
        let body = response.bytes().await.map_err(|e| request_error(Operation::IamToken, e))?;
        let decode = |source: DecodeError| Error::Decode { operation: Operation::IamToken, source };
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| decode(e.into()))?;
        if parsed.access_token.expose_secret().is_empty() {
            return Err(decode(DecodeError::MissingField { field: "access_token".into() }));
        }
        Ok(parsed)
    }
}

/// `{iam_url}/identity/token`, accepting a URL that already ends with it.
fn token_url(iam_url: &Url) -> Result<Url> {
    let base = iam_url.as_str().trim_end_matches('/');
    let base = base.strip_suffix(TOKEN_PATH).unwrap_or(base);
    Url::parse(&format!("{base}{TOKEN_PATH}"))
        .map_err(|e| Error::Config { reason: format!("invalid IAM URL {iam_url}"), source: Some(e.into()) })
}

async fn read_cr_token(path: &Path) -> Result<SecretText> {
    let token_file_error = |source| Error::TokenFile { path: path.to_path_buf(), source };
    let token = tokio::fs::read_to_string(path).await.map_err(token_file_error)?;
    if token.is_empty() {
        return Err(token_file_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        )));
    }
    Ok(SecretText::from(token))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_schedule_follows_the_go_core() {
        // Issued at 1000 for an hour.
        let times = TokenTimes::new(3600, 4600);
        assert_eq!(times.refresh_at, 4600 - 720, "after 80 % of the lifetime");
        assert!(times.is_valid(1000));
        assert!(!times.needs_refresh(1000));
        assert!(!times.needs_refresh(3880));
        assert!(times.needs_refresh(3881));
        assert!(times.is_valid(4589));
        assert!(!times.is_valid(4590), "10 s before expiration");
        assert!(times.is_unexpired(4599));
        assert!(!times.is_unexpired(4600));
    }

    #[test]
    fn missing_lifetime_means_always_fetch() {
        let times = TokenTimes::new(0, 0);
        assert!(!times.is_valid(unix_now()));
        assert!(!times.is_unexpired(unix_now()));
    }

    #[test]
    fn token_url_normalization() {
        for given in [
            "https://iam.cloud.ibm.com",
            "https://iam.cloud.ibm.com/",
            "https://iam.cloud.ibm.com/identity/token",
            "https://iam.cloud.ibm.com/identity/token/",
        ] {
            let url = token_url(&Url::parse(given).expect("url")).expect("token url");
            assert_eq!(url.as_str(), "https://iam.cloud.ibm.com/identity/token", "{given}");
        }
        let proxied = token_url(&Url::parse("http://127.0.0.1:8080/iam").expect("url"));
        assert_eq!(proxied.expect("token url").as_str(), "http://127.0.0.1:8080/iam/identity/token");
    }
}
