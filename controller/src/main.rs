#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::Parser;
use controller::cli::Args;
use controller::provider::IbmSecretsManager;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut parts = Args::parse().into_parts()?;
    parts.config.log_control = Some(controller::telemetry::init(parts.log_format));
    let kube_config = match &parts.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).context("read the kubeconfig")?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(kube_config)?;
    let sm = parts.client;
    controller::run(
        parts.config,
        client,
        |observer| IbmSecretsManager::with_observer(&sm, observer),
        shutdown(),
    )
    .await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
