//! Secrets Manager access: the trait the controller reads through, and the
//! IBM Cloud Secrets Manager v2 implementation behind it.
//!
//! # Design
//!
//! The reconciler never talks HTTP. It holds something that implements
//! [`SecretsManager`], a trait this crate owns (house style rule 3), so the
//! real client, an in-memory mock and decorators such as a rate limiter are
//! interchangeable. The trait is deliberately small: the five read operations
//! the controller needs, each returning typed models, plus
//! [`SecretsManager::list_all_secrets`], a provided method that pages through
//! [`SecretsManager::list_secrets`] so every implementation (and every
//! decorator) gets it for free.
//!
//! The parts:
//!
//! - [`model`]: the typed secrets. `secret_type` picks one of nine per-type
//!   models; an unknown or missing discriminator is a typed decode error, as in
//!   IBM's Go SDK.
//! - [`value`]: redacting holders for secret values. Their `Debug` and
//!   `Display` print `[REDACTED]`; the raw value is reachable only through an
//!   explicit `expose_secret`.
//! - [`extract`]: picks the value named by an ExternalSecret `property` out of
//!   a secret (for example `credentials.cos_hmac_keys.access_key_id`).
//! - [`config`]: the plain configuration struct of the IBM client; the binary
//!   maps its flags to it.
//! - `iam` (private): the IAM token exchange (API key or trusted profile)
//!   with one shared, single-flight token cache per client.
//! - [`ibm`]: [`IbmSecretsManager`], the REST client: URL building, bearer
//!   auth with one re-exchange on `401`, bounded retries with backoff and
//!   `Retry-After`, error-body parsing.
//! - [`budget`]: the request budget: a GCRA pacer every Secrets Manager
//!   attempt waits on, lowered by `429`s and recovering gradually, serving
//!   its waiters by priority class.
//! - [`dedupe`]: [`Dedupe`], a decorator sharing value reads of one remote
//!   secret between ExternalSecrets (single-flight plus a short cache).
//! - [`observe`]: [`CallObserver`], the hook metrics use to count attempts,
//!   status codes, `429`s, retries and token exchanges.
//! - [`error`]: the one error enum of this layer. It separates "the service
//!   said no" ([`Error::Service`], [`Error::Iam`]) from "our client broke"
//!   (transport, timeout, decode), and never carries a secret value: decode
//!   errors keep only a position, never serde's message, which can quote the
//!   input.
//!
//! Secret values never reach logs: spans and events carry the operation, the
//! attempt number, status codes and secret ids, never values or tokens.

pub mod budget;
pub mod config;
pub mod dedupe;
pub mod error;
pub mod extract;
mod http;
mod iam;
pub mod ibm;
pub mod model;
pub mod observe;
pub mod value;

use std::future::Future;

pub use budget::{Budget, BudgetConfig};
pub use config::{AuthConfig, ClientConfig};
pub use dedupe::Dedupe;
pub use error::{DecodeError, Error, Result, ServiceError};
pub use ibm::IbmSecretsManager;
pub use model::{Secret, SecretData, SecretMetadata, SecretType, SecretVersion, SecretVersionMetadata};
pub use observe::{AttemptOutcome, CallObserver, Operation};
pub use value::{SecretBytes, SecretJson, SecretText};

/// The largest page `list_secrets` may ask for (`limit`), per the API.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// Read access to a Secrets Manager instance.
///
/// Implemented by [`IbmSecretsManager`] and by decorators that wrap it.
pub trait SecretsManager: Send + Sync {
    /// Reads a secret, value included, by its id
    /// (`GET /api/v2/secrets/{id}`).
    fn get_secret(&self, id: &str) -> impl Future<Output = Result<Secret>> + Send;

    /// Reads a secret, value included, by secret group name, type and name
    /// (`GET /api/v2/secret_groups/{group}/secret_types/{type}/secrets/{name}`).
    /// The name of the default group in this path (presumably `default`) is
    /// UNCONFIRMED; `group` is sent as given.
    fn get_secret_by_name(
        &self,
        group: &str,
        secret_type: SecretType,
        name: &str,
    ) -> impl Future<Output = Result<Secret>> + Send;

    /// Reads the metadata of a secret, without its value
    /// (`GET /api/v2/secrets/{id}/metadata`).
    fn get_secret_metadata(&self, id: &str) -> impl Future<Output = Result<SecretMetadata>> + Send;

    /// Lists one page of secret metadata (`GET /api/v2/secrets`).
    fn list_secrets(
        &self,
        params: &ListSecretsParams,
    ) -> impl Future<Output = Result<SecretMetadataPage>> + Send;

    /// Reads one version of a secret, value included
    /// (`GET /api/v2/secrets/{secret_id}/versions/{id}`).
    fn get_secret_version(
        &self,
        secret_id: &str,
        version: &VersionRef,
    ) -> impl Future<Output = Result<SecretVersion>> + Send;

    /// The requests per second this client keeps to, if it paces itself
    /// (see [`budget`]); the scheduler sizes the poll interval by it.
    fn request_budget(&self) -> Option<f64> {
        None
    }

    /// Lists every secret matching `params`, following `next` links.
    ///
    /// `params.limit` is the page size: unset means [`MAX_PAGE_LIMIT`], and a
    /// larger value is clamped to it. Paging starts at `params.offset` and
    /// stops on the first page without a `next` link, like the Go SDK's
    /// `SecretsPager`. A `next` link that does not move forward is a
    /// [`DecodeError::InvalidNextHref`] rather than an endless loop.
    fn list_all_secrets(
        &self,
        params: &ListSecretsParams,
    ) -> impl Future<Output = Result<Vec<SecretMetadata>>> + Send {
        async move {
            let mut params = params.clone();
            params.limit = Some(params.limit.map_or(MAX_PAGE_LIMIT, |limit| limit.clamp(1, MAX_PAGE_LIMIT)));
            let mut secrets = Vec::new();
            loop {
                let page = self.list_secrets(&params).await?;
                secrets.extend(page.secrets);
                match page.next_offset {
                    None => return Ok(secrets),
                    Some(next) if next > params.offset.unwrap_or(0) => params.offset = Some(next),
                    Some(_) => {
                        return Err(Error::Decode {
                            operation: Operation::ListSecrets,
                            source: DecodeError::InvalidNextHref,
                        });
                    }
                }
            }
        }
    }
}

/// Query parameters of `list_secrets`. Unset fields are not sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListSecretsParams {
    /// Number of secrets to skip.
    pub offset: Option<u64>,
    /// Page size; the service defaults to 200 and allows at most
    /// [`MAX_PAGE_LIMIT`].
    pub limit: Option<u32>,
    /// Sort field (`id`, `created_at`, `updated_at`, `retrieved_at`,
    /// `expiration_date`, `secret_type`, `name`); a leading `-` sorts
    /// descending.
    pub sort: Option<String>,
    /// Keeps secrets containing this text in their id, name, description,
    /// labels or type.
    pub search: Option<String>,
    /// Secret group ids (`default` for the default group); sent joined by `,`.
    pub groups: Vec<String>,
    /// Secret types; sent joined by `,`.
    pub secret_types: Vec<SecretType>,
    /// Keeps secrets carrying all of these labels; sent joined by `,`.
    pub match_all_labels: Vec<String>,
}

/// One page of `list_secrets`.
#[derive(Clone, Debug)]
pub struct SecretMetadataPage {
    /// Number of secrets matching the query, over all pages.
    pub total_count: u64,
    /// The secrets on this page.
    pub secrets: Vec<SecretMetadata>,
    /// The `offset` of the next page, read from the `offset` query parameter
    /// of `next.href` (absolute or relative); `None` on the last page.
    pub next_offset: Option<u64>,
}

/// Which version of a secret to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// A version id.
    Id(String),
    /// The `current` alias: the latest version.
    Current,
    /// The `previous` alias: the version before the latest.
    Previous,
}

impl VersionRef {
    /// The path segment naming this version.
    pub fn as_path_segment(&self) -> &str {
        match self {
            Self::Id(id) => id,
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }
}
