//! Background watchers that keep a [`CredentialStore`] current.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::{CredentialStore, Credentials, Source, secret_data};

/// Starts the watcher that fits the store's source: a poll of the directory
/// every `interval`, or a watch of the Secret. Invalid new content is logged
/// and ignored; the previous credentials stay in use.
pub fn spawn_watcher(store: Arc<CredentialStore>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match store.source().clone() {
            Source::Dir(_) => poll(&store, interval).await,
            Source::Secret { api, name, .. } => watch_secret(&store, *api, &name).await,
            Source::Fixed(_) => {}
        }
    })
}

async fn poll(store: &CredentialStore, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.source().read().await {
            Ok(credentials) => {
                store.swap(credentials);
            }
            Err(error) => tracing::warn!(%error, "ignoring unreadable credentials; keeping the current ones"),
        }
    }
}

async fn watch_secret(
    store: &CredentialStore,
    api: kube::Api<k8s_openapi::api::core::v1::Secret>,
    name: &str,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                match Credentials::from_data(&secret_data(&secret)) {
                    Ok(credentials) => {
                        store.swap(credentials);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring invalid Secret; keeping the current credentials");
                    }
                }
            }
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!("the credentials Secret was deleted; keeping the current credentials");
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(error) => {
                tracing::warn!(%error, "watching the credentials Secret failed; retrying with backoff");
            }
        }
    }
}
