//! Configuration of one emulated Secrets Manager instance and its IAM token service.
//!
//! The binary builds an [`EmulatorConfig`] from its command line; tests build one directly,
//! usually starting from [`EmulatorConfig::default`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Instance id used in CRNs when none is configured.
pub const DEFAULT_INSTANCE_ID: &str = "6b7e0a1c-5f3d-4c2e-9a8b-1d2c3e4f5a6b";

/// API key accepted by a default configuration.
pub const DEFAULT_API_KEY: &str = "emulator-api-key";

/// Everything that shapes one emulated instance.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// IAM API keys that `/identity/token` accepts with the `apikey` grant.
    pub api_keys: Vec<String>,
    /// Trusted profiles that `/identity/token` accepts with the `cr-token` grant.
    pub trusted_profiles: Vec<TrustedProfile>,
    /// Admitted Secrets Manager requests per sliding second; `0` turns the limit off.
    pub rate_limit: u32,
    /// Whether a `429` carries `Retry-After: 1`.
    pub retry_after: bool,
    /// Lifetime of issued access tokens (whole seconds are used).
    pub token_lifetime: Duration,
    /// Instance id used in CRNs.
    pub instance_id: String,
    /// Region used in CRNs.
    pub region: String,
    /// Account id used in CRNs and token claims.
    pub account_id: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_keys: vec![DEFAULT_API_KEY.into()],
            trusted_profiles: Vec::new(),
            rate_limit: 20,
            retry_after: true,
            token_lifetime: Duration::from_secs(3600),
            instance_id: DEFAULT_INSTANCE_ID.into(),
            region: "us-south".into(),
            account_id: "emulatoraccount0000000000000000a".into(),
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("api_keys", &format_args!("<{} redacted>", self.api_keys.len()))
            .field("trusted_profiles", &self.trusted_profiles)
            .field("rate_limit", &self.rate_limit)
            .field("retry_after", &self.retry_after)
            .field("token_lifetime", &self.token_lifetime)
            .field("instance_id", &self.instance_id)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// A trusted profile that compute resources may assume with a CR token.
#[derive(Clone, Debug)]
pub struct TrustedProfile {
    /// Profile id, e.g. `Profile-<uuid>`; matched against the `profile_id` form field.
    pub profile_id: String,
    /// Optional profile name; matched against the `profile_name` form field.
    pub profile_name: Option<String>,
    /// Where the expected CR token comes from.
    pub cr_token: CrTokenSource,
}

/// The CR token a trusted profile expects.
#[derive(Clone)]
pub enum CrTokenSource {
    /// The token is the file's content, read at every exchange (the kubelet rotates it).
    File(PathBuf),
    /// A fixed token.
    Value(String),
}

impl CrTokenSource {
    /// The token expected now; `None` when the file cannot be read.
    pub(crate) fn current(&self) -> Option<String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path).ok(),
            Self::Value(value) => Some(value.clone()),
        }
    }
}

impl fmt::Debug for CrTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}
