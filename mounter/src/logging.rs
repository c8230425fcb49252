//! Logging: `tracing` to stderr, filtered by `COS_MOUNTER_LOG`
//! (e.g. `COS_MOUNTER_LOG=mounter=debug`), `info` by default.

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "COS_MOUNTER_LOG";

/// Installs the global subscriber.
pub fn init() {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
