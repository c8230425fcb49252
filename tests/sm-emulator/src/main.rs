//! `sm-emulator`: serves the Secrets Manager v2 and IAM emulator until interrupted.

mod cli;

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SM_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    cli::Args::parse().run().await
}

/// Writes the readiness line that scripts wait for; it must be the first stdout line.
fn announce(url: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {url}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")
}
