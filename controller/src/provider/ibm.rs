//! [`IbmSecretsManager`]: the IBM Cloud Secrets Manager v2 REST client.
//!
//! Every operation is one `GET` below `{endpoint}/api/v2` with
//! `Accept: application/json` and `Authorization: Bearer <IAM token>`
//! (reference 1.2). Path parameters are percent-encoded as single segments
//! (so a `/` in a name travels as `%2F`), and an empty one is refused before
//! any request, as in the Go core's request builder. Array query parameters
//! are joined with `,`.
//!
//! With a request budget configured, every send (retries and the resend
//! after a `401` included) first waits for a permit, and a `429` lowers the
//! budget's rate (see [`budget`](super::budget)). The permit is asked for in
//! the class the calling task runs in ([`budget::with_priority`](super::budget::with_priority)).
//!
//! One attempt is: take a token from the shared cache, send, and on `401`
//! drop that token and send once more with a freshly exchanged one. Failed
//! attempts are retried with exponential backoff and jitter (`backon`) up to
//! `max_retries` times, under the Go core's `IBMCloudSDKRetryPolicy`
//! (reference 2.3): `429`, `5xx` except `501`, and transport errors other
//! than TLS certificate errors; never other `4xx`, decode errors or IAM
//! failures. A `Retry-After` header replaces the backoff wait: seconds as
//! given, an HTTP date capped at `retry_max_delay`. Whether Secrets Manager
//! sends `429` or `Retry-After` at all is UNCONFIRMED; handling both as the Go
//! core's `IBMCloudSDKBackoffPolicy` does is the safe reading.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, instrument};
use url::Url;

use super::budget::{Budget, current_priority};
use super::config::ClientConfig;
use super::error::{DecodeError, Error, Result};
use super::http::{build_client, is_tls_certificate_error, outcome, request_error, service_error};
use super::iam::TokenManager;
use super::model::{self, Secret, SecretMetadata, SecretType, SecretVersion};
use super::observe::{CallObserver, Operation};
use super::value::SecretText;
use super::{ListSecretsParams, SecretMetadataPage, SecretsManager, VersionRef};

/// The Secrets Manager v2 client. Cheap to clone; clones share the HTTP
/// connection pool and the token cache.
#[derive(Clone)]
pub struct IbmSecretsManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for IbmSecretsManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IbmSecretsManager")
            .field("api_base", &self.inner.api_base.as_str())
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    /// `{endpoint}/api/v2`.
    api_base: Url,
    tokens: Arc<TokenManager>,
    backoff: ExponentialBuilder,
    retry_max_delay: Duration,
    observer: Arc<dyn CallObserver>,
    /// Paces every Secrets Manager attempt (not the IAM exchanges).
    budget: Option<Budget>,
}

impl IbmSecretsManager {
    /// A client that reports to no observer.
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Self::with_observer(config, Arc::new(()))
    }

    /// A client that reports every attempt and retry to `observer`.
    pub fn with_observer(config: &ClientConfig, observer: Arc<dyn CallObserver>) -> Result<Self> {
        if !matches!(config.endpoint.scheme(), "http" | "https") {
            return Err(Error::config(format!("the endpoint {} is not an http(s) URL", config.endpoint)));
        }
        if let Some(rate) =
            config.budget.map(|budget| budget.rate()).filter(|rate| !(rate.is_finite() && *rate > 0.0))
        {
            return Err(Error::config(format!("the request budget must be a positive rate, not {rate}")));
        }
        let http = build_client(config)?;
        let tokens = TokenManager::new(http.clone(), &config.iam_url, &config.auth, Arc::clone(&observer))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(config.retry_min_delay)
            .with_max_delay(config.retry_max_delay)
            .with_max_times(config.max_retries)
            .with_jitter();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base: join(&config.endpoint, &["api", "v2"]),
                tokens: Arc::new(tokens),
                backoff,
                retry_max_delay: config.retry_max_delay,
                observer,
                budget: config.budget.as_ref().map(Budget::new),
            }),
        })
    }

    /// `GET`s `path` (segments below `/api/v2`) with retries; the success
    /// body.
    async fn get(&self, operation: Operation, path: &[&str], query: &[(&str, String)]) -> Result<Bytes> {
        let mut url = join(&self.inner.api_base, path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut attempt = 0;
        let max_delay = self.inner.retry_max_delay;
        (|| {
            attempt += 1;
            self.attempt(operation, &url, attempt)
        })
        .retry(self.inner.backoff)
        .when(is_retryable)
        .adjust(|error, backoff| {
            // `None` means the attempts are used up; keep it that way.
            backoff.map(|backoff| match error {
                Error::Service { source, .. } => {
                    source.retry_after.map_or(backoff, |after| after.delay(SystemTime::now(), max_delay))
                }
                _ => backoff,
            })
        })
        .notify(|error, delay| {
            debug!(
                kind = error.metric_label(),
                status = error.status().map(|status| status.as_u16()),
                ?delay,
                "retrying Secrets Manager request"
            );
            self.inner.observer.on_retry(operation, delay);
        })
        .await
    }

    /// One attempt, with one token re-exchange on `401`.
    async fn attempt(&self, operation: Operation, url: &Url, attempt: usize) -> Result<Bytes> {
        let token = self.inner.tokens.token().await?;
        let mut response = self.send(operation, url, &token.bearer, attempt).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            debug!(attempt, "token refused; exchanging a new one");
            self.inner.tokens.invalidate(token.generation);
            let token = self.inner.tokens.token().await?;
            response = self.send(operation, url, &token.bearer, attempt).await?;
        }
        if !response.status().is_success() {
            let source = service_error(response).await;
            if let (Some(budget), StatusCode::TOO_MANY_REQUESTS) = (&self.inner.budget, source.status) {
                let wait = source
                    .retry_after
                    .map(|after| after.delay(SystemTime::now(), self.inner.retry_max_delay));
                budget.throttled(wait);
            }
            return Err(Error::Service { operation, source });
        }
        response.bytes().await.map_err(|e| request_error(operation, e))
    }

    async fn send(
        &self,
        operation: Operation,
        url: &Url,
        bearer: &SecretText,
        attempt: usize,
    ) -> Result<reqwest::Response> {
        if let Some(budget) = &self.inner.budget {
            budget.acquire(current_priority()).await;
        }
        let result = self
            .inner
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .bearer_auth(bearer.expose_secret())
            .send()
            .await;
        self.inner.observer.on_attempt(operation, outcome(&result));
        match &result {
            Ok(response) => debug!(attempt, status = response.status().as_u16(), "response"),
            Err(error) => debug!(attempt, %error, "request failed"),
        }
        result.map_err(|e| request_error(operation, e))
    }
}

/// The retry policy of the Go core (reference 2.3).
fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Service { source, .. } => {
            source.status == StatusCode::TOO_MANY_REQUESTS
                || (source.status.is_server_error() && source.status != StatusCode::NOT_IMPLEMENTED)
        }
        Error::Transport { operation, source, .. } => {
            *operation != Operation::IamToken && !is_tls_certificate_error(source)
        }
        Error::Timeout { operation, .. } => *operation != Operation::IamToken,
        _ => false,
    }
}

/// `base` with `segments` appended, each percent-encoded as one segment.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut().expect("http(s) URLs have a path").pop_if_empty().extend(segments);
    url
}

/// Refuses an empty path parameter before any request is sent.
fn non_empty<'a>(parameter: &'static str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() { Err(Error::EmptyParameter { parameter }) } else { Ok(value) }
}

fn decoded<T>(operation: Operation, result: Result<T, DecodeError>) -> Result<T> {
    result.map_err(|source| Error::Decode { operation, source })
}

/// `SecretMetadataPaginatedCollection`, the fields we use (reference 1.4).
#[derive(Deserialize)]
struct WirePage {
    #[serde(default)]
    total_count: u64,
    secrets: Vec<Value>,
    next: Option<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

/// The `offset` query parameter of a `next.href`. Whether the service sends
/// absolute or relative hrefs is UNCONFIRMED; both are accepted, as the Go
/// SDK's `GetNextOffset` (which uses `url.Parse`) accepts both. An href
/// without `offset` ends paging and an unparsable one is an error, also as in
/// `GetNextOffset`.
fn next_offset(next: Option<&Href>) -> Result<Option<u64>, DecodeError> {
    let Some(next) = next else { return Ok(None) };
    let anchor = Url::parse("http://relative.invalid/").expect("static URL");
    let url = anchor.join(&next.href).map_err(|_| DecodeError::InvalidNextHref)?;
    url.query_pairs()
        .find(|(key, _)| key == "offset")
        .map(|(_, offset)| offset.parse().map_err(|_| DecodeError::InvalidNextHref))
        .transpose()
}

fn decode_page(body: &[u8]) -> Result<SecretMetadataPage, DecodeError> {
    let page: WirePage = serde_json::from_slice(body)?;
    Ok(SecretMetadataPage {
        total_count: page.total_count,
        secrets: page.secrets.iter().map(model::metadata_from_json).collect::<Result<_, _>>()?,
        next_offset: next_offset(page.next.as_ref())?,
    })
}

fn list_query(params: &ListSecretsParams) -> Vec<(&'static str, String)> {
    let ListSecretsParams { offset, limit, sort, search, groups, secret_types, match_all_labels } = params;
    let mut query = Vec::new();
    query.extend(offset.map(|offset| ("offset", offset.to_string())));
    query.extend(limit.map(|limit| ("limit", limit.to_string())));
    query.extend(sort.clone().map(|sort| ("sort", sort)));
    query.extend(search.clone().map(|search| ("search", search)));
    if !groups.is_empty() {
        query.push(("groups", groups.join(",")));
    }
    if !secret_types.is_empty() {
        let names: Vec<&str> = secret_types.iter().map(|t| t.as_str()).collect();
        query.push(("secret_types", names.join(",")));
    }
    if !match_all_labels.is_empty() {
        query.push(("match_all_labels", match_all_labels.join(",")));
    }
    query
}

impl SecretsManager for IbmSecretsManager {
    fn request_budget(&self) -> Option<f64> {
        self.inner.budget.as_ref().map(Budget::target_rate)
    }

    #[instrument(skip(self), fields(operation = "get_secret"))]
    async fn get_secret(&self, id: &str) -> Result<Secret> {
        let operation = Operation::GetSecret;
        let path = ["secrets", non_empty("id", id)?];
        let body = self.get(operation, &path, &[]).await?;
        decoded(operation, model::decode_secret(&body))
    }

    #[instrument(skip(self), fields(operation = "get_secret_by_name"))]
    async fn get_secret_by_name(&self, group: &str, secret_type: SecretType, name: &str) -> Result<Secret> {
        let operation = Operation::GetSecretByName;
        let path = [
            "secret_groups",
            non_empty("secret_group_name", group)?,
            "secret_types",
            secret_type.as_str(),
            "secrets",
            non_empty("name", name)?,
        ];
        let body = self.get(operation, &path, &[]).await?;
        decoded(operation, model::decode_secret(&body))
    }

    #[instrument(skip(self), fields(operation = "get_secret_metadata"))]
    async fn get_secret_metadata(&self, id: &str) -> Result<SecretMetadata> {
        let operation = Operation::GetSecretMetadata;
        let path = ["secrets", non_empty("id", id)?, "metadata"];
        let body = self.get(operation, &path, &[]).await?;
        decoded(operation, model::decode_metadata(&body))
    }

    #[instrument(skip(self), fields(operation = "list_secrets"))]
    async fn list_secrets(&self, params: &ListSecretsParams) -> Result<SecretMetadataPage> {
        let operation = Operation::ListSecrets;
        let body = self.get(operation, &["secrets"], &list_query(params)).await?;
        decoded(operation, decode_page(&body))
    }

    #[instrument(skip(self), fields(operation = "get_secret_version"))]
    async fn get_secret_version(&self, secret_id: &str, version: &VersionRef) -> Result<SecretVersion> {
        let operation = Operation::GetSecretVersion;
        let path = [
            "secrets",
            non_empty("secret_id", secret_id)?,
            "versions",
            non_empty("id", version.as_path_segment())?,
        ];
        let body = self.get(operation, &path, &[]).await?;
        decoded(operation, model::decode_version(&body, secret_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        let base = Url::parse("https://sm.example/api/v2").expect("url");
        let url = join(&base, &["secret_groups", "a/b", "secrets", "50% off?#x"]);
        assert_eq!(url.as_str(), "https://sm.example/api/v2/secret_groups/a%2Fb/secrets/50%25%20off%3F%23x");
        let trailing = Url::parse("https://sm.example/").expect("url");
        assert_eq!(join(&trailing, &["api", "v2"]).as_str(), "https://sm.example/api/v2");
    }

    #[test]
    fn next_offset_from_absolute_and_relative_hrefs() {
        let href = |href: &str| Href { href: href.into() };
        let cases = [
            ("https://myhost.com/somePath?offset=1", Some(1)),
            ("/api/v2/secrets?limit=2&offset=400", Some(400)),
            ("secrets?offset=7", Some(7)),
            ("?offset=9&limit=1", Some(9)),
            ("/api/v2/secrets?limit=2", None),
        ];
        for (given, expected) in cases {
            assert_eq!(next_offset(Some(&href(given))), Ok(expected), "{given}");
        }
        assert_eq!(next_offset(None), Ok(None));
        assert_eq!(next_offset(Some(&href("/x?offset=abc"))), Err(DecodeError::InvalidNextHref));
    }

    #[test]
    fn list_query_joins_arrays() {
        let params = ListSecretsParams {
            offset: Some(5),
            limit: Some(10),
            sort: Some("-name".into()),
            search: Some("db".into()),
            groups: vec!["default".into(), "g2".into()],
            secret_types: vec![SecretType::Arbitrary, SecretType::Kv],
            match_all_labels: vec!["a".into(), "b".into()],
        };
        let query = list_query(&params);
        assert_eq!(
            query,
            [
                ("offset", "5".to_owned()),
                ("limit", "10".to_owned()),
                ("sort", "-name".to_owned()),
                ("search", "db".to_owned()),
                ("groups", "default,g2".to_owned()),
                ("secret_types", "arbitrary,kv".to_owned()),
                ("match_all_labels", "a,b".to_owned()),
            ]
        );
        assert!(list_query(&ListSecretsParams::default()).is_empty());
    }

    #[test]
    fn retry_policy() {
        let service = |status: u16| Error::Service {
            operation: Operation::GetSecret,
            source: crate::provider::ServiceError {
                status: StatusCode::from_u16(status).expect("status"),
                code: None,
                message: String::new(),
                trace: None,
                retry_after: None,
            },
        };
        for status in [429, 500, 502, 503, 504, 599] {
            assert!(is_retryable(&service(status)), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 412, 501] {
            assert!(!is_retryable(&service(status)), "{status}");
        }
        assert!(!is_retryable(&Error::Decode {
            operation: Operation::GetSecret,
            source: DecodeError::MissingSecretType
        }));
    }
}
