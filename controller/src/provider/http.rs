//! HTTP plumbing shared by the Secrets Manager and IAM requests: the HTTP
//! client, error-response parsing, `Retry-After` and error classification.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::config::ClientConfig;
use super::error::{Error, Result, RetryAfter, ServiceError};
use super::observe::{AttemptOutcome, Operation};

/// Sent on every request.
const USER_AGENT: &str = concat!("cos-secrets-sync/", env!("CARGO_PKG_VERSION"));

/// Longest message, code or trace kept from an error body, in characters.
const MAX_FIELD_CHARS: usize = 1024;

/// Builds the HTTP client: rustls with the system roots plus the optional CA
/// bundle, the configured timeout on every request.
pub(crate) fn build_client(config: &ClientConfig) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(config.timeout).user_agent(USER_AGENT);
    if let Some(path) = &config.ca_bundle {
        let cause = |reason: &str, source: Box<dyn StdError + Send + Sync>| Error::Config {
            reason: format!("{reason} {}", path.display()),
            source: Some(source),
        };
        let pem = std::fs::read(path).map_err(|e| cause("cannot read the CA bundle", e.into()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| cause("cannot parse the CA bundle", e.into()))?;
        if certs.is_empty() {
            return Err(Error::config(format!("the CA bundle {} holds no certificate", path.display())));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| Error::Config { reason: "cannot build the HTTP client".into(), source: Some(e.into()) })
}

/// Maps a failed send or body read to `Timeout` or `Transport`.
pub(crate) fn request_error(operation: Operation, source: reqwest::Error) -> Error {
    if source.is_timeout() {
        Error::Timeout { operation, source }
    } else {
        Error::Transport { operation, source }
    }
}

/// The observer outcome of an attempt.
pub(crate) fn outcome(result: &Result<Response, reqwest::Error>) -> AttemptOutcome {
    match result {
        Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
        Err(error) if error.is_timeout() => AttemptOutcome::Timeout,
        Err(_) => AttemptOutcome::Transport,
    }
}

/// Whether a request error comes from rejecting the server's certificate.
/// Such errors are not retried, as in the Go core's retry policy.
pub(crate) fn is_tls_certificate_error(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::InvalidCertRevocationList(_)
            );
        }
        // `io::Error::source` skips the wrapped error itself; look inside.
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
            && is_tls_certificate_error(inner)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Reads an error response into a [`ServiceError`] (reference 2.1).
///
/// The exact Secrets Manager v2 error body is UNCONFIRMED, so this reads it
/// the way the Go core's `processErrorResponse` does, which covers both IBM's
/// Handbook container and IAM's `errorCode`/`errorMessage` shape. The body is
/// parsed only when its `Content-Type` is JSON; otherwise the message is the
/// status text and the body is dropped. It is never echoed whole.
pub(crate) async fn service_error(response: Response) -> ServiceError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let json = if is_json(response.headers()) {
        response.bytes().await.ok().and_then(|body| serde_json::from_slice::<Value>(&body).ok())
    } else {
        None
    };
    error_from_body(status, json.as_ref(), retry_after)
}

fn error_from_body(
    status: StatusCode,
    body: Option<&Value>,
    retry_after: Option<RetryAfter>,
) -> ServiceError {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(bounded);
    let first = body.and_then(|body| body.get("errors")?.get(0));
    let message = text(first.and_then(|first| first.get("message")))
        .or_else(|| {
            ["error", "message", "errorMessage"]
                .into_iter()
                .find_map(|key| text(body.and_then(|body| body.get(key))))
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("unknown status").to_owned());
    let code = text(first.and_then(|first| first.get("code"))).or_else(|| {
        ["code", "errorCode"].into_iter().find_map(|key| text(body.and_then(|body| body.get(key))))
    });
    let trace = text(body.and_then(|body| body.get("trace")))
        .or_else(|| text(body.and_then(|body| body.pointer("/context/requestId"))));
    ServiceError { status, code, message, trace, retry_after }
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_FIELD_CHARS).collect()
}

/// `application/json`, or any `+json` type, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
    }
    httpdate::parse_http_date(value).ok().map(RetryAfter::At)
}

impl RetryAfter {
    /// How long to wait from `now`. Seconds are honoured as given; a date is
    /// capped at `max` (both as in the Go core's backoff policy).
    pub(crate) fn delay(self, now: SystemTime, max: Duration) -> Duration {
        match self {
            Self::Delay(delay) => delay,
            Self::At(at) => at.duration_since(now).unwrap_or_default().min(max),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    fn parse(status: u16, body: &Value) -> ServiceError {
        error_from_body(StatusCode::from_u16(status).expect("status"), Some(body), None)
    }

    #[test]
    fn message_and_code_precedence() {
        let handbook = parse(
            404,
            &json!({"errors": [{"code": "secret_not_found", "message": "Secret not found"}],
                    "trace": "t-1", "status_code": 404, "message": "ignored"}),
        );
        assert_eq!(handbook.message, "Secret not found");
        assert_eq!(handbook.code.as_deref(), Some("secret_not_found"));
        assert_eq!(handbook.trace.as_deref(), Some("t-1"));

        let iam = parse(
            400,
            &json!({"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found.",
                    "context": {"requestId": "r-1"}}),
        );
        assert_eq!(iam.message, "Provided API key could not be found.");
        assert_eq!(iam.code.as_deref(), Some("BXNIM0415E"));
        assert_eq!(iam.trace.as_deref(), Some("r-1"));

        assert_eq!(parse(400, &json!({"error": "e", "message": "m"})).message, "e");
        assert_eq!(parse(400, &json!({"message": "m", "errorMessage": "x"})).message, "m");
        assert_eq!(parse(400, &json!({"code": "c", "errorCode": "x"})).code.as_deref(), Some("c"));
        let empty = parse(503, &json!({"errors": []}));
        assert_eq!(empty.message, "Service Unavailable");
        assert_eq!(empty.code, None);
        let other = error_from_body(StatusCode::BAD_GATEWAY, None, None);
        assert_eq!(other.message, "Bad Gateway");
    }

    #[test]
    fn json_content_types() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            headers
        };
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/problem+json")));
        assert!(!is_json(&headers("text/html")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn retry_after_forms() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
            headers
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let max = Duration::from_secs(30);

        let seconds = retry_after(&headers("120")).expect("seconds");
        assert_eq!(seconds, RetryAfter::Delay(Duration::from_secs(120)));
        assert_eq!(seconds.delay(now, max), Duration::from_secs(120), "seconds are not capped");

        let soon = httpdate::fmt_http_date(now + Duration::from_secs(5));
        let date = retry_after(&headers(&soon)).expect("date");
        assert_eq!(date.delay(now, max), Duration::from_secs(5));
        let late = httpdate::fmt_http_date(now + Duration::from_secs(500));
        assert_eq!(retry_after(&headers(&late)).expect("date").delay(now, max), max);
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(retry_after(&headers(&past)).expect("date").delay(now, max), Duration::ZERO);

        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
