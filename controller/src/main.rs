#![forbid(unsafe_code)]

use clap::Parser;

/// cos-secrets-sync controller: syncs IBM Cloud Secrets Manager secrets into Kubernetes Secrets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    let Args {} = Args::parse();
    tracing_subscriber::fmt().init();
    tracing::warn!("the reconciler is not implemented yet");
}
