//! The scale benchmark (see `e2e::scale`): the controller side by side with a
//! KES-like poller at 1,000, 5,000 and 10,000 ExternalSecrets.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Measures request rate, throttling, rotation propagation, first-sync time
/// and memory of the controller against a KES-like baseline.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Path of the controller binary.
    #[arg(long, env = "COS_SYNC_CONTROLLER_BIN")]
    controller: PathBuf,
    /// The ExternalSecret CRD manifest.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds/externalsecret.yaml"))]
    crd: PathBuf,
    /// Numbers of ExternalSecrets, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 5_000, 10_000])]
    sizes: Vec<usize>,
    /// Poll interval of both contenders, in seconds.
    #[arg(long, default_value_t = 10)]
    interval_secs: u64,
    /// The emulator's quota, requests per second.
    #[arg(long, default_value_t = 20)]
    rate_limit: u32,
    /// Secrets rotated at once.
    #[arg(long, default_value_t = 100)]
    rotations: usize,
    /// ExternalSecrets applied under load for each first-sync figure (at once, then paced).
    #[arg(long, default_value_t = 50)]
    late: usize,
    /// Length of the steady window, in seconds.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Longest wait for a rotation or a first sync, in seconds.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// Skip the baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Where the controller's logs go.
    #[arg(long, default_value = "/tmp/cos-secrets-sync-scale-bench")]
    log_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args {
        controller,
        crd,
        sizes,
        interval_secs,
        rate_limit,
        rotations,
        late,
        steady_secs,
        wait_secs,
        no_baseline,
        log_dir,
    } = Args::parse();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let options = e2e::scale::ScaleOptions {
        controller,
        crd,
        sizes,
        interval: Duration::from_secs(interval_secs),
        rate_limit,
        rotations,
        late,
        steady: Duration::from_secs(steady_secs),
        wait: Duration::from_secs(wait_secs),
        baseline: !no_baseline,
        log_dir,
    };
    let mut out = std::io::stdout();
    writeln!(
        out,
        "Scale benchmark: poll interval {interval_secs} s, emulator quota {rate_limit} req/s, \
         {rotations} secrets rotated at once, {late} ExternalSecrets applied under load, \
         steady window {steady_secs} s, waits capped at {wait_secs} s."
    )?;
    // The tables go to stdout, progress to stderr.
    e2e::scale::run(&options, |table| {
        let _ = writeln!(out, "{table}");
    })
    .await?;
    Ok(())
}
