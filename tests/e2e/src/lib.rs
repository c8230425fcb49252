//! End-to-end runs of both programs, as separate processes, on the local
//! platform (`test-platform`) with the Secrets Manager emulator.
//!
//! # Layout
//! - [`programs`]: starts the controller and the mounter binaries.
//! - [`demo`]: the local demo: an ExternalSecret becomes a COS credential
//!   Secret, the mounter mounts the bucket with it, and a rotation goes
//!   through without a remount.
//! - [`scale`]: the scale benchmark, the controller against a KES-like
//!   poller at thousands of ExternalSecrets.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

pub mod demo;
pub mod programs;
pub mod scale;

/// The ExternalSecrets of `namespace`, untyped, as app teams' tools see them
/// (the e2e crate does not link the controller's types).
pub fn external_secrets(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kubernetes-client.io", "v1", "ExternalSecret");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}
