//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! replicas exactly one runs the controller (and so talks to Secrets
//! Manager).
//!
//! This wraps [`kube_lease_manager`] (which supports kube 5): it acquires a
//! free or expired lease, renews it `grace` before it expires, and publishes
//! the state on a watch channel. When the channel's receivers are dropped
//! the lease is released, so a replica shutting down hands over at once; a
//! replica that dies hands over when its lease expires.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Where and how to hold the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long before expiry the holder renews.
    pub renew_grace: Duration,
}

/// A running election: `is_leader` follows this replica's state.
#[derive(Debug)]
pub struct Election {
    /// `true` while this replica holds the lease.
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl Election {
    /// Starts competing for the lease (creating it if needed).
    pub async fn start(client: Client, config: &LeaderConfig) -> Result<Self> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .with_duration(config.lease_duration.as_secs().max(1))
            .with_grace(config.renew_grace.as_secs().max(1))
            .with_field_manager(format!("cos-secrets-sync-{}", config.identity))
            .build()
            .await
            .map_err(Error::Leader)?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self { is_leader, task })
    }

    /// Stops competing and releases the lease if held.
    pub async fn stop(self) {
        let Self { is_leader, task } = self;
        drop(is_leader);
        match task.await {
            Ok(Ok(_)) => tracing::info!("released the leader lease"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the leader lease"),
            Err(error) => tracing::warn!(%error, "the leader election task failed"),
        }
    }
}

/// This replica's default identity: `POD_NAME`, else `HOSTNAME`, else the
/// content of `/etc/hostname`, else `cos-secrets-sync`.
pub fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "cos-secrets-sync".to_owned())
}
