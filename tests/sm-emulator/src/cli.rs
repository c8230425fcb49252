//! Command line of the `sm-emulator` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use sm_emulator::config::{DEFAULT_API_KEY, DEFAULT_INSTANCE_ID};
use sm_emulator::{CrTokenSource, Emulator, EmulatorConfig, TrustedProfile};

/// Emulates IBM Cloud Secrets Manager v2 and the IAM token service on one listener.
///
/// The first line on stdout is `listening on http://IP:PORT` once the server accepts
/// requests (and the seed file, if any, is loaded). Logs go to stderr; filter them with
/// SM_EMULATOR_LOG (e.g. `debug`).
#[derive(Parser)]
#[command(name = "sm-emulator", version, about)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SM_EMULATOR_LISTEN", default_value = "127.0.0.1:0", help_heading = "Server")]
    listen: SocketAddr,

    /// JSON or YAML file of secrets to preload: a list of create bodies (each may carry a
    /// fixed `id`), or an object whose `secrets` key holds that list.
    #[arg(long, env = "SM_EMULATOR_SEED", help_heading = "Server")]
    seed: Option<PathBuf>,

    /// Instance id used in CRNs.
    #[arg(long, env = "SM_EMULATOR_INSTANCE_ID", default_value = DEFAULT_INSTANCE_ID, help_heading = "Server")]
    instance_id: String,

    /// Region used in CRNs.
    #[arg(long, env = "SM_EMULATOR_REGION", default_value = "us-south", help_heading = "Server")]
    region: String,

    /// Admitted Secrets Manager requests per sliding second; 0 turns the limit off.
    #[arg(long, env = "SM_EMULATOR_RATE_LIMIT", default_value_t = 20, help_heading = "Throttling")]
    rate_limit: u32,

    /// Whether a 429 answer carries `Retry-After: 1`.
    #[arg(
        long,
        env = "SM_EMULATOR_RETRY_AFTER",
        default_value_t = true,
        action = ArgAction::Set,
        value_name = "true|false",
        help_heading = "Throttling"
    )]
    retry_after: bool,

    /// IAM API key accepted by the apikey grant. Repeatable; comma-separated in the
    /// environment. Without any, `emulator-api-key` is accepted.
    #[arg(long = "api-key", env = "SM_EMULATOR_API_KEYS", value_delimiter = ',', help_heading = "IAM")]
    api_keys: Vec<String>,

    /// Trusted profile accepted by the cr-token grant, as
    /// `PROFILE_ID[:PROFILE_NAME]=TOKEN`. TOKEN is a file path if such a file exists (its
    /// content, re-read at every exchange, is the expected cr_token), else the literal
    /// token. Repeatable; comma-separated in the environment.
    #[arg(
        long = "trusted-profile",
        env = "SM_EMULATOR_TRUSTED_PROFILES",
        value_delimiter = ',',
        value_parser = parse_trusted_profile,
        help_heading = "IAM"
    )]
    trusted_profiles: Vec<TrustedProfile>,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(
        long,
        env = "SM_EMULATOR_TOKEN_LIFETIME",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "IAM"
    )]
    token_lifetime: u64,
}

impl Args {
    /// Starts the emulator and serves until SIGINT or SIGTERM.
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let Self {
            listen,
            seed,
            instance_id,
            region,
            rate_limit,
            retry_after,
            api_keys,
            trusted_profiles,
            token_lifetime,
        } = self;
        let config = EmulatorConfig {
            api_keys: if api_keys.is_empty() { vec![DEFAULT_API_KEY.to_owned()] } else { api_keys },
            trusted_profiles,
            rate_limit,
            retry_after,
            token_lifetime: Duration::from_secs(token_lifetime),
            instance_id,
            region,
            ..EmulatorConfig::default()
        };
        let mut emulator =
            Emulator::start(config, listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        if let Some(seed) = seed {
            let count = emulator.store().load_seed(&seed)?;
            tracing::info!(count, path = %seed.display(), "seeded secrets");
        }
        crate::announce(&emulator.url())?;
        tokio::select! {
            () = emulator.wait() => anyhow::bail!("the server stopped unexpectedly"),
            result = shutdown_signal() => result,
        }
    }
}

/// Parses `PROFILE_ID[:PROFILE_NAME]=TOKEN_FILE_OR_VALUE`.
fn parse_trusted_profile(text: &str) -> Result<TrustedProfile, String> {
    let (profile, token) =
        text.split_once('=').ok_or("expected PROFILE_ID[:PROFILE_NAME]=TOKEN_FILE_OR_VALUE")?;
    let (profile_id, profile_name) = match profile.split_once(':') {
        Some((id, name)) => (id, Some(name.to_owned())),
        None => (profile, None),
    };
    if profile_id.is_empty() || token.is_empty() || profile_name.as_deref() == Some("") {
        return Err("profile id, profile name and token must not be empty".into());
    }
    let path = PathBuf::from(token);
    let cr_token =
        if path.is_file() { CrTokenSource::File(path) } else { CrTokenSource::Value(token.to_owned()) };
    Ok(TrustedProfile { profile_id: profile_id.to_owned(), profile_name, cr_token })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn verify_cli() {
        Args::command().debug_assert();
    }

    #[test]
    fn trusted_profiles() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let with_file = parse_trusted_profile(&format!("Profile-1:web={}", file.path().display())).unwrap();
        assert_eq!(with_file.profile_id, "Profile-1");
        assert_eq!(with_file.profile_name.as_deref(), Some("web"));
        assert!(matches!(with_file.cr_token, CrTokenSource::File(_)));
        let literal = parse_trusted_profile("Profile-2=abc").unwrap();
        assert!(literal.profile_name.is_none());
        assert!(matches!(literal.cr_token, CrTokenSource::Value(ref v) if v == "abc"));
        assert!(parse_trusted_profile("Profile-3").is_err());
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from([
            "sm-emulator",
            "--retry-after",
            "false",
            "--api-key",
            "a",
            "--api-key",
            "b",
        ])
        .unwrap();
        assert!(!args.retry_after);
        assert_eq!(args.api_keys, ["a", "b"]);
        assert_eq!(args.rate_limit, 20);
        assert_eq!(args.token_lifetime, 3600);
    }
}
