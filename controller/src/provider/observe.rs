//! Hooks that let metrics watch the client without the client knowing about
//! metrics.
//!
//! [`IbmSecretsManager`](super::IbmSecretsManager) reports every HTTP attempt
//! (token exchanges included) and every scheduled retry to a [`CallObserver`].
//! All labels it hands out are bounded: an [`Operation`] and a status code,
//! never a secret id or a value.

use std::fmt;
use std::time::Duration;

/// What a request was for; a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `GET /api/v2/secrets/{id}`.
    GetSecret,
    /// `GET /api/v2/secret_groups/{group}/secret_types/{type}/secrets/{name}`.
    GetSecretByName,
    /// `GET /api/v2/secrets/{id}/metadata`.
    GetSecretMetadata,
    /// `GET /api/v2/secrets`.
    ListSecrets,
    /// `GET /api/v2/secrets/{secret_id}/versions/{id}`.
    GetSecretVersion,
    /// `POST /identity/token` at IAM.
    IamToken,
}

impl Operation {
    /// The label value: the snake-case operation name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetSecret => "get_secret",
            Self::GetSecretByName => "get_secret_by_name",
            Self::GetSecretMetadata => "get_secret_metadata",
            Self::ListSecrets => "list_secrets",
            Self::GetSecretVersion => "get_secret_version",
            Self::IamToken => "iam_token",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one HTTP attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// A response arrived with this status code.
    Status(u16),
    /// No response: the connection or the request failed.
    Transport,
    /// No response within the configured timeout.
    Timeout,
}

/// Receives one call per HTTP attempt and per scheduled retry.
///
/// Every method has a no-op default; `()` is the observer that ignores
/// everything. Implementations must be cheap and must not block: they run on
/// the request path.
pub trait CallObserver: Send + Sync {
    /// One HTTP attempt finished. Token exchanges arrive as
    /// [`Operation::IamToken`]; a `429` arrives as `Status(429)`.
    fn on_attempt(&self, operation: Operation, outcome: AttemptOutcome) {
        let _ = (operation, outcome);
    }

    /// A failed attempt will be retried after `delay`.
    fn on_retry(&self, operation: Operation, delay: Duration) {
        let _ = (operation, delay);
    }
}

impl CallObserver for () {}
