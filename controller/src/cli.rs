//! Command-line flags and their environment variables.
//!
//! The KES variables keep working (`IBM_CLOUD_SECRETS_MANAGER_API_*`,
//! `POLLER_INTERVAL_MILLISECONDS`, `WATCHED_NAMESPACES`); everything new has
//! a `COS_SECRETS_SYNC_*` variable. [`Args::into_parts`] turns the flags
//! into the library's config structs; see `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use url::Url;

use crate::leader::{LeaderConfig, default_identity};
use crate::provider::{AuthConfig, BudgetConfig, ClientConfig};
use crate::run::{ChangeDetection, Config};
use crate::telemetry::LogFormat;

const SM: &str = "Secrets Manager";
const SYNC: &str = "Sync";
const HA: &str = "Leader election";
const OPS: &str = "Operations";

/// How the controller authenticates to IAM (`IBM_CLOUD_SECRETS_MANAGER_API_AUTH_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthType {
    /// API key grant with `IBM_CLOUD_SECRETS_MANAGER_API_APIKEY`.
    Iam,
    /// Trusted profile with a projected service-account token (recommended).
    Container,
}

/// cos-secrets-sync controller: syncs IBM Cloud Secrets Manager secrets into
/// Kubernetes Secrets, from KES-compatible ExternalSecret objects.
#[derive(Debug, Parser)]
#[command(version, about)]
#[allow(clippy::struct_excessive_bools, reason = "independent switches")]
pub struct Args {
    /// The Secrets Manager instance URL, e.g.
    /// `https://<instance-id>.<region>.secrets-manager.appdomain.cloud`.
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_ENDPOINT", help_heading = SM)]
    pub sm_endpoint: Url,

    /// How to authenticate: `container` (trusted profile, recommended) or
    /// `iam` (API key).
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_AUTH_TYPE", value_enum, ignore_case = true,
          default_value = "iam", help_heading = SM)]
    pub auth_type: AuthType,

    /// The IBM Cloud API key (auth type `iam`).
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_APIKEY", hide_env_values = true, help_heading = SM)]
    pub api_key: Option<String>,

    /// The IAM base URL.
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_AUTH_URL", default_value = crate::provider::config::DEFAULT_IAM_URL,
          help_heading = SM)]
    pub iam_url: Url,

    /// The trusted profile id (auth type `container`).
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_IAM_PROFILE_ID", help_heading = SM)]
    pub iam_profile_id: Option<String>,

    /// The trusted profile name (auth type `container`).
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_IAM_PROFILE_NAME", help_heading = SM)]
    pub iam_profile_name: Option<String>,

    /// The compute-resource token file (auth type `container`).
    #[arg(long, env = "IBM_CLOUD_SECRETS_MANAGER_API_CR_TOKEN_FILENAME",
          default_value = "/var/run/secrets/tokens/vault-token", help_heading = SM)]
    pub cr_token_file: PathBuf,

    /// Extra CA certificates (PEM) to trust for Secrets Manager and IAM.
    #[arg(long, env = "COS_SECRETS_SYNC_CA_BUNDLE", help_heading = SM)]
    pub ca_bundle: Option<PathBuf>,

    /// The Secrets Manager instance's rate limit, in requests per second.
    #[arg(long, env = "COS_SECRETS_SYNC_SM_RATE_LIMIT", default_value_t = BudgetConfig::DEFAULT_RATE_LIMIT,
          value_parser = positive_rate, help_heading = SM)]
    pub sm_rate_limit: f64,

    /// The share of the rate limit this controller uses, in (0, 1]; the rest
    /// is left to other clients of the instance.
    #[arg(long, env = "COS_SECRETS_SYNC_SM_BUDGET_SHARE", default_value_t = BudgetConfig::DEFAULT_SHARE,
          value_parser = share, help_heading = SM)]
    pub sm_budget_share: f64,

    /// How often every ExternalSecret is synced, or with change detection
    /// how often secret metadata is scanned for changes, in milliseconds.
    #[arg(long, env = "POLLER_INTERVAL_MILLISECONDS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000), help_heading = SYNC)]
    pub poll_interval_ms: u64,

    /// The first retry delay after a failed sync, in milliseconds; doubles
    /// per failure up to the poll interval.
    #[arg(long, env = "COS_SECRETS_SYNC_RETRY_MIN_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000), help_heading = SYNC)]
    pub retry_min_ms: u64,

    /// Scan secret metadata every poll interval and read only the secrets
    /// that changed; `false` reads every secret every poll interval.
    #[arg(long, env = "COS_SECRETS_SYNC_CHANGE_DETECTION", default_value_t = true,
          action = clap::ArgAction::Set, help_heading = SYNC)]
    pub change_detection: bool,

    /// With change detection, how often every ExternalSecret is read in
    /// full anyway, in milliseconds (at least the poll interval).
    #[arg(long, env = "COS_SECRETS_SYNC_FULL_REFRESH_INTERVAL_MS", default_value_t = 3_600_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000), help_heading = SYNC)]
    pub full_refresh_interval_ms: u64,

    /// Namespaces to watch, comma-separated; empty watches all.
    #[arg(long, env = "WATCHED_NAMESPACES", value_delimiter = ',', help_heading = SYNC)]
    pub watched_namespaces: Vec<String>,

    /// How many ExternalSecrets are synced at once (per watched namespace).
    ///
    /// The request budget, not this, bounds the rate of Secrets Manager
    /// requests; a sync waiting for its permits is a small future. Syncs
    /// beyond this number wait in kube-runtime's queue, first come first
    /// served, where a new ExternalSecret cannot overtake a backlog of
    /// refreshes; within it they wait in the budget's priority queue, where
    /// it can. 256 holds a rotation burst of a hundred refreshes plus a
    /// wave of new objects, while bounding the Kubernetes API calls in
    /// flight.
    #[arg(long, env = "COS_SECRETS_SYNC_CONCURRENCY", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..=4096), help_heading = SYNC)]
    pub concurrency: u16,

    /// Run only while holding the leader Lease.
    #[arg(long, env = "COS_SECRETS_SYNC_LEADER_ELECTION", default_value_t = true,
          action = clap::ArgAction::Set, help_heading = HA)]
    pub leader_election: bool,

    /// The Lease name.
    #[arg(long, env = "COS_SECRETS_SYNC_LEASE_NAME", default_value = "cos-secrets-sync", help_heading = HA)]
    pub lease_name: String,

    /// The Lease namespace (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", help_heading = HA)]
    pub lease_namespace: String,

    /// This replica's identity in the Lease; defaults to POD_NAME or the
    /// host name.
    #[arg(long, env = "COS_SECRETS_SYNC_LEASE_IDENTITY", help_heading = HA)]
    pub lease_identity: Option<String>,

    /// Seconds a Lease stays valid after its last renewal; a standby takes
    /// over at most this long after the leader dies.
    #[arg(long, env = "COS_SECRETS_SYNC_LEASE_DURATION", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=300), help_heading = HA)]
    pub lease_duration_secs: u64,

    /// Seconds before expiry at which the leader renews.
    #[arg(long, env = "COS_SECRETS_SYNC_LEASE_GRACE", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=299), help_heading = HA)]
    pub lease_grace_secs: u64,

    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "COS_SECRETS_SYNC_METRICS_ADDR", default_value = "0.0.0.0:8080", help_heading = OPS)]
    pub metrics_addr: SocketAddr,

    /// A kubeconfig file; by default the in-cluster config or $KUBECONFIG.
    #[arg(long, env = "COS_SECRETS_SYNC_KUBECONFIG", help_heading = OPS)]
    pub kubeconfig: Option<PathBuf>,

    /// Log format (the filter is COS_SECRETS_SYNC_LOG, e.g. `info,controller=debug`).
    #[arg(long, env = "COS_SECRETS_SYNC_LOG_FORMAT", value_enum, default_value = "text", help_heading = OPS)]
    pub log_format: LogFormat,
}

/// Parses a rate in requests per second: positive and finite.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

/// Parses a share: a number in (0, 1].
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(format!("`{text}` is not a number in (0, 1]")),
    }
}

/// An unusable combination of flags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--auth-type iam` without an API key.
    #[error("IBM_CLOUD_SECRETS_MANAGER_API_APIKEY (--api-key) is required with auth type iam")]
    MissingApiKey,
    /// `--auth-type container` without a profile.
    #[error(
        "IBM_CLOUD_SECRETS_MANAGER_API_IAM_PROFILE_ID or _IAM_PROFILE_NAME is required with auth type container"
    )]
    MissingProfile,
    /// The grace is not shorter than the lease.
    #[error("--lease-grace-secs must be shorter than --lease-duration-secs")]
    LeaseGrace,
}

/// Everything the binary needs, from the flags.
#[derive(Debug)]
pub struct Parts {
    /// The controller's configuration.
    pub config: Config,
    /// The Secrets Manager client's configuration.
    pub client: ClientConfig,
    /// An explicit kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// The log format.
    pub log_format: LogFormat,
}

impl Args {
    /// Checks and converts the flags. Destructures `self`, so a new flag
    /// cannot be silently ignored.
    pub fn into_parts(self) -> Result<Parts, Error> {
        let Self {
            sm_endpoint,
            auth_type,
            api_key,
            iam_url,
            iam_profile_id,
            iam_profile_name,
            cr_token_file,
            ca_bundle,
            sm_rate_limit,
            sm_budget_share,
            poll_interval_ms,
            retry_min_ms,
            change_detection,
            full_refresh_interval_ms,
            watched_namespaces,
            concurrency,
            leader_election,
            lease_name,
            lease_namespace,
            lease_identity,
            lease_duration_secs,
            lease_grace_secs,
            metrics_addr,
            kubeconfig,
            log_format,
        } = self;
        let auth = match auth_type {
            AuthType::Iam => AuthConfig::ApiKey {
                api_key: api_key.filter(|key| !key.is_empty()).ok_or(Error::MissingApiKey)?.into(),
            },
            AuthType::Container => {
                if iam_profile_id.is_none() && iam_profile_name.is_none() {
                    return Err(Error::MissingProfile);
                }
                AuthConfig::TrustedProfile {
                    profile_id: iam_profile_id,
                    profile_name: iam_profile_name,
                    token_file: cr_token_file,
                }
            }
        };
        if lease_grace_secs >= lease_duration_secs {
            return Err(Error::LeaseGrace);
        }
        let mut client = ClientConfig::new(sm_endpoint, auth);
        client.iam_url = iam_url;
        client.ca_bundle = ca_bundle;
        client.budget = Some(BudgetConfig::new(sm_rate_limit, sm_budget_share));
        let identity = lease_identity.unwrap_or_else(default_identity);
        let leader = leader_election.then(|| LeaderConfig {
            lease_name,
            namespace: lease_namespace,
            identity: identity.clone(),
            lease_duration: Duration::from_secs(lease_duration_secs),
            renew_grace: Duration::from_secs(lease_grace_secs),
        });
        let config = Config {
            poll_interval: Duration::from_millis(poll_interval_ms),
            retry_min_delay: Duration::from_millis(retry_min_ms),
            change_detection: change_detection.then(|| ChangeDetection {
                full_refresh_interval: Duration::from_millis(full_refresh_interval_ms),
            }),
            concurrency,
            namespaces: watched_namespaces
                .into_iter()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
                .collect(),
            http_addr: Some(metrics_addr),
            leader,
            instance: identity,
            log_control: None,
        };
        Ok(Parts { config, client, kubeconfig, log_format })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Args::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(
            [&["cos-secrets-controller", "--sm-endpoint", "https://sm.example"][..], args].concat(),
        )
        .unwrap()
    }

    #[test]
    fn api_key_mode_and_defaults() {
        let parts = parse(&["--api-key", "k", "--watched-namespaces", "a, b,"]).into_parts().unwrap();
        assert!(matches!(parts.client.auth, AuthConfig::ApiKey { .. }));
        assert_eq!(parts.config.poll_interval, Duration::from_secs(10));
        assert_eq!(
            parts.config.change_detection,
            Some(ChangeDetection { full_refresh_interval: Duration::from_secs(3600) })
        );
        let off = parse(&["--api-key", "k", "--change-detection", "false"]).into_parts().unwrap();
        assert_eq!(off.config.change_detection, None);
        assert_eq!(parts.config.namespaces, ["a", "b"]);
        assert_eq!(parts.config.concurrency, 256);
        assert!(parts.config.leader.is_some());
        assert!(!format!("{parts:?}").contains("\"k\""), "the key is redacted");
        let budget = parts.client.budget.unwrap();
        assert!((budget.rate() - 16.0).abs() < 1e-9, "80 % of 20/s by default");
    }

    #[test]
    fn budget_flags_are_checked() {
        let parts = parse(&["--api-key", "k", "--sm-rate-limit", "10", "--sm-budget-share", "0.5"])
            .into_parts()
            .unwrap();
        assert!((parts.client.budget.unwrap().rate() - 5.0).abs() < 1e-9);
        for bad in [["--sm-budget-share", "0"], ["--sm-budget-share", "1.5"], ["--sm-rate-limit", "-1"]] {
            let args = [&["x", "--sm-endpoint", "https://sm", "--api-key", "k"][..], &bad[..]].concat();
            assert!(Args::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trusted_profile_mode_and_errors() {
        let parts = parse(&["--auth-type", "CONTAINER", "--iam-profile-name", "p"]).into_parts().unwrap();
        assert!(matches!(parts.client.auth, AuthConfig::TrustedProfile { .. }));
        assert!(matches!(parse(&["--auth-type", "container"]).into_parts(), Err(Error::MissingProfile)));
        assert!(matches!(parse(&[]).into_parts(), Err(Error::MissingApiKey)));
        assert!(
            Args::try_parse_from(["x", "--sm-endpoint", "https://sm", "--poll-interval-ms", "5"]).is_err(),
            "bounds are enforced"
        );
    }
}
