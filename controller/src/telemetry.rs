//! Logging: `tracing` to stderr, filtered by `COS_SECRETS_SYNC_LOG`
//! (an `EnvFilter` directive such as `info,controller=debug`), as text or
//! JSON. The filter can be replaced at runtime through [`LogControl`]
//! (served as `PUT /log-level` by [`http`](crate::http)).

use std::fmt;
use std::sync::Arc;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, reload};

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "COS_SECRETS_SYNC_LOG";

/// The log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs a filter given as directives, or says why it cannot.
type ApplyFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// Replaces the log filter of a running process.
#[derive(Clone)]
pub struct LogControl(Arc<ApplyFilter>);

impl LogControl {
    /// A control that applies a filter with `apply`.
    pub fn new(apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(apply))
    }

    /// Parses `directives` as an `EnvFilter` and installs it.
    pub fn set(&self, directives: &str) -> Result<(), String> {
        (self.0)(directives)
    }
}

impl fmt::Debug for LogControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogControl")
    }
}

/// Installs the global subscriber (the filter defaults to `info`) and
/// returns the control that changes its filter.
pub fn init(format: LogFormat) -> LogControl {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().boxed(),
    };
    tracing_subscriber::registry().with(filter).with(output).init();
    LogControl::new(move |directives| {
        let filter = EnvFilter::try_new(directives).map_err(|error| error.to_string())?;
        handle.reload(filter).map_err(|error| error.to_string())
    })
}
