//! The error type of the provider layer.
//!
//! [`Error`] separates three families, so callers can react to each:
//!
//! - the remote service said no: [`Error::Service`] (Secrets Manager) and
//!   [`Error::Iam`] (the token service), both carrying a [`ServiceError`] with
//!   the status, code, message and trace of the response;
//! - our client broke: [`Error::Transport`], [`Error::Timeout`],
//!   [`Error::Decode`], [`Error::TokenFile`], [`Error::Config`];
//! - the caller asked for something the secret does not have:
//!   [`Error::MissingProperty`], [`Error::EmptyParameter`].
//!
//! No variant carries a secret value. Decode errors in particular never keep
//! serde's message, which can quote the offending input (a password in a
//! field of the wrong type, say); they keep a position or a field name from
//! our own model instead.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::error::Category;

use super::observe::Operation;

/// The result type of the provider layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when reading from Secrets Manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Secrets Manager answered with an error status.
    #[error("Secrets Manager refused {operation}")]
    Service {
        /// The operation that was refused.
        operation: Operation,
        /// What the service said.
        #[source]
        source: ServiceError,
    },

    /// The IAM token service refused to issue an access token.
    #[error("IAM refused the token exchange")]
    Iam {
        /// What IAM said.
        #[source]
        source: ServiceError,
    },

    /// The request could not be sent or its response could not be read.
    #[error("{operation} request failed")]
    Transport {
        /// The operation whose request failed.
        operation: Operation,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// No complete response arrived within the configured timeout.
    #[error("{operation} request timed out")]
    Timeout {
        /// The operation whose request timed out.
        operation: Operation,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// A success response did not decode into the expected model.
    #[error("cannot decode the {operation} response")]
    Decode {
        /// The operation whose response was malformed.
        operation: Operation,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },

    /// The trusted-profile token file could not be read, or was empty.
    #[error("cannot read the compute-resource token file {}", path.display())]
    TokenFile {
        /// The configured token file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The secret has no value at the requested property.
    #[error("secret {secret_id} has no value at property `{property}`")]
    MissingProperty {
        /// The id of the secret.
        secret_id: String,
        /// The property that was asked for.
        property: String,
    },

    /// A path parameter was empty; no request was sent (as in the Go SDK).
    #[error("{parameter} must not be empty")]
    EmptyParameter {
        /// The name of the parameter.
        parameter: &'static str,
    },

    /// The client configuration is unusable.
    #[error("invalid Secrets Manager client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// A bounded label for metrics and status reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Service { source, .. } => match source.status.as_u16() {
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                429 => "throttled",
                500..=599 => "server_error",
                _ => "rejected",
            },
            Self::Iam { .. } => "iam_refused",
            Self::Transport { .. } => "transport",
            Self::Timeout { .. } => "timeout",
            Self::Decode { .. } => "decode",
            Self::TokenFile { .. } => "token_file",
            Self::MissingProperty { .. } => "missing_property",
            Self::EmptyParameter { .. } => "invalid_argument",
            Self::Config { .. } => "config",
        }
    }

    /// The HTTP status the service answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Service { source, .. } | Self::Iam { source } => Some(source.status),
            _ => None,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config { reason: reason.into(), source: None }
    }
}

/// An error response of Secrets Manager or IAM.
///
/// The fields follow the SDK cores (reference 2.1): the message is the first
/// of `errors[0].message`, `error`, `message`, `errorMessage` and the status
/// text; the code the first of `errors[0].code`, `code` and `errorCode`. A
/// body is parsed only when its `Content-Type` is JSON; any other body is
/// dropped, never echoed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The service's error code, e.g. `secret_not_found` or `BXNIM0415E`.
    pub code: Option<String>,
    /// The service's message, or the status text.
    pub message: String,
    /// The request trace id (`trace`, or IAM's `context.requestId`).
    pub trace: Option<String>,
    /// When the service asked us to retry (`Retry-After`).
    pub retry_after: Option<RetryAfter>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status.as_u16(), self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        if let Some(trace) = &self.trace {
            write!(f, " (trace {trace})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

/// A parsed `Retry-After` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Delay(Duration),
    /// `Retry-After: <HTTP date>`.
    At(SystemTime),
}

/// Why a success response could not be decoded.
///
/// Deliberately holds no text from the response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not JSON.
    #[error("the body is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A field required by our model is absent.
    #[error("the required field `{field}` is missing")]
    MissingField {
        /// The field name, as spelled in our model.
        field: String,
    },
    /// A field has the wrong JSON type or an invalid value. The position is
    /// known only when decoding straight from the body.
    #[error("a field has the wrong type or an invalid value{}", position_suffix(*.line, *.column))]
    InvalidField {
        /// 1-based line, or 0 when unknown.
        line: usize,
        /// 1-based column, or 0 when unknown.
        column: usize,
    },
    /// The `secret_type` discriminator is absent.
    #[error("the secret_type discriminator is missing")]
    MissingSecretType,
    /// The `secret_type` discriminator names no known type.
    #[error(transparent)]
    UnknownSecretType(#[from] super::model::UnknownSecretType),
    /// `next.href` of a list page has an unusable `offset`.
    #[error("next.href does not hold a usable offset")]
    InvalidNextHref,
}

fn position_suffix(line: usize, column: usize) -> String {
    if line == 0 { String::new() } else { format!(" (line {line}, column {column})") }
}

impl From<serde_json::Error> for DecodeError {
    /// Keeps the category and position of a serde error, never its message
    /// (which can quote input), except the name of a missing field, which
    /// comes from our own model.
    fn from(error: serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => Self::Syntax { line, column },
            Category::Data => match missing_field_name(&error.to_string()) {
                Some(field) => Self::MissingField { field },
                None => Self::InvalidField { line, column },
            },
        }
    }
}

/// `missing field `x`` (serde's wording) → `x`.
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_never_quote_input() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Model {
            count: u32,
            name: String,
        }
        let wrong_type =
            serde_json::from_str::<Model>(r#"{"count": "hunter2", "name": "x"}"#).expect_err("wrong type");
        assert!(wrong_type.to_string().contains("hunter2"), "serde quotes input");
        let decoded = DecodeError::from(wrong_type);
        assert_eq!(decoded, DecodeError::InvalidField { line: 1, column: 19 });
        assert!(!decoded.to_string().contains("hunter2"));

        let missing = serde_json::from_str::<Model>(r#"{"count": 1}"#).expect_err("missing");
        assert_eq!(DecodeError::from(missing), DecodeError::MissingField { field: "name".into() });

        let syntax = serde_json::from_str::<Model>("{\"count\": hunter2").expect_err("syntax");
        let decoded = DecodeError::from(syntax);
        assert!(matches!(decoded, DecodeError::Syntax { line: 1, .. }));
        assert!(!decoded.to_string().contains("hunter2"));
    }

    #[test]
    fn service_error_display() {
        let error = ServiceError {
            status: StatusCode::NOT_FOUND,
            code: Some("secret_not_found".into()),
            message: "Secret not found".into(),
            trace: Some("abc".into()),
            retry_after: None,
        };
        assert_eq!(error.to_string(), "HTTP 404: Secret not found (code secret_not_found) (trace abc)");
    }
}
