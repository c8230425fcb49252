//! The local demo (see `e2e::demo`): `bash tests/scripts/demo.sh` runs it.

use std::path::PathBuf;

use clap::Parser;

/// Runs cos-secrets-sync end to end on the local platform.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Path of the controller binary.
    #[arg(long, env = "COS_SYNC_CONTROLLER_BIN")]
    controller: PathBuf,
    /// Path of the mounter binary.
    #[arg(long, env = "COS_SYNC_MOUNTER_BIN")]
    mounter: PathBuf,
    /// The ExternalSecret CRD manifest.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds/externalsecret.yaml"))]
    crd: PathBuf,
    /// Keep the platform, the controller and the mount up until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { controller, mounter, crd, keep } = Args::parse();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    e2e::demo::run(e2e::demo::DemoOptions { controller, mounter, crd, keep }).await
}
