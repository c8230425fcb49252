//! Configuration of the IBM Secrets Manager client.
//!
//! A plain struct; the binary maps its command-line flags to it. Defaults
//! follow IBM's Go SDK core where it has one: the IAM URL, the 30 s timeout
//! of its token client, and the retry bounds of `EnableRetries` (4 retries,
//! waits between 1 s and 30 s). The request budget is off unless set.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::budget::BudgetConfig;
use super::value::SecretText;

/// The public IAM endpoint (reference 3.1).
pub const DEFAULT_IAM_URL: &str = "https://iam.cloud.ibm.com";

/// How the client gets IAM access tokens.
#[derive(Clone, Debug)]
pub enum AuthConfig {
    /// The API-key grant (`urn:ibm:params:oauth:grant-type:apikey`).
    ApiKey {
        /// The IBM Cloud API key.
        api_key: SecretText,
    },
    /// The trusted-profile grant (`urn:ibm:params:oauth:grant-type:cr-token`):
    /// a compute-resource token, typically a projected service-account token,
    /// exchanged for an access token of a trusted profile.
    TrustedProfile {
        /// The trusted profile id. At least one of id and name is required;
        /// both are sent when both are set (they must name the same profile).
        profile_id: Option<String>,
        /// The trusted profile name.
        profile_name: Option<String>,
        /// The file holding the compute-resource token. It is re-read at
        /// every exchange, because the kubelet rotates it.
        token_file: PathBuf,
    },
}

/// Everything [`IbmSecretsManager`](super::IbmSecretsManager) needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The instance endpoint, e.g.
    /// `https://<instance_id>.<region>.secrets-manager.appdomain.cloud`;
    /// `/api/v2/...` is appended to it.
    pub endpoint: Url,
    /// How to authenticate.
    pub auth: AuthConfig,
    /// The IAM base URL. A trailing `/identity/token` is accepted and
    /// stripped, as in the SDK cores.
    pub iam_url: Url,
    /// The timeout of every HTTP request, token exchanges included.
    pub timeout: Duration,
    /// How many times a failed request is retried (`429`, `5xx` but `501`,
    /// and transport errors other than TLS certificate errors).
    pub max_retries: usize,
    /// The first backoff wait (before jitter).
    pub retry_min_delay: Duration,
    /// The longest backoff wait, which also caps a `Retry-After` date. A
    /// `Retry-After` in seconds is honoured uncapped, as in the Go core.
    pub retry_max_delay: Duration,
    /// A PEM file of extra CA certificates to trust besides the system ones.
    pub ca_bundle: Option<PathBuf>,
    /// The request budget every Secrets Manager attempt waits on; `None`
    /// sends unpaced.
    pub budget: Option<BudgetConfig>,
}

impl ClientConfig {
    /// A configuration with the default IAM URL, timeout and retry bounds.
    pub fn new(endpoint: Url, auth: AuthConfig) -> Self {
        Self {
            endpoint,
            auth,
            iam_url: Url::parse(DEFAULT_IAM_URL).expect("the default IAM URL is valid"),
            timeout: Duration::from_secs(30),
            max_retries: 4,
            retry_min_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
            ca_bundle: None,
            budget: None,
        }
    }
}
