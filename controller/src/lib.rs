//! The cos-secrets-sync controller: materializes `ExternalSecret` objects
//! (`kubernetes-client.io/v1`, backend `ibmcloudSecretsManager`) as Kubernetes
//! Secrets, reading IBM Cloud Secrets Manager within its request budget.
//!
//! # Layout
//! - [`provider`]: the Secrets Manager client the controller reads through: a
//!   trait the controller owns, the IBM v2 REST implementation and IAM auth.
#![forbid(unsafe_code)]

pub mod provider;
