use clap::Parser;

/// cos-secrets-sync mounter: mounts a Cloud Object Storage bucket with FUSE.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    let Args {} = Args::parse();
    tracing_subscriber::fmt().init();
    tracing::warn!("the mounter is not implemented yet");
}
