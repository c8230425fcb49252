//! The cos-secrets-sync controller: materializes `ExternalSecret` objects
//! (`kubernetes-client.io/v1`, backend `ibmcloudSecretsManager`) as Kubernetes
//! Secrets, reading IBM Cloud Secrets Manager within its request budget.
//!
//! # Layout
//! - [`provider`]: the Secrets Manager client the controller reads through: a
//!   trait the controller owns, the IBM v2 REST implementation, IAM auth,
//!   the request budget and the read-sharing decorator.
//! - [`crd`]: the KES-compatible `ExternalSecret` resource and its status.
//! - [`materialize`]: pure: spec validation, the fetch plan (each remote
//!   secret once), and the Secret built from fetched values.
//! - [`scheduler`]: pure: the cost of a refresh, the effective poll interval
//!   within the request budget, each object's slot, and the retry delay
//!   (see `docs/scheduling.md`).
//! - [`changes`]: pure: change detection, which ExternalSecrets a metadata
//!   scan says must be refreshed.
//! - [`reconcile`]: `Context`, `reconcile` and `error_policy`: fetch, apply
//!   the Secret by server-side apply, report.
//! - [`status`]: the status subresource and Kubernetes Events.
//! - [`metrics`]: every metric name in one place, and the `CallObserver`
//!   that counts Secrets Manager calls.
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`run`](mod@run): wires it together: `run(config, client, provider, shutdown)`.
//! - [`cli`], [`telemetry`]: used by the binary only.
#![forbid(unsafe_code)]

pub mod changes;
pub mod cli;
pub mod crd;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod leader;
pub mod materialize;
pub mod metrics;
pub mod provider;
pub mod reconcile;
pub mod run;
pub mod scheduler;
pub mod status;
pub mod telemetry;

pub use run::{ChangeDetection, Config, run};

/// The result type of the controller layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail while syncing one ExternalSecret, or while
/// starting the controller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec (or the values it points at) cannot make a Secret.
    #[error(transparent)]
    Spec(#[from] materialize::Error),

    /// Reading a remote secret failed.
    #[error("{field} (key {key}): reading from Secrets Manager failed")]
    Provider {
        /// The first entry using the remote secret, e.g. `spec.data[0]`.
        field: String,
        /// The remote key (an id or `<group>/<name>`).
        key: String,
        /// The client's error.
        #[source]
        source: provider::Error,
    },

    /// A Kubernetes API call failed.
    #[error("cannot {action}")]
    Kube {
        /// What was attempted, e.g. `apply Secret`.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// The Secrets Manager client could not be built.
    #[error("cannot build the Secrets Manager client")]
    ProviderSetup(#[source] provider::Error),

    /// Leader election could not start.
    #[error("leader election failed")]
    Leader(#[source] kube_lease_manager::LeaseManagerError),

    /// The HTTP endpoint could not listen.
    #[error("cannot serve HTTP on {addr}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Spec(error) => error.metric_label(),
            Self::Provider { source, .. } => source.metric_label(),
            Self::Kube { .. } => "kube",
            Self::ProviderSetup(_) => "provider_setup",
            Self::Leader(_) => "leader",
            Self::Http { .. } => "http",
        }
    }

    /// The reason of the `Ready=False` condition this error leads to.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Spec(error) => error.reason(),
            Self::Provider { .. } => "ProviderError",
            _ => "KubernetesError",
        }
    }

    /// Whether retrying soon can help. Spec errors wait for the next poll.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Spec(_))
    }

    /// The message for status and events: the whole cause chain on one
    /// line. No layer puts secret values into its errors.
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(error) = source {
            message.push_str(": ");
            message.push_str(&error.to_string());
            source = error.source();
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_entry_key_and_cause() {
        let error = Error::Provider {
            field: "spec.data[0]".into(),
            key: "id-1".into(),
            source: provider::Error::EmptyParameter { parameter: "id" },
        };
        assert_eq!(
            error.chain(),
            "spec.data[0] (key id-1): reading from Secrets Manager failed: id must not be empty"
        );
        assert_eq!((error.reason(), error.metric_label()), ("ProviderError", "invalid_argument"));
        assert!(error.is_transient());

        let spec = Error::from(materialize::Error::MissingField { field: "spec.data[2].key".into() });
        assert_eq!(spec.chain(), "spec.data[2].key is required", "a transparent error is printed once");
        assert_eq!((spec.reason(), spec.metric_label()), ("InvalidSpec", "invalid_spec"));
        assert!(!spec.is_transient());
    }
}
